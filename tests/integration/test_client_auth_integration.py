"""private_key_jwt, client_secret_jwt and PAR end to end against the bundled oidc-provider.

Each application is the middleware in a waitress server with its own client
registration (RFC 7591: its public key in ``jwks`` and its
``token_endpoint_auth_method``); the browser is a cookie-keeping ``requests.Session``
that fills in the provider's login form.  The provider's event log tells which
client authentication arrived on the wire and what the browser carried.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from sso_middleware.testing import DevProvider

from ..servers import stop_waitress
from .test_integration import App, browse, page, start_app

SCOPE = "openid profile email offline_access"


def key_pair(kind: str, kid: str, tmp: Path) -> tuple[dict[str, Any], str]:
    """A fresh key: its public JWK (to register) and a private key file (PEM for RSA, JWK for EC)."""
    if kind == "rsa":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        path = tmp / f"{kid}.pem"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
        private = json.loads(ECAlgorithm.to_jwk(key))
        private["kid"] = kid
        path = tmp / f"{kid}.jwk"
        path.write_text(json.dumps(private))
    path.chmod(0o600)
    public.update({"kid": kid, "use": "sig"})
    return public, str(path)


def jwt_app(provider: DevProvider, name: str, tmp: Path, kind: str, **settings: Any) -> App:
    """An application authenticating with private_key_jwt (``kind`` rsa/ec) or client_secret_jwt (``hs``)."""
    common = {"keep_access_token": True, "scope": SCOPE, **settings}
    if kind == "hs":
        return start_app(provider, name, tmp, "client_secret_jwt", **common)
    public, path = key_pair(kind, f"{name}-key", tmp)
    extra = {"client_assertion_kid": f"{name}-key"} if kind == "rsa" else {}
    app = start_app(provider, name, tmp, "private_key_jwt", registration={"jwks": {"keys": [public]}},
                    client_assertion_key=path, **extra, **common)
    assert app.middleware.config.client_secret == ""  # registered without a secret, configured without one
    return app


@pytest.fixture(scope="module")
def jwt_apps(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, App]]:
    tmp = tmp_path_factory.mktemp("client-auth")
    started: dict[str, App] = {}
    try:
        started["rsa"] = jwt_app(oidc_provider, "pkjwt-rsa", tmp, "rsa")
        started["ec"] = jwt_app(oidc_provider, "pkjwt-ec", tmp, "ec")
        started["hs"] = jwt_app(oidc_provider, "csjwt", tmp, "hs")
        started["noparhs"] = jwt_app(oidc_provider, "csjwt-nopar", tmp, "hs", pushed_authorization="off")
        yield started
    finally:
        for app in started.values():
            stop_waitress(app.server)


@pytest.fixture
def provider(oidc_provider: DevProvider) -> DevProvider:
    oidc_provider.clear_events()
    return oidc_provider


def client_events(provider: DevProvider, app: App, event_type: str) -> list[dict[str, Any]]:
    return [event for event in provider.events(event_type) if event.get("client_id") == app.client.client_id]


def sign_in(provider: DevProvider, app: App, target: str = "/profile") -> tuple[requests.Session, list[str]]:
    """An interactive sign-in through the app's routes; the browser and every URL it visited."""
    http = requests.Session()
    first = http.get(app.url("/auth/login", target_url=target), allow_redirects=False, timeout=10)
    assert first.status_code == 303, first.text[:300]
    authorize_url = first.headers["Location"]
    redirect = provider.login(http, "alice", response=first)
    assert redirect.status_code == 303, redirect.text[:500]
    visit = browse(http, urljoin(redirect.url, redirect.headers["Location"]))
    assert page(visit)["remote_user"] == "alice"
    return http, [authorize_url, *visit.urls]


@pytest.mark.parametrize(("name", "method"), [("rsa", "private_key_jwt"), ("ec", "private_key_jwt"),
                                              ("hs", "client_secret_jwt")])
def test_sign_in_and_refresh_with_a_client_assertion(provider: DevProvider, jwt_apps: dict[str, App], name: str,
                                                     method: str) -> None:
    app = jwt_apps[name]
    http, urls = sign_in(provider, app)
    # The browser carried only client_id and request_uri: everything else was pushed (PAR, auto).
    assert set(parse_qs(urlsplit(urls[0]).query)) == {"client_id", "request_uri"}
    (pushed,) = client_events(provider, app, "pushed_authorization")
    assert (pushed["status"], pushed["auth_method"]) == (201, method)
    assert pushed["params"]["code_challenge_method"] == "S256" and "state" in pushed["params"]
    (authorize,) = client_events(provider, app, "authorize")
    assert authorize["pushed"] is True and set(authorize["sent"]) == {"client_id", "request_uri"}

    # A refresh, through the middleware's own client (the token event says how it authenticated).
    client = app.middleware.client
    login = client.new_login_request()
    redirect = provider.login(http, "alice", client.authorization_url(login, prompt=None, connection=None))
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    result = client.sign_in(code, login.nonce, login.code_verifier)
    assert result.refresh_token is not None
    refreshed = client.refresh(result.refresh_token, result.id_token)
    assert refreshed.access_token and refreshed.access_token != result.access_token
    tokens = client_events(provider, app, "token")
    grants = [(event["grant_type"], event["auth_method"], event["status"]) for event in tokens]
    assert grants == [("authorization_code", method, 200)] * 2 + [("refresh_token", method, 200)], grants


def test_client_secret_jwt_without_par_sends_the_parameters_in_the_url(provider: DevProvider,
                                                                       jwt_apps: dict[str, App]) -> None:
    app = jwt_apps["noparhs"]
    _, urls = sign_in(provider, app)
    assert "code_challenge" in parse_qs(urlsplit(urls[0]).query)
    assert client_events(provider, app, "pushed_authorization") == []
    assert client_events(provider, app, "token")[0]["auth_method"] == "client_secret_jwt"


def test_secret_apps_push_with_their_own_method(provider: DevProvider, oidc_provider: DevProvider,
                                                tmp_path: Path) -> None:
    app = start_app(oidc_provider, "post-par", tmp_path, "client_secret_post")
    try:
        sign_in(provider, app)
        (pushed,) = client_events(provider, app, "pushed_authorization")
        assert pushed["auth_method"] == "client_secret_post"
    finally:
        stop_waitress(app.server)


def test_a_refused_push_is_a_clean_failure_page(provider: DevProvider, oidc_provider: DevProvider,
                                                tmp_path: Path) -> None:
    """The provider refuses the PAR call (the key is not the registered one): a 502 page, no loop."""
    public, _ = key_pair("rsa", "registered", tmp_path)
    _, other = key_pair("rsa", "other", tmp_path)
    app = start_app(oidc_provider, "wrong-key", tmp_path, "private_key_jwt",
                    registration={"jwks": {"keys": [public]}}, client_assertion_key=other,
                    client_assertion_kid="registered")
    try:
        visit = browse(requests.Session(), app.url("/auth/login", target_url="/profile"))
        assert visit.response.status_code == 502
        assert "par_failed" in visit.response.text
        assert not any(url.startswith(oidc_provider.base_url) for url in visit.urls)  # never sent to the provider
        (pushed,) = client_events(provider, app, "pushed_authorization")
        assert (pushed["status"], pushed["error"]) == (401, "invalid_client")
    finally:
        stop_waitress(app.server)


def test_an_unreachable_par_endpoint_is_a_clean_failure_page(provider: DevProvider, oidc_provider: DevProvider,
                                                             tmp_path: Path) -> None:
    app = start_app(oidc_provider, "par-down", tmp_path, "client_secret_basic")
    try:
        metadata = app.middleware.client.metadata()
        dead = "http://127.0.0.1:9/oauth/par"  # discard port: nothing listens
        app.middleware.client._metadata = type(metadata)(**{**metadata.__dict__,
                                                             "pushed_authorization_request_endpoint": dead})
        visit = browse(requests.Session(), app.url("/auth/login", target_url="/profile"))
        assert visit.response.status_code in (502, 503, 504)
        assert "/auth/failure" in visit.urls[-1] and len(visit.urls) == 2
    finally:
        stop_waitress(app.server)


# -- a provider that requires PAR ---------------------------------------------------------


@pytest.fixture(scope="module")
def par_provider() -> Iterator[DevProvider]:
    provider = DevProvider(require_pushed_authorization=True)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


def test_a_provider_requiring_par(par_provider: DevProvider, tmp_path: Path) -> None:
    assert requests.get(par_provider.discovery_url, timeout=10).json()["require_pushed_authorization_requests"] is True
    auto = start_app(par_provider, "par-auto", tmp_path, "client_secret_basic")
    off = start_app(par_provider, "par-off", tmp_path, "client_secret_basic", pushed_authorization="off")
    try:
        par_provider.clear_events()
        _, urls = sign_in(par_provider, auto)
        assert set(parse_qs(urlsplit(urls[0]).query)) == {"client_id", "request_uri"}

        # pushed_authorization = off: refused at sign-in with a clear code, the provider never visited
        visit = browse(requests.Session(), off.url("/auth/login", target_url="/profile"))
        assert visit.response.status_code == 502 and "par_required" in visit.response.text
        assert not any(url.startswith(par_provider.base_url) for url in visit.urls)
        # ... which is what the provider would have said: a request that was not pushed is refused
        login = off.middleware.client.new_login_request()
        plain = off.middleware.client.metadata().authorization_endpoint + "?" + "&".join(
            f"{key}={value}" for key, value in {"client_id": off.client.client_id, "response_type": "code",
                                                "scope": "openid", "state": login.state,
                                                "redirect_uri": off.middleware.config.redirect_uri,
                                                "code_challenge": login.code_challenge,
                                                "code_challenge_method": "S256"}.items())
        answer = requests.get(plain, allow_redirects=False, timeout=10)
        assert answer.status_code == 303
        refusal = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert refusal["error"] == ["invalid_request"]
        assert refusal["error_description"] == ["Pushed Authorization Request must be used"]
    finally:
        stop_waitress(auto.server)
        stop_waitress(off.server)
