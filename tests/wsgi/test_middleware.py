"""The pass-through path: what the wrapped app sees, what the store sees, and protected paths."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
import webtest

from sso_middleware import ConfigError, SSOConfig, SSOMiddleware, get_userinfo
from sso_middleware.testing import Clock

from ..conftest import browser_for, legacy_app
from ..cookies import tx_name
from ..fakes import FakeProvider
from ..records import file_container, session_data

CONNECTION = "Username-Password-Authentication"
COOKIE = "__Host-sso_session"

Browser = webtest.TestApp


# -- helpers -------------------------------------------------------------------


def sign_in(browser: Browser, provider: FakeProvider, user: str = "alice", target: str = "/") -> None:
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": target})
    response = browser.get(provider.authorize(response.location, user=user))
    assert response.status_int == 303
    assert urlsplit(response.location).path != "/auth/failure", response.location


def files_under(directory: str) -> list[str]:
    return sorted(os.path.join(root, name) for root, _dirs, names in os.walk(directory) for name in names)


def session_files(middleware: SSOMiddleware) -> list[str]:
    """The session records (not the back-channel logout index records)."""
    from sso_middleware.stores import INDEX_PREFIX

    paths = files_under(os.path.join(middleware.config.data_dir, "container_file"))
    return [path for path in paths if not os.path.basename(path).startswith(INDEX_PREFIX)]


def read_record(path: str) -> dict[str, Any]:
    return session_data(file_container(path)["session"])  # sealed JSON around Beaker's text


def the_session_file(middleware: SSOMiddleware) -> str:
    files = [path for path in session_files(middleware) if "user" in read_record(path)]
    assert len(files) == 1, files
    return files[0]


def view(browser: Browser, path: str = "/page", **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = browser.get(path, **kwargs).json
    return result


def login_target(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path.endswith("/auth/login"), location
    (target,) = parse_qs(parts.query)["target_url"]
    return target


@pytest.fixture
def middleware(make_middleware: Callable[..., SSOMiddleware]) -> SSOMiddleware:
    return make_middleware()


# -- the environ the app sees --------------------------------------------------


SPOOFED = {"REMOTE_USER": "admin", "sso.userinfo": {"sub": "admin"}, "sso.connection": "spoofed"}


def test_spoofed_identity_is_removed_from_anonymous_requests(browser: Browser) -> None:
    seen = view(browser, extra_environ=dict(SPOOFED))
    assert (seen["remote_user"], seen["userinfo"], seen["connection"]) == (None, None, None)


def test_spoofed_identity_is_removed_with_an_unknown_session_cookie(browser: Browser) -> None:
    seen = view(browser, headers={"Cookie": f"{COOKIE}=nonsense"}, extra_environ=dict(SPOOFED))
    assert (seen["remote_user"], seen["userinfo"], seen["connection"]) == (None, None, None)


def test_spoofed_identity_is_replaced_for_signed_in_requests(browser: Browser, provider: FakeProvider) -> None:
    sign_in(browser, provider)
    seen = view(browser, extra_environ=dict(SPOOFED))
    assert seen["remote_user"] == "alice"
    assert seen["userinfo"]["sub"] == "alice"
    assert seen["connection"] == CONNECTION


def test_signed_in_request_gets_userinfo_connection_and_remote_user(browser: Browser,
                                                                    provider: FakeProvider) -> None:
    sign_in(browser, provider)
    seen = view(browser, "/some/page?a=1")
    assert seen["path"] == "/some/page"
    assert seen["query"] == "a=1"
    assert seen["remote_user"] == "alice"
    assert seen["connection"] == CONNECTION
    assert seen["userinfo"] == {"sub": "alice", "name": "Alice Example", "email": "alice@example.com",
                                "email_verified": True}


def test_remote_user_claim_setting(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    browser = make_browser(remote_user_claim="email")
    sign_in(browser, provider)
    seen = view(browser)
    assert seen["remote_user"] == "alice@example.com"
    assert seen["userinfo"]["sub"] == "alice"


def test_remote_user_is_absent_when_the_claim_is_missing(make_browser: Callable[..., Browser],
                                                         provider: FakeProvider) -> None:
    browser = make_browser(remote_user_claim="employee_id")
    sign_in(browser, provider)
    seen = view(browser, extra_environ={"REMOTE_USER": "admin"})
    assert seen["remote_user"] is None
    assert seen["userinfo"]["sub"] == "alice"


def test_get_userinfo_reads_the_environ(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    seen: list[Optional[dict[str, Any]]] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(get_userinfo(environ))
        start_response("204 No Content", [])
        return []

    browser = make_browser(app=app)
    browser.get("/x", extra_environ={"sso.userinfo": {"sub": "spoofed"}})
    sign_in(browser, provider)
    browser.get("/x")
    assert seen[0] is None
    assert seen[-1] is not None and seen[-1]["sub"] == "alice"
    assert get_userinfo({"sso.userinfo": "not a dict"}) is None


def test_the_app_gets_a_copy_of_the_claims(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["sso.userinfo"]["sub"] = "changed-by-app"
        start_response("204 No Content", [])
        return []

    browser = make_browser(app=app)
    sign_in(browser, provider)
    browser.get("/x")
    browser.app.app = legacy_app
    assert view(browser)["remote_user"] == "alice"


# -- the hot path: what touches the store --------------------------------------


def test_anonymous_request_without_cookie_touches_no_store(middleware: SSOMiddleware) -> None:
    browser = browser_for(middleware)
    assert files_under(middleware.config.data_dir) == []
    for headers in ({}, {"Cookie": "other=1; theme=dark"}, {"Cookie": "not_sso_session_x=1"}):
        response = browser.get("/page", headers=headers)
        assert response.headers.getall("Set-Cookie") == []
    assert files_under(middleware.config.data_dir) == []


def test_anonymous_protected_request_touches_no_store(make_middleware: Callable[..., SSOMiddleware]) -> None:
    middleware = make_middleware(protected_paths=["/admin"])
    browser = browser_for(middleware)
    browser.get("/admin", headers={"Accept": "text/html"}, status=303)
    browser.get("/admin", status=401)
    assert files_under(middleware.config.data_dir) == []


def test_signed_in_request_within_the_stamp_interval_writes_nothing(make_middleware: Callable[..., SSOMiddleware],
                                                                    provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(clock=clock)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    path = the_session_file(middleware)
    before = (os.stat(path).st_mtime_ns, read_record(path))
    for _ in range(3):
        clock.advance(10)
        response = browser.get("/page")
        assert response.json["remote_user"] == "alice"
        assert response.headers.getall("Set-Cookie") == []
    assert (os.stat(path).st_mtime_ns, read_record(path)) == before


def test_the_idle_stamp_is_refreshed_after_the_interval_without_a_new_cookie(
        make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(clock=clock)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    path = the_session_file(middleware)
    stamped = read_record(path)["last_seen"]
    clock.advance(61)
    response = browser.get("/page")
    assert response.json["remote_user"] == "alice"
    assert response.headers.getall("Set-Cookie") == []
    assert read_record(path)["last_seen"] == pytest.approx(clock.now)
    assert read_record(path)["last_seen"] > stamped
    assert [the_session_file(middleware)] == [path]


# -- cookies from outside ------------------------------------------------------


def test_a_tampered_session_cookie_is_anonymous(middleware: SSOMiddleware, provider: FakeProvider) -> None:
    browser = browser_for(middleware)
    sign_in(browser, provider)
    value = browser.cookies[COOKIE]
    for position in (0, len(value) // 2, len(value) - 1):
        flipped = "0" if value[position] != "0" else "1"
        tampered = value[:position] + flipped + value[position + 1:]
        other = browser_for(middleware)
        response = other.get("/page", headers={"Cookie": f"{COOKIE}={tampered}"})
        assert response.json["remote_user"] is None
        assert_only_clears_cookie(response)


def assert_only_clears_cookie(response: Any) -> None:
    """No session is created: any Set-Cookie only expires the bad cookie."""
    from email.utils import parsedate_to_datetime

    for header in response.headers.getall("Set-Cookie"):
        expires = header.split("expires=")[1].split(";")[0]
        assert parsedate_to_datetime(expires).timestamp() < time.time(), header


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(f"{COOKIE}=garbage", id="garbage"),
        pytest.param(f"{COOKIE}=", id="empty"),
        pytest.param(f"{COOKIE}=" + "a" * 10000, id="oversized"),
        pytest.param(f"{COOKIE}=" + "0" * 40 + "../../../../etc/passwd", id="path-traversal"),
        pytest.param(f'{COOKIE}="unterminated', id="unterminated-quote"),
        pytest.param(f"{COOKIE}=a; {COOKIE}=b", id="twice"),
        pytest.param(f"{COOKIE}=\x01\x02", id="control-characters"),
        pytest.param(f"{COOKIE}=%00%ff", id="percent-junk"),
        pytest.param(f"{COOKIE}=caf\u00e9", id="latin-1"),
        pytest.param(";;;=;" + COOKIE, id="no-value"),
    ],
)
def test_garbage_session_cookies_are_anonymous(make_middleware: Callable[..., SSOMiddleware], cookie: str) -> None:
    middleware = make_middleware(protected_paths=["/admin"])
    browser = browser_for(middleware)
    response = browser.get("/page", headers={"Cookie": cookie}, extra_environ={"REMOTE_USER": "admin"})
    assert response.status_int == 200
    assert response.json["remote_user"] is None
    assert browser.get("/admin", headers={"Cookie": cookie}, status=401).json["error"] == "login_required"
    for route in ("/auth/sso?connection=c&target_url=/", "/auth/callback?state=s&code=c", "/auth/logout",
                  "/auth/failure?error=invalid_state"):
        assert browser.get(route, headers={"Cookie": cookie}, expect_errors=True).status_int < 500, route


def test_a_corrupt_store_record_is_anonymous(middleware: SSOMiddleware, provider: FakeProvider) -> None:
    browser = browser_for(middleware)
    sign_in(browser, provider)
    with open(the_session_file(middleware), "wb") as handle:
        handle.write(b"not a pickle")
    response = browser.get("/page", extra_environ={"REMOTE_USER": "admin"})
    assert response.json["remote_user"] is None
    assert_only_clears_cookie(response)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param('prefs={"theme":"dark"}', id="json-value"),
        pytest.param("greeting=hello world", id="space"),
        pytest.param('quoted=a"b', id="stray-quote"),
        pytest.param("path=a\\b", id="backslash"),
        pytest.param("[weird]=1", id="odd-name"),
    ],
)
@pytest.mark.parametrize("position", ["before", "after"])
def test_other_cookies_do_not_hide_the_session(browser: Browser, provider: FakeProvider, other: str,
                                               position: str) -> None:
    """Cookies set by sibling apps (for instance a SPA on the parent domain) are none of our business."""
    sign_in(browser, provider)
    ours = f"{COOKIE}={browser.cookies[COOKIE]}"
    header = f"{other}; {ours}" if position == "before" else f"{ours}; {other}"
    browser.cookiejar.clear()
    assert view(browser, headers={"Cookie": header})["remote_user"] == "alice"


@pytest.mark.parametrize("position", ["before", "after"])
def test_sign_in_completes_despite_other_odd_cookies(browser: Browser, provider: FakeProvider,
                                                     position: str) -> None:
    browser.set_cookie("prefs", "x")
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/"})
    assert COOKIE not in browser.cookies  # the sign-in in flight is in its own cookie
    name = tx_name(COOKIE, parse_qs(urlsplit(response.location).query)["state"][0])
    ours = f"{name}={browser.cookies[name]}"
    callback = provider.authorize(response.location)
    browser.cookiejar.clear()
    odd = 'prefs={"a":1}; greeting=hello world; quoted=a"b; [weird]=1'
    header = f"{odd}; {ours}" if position == "before" else f"{ours}; {odd}"
    final = browser.get(callback, headers={"Cookie": header})
    assert final.location == "https://app2.example/"
    assert view(browser)["remote_user"] == "alice"


# -- protected paths -----------------------------------------------------------


@pytest.fixture
def guarded(make_browser: Callable[..., Browser]) -> Browser:
    return make_browser(protected_paths=["/admin", "/api/private/"])


PAGE_LOADS = [
    pytest.param("GET", {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, id="accept-html"),
    pytest.param("HEAD", {"Accept": "text/html"}, id="head-accept-html"),
    pytest.param("GET", {"Sec-Fetch-Mode": "navigate"}, id="sec-fetch-navigate"),
    pytest.param("GET", {"Sec-Fetch-Mode": "navigate", "Accept": "*/*"}, id="navigate-any-accept"),
]

API_CALLS = [
    pytest.param("GET", {"X-Requested-With": "XMLHttpRequest", "Accept": "text/html"}, id="xhr"),
    pytest.param("GET", {"Sec-Fetch-Mode": "cors", "Accept": "text/html"}, id="sec-fetch-cors"),
    pytest.param("GET", {"Sec-Fetch-Mode": "no-cors"}, id="sec-fetch-no-cors"),
    pytest.param("GET", {"Accept": "application/json"}, id="accept-json"),
    pytest.param("GET", {}, id="no-accept"),
    pytest.param("POST", {"Accept": "text/html"}, id="post-html"),
    pytest.param("POST", {"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}, id="post-navigate"),
    pytest.param("DELETE", {}, id="delete"),
]


def call(browser: Browser, method: str, url: str, headers: dict[str, str], status: int) -> webtest.TestResponse:
    """``browser.get``/``head``/``post``/``delete`` (which, unlike ``request``, keep the browser's environ)."""
    response: webtest.TestResponse = getattr(browser, method.lower())(url, headers=headers, status=status)
    return response


@pytest.mark.parametrize(("method", "headers"), PAGE_LOADS)
def test_anonymous_page_load_of_a_protected_path_is_sent_to_sign_in(guarded: Browser, method: str,
                                                                    headers: dict[str, str]) -> None:
    response = call(guarded, method, "/admin/users?page=2&q=a%20b", headers, status=303)
    assert response.status_int == 303
    assert response.headers["Cache-Control"] == "no-store"
    assert urlsplit(response.location)[:3] == ("https", "app2.example", "/auth/login")
    assert login_target(response.location) == "/admin/users?page=2&q=a%20b"


@pytest.mark.parametrize(("method", "headers"), API_CALLS)
def test_anonymous_api_call_to_a_protected_path_gets_401(guarded: Browser, method: str,
                                                         headers: dict[str, str]) -> None:
    response = call(guarded, method, "/admin/data?x=1", headers, status=401)
    assert response.headers["WWW-Authenticate"].startswith("OpenIDConnect ")
    assert 'error="login_required"' in response.headers["WWW-Authenticate"]
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = json.loads(response.body)
    assert body["error"] == "login_required"
    assert login_target(body["login_url"]) == "/admin/data?x=1"
    assert body["login_url"].startswith("https://app2.example/auth/login?")


@pytest.mark.parametrize(
    ("path", "protected"),
    [
        pytest.param("/admin", True, id="exact"),
        pytest.param("/admin/", True, id="exact-slash"),
        pytest.param("/admin/x/y", True, id="below"),
        pytest.param("/api/private", True, id="prefix-given-with-slash"),
        pytest.param("/api/private/items", True, id="below-prefix-given-with-slash"),
        pytest.param("/administrator", False, id="longer-segment"),
        pytest.param("/admin-panel", False, id="dash-suffix"),
        pytest.param("/admi", False, id="shorter"),
        pytest.param("/api/privateer", False, id="longer-segment-2"),
        pytest.param("/api", False, id="parent"),
        pytest.param("/", False, id="root"),
        pytest.param("/public/admin", False, id="not-a-prefix"),
    ],
)
def test_protected_prefixes_match_on_segment_boundaries(guarded: Browser, path: str, protected: bool) -> None:
    response = guarded.get(path, headers={"Accept": "application/json"}, expect_errors=True)
    if protected:
        assert response.status_int == 401
    else:
        assert response.status_int == 200
        assert response.json["path"] == path


def test_root_prefix_protects_everything_but_the_auth_routes(make_browser: Callable[..., Browser],
                                                             provider: FakeProvider) -> None:
    browser = make_browser(protected_paths=["/"])
    browser.get("/anything", status=401)
    browser.get("/", status=401)
    browser.get("/auth/failure", {"error": "invalid_state"}, status=400)
    sign_in(browser, provider)
    assert view(browser, "/anything")["remote_user"] == "alice"


def test_signed_in_user_reaches_protected_paths(guarded: Browser, provider: FakeProvider) -> None:
    sign_in(guarded, provider)
    assert view(guarded, "/admin/x", headers={"Accept": "application/json"})["remote_user"] == "alice"


def test_protected_page_load_round_trip_returns_to_the_page(guarded: Browser, provider: FakeProvider) -> None:
    response = guarded.get("/admin/users?page=2", headers={"Accept": "text/html"})
    response = guarded.get(response.location)
    assert "prompt" not in parse_qs(urlsplit(response.location).query)
    response = guarded.get(provider.authorize(response.location))
    assert response.location == "https://app2.example/admin/users?page=2"
    assert view(guarded, "/admin/users?page=2", headers={"Accept": "text/html"})["remote_user"] == "alice"


def test_spoofed_remote_user_does_not_open_protected_paths(guarded: Browser) -> None:
    guarded.get("/admin", extra_environ=dict(SPOOFED), status=401)


# -- session lifetime ----------------------------------------------------------


def expect_signed_out(browser: Browser, middleware: SSOMiddleware) -> None:
    response = browser.get("/page")
    assert response.json["remote_user"] is None
    assert response.json["userinfo"] is None
    (cookie,) = response.headers.getall("Set-Cookie")
    assert cookie.startswith(COOKIE + "=") and "expires=" in cookie.lower()
    assert all("user" not in read_record(path) for path in session_files(middleware))


def test_idle_timeout_signs_out(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(session_idle_timeout=600, clock=clock)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    clock.advance(590)
    assert view(browser)["remote_user"] == "alice"  # activity: the idle timer restarts
    clock.advance(590)
    assert view(browser)["remote_user"] == "alice"
    clock.advance(601)
    expect_signed_out(browser, middleware)


def test_idle_timeout_without_activity(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(session_idle_timeout=600, clock=clock)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    clock.advance(601)
    expect_signed_out(browser, middleware)


def test_absolute_timeout_signs_out_despite_activity(make_middleware: Callable[..., SSOMiddleware],
                                                     provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(session_idle_timeout=600, session_absolute_timeout=2000, clock=clock)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    for _ in range(3):
        clock.advance(500)
        assert view(browser)["remote_user"] == "alice"
    clock.advance(501)
    expect_signed_out(browser, middleware)


def test_expired_session_on_a_protected_path_is_sent_to_sign_in(make_middleware: Callable[..., SSOMiddleware],
                                                                provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(protected_paths=["/admin"], session_idle_timeout=600, clock=clock)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    clock.advance(601)
    response = browser.get("/admin", headers={"Accept": "text/html"}, status=303)
    assert login_target(response.location) == "/admin"
    assert any("expires=" in cookie.lower() for cookie in response.headers.getall("Set-Cookie"))


def test_expired_session_at_sso_signs_in_again(make_middleware: Callable[..., SSOMiddleware],
                                               provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(session_idle_timeout=600, clock=clock)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    expired = browser.cookies[COOKIE]
    clock.advance(601)
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/x"})
    assert response.location.startswith("https://op.example/authorize?")
    assert COOKIE not in browser.cookies  # the expired session was ended and its cookie cleared
    assert session_files(middleware) == []
    provider.id_token_overrides = {"iat": int(clock.now), "exp": int(clock.now) + 300}
    response = browser.get(provider.authorize(response.location, user="bob"))
    assert response.location == "https://app2.example/x"
    assert view(browser)["remote_user"] == "bob"
    assert browser.cookies[COOKIE] != expired


def test_default_lifetimes_are_a_day_idle_and_a_week_absolute() -> None:
    fields = SSOConfig.__dataclass_fields__
    assert fields["session_idle_timeout"].default == 86400
    assert fields["session_absolute_timeout"].default == 7 * 86400


# -- WSGI behaviour of the wrapped app -----------------------------------------


def app_with_error_handler(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("failed after starting the response")
    except ValueError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"handled"]


def app_using_write(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "yes")])
    write(b"written ")
    return [b"returned"]


def app_that_raises(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    raise RuntimeError("app bug")


@pytest.fixture
def expiring(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> Callable[..., Browser]:
    """A browser whose session has just expired, so the middleware adds a Set-Cookie to the app's response."""

    def build(app: Any) -> Browser:
        clock = Clock()
        middleware = make_middleware(app=app, session_idle_timeout=600, clock=clock)
        browser = browser_for(middleware)
        sign_in(browser, provider)  # only the authentication routes: the app is not called
        clock.advance(601)
        return browser

    return build


def test_exc_info_start_response_passes_through(make_browser: Callable[..., Browser]) -> None:
    response = make_browser(app=app_with_error_handler).get("/x", status=500)
    assert response.body == b"handled"


def test_exc_info_start_response_passes_through_when_a_cookie_is_added(expiring: Callable[..., Browser]) -> None:
    response = expiring(app_with_error_handler).get("/x", status=500)
    assert response.body == b"handled"
    assert any(cookie.startswith(COOKIE + "=") for cookie in response.headers.getall("Set-Cookie"))


def test_write_callable_is_returned(make_browser: Callable[..., Browser], expiring: Callable[..., Browser]) -> None:
    for browser in (make_browser(app=app_using_write), expiring(app_using_write)):
        response = browser.get("/x")
        assert response.body == b"written returned"
        assert response.headers["X-App"] == "yes"


def test_app_exceptions_propagate(make_browser: Callable[..., Browser], expiring: Callable[..., Browser]) -> None:
    for browser in (make_browser(app=app_that_raises), expiring(app_that_raises)):
        with pytest.raises(RuntimeError, match="app bug"):
            browser.get("/x")


def test_app_response_headers_and_status_are_untouched(make_browser: Callable[..., Browser],
                                                       provider: FakeProvider) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("418 I'm a teapot", [("Content-Type", "text/plain"), ("Set-Cookie", "app=1; Path=/")])
        return [b"tea"]

    browser = make_browser(app=app)
    response = browser.get("/x", status=418)
    assert response.headers.getall("Set-Cookie") == ["app=1; Path=/"]
    assert response.body == b"tea"


# -- mounted under a prefix (SCRIPT_NAME) --------------------------------------


def mounted(app: Any, prefix: str) -> Any:
    """A minimal URL map: the app lives under ``prefix``."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path != prefix and not path.startswith(prefix + "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not mounted here"]
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
        environ["PATH_INFO"] = path[len(prefix):]
        return app(environ, start_response)

    return wsgi


@pytest.fixture
def prefixed(make_middleware: Callable[..., SSOMiddleware]) -> tuple[SSOMiddleware, Browser]:
    middleware = make_middleware(base_url="https://app2.example/app2", protected_paths=["/admin"])
    browser = webtest.TestApp(mounted(middleware, "/app2"),
                              extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"})
    return middleware, browser


def test_sign_in_under_a_mount_prefix(prefixed: tuple[SSOMiddleware, Browser], provider: FakeProvider) -> None:
    _, browser = prefixed
    response = browser.get("/app2/auth/sso", {"connection": CONNECTION, "target_url": "/dashboard"})
    params = parse_qs(urlsplit(response.location).query)
    assert params["redirect_uri"] == ["https://app2.example/app2/auth/callback"]
    response = browser.get(provider.authorize(response.location))
    assert response.location == "https://app2.example/app2/dashboard"
    seen = browser.get("/app2/dashboard").json
    assert (seen["path"], seen["remote_user"]) == ("/dashboard", "alice")


def test_failure_redirect_under_a_mount_prefix(prefixed: tuple[SSOMiddleware, Browser]) -> None:
    _, browser = prefixed
    response = browser.get("/app2/auth/sso", {"connection": CONNECTION})
    assert urlsplit(response.location).path == "/app2/auth/failure"
    browser.get(response.location, status=400)


def test_protected_path_under_a_mount_prefix(prefixed: tuple[SSOMiddleware, Browser], provider: FakeProvider) -> None:
    _, browser = prefixed
    response = browser.get("/app2/admin/x?y=1", headers={"Accept": "text/html"}, status=303)
    assert urlsplit(response.location).path == "/app2/auth/login"
    assert login_target(response.location) == "/admin/x?y=1"
    api = browser.get("/app2/admin/x?y=1", status=401).json
    assert urlsplit(api["login_url"]).path == "/app2/auth/login"
    assert login_target(api["login_url"]) == "/admin/x?y=1"
    # ... and the round trip lands back on the page.
    response = browser.get(response.location)
    response = browser.get(provider.authorize(response.location))
    assert response.location == "https://app2.example/app2/admin/x?y=1"
    assert browser.get("/app2/admin/x?y=1").json["remote_user"] == "alice"


def test_logout_under_a_mount_prefix(prefixed: tuple[SSOMiddleware, Browser], provider: FakeProvider) -> None:
    _, browser = prefixed
    sign_in_response = browser.get("/app2/auth/sso", {"connection": CONNECTION, "target_url": "/"})
    browser.get(provider.authorize(sign_in_response.location))
    response = browser.get("/app2/auth/logout", {"target_url": "/bye"})
    params = parse_qs(urlsplit(response.location).query)
    assert params["post_logout_redirect_uri"] == ["https://app2.example/app2/bye"]


def two_apps(make_middleware: Callable[..., SSOMiddleware], tmp_path: Any) -> Browser:
    """One browser, one origin, two middlewares under /app1 and /app2 (each its own base_url and store)."""
    apps = {prefix: mounted(make_middleware(base_url=f"https://app2.example{prefix}",
                                            session_data_dir=str(tmp_path / prefix.strip("/"))), prefix)
            for prefix in ("/app1", "/app2")}

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        return apps["/app1" if path.startswith("/app1") else "/app2"](environ, start_response)

    return webtest.TestApp(dispatch, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"})


def sign_in_at(browser: Browser, provider: FakeProvider, prefix: str, user: str) -> None:
    response = browser.get(f"{prefix}/auth/sso", {"connection": CONNECTION, "target_url": "/"})
    response = browser.get(provider.authorize(response.location, user=user))
    assert response.location == f"https://app2.example{prefix}/", response.location


def test_two_apps_on_one_origin_keep_both_sessions(make_middleware: Callable[..., SSOMiddleware], tmp_path: Any,
                                                   provider: FakeProvider) -> None:
    """Item 17: with Path=/ for both, each app's session cookie replaced (or cleared as unknown) the other's."""
    browser = two_apps(make_middleware, tmp_path)
    sign_in_at(browser, provider, "/app1", "alice")
    sign_in_at(browser, provider, "/app2", "bob")
    for _ in range(2):  # and they stay so, whichever app is visited
        assert browser.get("/app1/page").json["remote_user"] == "alice"
        assert browser.get("/app2/page").json["remote_user"] == "bob"
    paths = {cookie.path for cookie in browser.cookiejar if "_tx_" not in cookie.name}
    assert paths == {"/app1", "/app2"}


def test_two_apps_on_one_origin_do_not_evict_each_others_sign_ins(
        make_middleware: Callable[..., SSOMiddleware], tmp_path: Any, provider: FakeProvider) -> None:
    """Transaction cookies are Path=/ (__Host- demands it): each app must count and expire only its own."""
    browser = two_apps(make_middleware, tmp_path)
    first = browser.get("/app1/auth/sso", {"connection": CONNECTION, "target_url": "/first"})
    for tab in range(8):  # many sign-ins at app2 meanwhile: beyond its own cap
        browser.get("/app2/auth/sso", {"connection": CONNECTION, "target_url": f"/tab-{tab}"})
    response = browser.get(provider.authorize(first.location))
    assert response.location == "https://app2.example/app1/first"
    assert browser.get("/app1/page").json["remote_user"] == "alice"


@pytest.mark.parametrize(
    "base_url, cookie_path, name",
    [
        ("https://app2.example", "/", "__Host-sso_session"),
        ("https://app2.example/app1", "/app1", "__Secure-sso_session"),
        ("https://app2.example/a/b", "/a/b", "__Secure-sso_session"),
        ("http://127.0.0.1:8080/app1", "/app1", "sso_session"),
    ],
)
def test_the_session_cookie_path_follows_base_url(base_url: str, cookie_path: str, name: str) -> None:
    config = SSOConfig(issuer="https://op.example/", client_id="c", client_secret="s", base_url=base_url,
                       session_secret="x" * 40, allow_insecure_http=base_url.startswith("http:"))
    assert (config.cookie_path, config.session_cookie_name) == (cookie_path, name)


def test_a_host_prefixed_cookie_name_under_a_base_url_path_is_refused() -> None:
    """__Host- demands Path=/; browsers would silently drop the session cookie."""
    with pytest.raises(ConfigError, match="cookie_name"):
        SSOConfig(issuer="https://op.example/", client_id="c", client_secret="s", session_secret="x" * 40,
                  base_url="https://app2.example/app1", cookie_name="__Host-app1")


@pytest.mark.parametrize("path", ["/a;Domain=evil.example", '/a"b', "/a<b>", "/caf\u00e9", "/a\\b"])
def test_a_base_url_path_that_cannot_be_a_cookie_path_is_refused(path: str) -> None:
    """It becomes the session cookie's Path: a ';' would add attributes; others never match what browsers send."""
    with pytest.raises(ConfigError, match="base_url"):
        SSOConfig(issuer="https://op.example/", client_id="c", client_secret="s", session_secret="x" * 40,
                  base_url="https://app2.example" + path)


def test_session_cookies_under_a_prefix_carry_its_path(prefixed: tuple[SSOMiddleware, Browser],
                                                       provider: FakeProvider) -> None:
    _, browser = prefixed
    sign_in_at(browser, provider, "/app2", "alice")
    (cookie,) = [cookie for cookie in browser.cookiejar if cookie.name == "__Secure-sso_session"]
    assert (cookie.path, cookie.secure, cookie.domain_specified) == ("/app2", True, False)
    assert browser.get("/app2/page").json["remote_user"] == "alice"


def test_protected_path_with_non_utf8_path_is_not_a_500(make_browser: Callable[..., Browser]) -> None:
    browser = make_browser(protected_paths=["/admin"])
    response = browser.get("/admin/%FF%FE", headers={"Accept": "text/html"}, expect_errors=True)
    assert response.status_int == 303
    assert login_target(response.location) == "/admin/%FF%FE"
    assert browser.get("/admin/%FF", expect_errors=True).status_int == 401


# -- construction --------------------------------------------------------------


def test_unknown_keyword_setting_fails_at_construction(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="protected_path") as caught:
        SSOMiddleware(legacy_app, **settings, protected_path=["/admin"])
    assert caught.value.setting == "protected_path"


def test_config_object_and_keyword_overrides(settings: dict[str, Any]) -> None:
    config = SSOConfig(**settings)
    assert SSOMiddleware(legacy_app, config).config is config
    middleware = SSOMiddleware(legacy_app, config, protected_paths=["/x"])
    assert middleware.config.protected_paths == ("/x",)
    assert middleware.config.client_id == config.client_id
    with pytest.raises(ConfigError, match="bogus"):
        SSOMiddleware(legacy_app, config, bogus=1)


def test_construction_makes_no_provider_call(make_middleware: Callable[..., SSOMiddleware],
                                             provider: FakeProvider) -> None:
    browser = browser_for(make_middleware())
    browser.get("/page")
    assert provider.calls == []



def test_a_cookie_naming_a_vanished_session_is_cleared_once(middleware: SSOMiddleware,
                                                            provider: FakeProvider) -> None:
    browser = browser_for(middleware)
    sign_in(browser, provider)
    cookie = browser.cookies[COOKIE]
    browser.get("/auth/logout", {"target_url": "/"})  # the record is gone server-side
    stale = browser_for(middleware)
    response = stale.get("/page", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert response.json["remote_user"] is None
    assert_only_clears_cookie(response)
    assert response.headers.getall("Set-Cookie"), "the stale cookie is expired, so the lookup is not repeated"



@pytest.mark.parametrize("path", ["//admin", "/./admin", "/x/../admin", "/admin//data", "/admin/./x", "///admin/"])
def test_protected_paths_cannot_be_sidestepped_with_path_variants(make_browser: Callable[..., Any], path: str) -> None:
    browser = make_browser(protected_paths=["/admin"])
    assert browser.get(path, headers={"Accept": "application/json"}, expect_errors=True).status_int == 401


# -- issue 13 item 2: the app's own failure page is exempt only as the exact path sent --------------------

JSON_ACCEPT = {"Accept": "application/json"}


@pytest.mark.parametrize("path", [
    "/admin/../auth/failure",
    "/admin/%2e%2e/auth/failure",  # the decoded form gunicorn and waitress hand the app
    "/admin/./../auth/failure",
    "//admin//..//auth/failure",
    "/admin/x/../../auth/failure",
    "/admin/../auth/./failure",
])
def test_the_apps_failure_page_exemption_opens_no_protected_path(make_browser: Callable[..., Any],
                                                                path: str) -> None:
    """serve_failure_page=false: a path that *resolves* to the failure page is still routed under /admin by
    the app (it routes PATH_INFO as sent), so it must stay guarded."""
    browser = make_browser(protected_paths=["/admin"], serve_failure_page=False)
    response = browser.get(path, headers=JSON_ACCEPT, expect_errors=True)
    assert response.status_int == 401, (path, response.status, response.text[:200])


@pytest.mark.parametrize("path", ["/auth/failure", "//auth/failure", "/auth//failure", "/auth/failure/"])
def test_the_apps_failure_page_stays_open_under_a_protected_root(make_browser: Callable[..., Any],
                                                                path: str) -> None:
    browser = make_browser(protected_paths=["/"], serve_failure_page=False)
    response = browser.get(path, {"error": "invalid_state"}, headers=JSON_ACCEPT)
    assert response.json["path"] == path
    assert browser.get("/elsewhere", headers=JSON_ACCEPT, expect_errors=True).status_int == 401


# -- issue 13 item 14: percent-encoded and non-ASCII prefixes guard what PATH_INFO carries ----------------


@pytest.mark.parametrize("prefix", ["/caf%C3%A9", "/caf%c3%a9", "/café"])
@pytest.mark.parametrize("path", ["/caf%C3%A9", "/caf%C3%A9/menu", "/caf%c3%a9/menu?x=1"])
def test_a_percent_encoded_or_non_ascii_protected_path_guards_the_decoded_path(
    make_browser: Callable[..., Any], prefix: str, path: str
) -> None:
    browser = make_browser(protected_paths=[prefix])
    assert browser.get(path, headers=JSON_ACCEPT, expect_errors=True).status_int == 401
    assert browser.get("/cafe/menu", headers=JSON_ACCEPT).status_int == 200  # a different path stays open
    assert browser.get("/caf%C3%A9s", headers=JSON_ACCEPT).status_int == 200  # segment boundary


@pytest.mark.parametrize(("prefix", "problem"), [
    pytest.param("/a%2Fb", "encoded '/'", id="encoded-slash"),
    pytest.param("/a%2fb", "encoded '/'", id="encoded-slash-lower"),
    pytest.param("/a/%2e%2e/admin", "dot segment", id="encoded-dot-dot"),
    pytest.param("/a/%2E", "dot segment", id="encoded-dot"),
    pytest.param("/a%zz", "malformed", id="bad-hex"),
    pytest.param("/a%2", "malformed", id="truncated-escape"),
    pytest.param("/a%", "malformed", id="lone-percent"),
    pytest.param("/a%00b", "control", id="encoded-nul"),
    pytest.param("/a%0Ab", "control", id="encoded-newline"),
])
def test_an_unguardable_encoded_protected_path_is_refused_at_start_up(make_browser: Callable[..., Any],
                                                                     prefix: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        make_browser(protected_paths=[prefix])
    assert refused.value.setting == "protected_paths"
    assert problem in str(refused.value)
