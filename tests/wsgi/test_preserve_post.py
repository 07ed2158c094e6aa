"""preserve_post end to end in process: a form sent after the session ended reaches the app once, after sign-in.

The middleware (FakeProvider, a shared test clock) wraps :class:`FormApp`, which
records every POST it receives (method, path, query, user, fields in order).  The
session ends by moving the clock past the idle timeout; the form is then POSTed the
way a browser submits a same-origin form (Fetch metadata and ``Origin``).  Attacks:
cross-site and header-less POSTs, replayed and reloaded callbacks, another browser
with the same callback URL, a forged reference, markup in names and values.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any, Optional
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest
import requests
import webtest

from sso_middleware import SSOMiddleware
from sso_middleware.errors import ConfigError
from sso_middleware.testing import Clock

from ..conftest import browser_for
from ..fakes import BASE_URL, FakeProvider

IDLE = 600
#: What Chromium sends with a form submitted from one of the site's own pages.
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
               "Origin": BASE_URL, "Accept": "text/html,application/xhtml+xml"}
FIELDS = [("title", "Quarterly report"), ("body", "Line one\r\nLine two — ünïcödé ✓\r\n"),
          ("tag", "a"), ("tag", "b"), ("csrf_token", "app-own-token-123"), ("empty", ""),
          ("submit", "Save"), ("math", "1+1=2 & 50% off; x=<y>")]


class FormApp:
    """A WSGI app that records what reaches it; a GET shows who is signed in."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen: dict[str, Any] = {"method": environ["REQUEST_METHOD"], "path": environ.get("PATH_INFO"),
                                "query": environ.get("QUERY_STRING"), "remote_user": environ.get("REMOTE_USER")}
        if environ["REQUEST_METHOD"] == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            seen["fields"] = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
            seen["origin"] = environ.get("HTTP_ORIGIN")
            self.posts.append(seen)
        payload = json.dumps(seen).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]


class _Page(HTMLParser):
    """The resubmit page's form: its attributes and hidden fields, as a browser's DOM holds them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.form: Optional[dict[str, Optional[str]]] = None
        self.fields: list[tuple[str, str]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        if tag == "form":
            assert self.form is None, "one form only"
            self.form = dict(attrs)
        elif tag == "input":
            values = dict(attrs)
            assert values["type"] == "hidden"
            self.fields.append((values["name"] or "", values["value"] or ""))
        elif tag == "script":
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def parse_page(html_text: str) -> _Page:
    page = _Page()
    page.feed(html_text)
    return page


@pytest.fixture
def clock(provider: FakeProvider) -> Clock:
    shared = Clock()
    provider.clock = shared
    return shared


@pytest.fixture
def app() -> FormApp:
    return FormApp()


@pytest.fixture
def build(make_middleware: Callable[..., SSOMiddleware], app: FormApp, clock: Clock) -> Callable[..., SSOMiddleware]:
    def made(**settings: Any) -> SSOMiddleware:
        settings.setdefault("protected_paths", "/app")
        settings.setdefault("preserve_post", "/app/forms")
        settings.setdefault("session_idle_timeout", IDLE)
        return make_middleware(app, clock=clock, **settings)

    return made


def sign_in(browser: webtest.TestApp, provider: FakeProvider, target: str = "/app/forms/report") -> None:
    response = browser.get("/auth/login", {"target_url": target})
    callback = provider.authorize(response.location)
    assert browser.get(callback).status_int == 303


def post_form(browser: webtest.TestApp, path: str, fields: list[tuple[str, str]] = FIELDS,
              headers: Optional[dict[str, str]] = None, **kwargs: Any) -> webtest.TestResponse:
    return browser.post(path, urlencode(fields), headers=headers if headers is not None else SAME_ORIGIN,
                        content_type="application/x-www-form-urlencoded", **kwargs)


def records(middleware: SSOMiddleware) -> list[str]:
    """The kept-form record files of the file store (named after the record id)."""
    found = []
    for folder, _dirs, files in os.walk(middleware.config.data_dir):
        found += [os.path.join(folder, name) for name in files if name.startswith("sso-post-")]
    return found


def expired_session_posts(middleware: SSOMiddleware, provider: FakeProvider, clock: Clock,
                          path: str = "/app/forms/report?draft=7", fields: list[tuple[str, str]] = FIELDS,
                          ) -> tuple[webtest.TestApp, webtest.TestResponse]:
    """Sign in, let the session expire, send the form: the browser and the middleware's answer."""
    browser = browser_for(middleware)
    sign_in(browser, provider)
    clock.advance(IDLE + 1)
    return browser, post_form(browser, path, fields)


def test_off_by_default_a_post_without_session_keeps_its_401(make_middleware: Callable[..., SSOMiddleware],
                                                            app: FormApp) -> None:
    browser = browser_for(make_middleware(app, protected_paths="/app"))
    response = post_form(browser, "/app/forms/report", status=401)
    assert response.json["error"] == "login_required"
    assert not app.posts


def test_a_path_outside_preserve_post_keeps_its_401(build: Callable[..., SSOMiddleware], app: FormApp) -> None:
    browser = browser_for(build())
    assert post_form(browser, "/app/other", status=401).json["error"] == "login_required"
    assert post_form(browser, "/app/formsx", status=401).json["error"] == "login_required"  # a prefix, not a string


def test_the_form_reaches_the_app_exactly_once_after_sign_in(build: Callable[..., SSOMiddleware],
                                                              provider: FakeProvider, clock: Clock,
                                                              app: FormApp) -> None:
    middleware = build()
    browser, response = expired_session_posts(middleware, provider, clock)
    assert response.status_int == 303
    assert response.location.startswith(provider.discovery()["authorization_endpoint"])  # straight to the provider
    assert "prompt" not in parse_qs(urlsplit(response.location).query)  # interactive, like /auth/login
    assert len(records(middleware)) == 1
    assert not app.posts  # nothing reached the app without a user
    tx_cookies = [name for name in browser.cookies if "_tx_" in name]
    assert len(tx_cookies) == 1

    page = browser.get(provider.authorize(response.location))
    assert page.status_int == 200 and page.content_type == "text/html"
    assert page.headers["Cache-Control"] == "no-store"
    parsed = parse_page(page.text)
    assert parsed.form is not None
    assert parsed.form["method"] == "post" and parsed.form["action"] == BASE_URL + "/app/forms/report?draft=7"
    assert parsed.fields == FIELDS  # every field, in order, repeated names kept, exactly as sent
    assert not records(middleware)  # taken: the record is gone
    assert whoami(browser) == "alice"  # signed in by the callback

    # What the browser does with the page: the same-origin POST of those fields.
    final = post_form(browser, "/app/forms/report?draft=7", parsed.fields)
    assert final.json["remote_user"] == "alice"
    assert [post["fields"] for post in app.posts] == [FIELDS]
    assert app.posts[0]["query"] == "draft=7"


def test_the_page_escapes_every_value_and_allows_its_script_by_hash(build: Callable[..., SSOMiddleware],
                                                                    provider: FakeProvider, clock: Clock) -> None:
    nasty = [('"><script>alert(1)</script>', "</form><img src=x onerror=alert(2)>"),
             ("q'uote", "it's \"quoted\" &amp; <b>"), ("cr", "a\r\nb\r\n\r\nc")]
    _browser, response = expired_session_posts(build(), provider, clock, fields=nasty)
    page = _browser.get(provider.authorize(response.location))
    assert "<script>alert" not in page.text and "<img" not in page.text and "</form><" not in page.text
    assert "\r" not in page.text  # line breaks as character references (the parser turns CR into LF)
    parsed = parse_page(page.text)
    assert parsed.fields == nasty
    (script,) = parsed.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = page.headers["Content-Security-Policy"]
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["Referrer-Policy"] == "strict-origin"  # never no-referrer: that nulls the POST's Origin
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "<button type=\"submit\">" in page.text  # the no-script way


def test_a_replayed_or_reloaded_callback_does_not_send_the_form_again(build: Callable[..., SSOMiddleware],
                                                                      provider: FakeProvider, clock: Clock) -> None:
    middleware = build()
    browser, response = expired_session_posts(middleware, provider, clock)
    callback = provider.authorize(response.location)
    cookie_header = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    assert browser.get(callback).status_int == 200
    # a reload: the transaction cookie is spent
    reload = browser.get(callback, status=303)
    assert reload.location.endswith("error=invalid_state")
    # a replay that kept a copy of the old cookies: the code is spent, and the record is gone anyway
    replay = browser_for(middleware).get(callback, headers={"Cookie": cookie_header}, status=303)
    assert "error=" in replay.location and "preserve" not in replay.location
    assert not records(middleware)


def test_the_record_is_gone_once_taken_even_with_its_reference(build: Callable[..., SSOMiddleware],
                                                               provider: FakeProvider, clock: Clock) -> None:
    middleware = build()
    records_api = middleware.handlers.post_records
    reference = records_api.keep([("a", "1")], "/app/forms/x", clock())
    assert records_api.take(reference, "/app/forms/y", clock()) is None  # another target: refused, and deleted
    reference = records_api.keep([("a", "1")], "/app/forms/x", clock())
    kept = records_api.take(reference, "/app/forms/x", clock())
    assert kept is not None and kept.fields == [("a", "1")] and kept.sub is None
    assert records_api.take(reference, "/app/forms/x", clock()) is None  # at most once


def test_another_browser_with_the_callback_url_gets_nothing(build: Callable[..., SSOMiddleware],
                                                            provider: FakeProvider, clock: Clock,
                                                            app: FormApp) -> None:
    middleware = build()
    _victim, response = expired_session_posts(middleware, provider, clock)
    attacker = browser_for(middleware)
    answer = attacker.get(provider.authorize(response.location), status=303)
    assert answer.location.endswith("error=invalid_state")
    assert "fields" not in answer.text and not app.posts
    assert len(records(middleware)) == 1  # still the victim's, for its own browser only


def test_the_store_holds_ciphertext_only(build: Callable[..., SSOMiddleware], provider: FakeProvider,
                                         clock: Clock) -> None:
    middleware = build()
    expired_session_posts(middleware, provider, clock, fields=[("secret_note", "correct horse battery staple")])
    (path,) = records(middleware)
    with open(path, "rb") as handle:
        stored = handle.read()
    assert b"correct horse" not in stored and b"secret_note" not in stored and b"/app/forms" not in stored


def test_a_lost_record_says_so_after_the_sign_in(build: Callable[..., SSOMiddleware], provider: FakeProvider,
                                                 clock: Clock, app: FormApp) -> None:
    middleware = build()
    browser, response = expired_session_posts(middleware, provider, clock)
    for path in records(middleware):  # evicted (memcached under memory pressure, a store flush)
        os.unlink(path)
    answer = browser.get(provider.authorize(response.location), status=303)
    assert answer.location.endswith("error=preserve_post_lost")
    page = browser.get(answer.location, status=410)
    assert "could not be restored" in page.text
    assert whoami(browser) == "alice" and not app.posts  # signed in; nothing sent


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        pytest.param({**SAME_ORIGIN, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, "cross-site",
                     id="cross-site"),
        pytest.param({**SAME_ORIGIN, "Sec-Fetch-Site": "same-site", "Origin": "https://sub.app2.example"},
                     "same-site", id="sibling-subdomain"),
        pytest.param({**SAME_ORIGIN, "Origin": "https://evil.example"}, "origin", id="foreign-origin-claims-same"),
        pytest.param({**SAME_ORIGIN, "Origin": "null"}, "null", id="null-origin"),
        pytest.param({"Accept": "text/html", "Origin": "https://evil.example"}, "old-browser", id="no-fetch-metadata"),
        pytest.param({"Accept": "text/html"}, "nothing", id="no-origin-at-all"),
    ],
)
def test_a_cross_site_post_is_never_kept(build: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock,
                                         app: FormApp, headers: dict[str, str], why: str) -> None:
    """The CSRF laundry: a forged form arrives without the Lax session cookie, so it always looks signed out."""
    middleware = build()
    browser = browser_for(middleware)
    response = post_form(browser, "/app/forms/transfer", [("to", "attacker"), ("amount", "1000")], headers=headers,
                         status=403)
    assert "preserve_post_cross_site" in response.text
    assert not records(middleware) and not [name for name in browser.cookies if "_tx_" in name]
    assert not app.posts


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        pytest.param("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n"
                     b"--x--\r\n", 415, "preserve_post_unsupported", id="multipart"),
        pytest.param("application/json", b'{"a": 1}', 415, "preserve_post_unsupported", id="json"),
        pytest.param("text/plain", b"a=1", 415, "preserve_post_unsupported", id="text-plain"),
        pytest.param("", b"a=1", 415, "preserve_post_unsupported", id="no-type"),
        pytest.param("application/x-www-form-urlencoded; charset=iso-8859-1", b"a=%E9", 415,
                     "preserve_post_unsupported", id="latin-1"),
        pytest.param("application/x-www-form-urlencoded", b"a=%E9", 400, "preserve_post_unreadable",
                     id="not-utf-8"),
        pytest.param("application/x-www-form-urlencoded", "a=é".encode(), 400, "preserve_post_unreadable",
                     id="raw-non-ascii"),
        pytest.param("application/x-www-form-urlencoded", b"a=1%0A2", 400, "preserve_post_unreadable",
                     id="lone-line-feed"),
        pytest.param("application/x-www-form-urlencoded", b"a=1%0D2", 400, "preserve_post_unreadable",
                     id="lone-carriage-return"),
        pytest.param("application/x-www-form-urlencoded", b"a=%00", 400, "preserve_post_unreadable", id="nul"),
        pytest.param("application/x-www-form-urlencoded", b"=orphan", 400, "preserve_post_unreadable",
                     id="empty-name"),
        pytest.param("application/x-www-form-urlencoded", b"_charset_=latin1", 400, "preserve_post_unreadable",
                     id="charset-field"),
        pytest.param("application/x-www-form-urlencoded", b"&".join(b"f%d=1" % i for i in range(1001)), 400,
                     "preserve_post_unreadable", id="too-many-fields"),
    ],
)
def test_a_form_that_cannot_be_kept_gets_a_page_saying_so(build: Callable[..., SSOMiddleware], app: FormApp,
                                                          content_type: str, body: bytes, status: int,
                                                          code: str) -> None:
    middleware = build()
    browser = browser_for(middleware)
    response = browser.post("/app/forms/report", body, headers={**SAME_ORIGIN, "Content-Type": content_type},
                            status=status)
    assert code in response.text and "Please" in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert not records(middleware) and not app.posts


class _Unreadable(io.RawIOBase):
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body must not be read")


def test_a_body_over_the_bound_is_refused_unread(build: Callable[..., SSOMiddleware]) -> None:
    middleware = build(preserve_post_max_body=2048)
    environ = {**webtest.TestRequest.blank("/app/forms/report", method="POST").environ,
               "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": "2049",
               "wsgi.input": _Unreadable(), "HTTP_SEC_FETCH_SITE": "same-origin", "HTTP_SEC_FETCH_MODE": "navigate",
               "HTTP_ORIGIN": BASE_URL, "wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"}
    status: list[str] = []
    body = b"".join(middleware(environ, lambda s, h, e=None: status.append(s)))
    assert status == ["413 Request Entity Too Large"] and b"preserve_post_too_large" in body
    chunked = {**environ, "CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}
    status.clear()
    body = b"".join(middleware(chunked, lambda s, h, e=None: status.append(s)))
    assert status == ["411 Length Required"] and b"preserve_post_length_required" in body


def test_a_body_at_the_bound_is_kept(build: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock,
                                     app: FormApp) -> None:
    middleware = build(preserve_post_max_body=2048)
    value = "x" * (2048 - len("text="))
    browser, response = expired_session_posts(middleware, provider, clock, fields=[("text", value)])
    assert response.status_int == 303
    parsed = parse_page(browser.get(provider.authorize(response.location)).text)
    assert parsed.fields == [("text", value)]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({**SAME_ORIGIN, "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}, id="fetch"),
        pytest.param({"X-Requested-With": "XMLHttpRequest", "Accept": "text/html", "Origin": BASE_URL}, id="xhr"),
        pytest.param({**SAME_ORIGIN, "Sec-Fetch-Dest": "iframe"}, id="in-a-frame"),
    ],
)
def test_a_script_post_keeps_its_401(build: Callable[..., SSOMiddleware], headers: dict[str, str]) -> None:
    middleware = build()
    response = post_form(browser_for(middleware), "/app/forms/report", headers=headers, status=401)
    assert response.json["error"] == "login_required" and not records(middleware)


def test_a_step_up_path_keeps_the_form_through_the_stronger_sign_in(build: Callable[..., SSOMiddleware],
                                                                    provider: FakeProvider, clock: Clock,
                                                                    app: FormApp) -> None:
    middleware = build(protected_paths="", preserve_post="/billing", access_rules="/billing max_age 300",
                       session_idle_timeout=100_000)
    browser = browser_for(middleware)
    sign_in(browser, provider, target="/billing")
    clock.advance(1000)  # signed in, but the authentication is too old for /billing
    response = post_form(browser, "/billing/pay", [("amount", "12.50")])
    assert response.status_int == 303
    params = {key: values[0] for key, values in parse_qs(urlsplit(response.location).query).items()}
    assert params["max_age"] == "300"
    page = browser.get(provider.authorize(response.location))
    assert parse_page(page.text).fields == [("amount", "12.50")]
    assert post_form(browser, "/billing/pay", [("amount", "12.50")]).json["remote_user"] == "alice"
    assert [post["fields"] for post in app.posts] == [[("amount", "12.50")]]


def test_a_forbidden_user_is_never_kept(build: Callable[..., SSOMiddleware], provider: FakeProvider,
                                        clock: Clock) -> None:
    middleware = build(protected_paths="", preserve_post="/admin", access_rules="/admin claim role equals admin")
    browser = browser_for(middleware)
    sign_in(browser, provider, target="/admin")
    assert post_form(browser, "/admin/x", status=403).status_int == 403  # signing in again would not help
    assert not records(middleware)


def test_form_post_response_mode_also_gets_the_page(build: Callable[..., SSOMiddleware], provider: FakeProvider,
                                                    clock: Clock) -> None:
    middleware = build(response_mode="form_post")
    browser = browser_for(middleware)
    response = post_form(browser, "/app/forms/report", [("a", "1")])
    callback = urlsplit(provider.authorize(response.location))
    answer = browser.post(callback.path, dict(parse_qsl(callback.query)))
    assert parse_page(answer.text).fields == [("a", "1")]


def test_an_anonymous_visitor_is_kept_too(build: Callable[..., SSOMiddleware], provider: FakeProvider,
                                          app: FormApp) -> None:
    """No session cookie at all (the hot path's shortcut): the same flow."""
    middleware = build()
    browser = browser_for(middleware)
    response = post_form(browser, "/app/forms/report", [("a", "1")])
    assert response.status_int == 303 and len(records(middleware)) == 1
    assert parse_page(browser.get(provider.authorize(response.location)).text).fields == [("a", "1")]


@pytest.mark.parametrize(
    ("bad", "setting"),
    [
        pytest.param({"preserve_post": "/elsewhere"}, "preserve_post", id="not-guarded"),
        pytest.param({"preserve_post": "/app/%2Fx"}, "preserve_post", id="encoded-slash"),
        pytest.param({"preserve_post": "app"}, "preserve_post", id="not-a-path"),
        pytest.param({"session_type": "cookie"}, "preserve_post", id="cookie-store"),
        pytest.param({"preserve_post_max_body": 70000}, "preserve_post_max_body", id="over-max-request-body"),
        pytest.param({"preserve_post_max_body": 0}, "preserve_post_max_body", id="zero"),
    ],
)
def test_bad_settings_are_refused_when_built(build: Callable[..., SSOMiddleware], bad: dict[str, Any],
                                             setting: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build(**bad)
    assert raised.value.setting == setting


def test_prefixes_are_canonical_and_a_guarded_parent_counts(build: Callable[..., SSOMiddleware]) -> None:
    assert build(preserve_post="/app/forms/ /app//x").config.preserve_post == ("/app/forms", "/app/x")
    assert build(protected_paths="/app/forms/a", preserve_post="/app").config.preserve_post == ("/app",)


def whoami(browser: webtest.TestApp) -> Optional[str]:
    value = browser.get("/app/whoami", headers={"Accept": "application/json"}, expect_errors=True)
    return value.json.get("remote_user") if value.status_int == 200 else None


def test_log_lines_name_no_field(build: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock,
                                 caplog: pytest.LogCaptureFixture) -> None:
    expired_session_posts(build(), provider, clock, fields=[("password_hint", "s3cr3t-value")])
    assert not re.search("s3cr3t-value|password_hint", caplog.text)


def test_a_sign_in_that_cannot_start_drops_the_kept_form(build: Callable[..., SSOMiddleware], provider: FakeProvider,
                                                         app: FormApp) -> None:
    """The provider is down when the sign-in starts: a 503 page, and no record left behind for nobody."""
    middleware = build()
    provider.fail["/.well-known/openid-configuration"] = requests.ConnectionError("down")
    response = post_form(browser_for(middleware), "/app/forms/report", [("a", "1")], status=503)
    assert "provider_unreachable" in response.text
    assert not records(middleware) and not app.posts


def test_another_user_signing_in_does_not_receive_the_form(build: Callable[..., SSOMiddleware],
                                                           provider: FakeProvider, clock: Clock,
                                                           app: FormApp) -> None:
    """A shared terminal: alice's session ended while she typed; bob signs in at the login form shown."""
    middleware = build()
    browser, response = expired_session_posts(middleware, provider, clock)
    answer = browser.get(provider.authorize(response.location, user="bob"), status=303)
    assert answer.location.endswith("error=preserve_post_other_user")
    page = browser.get(answer.location, status=409)
    assert "another user" in page.text
    assert whoami(browser) == "bob" and not app.posts and not records(middleware)


def test_the_same_user_signing_in_again_receives_it(build: Callable[..., SSOMiddleware],
                                                      provider: FakeProvider, clock: Clock, app: FormApp) -> None:
    """Bound to alice (her session expired): alice signing in again gets the page."""
    middleware = build()
    browser, response = expired_session_posts(middleware, provider, clock, fields=[("a", "1")])
    page = browser.get(provider.authorize(response.location, user="alice"))
    assert parse_page(page.text).fields == [("a", "1")]


def test_an_anonymous_form_is_not_bound_to_a_user(build: Callable[..., SSOMiddleware],
                                                  provider: FakeProvider) -> None:
    """No session cookie at all: nobody to bind to; whoever signs in in that browser gets the page."""
    browser = browser_for(build())
    response = post_form(browser, "/app/forms/report", [("a", "1")])
    page = browser.get(provider.authorize(response.location, user="bob"))
    assert parse_page(page.text).fields == [("a", "1")]


def test_anonymous_posts_cannot_fill_the_store(build: Callable[..., SSOMiddleware], provider: FakeProvider,
                                               clock: Clock, app: FormApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: a script (no browser, no cookie, headers forged) POSTs forms in a loop; each would be one store write.

    Without a bound the store (Redis, memcached: evicting sessions; the file store: the disk) fills at request
    rate.  This process keeps at most ``MAX_KEPT_BYTES`` of forms not yet taken (a small one counts 1 KiB);
    beyond it a form is refused, nothing written; room comes back as records are taken or expire.
    """
    from sso_middleware._session import preserved_posts

    monkeypatch.setattr(preserved_posts, "MAX_KEPT_BYTES", 6 * 1024, raising=False)
    middleware = build()
    browsers = [browser_for(middleware) for _ in range(20)]
    answers = [post_form(browser, "/app/forms/report", [("a", str(n))], status="*")
               for n, browser in enumerate(browsers)]
    assert len(records(middleware)) == 6
    assert [answer.status_int for answer in answers] == [303] * 6 + [503] * 14
    assert "preserve_post_busy" in answers[-1].text and "Please" in answers[-1].text
    # A form taken frees its room at once...
    assert parse_page(browsers[0].get(provider.authorize(answers[0].location)).text).fields == [("a", "0")]
    late = browser_for(middleware)
    assert post_form(late, "/app/forms/report", [("b", "1")], status="*").status_int == 303
    assert post_form(browser_for(middleware), "/app/forms/report", [("b", "2")], status="*").status_int == 503
    # ... and expiry frees the rest.
    clock.advance(middleware.config.transaction_ttl + 61)
    browser = browser_for(middleware)
    response = post_form(browser, "/app/forms/report", [("c", "3")])
    assert response.status_int == 303
    assert parse_page(browser.get(provider.authorize(response.location)).text).fields == [("c", "3")]


def test_a_form_not_kept_gets_the_branded_page_in_the_users_language(build: Callable[..., SSOMiddleware],
                                                                     tmp_path: Any) -> None:
    """The page saying a form was not kept is a failure page like the others: the operator's template, German."""
    template = tmp_path / "page.html"
    template.write_text('<html lang="{lang}"><p class="brand">ACME</p><h1>{title}</h1><p>{message}</p>'
                        "<code>{code}</code></html>", encoding="utf-8")
    middleware = build(failure_page_template=str(template))
    response = post_form(browser_for(middleware), "/app/forms/report", [("a", "1")],
                         headers={**SAME_ORIGIN, "Origin": "https://evil.example", "Accept-Language": "de"},
                         status=403)
    assert "ACME" in response.text and "preserve_post_cross_site" in response.text
    assert response.headers["Content-Language"] == "de" and 'lang="de"' in response.text
