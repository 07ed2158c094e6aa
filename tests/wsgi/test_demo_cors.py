"""The demo's CORS wrapper (``demo/cors.py``): one origin, one path prefix, preflights answered outside.

Also why outside: around a real ``SSOMiddleware`` with a bearer path (the fake provider's keys),
a preflight passes, a refusal is readable from the page, a valid token reaches the app.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

import pytest
import webtest

from demo.cors import CORSForOrigin
from sso_middleware import SSOMiddleware

from ..conftest import browser_for
from ..tokens import API, access_token

SPA = "http://127.0.0.1:5001"
PREFLIGHT = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}


class Recorded:
    """A wrapped app that answers 401 with a challenge (as a bearer path without a token does)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.calls.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Bearer error="invalid_token"'),
                                            ("Content-Type", "application/json")])
        return [b'{"error":"invalid_token"}']


@pytest.fixture
def inner() -> Recorded:
    return Recorded()


@pytest.fixture
def app(inner: Recorded) -> webtest.TestApp:
    return webtest.TestApp(CORSForOrigin(inner, SPA, "/api/me"))


def test_a_preflight_from_the_origin_is_answered_without_reaching_the_app(app: webtest.TestApp,
                                                                          inner: Recorded) -> None:
    answer = app.options("/api/me", headers={"Origin": SPA, **PREFLIGHT})
    assert answer.status_int == 204
    assert answer.headers["Access-Control-Allow-Origin"] == SPA
    assert answer.headers["Access-Control-Allow-Headers"] == "authorization"
    assert answer.headers["Access-Control-Allow-Methods"] == "GET"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert inner.calls == []


@pytest.mark.parametrize("origin", [
    pytest.param("http://127.0.0.1:5009", id="another-port"),
    pytest.param("http://evil.example", id="another-host"),
    pytest.param(SPA + ".evil.example", id="suffix"),
    pytest.param("null", id="null-origin"),
])
def test_another_origin_gets_no_cors_headers(app: webtest.TestApp, origin: str) -> None:
    preflight = app.options("/api/me", headers={"Origin": origin, **PREFLIGHT})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    real = app.get("/api/me", headers={"Origin": origin}, status=401)
    assert "Access-Control-Allow-Origin" not in real.headers
    assert real.headers["Vary"] == "Origin"


def test_the_real_request_reaches_the_app_and_its_answer_is_readable(app: webtest.TestApp, inner: Recorded) -> None:
    answer = app.get("/api/me", headers={"Origin": SPA, "Authorization": "Bearer x"}, status=401)
    assert inner.calls == [("GET", "/api/me")]
    assert answer.headers["Access-Control-Allow-Origin"] == SPA
    assert answer.headers["Access-Control-Expose-Headers"] == "WWW-Authenticate"
    assert answer.headers["Vary"] == "Origin"


@pytest.mark.parametrize("path", ["/api", "/api/meta", "/dashboard", "/"])
def test_paths_outside_the_prefix_are_left_alone(app: webtest.TestApp, inner: Recorded, path: str) -> None:
    answer = app.options(path, headers={"Origin": SPA, **PREFLIGHT}, status=401)
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Vary" not in answer.headers
    assert inner.calls == [("OPTIONS", path)]


def test_an_options_request_that_is_no_preflight_reaches_the_app(app: webtest.TestApp, inner: Recorded) -> None:
    app.options("/api/me", headers={"Origin": SPA}, status=401)
    assert inner.calls == [("OPTIONS", "/api/me")]


def test_outside_the_middleware_a_bearer_api_can_be_called_from_the_origin(
    make_middleware: Callable[..., SSOMiddleware],
) -> None:
    middleware = make_middleware(bearer_paths="/api/me", bearer_audience=API, bearer_only=True)
    # The middleware alone refuses a preflight: it carries no token, so the browser would stop there.
    browser_for(middleware).options("/api/me", headers={"Origin": SPA, **PREFLIGHT}, status=401)
    app = webtest.TestApp(CORSForOrigin(middleware, SPA, "/api/me"))
    assert app.options("/api/me", headers={"Origin": SPA, **PREFLIGHT}).status_int == 204
    refused = app.get("/api/me", headers={"Origin": SPA}, status=401)
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert refused.headers["Access-Control-Allow-Origin"] == SPA
    served = app.get("/api/me", headers={"Origin": SPA, "Authorization": f"Bearer {access_token()}"})
    assert served.status_int == 200 and served.headers["Access-Control-Allow-Origin"] == SPA
