"""``response_mode = form_post`` and several ``base_url`` origins, in-process (webtest + FakeProvider).

form_post (issue 14 part 6): the provider answers the callback with an auto-submitted
POST; the callback reads that form (through :func:`sso_middleware._wsgi.bodies.read_form`,
within ``max_request_body``) and refuses a GET, and the transaction cookies are
``SameSite=None; Secure`` so the cross-site POST carries them.

Several hostnames (part 7): each request's redirect URI, post-sign-in redirect, logout
return URL and login URL use the listed origin matching its Host; an unlisted (forged)
Host gets the first one, and the redirect URI sent to ``/authorize`` is the one sent with
the code (the FakeProvider refuses a code redeemed with another ``redirect_uri``).
The same flows against the real dev provider and Chromium are in
``tests/integration/test_integration.py`` and ``tests/integration/test_demo_browser.py``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
import webtest

from sso_middleware import SSOMiddleware

from ..cookies import SetCookie
from ..fakes import ISSUER, FakeProvider
from .test_handlers import Untouchable, raw_call

CONNECTION = "Username-Password-Authentication"
AUTHORIZE = ISSUER.rstrip("/") + "/authorize"
COOKIE = "__Host-sso_session"
HOSTS = ("app2.example", "intranet.corp.example")
TWO_ORIGINS = "https://app2.example https://intranet.corp.example"


def query(url: str) -> dict[str, str]:
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in parsed.values()), parsed
    return {key: values[0] for key, values in parsed.items()}


def browser_at(middleware: SSOMiddleware, host: str = "app2.example", scheme: str = "https") -> webtest.TestApp:
    return webtest.TestApp(middleware, extra_environ={"wsgi.url_scheme": scheme, "HTTP_HOST": host})


def failure(response: webtest.TestResponse, origin: str = "https://app2.example") -> str:
    """The error code of a redirect to the failure page at ``origin``."""
    assert response.status_int == 303, response
    assert response.location.startswith(origin + "/auth/failure?"), response.location
    return query(response.location)["error"]


def start(browser: webtest.TestApp, target: str = "/dashboard") -> webtest.TestResponse:
    response = browser.get("/auth/sso", {"target_url": target, "connection": CONNECTION})
    assert response.status_int == 303 and response.location.startswith(AUTHORIZE + "?"), response
    return response


def post_back(browser: webtest.TestApp, callback: str, **kwargs: Any) -> webtest.TestResponse:
    """What the provider's auto-submitting page does: POST the response parameters to the callback."""
    parts = urlsplit(callback)
    params = {key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    return browser.post(parts.path, params, **kwargs)


def tx_headers(response: webtest.TestResponse) -> list[SetCookie]:
    cookies = [SetCookie.parse(header) for header in response.headers.getall("Set-Cookie")]
    return [cookie for cookie in cookies if "_tx_" in cookie.name]


def session_header(response: webtest.TestResponse) -> Optional[SetCookie]:
    for header in response.headers.getall("Set-Cookie"):
        cookie = SetCookie.parse(header)
        if "_tx_" not in cookie.name and not cookie.expires_it:
            return cookie
    return None


def token_redirect_uri(provider: FakeProvider) -> str:
    """The ``redirect_uri`` of the last code exchange the provider received."""
    body = provider.requests_to("/oauth/token")[-1].body
    text = body.decode() if isinstance(body, bytes) else str(body)
    return parse_qs(text)["redirect_uri"][0]


def user(browser: webtest.TestApp) -> Optional[str]:
    result: Optional[str] = browser.get("/page").json["remote_user"]
    return result


@pytest.fixture
def form_post(make_middleware: Callable[..., SSOMiddleware]) -> SSOMiddleware:
    return make_middleware(response_mode="form_post", silent_sso=False)


# -- response_mode = form_post ----------------------------------------------------------------


def test_query_mode_sends_no_response_mode(browser: webtest.TestApp) -> None:
    assert "response_mode" not in query(start(browser).location)


def test_form_post_signs_in_through_the_posted_form(form_post: SSOMiddleware, provider: FakeProvider) -> None:
    browser = browser_at(form_post)
    response = start(browser)
    assert query(response.location)["response_mode"] == "form_post"
    (issued,) = tx_headers(response)
    # sent with the provider's cross-site POST: SameSite=None, which browsers accept only with Secure
    assert issued.attributes["samesite"] == "None" and "secure" in issued.attributes and "httponly" in issued.attributes
    done = post_back(browser, provider.authorize(response.location))
    assert done.status_int == 303 and done.location == "https://app2.example/dashboard", done
    assert token_redirect_uri(provider) == "https://app2.example/auth/callback"
    session = session_header(done)
    assert session is not None and session.name == COOKIE
    assert session.attributes["samesite"] == "Lax"  # set by this response: it never needs to travel cross-site
    (spent,) = tx_headers(done)
    assert spent.expires_it and spent.attributes["samesite"] == "None"  # the expiry matches the cookie it ends
    assert user(browser) == "alice"


def test_form_post_on_http_loopback_still_marks_transactions_secure(
    make_middleware: Callable[..., SSOMiddleware]
) -> None:
    """Chromium keeps (and sends) ``SameSite=None; Secure`` cookies on http://127.0.0.1 (README: form_post)."""
    middleware = make_middleware(response_mode="form_post", base_url="http://127.0.0.1:5001",
                                 allow_insecure_http=True)
    (issued,) = tx_headers(start(browser_at(middleware, "127.0.0.1:5001", "http")))
    assert issued.name.startswith("sso_session_tx_")  # no __Host- prefix on http
    assert issued.attributes["samesite"] == "None" and "secure" in issued.attributes
    query_mode = make_middleware(base_url="http://127.0.0.1:5001", allow_insecure_http=True)
    (issued,) = tx_headers(start(browser_at(query_mode, "127.0.0.1:5001", "http")))
    assert issued.attributes["samesite"] == "Lax" and "secure" not in issued.attributes


def test_form_post_refuses_a_get_callback_without_spending_the_sign_in(
    form_post: SSOMiddleware, provider: FakeProvider
) -> None:
    """A code in a URL (logs, history, a forged link) is refused: mod_auth_openidc refuses a response mode
    other than the one asked for, and the RP certification's rp-response_mode-form_post expects the form."""
    browser = browser_at(form_post)
    response = start(browser)
    callback = provider.authorize(response.location)
    assert failure(browser.get(callback)) == "invalid_request"
    assert provider.requests_to("/oauth/token") == []
    assert user(browser) is None
    post_back(browser, callback)  # the provider's real POST still finds its transaction
    assert user(browser) == "alice"


def test_form_post_reads_the_body_only(form_post: SSOMiddleware, provider: FakeProvider) -> None:
    """A POST's query string is not the authorization response: a state there finds nothing."""
    browser = browser_at(form_post)
    callback = provider.authorize(start(browser).location)
    response = browser.post(urlsplit(callback).path + "?" + urlsplit(callback).query, {"other": "field"})
    assert failure(response) == "invalid_state"


@pytest.mark.parametrize(("body", "content_type", "code"), [
    ("state=a&state=b&code=c", "application/x-www-form-urlencoded", "invalid_request"),
    ("code=c", "application/x-www-form-urlencoded", "invalid_state"),
    ('{"state": "x"}', "application/json", "invalid_request"),
    ("state=%ff", "application/x-www-form-urlencoded", "invalid_request"),
    ("state=x", "application/x-www-form-urlencoded; charset=latin-1", "invalid_request"),
    ("", "application/x-www-form-urlencoded", "invalid_state"),
])
def test_form_post_bad_bodies_get_the_failure_page(form_post: SSOMiddleware, body: str, content_type: str,
                                                   code: str) -> None:
    browser = browser_at(form_post)
    response = browser.post("/auth/callback", body.encode(), headers={"Content-Type": content_type})
    assert failure(response) == code


def test_form_post_bodies_over_max_request_body_get_413_unread(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    middleware = make_middleware(response_mode="form_post", max_request_body=2048)
    browser = browser_at(middleware)
    callback = provider.authorize(start(browser).location)
    params = query(callback)
    big = {**params, "padding": "x" * 2100}
    assert browser.post("/auth/callback", big, status=413).status_int == 413
    for length, chunked in (("2049", False), (None, True), (str(2**70), False)):
        body = Untouchable()
        status, _headers, _content = raw_call(middleware, "POST", "/auth/callback", body=body, length=length,
                                              chunked=chunked)
        assert (status, body.touched) == (413, 0)
    assert provider.requests_to("/oauth/token") == []
    browser.post("/auth/callback", params)  # within the cap: signed in
    assert user(browser) == "alice"


def test_form_post_error_answers_and_silent_fallback(make_middleware: Callable[..., SSOMiddleware],
                                                     provider: FakeProvider) -> None:
    browser = browser_at(make_middleware(response_mode="form_post"))
    first = start(browser)
    assert query(first.location)["prompt"] == "none"
    retry = post_back(browser, provider.authorize(first.location, error="login_required"))
    assert retry.status_int == 303 and retry.location.startswith(AUTHORIZE + "?"), retry  # once, interactively
    assert "prompt" not in query(retry.location)
    refused = post_back(browser, provider.authorize(retry.location, error="access_denied"))
    assert failure(refused) == "provider_error:access_denied"


@pytest.mark.parametrize("mode", ["query"])
def test_a_new_sign_in_ends_the_session_it_replaces(make_middleware: Callable[..., SSOMiddleware],
                                                    provider: FakeProvider, mode: str) -> None:
    """Session fixation and stolen-cookie defence: a sign-in replaces the browser's session and deletes
    the old one.  With form_post it cannot (SECURITY.md's known limits): a browser sends no Lax cookie
    with a cross-site POST (the provider's form_post page), so the callback never sees the old session;
    the code below simulates that by leaving the session cookie out of the callback request."""
    middleware = make_middleware(response_mode=mode, silent_sso=False)
    browser = browser_at(middleware)

    def sign_in() -> None:
        response = browser.get("/auth/login", {"target_url": "/dashboard"})
        callback = provider.authorize(response.location)
        if mode == "query":  # a top-level GET navigation: Lax cookies travel
            browser.get(callback)
            return
        for cookie in list(browser.cookiejar):
            if cookie.name == COOKIE:
                browser.cookiejar.clear(cookie.domain, cookie.path, cookie.name)
        post_back(browser, callback)

    sign_in()
    old = browser.cookies[COOKIE]
    sign_in()
    assert user(browser) == "alice" and browser.cookies[COOKIE] != old
    copy = browser_at(middleware).get("/page", headers={"Cookie": f"{COOKIE}={old}"})
    assert copy.json["remote_user"] is None  # the replaced session is gone



# -- several base_url origins ------------------------------------------------------------------


@pytest.fixture
def two_hosts(make_middleware: Callable[..., SSOMiddleware]) -> SSOMiddleware:
    return make_middleware(base_url=TWO_ORIGINS, protected_paths="/private")


@pytest.mark.parametrize("host", HOSTS)
def test_each_listed_host_signs_in_with_its_own_redirect_uri(two_hosts: SSOMiddleware, provider: FakeProvider,
                                                             host: str) -> None:
    browser = browser_at(two_hosts, host)
    response = start(browser)
    assert query(response.location)["redirect_uri"] == f"https://{host}/auth/callback"
    done = browser.get(provider.authorize(response.location))
    assert done.location == f"https://{host}/dashboard", done
    # the FakeProvider redeems a code only with the redirect_uri it was issued for
    assert token_redirect_uri(provider) == f"https://{host}/auth/callback"
    assert user(browser) == "alice"
    logout = browser.get("/auth/logout", {"target_url": "/bye"})
    assert query(logout.location)["post_logout_redirect_uri"] == f"https://{host}/bye"


def test_an_unlisted_host_gets_the_first_origin_never_itself(two_hosts: SSOMiddleware, provider: FakeProvider) -> None:
    browser = browser_at(two_hosts, "evil.example")
    response = start(browser)
    assert query(response.location)["redirect_uri"] == "https://app2.example/auth/callback"
    login = browser.get("/private/page", headers={"Accept": "text/html"})
    assert login.location.startswith("https://app2.example/auth/login?"), login
    forged = {"HTTP_X_FORWARDED_HOST": "evil.example", "HTTP_X_FORWARDED_PROTO": "https",
              "HTTP_FORWARDED": "host=evil.example"}
    for path in ("/auth/sso?connection=" + CONNECTION, "/auth/logout", "/auth/callback", "/private/x",
                 "/auth/failure?error=x"):
        answer = browser.get(path, extra_environ={"HTTP_HOST": "evil.example", **forged},
                             headers={"Accept": "text/html"}, expect_errors=True)
        assert "evil.example" not in str(answer.headers) and "evil.example" not in answer.text, (path, answer)
    # a listed host named only in X-Forwarded-Host (no proxy fix in front) is not believed either
    other = browser_at(two_hosts, "evil.example")
    sneaky = other.get("/auth/sso", {"connection": CONNECTION, "target_url": "/"},
                       extra_environ={"HTTP_X_FORWARDED_HOST": "intranet.corp.example"})
    assert query(sneaky.location)["redirect_uri"] == "https://app2.example/auth/callback"


def test_the_transaction_keeps_the_redirect_uri_of_its_start(two_hosts: SSOMiddleware, provider: FakeProvider) -> None:
    """Started on the second host, the code is redeemed with that host's redirect_uri, whatever Host the
    callback request claims (the transaction cookie decides, not the callback's Host)."""
    browser = browser_at(two_hosts, HOSTS[1])
    callback = provider.authorize(start(browser).location)
    cookie = browser.cookies  # webtest keeps cookies per TestApp; replay them under a forged Host
    header = "; ".join(f"{name}={value}" for name, value in cookie.items())
    parts = urlsplit(callback)
    done = two_hosts_app(two_hosts).get(f"{parts.path}?{parts.query}", headers={"Cookie": header},
                                        extra_environ={"HTTP_HOST": "evil.example"})
    assert done.status_int == 303
    assert token_redirect_uri(provider) == f"https://{HOSTS[1]}/auth/callback"
    assert "evil.example" not in done.location


def test_the_silent_retry_keeps_the_redirect_uri_of_its_start(two_hosts: SSOMiddleware,
                                                              provider: FakeProvider) -> None:
    browser = browser_at(two_hosts, HOSTS[1])
    first = start(browser)
    callback = provider.authorize(first.location, error="login_required")
    parts = urlsplit(callback)
    header = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    retry = two_hosts_app(two_hosts).get(f"{parts.path}?{parts.query}", headers={"Cookie": header},
                                         extra_environ={"HTTP_HOST": "evil.example"})
    assert retry.location.startswith(AUTHORIZE + "?"), retry
    assert query(retry.location)["redirect_uri"] == f"https://{HOSTS[1]}/auth/callback"


def two_hosts_app(middleware: SSOMiddleware) -> webtest.TestApp:
    return webtest.TestApp(middleware, extra_environ={"wsgi.url_scheme": "https"})


def test_targets_on_any_listed_origin_are_accepted(two_hosts: SSOMiddleware, provider: FakeProvider) -> None:
    browser = browser_at(two_hosts, HOSTS[0])
    target = f"https://{HOSTS[1]}/report?x=1"
    done = browser.get(provider.authorize(start(browser, target).location))
    assert done.location == target
    refused = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "https://evil.example/"})
    assert failure(refused) == "invalid_target_url"


def test_several_hosts_keep_single_host_cookies_small(make_middleware: Callable[..., SSOMiddleware],
                                                      provider: FakeProvider) -> None:
    """The first origin's sign-in stores no redirect_uri (the default); the others' do."""
    middleware = make_middleware(base_url=TWO_ORIGINS)
    first = tx_headers(start(browser_at(middleware, HOSTS[0])))[0]
    second = tx_headers(start(browser_at(middleware, HOSTS[1])))[0]
    assert len(second.value) > len(first.value)


def test_a_proxy_fix_in_front_decides_the_host(make_middleware: Callable[..., SSOMiddleware]) -> None:
    """Forwarded headers count only once an app-level proxy fix has rewritten the environ from them."""
    middleware = make_middleware(base_url=TWO_ORIGINS)

    def proxy_fix(environ: dict[str, Any], start_response: Any) -> Any:  # what werkzeug's ProxyFix does
        environ["HTTP_HOST"] = environ.pop("HTTP_X_FORWARDED_HOST", environ["HTTP_HOST"])
        return middleware(environ, start_response)

    browser = webtest.TestApp(proxy_fix, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "10.0.0.5:8080"})
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/"},
                           extra_environ={"HTTP_X_FORWARDED_HOST": HOSTS[1]})
    assert query(response.location)["redirect_uri"] == f"https://{HOSTS[1]}/auth/callback"
