"""The bundled development OpenID Provider and the ``sso_middleware.testing`` plugin.

Everything here talks to the real provider (node + oidc-provider) through ``requests``
with a small hand-rolled authorization-code + PKCE client; no middleware involved.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import importlib.metadata
import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

from sso_middleware.testing import (
    ACR_MFA,
    ACR_PWD,
    ACR_UNMET_REASON,
    DEFAULT_API,
    DEFAULT_CLIENTS,
    DEFAULT_RESOURCES,
    DEFAULT_USERS,
    DEV_OTP,
    ClientCredentials,
    DevProvider,
    DevProviderError,
    devprovider_source_dir,
    ensure_devprovider_installed,
)
from sso_middleware.testing.install import _copy_modules


def _plugin_installed() -> bool:
    return any(ep.name == "sso_middleware" for ep in importlib.metadata.entry_points(group="pytest11"))


# The plugin is registered through the package's "pytest11" entry point once the package is
# installed; when it runs from a bare checkout (PYTHONPATH), load it here instead.
PLUGIN_INSTALLED = _plugin_installed()
pytest_plugins = ["pytester"] if PLUGIN_INSTALLED else ["pytester", "sso_middleware.testing"]

SCOPE = "openid profile email offline_access"


# ---------------------------------------------------------------------------------------
# a tiny relying party


@dataclass
class Authorization:
    url: str
    state: str
    nonce: str
    verifier: str


def start_authorization(
    provider: DevProvider, client: ClientCredentials, *, pkce: bool = True, **params: str
) -> Authorization:
    state, nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": SCOPE,
        "state": state,
        "nonce": nonce,
    }
    if pkce:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query.update(code_challenge=challenge, code_challenge_method="S256")
    query.update(params)
    url = provider.endpoint("authorization") + "?" + urlencode(query)
    return Authorization(url, state, nonce, verifier)


def callback_params(response: requests.Response, client: ClientCredentials) -> dict[str, str]:
    """The parameters of the provider's redirect back to the client."""
    assert response.status_code == 303, (response.status_code, response.text[:500])
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uri + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange_code(
    provider: DevProvider,
    client: ClientCredentials,
    code: str,
    verifier: str,
    auth_method: str | None = None,
) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri}
    if verifier:
        data["code_verifier"] = verifier
    return token_request(provider, client, data, auth_method)


def token_request(
    provider: DevProvider, client: ClientCredentials, data: dict[str, str], auth_method: str | None = None
) -> requests.Response:
    method = auth_method or client.token_endpoint_auth_method
    auth: tuple[str, str] | None = None
    if method == "client_secret_basic":
        auth = (client.client_id, client.client_secret)
    elif method == "none":  # a public client: its id only (PKCE proves the code is its own)
        data = {**data, "client_id": client.client_id}
    else:
        data = {**data, "client_id": client.client_id, "client_secret": client.client_secret}
    return requests.post(provider.endpoint("token"), data=data, auth=auth, timeout=10)


def verify_id_token(provider: DevProvider, client: ClientCredentials, token: str) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    keys = {key["kid"]: key for key in provider.jwks()["keys"]}
    assert kid in keys, (kid, list(keys))
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(keys[kid]).key,
        algorithms=["RS256"],
        audience=client.client_id,
        issuer=provider.issuer,
    )
    return claims


def sign_in(
    provider: DevProvider,
    browser: requests.Session,
    client: ClientCredentials,
    user: str = "alice",
    **params: str,
) -> tuple[Authorization, dict[str, str]]:
    """Run the front channel: returns the authorization and the callback parameters."""
    authorization = start_authorization(provider, client, **params)
    response = provider.login(browser, user, authorization.url)
    return authorization, callback_params(response, client)


@pytest.fixture
def client(oidc_provider: DevProvider) -> ClientCredentials:
    """A fresh client authenticating with client_secret_basic."""
    return oidc_provider.register_client(
        ["http://127.0.0.1:8999/auth/callback"], ["http://127.0.0.1:8999/"], client_name="Test basic"
    )


@pytest.fixture
def post_client(oidc_provider: DevProvider) -> ClientCredentials:
    """A fresh client authenticating with client_secret_post."""
    return oidc_provider.register_client(
        ["http://127.0.0.1:8998/auth/callback"],
        ["http://127.0.0.1:8998/"],
        token_endpoint_auth_method="client_secret_post",
    )


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(autouse=True)
def _clean_events(oidc_provider: DevProvider) -> None:
    oidc_provider.clear_events()


class Listener(http.server.ThreadingHTTPServer):
    """A local HTTP endpoint recording what it receives (a relying party's back end)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.received = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                outer.received.set()
                payload = b"listener got it"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ---------------------------------------------------------------------------------------
# discovery


def test_discovery_answers_with_the_issuer(oidc_provider: DevProvider) -> None:
    document = requests.get(oidc_provider.discovery_url, timeout=10).json()
    assert document["issuer"] == oidc_provider.issuer == f"http://127.0.0.1:{oidc_provider.port}"
    assert oidc_provider.base_url == oidc_provider.issuer
    for name in ("authorization", "token", "userinfo", "end_session", "registration"):
        assert document[f"{name}_endpoint"].startswith(oidc_provider.base_url + "/")
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True
    assert document["response_types_supported"] == ["code"]
    assert {"client_secret_basic", "client_secret_post"} <= set(document["token_endpoint_auth_methods_supported"])
    assert {"connection", "email", "name"} <= set(document["claims_supported"])


# ---------------------------------------------------------------------------------------
# sign-in, token endpoint, claims


def test_login_and_code_exchange_with_client_secret_basic(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization, params = sign_in(oidc_provider, browser, client, connection="Username-Password-Authentication")
    assert params["state"] == authorization.state
    assert params["iss"] == oidc_provider.issuer  # RFC 9207
    interactions = oidc_provider.events("interaction")
    assert [(e["prompt"], e["client_id"]) for e in interactions] == [("login", client.client_id)]

    response = exchange_code(oidc_provider, client, params["code"], authorization.verifier)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert {"access_token", "id_token", "refresh_token"} <= tokens.keys()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600

    (event,) = oidc_provider.events("token")
    assert event["client_id"] == client.client_id
    assert event["grant_type"] == "authorization_code"
    assert event["auth_method"] == "client_secret_basic"
    assert event["status"] == 200
    assert event["issued"] == ["access_token", "id_token", "refresh_token"]
    assert event["params"]["code"] == event["params"]["code_verifier"] == "<redacted>"

    claims = verify_id_token(oidc_provider, client, tokens["id_token"])
    alice = DEFAULT_USERS["alice"]
    assert {k: claims[k] for k in alice.claims} == dict(alice.claims)
    assert claims["sub"] == alice.sub == "alice"
    assert claims["nonce"] == authorization.nonce
    assert claims["connection"] == "Username-Password-Authentication"
    assert claims["sid"]

    userinfo = requests.get(
        oidc_provider.endpoint("userinfo"), headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json() == {**alice.claims, "connection": "Username-Password-Authentication"}
    assert oidc_provider.events("userinfo")[-1]["auth"] == "header"


def test_client_secret_post_is_recorded_as_such(
    oidc_provider: DevProvider, post_client: ClientCredentials, browser: requests.Session
) -> None:
    authorization, params = sign_in(oidc_provider, browser, post_client)
    response = exchange_code(oidc_provider, post_client, params["code"], authorization.verifier)
    assert response.status_code == 200, response.text
    (event,) = oidc_provider.events("token")
    assert event["auth_method"] == "client_secret_post"
    assert event["params"]["client_secret"] == "<redacted>"


def test_events_tell_the_method_used_on_the_wire_not_the_registered_one(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    # oidc-provider accepts both methods for any client: only the event log tells them apart
    assert client.token_endpoint_auth_method == "client_secret_basic"
    authorization, params = sign_in(oidc_provider, browser, client)
    response = exchange_code(oidc_provider, client, params["code"], authorization.verifier, "client_secret_post")
    assert response.status_code == 200, response.text
    assert oidc_provider.events("token")[-1]["auth_method"] == "client_secret_post"


def test_connection_and_audience_reach_the_provider(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization, params = sign_in(
        oidc_provider, browser, client, connection="google-oauth2", audience=DEFAULT_API
    )
    (event,) = oidc_provider.events("authorize")
    assert event["client_id"] == client.client_id
    assert event["params"]["connection"] == "google-oauth2"
    assert event["params"]["audience"] == DEFAULT_API
    assert event["params"]["code_challenge_method"] == "S256"
    assert oidc_provider.events("interaction")[0]["params"]["connection"] == "google-oauth2"
    tokens = exchange_code(oidc_provider, client, params["code"], authorization.verifier).json()
    assert verify_id_token(oidc_provider, client, tokens["id_token"])["connection"] == "google-oauth2"


def test_no_connection_means_no_connection_claim(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization, params = sign_in(oidc_provider, browser, client, "bob")
    tokens = exchange_code(oidc_provider, client, params["code"], authorization.verifier).json()
    claims = verify_id_token(oidc_provider, client, tokens["id_token"])
    assert "connection" not in claims
    assert claims["sub"] == "bob"
    assert claims["email"] == DEFAULT_USERS["bob"].claims["email"]


def test_refresh_token_with_offline_access(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization, params = sign_in(oidc_provider, browser, client, connection="db")
    tokens = exchange_code(oidc_provider, client, params["code"], authorization.verifier).json()
    response = token_request(
        oidc_provider, client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 200, response.text
    refreshed = response.json()
    assert refreshed["access_token"] != tokens["access_token"]
    assert refreshed["refresh_token"] != tokens["refresh_token"]  # rotated
    claims = verify_id_token(oidc_provider, client, refreshed["id_token"])
    assert claims["sub"] == "alice"
    assert claims["connection"] == "db"
    event = oidc_provider.events("token")[-1]
    assert (event["grant_type"], event["auth_method"], event["status"]) == (
        "refresh_token",
        "client_secret_basic",
        200,
    )


def test_no_refresh_token_without_offline_access(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization, params = sign_in(oidc_provider, browser, client, scope="openid email")
    tokens = exchange_code(oidc_provider, client, params["code"], authorization.verifier).json()
    assert "refresh_token" not in tokens
    claims = verify_id_token(oidc_provider, client, tokens["id_token"])
    assert "email" in claims
    assert "name" not in claims


def test_pkce_is_required(oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session) -> None:
    authorization = start_authorization(oidc_provider, client, pkce=False)
    response = browser.get(authorization.url, allow_redirects=False, timeout=10)
    params = callback_params(response, client)
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]


def test_wrong_code_verifier_is_refused(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    _, params = sign_in(oidc_provider, browser, client)
    response = exchange_code(oidc_provider, client, params["code"], secrets.token_urlsafe(48))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


# ---------------------------------------------------------------------------------------
# single sign-on and prompt=none


def test_second_client_signs_in_silently_with_prompt_none(
    oidc_provider: DevProvider,
    client: ClientCredentials,
    post_client: ClientCredentials,
    browser: requests.Session,
) -> None:
    sign_in(oidc_provider, browser, client)
    oidc_provider.clear_events()

    authorization = start_authorization(oidc_provider, post_client, prompt="none", connection="db")
    response = oidc_provider.login(browser, "alice", authorization.url)
    params = callback_params(response, post_client)
    assert "error" not in params, params
    assert oidc_provider.events("interaction") == []  # no login page, no consent page
    assert [e["error"] for e in oidc_provider.events("authorization_response")] == [None]

    tokens = exchange_code(oidc_provider, post_client, params["code"], authorization.verifier).json()
    claims = verify_id_token(oidc_provider, post_client, tokens["id_token"])
    assert claims["sub"] == "alice"
    assert claims["connection"] == "db"
    # Auth0 semantics: offline_access is honoured with prompt=none too
    assert "refresh_token" in tokens


def test_second_client_without_prompt_is_silent_too(
    oidc_provider: DevProvider,
    client: ClientCredentials,
    post_client: ClientCredentials,
    browser: requests.Session,
) -> None:
    sign_in(oidc_provider, browser, client)
    oidc_provider.clear_events()
    authorization = start_authorization(oidc_provider, post_client)
    params = callback_params(browser.get(authorization.url, allow_redirects=False, timeout=10), post_client)
    assert "code" in params
    assert oidc_provider.events("interaction") == []
    tokens = exchange_code(oidc_provider, post_client, params["code"], authorization.verifier).json()
    assert "refresh_token" in tokens


def test_prompt_none_without_provider_session_is_login_required(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization = start_authorization(oidc_provider, client, prompt="none")
    response = oidc_provider.login(browser, "alice", authorization.url)
    params = callback_params(response, client)
    assert params["error"] == "login_required"
    assert params["state"] == authorization.state
    assert params["iss"] == oidc_provider.issuer
    assert oidc_provider.events("interaction") == []
    assert oidc_provider.events("authorize")[0]["error"] == "login_required"


def test_prompt_login_shows_the_form_despite_a_session(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    sign_in(oidc_provider, browser, client)
    oidc_provider.clear_events()
    _, params = sign_in(oidc_provider, browser, client, "bob", prompt="login")
    assert "code" in params
    assert [e["prompt"] for e in oidc_provider.events("interaction")] == ["login"]


# ---------------------------------------------------------------------------------------
# the login form


def test_wrong_password_shows_the_form_again(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization = start_authorization(oidc_provider, client)
    response = oidc_provider.login(browser, "alice", authorization.url, password="nope")
    assert response.status_code == 200
    assert 'id="login-form"' in response.text
    assert 'id="error"' in response.text
    assert [e["ok"] for e in oidc_provider.events("login")] == [False]

    response = oidc_provider.login(browser, "alice", response=response)
    assert "code" in callback_params(response, client)
    assert [e["ok"] for e in oidc_provider.events("login")] == [False, True]


def test_unknown_user_is_refused(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization = start_authorization(oidc_provider, client)
    response = oidc_provider.login(browser, "mallory", authorization.url, password="alice-password")
    assert response.status_code == 200
    assert 'id="error"' in response.text
    with pytest.raises(DevProviderError, match="unknown user"):
        oidc_provider.login(browser, "mallory", authorization.url)


def test_cancel_sends_access_denied(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization = start_authorization(oidc_provider, client)
    form = browser.get(authorization.url, timeout=10)  # follows redirects to the login form
    assert 'id="login-form"' in form.text
    params = callback_params(oidc_provider.cancel_login(browser, form), client)
    assert params["error"] == "access_denied"
    assert params["state"] == authorization.state


def test_login_follows_to_a_real_client_when_asked(
    oidc_provider: DevProvider, browser: requests.Session, listener: Listener
) -> None:
    rp = oidc_provider.register_client([f"{listener.url}/auth/callback"])
    authorization = start_authorization(oidc_provider, rp)
    response = oidc_provider.login(browser, "alice", authorization.url, follow_to_client=True)
    assert response.status_code == 200
    assert response.text == "listener got it"
    ((method, path, _, _),) = listener.requests
    assert method == "GET"
    assert path.startswith("/auth/callback?code=")


# ---------------------------------------------------------------------------------------
# step-up authentication: ACR levels, the one-time code, acr_values, max_age


def id_token_of(
    provider: DevProvider, client: ClientCredentials, authorization: Authorization, params: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Exchange the callback's code: returns the token response and the ID token's claims."""
    assert "code" in params, params
    response = exchange_code(provider, client, params["code"], authorization.verifier)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens, verify_id_token(provider, client, tokens["id_token"])


def test_acr_values_are_advertised(oidc_provider: DevProvider) -> None:
    assert (ACR_PWD, ACR_MFA, DEV_OTP) == ("urn:dev:loa:pwd", "urn:dev:loa:mfa", "123456")
    assert oidc_provider.metadata["acr_values_supported"] == [ACR_PWD, ACR_MFA]
    assert {"acr", "amr", "auth_time"} <= set(oidc_provider.metadata["claims_supported"])


def test_password_login_gives_acr_pwd_and_auth_time(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    before = int(time.time())
    authorization, params = sign_in(oidc_provider, browser, client)
    tokens, claims = id_token_of(oidc_provider, client, authorization, params)
    assert claims["acr"] == ACR_PWD
    assert claims["amr"] == ["pwd"]
    assert before - 1 <= claims["auth_time"] <= int(time.time()) + 1  # without max_age: require_auth_time
    (login,) = oidc_provider.events("login")
    assert (login["ok"], login["otp"], login["acr"]) == (True, False, ACR_PWD)
    # the form offers the code, folded away when the request does not ask for mfa
    form = browser.get(start_authorization(oidc_provider, client, prompt="login").url, timeout=10)
    assert 'id="otp"' in form.text
    assert 'id="otp-details"' in form.text
    assert 'id="mfa-requested"' not in form.text
    # the session's level stays in refreshed ID tokens; userinfo does not carry it
    refreshed = token_request(
        oidc_provider, client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    ).json()
    again = verify_id_token(oidc_provider, client, refreshed["id_token"])
    assert (again["acr"], again["amr"], again["auth_time"]) == (ACR_PWD, ["pwd"], claims["auth_time"])
    userinfo = requests.get(
        oidc_provider.endpoint("userinfo"), headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
    ).json()
    assert not {"acr", "amr", "auth_time"} & userinfo.keys()


@pytest.mark.parametrize("acr_values", [ACR_MFA, None])
def test_login_with_the_one_time_code_gives_acr_mfa(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session, acr_values: str | None
) -> None:
    extra = {"acr_values": acr_values} if acr_values else {}
    authorization = start_authorization(oidc_provider, client, **extra)
    form = browser.get(authorization.url, timeout=10)
    assert 'id="otp"' in form.text
    assert ('id="mfa-requested"' in form.text) == (acr_values is not None)
    response = oidc_provider.login(browser, "bob", response=form, otp=DEV_OTP)
    tokens, claims = id_token_of(oidc_provider, client, authorization, callback_params(response, client))
    assert claims["sub"] == "bob"
    assert claims["acr"] == ACR_MFA
    assert claims["amr"] == ["pwd", "otp"]
    (login,) = oidc_provider.events("login")
    assert (login["login"], login["ok"], login["otp"], login["acr"]) == ("bob", True, True, ACR_MFA)
    refreshed = token_request(
        oidc_provider, client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    ).json()
    assert verify_id_token(oidc_provider, client, refreshed["id_token"])["acr"] == ACR_MFA


def test_wrong_one_time_code_is_a_failed_login(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization = start_authorization(oidc_provider, client, acr_values=ACR_MFA)
    response = oidc_provider.login(browser, "alice", authorization.url, otp="654321")
    assert response.status_code == 200
    assert 'id="login-form"' in response.text
    assert 'id="error"' in response.text
    assert "one-time code" in response.text
    assert 'id="mfa-requested"' in response.text  # the form shown again still asks for the code
    assert [(e["ok"], e["otp"], e["acr"]) for e in oidc_provider.events("login")] == [(False, True, None)]
    assert oidc_provider.events("authorization_response") == []

    response = oidc_provider.login(browser, "alice", response=response, otp=DEV_OTP)
    _, claims = id_token_of(oidc_provider, client, authorization, callback_params(response, client))
    assert claims["acr"] == ACR_MFA


def test_empty_one_time_code_is_a_password_login(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization = start_authorization(oidc_provider, client)
    response = oidc_provider.login(browser, "alice", authorization.url, otp="")
    _, claims = id_token_of(oidc_provider, client, authorization, callback_params(response, client))
    assert (claims["acr"], claims["amr"]) == (ACR_PWD, ["pwd"])


def test_acr_values_above_the_session_prompt_for_a_login(
    oidc_provider: DevProvider,
    client: ClientCredentials,
    post_client: ClientCredentials,
    browser: requests.Session,
) -> None:
    _, first = id_token_of(oidc_provider, client, *sign_in(oidc_provider, browser, client))
    assert first["acr"] == ACR_PWD
    oidc_provider.clear_events()

    # silently: the session cannot give mfa, so login_required
    authorization = start_authorization(oidc_provider, client, prompt="none", acr_values=ACR_MFA)
    params = callback_params(browser.get(authorization.url, allow_redirects=False, timeout=10), client)
    assert params["error"] == "login_required"
    assert params["state"] == authorization.state
    assert oidc_provider.events("interaction") == []
    assert [e["error"] for e in oidc_provider.events("authorization_response")] == ["login_required"]

    # interactively: the login form, for that reason only (the session itself is fine)
    time.sleep(1.1)  # a newer auth_time
    authorization = start_authorization(oidc_provider, client, acr_values=ACR_MFA)
    form = browser.get(authorization.url, timeout=10)
    assert 'id="login-form"' in form.text
    assert 'id="mfa-requested"' in form.text
    (interaction,) = oidc_provider.events("interaction")
    assert interaction["prompt"] == "login"
    assert interaction["reasons"] == [ACR_UNMET_REASON] == ["acr_values_unmet"]
    assert interaction["params"]["acr_values"] == ACR_MFA
    response = oidc_provider.login(browser, "alice", response=form, otp=DEV_OTP)
    _, stepped_up = id_token_of(oidc_provider, client, authorization, callback_params(response, client))
    assert (stepped_up["acr"], stepped_up["amr"]) == (ACR_MFA, ["pwd", "otp"])
    assert stepped_up["auth_time"] > first["auth_time"]
    assert stepped_up["sid"] == first["sid"]  # the same provider session, stepped up
    oidc_provider.clear_events()

    # now the session is mfa: silent for this client and for another one
    for rp in (client, post_client):
        authorization = start_authorization(oidc_provider, rp, prompt="none", acr_values=ACR_MFA)
        params = callback_params(browser.get(authorization.url, allow_redirects=False, timeout=10), rp)
        _, claims = id_token_of(oidc_provider, rp, authorization, params)
        assert (claims["acr"], claims["auth_time"]) == (ACR_MFA, stepped_up["auth_time"])
    assert oidc_provider.events("interaction") == []


def test_acr_values_met_by_the_session_are_silent(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    sign_in(oidc_provider, browser, client)
    oidc_provider.clear_events()
    for acr_values in (ACR_PWD, f"{ACR_MFA} {ACR_PWD}"):
        authorization = start_authorization(oidc_provider, client, prompt="none", acr_values=acr_values)
        params = callback_params(browser.get(authorization.url, allow_redirects=False, timeout=10), client)
        _, claims = id_token_of(oidc_provider, client, authorization, params)
        assert claims["acr"] == ACR_PWD
    assert oidc_provider.events("interaction") == []


def test_acr_values_match_exactly(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    # an mfa session is not among acr_values=pwd: the returned acr is always a requested one
    authorization = start_authorization(oidc_provider, client)
    oidc_provider.login(browser, "alice", authorization.url, otp=DEV_OTP)
    authorization = start_authorization(oidc_provider, client, prompt="none", acr_values=ACR_PWD)
    params = callback_params(browser.get(authorization.url, allow_redirects=False, timeout=10), client)
    assert params["error"] == "login_required"


def test_a_step_up_login_without_the_code_gives_the_lower_acr(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    # acr_values stays a request: the relying party has to check the acr it gets
    sign_in(oidc_provider, browser, client)
    oidc_provider.clear_events()
    authorization = start_authorization(oidc_provider, client, acr_values=ACR_MFA)
    response = oidc_provider.login(browser, "alice", authorization.url)
    _, claims = id_token_of(oidc_provider, client, authorization, callback_params(response, client))
    assert claims["acr"] == ACR_PWD
    assert [e["reasons"] for e in oidc_provider.events("interaction")] == [[ACR_UNMET_REASON]]


def test_max_age_forces_a_new_login(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    _, first = id_token_of(oidc_provider, client, *sign_in(oidc_provider, browser, client))

    # a fresh enough session is silent, and auth_time says when it authenticated
    authorization = start_authorization(oidc_provider, client, prompt="none", max_age="60")
    params = callback_params(browser.get(authorization.url, allow_redirects=False, timeout=10), client)
    _, claims = id_token_of(oidc_provider, client, authorization, params)
    assert claims["auth_time"] == first["auth_time"]

    time.sleep(2.1)
    oidc_provider.clear_events()
    authorization = start_authorization(oidc_provider, client, prompt="none", max_age="1")
    params = callback_params(browser.get(authorization.url, allow_redirects=False, timeout=10), client)
    assert params["error"] == "login_required"

    authorization = start_authorization(oidc_provider, client, max_age="1")
    form = browser.get(authorization.url, timeout=10)
    assert 'id="login-form"' in form.text
    assert [e["reasons"] for e in oidc_provider.events("interaction")] == [["max_age"]]
    response = oidc_provider.login(browser, "alice", response=form)
    _, claims = id_token_of(oidc_provider, client, authorization, callback_params(response, client))
    assert claims["auth_time"] >= first["auth_time"] + 2
    assert claims["acr"] == ACR_PWD


# ---------------------------------------------------------------------------------------
# logout


def test_rp_initiated_logout_ends_the_provider_session(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization, params = sign_in(oidc_provider, browser, client)
    tokens = exchange_code(oidc_provider, client, params["code"], authorization.verifier).json()
    query = urlencode(
        {
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": client.post_logout_redirect_uris[0],
            "state": "bye",
        }
    )
    response = oidc_provider.logout_confirm(browser, f"{oidc_provider.endpoint('end_session')}?{query}")
    assert response.status_code == 303
    assert response.headers["Location"] == client.post_logout_redirect_uris[0] + "?state=bye"
    assert oidc_provider.events("end_session")[0]["client_id"] == client.client_id  # from id_token_hint
    assert oidc_provider.events("end_session")[0]["params"]["post_logout_redirect_uri"].endswith(":8999/")
    assert [e["logout"] for e in oidc_provider.events("end_session_confirm")] == [True]

    authorization = start_authorization(oidc_provider, client, prompt="none")
    response = browser.get(authorization.url, allow_redirects=False, timeout=10)
    assert callback_params(response, client)["error"] == "login_required"


def test_back_channel_logout_reaches_the_client(
    oidc_provider: DevProvider, browser: requests.Session, listener: Listener
) -> None:
    rp = oidc_provider.register_client(
        [f"{listener.url}/auth/callback"],
        [f"{listener.url}/"],
        backchannel_logout_uri=f"{listener.url}/auth/backchannel-logout",
    )
    authorization, params = sign_in(oidc_provider, browser, rp)
    tokens = exchange_code(oidc_provider, rp, params["code"], authorization.verifier).json()
    sid = verify_id_token(oidc_provider, rp, tokens["id_token"])["sid"]

    query = urlencode({"client_id": rp.client_id, "post_logout_redirect_uri": f"{listener.url}/"})
    response = oidc_provider.logout_confirm(browser, f"{oidc_provider.endpoint('end_session')}?{query}")
    assert response.headers["Location"] == f"{listener.url}/"
    assert listener.received.wait(10)
    ((method, path, headers, body),) = listener.requests
    assert (method, path) == ("POST", "/auth/backchannel-logout")
    assert {k.lower(): v for k, v in headers.items()}["content-type"] == "application/x-www-form-urlencoded"
    logout_token = parse_qs(body.decode())["logout_token"][0]
    claims = jwt.decode(
        logout_token,
        jwt.PyJWK(oidc_provider.jwks()["keys"][0]).key,
        algorithms=["RS256"],
        audience=rp.client_id,
        issuer=oidc_provider.issuer,
    )
    assert claims["sub"] == "alice"
    assert claims["sid"] == sid
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
    assert jwt.get_unverified_header(logout_token)["typ"] == "logout+jwt"
    (event,) = oidc_provider.events("backchannel_logout")
    assert (event["client_id"], event["sid"], event["ok"]) == (rp.client_id, sid, True)


# ---------------------------------------------------------------------------------------
# APIs: JWT access tokens for Auth0's "audience" (RFC 9068), introspection (RFC 7662)

OPAQUE_API = "https://opaque.example/api"


def verify_access_token(provider: DevProvider, token: str, audience: str = DEFAULT_API) -> dict[str, Any]:
    """The claims of a JWT access token, checked like a resource server would (RFC 9068)."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt", header
    keys = {key["kid"]: key for key in provider.jwks()["keys"]}
    assert header["kid"] in keys, (header, list(keys))
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(keys[header["kid"]]).key,
        algorithms=["RS256"],
        audience=audience,
        issuer=provider.issuer,
        options={"require": ["exp", "iat", "sub", "jti"]},
    )
    return claims


def introspect(provider: DevProvider, client: ClientCredentials, token: str) -> dict[str, Any]:
    response = requests.post(
        provider.endpoint("introspection"),
        data={"token": token},
        auth=(client.client_id, client.client_secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture
def public_client(oidc_provider: DevProvider) -> ClientCredentials:
    """A public client (a single-page app: no secret, PKCE)."""
    return oidc_provider.register_client(
        ["http://127.0.0.1:8997/callback"], token_endpoint_auth_method="none", client_name="Test SPA"
    )


def test_default_resources_match_the_python_constants(oidc_provider: DevProvider) -> None:
    assert dict(oidc_provider.resources) == dict(DEFAULT_RESOURCES)
    assert DEFAULT_RESOURCES[DEFAULT_API]["scopes"] == ("read:messages", "write:messages", "read:admin")


@pytest.mark.parametrize("parameter", ["audience", "resource"])
def test_audience_gets_a_jwt_access_token_for_the_api(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session, parameter: str
) -> None:
    scope = "openid profile read:messages read:admin unknown:scope"
    authorization, params = sign_in(oidc_provider, browser, client, scope=scope, **{parameter: DEFAULT_API})
    tokens = exchange_code(oidc_provider, client, params["code"], authorization.verifier).json()
    claims = verify_access_token(oidc_provider, tokens["access_token"])
    assert claims["aud"] == DEFAULT_API
    assert claims["sub"] == "alice"
    assert claims["client_id"] == client.client_id
    assert sorted(claims["scope"].split()) == ["read:admin", "read:messages"]  # the API's scopes only
    assert claims["exp"] - claims["iat"] == oidc_provider.access_token_ttl
    assert tokens["token_type"] == "Bearer"
    assert verify_id_token(oidc_provider, client, tokens["id_token"])["name"] == "Alice Example"
    # like Auth0's API tokens (scope openid): accepted at userinfo too, with the OIDC scopes' claims
    response = userinfo(oidc_provider, tokens["access_token"])
    assert response.status_code == 200, response.text
    assert (response.json()["sub"], response.json()["name"]) == ("alice", "Alice Example")
    assert "email" not in response.json()


def userinfo(provider: DevProvider, access_token: str) -> requests.Response:
    return requests.get(provider.endpoint("userinfo"), headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def test_an_api_token_is_no_userinfo_token_without_openid_nor_when_forged(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization, params = sign_in(oidc_provider, browser, client, scope="openid read:messages", audience=DEFAULT_API)
    token = exchange_code(oidc_provider, client, params["code"], authorization.verifier).json()["access_token"]
    assert userinfo(oidc_provider, token).status_code == 200
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged_body = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "bob"}).encode()).rstrip(b"=").decode()
    assert userinfo(oidc_provider, f"{head}.{forged_body}.{signature}").status_code == 401
    assert userinfo(oidc_provider, f"{head}.{body}.{signature[:-4]}AAAA").status_code == 401
    # a request without scope openid (OAuth only: a client not asking for auth_time): for the API only
    oauth_only = oidc_provider.register_client(["http://127.0.0.1:8995/cb"], require_auth_time=False)
    authorization = start_authorization(oidc_provider, oauth_only, scope="read:messages", audience=DEFAULT_API)
    without_nonce = authorization.url.replace(f"&nonce={authorization.nonce}", "")  # OAuth: no nonce
    params = callback_params(browser.get(without_nonce, allow_redirects=False, timeout=10), oauth_only)
    assert "code" in params, params
    response = exchange_code(oidc_provider, oauth_only, params["code"], authorization.verifier)
    assert response.status_code == 200, response.text
    assert verify_access_token(oidc_provider, response.json()["access_token"])["scope"] == "read:messages"
    assert userinfo(oidc_provider, response.json()["access_token"]).status_code == 401


def test_without_audience_the_access_token_stays_opaque_for_userinfo(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization, params = sign_in(oidc_provider, browser, client, scope="openid profile read:messages")
    tokens = exchange_code(oidc_provider, client, params["code"], authorization.verifier).json()
    assert tokens["access_token"].count(".") == 0  # opaque, not a JWT
    response = requests.get(
        oidc_provider.endpoint("userinfo"), headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == "alice"
    answer = introspect(oidc_provider, client, tokens["access_token"])
    assert (answer["active"], answer["sub"], answer["client_id"]) == (True, "alice", client.client_id)
    assert "aud" not in answer


def test_a_public_client_gets_a_jwt_access_token(
    oidc_provider: DevProvider, public_client: ClientCredentials, browser: requests.Session
) -> None:
    authorization, params = sign_in(
        oidc_provider, browser, public_client, scope="openid read:messages", audience=DEFAULT_API
    )
    response = exchange_code(oidc_provider, public_client, params["code"], authorization.verifier)
    assert response.status_code == 200, response.text
    assert oidc_provider.events("token")[-1]["auth_method"] == "none"
    claims = verify_access_token(oidc_provider, response.json()["access_token"])
    assert (claims["client_id"], claims["scope"]) == (public_client.client_id, "read:messages")


def test_a_refreshed_access_token_is_for_the_same_api(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization, params = sign_in(
        oidc_provider, browser, client, scope="openid offline_access read:messages", audience=DEFAULT_API
    )
    tokens = exchange_code(oidc_provider, client, params["code"], authorization.verifier).json()
    response = token_request(
        oidc_provider, client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 200, response.text
    claims = verify_access_token(oidc_provider, response.json()["access_token"])
    assert (claims["aud"], claims["scope"]) == (DEFAULT_API, "read:messages")


def test_an_unknown_audience_is_invalid_target(
    oidc_provider: DevProvider, client: ClientCredentials, browser: requests.Session
) -> None:
    authorization = start_authorization(oidc_provider, client, audience="https://unknown.example/api")
    response = browser.get(authorization.url, allow_redirects=False, timeout=10)
    assert callback_params(response, client)["error"] == "invalid_target"


def test_resources_option_apis_opaque_format_and_introspection(browser: requests.Session) -> None:
    resources = {
        "https://short.example/api": {"scopes": ["read:messages"], "ttl": 5},
        OPAQUE_API: {"scopes": ["read:messages"], "format": "opaque"},
    }
    with DevProvider(resources=resources) as provider:
        assert dict(provider.resources) == resources
        rp = provider.register_client(["http://127.0.0.1:8996/auth/callback"])
        authorization, params = sign_in(
            provider, browser, rp, scope="openid read:messages", audience="https://short.example/api"
        )
        tokens = exchange_code(provider, rp, params["code"], authorization.verifier).json()
        claims = verify_access_token(provider, tokens["access_token"], "https://short.example/api")
        assert claims["exp"] - claims["iat"] == 5
        authorization, params = sign_in(provider, browser, rp, scope="openid read:messages", audience=OPAQUE_API)
        opaque = exchange_code(provider, rp, params["code"], authorization.verifier).json()["access_token"]
        assert opaque.count(".") == 0
        answer = introspect(provider, rp, opaque)
        assert (answer["active"], answer["aud"], answer["scope"], answer["sub"]) == (
            True, OPAQUE_API, "read:messages", "alice"
        )
        assert introspect(provider, rp, "not-a-token") == {"active": False}
        authorization = start_authorization(provider, rp, audience=DEFAULT_API)  # not among these
        response = browser.get(authorization.url, allow_redirects=False, timeout=10)
        assert callback_params(response, rp)["error"] == "invalid_target"


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        pytest.param("{not json", "--resources is not valid JSON", id="bad-json"),
        pytest.param('{"relative/api": {"scopes": []}}', "must be an absolute URI", id="relative"),
        pytest.param('{"https://a.example/": {"scopes": "read"}}', None, id="scope-string-ok"),
        pytest.param('{"https://a.example/": {"format": "paseto"}}', '"format" must be', id="format"),
        pytest.param('{"https://a.example/": {"ttl": -1}}', '"ttl" must be', id="ttl"),
        pytest.param('{"https://a.example/": {"scopes": ["a b"]}}', "scope tokens", id="scope-with-space"),
    ],
)
def test_bad_resources_option_fails_before_the_ready_line(resources: str, message: str | None) -> None:
    installed = ensure_devprovider_installed()
    result = subprocess.run(
        ["node", str(installed / "server.mjs"), "--port", "0", "--watch-stdin", f"--resources={resources}"],
        capture_output=True, text=True, timeout=30, input="", check=False,  # stdin at EOF: exits when ready
    )
    if message is None:
        assert result.returncode == 0, result.stderr
        assert "devprovider ready" in result.stdout
    else:
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert message in result.stderr
        assert "devprovider ready" not in result.stdout


# ---------------------------------------------------------------------------------------
# clients


@pytest.mark.parametrize("name", ["app1", "app2"])
def test_demo_clients(oidc_provider: DevProvider, browser: requests.Session, name: str) -> None:
    demo = oidc_provider.clients[name]
    assert demo == DEFAULT_CLIENTS[name]
    assert demo.client_secret == f"{name}-secret"
    authorization, params = sign_in(oidc_provider, browser, demo)
    response = exchange_code(oidc_provider, demo, params["code"], authorization.verifier)
    assert response.status_code == 200, response.text
    expected = "client_secret_basic" if name == "app1" else "client_secret_post"
    assert demo.token_endpoint_auth_method == expected
    assert oidc_provider.events("token")[-1]["auth_method"] == expected


def test_registration_needs_the_initial_access_token(oidc_provider: DevProvider) -> None:
    body = {"redirect_uris": ["http://127.0.0.1:9/cb"]}
    response = requests.post(oidc_provider.endpoint("registration"), json=body, timeout=10)
    assert response.status_code == 401
    response = requests.post(
        oidc_provider.endpoint("registration"),
        json=body,
        headers={"Authorization": f"Bearer {oidc_provider.registration_token}"},
        timeout=10,
    )
    assert response.status_code == 201
    assert response.json()["grant_types"] == ["authorization_code", "refresh_token"]


def test_events_can_be_filtered_and_cleared(oidc_provider: DevProvider, client: ClientCredentials) -> None:
    assert [e["type"] for e in oidc_provider.events()] == ["registration"]  # the client fixture
    oidc_provider.clear_events()
    requests.get(start_authorization(oidc_provider, client).url, allow_redirects=False, timeout=10)
    assert [e["type"] for e in oidc_provider.events()] == ["authorize"]
    assert oidc_provider.events("token") == []
    oidc_provider.clear_events()
    assert oidc_provider.events() == []


# ---------------------------------------------------------------------------------------
# key rotation, options, lifecycle (each on a provider of its own)


def test_rotate_keys_changes_the_kid_and_keeps_clients(browser: requests.Session) -> None:
    with DevProvider(trailing_slash=True, access_token_ttl=7) as provider:
        assert provider.issuer == f"http://127.0.0.1:{provider.port}/"  # Auth0 style
        assert provider.discovery_url == f"http://127.0.0.1:{provider.port}/.well-known/openid-configuration"
        rp = provider.register_client(["http://127.0.0.1:8997/cb"], token_endpoint_auth_method="client_secret_post")
        old_kid, port, issuer = provider.signing_kid, provider.port, provider.issuer
        assert [k["kid"] for k in provider.jwks()["keys"]] == [old_kid]
        assert all("d" not in key for key in provider.jwks()["keys"])  # public keys only

        new_kid = provider.rotate_keys()
        assert new_kid != old_kid
        assert (provider.port, provider.issuer) == (port, issuer)
        assert [k["kid"] for k in provider.jwks()["keys"]] == [new_kid]

        authorization, params = sign_in(provider, browser, rp)  # the client survived
        response = exchange_code(provider, rp, params["code"], authorization.verifier)
        assert response.status_code == 200, response.text
        tokens = response.json()
        assert tokens["expires_in"] == 7
        assert jwt.get_unverified_header(tokens["id_token"])["kid"] == new_kid
        assert verify_id_token(provider, rp, tokens["id_token"])["sub"] == "alice"

        newest = provider.rotate_keys(keep_previous=True)
        assert [k["kid"] for k in provider.jwks()["keys"]] == [newest, new_kid]
        browser.cookies.clear()
        authorization, params = sign_in(provider, browser, rp)
        tokens = exchange_code(provider, rp, params["code"], authorization.verifier).json()
        assert jwt.get_unverified_header(tokens["id_token"])["kid"] == newest


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_stop_leaves_no_process() -> None:
    provider = DevProvider(registration_token="-a-token-starting-with-a-dash")  # once a node parseArgs trap
    provider.start()
    pid = provider.pid
    assert pid is not None and _pid_alive(pid)
    assert provider.running
    assert provider.register_client(["http://127.0.0.1:9/cb"]).client_id
    provider.stop()
    assert not provider.running
    assert not _pid_alive(pid)
    provider.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{provider.port}/.well-known/openid-configuration", timeout=2)


def test_early_exit_reports_stderr() -> None:
    with socket_bound() as port:
        provider = DevProvider(port=port, startup_timeout=10)
        with pytest.raises(DevProviderError, match=r"(?s)exited early.*cannot listen"):
            provider.start()
        assert not provider.running
        provider.stop()


def test_missing_node_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DevProviderError, match=r"needs Node\.js >= 20 and npm: install them"):
        DevProvider().start()


class socket_bound:
    """A context manager holding a listening TCP port on 127.0.0.1."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        port: int = self.sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


CHILD = textwrap.dedent(
    """
    import sys, time
    from sso_middleware.testing import DevProvider
    provider = DevProvider().start()
    print(provider.pid, flush=True)
    if sys.argv[1] == "hang":
        time.sleep(60)
    # "exit": leave without stop(): the atexit safety net must stop the provider
    """
)


@pytest.mark.parametrize("how", ["exit", "hang"])
def test_no_orphan_when_the_python_process_ends(tmp_path: Path, how: str) -> None:
    # TMPDIR: the SIGKILLed child cannot remove its work directory; keep it in tmp_path
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "TMPDIR": str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, how], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip().isdigit(), child.stderr.read() if child.stderr else line
        pid = int(line)
        assert _pid_alive(pid)
        if how == "hang":
            child.send_signal(signal.SIGKILL)  # no atexit: the provider notices its stdin closing
        child.wait(30)
        assert _wait_dead(pid), f"node process {pid} survived its parent"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def test_fixture_finalization_stops_the_provider(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        def test_uses_provider(oidc_provider):
            with open("pid.txt", "w") as f:
                f.write(str(oidc_provider.pid))
            assert oidc_provider.events() == []

        def test_failing(oidc_provider):
            raise AssertionError("a failing test must not leak the provider")
        """
    )
    args = ["-p", "no:cacheprovider"] + ([] if PLUGIN_INSTALLED else ["-p", "sso_middleware.testing"])
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1, failed=1)
    pid = int((pytester.path / "pid.txt").read_text())
    assert _wait_dead(pid, 5)


def test_install_directory_is_a_cache(tmp_path: Path) -> None:
    first = ensure_devprovider_installed()
    assert (first / "node_modules" / "oidc-provider" / "package.json").is_file()
    assert ensure_devprovider_installed() == first
    version = json.loads((first / "node_modules" / "oidc-provider" / "package.json").read_text())["version"]
    assert version.startswith("9.")


def test_install_directory_holds_every_module_of_the_source() -> None:
    """server.mjs imports its sibling modules: all of them are installed, and nothing else."""
    installed = ensure_devprovider_installed()
    source = devprovider_source_dir()
    modules = {path.name: path.read_bytes() for path in source.glob("*.mjs")}
    assert "server.mjs" in modules and len(modules) > 1
    assert {path.name: path.read_bytes() for path in installed.glob("*.mjs")} == modules


def _write_modules(folder: Path, modules: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.mjs"):
        path.unlink()
    for name, text in modules.items():
        (folder / name).write_text(text)


def test_changed_modules_never_overwrite_an_installed_copy(tmp_path: Path) -> None:
    """Two checkouts with different modules share the npm install but not the module files.

    A provider started from the first copy must keep finding its own files while the second
    is installed; a module the source dropped must not linger in the new copy.
    """
    source, target = tmp_path / "source", tmp_path / "target"
    target.mkdir()
    _write_modules(source, {"server.mjs": "import './a.mjs';\n", "a.mjs": "export const A = 1;\n"})
    first = _copy_modules(source, target)
    assert _copy_modules(source, target) == first

    _write_modules(source, {"server.mjs": "import './b.mjs';\n", "b.mjs": "export const B = 2;\n"})
    second = _copy_modules(source, target)

    assert second != first
    assert sorted(path.name for path in first.glob("*.mjs")) == ["a.mjs", "server.mjs"]
    assert (first / "server.mjs").read_text() == "import './a.mjs';\n"
    assert sorted(path.name for path in second.glob("*.mjs")) == ["b.mjs", "server.mjs"]
    for copy in (first, second):  # node resolves "oidc-provider" through the shared install
        assert os.readlink(copy / "node_modules") == os.path.join("..", "node_modules")
    assert not [path.name for path in target.iterdir() if path.name.startswith(".")]  # no staging left


def test_cli_defaults_match_the_python_constants(browser: requests.Session) -> None:
    """server.mjs run by hand (no --clients) has the clients DEFAULT_CLIENTS describes."""
    installed = ensure_devprovider_installed()
    process = subprocess.Popen(
        ["node", str(installed / "server.mjs"), "--port", "0", "--watch-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("devprovider ready issuer=http://127.0.0.1:"), line
        issuer = line.split("issuer=")[1].split()[0]
        token_endpoint = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()["token_endpoint"]
        data = {"grant_type": "authorization_code", "code": "x" * 43}
        for demo in DEFAULT_CLIENTS.values():
            for secret, error in ((demo.client_secret, "invalid_grant"), ("wrong", "invalid_client")):
                if demo.token_endpoint_auth_method == "client_secret_basic":
                    response = requests.post(token_endpoint, data=data, auth=(demo.client_id, secret), timeout=10)
                else:
                    body = {**data, "client_id": demo.client_id, "client_secret": secret}
                    response = requests.post(token_endpoint, data=body, timeout=10)
                # invalid_grant: the client authenticated, only the code is bogus
                assert response.json()["error"] == error, (demo.client_id, response.text)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def test_a_start_that_never_gets_ready_is_retried_once(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A node process that hangs before its ready line (seen once in CI) is killed and launched again."""
    from sso_middleware.testing import DevProviderStartTimeout

    launches: list[int] = []
    real_launch = DevProvider._launch

    def hanging_first(self: DevProvider, *args: Any, **kwargs: Any) -> None:
        launches.append(1)
        if len(launches) == 1:
            raise DevProviderStartTimeout("the devprovider did not become ready within 0 s (simulated)")
        real_launch(self, *args, **kwargs)

    monkeypatch.setattr(DevProvider, "_launch", hanging_first)
    with DevProvider() as provider:
        assert len(launches) == 2
        assert requests.get(provider.endpoint("jwks_uri"), timeout=10).status_code == 200
    assert "starting it once more" in caplog.text


def test_a_start_that_never_gets_ready_twice_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from sso_middleware.testing import DevProviderStartTimeout

    def always_hanging(self: DevProvider, *args: Any, **kwargs: Any) -> None:
        raise DevProviderStartTimeout("simulated")

    monkeypatch.setattr(DevProvider, "_launch", always_hanging)
    provider = DevProvider()
    with pytest.raises(DevProviderStartTimeout):
        provider.start()
    assert not provider.running
