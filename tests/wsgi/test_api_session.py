"""``api_session(environ)`` inside an application behind the middleware (fake provider, in process).

The application calls the fake provider's userinfo endpoint -- a resource server that
accepts only the access tokens the provider issued -- through ``api_session(environ)``,
whose transport is the provider's own adapter behind a recorder, so each test sees both
the answer and what ``requests`` would have connected with (timeout, proxy, trust).
The attacks: the settings object that decides where and how the token is sent planted
in the environ (by whatever sits in front of the middleware) or sent as a header.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

import pytest
import requests
import webtest
from oauthlib.oauth2 import InsecureTransportError
from requests.adapters import BaseAdapter

from sso_middleware import NoAccessToken, SSOMiddleware, api_session
from sso_middleware._oidc.egress import Egress
from sso_middleware._wsgi.api_session import APISettings
from sso_middleware._wsgi.environ import ACCESS_TOKEN_EXPIRES_KEY, ACCESS_TOKEN_KEY, API_SETTINGS_KEY
from sso_middleware.testing import Clock

from ..conftest import browser_for
from ..fakes import FakeProvider
from .test_refresh import LIFETIME, MARGIN, SCOPE, latest_access_token, sign_in

PROXY = "http://proxy.corp.example:3128"
ATTACKER = APISettings(timeout=600.0, egress=Egress(proxy="http://attacker.example:8080", ca_bundle="/tmp/evil.pem"),
                       allow_insecure_http=True)
PLANTED = {API_SETTINGS_KEY: ATTACKER, ACCESS_TOKEN_KEY: "at-planted", ACCESS_TOKEN_EXPIRES_KEY: 4_000_000_000.0}


class Recorder(BaseAdapter):
    """Forwards to ``inner`` and keeps the keyword arguments ``requests`` sent with each request."""

    def __init__(self, inner: BaseAdapter) -> None:
        super().__init__()
        self.inner = inner
        self.sent: list[tuple[requests.PreparedRequest, dict[str, Any]]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append((request, kwargs))
        return self.inner.send(request, **kwargs)

    def close(self) -> None:
        self.inner.close()


def api_app(provider: FakeProvider, seen: list[dict[str, Any]]) -> Callable[..., list[bytes]]:
    """``/api?url=...`` calls ``url`` (default: the provider's userinfo) through ``api_session(environ)``."""
    userinfo = provider.discovery()["userinfo_endpoint"]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        status, document = "200 OK", {}
        url = webtest.TestRequest(environ).GET.get("url", userinfo)
        record: dict[str, Any] = {"settings": environ.get(API_SETTINGS_KEY)}
        seen.append(record)
        try:
            with api_session(environ) as api:
                recorder = Recorder(provider.transport())
                api.mount("https://", recorder)
                api.mount("http://", recorder)
                answer = api.get(url)
            request, sent = recorder.sent[-1]
            record.update(authorization=request.headers.get("Authorization"), **sent)
            document = {"status": answer.status_code, "claims": answer.json()}
        except NoAccessToken as exc:
            status, document = "401 Unauthorized", {"error": "no_token", "detail": str(exc)}
        except InsecureTransportError as exc:
            status, document = "400 Bad Request", {"error": "insecure_transport", "detail": exc.description}
        body = json.dumps(document).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000)


@pytest.fixture
def provider(clock: Clock) -> FakeProvider:
    return FakeProvider(clock=clock, expires_in=LIFETIME)


Build = Callable[..., tuple[SSOMiddleware, webtest.TestApp, list[dict[str, Any]]]]


@pytest.fixture
def build(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock) -> Build:
    def make(**overrides: Any) -> tuple[SSOMiddleware, webtest.TestApp, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        settings = {"keep_access_token": True, "scope": SCOPE, "http_timeout": 3.5, "http_proxy": PROXY,
                    "clock": clock, **overrides}
        middleware = make_middleware(api_app(provider, seen), **settings)
        return middleware, browser_for(middleware), seen

    return make


def call(browser: webtest.TestApp, url: Optional[str] = None, **kwargs: Any) -> Any:
    return browser.get("/api", {"url": url} if url else {}, expect_errors=True, **kwargs)


def test_the_app_calls_the_api_with_the_users_token_and_the_middlewares_settings(
    build: Build, provider: FakeProvider
) -> None:
    middleware, browser, seen = build()
    sign_in(browser, provider)
    answer = call(browser)
    assert answer.status_int == 200 and answer.json["status"] == 200
    assert answer.json["claims"]["sub"] == "alice"  # the resource server accepted the token
    record = seen[-1]
    assert record["authorization"] == f"Bearer {latest_access_token(provider)}"
    assert record["settings"] is middleware.api_settings
    assert (record["timeout"], record["proxies"], record["verify"], record["cert"]) == (3.5, {"all": PROXY}, True, None)


def test_the_token_is_the_one_the_middleware_refreshed(build: Build, provider: FakeProvider, clock: Clock) -> None:
    _, browser, seen = build()
    sign_in(browser, provider)
    assert call(browser).json["claims"]["sub"] == "alice"
    first = seen[-1]["authorization"]
    clock.advance(LIFETIME - MARGIN + 1)  # due: the middleware refreshes before the app runs
    answer = call(browser)
    assert answer.json["status"] == 200 and answer.json["claims"]["sub"] == "alice"
    assert seen[-1]["authorization"] == f"Bearer {latest_access_token(provider)}" != first
    refreshes = [sent for sent in provider.requests_to("/token") if "grant_type=refresh_token" in str(sent.body)]
    assert len(refreshes) == 1  # the middleware's; the session itself never calls the token endpoint


def test_nobody_signed_in_is_no_access_token(build: Build) -> None:
    _, browser, seen = build()
    answer = call(browser)
    assert answer.status_int == 401 and answer.json["detail"] == "no access token"
    assert seen[-1]["settings"] is None


def test_without_keep_access_token_there_is_no_session(build: Build, provider: FakeProvider) -> None:
    _, browser, seen = build(keep_access_token=False)
    sign_in(browser, provider)
    assert call(browser, extra_environ=dict(PLANTED)).status_int == 401
    assert seen[-1]["settings"] is None  # a planted one is removed


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed in"])
def test_planted_api_settings_are_never_used(build: Build, provider: FakeProvider, signed_in: bool) -> None:
    """Something in front of the middleware plants settings that would send the token to an attacker's proxy."""
    middleware, browser, seen = build()
    if signed_in:
        sign_in(browser, provider)
    answer = call(browser, extra_environ=dict(PLANTED))
    if not signed_in:
        assert answer.status_int == 401 and seen[-1]["settings"] is None  # planted token and settings removed
        return
    assert answer.status_int == 200
    record = seen[-1]
    assert record["settings"] is middleware.api_settings and record["settings"] != ATTACKER
    assert record["authorization"] == f"Bearer {latest_access_token(provider)}"
    assert (record["timeout"], record["proxies"], record["verify"]) == (3.5, {"all": PROXY}, True)
    # and the planted allow_insecure_http does not open plain http to loopback either
    refused = call(browser, "http://127.0.0.1:8080/", extra_environ=dict(PLANTED))
    assert refused.status_int == 400 and "allow_insecure_http" in refused.json["detail"]


def test_a_header_cannot_become_the_settings(build: Build, provider: FakeProvider) -> None:
    """Request headers reach the environ as ``HTTP_*`` only: a header named like the key is not it."""
    middleware, browser, seen = build()
    sign_in(browser, provider)
    answer = call(browser, headers={"sso.api_settings": "allow_insecure_http", "Sso-Api-Settings": "x"})
    assert answer.status_int == 200 and seen[-1]["settings"] is middleware.api_settings
    call(webtest.TestApp(middleware, extra_environ=browser.extra_environ), headers={"sso.api_settings": "x"})
    assert seen[-1]["settings"] is None


@pytest.mark.parametrize(
    ("allow_insecure_http", "url", "status"),
    [
        pytest.param(False, "http://127.0.0.1:8080/userinfo", 400, id="loopback, not allowed"),
        pytest.param(True, "http://api.example/userinfo", 400, id="another host, allowed"),
        pytest.param(True, "http://127.0.0.1:8080/userinfo", 200, id="loopback, allowed"),
    ],
)
def test_plain_http_follows_allow_insecure_http(
    build: Build, provider: FakeProvider, allow_insecure_http: bool, url: str, status: int
) -> None:
    _, browser, seen = build(allow_insecure_http=allow_insecure_http)
    sign_in(browser, provider)
    answer = call(browser, url)
    assert answer.status_int == status, answer.text
    if status == 400:
        assert answer.json["error"] == "insecure_transport"
        assert "authorization" not in seen[-1]  # nothing was sent
    else:
        assert seen[-1]["authorization"] == f"Bearer {latest_access_token(provider)}"
