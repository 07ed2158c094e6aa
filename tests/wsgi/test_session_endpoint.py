"""The session endpoint (:mod:`sso_middleware._wsgi.session_endpoint`), in process with the fake provider.

The middleware's clock and the provider's move together (``Clock``), so deadlines and
expiries are exact numbers; every behaviour that touches tokens runs on the file store, the
cookie store and a real Redis (the ``backend`` fixture of :mod:`tests.wsgi.test_refresh`),
and the tokens the store holds are read back without the middleware.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
import webtest

from sso_middleware import ConfigError, SSOMiddleware
from sso_middleware._session.refresh import FORCED_REFRESH_MIN_AGE, RETRY_SECONDS
from sso_middleware.stores.backend import stamp_interval
from sso_middleware.testing import Clock

from ..conftest import browser_for
from ..fakes import BASE_URL, FakeProvider, make_response
from ..store_servers import StoreServer
from .test_refresh import LIFETIME, Backend, Build, builder, copy_of, latest_access_token, sign_in, view

PATH = "/auth/session"
SAME_ORIGIN = {"Origin": BASE_URL, "X-SSO-CSRF": "1"}
IDLE = 3600
ABSOLUTE = 86400


@pytest.fixture
def clock() -> Clock:
    """One time for the middleware and the provider, standing still from a whole second."""
    return Clock(int(time.time()))


@pytest.fixture
def provider(clock: Clock) -> FakeProvider:
    """The suite's fake provider (it replaces conftest's here), on the middleware's clock, with short-lived tokens."""
    return FakeProvider(clock=clock, expires_in=LIFETIME)


@pytest.fixture(params=["file", "cookie", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    server = StoreServer("redis").start() if request.param == "redis" else None
    try:
        yield Backend(request.param, server, tmp_path / "sessions")
    finally:
        if server is not None:
            server.stop()


@pytest.fixture
def build(make_middleware: Callable[..., SSOMiddleware], backend: Backend, clock: Clock) -> Build:
    return builder(make_middleware, backend, clock)


@pytest.fixture
def endpoint(build: Build) -> Callable[..., SSOMiddleware]:
    """A middleware with the session endpoint on, short timeouts, keep_access_token and offline_access."""

    def make(**overrides: Any) -> SSOMiddleware:
        settings = {"session_endpoint_path": PATH, "session_idle_timeout": IDLE, "session_absolute_timeout": ABSOLUTE,
                    **overrides}
        return build(**settings)

    return make


def post(browser: webtest.TestApp, headers: dict[str, str] = SAME_ORIGIN, status: Any = "*") -> webtest.TestResponse:
    return browser.post(PATH, headers=headers, status=status)


def assert_json_headers(response: webtest.TestResponse) -> None:
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Vary"] == "Cookie"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


class Spy:
    """The wrapped app, counting the requests that reach it (the endpoint's must not)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.paths.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app"]


# -- GET ------------------------------------------------------------------------------------


def test_anonymous_get_is_200_not_signed_in_and_never_reaches_the_app(endpoint: Callable[..., SSOMiddleware]) -> None:
    spy = Spy()
    middleware = endpoint()
    middleware.app = spy
    response = browser_for(middleware).get(PATH)
    assert response.status_int == 200 and response.json == {"signed_in": False}
    assert_json_headers(response)
    assert "Set-Cookie" not in response.headers
    assert spy.paths == []


def test_signed_in_get_shows_sub_claims_and_expiries_but_no_token(
        endpoint: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock,
        backend: Backend) -> None:
    browser = browser_for(endpoint())
    signed_in_at = clock.now
    sign_in(browser, provider)
    response = browser.get(PATH)
    assert_json_headers(response)
    document = response.json
    assert document["signed_in"] is True and document["sub"] == "alice"
    assert document["claims"]["sub"] == "alice" and document["claims"]["email"] == "alice@example.com"
    assert document["idle_expires_at"] == signed_in_at + IDLE
    assert document["expires_at"] == signed_in_at + ABSOLUTE
    assert document["access_token_expires_at"] == signed_in_at + LIFETIME
    assert "token_error" not in document
    stored = backend.tokens_of(browser)
    assert stored is not None
    for secret in (stored["access_token"], stored["refresh_token"]):
        assert secret not in response.text
    assert "eyJ" not in response.text  # no JWT at all: no ID token either
    assert set(document) == {"signed_in", "sub", "claims", "idle_expires_at", "expires_at", "access_token_expires_at"}


def test_get_does_not_extend_the_session_so_polling_cannot_keep_it_alive(
        endpoint: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock) -> None:
    browser = browser_for(endpoint())
    signed_in_at = clock.now
    sign_in(browser, provider)
    polls = 0
    while clock.now + stamp_interval(IDLE) < signed_in_at + IDLE:
        clock.advance(stamp_interval(IDLE) + 1)  # each poll is past the stamp interval: a page load would stamp
        assert browser.get(PATH).json["idle_expires_at"] == signed_in_at + IDLE
        polls += 1
    assert polls >= 3
    clock.advance(signed_in_at + IDLE + 1 - clock.now)
    assert browser.get(PATH).json == {"signed_in": False}  # idled out, polled all along
    assert view(browser)["remote_user"] is None


def test_get_without_keep_access_token_has_no_token_members(endpoint: Callable[..., SSOMiddleware],
                                                            provider: FakeProvider) -> None:
    browser = browser_for(endpoint(keep_access_token=False))
    sign_in(browser, provider)
    assert set(browser.get(PATH).json) == {"signed_in", "sub", "claims", "idle_expires_at", "expires_at"}


def test_off_by_default_the_path_is_the_apps(build: Build) -> None:
    spy = Spy()
    middleware = build()
    middleware.app = spy
    assert browser_for(middleware).get(PATH).text == "app"
    assert spy.paths == [PATH]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_are_405_with_allow(endpoint: Callable[..., SSOMiddleware], method: str) -> None:
    spy = Spy()
    middleware = endpoint()
    middleware.app = spy
    response = browser_for(middleware).request(PATH, method=method, status=405, headers=SAME_ORIGIN)
    assert response.headers["Allow"] == "GET, HEAD, POST"
    assert response.json["error"] == "method_not_allowed"
    assert_json_headers(response)
    assert spy.paths == []


def test_head_answers_like_get_without_a_body(endpoint: Callable[..., SSOMiddleware]) -> None:
    response = browser_for(endpoint()).head(PATH)
    assert response.status_int == 200 and response.body == b""
    assert response.headers["Cache-Control"] == "no-store"


# -- POST: the same-origin rule -----------------------------------------------------------


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="nothing"),
    pytest.param({"Origin": BASE_URL}, id="origin-without-csrf-header"),
    pytest.param({"X-SSO-CSRF": "1"}, id="csrf-header-without-origin-or-fetch-metadata"),
    pytest.param({"Origin": "https://evil.example", "X-SSO-CSRF": "1"}, id="foreign-origin"),
    pytest.param({"Origin": "https://sub.app2.example", "X-SSO-CSRF": "1"}, id="sibling-subdomain"),
    pytest.param({"Origin": "http://app2.example", "X-SSO-CSRF": "1"}, id="other-scheme"),
    pytest.param({"Origin": "https://app2.example:8443", "X-SSO-CSRF": "1"}, id="other-port"),
    pytest.param({"Origin": "null", "X-SSO-CSRF": "1"}, id="opaque-origin"),
    pytest.param({"Origin": f"{BASE_URL}, https://evil.example", "X-SSO-CSRF": "1"}, id="two-origins"),
    pytest.param({"Origin": BASE_URL, "X-SSO-CSRF": "true"}, id="csrf-header-wrong-value"),
    pytest.param({"Origin": BASE_URL, "X-SSO-CSRF": "1", "Sec-Fetch-Site": "cross-site"}, id="fetch-metadata-cross"),
    pytest.param({"Origin": BASE_URL, "X-SSO-CSRF": "1", "Sec-Fetch-Site": "same-site"}, id="fetch-metadata-same-site"),
    pytest.param({"Sec-Fetch-Site": "same-site", "X-SSO-CSRF": "1"}, id="no-origin-same-site"),
    pytest.param({"Sec-Fetch-Site": "none", "X-SSO-CSRF": "1"}, id="no-origin-user-initiated"),
    pytest.param({"Sec-Fetch-Site": "same-origin"}, id="fetch-metadata-without-csrf-header"),
])
def test_a_post_not_from_this_sites_pages_is_403_and_changes_nothing(
        endpoint: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock,
        headers: dict[str, str]) -> None:
    browser = browser_for(endpoint())
    signed_in_at = clock.now
    sign_in(browser, provider)
    clock.advance(stamp_interval(IDLE) + 1)
    response = post(browser, headers)
    assert response.status_int == 403 and response.json["error"] == "cross_origin_refused", response.text
    assert_json_headers(response)
    assert "Set-Cookie" not in response.headers
    assert provider.refresh_requests == 0
    assert browser.get(PATH).json["idle_expires_at"] == signed_in_at + IDLE  # not extended


@pytest.mark.parametrize("headers", [
    pytest.param(SAME_ORIGIN, id="origin"),
    pytest.param({"Sec-Fetch-Site": "same-origin", "X-SSO-CSRF": "1"}, id="fetch-metadata-without-origin"),
    pytest.param({**SAME_ORIGIN, "Sec-Fetch-Site": "same-origin"}, id="both"),
])
def test_a_same_origin_post_refreshes_now_and_extends_the_idle_deadline(
        endpoint: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock,
        backend: Backend, headers: dict[str, str]) -> None:
    browser = browser_for(endpoint())
    sign_in(browser, provider)
    before = backend.tokens_of(browser)
    assert before is not None
    clock.advance(10)  # far from due: the refresh is forced
    response = post(browser, headers)
    assert response.status_int == 200, response.text
    assert_json_headers(response)
    document = response.json
    assert provider.refresh_requests == 1
    assert document["access_token_expires_at"] == clock.now + LIFETIME
    assert document["idle_expires_at"] == clock.now + IDLE
    after = backend.tokens_of(browser)
    assert after is not None and after["access_token"] == latest_access_token(provider) != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]  # rotated, and the new one is what the store holds
    assert after["access_token"] not in response.text and after["refresh_token"] not in response.text
    assert view(browser)["access_token"] == after["access_token"]  # the app gets the new token
    assert browser.get(PATH).json["idle_expires_at"] == clock.now + IDLE


def test_a_post_in_another_listed_origin_is_same_origin(endpoint: Callable[..., SSOMiddleware],
                                                         provider: FakeProvider, clock: Clock) -> None:
    middleware = endpoint(base_url=f"{BASE_URL} https://www.app2.example")
    browser = browser_for(middleware)
    sign_in(browser, provider)
    clock.advance(FORCED_REFRESH_MIN_AGE)
    response = post(browser, {"Origin": "https://www.app2.example", "X-SSO-CSRF": "1"})
    assert response.status_int == 200 and provider.refresh_requests == 1


def test_anonymous_post_is_401_login_required(endpoint: Callable[..., SSOMiddleware]) -> None:
    response = post(browser_for(endpoint()))
    assert response.status_int == 401
    assert (response.json["signed_in"], response.json["error"]) == (False, "login_required")


def test_post_without_keep_access_token_only_extends(endpoint: Callable[..., SSOMiddleware], provider: FakeProvider,
                                                     clock: Clock) -> None:
    browser = browser_for(endpoint(keep_access_token=False))
    sign_in(browser, provider)
    clock.advance(30)
    response = post(browser)
    assert response.status_int == 200 and response.json["idle_expires_at"] == clock.now + IDLE
    assert "access_token_expires_at" not in response.json
    assert provider.refresh_requests == 0


def test_post_without_a_refresh_token_is_409(endpoint: Callable[..., SSOMiddleware], provider: FakeProvider,
                                             clock: Clock) -> None:
    browser = browser_for(endpoint(scope="openid profile email"))  # no offline_access: no refresh token
    sign_in(browser, provider)
    assert post(browser).json["error"] == "no_refresh_token"  # also for a young token (nothing to hold back)
    clock.advance(30)
    response = post(browser)
    assert response.status_int == 409 and response.json["error"] == "no_refresh_token"
    assert response.json["signed_in"] is True and response.json["idle_expires_at"] == clock.now + IDLE
    assert provider.refresh_requests == 0


def test_a_post_after_a_due_refresh_refreshes_the_new_tokens(endpoint: Callable[..., SSOMiddleware],
                                                                provider: FakeProvider, clock: Clock,
                                                                backend: Backend) -> None:
    """A due refresh, then a forced one: each replaces the tokens it found, and the store keeps the last."""
    middleware = endpoint()
    browser = browser_for(middleware)
    sign_in(browser, provider)
    clock.advance(LIFETIME - 60)  # due
    fresh = view(browser)["access_token"]
    assert provider.refresh_requests == 1
    clock.advance(FORCED_REFRESH_MIN_AGE)
    response = post(browser)
    assert response.status_int == 200
    assert provider.refresh_requests == 2  # a forced refresh of the new tokens: a new token again
    assert backend.tokens_of(browser)["access_token"] not in (fresh, None)  # type: ignore[index]


def test_a_burst_of_posts_makes_one_provider_call(endpoint: Callable[..., SSOMiddleware], provider: FakeProvider,
                                                  clock: Clock) -> None:
    """Attack: a page's script (or a user's own loop) POSTs as fast as it can; each POST was one token request.

    One signed-in user could so spend the client's rate limit at the provider (Auth0 limits the token endpoint
    per tenant), failing every user's sign-in.  A token at most ``FORCED_REFRESH_MIN_AGE`` seconds old is as
    good as a new one: it is answered, and the provider is not asked again.
    """
    browser = browser_for(endpoint())
    sign_in(browser, provider)
    clock.advance(10)
    answers = [post(browser) for _ in range(20)]
    assert [answer.status_int for answer in answers] == [200] * 20
    assert provider.refresh_requests == 1
    assert {answer.json["access_token_expires_at"] for answer in answers} == {clock.now + LIFETIME}
    clock.advance(FORCED_REFRESH_MIN_AGE)
    assert post(browser).status_int == 200 and provider.refresh_requests == 2


def test_concurrent_posts_and_page_loads_never_reuse_a_refresh_token(
        endpoint: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock, backend: Backend) -> None:
    """The POST takes the refresher's lock: a request that waited finds the new tokens (no second call for them).

    A POST that reads the tokens after a refresh finished asks for a newer token again, so there may be several
    refreshes; but never two with one refresh token (the fake provider refuses a rotated one: a refusal here
    would sign the user out), and every request gets a token the provider issued.
    """
    browser = browser_for(endpoint())
    sign_in(browser, provider)
    clock.advance(LIFETIME - 60)  # due for page loads too
    copies = [copy_of(browser) for _ in range(8)]
    barrier = threading.Barrier(len(copies))
    results: list[Any] = [None] * len(copies)

    def run(index: int) -> None:
        barrier.wait(10)
        if index % 2:
            results[index] = view(copies[index])["access_token"]
        else:
            results[index] = post(copies[index]).json["access_token_expires_at"]

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(copies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert 1 <= provider.refresh_requests <= len(copies) // 2 + 1, results
    assert provider.refreshes == provider.refresh_requests  # none refused: no refresh token was sent twice
    issued = set(provider._access_tokens)
    assert all(results[index] in issued for index in range(1, len(copies), 2)), results
    assert [results[index] for index in range(0, len(copies), 2)] == [clock.now + LIFETIME] * (len(copies) // 2)
    if backend.server_side:  # (a cookie session is the cookie each response sent: this browser's is an old one)
        assert view(browser)["access_token"] == latest_access_token(provider)  # the store kept the last one


# -- POST: the provider and the store fail -----------------------------------------------


@pytest.mark.parametrize(("fault", "status", "code"), [
    pytest.param(503, 503, "provider_unreachable", id="503"),
    pytest.param(requests.ConnectionError("down"), 503, "provider_unreachable", id="connection"),
    pytest.param(requests.ReadTimeout("slow"), 504, "provider_timeout", id="timeout"),
    pytest.param(lambda request: make_response(request, 200, b"<html>"), 502, "provider_bad_response", id="garbage"),
    pytest.param(lambda request: make_response(request, 401, json.dumps({"error": "invalid_client"}).encode()),
                 502, "provider_error:invalid_client", id="client-refused"),
])
def test_provider_trouble_during_a_post_is_a_json_error_and_keeps_the_session(
        endpoint: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock,
        backend: Backend, fault: Any, status: int, code: str) -> None:
    browser = browser_for(endpoint())
    sign_in(browser, provider)
    before = backend.tokens_of(browser)
    provider.fail["/oauth/token"] = fault
    clock.advance(10)
    response = post(browser)
    assert (response.status_int, response.json["error"]) == (status, code), response.text
    assert_json_headers(response)
    assert response.json["signed_in"] is True
    assert response.json["access_token_expires_at"] == clock.now - 10 + LIFETIME  # the current token still serves
    assert backend.tokens_of(browser) == before
    again = post(browser)  # within RETRY_SECONDS: not tried again
    assert (again.status_int, again.json["error"]) == (503, "refresh_unavailable")
    assert again.headers["Retry-After"] == str(int(RETRY_SECONDS))
    del provider.fail["/oauth/token"]
    clock.advance(RETRY_SECONDS + 1)
    assert post(browser).status_int == 200
    assert view(browser)["access_token"] == latest_access_token(provider)


def test_a_refused_refresh_token_signs_out(endpoint: Callable[..., SSOMiddleware], provider: FakeProvider,
                                           clock: Clock) -> None:
    browser = browser_for(endpoint())
    sign_in(browser, provider)
    clock.advance(FORCED_REFRESH_MIN_AGE)
    provider.revoke(sub="alice")
    response = post(browser)
    assert response.status_int == 401
    assert (response.json["signed_in"], response.json["error"]) == (False, "refresh_failed")
    assert browser.get(PATH).json == {"signed_in": False}


def test_a_refused_refresh_token_with_keep_session(endpoint: Callable[..., SSOMiddleware],
                                                   provider: FakeProvider, clock: Clock) -> None:
    browser = browser_for(endpoint(refresh_failure="keep_session"))
    sign_in(browser, provider)
    clock.advance(FORCED_REFRESH_MIN_AGE)
    provider.revoke(sub="alice")
    response = post(browser)
    assert response.status_int == 401 and response.json["error"] == "refresh_failed"
    assert response.json["signed_in"] is True and response.json["token_error"] == "refresh_failed"
    assert response.json["access_token_expires_at"] is None
    again = browser.get(PATH).json
    assert again["signed_in"] is True and again["token_error"] == "refresh_failed"
    assert post(browser).json["error"] == "refresh_failed"  # and no new provider call for it
    assert provider.refresh_requests == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_store_that_goes_down_is_503_json(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider,
                                            method: str) -> None:
    server = StoreServer("redis").start()
    try:
        middleware = make_middleware(session_endpoint_path=PATH, session_type="ext:redis", session_url=server.url,
                                     session_store_timeout=0.3)
        browser = browser_for(middleware)
        sign_in(browser, provider)
        assert browser.get(PATH).json["signed_in"] is True
    finally:
        server.stop()
    response = browser.get(PATH, status="*") if method == "GET" else post(browser)
    assert response.status_int == 503, (response.status_int, response.text)
    assert response.json["error"] == "session_store_unavailable", response.text
    assert_json_headers(response)


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["auth/session", "/auth//session", "/auth/%73ession", "/a b"])
def test_a_bad_path_is_refused_at_build(make_middleware: Callable[..., SSOMiddleware], value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_middleware(session_endpoint_path=value)
    assert caught.value.setting == "session_endpoint_path"


def test_the_path_of_another_route_is_refused(make_middleware: Callable[..., SSOMiddleware]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_middleware(session_endpoint_path="/auth/login")
    assert caught.value.setting == "session_endpoint_path"

