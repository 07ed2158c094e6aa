"""Token revocation at sign-out (RFC 7009) against the real dev provider (``oidc-provider``, ``features.revocation``).

A user signs in at an application keeping tokens (``keep_access_token``, ``offline_access``)
served by waitress; the test reads the session's refresh and access tokens from the store
(as someone who copied them would hold them), signs out, and then calls the provider itself:
the token endpoint with the refresh token (``grant_type=refresh_token``) and the userinfo
endpoint with the access token.  With revocation both are refused; with
``revoke_tokens_on_logout = off`` (the control) the refresh token still refreshes after
sign-out -- the gap this closes.  A provider that is down at sign-out (stopped after
sign-in) does not keep the user signed in nor the browser from the provider's logout URL.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from sso_middleware._session.state import TOKENS_PREFIX
from sso_middleware.testing import DevProvider

from ..servers import stop_waitress
from .test_tokens_integration import App, get, session_id, sign_in, start_app

SCOPE = "openid profile email offline_access"


@pytest.fixture(scope="module")
def provider(oidc_provider: DevProvider) -> DevProvider:
    """The suite's shared provider: these tests register clients of their own and read only their events."""
    return oidc_provider


@pytest.fixture
def app_for(provider: DevProvider, tmp_path: Path) -> Iterator[Any]:
    started: list[App] = []

    def build(name: str, on: DevProvider = provider, **settings: Any) -> App:
        app = start_app(on, name, tmp_path, scope=SCOPE, keep_access_token=True, **settings)
        started.append(app)
        return app

    yield build
    for app in started:
        stop_waitress(app.server)


def session_tokens(app: App, http: requests.Session) -> dict[str, Any]:
    """The tokens the session holds, read from the store (what a thief of the store record would have)."""
    record = app.middleware.store.backend.read_record(TOKENS_PREFIX + session_id(http, app))
    assert record is not None
    tokens: dict[str, Any] = json.loads(record)
    assert tokens["refresh_token"] and tokens["access_token"]
    return tokens


def sign_out(app: App, http: requests.Session, provider: DevProvider) -> requests.Response:
    """GET /auth/logout; the redirect must go to the provider's end-session endpoint, the session must be gone."""
    response = http.get(app.url("/auth/logout", target_url="/"), allow_redirects=False, timeout=15)
    assert response.status_code == 303, response.text[:300]
    location = urlsplit(response.headers["Location"])
    end_session = urlsplit(provider.endpoint("end_session"))
    assert (location.netloc, location.path) == (end_session.netloc, end_session.path), response.headers["Location"]
    return response


def refresh_status(provider: DevProvider, app: App, refresh_token: str) -> tuple[int, Any]:
    """The token endpoint's answer to the refresh token, asked directly with the client's credentials."""
    answer = requests.post(provider.endpoint("token"),
                           data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                           auth=(app.client.client_id, app.client.client_secret), timeout=10)
    return answer.status_code, answer.json()


def userinfo_status(provider: DevProvider, access_token: str) -> int:
    return requests.get(provider.endpoint("userinfo"), headers={"Authorization": f"Bearer {access_token}"},
                        timeout=10).status_code


def revocations(provider: DevProvider, app: App) -> list[dict[str, Any]]:
    return [event for event in provider.events("revocation") if event.get("client_id") == app.client.client_id]


def test_after_sign_out_the_refresh_token_no_longer_refreshes(provider: DevProvider, app_for: Any) -> None:
    app = app_for("revoking")
    http = sign_in(provider, app.base_url)
    tokens = session_tokens(app, http)
    assert userinfo_status(provider, tokens["access_token"]) == 200
    sign_out(app, http, provider)
    assert get(http, app.url("/whoami"))["user"] is None
    events = revocations(provider, app)
    assert [(e["token_type_hint"], e["status"], e["auth_method"]) for e in events] == [
        ("refresh_token", 200, "client_secret_basic"), ("access_token", 200, "client_secret_basic")]
    status, answer = refresh_status(provider, app, tokens["refresh_token"])
    assert (status, answer["error"]) == (400, "invalid_grant")
    assert userinfo_status(provider, tokens["access_token"]) == 401


def test_without_revocation_the_refresh_token_outlives_sign_out(provider: DevProvider, app_for: Any) -> None:
    """The control: what a copied refresh token is worth after sign-out when nothing revokes it."""
    app = app_for("keeping", revoke_tokens_on_logout="off")
    http = sign_in(provider, app.base_url)
    tokens = session_tokens(app, http)
    sign_out(app, http, provider)
    assert get(http, app.url("/whoami"))["user"] is None
    assert revocations(provider, app) == []
    status, answer = refresh_status(provider, app, tokens["refresh_token"])
    assert status == 200 and answer["access_token"], answer


def test_client_secret_post_is_used_at_the_revocation_endpoint(provider: DevProvider, app_for: Any) -> None:
    app = app_for("posting", token_endpoint_auth_method="client_secret_post")
    http = sign_in(provider, app.base_url)
    tokens = session_tokens(app, http)
    sign_out(app, http, provider)
    assert [e["auth_method"] for e in revocations(provider, app)] == ["client_secret_post"] * 2
    assert refresh_status(provider, app, tokens["refresh_token"])[0] == 400


def test_sign_out_completes_when_the_revocation_endpoint_is_unreachable(
        app_for: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The provider goes down after sign-in: sign-out still deletes the session and redirects, at once."""
    down = DevProvider()
    down.start()
    try:
        app = app_for("unreachable", on=down)
        http = sign_in(down, app.base_url)
        end_session = down.endpoint("end_session")
    finally:
        down.stop()
    with caplog.at_level(logging.WARNING, logger="sso_middleware"):
        started = time.monotonic()
        response = http.get(app.url("/auth/logout", target_url="/"), allow_redirects=False, timeout=15)
        elapsed = time.monotonic() - started
    assert response.status_code == 303 and response.headers["Location"].startswith(end_session + "?")
    assert get(http, app.url("/whoami"))["user"] is None
    assert elapsed < 5, elapsed
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "sign-out" in r.getMessage()]
    assert len(warned) == 1 and "revoking the refresh_token" in warned[0] and "signed out anyway" in warned[0]
