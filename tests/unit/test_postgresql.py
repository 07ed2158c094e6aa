"""The PostgreSQL store's settings and bounds (:mod:`sso_middleware.stores.postgresql`), without a server.

The store against a real PostgreSQL is tests/integration/test_postgresql.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from typing import Any

import psycopg
import pytest

from sso_middleware import ConfigError, SSOConfig
from sso_middleware.stores import registry
from sso_middleware.stores.postgresql import PostgresBackend
from sso_middleware.stores.postgresql_pool import Connections, _until, conninfo_for

from ..conftest import SESSION_SECRET
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER

SECRET = "Pw-d0-not-print"


def config(**overrides: Any) -> SSOConfig:
    settings = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "base_url": BASE_URL,
                "session_secret": SESSION_SECRET, "session_type": "postgresql",
                "session_url": f"postgresql://app:{SECRET}@127.0.0.1:5/sso", **overrides}
    return SSOConfig(**settings)


@pytest.mark.parametrize("url", [
    pytest.param("", id="empty"),
    pytest.param(f"redis://:{SECRET}@127.0.0.1:6379/0", id="another-scheme"),
    pytest.param(f"host=127.0.0.1 password={SECRET}", id="a-dsn-not-a-url"),
    pytest.param(f"postgresql://app:{SECRET}@127.0.0.1:notaport/sso", id="bad-port"),
    pytest.param(f"postgresql://app:{SECRET}@127.0.0.1/sso?colour=blue", id="unknown-parameter"),
    pytest.param(f"postgresql://app:{SECRET}@[::1/sso", id="unclosed-ipv6"),
    pytest.param("postgresql://app:%zz" + SECRET + "@127.0.0.1/sso", id="bad-percent-escape-in-the-password"),
])
def test_a_bad_url_is_one_config_error_naming_session_url(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(session_url=url)
    assert caught.value.setting == "session_url"
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("url", [
    "postgresql://app:pw@db.example:5432/sso",
    "postgres://app@db.example/sso?sslmode=verify-full&application_name=shop",
    "postgresql:///sso?host=/run/postgresql",
    "postgresql://app:pw@h1:5432,h2:5432/sso?target_session_attrs=read-write",
])
def test_libpq_urls_are_accepted(url: str) -> None:
    assert config(session_url=url).session_url == url


@pytest.mark.parametrize("size", [0, -1, 1001])
def test_the_pool_size_is_checked(size: int) -> None:
    with pytest.raises(ConfigError) as caught:
        config(session_pool_size=size)
    assert caught.value.setting == "session_pool_size"


def test_the_connection_string_bounds_every_call() -> None:
    info = psycopg.conninfo.conninfo_to_dict(conninfo_for("postgresql://a:b@h/d?options=-csearch_path%3Dsso", 0.5))
    assert info["options"] == "-csearch_path=sso -c statement_timeout=500"  # the URL's own options kept
    assert info["connect_timeout"] == "2"  # libpq's minimum; the pool's wait is the store timeout
    assert info["tcp_user_timeout"] == "500"
    assert info["application_name"] == "sso_middleware"
    assert psycopg.conninfo.conninfo_to_dict(conninfo_for("postgresql://h/d?application_name=shop", 7))[
        "application_name"] == "shop"


def test_building_the_store_connects_to_nothing() -> None:
    """A store on a port nobody listens on: built at once, no thread, the first call is what fails."""
    before = threading.active_count()
    started = time.monotonic()
    backend = registry.backend_for(config(session_url="postgresql://app:pw@127.0.0.1:9/sso"))
    assert isinstance(backend, PostgresBackend)
    assert time.monotonic() - started < 0.5
    assert threading.active_count() == before
    Connections.close_all()


def test_without_psycopg_the_store_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sso_middleware.stores.postgresql.installed", lambda: False)
    with pytest.raises(ConfigError) as caught:
        PostgresBackend(config())
    assert caught.value.setting == "session_type" and "sso_middleware[postgresql]" in caught.value.message


def waiting(forever: bool) -> Generator[int, Any, str]:
    """A protocol generator as psycopg's: it yields what it waits for and gets what became ready."""
    while True:
        ready = yield 1
        if ready and not forever:
            return "done"


def drive(gen: Generator[int, Any, str], ready: int, rounds: int = 1000) -> str:
    """psycopg's wait loop in short: ``ready`` every 10 ms (0: the socket stayed silent)."""
    try:
        next(gen)
        for _ in range(rounds):
            time.sleep(0.01)
            gen.send(ready)
    except StopIteration as done:
        return str(done.value)
    raise AssertionError("the generator never finished")


def test_a_wait_for_a_silent_server_ends_at_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="did not answer within session_store_timeout"):
        drive(_until(waiting(forever=True), time.monotonic() + 0.2), ready=0)
    assert 0.2 <= time.monotonic() - started < 0.5


def test_a_wait_that_is_answered_returns_the_answer() -> None:
    assert drive(_until(waiting(forever=False), time.monotonic() + 0.2), ready=1) == "done"


def test_an_answer_that_trickles_past_the_deadline_is_cut() -> None:
    """A server sending a byte now and then keeps the socket busy but does not stretch the bound."""
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        drive(_until(waiting(forever=True), time.monotonic() + 0.2), ready=1)
    assert time.monotonic() - started < 0.5
