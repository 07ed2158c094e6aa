"""Client authentication: secret basic/post, client_secret_jwt, private_key_jwt.

The fake provider accepts every method (it verifies assertions with ``assertion_key``),
so each test asserts on the outgoing request itself: which credentials it carried, and
every claim of the assertion it sent.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from sso_middleware import SSOMiddleware
from sso_middleware._config.settings import SSOConfig
from sso_middleware._oidc.client import OIDCClient
from sso_middleware._oidc.client_auth import ASSERTION_LIFETIME, ASSERTION_TYPE
from sso_middleware.errors import AuthFailure, ConfigError

from ..fakes import CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider, rsa_key

TOKEN_ENDPOINT = ISSUER.rstrip("/") + "/oauth/token"
LONG_SECRET = "a-client-secret-of-more-than-32-bytes-0123456789"


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_pem(path: Path, key: Any) -> str:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return str(path)


def write_jwk(path: Path, key: Any, **extra: Any) -> str:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk = json.loads(algorithm.to_jwk(key))
    jwk.update(extra)
    path.write_text(json.dumps(jwk))
    path.chmod(0o600)
    return str(path)


def form(request: requests.PreparedRequest) -> dict[str, list[str]]:
    body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
    return parse_qs(body)


def sign_in_and_refresh(middleware: SSOMiddleware, provider: FakeProvider) -> None:
    """A code exchange and a refresh through the middleware's own client (the wire is what is checked)."""
    client: OIDCClient = middleware.client
    login = client.new_login_request()
    url = client.authorization_url(login, prompt=None, connection=None)
    callback = provider.authorize(url)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    result = client.sign_in(code, login.nonce, login.code_verifier)
    assert result.refresh_token
    client.refresh(result.refresh_token, result.id_token)


@pytest.fixture
def pkjwt(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    def settings(key: Any, kind: str = "pem", **extra: Any) -> dict[str, Any]:
        path = write_pem(tmp_path / "key.pem", key) if kind == "pem" else write_jwk(tmp_path / "key.jwk", key,
                                                                                    kid="jwk-kid")
        values = {"token_endpoint_auth_method": "private_key_jwt", "client_assertion_key": path,
                  "client_secret": "", "scope": "openid offline_access"}
        if kind == "pem":
            values["client_assertion_kid"] = "pem-kid"
        values.update(extra)
        return values
    return settings


@pytest.mark.parametrize(
    ("kind", "key_factory", "algorithm", "expected_alg", "expected_kid"),
    [
        pytest.param("pem", lambda: rsa_key("assertion"), "", "RS256", "pem-kid", id="rsa-pem"),
        pytest.param("pem", lambda: rsa_key("assertion"), "PS256", "PS256", "pem-kid", id="rsa-pem-ps256"),
        pytest.param("jwk", lambda: rsa_key("assertion"), "", "RS256", "jwk-kid", id="rsa-jwk"),
        pytest.param("pem", ec_key, "", "ES256", "pem-kid", id="ec-pem"),
        pytest.param("jwk", ec_key, "", "ES256", "jwk-kid", id="ec-jwk"),
    ],
)
def test_private_key_jwt_assertions_on_the_wire(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, pkjwt: Callable[..., dict[str, Any]],
    kind: str, key_factory: Callable[[], Any], algorithm: str, expected_alg: str, expected_kid: str,
) -> None:
    key = key_factory()
    provider.assertion_key = key.public_key()
    extra = {"client_assertion_algorithm": algorithm} if algorithm else {}
    middleware = make_middleware(**pkjwt(key, kind, **extra))
    sign_in_and_refresh(middleware, provider)

    calls = provider.requests_to("/oauth/token")
    assert len(calls) == 2 and len(provider.assertions) == 2
    for call in calls:  # the method actually used: an assertion, no secret, no Basic header
        sent = form(call)
        assert "Authorization" not in call.headers
        assert "client_secret" not in sent
        assert sent["client_assertion_type"] == [ASSERTION_TYPE]
        assert sent["client_id"] == [CLIENT_ID]
        assert len(sent["client_assertion"]) == 1
    for claims, header in provider.assertions:
        assert header == {"alg": expected_alg, "kid": expected_kid, "typ": "JWT"}
        assert set(claims) == {"iss", "sub", "aud", "jti", "iat", "exp"}
        assert claims["iss"] == claims["sub"] == CLIENT_ID
        assert claims["aud"] == ISSUER  # the issuer identifier (Auth0; RFC 9126; rfc7523bis)
        assert claims["exp"] - claims["iat"] == ASSERTION_LIFETIME
        assert len(claims["jti"]) >= 32
    assert provider.assertions[0][0]["jti"] != provider.assertions[1][0]["jti"]  # fresh for every request


def test_client_secret_jwt_assertion_on_the_wire(make_middleware: Callable[..., SSOMiddleware],
                                                 provider: FakeProvider) -> None:
    provider.client_secret = LONG_SECRET
    provider.assertion_key = LONG_SECRET.encode()
    middleware = make_middleware(token_endpoint_auth_method="client_secret_jwt", client_secret=LONG_SECRET,
                                 scope="openid offline_access")
    sign_in_and_refresh(middleware, provider)
    calls = provider.requests_to("/oauth/token")
    assert len(calls) == 2 and len(provider.assertions) == 2
    for call in calls:
        sent = form(call)
        assert "Authorization" not in call.headers and "client_secret" not in sent
        assert LONG_SECRET not in str(call.body)
        header = jwt.get_unverified_header(sent["client_assertion"][0])
        assert header == {"alg": "HS256", "typ": "JWT"}
    jtis = {claims["jti"] for claims, _ in provider.assertions}
    assert len(jtis) == 2
    for claims, _ in provider.assertions:
        assert claims["iss"] == claims["sub"] == CLIENT_ID and claims["aud"] == ISSUER
        assert claims["exp"] - claims["iat"] == ASSERTION_LIFETIME


def test_audience_endpoint_names_the_token_endpoint(make_middleware: Callable[..., SSOMiddleware],
                                                    provider: FakeProvider,
                                                    pkjwt: Callable[..., dict[str, Any]]) -> None:
    key = rsa_key("assertion")
    middleware = make_middleware(**pkjwt(key, client_assertion_audience="endpoint"))
    client = middleware.client
    login = client.new_login_request()
    code = parse_qs(urlsplit(provider.authorize(client.authorization_url(login, None, None))).query)["code"][0]
    with pytest.raises(AuthFailure, match="invalid_client"):  # the fake provider wants the issuer: refused
        client.sign_in(code, login.nonce, login.code_verifier)
    sent = form(provider.requests_to("/oauth/token")[0])
    claims = jwt.decode(sent["client_assertion"][0], key.public_key(), algorithms=["RS256"],
                        audience=TOKEN_ENDPOINT)
    assert claims["aud"] == TOKEN_ENDPOINT


@pytest.mark.parametrize(
    ("method", "basic", "in_body"),
    [("client_secret_basic", True, set()), ("client_secret_post", False, {"client_id", "client_secret"})],
)
def test_secret_methods_send_only_their_own_credentials(make_middleware: Callable[..., SSOMiddleware],
                                                        provider: FakeProvider, method: str, basic: bool,
                                                        in_body: set[str]) -> None:
    provider.assertion_key = b"unused"
    middleware = make_middleware(token_endpoint_auth_method=method, scope="openid offline_access")
    sign_in_and_refresh(middleware, provider)
    for call in provider.requests_to("/oauth/token"):
        sent = form(call)
        assert ("Authorization" in call.headers) is basic
        if basic:
            assert call.headers["Authorization"] == "Basic " + base64.b64encode(
                f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        assert {"client_id", "client_secret", "client_assertion", "client_assertion_type"} & set(sent) == in_body
    assert provider.assertions == []


# -- build-time validation of the key --------------------------------------------------------


def build(**changes: Any) -> SSOConfig:
    values = {"issuer": ISSUER, "client_id": CLIENT_ID, "base_url": "https://app2.example",
              "session_secret": "s" * 40, "token_endpoint_auth_method": "private_key_jwt"}
    values.update(changes)
    return SSOConfig(**values)


def refused(setting: str, fragment: str, **changes: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        build(**changes)
    assert caught.value.setting == setting, caught.value
    assert fragment in caught.value.message, caught.value


def test_private_key_jwt_needs_no_client_secret(tmp_path: Path) -> None:
    config = build(client_assertion_key=write_pem(tmp_path / "k.pem", ec_key()), client_assertion_kid="k1")
    assert config.client_secret == ""


def test_bad_key_files_are_refused_at_build(tmp_path: Path) -> None:
    rsa_private = rsa_key("assertion")
    refused("client_assertion_key", "required")
    refused("client_assertion_key", "cannot be read", client_assertion_key=str(tmp_path / "missing.pem"),
            client_assertion_kid="k")
    (tmp_path / "garbage.pem").write_text("not a key")
    refused("client_assertion_key", "not a PEM private key", client_assertion_key=str(tmp_path / "garbage.pem"),
            client_assertion_kid="k")
    public = tmp_path / "public.pem"
    public.write_bytes(rsa_private.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    refused("client_assertion_key", "public key", client_assertion_key=str(public), client_assertion_kid="k")
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(rsa_private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.BestAvailableEncryption(b"pw")))
    refused("client_assertion_key", "encrypted", client_assertion_key=str(encrypted), client_assertion_kid="k")
    public_jwk = tmp_path / "public.jwk"
    public_jwk.write_text(RSAAlgorithm.to_jwk(rsa_private.public_key()))
    refused("client_assertion_key", "public key", client_assertion_key=str(public_jwk))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [json.loads(RSAAlgorithm.to_jwk(rsa_private))]}))
    refused("client_assertion_key", "JWKS", client_assertion_key=str(jwks))
    (tmp_path / "bad.json").write_text("{not json")
    refused("client_assertion_key", "not valid JSON", client_assertion_key=str(tmp_path / "bad.json"))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    refused("client_assertion_key", "2048", client_assertion_key=write_pem(tmp_path / "small.pem", small),
            client_assertion_kid="k")
    p384 = ec.generate_private_key(ec.SECP384R1())
    refused("client_assertion_key", "P-256", client_assertion_key=write_pem(tmp_path / "p384.pem", p384),
            client_assertion_kid="k")


def test_algorithm_and_kid_must_fit_the_key(tmp_path: Path) -> None:
    rsa_pem = write_pem(tmp_path / "rsa.pem", rsa_key("assertion"))
    ec_pem = write_pem(tmp_path / "ec.pem", ec_key())
    refused("client_assertion_algorithm", "does not fit", client_assertion_key=rsa_pem, client_assertion_kid="k",
            client_assertion_algorithm="ES256")
    refused("client_assertion_algorithm", "does not fit", client_assertion_key=ec_pem, client_assertion_kid="k",
            client_assertion_algorithm="RS256")
    refused("client_assertion_algorithm", "does not fit", client_assertion_key=rsa_pem, client_assertion_kid="k",
            client_assertion_algorithm="HS256")
    refused("client_assertion_kid", "required for a PEM key", client_assertion_key=rsa_pem)
    jwk = write_jwk(tmp_path / "k.jwk", rsa_key("assertion"), kid="own")
    refused("client_assertion_kid", "differs", client_assertion_key=jwk, client_assertion_kid="other")
    assert build(client_assertion_key=jwk).client_assertion_key == jwk
    refused("client_assertion_kid", "printable", client_assertion_key=rsa_pem, client_assertion_kid="a b")


def test_other_settings_of_client_authentication(tmp_path: Path) -> None:
    pem = write_pem(tmp_path / "rsa.pem", rsa_key("assertion"))
    refused("client_secret", "required", token_endpoint_auth_method="client_secret_basic")
    refused("client_secret", "32 bytes", token_endpoint_auth_method="client_secret_jwt", client_secret="short")
    refused("client_assertion_key", "only with", token_endpoint_auth_method="client_secret_post",
            client_secret=CLIENT_SECRET, client_assertion_key=pem)
    refused("client_assertion_audience", "must be one of", client_assertion_key=pem, client_assertion_kid="k",
            client_assertion_audience="token_endpoint")
    assert build(token_endpoint_auth_method="client_secret_jwt", client_secret=LONG_SECRET)


def test_settings_from_strings(tmp_path: Path) -> None:
    pem = write_pem(tmp_path / "rsa.pem", rsa_key("assertion"))
    config = SSOConfig.from_env({"SSO_ISSUER": ISSUER, "SSO_CLIENT_ID": CLIENT_ID, "SSO_BASE_URL": "https://a.example",
                                 "SSO_SESSION_SECRET": "s" * 40, "SSO_TOKEN_ENDPOINT_AUTH_METHOD": "private_key_jwt",
                                 "SSO_CLIENT_ASSERTION_KEY": pem, "SSO_CLIENT_ASSERTION_KID": "k1",
                                 "SSO_PUSHED_AUTHORIZATION": "required"})
    assert (config.client_assertion_kid, config.pushed_authorization) == ("k1", "required")
    assert "BEGIN" not in repr(config)
