"""The session stores (:mod:`sso_middleware.stores`) end to end, against real Redis and memcached.

(PostgreSQL's own tests are in test_postgresql.py; the store-generic record tests here run on it too.)

Each server test starts its own ``redis-server`` / ``memcached`` on a free
loopback port (:mod:`tests.store_servers`) and reads what the middleware wrote
with a raw client -- the redis client, or memcached's text protocol over a
socket -- so the assertions are about the bytes in the store, not about what
our namespace managers say they wrote.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import pickle
import stat
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

import memcache
import pytest
import redis
import webtest
from beaker.middleware import SessionMiddleware
from beaker.session import CookieSession

from sso_middleware import SSOConfig, SSOMiddleware
from sso_middleware._sealing import app_key_text, record_prefix
from sso_middleware.stores import StoreUnavailable
from sso_middleware.stores.index import end_index, index_key
from sso_middleware.testing import Clock

from ..conftest import SESSION_SECRET, browser_for
from ..cookies import summary, tx_name
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider
from ..postgres_server import PostgresServer
from ..store_servers import StoreServer

CONNECTION = "Username-Password-Authentication"
COOKIE = "__Host-sso_session"
IDLE = 1000
ABSOLUTE = 5000

Browser = webtest.TestApp


# -- servers and helpers -----------------------------------------------------------


@pytest.fixture
def store_settings(server: StoreServer) -> dict[str, Any]:
    return {"session_type": server.session_type, "session_url": server.url, "session_store_timeout": 0.5,
            "session_idle_timeout": IDLE, "session_absolute_timeout": ABSOLUTE}


def sign_in(browser: Browser, provider: FakeProvider, user: str = "alice", target: str = "/dashboard") -> None:
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": target})
    assert response.status_int == 303 and response.location.startswith("https://op.example/authorize?"), response
    response = browser.get(provider.authorize(response.location, user=user))
    assert response.status_int == 303, response
    assert response.location == "https://app2.example" + target, response.location


def app_view(browser: Browser, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = browser.get("/page", **kwargs).json
    return result


def failure_code(response: webtest.TestResponse) -> str:
    assert response.status_int == 303, response
    parts = urlsplit(response.location)
    assert (parts.netloc, parts.path) == ("app2.example", "/auth/failure"), response.location
    return parse_qs(parts.query)["error"][0]


def session_id(browser: Browser) -> str:
    """The session id inside our signed cookie (40 hex characters of HMAC, then the id)."""
    value = browser.cookies[COOKIE]
    assert len(value) > 40
    return value[40:]


def config_for(secret: str = SESSION_SECRET) -> SSOConfig:
    """The configuration of the tests' middleware, as far as keys go (issuer, client, secret)."""
    return SSOConfig(issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=BASE_URL,
                     session_secret=secret)


#: The tests' application's key prefix in Redis and memcached (bound to the issuer and client).
PREFIX = record_prefix(config_for())


def raw_key(server: StoreServer, record_id: str) -> str:
    """Where a record lives in the server, as our namespace managers name it."""
    name = f"{PREFIX}:{record_id}:session"
    return name if server.kind == "redis" else hashlib.sha256(name.encode()).hexdigest()


def raw_index_key(server: StoreServer, index_id: str) -> str:
    """Where a back-channel logout index lives (a Redis set; a JSON list in memcached)."""
    name = f"{PREFIX}:{index_id}:index"
    return name if server.kind == "redis" else hashlib.sha256(name.encode()).hexdigest()


def unsealed(raw: bytes) -> bytes:
    """The payload of a sealed value (``1.<MAC>.<payload>``), its seal checked by the code under test, not here."""
    tag, mac, payload = raw.split(b".", 2)
    assert tag == b"1" and len(mac) == 43, raw[:60]
    return payload


def raw_index(server: StoreServer, index_id: str) -> Optional[list[str]]:
    key = raw_index_key(server, index_id)
    if server.kind == "redis":
        client = redis.Redis(port=server.port)
        if not client.exists(key):
            return None
        return sorted(unsealed(member).decode() for member in client.smembers(key))
    found = server.memcached_get(key)
    return None if found is None else sorted(json.loads(unsealed(found[1])))


def raw_index_ttl(server: StoreServer, index_id: str) -> Optional[int]:
    key = raw_index_key(server, index_id)
    if server.kind == "redis":
        ttl = int(redis.Redis(port=server.port).ttl(key))
        return None if ttl == -2 else ttl
    return server.memcached_ttl(key)


def raw_value(server: Any, record_id: str) -> Optional[bytes]:
    if server.kind == "postgresql":
        text = server.record(f"{PREFIX}:{record_id}")
        return None if text is None else text.encode()
    if server.kind == "redis":
        value = redis.Redis(port=server.port).get(raw_key(server, record_id))
        return value if value is None else bytes(value)
    found = server.memcached_get(raw_key(server, record_id))
    return None if found is None else found[1]


def raw_ttl(server: Any, record_id: str) -> Optional[int]:
    if server.kind == "postgresql":
        left = server.seconds_left(f"{PREFIX}:{record_id}")
        return None if left is None else int(left)
    if server.kind == "redis":
        ttl = int(redis.Redis(port=server.port).ttl(raw_key(server, record_id)))
        return None if ttl == -2 else ttl
    return server.memcached_ttl(raw_key(server, record_id))


def stored_keys(server: Any) -> int:
    """How many records the server holds, whoever wrote them."""
    if server.kind == "postgresql":
        return int(server.rows())
    if server.kind == "redis":
        return int(redis.Redis(port=server.port).dbsize())
    stats = server.memcached_stats()
    return int(stats["curr_items"])


def state_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["state"][0]


def decode_record(raw: bytes) -> dict[str, Any]:
    """Beaker's ``json`` serializer inside its container text, sealed: base64(zlib(JSON))."""
    record: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(unsealed(raw), validate=True)))
    return record


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert "Traceback" not in record.getMessage()


class SideEffect:
    """A pickle whose unpickling touches a file: proof, by its absence, that nothing unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def armed_pickle(marker: Path, protocol: int) -> bytes:
    """The payload, after checking that unpickling it really does create ``marker``."""
    payload = pickle.dumps(SideEffect(marker), protocol=protocol)
    pickle.loads(payload)  # the control: this payload does have a visible side effect
    assert marker.exists()
    marker.unlink()
    return payload


# -- redis and memcached -----------------------------------------------------------


def test_a_sign_in_works_through_the_store(make_browser: Callable[..., Browser], provider: FakeProvider,
                                           store_settings: dict[str, Any], server: StoreServer,
                                           tmp_path: Path) -> None:
    browser = make_browser(**store_settings)
    sign_in(browser, provider)
    seen = app_view(browser)
    assert seen["remote_user"] == "alice"
    assert seen["userinfo"]["email"] == "alice@example.com"
    assert raw_value(server, session_id(browser)) is not None
    assert not (tmp_path / "sessions").exists()  # nothing went to the file store


def test_the_stored_value_is_the_sessions_json_text_never_a_pickle(
    make_browser: Callable[..., Browser], provider: FakeProvider, store_settings: dict[str, Any], server: StoreServer
) -> None:
    browser = make_browser(**store_settings)
    sign_in(browser, provider)
    raw = raw_value(server, session_id(browser))
    assert raw is not None
    raw.decode("ascii")  # base64 text
    assert not raw.startswith(b"\x80")  # not a binary pickle
    record = decode_record(raw)
    assert record["user"]["claims"]["sub"] == "alice"
    assert record["user"]["sid"] == "provider-session-1"
    assert isinstance(record["last_seen"], float)
    if server.kind == "memcached":
        flags, _ = server.memcached_get(raw_key(server, session_id(browser))) or (None, b"")
        assert flags is not None and not flags & memcache.Client._FLAG_PICKLE
        assert not flags & memcache.Client._FLAG_COMPRESSED
    # The back-channel logout index records hold the session ids (a set in Redis, JSON in memcached).
    assert raw_index(server, index_key("sid:provider-session-1")) == [session_id(browser)]


@pytest.mark.parametrize("protocol", [0, pickle.HIGHEST_PROTOCOL], ids=["ascii-pickle", "binary-pickle"])
def test_a_pickled_record_is_never_unpickled(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider,
                                             store_settings: dict[str, Any], server: StoreServer,
                                             tmp_path: Path, protocol: int,
                                             caplog: pytest.LogCaptureFixture) -> None:
    middleware = make_middleware(**store_settings)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    marker = tmp_path / "unpickled"
    payload = armed_pickle(marker, protocol)
    key = raw_key(server, session_id(browser))
    if server.kind == "redis":
        redis.Redis(port=server.port).set(key, payload, ex=600)
    else:
        # What someone able to write to the cache would do: python-memcached pickles any
        # non-str object and flags it so that every reader unpickles it.
        client = memcache.Client([server.url])
        assert client.set(key, SideEffect(marker), time=600)
        client.disconnect_all()
        flags, _ = server.memcached_get(key) or (0, b"")
        assert flags & memcache.Client._FLAG_PICKLE
    response = browser.get("/page")
    assert response.status_int == 200
    assert response.json["remote_user"] is None  # unreadable record: anonymous
    assert not marker.exists(), "the planted pickle was unpickled"
    # The cookie naming an unreadable record is cleared, so the lookup is not repeated.
    assert any(header.startswith(f"{COOKIE}=") and "expires=" in header.lower()
               for header in response.headers.getall("Set-Cookie"))
    # A sign-in afterwards works (a fresh record under a fresh id).
    sign_in(browser, provider)
    assert app_view(browser)["remote_user"] == "alice"
    assert not marker.exists()
    no_traceback(caplog)


def test_a_pickled_index_record_is_never_unpickled(make_browser: Callable[..., Browser], provider: FakeProvider,
                                                   store_settings: dict[str, Any], server: StoreServer,
                                                   tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    key = raw_index_key(server, index_key("sid:provider-session-1"))
    if server.kind == "redis":
        redis.Redis(port=server.port).set(key, armed_pickle(marker, pickle.HIGHEST_PROTOCOL), ex=600)
    else:
        armed_pickle(marker, pickle.HIGHEST_PROTOCOL)
        client = memcache.Client([server.url])
        assert client.set(key, SideEffect(marker), time=600)
        client.disconnect_all()
    browser = make_browser(**store_settings)
    sign_in(browser, provider)  # reads and rewrites the sid's index record
    assert not marker.exists(), "the planted pickle was unpickled"
    assert app_view(browser)["remote_user"] == "alice"
    assert raw_index(server, index_key("sid:provider-session-1")) == [session_id(browser)]


def test_records_carry_ttls(make_browser: Callable[..., Browser], provider: FakeProvider,
                            store_settings: dict[str, Any], server: StoreServer) -> None:
    browser = make_browser(**store_settings)
    sign_in(browser, provider)
    session_ttl = raw_ttl(server, session_id(browser))
    assert session_ttl is not None and IDLE + 180 - 10 <= session_ttl <= IDLE + 180
    for index in ("sid:provider-session-1", "sub:alice"):
        index_ttl = raw_index_ttl(server, index_key(index))
        assert index_ttl is not None and ABSOLUTE + 180 - 10 <= index_ttl <= ABSOLUTE + 180, index


def test_a_pending_sign_in_writes_nothing_to_the_store(make_browser: Callable[..., Browser], provider: FakeProvider,
                                                       store_settings: dict[str, Any], server: StoreServer) -> None:
    """Anonymous visits to /auth/sso cannot fill the store: the sign-in in flight is in a short-lived cookie."""
    browser = make_browser(**store_settings)
    for _ in range(3):
        response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/"})
        assert response.location.startswith("https://op.example/authorize?")
        assert summary(response.headers.getall("Set-Cookie"), COOKIE) == [
            ("tx:" + tx_name(COOKIE, state_of(response.location)), "set")
        ]
        assert "max-age=600" in response.headers["Set-Cookie"].lower()
    assert COOKIE not in browser.cookies
    assert stored_keys(server) == 0
    # The control: a completed sign-in is seen in the store (its session, and back-channel index records).
    browser.get(provider.authorize(response.location))
    assert raw_value(server, session_id(browser)) is not None
    assert stored_keys(server) >= 1


def test_the_ttl_is_renewed_when_the_idle_stamp_is_written(make_middleware: Callable[..., SSOMiddleware],
                                                          provider: FakeProvider, store_settings: dict[str, Any],
                                                          server: StoreServer) -> None:
    clock = Clock()
    middleware = make_middleware(**store_settings, clock=clock)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    record_id = session_id(browser)
    key = raw_key(server, record_id)
    if server.kind == "redis":
        redis.Redis(port=server.port).expire(key, 50)
    else:
        assert server.memcached(b"touch " + key.encode() + b" 50").startswith(b"TOUCHED")
    ttl = raw_ttl(server, record_id)
    assert ttl is not None and ttl <= 50
    clock.advance(200)  # past the stamp interval (60 s), within the idle timeout
    assert app_view(browser)["remote_user"] == "alice"
    ttl = raw_ttl(server, record_id)
    assert ttl is not None and IDLE + 180 - 10 <= ttl <= IDLE + 180


def test_memcached_ttls_beyond_30_days_are_sent_as_timestamps(make_browser: Callable[..., Browser],
                                                             provider: FakeProvider, tmp_path: Path) -> None:
    """memcached reads a TTL over 30 days as a Unix time (in 1970): the record would vanish at once."""
    server = StoreServer("memcached").start()
    try:
        browser = make_browser(session_type="ext:memcached", session_url=server.url,
                               session_idle_timeout=30 * 86400, session_absolute_timeout=90 * 86400)
        sign_in(browser, provider)
        assert app_view(browser)["remote_user"] == "alice"
        session_ttl = raw_ttl(server, session_id(browser))
        assert session_ttl is not None and 30 * 86400 + 170 <= session_ttl <= 30 * 86400 + 181
        index_ttl = raw_index_ttl(server, index_key("sid:provider-session-1"))
        assert index_ttl is not None and 90 * 86400 + 170 <= index_ttl <= 90 * 86400 + 181
    finally:
        server.stop()


def test_sign_out_deletes_just_that_record(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider,
                                          store_settings: dict[str, Any], server: StoreServer) -> None:
    middleware = make_middleware(**store_settings)
    alice, bob = browser_for(middleware), browser_for(middleware)
    sign_in(alice, provider, "alice")
    sign_in(bob, provider, "bob")  # deletes bob's pre-sign-in record: that must not touch alice's
    alice_id, bob_id = session_id(alice), session_id(bob)
    # Another application's key in the same server.
    if server.kind == "redis":
        redis.Redis(port=server.port).set("other-app:key", b"keep me")
    else:
        assert server.memcached(b"set other-app-key 0 0 7\r\nkeep me") == b"STORED\r\n"
        # memcached's flush_all spares items written within the last second or so: let them age,
        # so that a flush_all in place of a delete would show.
        time.sleep(2.1)
    assert app_view(alice)["remote_user"] == "alice"
    assert app_view(bob)["remote_user"] == "bob"

    alice.get("/auth/logout", {"target_url": "/bye"})

    assert raw_value(server, alice_id) is None
    assert raw_value(server, bob_id) is not None
    assert app_view(bob)["remote_user"] == "bob"
    assert app_view(alice)["remote_user"] is None
    if server.kind == "redis":
        assert redis.Redis(port=server.port).get("other-app:key") == b"keep me"
    else:
        assert server.memcached_get("other-app-key") == (0, b"keep me")  # no flush_all


def test_a_signed_out_cookie_replayed_is_anonymous(make_middleware: Callable[..., SSOMiddleware],
                                                   provider: FakeProvider, store_settings: dict[str, Any]) -> None:
    middleware = make_middleware(**store_settings)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    stolen = browser.cookies[COOKIE]
    browser.get("/auth/logout")
    replay = browser_for(middleware)
    replay.set_cookie(COOKIE, stolen)
    assert app_view(replay)["remote_user"] is None


def test_store_down_gives_a_clean_503_and_service_resumes_after_a_restart(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, store_settings: dict[str, Any],
    server: StoreServer, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sso_middleware")
    middleware = make_middleware(**store_settings)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    assert app_view(browser)["remote_user"] == "alice"

    server.stop()
    started = time.monotonic()
    page = browser.get("/page", status=503)
    assert time.monotonic() - started < 5
    assert page.content_type == "text/html"
    assert "session_store_unavailable" in page.text
    assert "Traceback" not in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "session store unavailable" in caplog.text
    # The auth routes send the browser to the failure page with the same code.
    assert failure_code(browser.get("/auth/logout")) == "session_store_unavailable"
    anonymous = browser_for(middleware)
    # Starting a sign-in needs no store (the sign-in in flight is in its own cookie)...
    started = anonymous.get("/auth/sso", {"connection": CONNECTION, "target_url": "/"})
    assert started.location.startswith("https://op.example/authorize?"), started
    tx = "tx:" + tx_name(COOKIE, state_of(started.location))
    assert summary(started.headers.getall("Set-Cookie"), COOKIE) == [(tx, "set")]
    # ...completing it does: the same failure page, no session cookie, and the sign-in is used up.
    response = anonymous.get(provider.authorize(started.location))
    assert failure_code(response) == "session_store_unavailable"
    assert summary(response.headers.getall("Set-Cookie"), COOKIE) == [(tx, "expired")]
    assert list(anonymous.cookies) == []
    failure = anonymous.get(response.location, status=503)
    assert "session_store_unavailable" in failure.text
    # Requests without a session cookie never touch the store: they pass through.
    assert app_view(anonymous)["remote_user"] is None
    no_traceback(caplog)

    server.start()  # same port; the store lost its records (--save '', memcached keeps nothing)
    if server.kind == "memcached":
        time.sleep(1.1)  # python-memcached retries a dead server after dead_retry (1 s)
    response = browser.get("/page")
    assert response.status_int == 200 and response.json["remote_user"] is None
    sign_in(browser, provider)
    assert app_view(browser)["remote_user"] == "alice"
    no_traceback(caplog)


def test_a_hung_store_times_out_and_the_session_survives(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, store_settings: dict[str, Any],
    server: StoreServer, caplog: pytest.LogCaptureFixture,
) -> None:
    """A store that stops answering (SIGSTOP) costs ``session_store_timeout``, not a hung worker."""
    middleware = make_middleware(**store_settings)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    server.pause()
    try:
        started = time.monotonic()
        page = browser.get("/page", status=503)
        assert time.monotonic() - started < 3
        assert "session_store_unavailable" in page.text
    finally:
        server.resume()
    if server.kind == "memcached":
        time.sleep(1.1)  # dead_retry
    deadline = time.monotonic() + 5
    while True:  # the connection that timed out is dropped; the next one works
        response = browser.get("/page", expect_errors=True)
        if response.status_int == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert response.status_int == 200
    assert response.json["remote_user"] == "alice"  # the record was kept: no sign-in needed
    no_traceback(caplog)


# -- the cookie store -----------------------------------------------------------------


def cookie_session(value: str, secret: str = SESSION_SECRET) -> CookieSession:
    """Our cookie, opened with the keys the middleware derives from ``session_secret``."""
    return CookieSession(
        {"cookie": f"{COOKIE}={value}"}, key=COOKIE, data_serializer="json",
        encrypt_key=app_key_text(config_for(secret), "cookie encryption"),
        validate_key=app_key_text(config_for(secret), "cookie signature"),
    )


def decodings(value: str) -> list[bytes]:
    """Every base64 reading of every suffix of ``value`` (and their zlib inflations, where they inflate)."""
    found = [value.encode()]
    for start in range(len(value)):
        chunk = value[start:]
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                data = decode(chunk + "=" * (-len(chunk) % 4))
            except ValueError:
                continue
            found.append(data)
            with contextlib.suppress(zlib.error):
                found.append(zlib.decompress(data))
    return found


def test_cookie_store_signs_in_without_any_server_side_state(make_browser: Callable[..., Browser],
                                                             provider: FakeProvider, tmp_path: Path) -> None:
    browser = make_browser(session_type="cookie")
    sign_in(browser, provider)
    seen = app_view(browser)
    assert seen["remote_user"] == "alice"
    assert seen["userinfo"]["email"] == "alice@example.com"
    # No session records: only the host's revocation journal folder (0700), empty until a sign-out.
    assert (tmp_path / "sessions").stat().st_mode & 0o777 == 0o700
    assert [path for path in tmp_path.rglob("*") if not path.is_dir()] == []


def test_the_cookie_is_encrypted(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    browser = make_browser(session_type="cookie")
    sign_in(browser, provider)
    value = browser.cookies[COOKIE]
    for data in decodings(value):
        assert b"alice@example.com" not in data
        assert b"Alice Example" not in data
    # It is there, for whoever holds the keys.
    opened = cookie_session(value)
    assert opened["user"]["claims"]["email"] == "alice@example.com"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda v: v[:50] + ("A" if v[50] != "A" else "B") + v[51:], id="payload-byte"),
        pytest.param(lambda v: ("0" if v[0] != "0" else "1") + v[1:], id="signature-byte"),
        pytest.param(lambda v: v[:-8], id="truncated"),
        pytest.param(lambda v: v[:40] + base64.b64encode(b'{"user": {"claims": {"sub": "admin"}}}').decode(),
                     id="plaintext-payload"),
        pytest.param(lambda v: "garbage", id="garbage"),
    ],
)
def test_a_tampered_cookie_is_anonymous(make_browser: Callable[..., Browser], provider: FakeProvider,
                                        tamper: Callable[[str], str], caplog: pytest.LogCaptureFixture) -> None:
    browser = make_browser(session_type="cookie")
    sign_in(browser, provider)
    forged = tamper(browser.cookies[COOKIE])
    assert forged != browser.cookies[COOKIE]
    browser.set_cookie(COOKIE, forged)
    response = browser.get("/page")
    assert response.json["remote_user"] is None and response.json["userinfo"] is None
    assert any(header.startswith(f"{COOKIE}=") and "expires=" in header.lower()
               for header in response.headers.getall("Set-Cookie"))
    no_traceback(caplog)


def test_a_cookie_of_another_deployment_is_anonymous(make_browser: Callable[..., Browser],
                                                     provider: FakeProvider) -> None:
    other = make_browser(session_type="cookie", session_secret="o" * 40)
    sign_in(other, provider)
    browser = make_browser(session_type="cookie")
    browser.set_cookie(COOKIE, other.cookies[COOKIE])
    assert app_view(browser)["remote_user"] is None


def test_cookie_store_session_fixation_a_planted_cookie_is_replaced_whole(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    middleware = make_middleware(session_type="cookie")
    attacker = browser_for(middleware)
    started = attacker.get("/auth/sso", {"connection": "github", "target_url": "/"})
    assert COOKIE not in attacker.cookies  # starting a sign-in gives nobody a session to plant...
    attacker.get(provider.authorize(started.location, user="bob"))  # ...so the attacker plants their own
    planted = attacker.cookies[COOKIE]
    planted_session = cookie_session(planted)

    victim = browser_for(middleware)
    victim.set_cookie(COOKIE, planted)
    sign_in(victim, provider)
    fresh = victim.cookies[COOKIE]
    assert fresh != planted
    signed_in = cookie_session(fresh)
    assert signed_in["user"]["claims"]["sub"] == "alice"
    assert signed_in["_id"] != planted_session["_id"]  # a new session, not the planted one updated
    assert signed_in["_creation_time"] > planted_session["_creation_time"]
    # The attacker's copy never becomes alice; the victim's sign-in replaced (and so revoked) its sign-in.
    assert app_view(attacker)["remote_user"] is None


def test_a_session_too_large_for_a_cookie_gets_the_failure_page(
    make_browser: Callable[..., Browser], provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    provider.userinfo = {"sub": "alice", "blob": base64.b64encode(os.urandom(6000)).decode()}  # incompressible
    browser = make_browser(session_type="cookie")
    started = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/"})
    response = browser.get(provider.authorize(started.location))
    assert failure_code(response) == "session_too_large"
    page = browser.get(response.location, status=503)
    assert "session_too_large" in page.text
    assert "Traceback" not in page.text
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors and "server-side session_type" in errors[-1].getMessage()
    no_traceback(caplog)
    assert app_view(browser)["remote_user"] is None


def test_cookie_store_writes_a_new_cookie_when_the_idle_stamp_changes(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    clock = Clock()
    middleware = make_middleware(session_type="cookie", clock=clock)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    before = browser.cookies[COOKIE]
    response = browser.get("/page")
    assert "Set-Cookie" not in response.headers  # nothing changed: nothing written
    later = clock.advance(120)
    response = browser.get("/page")
    assert response.json["remote_user"] == "alice"
    assert any(header.startswith(f"{COOKIE}=") for header in response.headers.getall("Set-Cookie"))
    after = browser.cookies[COOKIE]
    assert after != before
    assert cookie_session(after)["last_seen"] == later


def test_cookie_store_sign_out_expires_the_cookie(make_browser: Callable[..., Browser],
                                                  provider: FakeProvider) -> None:
    browser = make_browser(session_type="cookie")
    sign_in(browser, provider)
    response = browser.get("/auth/logout", {"target_url": "/bye"})
    assert any(header.startswith(f"{COOKIE}=") and "expires=" in header.lower()
               for header in response.headers.getall("Set-Cookie"))
    assert app_view(browser)["remote_user"] is None


# -- the environ store: an outer Beaker SessionMiddleware ------------------------------------


def outer_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """An app with its own data in the outer Beaker session: ``/cart?item=x`` adds, ``/page`` shows."""
    session = environ["beaker.session"]
    if environ.get("PATH_INFO") == "/cart":
        session["cart"] = [*session.get("cart", []), parse_qs(environ.get("QUERY_STRING", ""))["item"][0]]
        session.save()
    body = json.dumps({"remote_user": environ.get("REMOTE_USER"), "userinfo": environ.get("sso.userinfo"),
                       "cart": session.get("cart"), "session_id": session.id}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


OUTER_SECRET = "outer-app-secret-" + "o" * 30


def outer_options(kind: str, tmp_path: Path) -> dict[str, Any]:
    if kind == "file":
        return {"type": "file", "data_dir": str(tmp_path / "outer"), "lock_dir": str(tmp_path / "outer-locks"),
                "secret": OUTER_SECRET}
    return {"type": "cookie", "encrypt_key": "e" * 32, "validate_key": OUTER_SECRET}


@pytest.fixture(params=["file", "cookie"])
def outer_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def environ_browser(make_middleware: Callable[..., SSOMiddleware], outer_kind: str, tmp_path: Path) -> Browser:
    inner = make_middleware(outer_app, session_type="environ")
    wrapped = SessionMiddleware(inner, key="app_session", data_serializer="json", httponly=True,
                                **outer_options(outer_kind, tmp_path))
    return webtest.TestApp(wrapped, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"})


def test_environ_store_signs_in_inside_the_outer_session(environ_browser: Browser, provider: FakeProvider,
                                                         tmp_path: Path) -> None:
    sign_in(environ_browser, provider)
    seen = app_view(environ_browser)
    assert seen["remote_user"] == "alice"
    assert seen["userinfo"]["email"] == "alice@example.com"
    assert COOKIE not in environ_browser.cookies  # the outer middleware owns the cookie
    assert "app_session" in environ_browser.cookies
    # Our folder holds nothing but the (empty) revocation journal's folder; the outer store has the session.
    assert (tmp_path / "sessions").is_dir()
    assert [path for path in (tmp_path / "sessions").rglob("*") if not path.is_dir()] == []


def test_environ_store_keeps_the_apps_data_through_sign_in(environ_browser: Browser, provider: FakeProvider,
                                                           outer_kind: str) -> None:
    environ_browser.get("/cart", {"item": "book"})
    before = app_view(environ_browser)
    assert before["cart"] == ["book"] and before["remote_user"] is None
    old_cookie = environ_browser.cookies["app_session"]
    sign_in(environ_browser, provider)
    after = app_view(environ_browser)
    assert after["remote_user"] == "alice"
    assert after["cart"] == ["book"]
    assert environ_browser.cookies["app_session"] != old_cookie
    if outer_kind == "file":
        assert after["session_id"] != before["session_id"]  # regenerated at sign-in (fixation defence)
    # The pre-sign-in cookie does not carry the user.
    replay = webtest.TestApp(environ_browser.app, extra_environ=environ_browser.extra_environ)
    replay.set_cookie("app_session", old_cookie)
    assert app_view(replay)["remote_user"] is None


def test_environ_store_sign_out_deletes_the_outer_session(environ_browser: Browser, provider: FakeProvider,
                                                          outer_kind: str) -> None:
    environ_browser.get("/cart", {"item": "book"})
    sign_in(environ_browser, provider)
    signed_in_cookie = environ_browser.cookies["app_session"]
    environ_browser.get("/auth/logout", {"target_url": "/bye"})
    seen = app_view(environ_browser)
    assert seen["remote_user"] is None
    assert seen["cart"] is None
    if outer_kind == "file":  # server-side: the record itself is emptied, so the old cookie is worthless
        replay = webtest.TestApp(environ_browser.app, extra_environ=environ_browser.extra_environ)
        replay.set_cookie("app_session", signed_in_cookie)
        replayed = app_view(replay)
        assert replayed["remote_user"] is None and replayed["cart"] is None


def test_environ_store_without_the_outer_middleware_is_a_clear_503(
    make_browser: Callable[..., Browser], provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    browser = make_browser(session_type="environ")
    started = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/"})
    assert started.location.startswith("https://op.example/authorize?")  # starting needs no session...
    response = browser.get(provider.authorize(started.location))  # ...signing in does
    assert failure_code(response) == "session_store_unavailable"
    assert "wrap this middleware in beaker.middleware.SessionMiddleware" in caplog.text
    page = browser.get(response.location, status=503)
    assert "session_store_unavailable" in page.text
    # A request with a cookie needs the session: the same 503 page, never a 500.
    page = browser.get("/page", headers={"Cookie": "app_session=whatever"}, status=503)
    assert "session_store_unavailable" in page.text
    no_traceback(caplog)


def test_environ_store_with_the_outer_session_under_another_key(make_middleware: Callable[..., SSOMiddleware],
                                                                provider: FakeProvider, tmp_path: Path) -> None:
    inner = make_middleware(session_type="environ", session_environ_key="myapp.session")
    wrapped = SessionMiddleware(inner, environ_key="myapp.session", key="app_session", data_serializer="json",
                                **outer_options("file", tmp_path))
    browser = webtest.TestApp(wrapped, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"})
    sign_in(browser, provider)
    assert app_view(browser)["remote_user"] == "alice"


def test_every_store_call_reports_an_outage(make_middleware: Callable[..., SSOMiddleware],
                                            store_settings: dict[str, Any], server: StoreServer) -> None:
    """Reads, writes and deletes all raise StoreUnavailable (never a silent success) when the server is gone."""
    beaker = make_middleware(**store_settings).store.backend
    assert beaker is not None
    namespace = beaker.namespace("some-record")
    namespace["session"] = "dGV4dA=="
    assert namespace["session"] == "dGV4dA=="
    assert "session" in namespace
    server.stop()
    calls: list[Callable[[], Any]] = [
        lambda: namespace["session"],
        lambda: "session" in namespace,
        lambda: namespace.__setitem__("session", "dGV4dA=="),
        lambda: namespace.__delitem__("session"),
        namespace.remove,
        lambda: beaker.delete_record("some-record"),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable):
            call()


def test_a_restart_nobody_saw_costs_no_request(make_middleware: Callable[..., SSOMiddleware],
                                               provider: FakeProvider, store_settings: dict[str, Any],
                                               server: StoreServer, caplog: pytest.LogCaptureFixture) -> None:
    """A client still holding a connection from before the restart reconnects instead of answering 503."""
    middleware = make_middleware(**store_settings)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    assert app_view(browser)["remote_user"] == "alice"  # the client now holds an open connection
    server.stop()
    server.start()  # no request in between: nothing has noticed
    response = browser.get("/page", expect_errors=True)
    assert response.status_int == 200, response.text[:300]
    assert response.json["remote_user"] is None  # the record went with the old process
    sign_in(browser, provider)
    assert app_view(browser)["remote_user"] == "alice"
    no_traceback(caplog)


# -- small records of our own: read_value / write_value (token records) --------------------------


@pytest.fixture(params=["file", "redis", "memcached", "postgresql"])
def value_store(request: pytest.FixtureRequest,
                settings: dict[str, Any]) -> Iterator[tuple[Any, Optional[StoreServer]]]:
    """The back end of each server-side kind, and its server (None for the file store)."""
    from sso_middleware import SSOConfig
    from sso_middleware._session.state import SessionStore

    server: Any = None
    if request.param == "postgresql":
        server = PostgresServer().start()
    elif request.param != "file":
        server = StoreServer(request.param).start()
    try:
        extra = {} if server is None else {"session_type": server.session_type, "session_url": server.url,
                                           "session_store_timeout": 0.5}
        store = SessionStore(SSOConfig(**{**settings, **extra}))
        yield store.backend, server
    finally:
        if server is not None:
            server.close()


RECORD = "sso-tokens-0123456789abcdef0123456789abcdef"


def record_exists(beaker: Any, server: Optional[StoreServer], record_id: str) -> bool:
    """Whether the record is in the store, looked up without our namespace managers."""
    if server is None:
        return os.path.exists(os.path.join(beaker.options["data_dir"], "container_file", record_id[0],
                                           record_id[:2], record_id + ".cache"))
    return raw_value(server, record_id) is not None


def test_a_missing_record_reads_as_none(value_store: tuple[Any, Optional[StoreServer]]) -> None:
    beaker, server = value_store
    assert beaker.read_record(RECORD) is None
    assert not record_exists(beaker, server, RECORD)


def test_a_value_written_is_read_back(value_store: tuple[Any, Optional[StoreServer]]) -> None:
    beaker, server = value_store
    assert beaker.write_record(RECORD, '{"access_token": "at-1"}', 600) is True
    assert beaker.read_record(RECORD) == '{"access_token": "at-1"}'
    assert record_exists(beaker, server, RECORD)
    if server is not None:
        raw = raw_value(server, RECORD)
        assert raw is not None and unsealed(raw) == b'{"access_token": "at-1"}'  # the text, sealed: no pickle
        ttl = raw_ttl(server, RECORD)
        assert ttl is not None and 590 <= ttl <= 600
    assert beaker.write_record(RECORD, "second", 600) is True
    assert beaker.read_record(RECORD) == "second"


def test_an_update_of_a_missing_record_creates_nothing(value_store: tuple[Any, Optional[StoreServer]]) -> None:
    beaker, server = value_store
    assert beaker.write_record(RECORD, "text", 600, existing=True) is False
    assert beaker.read_record(RECORD) is None
    assert not record_exists(beaker, server, RECORD)
    if server is not None:
        assert stored_keys(server) == 0


def test_an_update_of_an_existing_record_replaces_it(value_store: tuple[Any, Optional[StoreServer]]) -> None:
    beaker, server = value_store
    assert beaker.write_record(RECORD, "first", 100)
    assert beaker.write_record(RECORD, "second", 600, existing=True) is True
    assert beaker.read_record(RECORD) == "second"
    if server is not None:
        ttl = raw_ttl(server, RECORD)
        assert ttl is not None and 590 <= ttl <= 600  # the update renews the TTL


def test_an_update_after_a_removal_never_brings_the_record_back(
    value_store: tuple[Any, Optional[StoreServer]],
) -> None:
    """A refresh racing a sign-out: the sign-out's deletion wins."""
    beaker, server = value_store
    assert beaker.write_record(RECORD, "first", 600)
    beaker.delete_record(RECORD)
    assert not record_exists(beaker, server, RECORD)
    assert beaker.write_record(RECORD, "second", 600, existing=True) is False
    assert not record_exists(beaker, server, RECORD)
    assert beaker.read_record(RECORD) is None


def test_records_do_not_mix(value_store: tuple[Any, Optional[StoreServer]]) -> None:
    beaker, _ = value_store
    other = RECORD[:-1] + "0"
    assert beaker.write_record(RECORD, "mine", 600)
    assert beaker.read_record(other) is None
    assert beaker.write_record(other, "theirs", 600, existing=True) is False
    assert beaker.read_record(RECORD) == "mine"


def test_value_calls_report_an_outage(make_middleware: Callable[..., SSOMiddleware],
                                      store_settings: dict[str, Any], server: StoreServer) -> None:
    beaker = make_middleware(**store_settings).store.backend
    assert beaker is not None
    assert beaker.write_record(RECORD, "text", 600)
    server.stop()
    with pytest.raises(StoreUnavailable):
        beaker.read_record(RECORD)
    with pytest.raises(StoreUnavailable):
        beaker.write_record(RECORD, "text", 600)
    with pytest.raises(StoreUnavailable):
        beaker.write_record(RECORD, "text", 600, existing=True)


def test_a_planted_pickle_in_a_memcached_token_record_is_never_unpickled(tmp_path: Path,
                                                                        settings: dict[str, Any]) -> None:
    from sso_middleware import SSOConfig
    from sso_middleware._session.state import SessionStore

    server = StoreServer("memcached").start()
    try:
        beaker = SessionStore(SSOConfig(**settings, session_type="ext:memcached", session_url=server.url)).backend
        marker = tmp_path / "unpickled"
        armed_pickle(marker, pickle.HIGHEST_PROTOCOL)
        client = memcache.Client([server.url])
        assert client.set(raw_key(server, RECORD), SideEffect(marker), time=600)
        assert client.set(raw_key(server, RECORD[:-1] + "1"), 42, time=600)  # an integer, by its flags
        client.disconnect_all()
        assert beaker.read_record(RECORD) is None
        assert beaker.read_record(RECORD[:-1] + "1") is None
        assert not marker.exists(), "the planted pickle was unpickled"
    finally:
        server.stop()


@pytest.mark.parametrize("payload", [
    pytest.param(b"\x80\x05\x95", id="binary-pickle"),
    pytest.param(b"\xff\xfe not utf-8", id="latin-1"),
])
def test_a_redis_token_record_that_is_not_text_reads_as_none(settings: dict[str, Any], payload: bytes) -> None:
    """Bytes someone planted under a token record's key are an unreadable record, never an exception."""
    from sso_middleware import SSOConfig
    from sso_middleware._session.state import SessionStore

    server = StoreServer("redis").start()
    try:
        beaker = SessionStore(SSOConfig(**settings, session_type="ext:redis", session_url=server.url)).backend
        redis.Redis(port=server.port).set(raw_key(server, RECORD), payload, ex=600)
        assert beaker.read_record(RECORD) is None
    finally:
        server.stop()


@pytest.mark.parametrize("record", ["tokens", "session"])
@pytest.mark.parametrize("plant", [
    pytest.param(lambda client, key: client.sadd(key, "member"), id="set"),
    pytest.param(lambda client, key: client.rpush(key, "item"), id="list"),
    pytest.param(lambda client, key: client.hset(key, "field", "value"), id="hash"),
])
def test_a_redis_record_of_another_type_is_no_record_never_a_500(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, record: str,
    plant: Callable[[Any, str], Any], caplog: pytest.LogCaptureFixture,
) -> None:
    """Someone able to write to the Redis replaces a session's token (or session) record by a set, a list
    or a hash: GET answers WRONGTYPE, which must read as no record (the user keeps the session, without
    tokens), not as an exception that fails every request of the session with a 500 and a traceback."""
    from sso_middleware._session.state import TOKENS_PREFIX

    server = StoreServer("redis").start()
    try:
        middleware = make_middleware(session_type=server.session_type, session_url=server.url,
                                     keep_access_token=True)
        browser = browser_for(middleware)
        sign_in(browser, provider)
        record_id = (TOKENS_PREFIX if record == "tokens" else "") + session_id(browser)
        client = redis.Redis(port=server.port)
        key = raw_key(server, record_id)
        assert client.delete(key) == 1
        plant(client, key)
        response = browser.get("/page", expect_errors=True)
        assert response.status_int == 200, response
        assert response.json["remote_user"] == ("alice" if record == "tokens" else None)
        no_traceback(caplog)
    finally:
        server.stop()


def test_file_records_are_private_whatever_the_umask(settings: dict[str, Any], tmp_path: Path) -> None:
    """Session and token records hold tokens: 0600 when created, updated or created in place, and never
    written through a link planted at the temporary file's name."""
    from sso_middleware import SSOConfig
    from sso_middleware._session.state import SessionStore

    store = SessionStore(SSOConfig(**{**settings, "session_data_dir": str(tmp_path / "open")}))
    beaker = store.backend
    assert beaker is not None
    path = os.path.join(beaker.options["data_dir"], "container_file", RECORD[0], RECORD[:2], RECORD + ".cache")
    old_umask = os.umask(0o002)
    try:
        assert beaker.write_record(RECORD, "first", 600)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        target = tmp_path / "elsewhere"
        target.write_text("untouched")
        os.symlink(target, path + ".temp")
        assert beaker.write_record(RECORD, "second", 600, existing=True)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert target.read_text() == "untouched"
        session = beaker.session("")
        session["user"] = {"sub": "alice"}
        assert beaker.save_session(session)  # created in place
        session_path = session.namespace.file
        assert stat.S_IMODE(os.stat(session_path).st_mode) == 0o600
        session["last_seen"] = 1.0
        assert beaker.save_session(session, existing=True)  # replaced through a temporary file
        assert stat.S_IMODE(os.stat(session_path).st_mode) == 0o600
    finally:
        os.umask(old_umask)


def test_a_file_update_waiting_on_a_removal_does_not_recreate_the_record(settings: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    """The "never recreate" check runs under the record's write lock, the lock a removal holds: an update that
    found the record, then waited while a sign-out deleted it, writes nothing."""
    import threading

    from sso_middleware import SSOConfig
    from sso_middleware._session.state import SessionStore

    store = SessionStore(SSOConfig(**{**settings, "session_data_dir": str(tmp_path / "race")}))
    beaker = store.backend
    assert beaker is not None
    session = beaker.session("")
    session["user"] = {"sub": "alice"}
    assert beaker.save_session(session)
    path = session.namespace.file
    loaded = beaker.session(str(session.request["cookie_out"]).split(";")[0].strip())
    assert not loaded.is_new
    loaded["last_seen"] = 2.0

    remover = beaker.namespace(session.id)
    remover.access_lock.acquire_write_lock()  # a sign-out in progress holds the lock ...
    results: list[bool] = []
    writer = threading.Thread(target=lambda: results.append(beaker.save_session(loaded, existing=True)))
    writer.start()
    writer.join(0.3)
    assert writer.is_alive(), "the update did not wait for the lock"
    os.remove(path)  # ... and deletes the record
    remover.access_lock.release_write_lock()
    writer.join(5)
    assert results == [False]
    assert not os.path.exists(path)


def test_a_cookie_session_is_not_encrypted_again_to_be_read(settings: dict[str, Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a cookie session decrypts it; encrypting is for saving (Beaker would do both on every load)."""
    from sso_middleware import SSOConfig
    from sso_middleware._session.state import SessionStore
    from sso_middleware.stores import LazyCookieSession

    store = SessionStore(SSOConfig(**{**settings, "session_type": "cookie"}))
    beaker = store.backend
    assert beaker is not None
    session = beaker.session("")
    session["user"] = {"sub": "alice"}
    assert beaker.save_session(session)
    header = str(session.request["cookie_out"]).split(";")[0].strip()

    encryptions: list[int] = []
    original = LazyCookieSession._encrypt_data
    monkeypatch.setattr(LazyCookieSession, "_encrypt_data",
                        lambda self, *args: encryptions.append(1) or original(self, *args))
    loaded = beaker.session(header)
    assert not loaded.is_new and loaded["user"] == {"sub": "alice"}
    assert encryptions == []
    loaded["last_seen"] = 1.0
    assert beaker.save_session(loaded, existing=True)
    assert encryptions == [1]
    assert str(loaded.request["cookie_out"]).strip().startswith(store.cookie_name + "=")


def test_a_file_index_shared_with_another_application_keeps_its_entries(settings: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    """Two applications (other client ids, one secret) sharing one session folder share its index files
    (``sso-index-<hash of sid or sub>``), each reading only the lines sealed for it.  When the provider's
    back-channel logout reaches one of them first, trimming its own ids from the index must not drop the
    other's lines, or the other's logout, a moment later, would end nothing: its sessions would survive."""
    from sso_middleware._session.state import SessionStore

    shared = {**settings, "session_data_dir": str(tmp_path / "shared")}
    one = SessionStore(SSOConfig(**shared)).backend
    other = SessionStore(SSOConfig(**{**shared, "client_id": "another-client"})).backend
    assert one is not None and other is not None
    index = index_key("sid:provider-session-1")
    one.index_add(index, "session-of-one", 600)
    other.index_add(index, "session-of-other", 600)
    assert end_index(other, index) == ["session-of-other"]
    assert end_index(one, index) == ["session-of-one"], "the other application's logout dropped our index entries"
    assert end_index(one, index) == [] and end_index(other, index) == []


def test_a_huge_redis_record_is_refused_without_reading_it_whole(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, caplog: pytest.LogCaptureFixture,
) -> None:
    """A string of many MiB planted under a session's key (Redis allows 512 MiB) is refused by its size;
    at most the size limit (and one byte) of it may cross into the process, not the whole value on every
    request of that session -- a few concurrent requests would otherwise run a worker out of memory."""
    import tracemalloc

    from sso_middleware._sealing import MAX_RECORD_BYTES

    server = StoreServer("redis").start()
    try:
        browser = browser_for(make_middleware(session_type=server.session_type, session_url=server.url))
        sign_in(browser, provider)
        redis.Redis(port=server.port).set(raw_key(server, session_id(browser)), b"1." + b"A" * (32 << 20), ex=600)
        tracemalloc.start()
        try:
            response = browser.get("/page")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert response.status_int == 200 and response.json["remote_user"] is None
        assert peak < 8 * MAX_RECORD_BYTES, f"{peak} bytes held to refuse a planted record"
        no_traceback(caplog)
    finally:
        server.stop()
