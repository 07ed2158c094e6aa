"""Access tokens kept for the application and refreshed before they expire (:mod:`sso_middleware._session.refresh`).

End to end through ``webtest``: the fake provider issues rotating refresh tokens
(``offline_access`` in ``scope``) and short-lived access tokens; the middleware's
clock and the provider's move together (``Clock``), so "due" and "expired" are
reached without sleeping.  Every behaviour is checked on the file store, the
cookie store and a real Redis (:mod:`tests.store_servers`), and what the stores
hold is read back without the middleware (the record files, raw Redis keys, the
decrypted cookie).  Every token the fake provider issues is registered with
``issued()``, so the suite-wide log check proves none is ever logged.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests
import webtest
from beaker.session import CookieSession

from sso_middleware import NoAccessToken, SSOMiddleware, authorization_header
from sso_middleware._session.refresh import GRACE_SECONDS, RETRY_SECONDS
from sso_middleware._wsgi.environ import ACCESS_TOKEN_EXPIRES_KEY, ACCESS_TOKEN_KEY, TOKEN_ERROR_KEY
from sso_middleware.testing import Clock

from ..conftest import SESSION_SECRET, browser_for
from ..fakes import FakeProvider
from ..records import cookie_keys, file_container, redis_key, unsealed
from ..store_servers import StoreServer
from .test_backchannel import logout_token, post_logout

CONNECTION = "Username-Password-Authentication"
COOKIE = "__Host-sso_session"
SCOPE = "openid profile email offline_access"
LIFETIME = 120  # expires_in of every access token; the default refresh_margin is 60
MARGIN = 60

Browser = webtest.TestApp


# -- the application, the clock, the stores -------------------------------------------------


def token_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Shows what the middleware handed over (the token itself too: tests compare it with the provider's)."""
    try:
        header: Optional[str] = authorization_header(environ)["Authorization"]
        header_error: Optional[str] = None
    except NoAccessToken as exc:
        header, header_error = None, str(exc)
    body = json.dumps({
        "remote_user": environ.get("REMOTE_USER"),
        "access_token": environ.get(ACCESS_TOKEN_KEY),
        "expires_at": environ.get(ACCESS_TOKEN_EXPIRES_KEY),
        "token_error": environ.get(TOKEN_ERROR_KEY),
        "keys": sorted(key for key in environ if key.startswith("sso.")),
        "header": header,
        "header_error": header_error,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@dataclass
class Backend:
    kind: str
    server: Optional[StoreServer]
    data_dir: Path

    @property
    def server_side(self) -> bool:
        return self.kind != "cookie"

    def settings(self) -> dict[str, Any]:
        if self.kind == "redis":
            assert self.server is not None
            return {"session_type": "ext:redis", "session_url": self.server.url, "session_store_timeout": 0.5}
        if self.kind == "cookie":
            return {"session_type": "cookie"}
        return {}

    # -- what the store holds, read without the middleware ----------------------------

    def _file(self, record_id: str) -> Path:
        return self.data_dir / "container_file" / record_id[0] / record_id[:2] / f"{record_id}.cache"

    def _redis_key(self, record_id: str) -> str:
        return redis_key(record_id)

    def exists(self, record_id: str) -> bool:
        if self.kind == "file":
            return self._file(record_id).exists()
        assert self.server is not None
        return bool(redis.Redis(port=self.server.port).exists(self._redis_key(record_id)))

    def token_record(self, session_id: str) -> Optional[dict[str, Any]]:
        record_id = "sso-tokens-" + session_id
        if self.kind == "file":
            path = self._file(record_id)
            if not path.exists():
                return None
            record: dict[str, Any] = json.loads(file_container(path)["session"])
            return record
        assert self.server is not None
        raw = redis.Redis(port=self.server.port).get(self._redis_key(record_id))
        return None if raw is None else dict(json.loads(unsealed(raw)))

    def token_records(self) -> list[str]:
        if self.kind == "file":
            return sorted(path.name for path in self.data_dir.rglob("sso-tokens-*"))
        assert self.server is not None
        pattern = redis_key("sso-tokens-*")
        return sorted(key.decode() for key in redis.Redis(port=self.server.port).keys(pattern))

    def tokens_of(self, browser: Browser) -> Optional[dict[str, Any]]:
        """The tokens the store holds for a browser's session."""
        if self.kind == "cookie":
            opened = CookieSession({"cookie": f"{COOKIE}={browser.cookies[COOKIE]}"}, key=COOKIE,
                                   data_serializer="json",
                                   **cookie_keys(SESSION_SECRET))
            tokens = opened.get("tokens")
            return dict(tokens) if tokens is not None else None
        return self.token_record(session_id(browser))


def session_id(browser: Browser) -> str:
    """The session id inside our signed cookie (40 hex characters of HMAC, then the id)."""
    value = browser.cookies[COOKIE]
    assert len(value) > 40
    return value[40:]


@pytest.fixture(params=["file", "cookie", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    server = StoreServer("redis").start() if request.param == "redis" else None
    try:
        yield Backend(request.param, server, tmp_path / "sessions")
    finally:
        if server is not None:
            server.stop()


@pytest.fixture(params=["file", "redis"])
def server_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    server = StoreServer("redis").start() if request.param == "redis" else None
    try:
        yield Backend(request.param, server, tmp_path / "sessions")
    finally:
        if server is not None:
            server.stop()


@pytest.fixture
def clock() -> Clock:
    """One time for the middleware and the provider, standing still from a whole second."""
    return Clock(int(time.time()))


@pytest.fixture
def provider(clock: Clock) -> FakeProvider:
    """The suite's fake provider (it replaces conftest's here), on the middleware's clock, with short-lived tokens."""
    return FakeProvider(clock=clock, expires_in=LIFETIME)


Build = Callable[..., SSOMiddleware]


def builder(make_middleware: Callable[..., SSOMiddleware], backend: Backend, clock: Clock) -> Build:
    def build(**overrides: Any) -> SSOMiddleware:
        settings = {"keep_access_token": True, "scope": SCOPE, **backend.settings(), **overrides}
        return make_middleware(token_app, **settings, clock=clock)

    return build


@pytest.fixture
def build(make_middleware: Callable[..., SSOMiddleware], backend: Backend, clock: Clock) -> Build:
    return builder(make_middleware, backend, clock)


@pytest.fixture
def build_server_side(make_middleware: Callable[..., SSOMiddleware], server_backend: Backend, clock: Clock) -> Build:
    return builder(make_middleware, server_backend, clock)


# -- browsing ---------------------------------------------------------------------------------


def sign_in(browser: Browser, provider: FakeProvider, user: str = "alice", target: str = "/") -> None:
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": target})
    response = browser.get(provider.authorize(response.location, user=user))
    assert response.status_int == 303
    assert urlsplit(response.location).path != "/auth/failure", response.location


def view(browser: Browser, path: str = "/page", **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = browser.get(path, **kwargs).json
    return result


def copy_of(browser: Browser) -> Browser:
    """Another tab (or a stale copy) carrying the browser's session cookie as it is now."""
    other = webtest.TestApp(browser.app, extra_environ=browser.extra_environ)
    other.set_cookie(COOKIE, browser.cookies[COOKIE])
    return other


def latest_access_token(provider: FakeProvider, sub: str = "alice") -> str:
    tokens = [token for token, owner in provider._access_tokens.items() if owner == sub]
    return tokens[-1]


def concurrent_views(browser: Browser, count: int, path: str = "/page") -> list[dict[str, Any]]:
    """``count`` requests of one session at once (each from its own copy of the cookie)."""
    copies = [copy_of(browser) for _ in range(count)]
    barrier = threading.Barrier(count)
    results: list[Optional[dict[str, Any]]] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(10)
            results[index] = view(copies[index], path)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    if errors:
        raise errors[0]
    return [result for result in results if result is not None]


# -- a token for the application --------------------------------------------------------------


def test_the_app_gets_the_access_token_after_sign_in(build: Build, provider: FakeProvider, backend: Backend,
                                                      clock: Clock) -> None:
    browser = browser_for(build())
    sign_in(browser, provider)
    seen = view(browser)
    assert seen["remote_user"] == "alice"
    assert seen["access_token"] == latest_access_token(provider)
    assert seen["expires_at"] == clock.now + LIFETIME
    assert seen["token_error"] is None
    assert seen["header"] == f"Bearer {seen['access_token']}"
    stored = backend.tokens_of(browser)
    assert stored is not None
    assert stored["access_token"] == seen["access_token"]
    assert stored["refresh_token"] == provider.live_refresh_tokens()[0]


def test_without_keep_access_token_nothing_is_kept(build: Build, provider: FakeProvider, backend: Backend) -> None:
    browser = browser_for(build(keep_access_token=False))
    sign_in(browser, provider)
    seen = view(browser)
    assert seen["remote_user"] == "alice"
    assert seen["keys"] == ["sso.connection", "sso.userinfo"]
    assert seen["header_error"] == "no access token"
    assert backend.tokens_of(browser) is None
    if backend.server_side:
        assert backend.token_records() == []


def test_a_token_that_is_not_due_is_not_refreshed(build: Build, provider: FakeProvider, clock: Clock) -> None:
    browser = browser_for(build())
    sign_in(browser, provider)
    first = view(browser)
    clock.advance(LIFETIME - MARGIN - 1)
    again = view(browser)
    assert again["access_token"] == first["access_token"] and again["expires_at"] == first["expires_at"]
    assert provider.refresh_requests == 0


def test_a_due_token_is_refreshed_once(build: Build, provider: FakeProvider, backend: Backend, clock: Clock) -> None:
    browser = browser_for(build())
    sign_in(browser, provider)
    first = view(browser)
    (old_refresh_token,) = provider.live_refresh_tokens()
    clock.advance(LIFETIME - MARGIN)  # exactly refresh_margin left: due
    fresh = view(browser)
    assert provider.refreshes == provider.refresh_requests == 1
    assert fresh["access_token"] == latest_access_token(provider) != first["access_token"]
    assert fresh["expires_at"] == clock.now + LIFETIME
    assert fresh["header"] == f"Bearer {fresh['access_token']}"
    for _ in range(3):  # the new one is used from now on
        assert view(browser)["access_token"] == fresh["access_token"]
    assert provider.refresh_requests == 1
    # The rotated refresh token is what the store holds now.
    (new_refresh_token,) = provider.live_refresh_tokens()
    assert new_refresh_token != old_refresh_token
    stored = backend.tokens_of(browser)
    assert stored is not None
    assert (stored["access_token"], stored["refresh_token"]) == (fresh["access_token"], new_refresh_token)
    # And the next expiry refreshes with it.
    clock.advance(LIFETIME - MARGIN)
    assert view(browser)["access_token"] not in (first["access_token"], fresh["access_token"])
    assert provider.refresh_requests == 2


def test_refresh_margin_zero_refreshes_at_expiry(build: Build, provider: FakeProvider, clock: Clock) -> None:
    browser = browser_for(build(refresh_margin=0))
    sign_in(browser, provider)
    first = view(browser)
    clock.advance(LIFETIME - 1)
    assert view(browser)["access_token"] == first["access_token"]
    clock.advance(1)
    assert view(browser)["access_token"] != first["access_token"]
    assert provider.refresh_requests == 1


def test_a_provider_keeping_the_refresh_token(build: Build, provider: FakeProvider, backend: Backend,
                                             clock: Clock) -> None:
    provider.rotate_refresh_tokens = False
    browser = browser_for(build())
    sign_in(browser, provider)
    (refresh_token,) = provider.live_refresh_tokens()
    for round_ in range(1, 3):
        clock.advance(LIFETIME - MARGIN)
        assert view(browser)["access_token"] == latest_access_token(provider)
        assert provider.refreshes == round_
        stored = backend.tokens_of(browser)
        assert stored is not None and stored["refresh_token"] == refresh_token


def test_a_refreshed_id_token_is_accepted(build: Build, provider: FakeProvider, clock: Clock) -> None:
    provider.refresh_id_token = True
    browser = browser_for(build())
    sign_in(browser, provider)
    clock.advance(LIFETIME - MARGIN)
    seen = view(browser)
    assert seen["remote_user"] == "alice" and seen["access_token"] == latest_access_token(provider)
    assert provider.refreshes == 1


def test_a_forged_refreshed_id_token_signs_out(build: Build, provider: FakeProvider, clock: Clock) -> None:
    """A refresh response whose ID token names someone else is refused, like a refused refresh token."""
    provider.refresh_id_token = True
    provider.refresh_id_token_overrides = {"sub": "bob"}
    browser = browser_for(build())
    sign_in(browser, provider)
    clock.advance(LIFETIME - MARGIN)
    seen = view(browser)
    assert seen["remote_user"] is None and seen["access_token"] is None
    assert view(browser)["remote_user"] is None


def test_a_token_without_expiry_is_never_refreshed(build: Build, provider: FakeProvider, clock: Clock) -> None:
    provider.expires_in = None
    browser = browser_for(build())
    sign_in(browser, provider)
    first = view(browser)
    assert first["access_token"] is not None and first["expires_at"] is None
    clock.advance(86000)
    assert view(browser)["access_token"] == first["access_token"]
    assert provider.refresh_requests == 0


# -- single flight -------------------------------------------------------------------------------


def test_concurrent_requests_refresh_once(build: Build, provider: FakeProvider, backend: Backend,
                                          clock: Clock) -> None:
    middleware = build()
    alice, bob = browser_for(middleware), browser_for(middleware)
    sign_in(alice, provider)
    clock.advance(30)
    sign_in(bob, provider, "bob")
    bob_before = view(bob)
    clock.advance(LIFETIME - MARGIN - 30)  # alice's token is due, bob's is not
    provider.refresh_delay = 0.3  # the refresh is slow: everybody piles up behind it

    results = concurrent_views(alice, 16)

    assert provider.refresh_requests == provider.refreshes == 1
    fresh = latest_access_token(provider, "alice")
    assert len(results) == 16
    for seen in results:
        assert seen["remote_user"] == "alice"
        assert (seen["access_token"], seen["token_error"]) == (fresh, None)
        assert seen["expires_at"] == clock.now + LIFETIME  # valid for more than the margin
    # The second session is untouched.
    bob_after = view(bob)
    assert (bob_after["access_token"], bob_after["expires_at"]) == (bob_before["access_token"],
                                                                      bob_before["expires_at"])
    assert provider.refresh_requests == 1
    # The store holds one current refresh token for alice: the one the provider has live.
    assert len(provider.live_refresh_tokens("alice")) == 1
    if backend.server_side:
        stored = backend.tokens_of(alice)
        assert stored is not None and stored["refresh_token"] == provider.live_refresh_tokens("alice")[0]


def test_concurrent_requests_of_two_sessions_refresh_each_once(build: Build, provider: FakeProvider,
                                                               clock: Clock) -> None:
    middleware = build()
    alice, bob = browser_for(middleware), browser_for(middleware)
    sign_in(alice, provider)
    sign_in(bob, provider, "bob")
    clock.advance(LIFETIME - MARGIN)
    provider.refresh_delay = 0.2
    done: dict[str, list[dict[str, Any]]] = {}
    threads = [threading.Thread(target=lambda b=b, n=n: done.__setitem__(n, concurrent_views(b, 6)))
               for b, n in ((alice, "alice"), (bob, "bob"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert provider.refreshes == 2
    for name in ("alice", "bob"):
        assert {seen["access_token"] for seen in done[name]} == {latest_access_token(provider, name)}


def test_a_stale_cookie_within_the_grace_window_adopts_the_new_token(make_middleware: Callable[..., SSOMiddleware],
                                                                     provider: FakeProvider, clock: Clock,
                                                                     tmp_path: Path) -> None:
    """Cookie store: a request still carrying the replaced refresh token adopts this process's result."""
    build = builder(make_middleware, Backend("cookie", None, tmp_path / "sessions"), clock)
    browser = browser_for(build())
    sign_in(browser, provider)
    stale = copy_of(browser)
    clock.advance(LIFETIME - MARGIN)
    fresh = view(browser)
    assert provider.refresh_requests == 1
    clock.advance(GRACE_SECONDS - 1)
    response = stale.get("/page")
    assert response.json["access_token"] == fresh["access_token"]
    assert response.json["remote_user"] == "alice"
    assert provider.refresh_requests == 1  # adopted, not refreshed again with a used-up refresh token
    assert any(header.startswith(f"{COOKIE}=") for header in response.headers.getall("Set-Cookie"))
    # The stale copy's cookie now carries the new tokens.
    assert Backend("cookie", None, tmp_path).tokens_of(stale) == Backend("cookie", None, tmp_path).tokens_of(browser)


def test_a_stale_cookie_after_the_grace_window_is_refused_by_the_provider(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock, tmp_path: Path
) -> None:
    """Beyond the grace window the stale copy's used-up refresh token is refused: that copy alone is signed out."""
    build = builder(make_middleware, Backend("cookie", None, tmp_path / "sessions"), clock)
    browser = browser_for(build())
    sign_in(browser, provider)
    stale = copy_of(browser)
    clock.advance(LIFETIME - MARGIN)
    view(browser)
    clock.advance(GRACE_SECONDS + 1)
    assert view(stale)["remote_user"] is None
    assert provider.refresh_requests == 2 and provider.refreshes == 1
    assert view(browser)["remote_user"] == "alice"


def test_a_held_lock_past_the_wait_keeps_the_current_token(build: Build, provider: FakeProvider, backend: Backend,
                                                           clock: Clock) -> None:
    """A refresh of this session running elsewhere (the lock held) longer than the wait: the token while valid."""
    from sso_middleware._session.locks import StoreLocks
    from sso_middleware._session.refresh import _fingerprint

    middleware = build()
    middleware.refresher.lock_wait = 0.2
    browser = browser_for(middleware)
    sign_in(browser, provider)
    first = view(browser)
    (refresh_token,) = provider.live_refresh_tokens()
    # Another worker holds the lock (for the cookie store, the lock is this process's own).
    locks = middleware.refresher.locks if backend.kind == "cookie" else StoreLocks(middleware.config)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.hold("refresh-" + _fingerprint(refresh_token), ttl=30, wait=1) as got:
            assert got
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        clock.advance(LIFETIME - MARGIN)
        started = time.monotonic()
        seen = view(browser)
        assert time.monotonic() - started < 2
        assert (seen["access_token"], seen["token_error"]) == (first["access_token"], None)
        clock.advance(MARGIN)  # expired now
        seen = view(browser)
        assert (seen["remote_user"], seen["access_token"], seen["token_error"]) == (
            "alice", None, "temporarily_unavailable")
        assert provider.refresh_requests == 0
    finally:
        release.set()
        holder.join(10)
    assert view(browser)["access_token"] == latest_access_token(provider)
    assert provider.refresh_requests == 1


def test_a_lifetime_within_the_margin_is_refreshed_once_per_expiry(build: Build, provider: FakeProvider,
                                                                   clock: Clock) -> None:
    provider.expires_in = 30
    browser = browser_for(build())
    sign_in(browser, provider)
    clock.advance(20)  # 10 s left: due by any measure
    fresh = view(browser)
    assert provider.refresh_requests == 1
    for _ in range(5):  # the same moment: the token just obtained is not due again
        assert view(browser)["access_token"] == fresh["access_token"]
    assert provider.refresh_requests == 1


def test_waiters_adopt_a_kept_refresh_tokens_result(build_server_side: Build, provider: FakeProvider,
                                                    clock: Clock) -> None:
    provider.rotate_refresh_tokens = False
    provider.expires_in = MARGIN
    browser = browser_for(build_server_side())
    sign_in(browser, provider)
    clock.advance(35)  # 25 s left: due by any measure
    provider.refresh_delay = 0.2
    results = concurrent_views(browser, 6)
    assert provider.refresh_requests == 1
    assert {seen["access_token"] for seen in results} == {latest_access_token(provider)}


# -- the provider refuses ------------------------------------------------------------------------------


def test_a_refused_refresh_signs_out(build: Build, provider: FakeProvider, backend: Backend, clock: Clock) -> None:
    browser = browser_for(build(protected_paths=["/private"]))
    sign_in(browser, provider, target="/private")
    if backend.server_side:
        sid = session_id(browser)
        assert backend.exists(sid) and backend.token_record(sid) is not None
    provider.revoke(sub="alice")
    clock.advance(LIFETIME - MARGIN)
    response = browser.get("/private", headers={"Accept": "text/html"}, status=303)
    parts = urlsplit(response.location)
    assert parts.path == "/auth/login" and parse_qs(parts.query)["target_url"] == ["/private"]
    assert any(header.startswith(f"{COOKIE}=") and "expires=" in header.lower()
               for header in response.headers.getall("Set-Cookie"))
    assert provider.refresh_requests == 1
    if backend.server_side:
        assert not backend.exists(sid)  # the session record...
        assert backend.token_record(sid) is None  # ...and its tokens
        assert backend.token_records() == []
    seen = view(browser)
    assert (seen["remote_user"], seen["access_token"], seen["keys"]) == (None, None, [])
    # An API call is answered 401, not redirected.
    assert browser.get("/private", headers={"Accept": "application/json"}, status=401)
    # Signing in again works and lands on the page: no loop.
    login = browser.get(response.location)
    assert login.location.startswith("https://op.example/authorize?")
    back = browser.get(provider.authorize(login.location))
    assert back.location == "https://app2.example/private"
    seen = view(browser, "/private")
    assert seen["remote_user"] == "alice" and seen["access_token"] == latest_access_token(provider)
    assert provider.refresh_requests == 1


def test_a_refused_refresh_with_keep_session_keeps_the_user_without_a_token(
    build: Build, provider: FakeProvider, backend: Backend, clock: Clock
) -> None:
    browser = browser_for(build(refresh_failure="keep_session"))
    sign_in(browser, provider)
    provider.revoke(sub="alice")
    clock.advance(LIFETIME - MARGIN)
    seen = view(browser)
    assert seen["remote_user"] == "alice"
    assert ACCESS_TOKEN_KEY not in seen["keys"] and ACCESS_TOKEN_EXPIRES_KEY not in seen["keys"]
    assert seen["token_error"] == "refresh_failed"
    assert seen["header_error"] == "no access token for this request (refresh_failed)"
    stored = backend.tokens_of(browser)
    assert stored is None or not stored.get("access_token")  # the dead token is gone from the store
    for _ in range(3):  # no further refresh attempts, and the reason stays
        clock.advance(LIFETIME)
        again = view(browser)
        assert (again["remote_user"], again["access_token"], again["token_error"]) == (
            "alice", None, "refresh_failed")
    assert provider.refresh_requests == 1
    # Signing in again (the login route: the user is still signed in) brings a token back.
    login = browser.get("/auth/login", {"target_url": "/"})
    assert browser.get(provider.authorize(login.location)).location == "https://app2.example/"
    seen = view(browser)
    assert seen["access_token"] == latest_access_token(provider) and seen["token_error"] is None


def test_requests_waiting_on_a_refused_refresh_are_signed_out_too(build_server_side: Build,
                                                                  provider: FakeProvider, clock: Clock) -> None:
    # Due after 55 s (45 s left: within the margin and within half the lifetime), before the idle stamp
    # (written once a minute) could make the waiting requests notice the deleted session on their own.
    provider.expires_in = 100
    browser = browser_for(build_server_side())
    sign_in(browser, provider)
    provider.revoke(sub="alice")
    provider.refresh_delay = 0.3
    clock.advance(55)
    results = concurrent_views(browser, 8)
    assert provider.refresh_requests == 1
    assert [seen["remote_user"] for seen in results] == [None] * 8


def test_waiting_requests_share_a_refusal_with_keep_session(build_server_side: Build, provider: FakeProvider,
                                                            clock: Clock) -> None:
    browser = browser_for(build_server_side(refresh_failure="keep_session"))
    sign_in(browser, provider)
    provider.revoke(sub="alice")
    provider.refresh_delay = 0.3
    clock.advance(LIFETIME - MARGIN)
    results = concurrent_views(browser, 8)
    assert provider.refresh_requests == 1
    for seen in results:
        assert (seen["remote_user"], seen["access_token"], seen["token_error"]) == ("alice", None, "refresh_failed")


# -- the provider is down -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(503, id="503"),
        pytest.param(requests.ConnectionError("down"), id="connection"),
        pytest.param(requests.ReadTimeout("slow"), id="timeout"),
    ],
)
def test_an_unavailable_provider_never_signs_anyone_out(build: Build, provider: FakeProvider, backend: Backend,
                                                        clock: Clock, fault: Any) -> None:
    browser = browser_for(build())
    sign_in(browser, provider)
    first = view(browser)
    provider.fail["/oauth/token"] = fault
    clock.advance(LIFETIME - MARGIN)
    seen = view(browser)  # due, but the provider cannot be had: the current token while it is valid
    assert (seen["remote_user"], seen["access_token"], seen["expires_at"], seen["token_error"]) == (
        "alice", first["access_token"], first["expires_at"], None)
    clock.advance(MARGIN)  # expired
    seen = view(browser)
    assert (seen["remote_user"], seen["access_token"], seen["token_error"]) == (
        "alice", None, "temporarily_unavailable")
    assert seen["header_error"] == "no access token for this request (temporarily_unavailable)"
    assert len(provider.requests_to("/oauth/token")) >= 2 + 1  # the sign-in's, then one try per request
    stored = backend.tokens_of(browser)
    assert stored is not None and stored["access_token"] == first["access_token"]  # nothing was dropped
    # The provider is back: the next request refreshes.
    del provider.fail["/oauth/token"]
    seen = view(browser)
    assert (seen["remote_user"], seen["access_token"], seen["token_error"]) == (
        "alice", latest_access_token(provider), None)
    assert provider.refreshes == 1


def test_a_rate_limited_refresh_keeps_the_session(build: Build, provider: FakeProvider, clock: Clock) -> None:
    from ..fakes import make_response

    browser = browser_for(build())
    sign_in(browser, provider)
    first = view(browser)
    provider.fail["/oauth/token"] = lambda request: make_response(
        request, 429, b'{"error": "too_many_requests"}')
    clock.advance(LIFETIME - MARGIN)
    seen = view(browser)
    assert (seen["remote_user"], seen["access_token"]) == ("alice", first["access_token"])


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"client_secret": "rotated-at-the-provider"}, id="invalid-client"),
        # (without rotation: a rotating provider would have used up the refresh token it answered badly for)
        pytest.param({"refresh_changes": {"token_type": "mac"}, "rotate_refresh_tokens": False},
                     id="malformed-response"),
        pytest.param({"fail": {"/oauth/token": 400}}, id="400-server-error-body"),
    ],
)
def test_failures_that_are_no_verdict_on_the_refresh_token_keep_the_session(
    build: Build, provider: FakeProvider, clock: Clock, fault: dict[str, Any]
) -> None:
    """Only invalid_grant (or a bad refreshed ID token) ends a session; a client or response problem does not."""
    browser = browser_for(build())
    sign_in(browser, provider)
    first = view(browser)
    for name, value in fault.items():
        setattr(provider, name, value)
    clock.advance(LIFETIME - MARGIN)
    seen = view(browser)
    assert (seen["remote_user"], seen["access_token"], seen["token_error"]) == ("alice", first["access_token"], None)
    clock.advance(MARGIN)
    seen = view(browser)
    assert (seen["remote_user"], seen["access_token"], seen["token_error"]) == (
        "alice", None, "temporarily_unavailable")


def test_expired_without_a_refresh_token(build: Build, provider: FakeProvider, backend: Backend,
                                         clock: Clock) -> None:
    browser = browser_for(build(scope="openid profile email"))
    sign_in(browser, provider)
    first = view(browser)
    assert provider.live_refresh_tokens() == []
    stored = backend.tokens_of(browser)
    assert stored is not None and stored["refresh_token"] is None
    clock.advance(LIFETIME - MARGIN)  # due, but there is nothing to refresh with: the token while valid
    assert view(browser)["access_token"] == first["access_token"]
    clock.advance(MARGIN)
    seen = view(browser)
    assert (seen["remote_user"], seen["access_token"], seen["token_error"]) == ("alice", None, "token_expired")
    assert seen["header_error"] == "no access token for this request (token_expired)"
    assert provider.refresh_requests == 0


# -- sign-out, back-channel logout, races -----------------------------------------------------------------


def test_sign_out_deletes_the_token_record(build_server_side: Build, provider: FakeProvider,
                                          server_backend: Backend) -> None:
    middleware = build_server_side()
    browser, other = browser_for(middleware), browser_for(middleware)
    sign_in(browser, provider)
    sign_in(other, provider, "bob")
    sid, other_sid = session_id(browser), session_id(other)
    assert server_backend.token_record(sid) is not None
    browser.get("/auth/logout")
    assert server_backend.token_record(sid) is None and not server_backend.exists(sid)
    assert server_backend.token_record(other_sid) is not None  # only that session's
    assert view(browser)["remote_user"] is None


def test_a_refresh_racing_a_sign_out_never_recreates_the_token_record(
    build_server_side: Build, provider: FakeProvider, server_backend: Backend, clock: Clock
) -> None:
    middleware = build_server_side()
    browser = browser_for(middleware)
    sign_in(browser, provider)
    sid = session_id(browser)
    other_tab = copy_of(browser)
    provider.on_refresh = lambda: other_tab.get("/auth/logout")  # signed out while the refresh is in flight
    clock.advance(LIFETIME - MARGIN)
    seen = view(browser)
    assert provider.refreshes == 1
    assert seen["remote_user"] is None and seen["access_token"] is None
    assert server_backend.token_record(sid) is None and not server_backend.exists(sid)
    assert server_backend.token_records() == []
    assert view(browser)["remote_user"] is None


def test_back_channel_logout_removes_the_token_records(build: Build, provider: FakeProvider,
                                                        backend: Backend) -> None:
    middleware = build()
    browser, other = browser_for(middleware), browser_for(middleware)
    sign_in(browser, provider)
    provider.id_token_overrides["sid"] = "provider-session-2"
    sign_in(other, provider)
    del provider.id_token_overrides["sid"]
    sid = session_id(browser) if backend.server_side else None
    post_logout(browser, logout_token(sid="provider-session-1"))
    if sid is not None:
        assert backend.token_record(sid) is None and not backend.exists(sid)
        assert len(backend.token_records()) == 1  # the other session's
    assert view(browser)["remote_user"] is None
    assert view(other)["access_token"] is not None


# -- the environ the application sees -------------------------------------------------------------------------


FORGED = {ACCESS_TOKEN_KEY: "at-forged", ACCESS_TOKEN_EXPIRES_KEY: 4_000_000_000.0, TOKEN_ERROR_KEY: "forged"}


def test_incoming_token_keys_are_stripped_for_anonymous_requests(build: Build) -> None:
    browser = browser_for(build())
    seen = view(browser, extra_environ=dict(FORGED))
    assert (seen["access_token"], seen["expires_at"], seen["token_error"], seen["keys"]) == (None, None, None, [])
    seen = view(browser, headers={"Cookie": f"{COOKIE}=nonsense"}, extra_environ=dict(FORGED))
    assert seen["keys"] == []


def test_incoming_token_keys_are_replaced_for_signed_in_requests(build: Build, provider: FakeProvider) -> None:
    browser = browser_for(build())
    sign_in(browser, provider)
    seen = view(browser, extra_environ=dict(FORGED))
    assert seen["access_token"] == latest_access_token(provider)
    assert seen["token_error"] is None and TOKEN_ERROR_KEY not in seen["keys"]


def test_incoming_token_keys_are_stripped_without_keep_access_token(build: Build, provider: FakeProvider) -> None:
    browser = browser_for(build(keep_access_token=False))
    sign_in(browser, provider)
    seen = view(browser, extra_environ=dict(FORGED))
    assert seen["remote_user"] == "alice"
    assert seen["keys"] == ["sso.connection", "sso.userinfo"]


def test_a_session_from_before_keep_access_token_has_no_token(make_middleware: Callable[..., SSOMiddleware],
                                                              provider: FakeProvider, backend: Backend,
                                                              clock: Clock) -> None:
    before = builder(make_middleware, backend, clock)(keep_access_token=False)
    browser = browser_for(before)
    sign_in(browser, provider)
    after = builder(make_middleware, backend, clock)()
    later = copy_of(browser)
    later.app = after
    seen = view(later)
    assert (seen["remote_user"], seen["access_token"], seen["token_error"]) == ("alice", None, "no_token")
    assert seen["header_error"] == "no access token for this request (no_token)"


def test_an_unreadable_token_record_is_no_token(make_middleware: Callable[..., SSOMiddleware],
                                                provider: FakeProvider, clock: Clock, tmp_path: Path) -> None:
    server = StoreServer("redis").start()
    try:
        backend = Backend("redis", server, tmp_path / "sessions")
        browser = browser_for(builder(make_middleware, backend, clock)())
        sign_in(browser, provider)
        key = redis_key(f"sso-tokens-{session_id(browser)}")
        redis.Redis(port=server.port).set(key, b"\x80\x05\x95 planted", ex=600)
        response = browser.get("/page", expect_errors=True)
        assert response.status_int == 200
        assert response.json["remote_user"] == "alice" and response.json["access_token"] is None
    finally:
        server.stop()


def test_tokens_never_reach_the_logs(build: Build, provider: FakeProvider, clock: Clock,
                                     caplog: pytest.LogCaptureFixture) -> None:
    """Refresh, refusal and outage all log; none of it carries a token (the autouse check covers every line)."""
    caplog.set_level("DEBUG", logger="sso_middleware")
    browser = browser_for(build(refresh_failure="keep_session"))
    sign_in(browser, provider)
    clock.advance(LIFETIME - MARGIN)
    view(browser)
    provider.fail["/oauth/token"] = 503
    clock.advance(LIFETIME - MARGIN)
    view(browser)
    del provider.fail["/oauth/token"]
    provider.revoke(sub="alice")
    clock.advance(RETRY_SECONDS + 1)  # a failed session is left alone that long while its token serves
    view(browser)
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "refreshed the access token" in messages and "refused" in messages  # the outage is logged too
    assert sum("token refresh" in record.getMessage() for record in caplog.records) >= 2
    secrets = [*provider.consumed_refresh_tokens, *provider._access_tokens]
    assert secrets and not any(secret in messages for secret in secrets)
    assert "rt-" not in messages and "at-" not in messages
    assert all(os.path.sep + "sso-tokens-" not in record.getMessage() for record in caplog.records)


def test_a_failed_refresh_is_not_retried_at_once_while_the_token_serves(build: Build, provider: FakeProvider,
                                                                        clock: Clock) -> None:
    """During an outage a session does not call the provider on every request: once per RETRY_SECONDS."""
    browser = browser_for(build())
    sign_in(browser, provider)
    first = view(browser)
    token_calls = len(provider.requests_to("/oauth/token"))  # the code exchange
    provider.fail["/oauth/token"] = 503
    clock.advance(LIFETIME - MARGIN)
    for _ in range(5):
        seen = view(browser)
        assert (seen["remote_user"], seen["access_token"]) == ("alice", first["access_token"])
    assert len(provider.requests_to("/oauth/token")) == token_calls + 1
    del provider.fail["/oauth/token"]
    clock.advance(RETRY_SECONDS + 1)
    assert view(browser)["access_token"] != first["access_token"]
    assert provider.refreshes == 1


@pytest.mark.parametrize(
    ("overrides", "signed_out"),
    [
        pytest.param({"sub": "bob"}, True, id="about-someone-else-ends-the-session"),
        pytest.param({"exp": 1_000_000_000}, False, id="expired-token-is-the-providers-fault"),
        pytest.param({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, False, id="bad-at_hash-is-the-providers-fault"),
    ],
)
def test_only_a_refreshed_id_token_about_someone_else_ends_the_session(
    build: Build, provider: FakeProvider, clock: Clock, overrides: dict[str, Any], signed_out: bool
) -> None:
    provider.refresh_id_token = True
    browser = browser_for(build())
    sign_in(browser, provider)
    first = view(browser)
    provider.refresh_id_token_overrides = overrides
    clock.advance(LIFETIME - MARGIN)
    seen = view(browser)
    if signed_out:
        assert seen["remote_user"] is None
    else:
        assert (seen["remote_user"], seen["access_token"]) == ("alice", first["access_token"])
