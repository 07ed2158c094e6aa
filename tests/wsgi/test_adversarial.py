"""Forged responses and failing providers, end to end over real HTTP.

The provider is :class:`tests.adversarial_provider.AdversarialProvider` (the
scriptable ``FakeProvider`` behind a real ``http.server`` on loopback); the
relying party is the middleware around the tiny legacy app, served by waitress
on its own loopback port; the browser is a cookie-keeping ``requests.Session``
that follows every redirect, the provider's ``/authorize`` included.

The cases are those of the OpenID Foundation's RP certification (Basic RP and
Config RP, code flow, confidential client), RFC 9700 (state, PKCE, mix-up, code
injection and replay) and RFC 9207 (``iss`` in the authorization response), and
provider faults (unreachable, reset, slow, dripping, 5xx, not JSON, oversized).
Each failing case asserts: the failure page with the right code and status, no
signed-in user afterwards, no userinfo request after a bad ID token, and a log
line of the ``sso_middleware`` logger naming the check that failed.  After
every test, no secret the provider saw or minted (codes, tokens, state, nonce,
PKCE values, client secret) nor any session cookie appears in any log record.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from sso_middleware import SSOMiddleware
from sso_middleware._oidc import client as oidc
from sso_middleware._oidc.http import MAX_RESPONSE_BYTES

from ..adversarial_provider import (
    AdversarialProvider,
    Body,
    Drip,
    Fault,
    Oversized,
    Reset,
    ServedApp,
    Slow,
    Status,
    Visit,
    basic_credentials,
    browse,
)
from ..conftest import SESSION_SECRET, legacy_app
from ..fakes import CLIENT_ID, CLIENT_SECRET, public_jwk, rsa_key, s256
from ..servers import free_port
from ..tokens import b64url, ec_jwk, ec_key, forge, hmac_token, sign

Setup = Callable[[AdversarialProvider], None]

#: A short provider timeout for the fault cases, and how much later than it an answer may come.
TIMEOUT = 0.4
SLACK = 1.0


# -- fixtures ------------------------------------------------------------------------


@dataclass
class RP:
    """The relying party: a middleware served over HTTP, and the browsers that visited it."""

    served: ServedApp
    middleware: SSOMiddleware
    browsers: list[requests.Session] = field(default_factory=list)

    def url(self, path: str, **query: str) -> str:
        return self.served.url(path, **query)

    def browser(self) -> requests.Session:
        http = requests.Session()
        http.trust_env = False
        self.browsers.append(http)
        return http


@pytest.fixture
def providers() -> Iterator[list[AdversarialProvider]]:
    """Every provider a test starts; all stopped at the end."""
    started: list[AdversarialProvider] = []
    yield started
    for provider in started:
        provider.stop()


@pytest.fixture
def op(providers: list[AdversarialProvider]) -> AdversarialProvider:
    provider = AdversarialProvider().start()
    providers.append(provider)
    return provider


@pytest.fixture
def rps() -> Iterator[list[RP]]:
    started: list[RP] = []
    yield started
    for rp in started:
        rp.served.close()


@pytest.fixture
def make_rp(op: AdversarialProvider, rps: list[RP], tmp_path: Any) -> Callable[..., RP]:
    """Build and serve a middleware for ``provider`` (default: ``op``) with extra settings."""

    def build(provider: Optional[AdversarialProvider] = None, **settings: Any) -> RP:
        provider = provider or op
        served = ServedApp()
        options: dict[str, Any] = {
            "issuer": provider.issuer,
            "client_id": CLIENT_ID,
            "client_secret": provider.client_secret,
            "base_url": served.base_url,
            "session_secret": SESSION_SECRET,
            "session_data_dir": str(tmp_path / f"sessions-{len(rps)}"),
            "allow_insecure_http": True,
            "http_timeout": 2.0,
            "protected_paths": ("/dashboard",),
        }
        options.update(settings)
        middleware = SSOMiddleware(legacy_app, **options)
        served.app = middleware
        rp = RP(served, middleware)
        rps.append(rp)
        return rp

    return build


@pytest.fixture
def rp(make_rp: Callable[..., RP]) -> RP:
    return make_rp()


@pytest.fixture(autouse=True)
def no_secret_in_logs(
    caplog: pytest.LogCaptureFixture, providers: list[AdversarialProvider], rps: list[RP]
) -> Iterator[None]:
    """After each test: no code, token, state, nonce, PKCE value, secret or cookie in any log record.

    urllib3's own debug lines are left out: they log the URLs the *test's browser* requests
    (callback URLs with their code and state), not anything the middleware wrote.
    """
    caplog.set_level(logging.DEBUG)
    yield
    secrets = {CLIENT_SECRET, SESSION_SECRET}
    for provider in providers:
        secrets.update(provider.secrets)
    for rp in rps:
        for http in rp.browsers:
            secrets.update(cookie.value for cookie in http.cookies if cookie.value)
    secrets = {secret for secret in secrets if secret and len(secret) >= 8}
    records = caplog.get_records("setup") + caplog.get_records("call")
    logged = "\n".join(
        f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        for record in records
        if not record.name.startswith("urllib3")
    )
    leaked = [secret for secret in secrets if secret in logged]
    assert not leaked, f"{len(leaked)} secret(s) in the logs, e.g. {leaked[0][:12]}..."


# -- helpers --------------------------------------------------------------------------


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def sign_in(rp: RP, http: Optional[requests.Session] = None, target: str = "/page") -> Visit:
    """A whole interactive sign-in: the app, the provider's /authorize, the callback, the landing page."""
    return browse(http or rp.browser(), rp.url("/auth/login", target_url=target))


def start_login(rp: RP, http: requests.Session, target: str = "/page") -> str:
    """Start a sign-in without going to the provider; returns the authorization URL."""
    response = http.get(rp.url("/auth/login", target_url=target), allow_redirects=False, timeout=10)
    assert response.status_code == 303, (response.status_code, response.text[:300])
    location: str = response.headers["Location"]
    return location


def shown(rp: RP, http: requests.Session, path: str = "/page") -> dict[str, Any]:
    """What the legacy app sees for this browser."""
    response = http.get(rp.url(path), allow_redirects=False, timeout=10)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    result: dict[str, Any] = json.loads(response.text)
    return result


def assert_signed_in(rp: RP, visit: Visit, user: str = "alice", target: str = "/page") -> None:
    assert visit.urls[-1] == rp.url(target), (visit.urls, visit.response.text[:500])
    page = json.loads(visit.response.text)
    assert page["remote_user"] == user
    assert page["userinfo"]["sub"] == user


def assert_failure(visit: Visit, code: str, status: int) -> None:
    """The browser ended on the failure page for ``code``, answered with ``status``."""
    final = urlsplit(visit.urls[-1])
    assert final.path == "/auth/failure", (visit.urls, visit.response.status_code, visit.response.text[:300])
    assert query(visit.urls[-1]) == {"error": code}, visit.urls
    assert visit.response.status_code == status
    assert visit.response.headers["Content-Type"].startswith("text/html")
    assert f"<code>{code}</code>" in visit.response.text
    assert "Traceback" not in visit.response.text


def assert_anonymous(rp: RP, http: requests.Session) -> None:
    """No session: the app sees no user, and a protected page sends the browser to sign in."""
    page = shown(rp, http)
    assert page["remote_user"] is None and page["userinfo"] is None
    protected = http.get(rp.url("/dashboard"), headers={"Accept": "application/json"}, timeout=10)
    assert protected.status_code == 401


def assert_logged(caplog: pytest.LogCaptureFixture, code: str, pattern: str) -> None:
    """Some record of the ``sso_middleware`` logger names ``code`` and matches ``pattern`` (the check)."""
    lines = [record.getMessage() for record in caplog.records if record.name == "sso_middleware"]
    assert any(code in line and re.search(pattern, line, re.IGNORECASE) for line in lines), (code, pattern, lines)


def public_pem() -> bytes:
    return rsa_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pin_jwks(op: AdversarialProvider) -> None:
    """Publish the genuine key as ``key-1`` whatever ``op.kid`` becomes (tokens then name unknown kids)."""
    op.jwks_keys = [public_jwk(rsa_key(), "key-1")]


def jwk_without_kid(name: str = "default") -> dict[str, Any]:
    jwk = public_jwk(rsa_key(name), "unused")
    del jwk["kid"]
    return jwk


def authorize_url(op: AdversarialProvider, rp: RP, **params: str) -> str:
    """An authorization request as an attacker would make it (defaults: this RP's client)."""
    values = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": rp.url("/auth/callback"),
              "scope": "openid", "state": "attacker-state", "nonce": "attacker-nonce",
              "code_challenge": s256("attacker-verifier-" + "x" * 40), "code_challenge_method": "S256"}
    values.update(params)
    return op.url("authorize") + "?" + urlencode(values)


def at(seconds: int) -> int:
    return int(time.time()) + seconds


# -- the happy path, as the certification's positive tests see it -----------------------


def test_code_flow_on_the_wire(op: AdversarialProvider, rp: RP) -> None:
    """rp-response_type-code, rp-scope-userinfo-claims, rp-nonce-unless-code-flow,
    rp-token_endpoint-client_secret_basic, rp-discovery-jwks_uri-keys, rp-id_token-sig-rs256,
    rp-userinfo-bearer-header: what goes over the wire in a normal sign-in."""
    http = rp.browser()
    visit = sign_in(rp, http, "/page?x=1")
    assert_signed_in(rp, visit, target="/page?x=1")
    assert json.loads(visit.response.text)["userinfo"]["email_verified"] is True  # a userinfo-only claim

    (authorize,) = op.requests_to("/authorize")
    params = query(authorize.url)
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == rp.url("/auth/callback")
    assert set(params["scope"].split()) >= {"openid", "profile", "email"}
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32

    (token,) = op.requests_to("/oauth/token")
    assert token.method == "POST"
    assert basic_credentials(token) == (CLIENT_ID, CLIENT_SECRET)
    form = token.form()
    assert form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == rp.url("/auth/callback")  # exactly the one of the authorization request
    assert s256(form["code_verifier"]) == params["code_challenge"]
    assert "client_secret" not in form and CLIENT_SECRET not in token.body

    (userinfo,) = op.requests_to("/userinfo")
    assert userinfo.method == "GET"
    assert userinfo.headers["Authorization"].startswith("Bearer at-")
    assert "at-" not in userinfo.url
    assert [call.path for call in op.calls] == [
        "/.well-known/openid-configuration", "/authorize", "/oauth/token", "/.well-known/jwks.json", "/userinfo"
    ]


def test_client_secret_post_on_the_wire(op: AdversarialProvider, make_rp: Callable[..., RP]) -> None:
    rp = make_rp(token_endpoint_auth_method="client_secret_post")
    assert_signed_in(rp, sign_in(rp))
    (token,) = op.requests_to("/oauth/token")
    assert "Authorization" not in token.headers
    assert token.form()["client_id"] == CLIENT_ID and token.form()["client_secret"] == CLIENT_SECRET


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(lambda op: op.id_token_overrides.update(aud=[CLIENT_ID]), id="aud-list-of-one"),
        pytest.param(lambda op: op.id_token_overrides.update(aud=[CLIENT_ID, "api"], azp=CLIENT_ID),
                     id="several-aud-with-azp"),
        pytest.param(lambda op: op.id_token_overrides.update(iat=at(30), auth_time=at(30)),
                     id="iat-30s-ahead-within-leeway"),
        pytest.param(lambda op: op.id_token_overrides.update(exp=at(-30), iat=at(-330)),
                     id="exp-30s-past-within-leeway"),
        pytest.param(lambda op: op.id_token_overrides.update(nbf=at(30)), id="nbf-30s-ahead-within-leeway"),
        pytest.param(lambda op: (op.id_token_header.update(kid=None), setattr(op, "jwks_keys", [jwk_without_kid()])),
                     id="rp-id_token-kid-absent-single-jwks"),
        pytest.param(lambda op: setattr(op, "jwks_keys", [
            ec_jwk(ec_key(), "ec-1"), public_jwk(rsa_key("enc"), "enc-1", use="enc"),
            {"kty": "AKP", "kid": "pq-1", "alg": "ML-DSA-65"}, public_jwk(rsa_key(), "key-1")]),
            id="unusable-keys-beside-the-signing-key"),
        pytest.param(lambda op: (op.discovery_overrides.update(authorization_response_iss_parameter_supported=None),
                                 op.authorize_response.update(iss=None)),
                     id="no-iss-parameter-when-not-advertised"),
    ],
)
def test_accepted_variations(op: AdversarialProvider, rp: RP, setup: Setup) -> None:
    setup(op)
    assert_signed_in(rp, sign_in(rp))
    assert len(op.requests_to("/userinfo")) == 1


# -- forged ID tokens: refused before any userinfo request --------------------------------


def _forge_none(claims: dict[str, Any]) -> str:
    return forge({"alg": "none", "typ": "JWT", "kid": "key-1"}, claims)


def _unsigned(claims: dict[str, Any]) -> str:
    """An unsigned ID token as a provider registered with id_token_signed_response_alg=none issues it."""
    return forge({"alg": "none"}, claims)


def signing_es256(op: AdversarialProvider) -> None:
    """The provider signs with ES256 (its JWKS has the EC key too) but goes on advertising RS256 only."""
    op.id_token_alg, op.id_token_key, op.kid = "ES256", ec_key(), "ec-1"
    op.jwks_keys = [public_jwk(rsa_key(), "key-1"), ec_jwk(ec_key(), "ec-1")]


def _swap_signature(claims: dict[str, Any]) -> str:
    genuine = sign(claims)
    other = sign({**claims, "sub": "mallory"})
    return ".".join(other.split(".")[:2] + genuine.split(".")[2:])


def _tamper_payload(claims: dict[str, Any]) -> str:
    head, _, signature = sign(claims).split(".")
    return ".".join([head, b64url(json.dumps({**claims, "sub": "mallory"}).encode()), signature])


ID_TOKEN_FORGERIES = [
    # rp-id_token-issuer-mismatch
    pytest.param(lambda op: op.id_token_overrides.update(iss="https://evil.example/"), {}, r"issuer",
                 id="rp-id_token-issuer-mismatch"),
    pytest.param(lambda op: op.id_token_overrides.update(iss=op.issuer.rstrip("/")), {}, r"issuer",
                 id="iss-without-trailing-slash"),
    pytest.param(lambda op: op.id_token_overrides.update(iss=None), {}, r'"iss"', id="iss-missing"),
    # rp-id_token-aud
    pytest.param(lambda op: op.id_token_overrides.update(aud="another-client"), {}, r"audience",
                 id="rp-id_token-aud"),
    pytest.param(lambda op: op.id_token_overrides.update(aud=None), {}, r'"aud"', id="aud-missing"),
    pytest.param(lambda op: op.id_token_overrides.update(aud=["another-client", CLIENT_ID]), {}, r"azp",
                 id="several-aud-without-azp"),
    pytest.param(lambda op: op.id_token_overrides.update(azp="another-client"), {}, r"azp", id="azp-other-client"),
    pytest.param(lambda op: op.id_token_overrides.update(aud=[CLIENT_ID, "other"], azp="other"), {}, r"azp",
                 id="several-aud-azp-other-client"),
    # rp-id_token-sub
    pytest.param(lambda op: op.id_token_overrides.update(sub=None), {}, r'"sub"', id="rp-id_token-sub"),
    pytest.param(lambda op: op.id_token_overrides.update(sub=""), {}, r"sub", id="sub-empty"),
    pytest.param(lambda op: op.id_token_overrides.update(sub=42), {}, r"sub|subject", id="sub-not-a-string"),
    # rp-id_token-iat, exp, nbf beyond the leeway
    pytest.param(lambda op: op.id_token_overrides.update(iat=None), {}, r'"iat"', id="rp-id_token-iat"),
    pytest.param(lambda op: op.id_token_overrides.update(iat=at(90)), {}, r"iat is in the future",
                 id="iat-90s-ahead-beyond-leeway"),
    pytest.param(lambda op: op.id_token_overrides.update(iat="now"), {}, r"numbers", id="iat-not-a-number"),
    pytest.param(lambda op: op.id_token_overrides.update(exp=at(-90), iat=at(-390)), {}, r"expired",
                 id="exp-90s-past-beyond-leeway"),
    pytest.param(lambda op: op.id_token_overrides.update(exp=None), {}, r'"exp"', id="exp-missing"),
    pytest.param(lambda op: op.id_token_overrides.update(nbf=at(90)), {}, r"nbf", id="nbf-beyond-leeway"),
    pytest.param(lambda op: op.id_token_overrides.update(iat=at(5)), {"clock_skew": 0}, r"iat is in the future",
                 id="iat-5s-ahead-without-leeway"),
    # rp-nonce-invalid
    pytest.param(lambda op: op.id_token_overrides.update(nonce="not-the-nonce"), {}, r"nonce",
                 id="rp-nonce-invalid"),
    pytest.param(lambda op: op.id_token_overrides.update(nonce=None), {}, r"nonce", id="nonce-missing"),
    pytest.param(lambda op: op.id_token_overrides.update(at_hash="AAAAAAAAAAAAAAAAAAAAAA"), {}, r"at_hash",
                 id="at_hash-mismatch"),
    # issue 13 item 12: non-ASCII values once made hmac.compare_digest(str, str) raise TypeError (a 500)
    pytest.param(lambda op: op.id_token_overrides.update(nonce="n\u00e9-\u2603"), {}, r"nonce",
                 id="nonce-non-ascii"),
    pytest.param(lambda op: op.id_token_overrides.update(at_hash="\u00e9" * 22), {}, r"at_hash",
                 id="at_hash-non-ascii"),
    # issue 13 item 16: an ID token is no other kind of JWT
    pytest.param(lambda op: op.id_token_header.update(typ="logout+jwt"), {}, r"typ 'logout\+jwt'",
                 id="typ-logout+jwt"),
    pytest.param(lambda op: op.id_token_header.update(typ="at+jwt"), {}, r"typ 'at\+jwt'", id="typ-at+jwt"),
    pytest.param(lambda op: op.id_token_overrides.update(
        events={"http://schemas.openid.net/event/backchannel-logout": {}}), {}, r"events", id="logout-events"),
    # issue 13 item 15: an algorithm we allow but the provider does not advertise (it says RS256 only)
    pytest.param(lambda op: signing_es256(op), {"id_token_algorithms": ("RS256", "ES256")},
                 r"algorithm 'ES256' is not accepted", id="es256-not-advertised"),
    # issue 13 item 18: unsigned, with 'none' allowed by us but not advertised by the provider
    pytest.param(lambda op: setattr(op, "forge_id_token", _unsigned), {"id_token_algorithms": ("RS256", "none")},
                 r"algorithm 'none'", id="none-allowed-but-not-advertised"),
    # ... nor by a provider whose discovery lists no id_token_signing_alg_values_supported at all
    pytest.param(lambda op: (setattr(op, "forge_id_token", _unsigned),
                             op.discovery_overrides.update(id_token_signing_alg_values_supported=None)),
                 {"id_token_algorithms": ("RS256", "none")}, r"algorithm 'none'", id="none-allowed-discovery-silent"),
    # rp-id_token-bad-sig-rs256 and other signature forgeries
    pytest.param(lambda op: setattr(op, "id_token_key", rsa_key("attacker")), {}, r"signature",
                 id="rp-id_token-bad-sig-rs256"),
    pytest.param(lambda op: setattr(op, "forge_id_token", _swap_signature), {}, r"signature",
                 id="signature-of-another-token"),
    pytest.param(lambda op: setattr(op, "forge_id_token", _tamper_payload), {}, r"signature",
                 id="payload-changed-after-signing"),
    pytest.param(lambda op: setattr(op, "forge_id_token", lambda claims: sign(claims).rsplit(".", 1)[0] + "."),
                 {}, r"signature", id="signature-stripped"),
    pytest.param(lambda op: setattr(op, "forge_id_token", lambda claims: "not-a-jwt"), {}, r"malformed",
                 id="not-a-jwt"),
    # rp-id_token-sig-none
    pytest.param(lambda op: setattr(op, "forge_id_token", _forge_none), {}, r"algorithm 'none'",
                 id="rp-id_token-sig-none"),
    pytest.param(lambda op: setattr(op, "forge_id_token",
                                    lambda claims: forge({"alg": "None", "kid": "key-1"}, claims)),
                 {}, r"algorithm 'None'", id="alg-None-capitalised"),
    # algorithm confusion: HS256 keyed with the provider's public key
    pytest.param(lambda op: setattr(op, "forge_id_token",
                                    lambda claims: hmac_token({"alg": "HS256", "kid": "key-1"}, claims, public_pem())),
                 {}, r"algorithm 'HS256'", id="hs256-with-public-key-not-allowed"),
    pytest.param(lambda op: (setattr(op, "forge_id_token",
                                     lambda claims: hmac_token({"alg": "HS256", "kid": "key-1"}, claims, public_pem())),
                             op.discovery_overrides.update(id_token_signing_alg_values_supported=["RS256", "HS256"])),
                 {"id_token_algorithms": ("RS256", "HS256")}, r"signature", id="hs256-with-public-key-allowed"),
    pytest.param(lambda op: setattr(op, "forge_id_token", lambda claims: sign(claims, alg="RS512")), {},
                 r"algorithm 'RS512'", id="alg-outside-allow-list"),
    pytest.param(lambda op: (setattr(op, "forge_id_token", lambda claims: sign(claims, alg="PS256")),
                             op.discovery_overrides.update(id_token_signing_alg_values_supported=["RS256", "PS256"])),
                 {}, r"no usable PS256 key", id="key-published-for-another-alg"),
    # keys: unknown, absent with several keys, unusable, attacker-supplied
    pytest.param(lambda op: (pin_jwks(op), setattr(op, "kid", "unknown-kid")), {}, r"kid 'unknown-kid'",
                 id="kid-unknown"),
    pytest.param(lambda op: (op.id_token_header.update(kid=None),
                             setattr(op, "jwks_keys", [jwk_without_kid(), jwk_without_kid("second")])),
                 {}, r"kid None", id="rp-id_token-kid-absent-multiple-jwks"),
    pytest.param(lambda op: setattr(op, "forge_id_token", lambda claims: sign(claims, kid=123)), {},
                 r"kid is not a string|key id", id="kid-not-a-string"),
    pytest.param(lambda op: setattr(op, "jwks_keys", [public_jwk(rsa_key(), "key-1", use="enc")]), {},
                 r"no usable RS256 key", id="signing-key-published-for-encryption"),
    pytest.param(lambda op: setattr(op, "jwks_keys", [ec_jwk(ec_key(), "key-1")]), {},
                 r"no usable RS256 key", id="kid-names-a-key-of-another-type"),
    pytest.param(lambda op: setattr(op, "forge_id_token", lambda claims: sign(
        claims, key=rsa_key("attacker"), jwk=public_jwk(rsa_key("attacker"), "key-1"))), {},
        r"signature", id="embedded-jwk-header-ignored"),
    pytest.param(lambda op: setattr(op, "forge_id_token", lambda claims: sign(
        claims, key=rsa_key("attacker"), kid="attacker-1", jku=op.url("/attacker/jwks.json"))), {},
        r"kid 'attacker-1'", id="jku-header-ignored"),
    pytest.param(lambda op: setattr(op, "forge_id_token", lambda claims: sign(claims, crit=["exp"])), {},
                 r"critical", id="crit-header"),
    pytest.param(lambda op: setattr(op, "jwks_keys", [{"kty": "RSA", "kid": "key-1", "n": 12345, "e": "AQAB"}]),
                 {}, r"unusable JWK|no usable", id="malformed-jwk-for-the-kid"),
    pytest.param(lambda op: setattr(op, "forge_id_token", lambda claims: sign({**claims, "iss": [claims["iss"]]})),
                 {}, r"issuer", id="iss-a-list"),
    pytest.param(lambda op: setattr(op, "forge_id_token", lambda claims: forge({"alg": ["RS256"], "kid": "key-1"},
                                                                                  claims)),
                 {}, r"algorithm", id="alg-a-list"),
]


@pytest.mark.parametrize(("setup", "settings", "check"), ID_TOKEN_FORGERIES)
def test_forged_id_token_signs_nobody_in(
    op: AdversarialProvider, make_rp: Callable[..., RP], caplog: pytest.LogCaptureFixture,
    setup: Setup, settings: dict[str, Any], check: str
) -> None:
    if "id_token_algorithms" in settings:  # an HMAC secret must be long enough for HS256 (RFC 7518 3.2)
        op.client_secret = "a-client-secret-of-more-than-32-bytes"
        op.secrets.append(op.client_secret)
    rp = make_rp(**settings)
    setup(op)
    http = rp.browser()
    visit = sign_in(rp, http)
    assert_failure(visit, "invalid_id_token", 401)
    assert len(op.requests_to("/oauth/token")) == 1
    assert op.requests_to("/userinfo") == []
    assert op.requests_to("/attacker/jwks.json") == []  # never fetch keys a token points to
    assert_anonymous(rp, http)
    assert_logged(caplog, "invalid_id_token", check)


def test_an_advertised_es256_signs_in(op: AdversarialProvider, make_rp: Callable[..., RP]) -> None:
    """The positive twin of ``es256-not-advertised`` (rp-id_token-sig-es256): advertised and allowed."""
    signing_es256(op)
    op.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "ES256"]
    rp = make_rp(id_token_algorithms=("RS256", "ES256"))
    assert_signed_in(rp, sign_in(rp))


def test_no_algorithm_in_common_fails_before_the_provider_is_visited(
    op: AdversarialProvider, make_rp: Callable[..., RP], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13 item 15: a provider and a configuration that share no algorithm: a clear 502, not a 500."""
    op.discovery_overrides["id_token_signing_alg_values_supported"] = ["ES384", "none"]
    rp = make_rp(id_token_algorithms=("RS256", "ES256"))
    http = rp.browser()
    visit = sign_in(rp, http)
    assert_failure(visit, "signing_algorithm_mismatch", 502)
    assert "operator" in visit.response.text
    assert op.requests_to("/authorize") == [] and op.requests_to("/oauth/token") == []
    assert_anonymous(rp, http)
    assert_logged(caplog, "signing_algorithm_mismatch", r"id_token_algorithms 'RS256 ES256'.*'ES384 none'")


def test_rp_id_token_sig_none_signs_in_when_registered_so(
    op: AdversarialProvider, make_rp: Callable[..., RP], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13 item 18, the certification's rp-id_token-sig-none: an RP registered with
    id_token_signed_response_alg=none accepts the unsigned ID token of the token endpoint -- when
    id_token_algorithms names 'none' and the provider advertises it -- with every other check made."""
    op.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "none"]
    op.forge_id_token = _unsigned
    rp = make_rp(id_token_algorithms=("RS256", "none"))
    assert any("names 'none'" in record.getMessage() for record in caplog.records)  # said loudly, at start-up
    visit = sign_in(rp, rp.browser())
    assert_signed_in(rp, visit)
    assert op.requests_to("/.well-known/jwks.json") == []  # nothing was verified with a key
    assert len(op.requests_to("/userinfo")) == 1

    # The other checks still hold for an unsigned token: a wrong nonce signs nobody in.
    op.id_token_overrides.update(nonce="not-the-nonce")
    http = rp.browser()
    assert_failure(sign_in(rp, http), "invalid_id_token", 401)
    assert_anonymous(rp, http)


def test_an_unsigned_id_token_is_refused_by_default_even_when_advertised(
    op: AdversarialProvider, rp: RP, caplog: pytest.LogCaptureFixture
) -> None:
    op.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "none"]
    op.forge_id_token = _unsigned
    http = rp.browser()
    assert_failure(sign_in(rp, http), "invalid_id_token", 401)
    assert op.requests_to("/userinfo") == []
    assert_logged(caplog, "invalid_id_token", r"algorithm 'none' is not accepted")


def test_unknown_kid_refetches_the_jwks_once(op: AdversarialProvider, rp: RP, caplog: pytest.LogCaptureFixture) -> None:
    assert_signed_in(rp, sign_in(rp))
    assert len(op.requests_to("/jwks.json")) == 1
    pin_jwks(op)
    op.kid = "forged-kid"
    assert_failure(sign_in(rp), "invalid_id_token", 401)
    assert len(op.requests_to("/jwks.json")) == 2
    assert_logged(caplog, "invalid_id_token", r"kid 'forged-kid'")


def test_a_flood_of_unknown_kids_cannot_hammer_the_jwks(op: AdversarialProvider, rp: RP) -> None:
    pin_jwks(op)
    for attempt in range(8):
        op.kid = f"random-kid-{attempt}"
        assert_failure(sign_in(rp), "invalid_id_token", 401)
    # One first fetch, then at most the refetch burst (3): not one fetch per forged token.
    assert len(op.requests_to("/jwks.json")) <= 4
    assert op.requests_to("/userinfo") == []


@pytest.mark.parametrize(
    "keep_old_key",
    [pytest.param(True, id="rp-key-rotation-op-sign-key"), pytest.param(False, id="rotation-old-key-retired")],
)
def test_signing_key_rotation_is_picked_up(op: AdversarialProvider, rp: RP, keep_old_key: bool) -> None:
    assert_signed_in(rp, sign_in(rp))
    old = public_jwk(rsa_key(), "key-1")
    op.kid, op.id_token_key = "key-2", rsa_key("rotated")
    op.jwks_keys = [public_jwk(rsa_key("rotated"), "key-2"), *([old] if keep_old_key else [])]
    assert_signed_in(rp, sign_in(rp), "alice")
    op.authorize_user = "bob"
    assert_signed_in(rp, sign_in(rp), "bob")
    assert len(op.requests_to("/jwks.json")) == 2  # exactly one refetch, for the new kid


# -- userinfo --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("userinfo", "fault", "code", "status", "check"),
    [
        pytest.param({"sub": "mallory", "email": "mallory@example.com"}, None, "userinfo_mismatch", 401,
                     r"userinfo sub", id="rp-userinfo-bad-sub-claim"),
        pytest.param({"email": "alice@example.com"}, None, "userinfo_mismatch", 401, r"userinfo sub",
                     id="userinfo-without-sub"),
        pytest.param({"sub": ["alice"]}, None, "userinfo_mismatch", 401, r"userinfo sub", id="userinfo-sub-a-list"),
        pytest.param(None, Status(401, b'{"error": "invalid_token"}'), "provider_bad_response", 502,
                     r"userinfo: HTTP 401", id="userinfo-refuses-the-access-token"),
        pytest.param(None, Body(b"eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "application/jwt"), "provider_bad_response", 502,
                     r"userinfo.*not JSON", id="userinfo-as-a-jwt"),
        pytest.param(None, Body(b"[1, 2, 3]"), "provider_bad_response", 502, r"userinfo: HTTP 200",
                     id="userinfo-not-an-object"),
    ],
)
def test_bad_userinfo_signs_nobody_in(
    op: AdversarialProvider, rp: RP, caplog: pytest.LogCaptureFixture, userinfo: Optional[dict[str, Any]],
    fault: Optional[Fault], code: str, status: int, check: str
) -> None:
    op.userinfo = userinfo
    if fault is not None:
        op.faults["userinfo"] = fault
    http = rp.browser()
    assert_failure(sign_in(rp, http), code, status)
    assert len(op.requests_to("/userinfo")) == 1
    assert_anonymous(rp, http)
    assert_logged(caplog, code, check)


# -- the authorization response: state, RFC 9207 iss, mix-up ------------------------------


@pytest.mark.parametrize(
    ("response", "code", "check"),
    [
        pytest.param({"iss": "http://127.0.0.1:9/"}, "issuer_mismatch", r"mix-up", id="mix-up-iss-of-another-op"),
        pytest.param({"iss": None}, "issuer_mismatch", r"promises 'iss'", id="iss-missing-though-advertised"),
        pytest.param({"iss": "HTTP://127.0.0.1/"}, "issuer_mismatch", r"not our issuer", id="iss-case-changed"),
        pytest.param({"iss": "http://127.0.0.1:9/", "error": "access_denied"}, "issuer_mismatch", r"mix-up",
                     id="mix-up-error-response"),
        pytest.param({"state": None}, "invalid_state", r"state", id="state-missing"),
        pytest.param({"state": "forged-state"}, "invalid_state", r"state", id="state-forged"),
        pytest.param({"state": ""}, "invalid_state", r"state", id="state-empty"),
        pytest.param({"code": None}, "missing_code", r"neither code nor error", id="code-missing"),
    ],
)
def test_bad_authorization_responses_never_reach_the_token_endpoint(
    op: AdversarialProvider, rp: RP, caplog: pytest.LogCaptureFixture, response: dict[str, Optional[str]],
    code: str, check: str
) -> None:
    op.authorize_response.update(response)
    http = rp.browser()
    assert_failure(sign_in(rp, http), code, 400)
    assert op.requests_to("/oauth/token") == []
    assert_anonymous(rp, http)
    assert_logged(caplog, code, check)


def test_mix_up_with_a_second_provider(
    providers: list[AdversarialProvider], op: AdversarialProvider, make_rp: Callable[..., RP],
    caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 9207: the attacker's provider answers for ours; the RP must not send our code to anyone."""
    attacker = AdversarialProvider(client_id=CLIENT_ID).start()
    providers.append(attacker)
    rp = make_rp()
    http = rp.browser()
    authorize = start_login(rp, http)
    state = query(authorize)["state"]
    # The honest provider's code, delivered as if from the attacker's provider (whose iss it carries).
    code = op.mint_code(authorize)
    visit = browse(http, rp.url("/auth/callback", code=code, state=state, iss=attacker.issuer))
    assert_failure(visit, "issuer_mismatch", 400)
    assert op.requests_to("/oauth/token") == [] and attacker.calls == []
    assert_anonymous(rp, http)
    assert_logged(caplog, "issuer_mismatch", r"mix-up")


def test_login_csrf_with_another_browsers_state_is_refused(op: AdversarialProvider, rp: RP) -> None:
    """RFC 9700 4.7: an attacker's own callback URL, fed to the victim's browser, signs nobody in."""
    attacker, victim = rp.browser(), rp.browser()
    authorize = start_login(rp, attacker)
    callback = op.authorize(authorize, user="bob")  # the attacker's approved response, not followed
    start_login(rp, victim)  # the victim has a sign-in of their own in flight
    assert_failure(browse(victim, callback), "invalid_state", 400)
    assert op.requests_to("/oauth/token") == []
    assert_anonymous(rp, victim)
    # ...and the attacker's own transaction was not consumed by the victim's browser.
    assert_signed_in(rp, browse(attacker, callback), "bob")


# -- code injection and replay (RFC 9700 4.5, 2.1.1) -------------------------------------


def test_code_issued_to_another_client_is_refused(op: AdversarialProvider, rp: RP,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    http = rp.browser()
    state = query(start_login(rp, http))["state"]
    stolen = op.mint_code(authorize_url(op, rp, client_id="another-client"))
    visit = browse(http, rp.url("/auth/callback", code=stolen, state=state, iss=op.issuer))
    assert_failure(visit, "provider_error:invalid_grant", 401)
    assert op.requests_to("/userinfo") == []
    assert_anonymous(rp, http)
    assert_logged(caplog, "provider_error:invalid_grant", r"token endpoint refused")


@pytest.mark.parametrize(
    ("check_pkce", "code", "check"),
    [
        pytest.param(True, "provider_error:invalid_grant", r"token endpoint refused", id="pkce-stops-it"),
        pytest.param(False, "invalid_id_token", r"nonce", id="provider-ignores-pkce-nonce-stops-it"),
    ],
)
def test_code_bound_to_another_pkce_verifier_is_refused(
    op: AdversarialProvider, rp: RP, caplog: pytest.LogCaptureFixture, check_pkce: bool, code: str, check: str
) -> None:
    """The attacker's own code (its PKCE challenge, its nonce) injected into the victim's callback."""
    op.check_pkce = check_pkce
    attacker, victim = rp.browser(), rp.browser()
    attacker_callback = op.authorize(start_login(rp, attacker), user="bob")
    injected = query(attacker_callback)["code"]
    victim_state = query(start_login(rp, victim))["state"]
    visit = browse(victim, rp.url("/auth/callback", code=injected, state=victim_state, iss=op.issuer))
    assert_failure(visit, code, 401)
    assert op.requests_to("/userinfo") == []
    assert_anonymous(rp, victim)
    assert_logged(caplog, code, check)


def test_callback_replayed_after_success(op: AdversarialProvider, rp: RP, caplog: pytest.LogCaptureFixture) -> None:
    http = rp.browser()
    visit = sign_in(rp, http)
    assert_signed_in(rp, visit)
    callback = next(url for url in visit.urls if urlsplit(url).path == "/auth/callback")
    replay = browse(http, callback)
    assert_failure(replay, "invalid_state", 400)
    assert "expired or was already used" in replay.response.text
    assert len(op.requests_to("/oauth/token")) == 1  # the code was never sent again
    assert shown(rp, http)["remote_user"] == "alice"  # and the user is still signed in
    assert_logged(caplog, "invalid_state", r"already used")


def test_used_code_replayed_in_a_fresh_transaction(op: AdversarialProvider, rp: RP) -> None:
    victim = rp.browser()
    visit = sign_in(rp, victim)
    assert_signed_in(rp, visit)
    used = query(next(url for url in visit.urls if urlsplit(url).path == "/auth/callback"))["code"]
    attacker = rp.browser()
    state = query(start_login(rp, attacker))["state"]
    replay = browse(attacker, rp.url("/auth/callback", code=used, state=state, iss=op.issuer))
    assert_failure(replay, "provider_error:invalid_grant", 401)
    assert len(op.requests_to("/userinfo")) == 1
    assert_anonymous(rp, attacker)
    assert shown(rp, victim)["remote_user"] == "alice"


@pytest.mark.parametrize(
    ("token_response", "check"),
    [
        pytest.param({"access_token": "at-x", "token_type": "mac", "id_token": "x.y.z"}, r"Bearer",
                     id="token_type-not-bearer"),
        pytest.param({"access_token": "at-x", "token_type": "Bearer"}, r"lacks id_token", id="no-id_token"),
        pytest.param({"token_type": "Bearer", "id_token": "x.y.z"}, r"lacks id_token or access_token|MissingTokenError",
                     id="no-access_token"),
        pytest.param({"access_token": "at-x", "token_type": "Bearer", "id_token": "x.y.z", "expires_in": "soon"},
                     r"token response", id="expires_in-not-a-number"),
        pytest.param({"access_token": "at-x", "token_type": "Bearer", "id_token": "x.y.z", "expires_in": float("inf")},
                     r"token response", id="expires_in-infinite"),
    ],
)
def test_malformed_token_responses(op: AdversarialProvider, rp: RP, caplog: pytest.LogCaptureFixture,
                                   token_response: dict[str, Any], check: str) -> None:
    op.token_response = token_response
    http = rp.browser()
    assert_failure(sign_in(rp, http), "invalid_token_response", 502)
    assert op.requests_to("/userinfo") == []
    assert_anonymous(rp, http)
    assert_logged(caplog, "invalid_token_response", check)


# -- discovery (Config RP) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "check"),
    [
        pytest.param({"issuer": "https://evil.example/"}, r"discovery issuer",
                     id="rp-discovery-issuer-not-matching-config"),
        pytest.param({"issuer": None}, r"discovery issuer", id="discovery-without-issuer"),
        pytest.param({"token_endpoint": "http://evil.example/token"}, r"token_endpoint",
                     id="token-endpoint-plain-http-off-loopback"),
        pytest.param({"jwks_uri": None}, r"jwks_uri", id="discovery-without-jwks_uri"),
        pytest.param({"authorization_endpoint": "javascript:alert(1)"}, r"authorization_endpoint",
                     id="authorization-endpoint-javascript"),
        pytest.param({"jwks_uri": "http://user:password@127.0.0.1:1/jwks"}, r"jwks_uri",
                     id="jwks-uri-with-credentials"),
    ],
)
def test_bad_discovery_documents(op: AdversarialProvider, rp: RP, caplog: pytest.LogCaptureFixture,
                                 overrides: dict[str, Any], check: str) -> None:
    op.discovery_overrides.update(overrides)
    http = rp.browser()
    visit = sign_in(rp, http)
    assert_failure(visit, "provider_bad_response", 502)
    assert len(visit.urls) == 2  # the login route, then the failure page: the provider was never visited
    assert op.requests_to("/authorize") == []
    assert_anonymous(rp, http)
    assert_logged(caplog, "provider_bad_response", check)


# -- provider faults ---------------------------------------------------------------------

FAULTS = [
    pytest.param(lambda: Status(500), "provider_unreachable", 503, id="http-500"),
    pytest.param(lambda: Status(502, b"<html>Bad gateway</html>", "text/html"), "provider_unreachable", 503,
                 id="http-502-html"),
    pytest.param(lambda: Body(b"<html>maintenance</html>", "text/html"), "provider_bad_response", 502,
                 id="http-200-not-json"),
    pytest.param(lambda: Body(b'{"keys": [{"kty": "RSA"'), "provider_bad_response", 502, id="truncated-json"),
    pytest.param(lambda: Oversized(), "provider_bad_response", 502, id="oversized-2MiB"),
    pytest.param(lambda: Oversized(endless=True), "provider_bad_response", 502, id="endless-body"),
    pytest.param(lambda: Reset(), "provider_unreachable", 503, id="reset-before-answering"),
    pytest.param(lambda: Reset(body_bytes=5), "provider_unreachable", 503, id="reset-mid-body"),
    pytest.param(lambda: Slow(TIMEOUT * 6), "provider_timeout", 504, id="slower-than-the-timeout"),
    pytest.param(lambda: Drip(interval=TIMEOUT / 4), "provider_timeout", 504, id="dripping-answer"),
]
ROUTES_AND_LOG_NAMES = [
    pytest.param("discovery", r"discovery", id="discovery"),
    pytest.param("jwks", r"jwks", id="jwks"),
    pytest.param("token", r"token", id="token"),
    pytest.param("userinfo", r"userinfo", id="userinfo"),
]


@pytest.mark.parametrize(("route", "name"), ROUTES_AND_LOG_NAMES)
@pytest.mark.parametrize(("make_fault", "code", "status"), FAULTS)
def test_provider_faults_fail_cleanly_and_in_bounded_time(
    op: AdversarialProvider, make_rp: Callable[..., RP], caplog: pytest.LogCaptureFixture,
    route: str, name: str, make_fault: Callable[[], Fault], code: str, status: int
) -> None:
    rp = make_rp(http_timeout=TIMEOUT)
    fault = make_fault()
    op.faults[route] = fault
    http = rp.browser()
    visit = sign_in(rp, http)
    assert_failure(visit, code, status)
    assert "try again later" in visit.response.text or status == 502
    # Each provider call is bounded by the timeout: the whole visit by about one of them.
    assert visit.seconds < TIMEOUT + SLACK, visit.seconds
    if route in ("discovery", "jwks", "token"):
        assert op.requests_to("/userinfo") == []
    if isinstance(fault, Oversized):
        assert fault.finished.wait(5), "the provider is still sending"
        assert fault.sent < 32 * MAX_RESPONSE_BYTES, fault.sent  # it stopped reading (kernel buffers hold some MB)
    assert_anonymous(rp, http)
    assert_logged(caplog, code, name)


@pytest.mark.parametrize(
    "route",
    [pytest.param(route, id=route) for route in ("token_endpoint", "userinfo_endpoint", "jwks_uri")],
)
def test_an_endpoint_on_a_closed_port_is_unreachable(op: AdversarialProvider, rp: RP, route: str) -> None:
    op.discovery_overrides[route] = f"http://127.0.0.1:{free_port()}/closed"
    http = rp.browser()
    visit = sign_in(rp, http)
    assert_failure(visit, "provider_unreachable", 503)
    assert visit.seconds < 2 + SLACK
    assert_anonymous(rp, http)


def test_a_slow_provider_does_not_hold_up_other_requests(op: AdversarialProvider, make_rp: Callable[..., RP]) -> None:
    rp = make_rp(http_timeout=1.0)
    op.faults["token"] = Slow(5.0)
    http = rp.browser()
    authorize = start_login(rp, http)
    callback = http.get(authorize, allow_redirects=False, timeout=10).headers["Location"]
    with ThreadPoolExecutor(max_workers=1) as pool:
        stuck = pool.submit(browse, http, callback)
        deadline = time.monotonic() + 2
        while not op.requests_to("/oauth/token") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert op.requests_to("/oauth/token"), "the callback never reached the token endpoint"
        started = time.monotonic()
        other = rp.browser()
        assert shown(rp, other)["remote_user"] is None
        assert time.monotonic() - started < 0.5  # served while the callback waits for the provider
        assert not stuck.done()
        assert_failure(stuck.result(timeout=10), "provider_timeout", 504)


# -- outages over time: start-up, recovery, JWKS grace ------------------------------------


def test_provider_down_at_start_up_then_back_without_restart(
    make_rp: Callable[..., RP], providers: list[AdversarialProvider], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(oidc, "DISCOVERY_RETRY_SECONDS", 0.3)  # the outage memory, shortened for the test
    port = free_port()
    provider = AdversarialProvider(issuer=f"http://127.0.0.1:{port}/", port=port)  # not listening yet
    providers.append(provider)
    rp = make_rp(provider)  # builds fine: discovery is lazy
    http = rp.browser()

    # Unprotected paths pass through, a protected page still sends the browser to sign in...
    assert shown(rp, http)["remote_user"] is None
    protected = http.get(rp.url("/dashboard"), headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert protected.status_code == 303
    assert urlsplit(protected.headers["Location"]).path == "/auth/login"
    # ...and the auth routes fail cleanly with the "unavailable" page.
    for start in (rp.url("/auth/login", target_url="/page"),
                  rp.url("/auth/sso", connection="Username-Password-Authentication", target_url="/page")):
        visit = browse(http, start)
        assert_failure(visit, "provider_unreachable", 503)
        assert "try again later" in visit.response.text
        assert visit.seconds < 1 + SLACK
    assert_logged(caplog, "provider_unreachable", r"discovery")
    assert_anonymous(rp, http)

    provider.start(port)  # the provider comes back on its address
    deadline = time.monotonic() + 5
    visit = sign_in(rp, http)
    while visit.urls[-1] != rp.url("/page") and time.monotonic() < deadline:
        time.sleep(0.1)
        visit = sign_in(rp, http)
    assert_signed_in(rp, visit)


def test_discovery_outage_is_not_hammered_and_recovers(
    op: AdversarialProvider, rp: RP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oidc, "DISCOVERY_RETRY_SECONDS", 1.0)
    op.faults["discovery"] = Status(503)
    http = rp.browser()
    started = time.monotonic()
    attempts = 0
    while time.monotonic() - started < 0.5:
        assert_failure(sign_in(rp, http), "provider_unreachable", 503)
        attempts += 1
    assert attempts >= 3
    assert len(op.requests_to("/openid-configuration")) == 1  # the failure is remembered, not retried each time
    del op.faults["discovery"]
    deadline = time.monotonic() + 5
    visit = sign_in(rp, http)
    while visit.urls[-1] != rp.url("/page") and time.monotonic() < deadline:
        time.sleep(0.1)
        visit = sign_in(rp, http)
    assert_signed_in(rp, visit)


def test_jwks_outage_after_the_first_fetch(
    op: AdversarialProvider, make_rp: Callable[..., RP], caplog: pytest.LogCaptureFixture
) -> None:
    rp = make_rp(discovery_ttl=1)
    assert_signed_in(rp, sign_in(rp))
    op.faults["jwks"] = Status(503)
    time.sleep(1.1)  # the cached JWKS is now due for a refresh, which fails

    # Cached keys keep working within the grace period.
    op.authorize_user = "bob"
    assert_signed_in(rp, sign_in(rp), "bob")
    assert len(op.requests_to("/jwks.json")) == 2
    assert any("JWKS refresh failed" in record.getMessage() for record in caplog.records)

    # A token signed with a key the cache does not hold fails cleanly, without userinfo.
    pin_jwks(op)
    op.kid, op.id_token_key = "key-2", rsa_key("rotated")
    http = rp.browser()
    userinfo_calls = len(op.requests_to("/userinfo"))
    visit = sign_in(rp, http)
    assert_failure(visit, "invalid_id_token", 401)
    assert len(op.requests_to("/userinfo")) == userinfo_calls
    assert len(op.requests_to("/jwks.json")) <= 3
    assert_anonymous(rp, http)
    assert_logged(caplog, "invalid_id_token", r"kid 'key-2'")
