"""``api_session(environ)`` end to end: a real provider, a real sign-in, a real resource server.

The bundled ``oidc-provider`` issues access tokens living ``TTL`` seconds; an application
behind the middleware (``keep_access_token``, served by waitress) calls the provider's
userinfo endpoint -- a resource server that must accept the signed-in user's token --
through ``api_session(environ)`` and shows the claims it got back and a fingerprint of
the token (never the token).  Plain http to the provider works because the middleware's
``allow_insecure_http`` is on and the provider is on loopback; nothing sets
``OAUTHLIB_INSECURE_TRANSPORT``.  :mod:`tests.integration.test_egress` runs the same
application through a proxy, a private CA and mutual TLS.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from oauthlib.oauth2 import InsecureTransportError

from sso_middleware import NoAccessToken, api_session, get_userinfo
from sso_middleware.testing import DevProvider

from ..servers import stop_waitress
from ..token_apps import WSGIApp, fingerprint
from .test_tokens_integration import App, get, refreshes, sign_in, sleep_until, start_app, token_settings

TTL = 4  # seconds an access token lives (refresh_margin 1: due after 3)


def api_app(userinfo_url: str) -> WSGIApp:
    """``/api`` calls ``userinfo_url`` (``/api/other?url=`` another URL) through ``api_session(environ)``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        userinfo = get_userinfo(environ)
        status = "200 OK"
        document: dict[str, Any] = {"user": userinfo.get("sub") if userinfo else None,
                                    "token": fingerprint(environ.get("sso.access_token"))}
        path = environ.get("PATH_INFO")
        if path in ("/api", "/api/other"):
            url = userinfo_url if path == "/api" else environ.get("QUERY_STRING", "").removeprefix("url=")
            try:
                with api_session(environ) as api:
                    answer = api.get(url)
                document.update(status=answer.status_code, claims=answer.json() if answer.ok else None)
            except NoAccessToken as exc:
                status, document["error"], document["detail"] = "401 Unauthorized", "no_token", str(exc)
            except InsecureTransportError as exc:
                status, document["error"], document["detail"] = "400 Bad Request", "insecure_transport", exc.description
            except requests.RequestException as exc:
                status, document["error"] = "502 Bad Gateway", type(exc).__name__
        body = json.dumps(document).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def start_api_app(provider: DevProvider, name: str, tmp: Path, **settings: Any) -> App:
    """The api app behind a middleware with ``keep_access_token``, registered with ``provider``."""
    return start_app(provider, name, tmp, app=api_app(provider.endpoint("userinfo")), **token_settings(**settings))


@pytest.fixture(scope="module")
def provider() -> Iterator[DevProvider]:
    with DevProvider(access_token_ttl=TTL) as started:
        yield started


@pytest.fixture(scope="module")
def app(provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    started = start_api_app(provider, "apisession", tmp_path_factory.mktemp("api-session"))
    try:
        yield started
    finally:
        stop_waitress(started.server)


def test_the_app_gets_the_users_claims_from_the_api_through_api_session(provider: DevProvider, app: App) -> None:
    http = sign_in(provider, app.base_url)
    provider.clear_events()
    shown = get(http, app.url("/api"))
    assert shown["http"] == 200 and shown["status"] == 200, shown
    assert shown["claims"]["sub"] == "alice" and shown["claims"]["email"] == "alice@example.com"
    (call,) = provider.events("userinfo")  # the app's call, nothing else
    assert (call["status"], call["auth"]) == (200, "header")  # Authorization: Bearer, not a query or a body
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


def test_after_expiry_the_session_carries_the_token_the_middleware_refreshed(provider: DevProvider, app: App) -> None:
    http = sign_in(provider, app.base_url)
    first = get(http, app.url("/api"))
    assert first["status"] == 200
    before = len(refreshes(provider, app.client))
    sleep_until(time.time() + TTL + 0.5)  # past expiry: the middleware refreshes before the app runs
    second = get(http, app.url("/api"))
    assert second["status"] == 200 and second["claims"]["sub"] == "alice", second
    assert second["token"] != first["token"]
    assert len(refreshes(provider, app.client)) == before + 1  # the middleware's refresh, once


def test_anonymous_is_no_access_token(app: App) -> None:
    shown = get(requests.Session(), app.url("/api"))
    assert shown["http"] == 401 and shown["detail"] == "no access token"


def test_plain_http_to_another_host_is_refused_before_connecting(provider: DevProvider, app: App) -> None:
    http = sign_in(provider, app.base_url)
    # example.invalid never resolves: a refusal after connecting would be a ConnectionError (502)
    shown = get(http, app.url("/api/other") + "?url=http://api.example.invalid/userinfo")
    assert shown["http"] == 400 and shown["error"] == "insecure_transport", shown
    assert "allowed only on a loopback host" in shown["detail"]
