"""Shared fixtures: a fake provider transport, a tiny legacy app, and the middleware around it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import webtest

from sso_middleware import SSOMiddleware

from .fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUED_SECRETS, ISSUER, FakeProvider
from .postgres_server import APP_PASSWORD, READER_PASSWORD, PostgresServer
from .store_servers import StoreServer

SESSION_SECRET = "s" * 40

TIERS = ("unit", "wsgi", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the folder it lives in (``pytest -m unit`` runs the fast tier)."""
    for item in items:
        tier = item.path.parent.name
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test module lives in one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(tier)

#: What must never reach a log line: JWTs, bearer headers, session ids (32 hex digits), our secrets.
_SECRET_PATTERNS = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.|Bearer |\b[0-9a-f]{32}\b")
_KNOWN_SECRETS = (CLIENT_SECRET, SESSION_SECRET, "alice-password", "bob-password", "app1-secret", "app2-secret",
                  APP_PASSWORD, READER_PASSWORD)


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def no_secrets_in_logs() -> Iterator[None]:
    """Across the whole suite: no token, code, secret or session id in any sso_middleware log line."""
    recorder = _Recorder()
    recorder.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("sso_middleware")
    logger.addHandler(recorder)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(previous)
    for line in recorder.lines:
        assert not _SECRET_PATTERNS.search(line), f"a secret-looking value was logged: {line!r}"
        assert not any(secret in line for secret in _KNOWN_SECRETS), f"a secret was logged: {line!r}"
        assert not any(secret in line for secret in ISSUED_SECRETS), f"a code or token was logged: {line!r}"


def legacy_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """A legacy WSGI app that shows what the middleware told it."""
    body = json.dumps(
        {
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING"),
            "remote_user": environ.get("REMOTE_USER"),
            "userinfo": environ.get("sso.userinfo"),
            "connection": environ.get("sso.connection"),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def settings(tmp_path: Any) -> dict[str, Any]:
    """Keyword settings for a middleware talking to the fake provider."""
    return {
        "issuer": ISSUER,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "base_url": BASE_URL,
        "session_secret": SESSION_SECRET,
        "session_data_dir": str(tmp_path / "sessions"),
    }


@pytest.fixture
def make_middleware(provider: FakeProvider, settings: dict[str, Any]) -> Callable[..., SSOMiddleware]:
    """Build a middleware over ``legacy_app`` whose provider calls go to ``provider``.

    Keyword arguments are settings, or the constructor's seams (``clock=``, ``http_transport=``).
    """

    def build(app: Any = legacy_app, **overrides: Any) -> SSOMiddleware:
        overrides.setdefault("http_transport", provider.transport())
        return SSOMiddleware(app, **{**settings, **overrides})

    return build


@pytest.fixture
def make_browser(make_middleware: Callable[..., SSOMiddleware]) -> Callable[..., webtest.TestApp]:
    """A cookie-keeping ``webtest.TestApp`` on https://app2.example around a fresh middleware."""

    def build(**overrides: Any) -> webtest.TestApp:
        return browser_for(make_middleware(**overrides))

    return build


def browser_for(middleware: SSOMiddleware) -> webtest.TestApp:
    return webtest.TestApp(
        middleware, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"}
    )


@pytest.fixture
def browser(make_browser: Callable[..., webtest.TestApp]) -> Iterator[webtest.TestApp]:
    yield make_browser()


@pytest.fixture(params=["redis", "memcached"])
def server(request: pytest.FixtureRequest) -> Iterator[StoreServer]:
    """A real Redis or memcached server on a free loopback port, for the shared-store tests."""
    running = StoreServer(request.param).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(params=["redis", "memcached", "postgresql"])
def shared_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A real Redis, memcached or PostgreSQL server (``kind``, ``session_type``, ``url``, ``pause``...).

    For the tests that hold for every shared store; a module makes its ``server`` tests run on
    all three with ``server = shared_server``-style fixture of its own.
    """
    running: Any = PostgresServer() if request.param == "postgresql" else StoreServer(request.param)
    running.start()
    try:
        yield running
    finally:
        running.close()
