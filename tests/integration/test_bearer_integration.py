"""Bearer tokens on API paths against the real DevProvider, over real HTTP (waitress).

A single-page app (a public PKCE client) and a back end (a confidential client) get JWT
access tokens for the API with Auth0's ``audience`` through the provider's login page;
the wrapped App 2 accepts them on ``/api`` (200 with the token's claims), refuses a
request without one (401), an opaque token (401, or accepted through RFC 7662
introspection by an app that turns it on), an expired one (the clock seam), one for
another API (401) and one without the scope a path requires (403), and picks up a key
rotation by refetching the JWKS once.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable, Optional

import jwt
import pytest
import requests
import waitress

from sso_middleware import SSOMiddleware, get_scopes
from sso_middleware.testing import DEFAULT_API, ClientCredentials, Clock, DevProvider, RecordingTransport

from ..oauth_client import code_flow_tokens
from ..servers import free_port, stop_waitress

OTHER_API = "https://other.example/api"
OPAQUE_API = "https://opaque.example/api"
RESOURCES = {
    DEFAULT_API: {"scopes": ["read:messages", "write:messages", "read:admin"]},
    OTHER_API: {"scopes": ["read:messages"]},
    OPAQUE_API: {"scopes": ["read:messages"], "format": "opaque"},
}
RULES = "/api/admin scope read:admin"


def api_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = json.dumps({"remote_user": environ.get("REMOTE_USER"), "claims": environ.get("sso.userinfo"),
                       "scopes": get_scopes(environ)}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@dataclass
class App:
    base_url: str
    middleware: SSOMiddleware
    transport: RecordingTransport
    server: Any
    clock: Optional[Clock] = None

    def get(self, path: str, token: Optional[str] = None, **headers: str) -> requests.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.get(self.base_url + path, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def provider() -> Iterator[DevProvider]:
    with DevProvider(resources=RESOURCES) as started:
        yield started


@pytest.fixture(scope="module")
def spa(provider: DevProvider) -> ClientCredentials:
    """A single-page app: a public client (no secret, PKCE)."""
    return provider.register_client([f"http://127.0.0.1:{free_port()}/callback"], token_endpoint_auth_method="none",
                                    client_name="SPA")


@pytest.fixture(scope="module")
def backend(provider: DevProvider) -> ClientCredentials:
    """A confidential client calling the API (client_secret_post)."""
    return provider.register_client([f"http://127.0.0.1:{free_port()}/cb"],
                                    token_endpoint_auth_method="client_secret_post")


def start_app(provider: DevProvider, tmp: Any, clock: Optional[Clock] = None, **settings: Any) -> App:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    client = provider.register_client([base_url + "/auth/callback"])
    transport = settings.pop("http_transport", None) or RecordingTransport()
    middleware = SSOMiddleware(
        api_app, issuer=provider.issuer, client_id=client.client_id, client_secret=client.client_secret,
        base_url=base_url, session_secret=secrets.token_urlsafe(32), session_data_dir=str(tmp / str(port)),
        allow_insecure_http=True, bearer_paths="/api", http_transport=transport, clock=clock, **settings,
    )
    server = waitress.create_server(middleware, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    return App(base_url, middleware, transport, server, clock)


@pytest.fixture(scope="module")
def apps(provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, App]]:
    tmp = tmp_path_factory.mktemp("bearer-apps")
    started = {
        "api": start_app(provider, tmp, bearer_audience=DEFAULT_API, bearer_rules=RULES),
        "clocked": start_app(provider, tmp, Clock(), bearer_audience=DEFAULT_API, clock_skew=5),
        "introspecting": start_app(provider, tmp, bearer_audience=OPAQUE_API, bearer_introspection=True),
    }
    try:
        yield started
    finally:
        for app in started.values():
            stop_waitress(app.server)


def assert_refused(response: requests.Response, status: int, error: str | None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="http://127.0.0.1:'), challenge
    body: dict[str, Any] = response.json()
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge and body["error"] == error
    return body


def test_the_spas_jwt_access_token_is_accepted(provider: DevProvider, spa: ClientCredentials,
                                               apps: dict[str, App]) -> None:
    tokens = code_flow_tokens(provider, spa, scope="openid profile read:messages", audience=DEFAULT_API)
    token = tokens["access_token"]
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    response = apps["api"].get("/api/messages", token)
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["remote_user"] == "alice"
    assert seen["scopes"] == ["read:messages"]
    claims = seen["claims"]
    assert (claims["aud"], claims["client_id"], claims["iss"]) == (DEFAULT_API, spa.client_id, provider.issuer)
    assert "Set-Cookie" not in response.headers
    # the token is checked locally: no call to the provider beyond discovery and the JWKS
    assert {call.url.rsplit("/", 1)[-1] for call in apps["api"].transport.requests} <= {
        "openid-configuration", "jwks.json"}


def test_no_token_is_a_401_challenge(apps: dict[str, App]) -> None:
    body = assert_refused(apps["api"].get("/api/messages"), 401, None)
    assert body["code"] == "bearer_token_missing"


def test_insufficient_scope_is_403(provider: DevProvider, backend: ClientCredentials, apps: dict[str, App]) -> None:
    reader = code_flow_tokens(provider, backend, "bob", scope="openid read:messages", audience=DEFAULT_API)
    assert apps["api"].get("/api/messages", reader["access_token"]).json()["remote_user"] == "bob"
    body = assert_refused(apps["api"].get("/api/admin/stats", reader["access_token"]), 403, "insufficient_scope")
    assert body["scope"] == "read:admin"
    admin = code_flow_tokens(provider, backend, scope="openid read:messages read:admin", audience=DEFAULT_API)
    response = apps["api"].get("/api/admin/stats", admin["access_token"])
    assert response.status_code == 200 and response.json()["scopes"] == ["read:messages", "read:admin"]


def test_a_token_for_another_api_is_invalid(provider: DevProvider, spa: ClientCredentials,
                                            apps: dict[str, App]) -> None:
    other = code_flow_tokens(provider, spa, scope="openid read:messages", audience=OTHER_API)
    body = assert_refused(apps["api"].get("/api/messages", other["access_token"]), 401, "invalid_token")
    assert "Audience" in body["error_description"]


def test_an_id_token_is_no_access_token(provider: DevProvider, spa: ClientCredentials, apps: dict[str, App]) -> None:
    tokens = code_flow_tokens(provider, spa, scope="openid profile", audience=DEFAULT_API)
    assert_refused(apps["api"].get("/api/messages", tokens["id_token"]), 401, "invalid_token")


def test_opaque_tokens_are_refused_without_introspection(provider: DevProvider, backend: ClientCredentials,
                                                         apps: dict[str, App]) -> None:
    userinfo_token = code_flow_tokens(provider, backend, scope="openid profile")["access_token"]  # no audience
    body = assert_refused(apps["api"].get("/api/messages", userinfo_token), 401, "invalid_token")
    assert "not a JWT" in body["error_description"]


def test_opaque_tokens_are_introspected_when_asked(provider: DevProvider, spa: ClientCredentials,
                                                   backend: ClientCredentials, apps: dict[str, App]) -> None:
    app = apps["introspecting"]
    token = code_flow_tokens(provider, spa, scope="openid read:messages", audience=OPAQUE_API)["access_token"]
    assert token.count(".") == 0
    first = app.get("/api/messages", token)
    assert first.status_code == 200, first.text
    assert (first.json()["remote_user"], first.json()["scopes"]) == ("alice", ["read:messages"])
    assert first.json()["claims"]["aud"] == OPAQUE_API
    asked = len(app.transport.requests_to("/oauth/introspect"))
    assert app.get("/api/messages", token).status_code == 200
    assert len(app.transport.requests_to("/oauth/introspect")) == asked  # cached
    # an opaque token for userinfo (no audience) is active at the provider but not for this API
    userinfo_token = code_flow_tokens(provider, backend, scope="openid profile")["access_token"]
    assert "aud" in assert_refused(app.get("/api/x", userinfo_token), 401, "invalid_token")["error_description"]
    assert_refused(app.get("/api/x", "not-a-token-the-provider-knows"), 401, "invalid_token")


def test_a_refresh_token_is_no_access_token(provider: DevProvider, backend: ClientCredentials,
                                            apps: dict[str, App]) -> None:
    tokens = code_flow_tokens(provider, backend, scope="openid offline_access read:messages", audience=OPAQUE_API)
    assert "refresh_token" in tokens
    assert_refused(apps["introspecting"].get("/api/x", tokens["refresh_token"]), 401, "invalid_token")
    assert apps["introspecting"].get("/api/x", tokens["access_token"]).status_code == 200


def test_an_expired_token_is_invalid(provider: DevProvider, spa: ClientCredentials, apps: dict[str, App]) -> None:
    app = apps["clocked"]
    clock = app.clock
    assert clock is not None
    token = code_flow_tokens(provider, spa, scope="openid read:messages", audience=DEFAULT_API)["access_token"]
    clock.now = time.time()
    assert app.get("/api/x", token).status_code == 200
    clock.advance(provider.access_token_ttl + 10)  # past exp and the 5 s of clock_skew
    body = assert_refused(app.get("/api/x", token), 401, "invalid_token")
    assert "expired" in body["error_description"]


class JwksRecordingTransport(RecordingTransport):
    """Also keeps the kids of every JWKS answer, so a failing rotation test says what the app was served."""

    def __init__(self) -> None:
        super().__init__()
        self.served_kids: list[list[str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = super().send(request, **kwargs)
        if str(request.url).endswith("/jwks.json") and response.status_code == 200:
            body = response.raw.read(decode_content=False)
            response.raw = _Replay(body)  # the middleware reads the (streamed) body itself
            self.served_kids.append([key.get("kid") for key in json.loads(body).get("keys", [])])
        return response


class _Replay:
    """A body already read, served again through ``read1`` as urllib3's response serves it."""

    def __init__(self, body: bytes) -> None:
        self._body = io.BytesIO(body)

    def read1(self, size: int = -1, decode_content: bool = False) -> bytes:
        return self._body.read(size)

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_key_rotation_is_picked_up_with_one_jwks_refetch(spa: ClientCredentials,
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    transport = JwksRecordingTransport()
    with DevProvider() as rotating:
        client = rotating.register_client(["http://127.0.0.1:8993/callback"], token_endpoint_auth_method="none")
        app = start_app(rotating, tmp_path_factory.mktemp("rotation"), bearer_audience=DEFAULT_API,
                        http_transport=transport)
        try:
            before = code_flow_tokens(rotating, client, scope="openid read:messages", audience=DEFAULT_API)
            first_kid = jwt.get_unverified_header(before["access_token"])["kid"]
            assert app.get("/api/x", before["access_token"]).status_code == 200, (first_kid, transport.served_kids)
            rotating.rotate_keys()
            after = code_flow_tokens(rotating, client, scope="openid read:messages", audience=DEFAULT_API)
            new_kid = jwt.get_unverified_header(after["access_token"])["kid"]
            assert new_kid == rotating.signing_kid
            assert app.get("/api/x", after["access_token"]).status_code == 200, (new_kid, transport.served_kids)
            assert transport.served_kids == [[first_kid], [new_kid]]  # one fetch, then one refetch
            assert_refused(app.get("/api/x", before["access_token"]), 401, "invalid_token")  # its key is gone
        finally:
            stop_waitress(app.server)
