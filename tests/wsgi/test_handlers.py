"""The authentication routes, end to end through ``webtest.TestApp`` around the middleware.

Each test plays the browser (a cookie-keeping ``TestApp``) and, through
``provider.authorize``, the user at the provider; the provider's back channel is
the fake transport of :mod:`tests.fakes`, so every call the middleware makes is
recorded in ``provider.calls``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import time
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import webtest

from sso_middleware import SSOMiddleware
from sso_middleware._wsgi.transactions import MAX_TRANSACTIONS
from sso_middleware.testing import Clock

from ..conftest import SESSION_SECRET, browser_for, legacy_app
from ..cookies import SetCookie, summary, tx_name
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider, rsa_key, s256
from ..records import file_container, session_data

CONNECTION = "Username-Password-Authentication"
AUTHORIZE = ISSUER.rstrip("/") + "/authorize"
COOKIE = "__Host-sso_session"

Browser = webtest.TestApp


# -- helpers -------------------------------------------------------------------


def query(url: str) -> dict[str, str]:
    """The query parameters of ``url``; each must appear once."""
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in parsed.values()), parsed
    return {key: values[0] for key, values in parsed.items()}


def failure_code(response: webtest.TestResponse) -> str:
    """The error code of a redirect to the failure page (asserting it is one)."""
    assert response.status_int == 303, response
    parts = urlsplit(response.location)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "app2.example", "/auth/failure"), response.location
    return query(response.location)["error"]


def is_authorize(response: webtest.TestResponse) -> bool:
    return response.status_int == 303 and response.location.startswith(AUTHORIZE + "?")


def start_sso(browser: Browser, target: str = "/dashboard", connection: Optional[str] = CONNECTION,
              **extra: str) -> webtest.TestResponse:
    params = {"target_url": target, **extra}
    if connection is not None:
        params["connection"] = connection
    return browser.get("/auth/sso", params)


def sign_in(browser: Browser, provider: FakeProvider, target: str = "/dashboard",
            connection: Optional[str] = CONNECTION, user: str = "alice") -> webtest.TestResponse:
    """A complete, successful silent sign-in; returns the final redirect to the target."""
    response = start_sso(browser, target, connection)
    assert is_authorize(response), response
    response = browser.get(provider.authorize(response.location, user=user))
    assert response.status_int == 303, response
    return response


def drive(browser: Browser, provider: FakeProvider, response: webtest.TestResponse,
          answers: list[dict[str, Any]]) -> tuple[webtest.TestResponse, list[str]]:
    """Follow provider round trips, answering the n-th authorization request with ``answers[n]``.

    Returns the first response that is not a redirect to the provider, and the
    authorization URLs visited.  Running out of answers means the middleware
    looped, which fails the test.
    """
    visited: list[str] = []
    while is_authorize(response):
        assert len(visited) < len(answers), f"redirect loop: {len(visited) + 1} trips to the provider"
        visited.append(response.location)
        response = browser.get(provider.authorize(response.location, **answers[len(visited) - 1]))
    return response, visited


def app_view(browser: Browser) -> dict[str, Any]:
    """What the legacy app sees on a plain page."""
    result: dict[str, Any] = browser.get("/page").json
    return result


def set_cookies(response: webtest.TestResponse) -> list[str]:
    return list(response.headers.getall("Set-Cookie"))


def cookies_set(response: webtest.TestResponse) -> list[tuple[str, str]]:
    """What the response's ``Set-Cookie`` headers do: ``("session" | "tx:<name>", "set" | "expired")``."""
    return summary(set_cookies(response), COOKIE)


def tx(state: str) -> str:
    """``tx:<name>`` of the transaction cookie of ``state`` (as in :func:`cookies_set`)."""
    return "tx:" + tx_name(COOKIE, state)


def tx_cookies(browser: Browser) -> set[str]:
    """The names of the transaction cookies the browser holds."""
    return {name for name in browser.cookies if name.startswith(COOKIE + "_tx_")}


def state_of(response: webtest.TestResponse) -> str:
    return query(response.location)["state"]


def fresh_browser(middleware: SSOMiddleware, cookie: Optional[str] = None) -> Browser:
    """Another browser on the same middleware, optionally holding a given session cookie value."""
    browser = browser_for(middleware)
    if cookie is not None:
        browser.set_cookie(COOKIE, cookie)
    return browser


def stored_sessions(data_dir: str) -> list[dict[str, Any]]:
    """Every session record in Beaker's file store, decoded (JSON inside Beaker's container)."""
    records = []
    for root, _dirs, files in os.walk(os.path.join(data_dir, "container_file")):
        for name in files:
            if name.startswith("sso-index-"):  # back-channel logout index records, not sessions
                continue
            container = file_container(os.path.join(root, name))  # sealed JSON around Beaker's text
            if "session" in container:
                records.append(session_data(container["session"]))
    return records


def unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# -- /auth/sso -----------------------------------------------------------------


def test_sso_requires_target_url(browser: Browser, provider: FakeProvider) -> None:
    assert failure_code(browser.get("/auth/sso", {"connection": CONNECTION})) == "missing_target_url"
    assert failure_code(browser.get("/auth/sso", {"connection": CONNECTION, "target_url": ""})) == "missing_target_url"
    assert provider.calls == []


def test_sso_requires_connection(browser: Browser, provider: FakeProvider) -> None:
    assert failure_code(start_sso(browser, connection=None)) == "missing_connection"
    assert failure_code(start_sso(browser, connection="")) == "missing_connection"
    assert provider.calls == []
    assert COOKIE not in browser.cookies


def test_sso_uses_default_connection_when_none_is_given(make_browser: Callable[..., Browser],
                                                        provider: FakeProvider) -> None:
    browser = make_browser(default_connection="google-oauth2")
    response = start_sso(browser, connection=None)
    assert is_authorize(response)
    assert query(response.location)["connection"] == "google-oauth2"
    # An explicit connection still wins over the default.
    assert query(start_sso(browser, connection="github").location)["connection"] == "github"


@pytest.mark.parametrize(
    ("connection", "code"),
    [
        pytest.param("github", "connection_not_allowed", id="not-listed"),
        pytest.param("username-password-authentication", "connection_not_allowed", id="other-case"),
        pytest.param("Username-Password-Authentication ", "invalid_connection", id="trailing-space"),
        pytest.param("bad connection", "invalid_connection", id="space-inside"),
        pytest.param("x" * 129, "invalid_connection", id="too-long"),
    ],
)
def test_sso_refuses_connections_outside_allowed_connections(
    make_browser: Callable[..., Browser], provider: FakeProvider, connection: str, code: str
) -> None:
    browser = make_browser(allowed_connections=[CONNECTION, "google-oauth2"])
    assert failure_code(start_sso(browser, connection=connection)) == code
    assert provider.calls == []
    assert is_authorize(start_sso(browser, connection="google-oauth2"))


OPEN_REDIRECT_PROBES = [
    pytest.param("//evil.example/x", id="protocol-relative"),
    pytest.param("///evil.example/x", id="triple-slash"),
    pytest.param("/\\evil.example/x", id="slash-backslash"),
    pytest.param("\\\\evil.example/x", id="double-backslash"),
    pytest.param("https://evil.example/x", id="other-origin"),
    pytest.param("http://app2.example/x", id="own-host-other-scheme"),
    pytest.param("https://app2.example:8443/x", id="own-host-other-port"),
    pytest.param("https://app2.example.evil.example/x", id="suffix-host"),
    pytest.param("https://app2.example@evil.example/x", id="userinfo"),
    pytest.param("https://evil.example\\@app2.example/x", id="backslash-userinfo"),
    pytest.param("https:evil.example/x", id="scheme-no-slashes"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("JaVaScRiPt:alert(1)", id="javascript-mixed-case"),
    pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
    pytest.param("ftp://app2.example/x", id="ftp"),
    pytest.param("dashboard", id="relative-no-slash"),
    pytest.param("/x\r\nLocation: https://evil.example", id="crlf"),
    pytest.param("/x\nSet-Cookie: a=b", id="lf"),
    pytest.param("/\t/evil.example", id="tab"),
    pytest.param(" /x", id="leading-space"),
    pytest.param("/x\x00", id="nul"),
    pytest.param("/%2f%2fevil.example", id="encoded-slashes"),
    pytest.param("/%2F%2Fevil.example", id="encoded-slashes-upper"),
    pytest.param("/%5cevil.example", id="encoded-backslash"),
    pytest.param("/%252f%252fevil.example", id="double-encoded-slashes"),
    pytest.param("/x%0d%0aSet-Cookie:a=b", id="encoded-crlf"),
    pytest.param("/\u2215\u2215evil.example", id="unicode-slashes"),
    pytest.param("/caf\u00e9", id="non-ascii"),
    pytest.param("/" + "a" * 3000, id="too-long"),
]


@pytest.mark.parametrize("target", OPEN_REDIRECT_PROBES)
def test_sso_refuses_unsafe_target_urls(browser: Browser, provider: FakeProvider, target: str) -> None:
    response = start_sso(browser, target=target)
    assert failure_code(response) == "invalid_target_url"
    assert provider.calls == []
    assert COOKIE not in browser.cookies


@pytest.mark.parametrize("target", OPEN_REDIRECT_PROBES)
def test_login_refuses_unsafe_target_urls(browser: Browser, target: str) -> None:
    assert failure_code(browser.get("/auth/login", {"target_url": target})) == "invalid_target_url"


@pytest.mark.parametrize(
    ("target", "location"),
    [
        pytest.param("/dashboard", "https://app2.example/dashboard", id="path"),
        pytest.param("/a/b?c=d&e=f#frag", "https://app2.example/a/b?c=d&e=f#frag", id="query-fragment"),
        pytest.param("https://app2.example/x", "https://app2.example/x", id="own-origin"),
        pytest.param("https://app1.example/spa", "https://app1.example/spa", id="allowed-origin"),
    ],
)
def test_sso_accepts_safe_targets_and_lands_on_them(
    make_browser: Callable[..., Browser], provider: FakeProvider, target: str, location: str
) -> None:
    browser = make_browser(allowed_redirect_origins=["https://app1.example"])
    assert sign_in(browser, provider, target=target).location == location


def test_sso_redirects_to_the_provider_with_a_complete_silent_request(browser: Browser,
                                                                      provider: FakeProvider) -> None:
    response = start_sso(browser)
    assert response.status_int == 303
    assert response.headers["Cache-Control"] == "no-store"
    assert is_authorize(response)
    params = query(response.location)
    assert params["connection"] == CONNECTION
    assert params["response_type"] == "code"
    assert params["scope"] == "openid profile email"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == BASE_URL + "/auth/callback"
    assert params["prompt"] == "none"
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 32
    assert len(params["nonce"]) >= 32
    assert params["state"] != params["nonce"]
    assert len(params["code_challenge"]) == 43  # base64url of a SHA-256 digest
    # The verifier is never in the URL; the challenge is S256 of what the token request proves.
    assert "code_verifier" not in params
    assert stored_sessions(browser.app.config.data_dir) == []  # before the callback: nothing stored
    browser.get(provider.authorize(response.location))
    token_request = query("?" + provider.requests_to("/oauth/token")[0].body)
    assert s256(token_request["code_verifier"]) == params["code_challenge"]
    # Starting a sign-in set no session cookie (and stored nothing): the only cookie set is this state's
    # transaction cookie, in which neither the verifier nor the nonce can be read.
    assert cookies_set(response) == [(tx(params["state"]), "set")]
    value = SetCookie.parse(set_cookies(response)[0]).value
    assert len(value) > 100
    for secret in (token_request["code_verifier"], params["nonce"], params["state"]):
        assert secret not in value


def test_each_sign_in_gets_fresh_state_nonce_and_verifier(browser: Browser) -> None:
    first = query(start_sso(browser).location)
    second = query(start_sso(browser).location)
    for name in ("state", "nonce", "code_challenge"):
        assert first[name] != second[name]


def test_sso_passes_audience_when_configured(make_browser: Callable[..., Browser]) -> None:
    browser = make_browser(audience="https://api.example/", scope="openid email")
    params = query(start_sso(browser).location)
    assert params["audience"] == "https://api.example/"
    assert params["scope"] == "openid email"


def test_sso_when_signed_in_through_the_same_connection_goes_straight_to_target(
    browser: Browser, provider: FakeProvider
) -> None:
    sign_in(browser, provider)
    calls = len(provider.calls)
    response = start_sso(browser, target="/reports?year=2024")
    assert response.status_int == 303
    assert response.location == "https://app2.example/reports?year=2024"
    assert len(provider.calls) == calls
    assert set_cookies(response) == []


def test_sso_through_another_connection_signs_in_again_and_keeps_the_user_meanwhile(
    browser: Browser, provider: FakeProvider
) -> None:
    sign_in(browser, provider, connection="google-oauth2", user="alice")
    response = start_sso(browser, target="/other", connection=CONNECTION)
    assert is_authorize(response)
    assert query(response.location)["connection"] == CONNECTION
    # Until that sign-in succeeds, the current user stays signed in.
    view = app_view(browser)
    assert (view["remote_user"], view["connection"]) == ("alice", "google-oauth2")
    final = browser.get(provider.authorize(response.location, user="bob"))
    assert final.location == "https://app2.example/other"
    view = app_view(browser)
    assert (view["remote_user"], view["connection"]) == ("bob", CONNECTION)


def test_a_failed_sign_in_through_another_connection_keeps_the_current_user(
    browser: Browser, provider: FakeProvider
) -> None:
    sign_in(browser, provider, connection="google-oauth2")
    response = start_sso(browser, connection=CONNECTION)
    response = browser.get(provider.authorize(response.location, error="access_denied"))
    assert failure_code(response) == "provider_error:access_denied"
    view = app_view(browser)
    assert (view["remote_user"], view["connection"]) == ("alice", "google-oauth2")


def test_sso_without_silent_sso_asks_interactively(make_browser: Callable[..., Browser]) -> None:
    browser = make_browser(silent_sso=False)
    params = query(start_sso(browser).location)
    assert "prompt" not in params
    assert params["connection"] == CONNECTION


# -- silent sign-in fallback ---------------------------------------------------


@pytest.mark.parametrize("error", ["login_required", "consent_required", "interaction_required"])
def test_silent_failure_retries_once_interactively(browser: Browser, provider: FakeProvider, error: str) -> None:
    response = start_sso(browser, target="/dashboard?tab=2")
    final, visited = drive(browser, provider, response, [{"error": error}, {}])
    assert final.location == "https://app2.example/dashboard?tab=2"
    assert len(visited) == 2
    first, retry = query(visited[0]), query(visited[1])
    assert first["prompt"] == "none"
    assert "prompt" not in retry
    assert retry["connection"] == CONNECTION
    assert retry["state"] != first["state"]
    assert retry["nonce"] != first["nonce"]
    assert app_view(browser)["remote_user"] == "alice"


@pytest.mark.parametrize("error", ["login_required", "consent_required", "interaction_required"])
def test_silent_failure_is_retried_only_once(browser: Browser, provider: FakeProvider, error: str) -> None:
    response = start_sso(browser)
    final, visited = drive(browser, provider, response, [{"error": error}, {"error": "login_required"}])
    assert len(visited) == 2
    assert failure_code(final) == "provider_error:login_required"
    assert app_view(browser)["remote_user"] is None


def test_a_silent_failure_answer_to_an_interactive_request_is_not_retried(
    make_browser: Callable[..., Browser], provider: FakeProvider
) -> None:
    browser = make_browser(silent_sso=False)
    final, visited = drive(browser, provider, start_sso(browser), [{"error": "login_required"}])
    assert len(visited) == 1
    assert failure_code(final) == "provider_error:login_required"


def test_silent_failure_with_anonymous_fallback_goes_to_target_without_user(
    make_browser: Callable[..., Browser], provider: FakeProvider
) -> None:
    browser = make_browser(silent_sso_fallback="anonymous")
    final, visited = drive(browser, provider, start_sso(browser, target="/welcome"), [{"error": "login_required"}])
    assert len(visited) == 1
    assert final.status_int == 303
    assert final.location == "https://app2.example/welcome"
    assert app_view(browser)["remote_user"] is None
    assert provider.requests_to("/oauth/token") == []


def test_other_provider_errors_on_a_silent_attempt_are_failures(browser: Browser, provider: FakeProvider) -> None:
    final, visited = drive(browser, provider, start_sso(browser), [{"error": "access_denied"}])
    assert len(visited) == 1
    assert failure_code(final) == "provider_error:access_denied"


# -- /auth/login ---------------------------------------------------------------


def test_login_defaults_target_to_root_and_is_interactive(browser: Browser, provider: FakeProvider) -> None:
    response = browser.get("/auth/login")
    assert is_authorize(response)
    params = query(response.location)
    assert "prompt" not in params
    assert "connection" not in params
    final = browser.get(provider.authorize(response.location))
    assert final.location == "https://app2.example/"
    view = app_view(browser)
    assert view["remote_user"] == "alice"
    assert view["connection"] is None


def test_login_takes_target_and_connection(browser: Browser, provider: FakeProvider) -> None:
    response = browser.get("/auth/login", {"target_url": "/after", "connection": "github"})
    params = query(response.location)
    assert params["connection"] == "github"
    assert "prompt" not in params
    assert browser.get(provider.authorize(response.location)).location == "https://app2.example/after"
    assert app_view(browser)["connection"] == "github"


def test_login_respects_allowed_connections(make_browser: Callable[..., Browser]) -> None:
    browser = make_browser(allowed_connections=[CONNECTION])
    assert failure_code(browser.get("/auth/login", {"connection": "github"})) == "connection_not_allowed"


# -- /auth/callback: state -----------------------------------------------------


def test_callback_without_state_is_refused(browser: Browser, provider: FakeProvider) -> None:
    response = start_sso(browser)
    callback = provider.authorize(response.location, state=None)
    assert failure_code(browser.get(callback)) == "invalid_state"
    assert provider.requests_to("/oauth/token") == []


def test_callback_with_unknown_state_is_refused(browser: Browser, provider: FakeProvider) -> None:
    response = start_sso(browser)
    callback = provider.authorize(response.location, state="forged-state-value")
    assert failure_code(browser.get(callback)) == "invalid_state"
    assert provider.requests_to("/oauth/token") == []
    assert app_view(browser)["remote_user"] is None


def test_callback_without_any_session_creates_none(make_middleware: Callable[..., SSOMiddleware],
                                                   provider: FakeProvider) -> None:
    middleware = make_middleware()
    browser = browser_for(middleware)
    response = browser.get("/auth/callback", {"state": "x", "code": "y", "iss": ISSUER})
    assert failure_code(response) == "invalid_state"
    assert set_cookies(response) == []
    assert stored_sessions(middleware.config.data_dir) == []


def test_callback_replayed_is_refused(browser: Browser, provider: FakeProvider) -> None:
    callback = provider.authorize(start_sso(browser).location)
    assert browser.get(callback).location == "https://app2.example/dashboard"
    assert failure_code(browser.get(callback)) == "invalid_state"
    assert len(provider.requests_to("/oauth/token")) == 1


def test_callback_from_another_browser_session_is_refused(make_middleware: Callable[..., SSOMiddleware],
                                                          provider: FakeProvider) -> None:
    middleware = make_middleware()
    browser_a, browser_b = browser_for(middleware), browser_for(middleware)
    callback = provider.authorize(start_sso(browser_a).location)
    response = browser_b.get(callback)
    assert failure_code(response) == "invalid_state"
    assert provider.requests_to("/oauth/token") == []
    assert app_view(browser_b)["remote_user"] is None
    # Browser B's attempt did not use up browser A's sign-in.
    assert browser_a.get(callback).location == "https://app2.example/dashboard"
    assert app_view(browser_a)["remote_user"] == "alice"


def test_callback_after_the_transaction_expired_is_refused(make_middleware: Callable[..., SSOMiddleware],
                                                           provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(transaction_ttl=300, clock=clock)
    browser = browser_for(middleware)
    callback = provider.authorize(start_sso(browser).location)
    started = time.time()
    clock.now = started + 301
    assert failure_code(browser.get(callback)) == "invalid_state"
    assert provider.requests_to("/oauth/token") == []


def test_callback_just_before_the_transaction_expires_succeeds(make_middleware: Callable[..., SSOMiddleware],
                                                               provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(transaction_ttl=300, clock=clock)
    browser = browser_for(middleware)
    callback = provider.authorize(start_sso(browser).location)
    started = time.time()
    clock.now = started + 240
    assert browser.get(callback).location == "https://app2.example/dashboard"


@pytest.mark.parametrize("order", [pytest.param((0, 1), id="in-order"), pytest.param((1, 0), id="reversed")])
def test_several_tabs_sign_in_at_once(browser: Browser, provider: FakeProvider, order: tuple[int, int]) -> None:
    starts = [start_sso(browser, target="/tab-one"), start_sso(browser, target="/tab-two")]
    callbacks = [provider.authorize(response.location) for response in starts]
    targets = ["https://app2.example/tab-one", "https://app2.example/tab-two"]
    for index in order:
        assert browser.get(callbacks[index]).location == targets[index]
    assert app_view(browser)["remote_user"] == "alice"


@pytest.mark.parametrize("order", [pytest.param((0, 1), id="in-order"), pytest.param((1, 0), id="reversed")])
def test_two_tabs_of_a_fresh_browser_start_at_once(make_middleware: Callable[..., SSOMiddleware],
                                                    provider: FakeProvider, order: tuple[int, int]) -> None:
    """Both tabs' requests leave before either answer arrives, so both carry the same (empty) cookie jar."""
    middleware = make_middleware()
    browser = browser_for(middleware)
    targets = ["/tab-one", "/tab-two"]
    starts = []
    for target in targets:
        assert list(browser.cookies) == []  # nothing from the other tab yet: sent "at once"
        starts.append(start_sso(browser, target=target))
        browser.cookiejar.clear()
    # Then both answers arrive; the browser keeps both cookies (each tab's has its own name).
    for start in starts:
        assert cookies_set(start) == [(tx(state_of(start)), "set")]  # no session cookie, no other cookie
        cookie = SetCookie.parse(set_cookies(start)[0])
        browser.set_cookie(cookie.name, cookie.value)
    assert len(tx_cookies(browser)) == 2
    assert stored_sessions(middleware.config.data_dir) == []
    callbacks = [provider.authorize(start.location) for start in starts]
    for index in order:
        final = browser.get(callbacks[index])
        assert final.location == "https://app2.example" + targets[index]
        assert (tx(state_of(starts[index])), "expired") in cookies_set(final)
    assert app_view(browser)["remote_user"] == "alice"
    assert tx_cookies(browser) == set()


def test_tabs_beyond_the_cap_lose_the_oldest_sign_ins_only(make_middleware: Callable[..., SSOMiddleware],
                                                           provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(clock=clock)
    browser = browser_for(middleware)
    started = time.time()
    extra = 2
    starts = []
    for tab in range(MAX_TRANSACTIONS + extra):  # one after the other, a second apart
        clock.now = started + tab
        starts.append(start_sso(browser, target=f"/tab-{tab}"))
    clock.now = started + MAX_TRANSACTIONS + extra
    assert tx_cookies(browser) == {tx_name(COOKIE, state_of(start)) for start in starts[extra:]}
    callbacks = [provider.authorize(start.location) for start in starts]
    for tab in reversed(range(MAX_TRANSACTIONS + extra)):  # the newest first: none of them is lost
        response = browser.get(callbacks[tab])
        if tab < extra:
            assert failure_code(response) == "invalid_state"
        else:
            assert response.location == f"https://app2.example/tab-{tab}"
    assert len(provider.requests_to("/oauth/token")) == MAX_TRANSACTIONS
    assert app_view(browser)["remote_user"] == "alice"


def test_a_silent_retry_at_the_cap_costs_no_other_tab_its_sign_in(make_middleware: Callable[..., SSOMiddleware],
                                                                  provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(clock=clock)
    browser = browser_for(middleware)
    started = time.time()
    starts = []
    for tab in range(MAX_TRANSACTIONS):
        clock.now = started + tab
        starts.append(start_sso(browser, target=f"/tab-{tab}"))
    clock.now = started + MAX_TRANSACTIONS
    # A tab that is not the oldest learns that the user must sign in interactively: it retries.
    retry = browser.get(provider.authorize(starts[3].location, error="login_required"))
    assert is_authorize(retry) and "prompt" not in query(retry.location)
    assert sorted(cookies_set(retry)) == sorted([(tx(state_of(starts[3])), "expired"), (tx(state_of(retry)), "set")])
    assert len(tx_cookies(browser)) == MAX_TRANSACTIONS
    for tab in (0, 1, 2, 4, 5):
        assert browser.get(provider.authorize(starts[tab].location)).location == f"https://app2.example/tab-{tab}"
    assert browser.get(provider.authorize(retry.location)).location == "https://app2.example/tab-3"


# -- attacks on the transaction cookies (issue 13, items 6, 12, 17) -----------------


def jar_header(browser: Browser) -> str:
    """The ``Cookie`` header this browser sends to the callback (every cookie it holds for the host)."""
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in browser.cookiejar)


def the_tx_cookie(browser: Browser) -> tuple[str, str]:
    (name,) = tx_cookies(browser) or {name for name in browser.cookies if "_tx_" in name}
    return name, browser.cookies[name]


def renamed_for(name: str, state: str) -> str:
    """A transaction cookie name moved to another state: the last 16 hex digits are sha256(state)'s."""
    return name[:-16] + hashlib.sha256(state.encode()).hexdigest()[:16]


def test_a_login_bomb_keeps_the_cookie_header_small_and_the_newest_sign_in_works(
        make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    """Item 6: a cross-site page re-points a popup at /auth/login with long targets, again and again.

    Each sign-in cookie with a 2 KB target is about 3 KB; kept six at a time, they made a ~20 KB
    Cookie header that gunicorn, nginx and Apache refuse (431) for every request of that browser.
    """
    clock = Clock()
    middleware = make_middleware(clock=clock)
    browser = browser_for(middleware)
    started = time.time()
    long_target = "/search?q=" + "a" * 2030
    for attempt in range(20):
        clock.now = started + attempt
        response = browser.get("/auth/login", {"target_url": f"{long_target}{attempt:02d}"})
        assert is_authorize(response), response
        assert len(jar_header(browser)) <= 4096, (attempt, len(jar_header(browser)))
    clock.now = started + 30
    mine = start_sso(browser, target="/mine")  # the user's own sign-in, after the bomb
    assert len(jar_header(browser)) <= 4096
    assert browser.get(provider.authorize(mine.location)).location == "https://app2.example/mine"
    assert app_view(browser)["remote_user"] == "alice"


@pytest.mark.parametrize("state", ["\u00e9" * 43, "state-caf\u00e9-" + "x" * 31, "\u202e" + "a" * 42,
                                   "\U0001f600" * 11])
def test_a_non_ascii_state_is_invalid_state_not_a_500(browser: Browser, provider: FakeProvider, state: str) -> None:
    """Item 12: a genuine transaction cookie renamed for a non-ASCII state made compare_digest raise TypeError."""
    started = start_sso(browser)
    name, value = the_tx_cookie(browser)
    browser.set_cookie(renamed_for(name, state), value)
    callback = query(provider.authorize(started.location))
    response = browser.get("/auth/callback", {**callback, "state": state}, expect_errors=True)
    assert failure_code(response) == "invalid_state"
    assert provider.requests_to("/oauth/token") == []
    assert browser.get(provider.authorize(started.location)).location == "https://app2.example/dashboard"


@pytest.mark.parametrize("state", ["", "short", "a" * 42, "a" * 44, "a" * 42 + "=", "a" * 42 + ".",
                                   "a b" + "c" * 40, "a" * 5000])
def test_a_state_of_another_shape_than_ours_is_invalid_state(browser: Browser, provider: FakeProvider,
                                                             state: str) -> None:
    started = start_sso(browser)
    callback = query(provider.authorize(started.location))
    assert failure_code(browser.get("/auth/callback", {**callback, "state": state})) == "invalid_state"
    assert provider.requests_to("/oauth/token") == []


def test_a_transaction_cookie_planted_without_the_host_prefix_is_not_honoured(
        make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    """Item 17: login CSRF from a sibling subdomain when cookie_domain is set.

    The attacker starts a sign-in in their own browser, signs in at the provider as themselves and
    keeps the callback URL; a sibling subdomain they control plants their transaction cookie in the
    victim's browser (it can set any name except __Host- ones), then sends the victim to the callback.
    """
    middleware = make_middleware(cookie_domain="app2.example")

    def attacker_sign_in() -> tuple[str, str, str]:
        attacker = browser_for(middleware)
        started = attacker.get("/auth/login", {"target_url": "/"})
        name, value = the_tx_cookie(attacker)
        return name, value, provider.authorize(started.location, user="bob")

    name, value, callback = attacker_sign_in()
    victim = browser_for(middleware)
    state = query(callback)["state"]
    old_style = "sso_session_tx_" + hashlib.sha256(state.encode()).hexdigest()[:16]
    for planted in {name.removeprefix("__Host-"), old_style}:
        victim.set_cookie(planted, value)
    assert failure_code(victim.get(callback)) == "invalid_state"
    assert app_view(victim)["remote_user"] is None
    # The control: the same cookie under its own (__Host-) name, which only app2.example itself can set.
    name, value, callback = attacker_sign_in()
    assert name.startswith("__Host-")
    control = browser_for(middleware)
    control.set_cookie(name, value)
    assert control.get(callback).location == "https://app2.example/"
    assert app_view(control)["remote_user"] == "bob"


# -- /auth/callback: RFC 9207 iss, provider errors, code -----------------------


@pytest.mark.parametrize(
    "iss",
    [
        pytest.param("https://evil.example/", id="other-issuer"),
        pytest.param("https://op.example", id="no-trailing-slash"),
        pytest.param("", id="empty"),
        pytest.param(None, id="missing-but-advertised"),
    ],
)
def test_callback_checks_the_authorization_response_issuer(browser: Browser, provider: FakeProvider,
                                                           iss: Optional[str]) -> None:
    callback = provider.authorize(start_sso(browser).location, iss=iss)
    assert failure_code(browser.get(callback)) == "issuer_mismatch"
    assert provider.requests_to("/oauth/token") == []
    assert app_view(browser)["remote_user"] is None


def test_callback_without_iss_is_fine_when_the_provider_does_not_advertise_it(
    make_browser: Callable[..., Browser], provider: FakeProvider
) -> None:
    provider.discovery_overrides["authorization_response_iss_parameter_supported"] = False
    browser = make_browser()
    callback = provider.authorize(start_sso(browser).location, iss=None)
    assert browser.get(callback).location == "https://app2.example/dashboard"
    # ... but a wrong one is still refused.
    callback = provider.authorize(start_sso(browser, connection="github").location, iss="https://evil.example/")
    assert failure_code(browser.get(callback)) == "issuer_mismatch"


def test_a_mix_up_error_response_is_refused_on_its_issuer(browser: Browser, provider: FakeProvider) -> None:
    callback = provider.authorize(start_sso(browser).location, error="login_required", iss="https://evil.example/")
    assert failure_code(browser.get(callback)) == "issuer_mismatch"
    assert provider.requests_to("/oauth/token") == []


def test_provider_refusal_is_a_failure(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    browser = make_browser(silent_sso=False)
    callback = provider.authorize(start_sso(browser).location, error="access_denied",
                                  error_description="User cancelled the login")
    response = browser.get(callback)
    assert failure_code(response) == "provider_error:access_denied"
    assert "cancelled" not in response.location
    page = browser.get(response.location, status=401)
    assert "access_denied" in page.text
    assert "cancelled" not in page.text


@pytest.mark.parametrize(
    ("error", "code"),
    [
        pytest.param("<script>alert(1)</script>", "provider_error:scriptalert1script", id="html"),
        pytest.param("x\r\nSet-Cookie: a=b", "provider_error:xSet-Cookieab", id="crlf"),
        pytest.param("bad&error=access_granted", "provider_error:baderroraccess_granted", id="query-injection"),
        pytest.param("\u00e9t\u00e9", "provider_error:t", id="non-ascii"),
        pytest.param("<>\"'", "provider_error:unknown", id="nothing-left"),
        pytest.param("e" * 500, "provider_error:" + "e" * 64, id="long"),
    ],
)
def test_hostile_provider_error_values_are_sanitized(make_browser: Callable[..., Browser], provider: FakeProvider,
                                                    error: str, code: str) -> None:
    browser = make_browser(silent_sso=False)
    response = browser.get(provider.authorize(start_sso(browser).location, error=error))
    assert failure_code(response) == code
    assert set(response.location) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:/.?=_-%")
    page = browser.get(response.location, status=401)
    assert "<script>" not in page.text


def test_callback_without_code_is_refused(browser: Browser, provider: FakeProvider) -> None:
    callback = provider.authorize(start_sso(browser).location, code=None)
    assert failure_code(browser.get(callback)) == "missing_code"
    assert provider.requests_to("/oauth/token") == []


def test_callback_ignores_a_posted_authorization_response(browser: Browser, provider: FakeProvider) -> None:
    """With response_mode = query the callback takes the authorization response from the query string only:
    a POST is refused unread (no form_post was asked for, and auth routes read no body they do not need:
    issue 13 item 3), without spending the sign-in."""
    callback = provider.authorize(start_sso(browser).location)
    response = browser.post("/auth/callback", query(callback))
    assert failure_code(response) == "invalid_request"
    assert app_view(browser)["remote_user"] is None
    browser.get(callback)  # the real (GET) answer still finds its transaction
    assert app_view(browser)["remote_user"] is not None


# -- /auth/callback: tokens ----------------------------------------------------


def expect_no_sign_in(browser: Browser, provider: FakeProvider, middleware: SSOMiddleware, code: str) -> None:
    response = start_sso(browser)
    state = state_of(response)
    assert tx_cookies(browser) == {tx_name(COOKIE, state)}
    response = browser.get(provider.authorize(response.location))
    assert failure_code(response) == code
    # No session cookie and nothing stored; the only cookie header expires this sign-in's transaction (used up).
    assert cookies_set(response) == [(tx(state), "expired")]
    assert COOKIE not in browser.cookies
    assert tx_cookies(browser) == set()
    assert app_view(browser)["remote_user"] is None
    assert stored_sessions(middleware.config.data_dir) == []


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": "another-client"}, id="wrong-aud"),
        pytest.param({"aud": ["another-client", CLIENT_ID]}, id="several-aud-no-azp"),
        pytest.param({"azp": "another-client"}, id="wrong-azp"),
        pytest.param({"nonce": "not-the-nonce"}, id="wrong-nonce"),
        pytest.param({"iss": "https://evil.example/"}, id="wrong-iss"),
        pytest.param({"exp": int(time.time()) - 3600}, id="expired"),
        pytest.param({"iat": int(time.time()) + 3600}, id="issued-in-future"),
        pytest.param({"sub": None}, id="no-sub"),
    ],
)
def test_bad_id_token_claims_sign_nobody_in(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider,
                                            overrides: dict[str, Any]) -> None:
    middleware = make_middleware()
    provider.id_token_overrides = overrides
    expect_no_sign_in(browser_for(middleware), provider, middleware, "invalid_id_token")
    assert provider.requests_to("/userinfo") == []


def test_id_token_without_nonce_is_refused(make_middleware: Callable[..., SSOMiddleware],
                                           provider: FakeProvider) -> None:
    middleware = make_middleware()
    provider.id_token_overrides = {"nonce": None}
    expect_no_sign_in(browser_for(middleware), provider, middleware, "invalid_id_token")
    assert provider.requests_to("/userinfo") == []


def test_id_token_with_a_bad_signature_is_refused(make_middleware: Callable[..., SSOMiddleware],
                                                  provider: FakeProvider) -> None:
    middleware = make_middleware()
    provider.id_token_key = rsa_key("attacker")
    expect_no_sign_in(browser_for(middleware), provider, middleware, "invalid_id_token")
    assert provider.requests_to("/userinfo") == []


def test_id_token_with_alg_none_is_refused(browser: Browser, provider: FakeProvider) -> None:
    started = start_sso(browser)
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "alice", "aud": CLIENT_ID, "exp": now + 300, "iat": now,
              "nonce": query(started.location)["nonce"]}
    header = {"alg": "none", "kid": provider.kid}
    unsigned = b".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=") for part in (header, claims))
    provider.token_response = {"access_token": "at", "token_type": "Bearer", "id_token": unsigned.decode() + "."}
    assert failure_code(browser.get(provider.authorize(started.location))) == "invalid_id_token"
    assert provider.requests_to("/userinfo") == []
    assert app_view(browser)["remote_user"] is None


def test_userinfo_with_another_sub_is_refused(make_middleware: Callable[..., SSOMiddleware],
                                              provider: FakeProvider) -> None:
    middleware = make_middleware()
    provider.userinfo = {"sub": "mallory", "email": "mallory@example.com"}
    expect_no_sign_in(browser_for(middleware), provider, middleware, "userinfo_mismatch")


def test_userinfo_is_fetched_with_the_access_token_as_bearer(browser: Browser, provider: FakeProvider) -> None:
    sign_in(browser, provider)
    (request,) = provider.requests_to("/userinfo")
    assert request.method == "GET"
    assert request.headers["Authorization"].startswith("Bearer at-")
    assert "at-" not in str(request.url)


def test_signed_in_claims_merge_id_token_and_userinfo_without_protocol_claims(browser: Browser,
                                                                             provider: FakeProvider) -> None:
    sign_in(browser, provider)
    userinfo = app_view(browser)["userinfo"]
    assert userinfo["sub"] == "alice"
    assert userinfo["email"] == "alice@example.com"
    assert userinfo["email_verified"] is True  # only in the userinfo response
    for claim in ("nonce", "aud", "iss", "exp", "iat", "sid", "at_hash"):
        assert claim not in userinfo


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        pytest.param(requests.ConnectionError("refused"), "provider_unreachable", 503, id="connection-error"),
        pytest.param(requests.Timeout("slow"), "provider_timeout", 504, id="timeout"),
        pytest.param(500, "provider_unreachable", 503, id="http-500"),
        pytest.param(503, "provider_unreachable", 503, id="http-503"),
    ],
)
def test_token_endpoint_faults_show_the_unavailable_page(make_middleware: Callable[..., SSOMiddleware],
                                                        provider: FakeProvider, fault: Any, code: str,
                                                        status: int) -> None:
    middleware = make_middleware()
    browser = browser_for(middleware)
    provider.fail["/oauth/token"] = fault
    expect_no_sign_in(browser, provider, middleware, code)
    page = browser.get(f"/auth/failure?error={code}", status=status)
    assert "try again later" in page.text


def test_token_endpoint_refusal_is_a_provider_error(browser: Browser, provider: FakeProvider) -> None:
    provider.client_secret = "rotated-secret"
    callback = provider.authorize(start_sso(browser).location)
    assert failure_code(browser.get(callback)) == "provider_error:invalid_client"


def test_userinfo_endpoint_down_is_unreachable(make_middleware: Callable[..., SSOMiddleware],
                                               provider: FakeProvider) -> None:
    middleware = make_middleware()
    provider.fail["/userinfo"] = requests.ConnectionError("down")
    expect_no_sign_in(browser_for(middleware), provider, middleware, "provider_unreachable")


def test_discovery_down_when_starting_is_unreachable(browser: Browser, provider: FakeProvider) -> None:
    provider.fail["/.well-known/openid-configuration"] = requests.ConnectionError("down")
    response = start_sso(browser)
    assert failure_code(response) == "provider_unreachable"
    assert COOKIE not in browser.cookies
    browser.get(response.location, status=503)


def test_client_authenticates_with_basic_by_default(browser: Browser, provider: FakeProvider) -> None:
    sign_in(browser, provider)
    (request,) = provider.requests_to("/oauth/token")
    assert request.method == "POST"
    auth = request.headers["Authorization"]
    assert auth.startswith("Basic ")
    assert base64.b64decode(auth[6:]).decode() == f"{CLIENT_ID}:{CLIENT_SECRET}"
    form = query("?" + request.body)
    assert form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == BASE_URL + "/auth/callback"
    assert "code_verifier" in form
    assert "client_secret" not in form
    assert CLIENT_SECRET not in request.body


def test_client_authenticates_with_post_when_configured(make_browser: Callable[..., Browser],
                                                        provider: FakeProvider) -> None:
    browser = make_browser(token_endpoint_auth_method="client_secret_post")
    sign_in(browser, provider)
    (request,) = provider.requests_to("/oauth/token")
    assert "Authorization" not in request.headers
    form = query("?" + request.body)
    assert (form["client_id"], form["client_secret"]) == (CLIENT_ID, CLIENT_SECRET)
    assert "code_verifier" in form


def test_basic_auth_form_encodes_the_credentials(make_browser: Callable[..., Browser],
                                                 provider: FakeProvider) -> None:
    """RFC 6749 section 2.3.1: client id and secret are form-encoded before the Basic encoding."""
    browser = make_browser(client_secret="p@ss:w/rd+")
    browser.get(provider.authorize(start_sso(browser).location))
    auth = provider.requests_to("/oauth/token")[0].headers["Authorization"]
    assert base64.b64decode(auth[6:]).decode() == f"{CLIENT_ID}:p%40ss%3Aw%2Frd%2B"


# -- session id and cookies ----------------------------------------------------


def test_session_id_is_regenerated_at_sign_in(make_middleware: Callable[..., SSOMiddleware],
                                              provider: FakeProvider) -> None:
    middleware = make_middleware()
    browser = browser_for(middleware)
    response = start_sso(browser)
    assert COOKIE not in browser.cookies  # no session before the sign-in completes
    final = browser.get(provider.authorize(response.location))
    before = browser.cookies[COOKIE]
    assert any(cookie.startswith(f"{COOKIE}={before};") for cookie in set_cookies(final))
    # Signing in again over that session (same user, another connection): a new id.
    final = sign_in(browser, provider, connection="github")
    after = browser.cookies[COOKIE]
    assert any(cookie.startswith(f"{COOKIE}={after};") for cookie in set_cookies(final))
    assert before != after
    assert app_view(browser)["remote_user"] == "alice"
    # The pre-sign-in id is worth nothing now: replaying it is anonymous.
    assert app_view(fresh_browser(middleware, before))["remote_user"] is None
    assert app_view(fresh_browser(middleware, after))["remote_user"] == "alice"


def test_a_planted_session_id_does_not_survive_sign_in(make_middleware: Callable[..., SSOMiddleware],
                                                       provider: FakeProvider) -> None:
    """Session fixation: an attacker's own session cookie planted in the victim's browser."""
    middleware = make_middleware()
    attacker = browser_for(middleware)
    start_sso(attacker)
    assert COOKIE not in attacker.cookies  # starting a sign-in no longer gives anyone a session to plant...
    sign_in(attacker, provider, connection="github", user="bob")  # ...so the attacker plants their own session
    planted = attacker.cookies[COOKIE]
    victim = fresh_browser(middleware, planted)
    assert app_view(victim)["remote_user"] == "bob"
    sign_in(victim, provider)
    assert victim.cookies[COOKIE] != planted
    assert app_view(victim)["remote_user"] == "alice"
    assert app_view(fresh_browser(middleware, planted))["remote_user"] is None


def cookie_attributes(header: str) -> tuple[str, set[str]]:
    name_value, *attributes = (part.strip() for part in header.split(";"))
    return name_value, {attribute.lower() for attribute in attributes}


def test_cookies_are_httponly_samesite_lax_and_secure_on_https(browser: Browser, provider: FakeProvider) -> None:
    started = start_sso(browser)
    state = state_of(started)
    final = browser.get(provider.authorize(started.location))
    assert cookies_set(started) == [(tx(state), "set")]
    assert sorted(cookies_set(final)) == [("session", "set"), (tx(state), "expired")]
    headers = set_cookies(started) + set_cookies(final)
    for header in headers:
        name_value, attributes = cookie_attributes(header)
        assert name_value.startswith(COOKIE)
        assert {"httponly", "samesite=lax", "secure", "path=/"} <= attributes
        assert not any(attribute.startswith("domain=") for attribute in attributes)
        if name_value.startswith(COOKIE + "="):
            # A browser-session cookie: the server enforces the session lifetime.
            assert not any(attribute.startswith(("expires=", "max-age=")) for attribute in attributes)
        else:  # the transaction cookie: it lives transaction_ttl seconds, and the callback expires it
            assert not any(attribute.startswith("expires=") for attribute in attributes)
            assert ("max-age=600" if header in set_cookies(started) else "max-age=0") in attributes


def test_cookie_domain_and_name_settings(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    browser = make_browser(cookie_name="app2_sso", cookie_domain="app2.example")
    started = start_sso(browser)
    (header,) = set_cookies(started)
    name_value, attributes = cookie_attributes(header)
    # The transaction cookie is named after the session cookie, and stays host-only: only the callback reads it.
    assert name_value.startswith(tx_name("app2_sso", state_of(started)) + "=")
    assert not any(attribute.startswith("domain=") for attribute in attributes)
    final = browser.get(provider.authorize(started.location))
    (header,) = [cookie for cookie in set_cookies(final) if cookie.startswith("app2_sso=")]
    _, attributes = cookie_attributes(header)
    assert "domain=app2.example" in attributes


LOOPBACK_ISSUER = "http://127.0.0.1:8999/"
LOOPBACK_BASE = "http://127.0.0.1:8080"


def test_http_loopback_setup_has_no_secure_cookie_and_signs_in(settings: dict[str, Any]) -> None:
    provider = FakeProvider(issuer=LOOPBACK_ISSUER)
    middleware = SSOMiddleware(legacy_app, **{**settings, "issuer": LOOPBACK_ISSUER, "base_url": LOOPBACK_BASE,
                                              "allow_insecure_http": True}, http_transport=provider.transport())
    browser = webtest.TestApp(middleware, extra_environ={"HTTP_HOST": "127.0.0.1:8080"})
    started = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/home"})
    assert started.location.startswith(LOOPBACK_ISSUER + "authorize?")
    assert query(started.location)["redirect_uri"] == LOOPBACK_BASE + "/auth/callback"
    final = browser.get(provider.authorize(started.location))
    assert final.location == LOOPBACK_BASE + "/home"
    for header in set_cookies(started) + set_cookies(final):
        _, attributes = cookie_attributes(header)
        assert {"httponly", "samesite=lax"} <= attributes
        assert "secure" not in attributes
    assert browser.get("/page").json["remote_user"] == "alice"
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


# -- /auth/logout --------------------------------------------------------------


def test_logout_destroys_the_session_and_ends_the_provider_session(make_middleware: Callable[..., SSOMiddleware],
                                                                   provider: FakeProvider) -> None:
    middleware = make_middleware()
    browser = browser_for(middleware)
    sign_in(browser, provider)
    old = browser.cookies[COOKIE]
    response = browser.get("/auth/logout", {"target_url": "/goodbye?x=1"})
    assert response.status_int == 303
    assert response.headers["Cache-Control"] == "no-store"
    location = urlsplit(response.location)
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://op.example/oidc/logout"
    params = query(response.location)
    assert params["post_logout_redirect_uri"] == "https://app2.example/goodbye?x=1"
    assert params["client_id"] == CLIENT_ID
    hint = unverified(params["id_token_hint"])
    assert (hint["sub"], hint["aud"], hint["iss"]) == ("alice", CLIENT_ID, ISSUER)
    # The cookie is expired in the browser and the session is gone server-side.
    assert any(header.startswith(COOKIE + "=") and "expires=" in header.lower() for header in set_cookies(response))
    assert COOKIE not in browser.cookies
    assert app_view(browser)["remote_user"] is None
    assert app_view(fresh_browser(middleware, old))["remote_user"] is None
    assert all("user" not in record for record in stored_sessions(middleware.config.data_dir))


def test_logout_by_post(browser: Browser, provider: FakeProvider) -> None:
    sign_in(browser, provider)
    response = browser.post("/auth/logout?target_url=/bye")
    assert response.location.startswith("https://op.example/oidc/logout?")
    assert app_view(browser)["remote_user"] is None


def test_logout_defaults_target_to_root(browser: Browser, provider: FakeProvider) -> None:
    sign_in(browser, provider)
    params = query(browser.get("/auth/logout").location)
    assert params["post_logout_redirect_uri"] == "https://app2.example/"


def test_logout_to_an_allowed_absolute_target(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    browser = make_browser(allowed_redirect_origins=["https://app1.example"])
    sign_in(browser, provider)
    params = query(browser.get("/auth/logout", {"target_url": "https://app1.example/out"}).location)
    assert params["post_logout_redirect_uri"] == "https://app1.example/out"


def test_logout_without_provider_logout_goes_to_target(make_browser: Callable[..., Browser],
                                                       provider: FakeProvider) -> None:
    browser = make_browser(provider_logout=False)
    sign_in(browser, provider)
    response = browser.get("/auth/logout", {"target_url": "/bye"})
    assert response.location == "https://app2.example/bye"
    assert app_view(browser)["remote_user"] is None


@pytest.mark.parametrize("target", OPEN_REDIRECT_PROBES)
def test_logout_refuses_unsafe_targets(browser: Browser, provider: FakeProvider, target: str) -> None:
    response = browser.get("/auth/logout", {"target_url": target})
    assert failure_code(response) == "invalid_target_url"
    assert provider.calls == []


def test_logout_with_an_unsafe_target_still_signs_out(browser: Browser, provider: FakeProvider) -> None:
    sign_in(browser, provider)
    assert app_view(browser)["remote_user"] == "alice"
    response = browser.get("/auth/logout", {"target_url": "//evil.example/"})
    assert failure_code(response) == "invalid_target_url"
    assert app_view(browser)["remote_user"] is None


def test_anonymous_logout_goes_to_target(browser: Browser, provider: FakeProvider) -> None:
    response = browser.get("/auth/logout", {"target_url": "/bye"})
    assert response.location == "https://app2.example/bye"
    assert provider.calls == []
    assert set_cookies(response) == []


def test_logout_when_the_provider_has_no_end_session_endpoint(make_browser: Callable[..., Browser],
                                                              provider: FakeProvider) -> None:
    provider.end_session = False
    browser = make_browser()
    sign_in(browser, provider)
    assert browser.get("/auth/logout", {"target_url": "/bye"}).location == "https://app2.example/bye"
    assert app_view(browser)["remote_user"] is None


def test_logout_when_the_provider_is_down_still_signs_out_locally(make_middleware: Callable[..., SSOMiddleware],
                                                                  provider: FakeProvider) -> None:
    browser = browser_for(make_middleware())
    sign_in(browser, provider)
    old = browser.cookies[COOKIE]
    provider.fail["/.well-known/openid-configuration"] = requests.ConnectionError("down")
    # Another worker on the same session store, which has not fetched discovery yet.
    other_worker = make_middleware()
    response = fresh_browser(other_worker, old).get("/auth/logout", {"target_url": "/bye"})
    assert response.location == "https://app2.example/bye"
    assert app_view(fresh_browser(other_worker, old))["remote_user"] is None
    assert app_view(browser)["remote_user"] is None


AUTH0_ISSUER = "https://tenant.auth0.com/"


def test_auth0_logout_without_end_session_endpoint_uses_v2_logout(settings: dict[str, Any]) -> None:
    provider = FakeProvider(issuer=AUTH0_ISSUER, end_session=False)
    config = {**settings, "domain": "tenant.auth0.com"}
    del config["issuer"]
    middleware = SSOMiddleware(legacy_app, **config, http_transport=provider.transport())
    browser = browser_for(middleware)
    started = start_sso(browser)
    assert started.location.startswith(AUTH0_ISSUER + "authorize?")
    browser.get(provider.authorize(started.location))
    assert app_view(browser)["remote_user"] == "alice"
    response = browser.get("/auth/logout", {"target_url": "/bye"})
    location = urlsplit(response.location)
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://tenant.auth0.com/v2/logout"
    assert query(response.location) == {"client_id": CLIENT_ID, "returnTo": "https://app2.example/bye"}
    assert app_view(browser)["remote_user"] is None


# -- /auth/failure -------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        pytest.param("missing_target_url", 400, id="missing_target_url"),
        pytest.param("invalid_target_url", 400, id="invalid_target_url"),
        pytest.param("missing_connection", 400, id="missing_connection"),
        pytest.param("connection_not_allowed", 400, id="connection_not_allowed"),
        pytest.param("invalid_state", 400, id="invalid_state"),
        pytest.param("missing_code", 400, id="missing_code"),
        pytest.param("issuer_mismatch", 400, id="issuer_mismatch"),
        pytest.param("invalid_id_token", 401, id="invalid_id_token"),
        pytest.param("userinfo_mismatch", 401, id="userinfo_mismatch"),
        pytest.param("provider_error:access_denied", 401, id="provider_error"),
        pytest.param("provider_error:login_required", 401, id="provider_error-login_required"),
        pytest.param("invalid_token_response", 502, id="invalid_token_response"),
        pytest.param("provider_bad_response", 502, id="provider_bad_response"),
        pytest.param("provider_unreachable", 503, id="provider_unreachable"),
        pytest.param("provider_timeout", 504, id="provider_timeout"),
        pytest.param("no_such_code", 400, id="unknown"),
        pytest.param("", 400, id="empty"),
        pytest.param("provider_error:", 400, id="provider_error-without-detail"),
    ],
)
def test_failure_page_status_by_code(browser: Browser, code: str, status: int) -> None:
    page = browser.get("/auth/failure", {"error": code}, status=status)
    assert page.content_type == "text/html"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "<h1>" in page.text
    assert "Traceback" not in page.text


def test_failure_page_without_error_parameter(browser: Browser) -> None:
    page = browser.get("/auth/failure", status=400)
    assert "Signing in did not succeed" in page.text


def test_unknown_codes_get_the_generic_message(browser: Browser) -> None:
    page = browser.get("/auth/failure", {"error": "made_up"}, status=400)
    assert "Signing in did not succeed" in page.text
    assert "made_up" not in page.text
    assert "<code>unknown_error</code>" in page.text


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("<script>alert(1)</script>", id="script"),
        pytest.param("provider_error:<script>alert(1)</script>", id="provider-script"),
        pytest.param('"><img src=x onerror=alert(1)>', id="attribute-break"),
        pytest.param("provider_error:<b>&amp;</b>", id="entities"),
    ],
)
def test_failure_page_escapes_everything_it_echoes(browser: Browser, code: str) -> None:
    page = browser.get("/auth/failure", {"error": code}, status=(400, 401))
    assert "<script>" not in page.text
    assert "<img" not in page.text
    assert "<b>" not in page.text
    assert "alert" not in page.text  # unrecognised codes are not echoed at all


def test_failure_page_links_home_under_the_mount_prefix(make_browser: Callable[..., Browser]) -> None:
    browser = make_browser(base_url="https://app2.example/app2")
    page = browser.get("/auth/failure", {"error": "invalid_state"}, status=400,
                       extra_environ={"SCRIPT_NAME": "/app2"})
    assert 'href="https://app2.example/app2/"' in page.text


@pytest.mark.parametrize("path", ["/auth/sso?connection=c&target_url=/x", "/auth/login", "/auth/logout",
                                  "/auth/sso?connection=c"])
def test_redirects_never_follow_a_spoofed_host_header(browser: Browser, path: str) -> None:
    response = browser.get(path, extra_environ={"HTTP_HOST": "evil.example"}, status=303)
    assert not urlsplit(response.location).netloc.endswith("evil.example")


def test_failure_page_can_be_left_to_the_app(make_browser: Callable[..., Browser]) -> None:
    browser = make_browser(serve_failure_page=False)
    page = browser.get("/auth/failure", {"error": "invalid_state"})
    assert page.status_int == 200
    assert page.json["path"] == "/auth/failure"
    assert page.json["query"] == "error=invalid_state"
    # Failures still send the browser there, for the app to explain.
    assert failure_code(browser.get("/auth/sso", {"connection": CONNECTION})) == "missing_target_url"


def test_custom_route_paths(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    browser = make_browser(sso_path="/sso", callback_path="/oidc/cb", failure_path="/oops", logout_path="/bye",
                           login_path="/signin")
    response = browser.get("/sso", {"connection": CONNECTION, "target_url": "/t"})
    assert query(response.location)["redirect_uri"] == BASE_URL + "/oidc/cb"
    assert browser.get(provider.authorize(response.location)).location == "https://app2.example/t"
    assert is_authorize(browser.get("/signin"))
    assert browser.get("/auth/sso").json["path"] == "/auth/sso"  # the default paths now belong to the app
    assert urlsplit(browser.get("/sso").location).path == "/oops"
    browser.get("/oops", {"error": "invalid_state"}, status=400)
    assert browser.get("/bye").location.startswith("https://op.example/oidc/logout?")


# -- bad input never becomes a 500 --------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("/auth/sso?target_url=%ff&connection=x", id="sso-bad-utf8-target"),
        pytest.param("/auth/sso?target_url=/x&connection=%ff%fe", id="sso-bad-utf8-connection"),
        pytest.param("/auth/login?target_url=%c3", id="login-bad-utf8"),
        pytest.param("/auth/callback?state=%ff&code=x", id="callback-bad-utf8"),
        pytest.param("/auth/logout?target_url=%ff", id="logout-bad-utf8"),
        pytest.param("/auth/callback?state=" + "x" * 5000, id="callback-long-state"),
        pytest.param("/auth/sso?target_url=/x&connection=a&connection=%00", id="nul-connection"),
    ],
)
def test_malformed_requests_get_a_4xx_not_a_500(browser: Browser, url: str) -> None:
    response = browser.get(url, expect_errors=True)
    if response.status_int == 303:
        code = failure_code(response)
        status = browser.get(response.location, expect_errors=True).status_int
        assert 400 <= status < 500, code
    else:
        assert 400 <= response.status_int < 500, response


def test_failure_page_with_undecodable_error_is_a_4xx(browser: Browser) -> None:
    response = browser.get("/auth/failure?error=%ff", expect_errors=True)
    if response.status_int == 303:
        response = browser.get(response.location, expect_errors=True)
    assert 400 <= response.status_int < 500


def test_posted_callback_with_undecodable_body_is_a_4xx(browser: Browser) -> None:
    response = browser.post("/auth/callback", b"state=%ff&code=%fe",
                            content_type="application/x-www-form-urlencoded", expect_errors=True)
    if response.status_int == 303:
        response = browser.get(response.location, expect_errors=True)
    assert 400 <= response.status_int < 500


# -- nothing secret in the logs ------------------------------------------------


def test_tokens_and_secrets_never_appear_in_logs(make_middleware: Callable[..., SSOMiddleware],
                                                 provider: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    middleware = make_middleware()
    browser = browser_for(middleware)
    secrets = [CLIENT_SECRET, SESSION_SECRET]
    # A failed sign-in (forged signature), a silent retry, a successful one and a logout.
    provider.id_token_key = rsa_key("attacker")
    started = start_sso(browser)
    secrets += [query(started.location)[name] for name in ("state", "nonce")]
    callback = provider.authorize(started.location)
    secrets.append(query(callback)["code"])
    assert failure_code(browser.get(callback)) == "invalid_id_token"
    provider.id_token_key = None
    final, visited = drive(browser, provider, start_sso(browser), [{"error": "login_required"}, {}])
    secrets += [query(url)[name] for url in visited for name in ("state", "nonce")]
    assert final.location == "https://app2.example/dashboard"
    secrets.append(browser.cookies[COOKIE])
    secrets += [query("?" + request.body)["code_verifier"] for request in provider.requests_to("/oauth/token")]
    secrets += [query("?" + request.body)["code"] for request in provider.requests_to("/oauth/token")]
    secrets += list(provider._access_tokens)
    secrets.append(query(browser.get("/auth/logout").location)["id_token_hint"])
    logged = "\n".join(f"{record.name} {record.getMessage()} {record.exc_text or ''}" for record in caplog.records
                       if not record.name.startswith("beaker"))
    assert "sso:" in logged  # the middleware did log what happened
    for secret in secrets:
        assert secret not in logged


# -- hostile requests found in review -------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("multipart/form-data; boundary=XX",
                     b'--XX\r\nContent-Disposition: form-data; name="state"; filename="a.txt"\r\n'
                     b"Content-Type: text/plain\r\n\r\nabc\r\n--XX--\r\n", id="state-as-file"),
        pytest.param("multipart/form-data", b"state=x", id="multipart-without-boundary"),
        pytest.param("application/x-www-form-urlencoded; charset=bogus-xx", b"state=x", id="unknown-charset"),
        pytest.param("application/x-www-form-urlencoded; charset=utf-16", b"state=x", id="utf-16"),
        pytest.param("application/x-www-form-urlencoded", b"state=%ff%fe", id="not-utf-8"),
    ],
)
def test_hostile_callback_posts_get_a_clean_4xx(browser: Browser, content_type: str, body: bytes) -> None:
    response = browser.post("/auth/callback", body, headers={"Content-Type": content_type}, status=303)
    assert failure_code(response) in ("invalid_request", "invalid_state")
    browser.get(response.location, status=400)


def test_a_posted_body_is_never_read_by_the_callback(browser: Browser, provider: FakeProvider) -> None:
    """A multipart body with a file field named error (and an iss) changes nothing: the body is not read
    (response_mode = query refuses any POST to the callback before looking at it)."""
    start = start_sso(browser)
    state = query(start.location)["state"]
    body = (b'--XX\r\nContent-Disposition: form-data; name="error"; filename="e"\r\n\r\nx\r\n'
            b'--XX\r\nContent-Disposition: form-data; name="iss"\r\n\r\n' + provider.issuer.encode()
            + b"\r\n--XX--\r\n")
    response = browser.post(f"/auth/callback?state={state}", body,
                            headers={"Content-Type": "multipart/form-data; boundary=XX"}, status=303)
    assert failure_code(response) == "invalid_request"  # a POST, refused unread (it was issuer_mismatch before)


def test_the_failure_page_shows_no_attacker_prose(browser: Browser) -> None:
    page = browser.get("/auth/failure", {"error": "provider_error:Your account is locked. Call +1-555-0100 " * 5},
                       status=401)
    assert "Call" not in page.text and "555" not in page.text
    assert "<code>provider_error</code>" in page.text


def test_logout_of_an_expired_session_still_ends_the_provider_session(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    clock = Clock()
    middleware = make_middleware(clock=clock)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    clock.advance(2 * 86400)
    response = browser.get("/auth/logout", {"target_url": "/bye"})
    assert response.location.startswith("https://op.example/oidc/logout?")
    assert "id_token_hint" in query(response.location)
    assert app_view(browser)["remote_user"] is None


def test_a_token_response_with_malformed_members_is_a_clean_failure(browser: Browser, provider: FakeProvider) -> None:
    start = start_sso(browser)
    provider.token_response = {"access_token": "at", "token_type": "Bearer", "scope": 5,
                               "id_token": provider.make_id_token(nonce=query(start.location)["nonce"])}
    response = browser.get(provider.authorize(start.location), status=303)
    assert failure_code(response) == "invalid_token_response"
    assert app_view(browser)["remote_user"] is None


# -- issue 13 item 3: request bodies are read only by the back-channel route, and only up to a cap ---------

AUTH_ROUTES = ["/auth/sso", "/auth/login", "/auth/callback", "/auth/logout", "/auth/failure",
               "/auth/backchannel-logout"]
MIB_64 = 64 * 1024 * 1024


class Untouchable:
    """A ``wsgi.input`` that records (and refuses) any read: proof that a body was never read."""

    def __init__(self) -> None:
        self.touched = 0

    def read(self, *args: Any) -> bytes:
        self.touched += 1
        raise AssertionError("the request body was read")

    readline = read
    readlines = read

    def __iter__(self) -> Any:
        self.touched += 1
        raise AssertionError("the request body was iterated")


def raw_call(middleware: SSOMiddleware, method: str, path: str, query: str = "", *, body: Any = None,
             length: Optional[str] = None, chunked: bool = False,
             content_type: str = "application/x-www-form-urlencoded") -> tuple[int, dict[str, str], bytes]:
    """One request as a WSGI server hands it over (``body`` is the wsgi.input object)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "app2.example", "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "app2.example", "wsgi.url_scheme": "https", "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "wsgi.input": body if body is not None else io.BytesIO(b""), "CONTENT_TYPE": content_type,
    }
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    if chunked:  # what gunicorn hands over for Transfer-Encoding: chunked: no length, a terminated stream
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, dict(headers)
        return lambda data: None

    content = b"".join(middleware(environ, start_response))
    return int(captured["status"].split()[0]), captured["headers"], content


@pytest.mark.parametrize("path", AUTH_ROUTES)
@pytest.mark.parametrize(("length", "chunked"), [
    pytest.param(str(MIB_64), False, id="64MiB"),
    pytest.param("65537", False, id="one-byte-over"),
    pytest.param(None, True, id="chunked-unsized"),
])
def test_an_oversized_or_unsized_body_to_an_auth_route_is_refused_unread(
    make_middleware: Callable[..., SSOMiddleware], path: str, length: Optional[str], chunked: bool
) -> None:
    middleware = make_middleware()
    body = Untouchable()
    status, headers, content = raw_call(middleware, "POST", path, "target_url=/x", body=body, length=length,
                                        chunked=chunked)
    assert (status, body.touched) == (413, 0), content[:300]
    assert headers["Cache-Control"] == "no-store"
    assert len(content) < 2000
    if path == "/auth/backchannel-logout":
        assert headers["Content-Type"] == "application/json"
        assert json.loads(content)["error"] == "invalid_request"
    else:
        assert headers["Content-Type"].startswith("text/html") and b"too large" in content


@pytest.mark.parametrize("path", AUTH_ROUTES[:-1])
@pytest.mark.parametrize("method", ["POST", "PUT", "GET"])
def test_get_style_routes_never_read_a_body(make_middleware: Callable[..., SSOMiddleware], path: str,
                                            method: str) -> None:
    middleware = make_middleware()
    body = Untouchable()
    status, _headers, content = raw_call(middleware, method, path, "target_url=/x&connection=c", body=body,
                                         length="40")
    assert status < 500 and status != 413, content[:300]
    assert body.touched == 0


def test_login_takes_its_parameters_from_the_query_string_only(browser: Browser) -> None:
    response = browser.post("/auth/login?target_url=/x", {"connection": "github", "target_url": "/y"})
    assert is_authorize(response)
    assert "connection" not in query(response.location)


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", " 12", "99999999999999999999999"])
def test_a_malformed_content_length_is_a_400(make_middleware: Callable[..., SSOMiddleware], length: str) -> None:
    body = Untouchable()
    status, _headers, _content = raw_call(make_middleware(), "POST", "/auth/backchannel-logout", body=body,
                                          length=length)
    assert (status, body.touched) in ((400, 0), (413, 0))


def test_a_back_channel_body_up_to_max_request_body_is_read(make_middleware: Callable[..., SSOMiddleware]) -> None:
    from .test_backchannel import logout_token

    middleware = make_middleware(max_request_body=2048)
    token = f"logout_token={logout_token()}&pad=".encode()
    exact = token + b"x" * (2048 - len(token))
    status, _headers, content = raw_call(middleware, "POST", "/auth/backchannel-logout", body=io.BytesIO(exact),
                                         length=str(len(exact)))
    assert status == 200, content
    over = Untouchable()
    status, _headers, _content = raw_call(middleware, "POST", "/auth/backchannel-logout", body=over,
                                          length=str(len(exact) + 1))
    assert (status, over.touched) == (413, 0)


def test_a_back_channel_body_shorter_than_announced_is_a_400(make_middleware: Callable[..., SSOMiddleware]) -> None:
    from .test_backchannel import logout_token

    sent = f"logout_token={logout_token()}".encode()
    status, _headers, content = raw_call(make_middleware(), "POST", "/auth/backchannel-logout",
                                         body=io.BytesIO(sent), length=str(len(sent) + 100))
    assert status == 400, content


@pytest.mark.parametrize(("content_type", "body"), [
    pytest.param("application/x-www-form-urlencoded", b"logout_token=a&logout_token=b", id="repeated-field"),
    pytest.param("application/json", b'{"logout_token": "a"}', id="json"),
    pytest.param("multipart/form-data; boundary=XX",
                 b'--XX\r\nContent-Disposition: form-data; name="logout_token"\r\n\r\na\r\n--XX--\r\n', id="multipart"),
    pytest.param("application/x-www-form-urlencoded; charset=latin-1", b"logout_token=a", id="latin-1"),
    pytest.param("application/x-www-form-urlencoded", b"logout_token=%ff", id="not-utf-8"),
    pytest.param("application/x-www-form-urlencoded", "logout_token=é".encode(), id="raw-non-ascii"),
])
def test_an_unreadable_back_channel_body_is_a_400(make_middleware: Callable[..., SSOMiddleware], content_type: str,
                                                  body: bytes) -> None:
    status, _headers, content = raw_call(make_middleware(), "POST", "/auth/backchannel-logout",
                                         body=io.BytesIO(body), length=str(len(body)), content_type=content_type)
    assert status == 400, content
    assert json.loads(content)["error"] == "invalid_request"
