"""The public in-memory provider (``sso_middleware.testing.FakeProvider``) on its own, over ``requests``.

The middleware's tests use it everywhere; these check the promises its docstring makes to a
user who tests their own client with it: codes bound to PKCE, redirect URI and client,
per-sign-in claims, signing at authorize(), refresh-token rotation and reuse, and a repr
and a record of secrets that keep codes and tokens out of logs.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

from sso_middleware.testing import FakeProvider, FakeProviderAdapter
from sso_middleware.testing.fake_provider import CLIENT_ID, CLIENT_SECRET, ISSUED_SECRETS, ISSUER
from sso_middleware.testing.keys import at_hash, public_jwk, rsa_key, s256

REDIRECT_URI = "https://rp.example/auth/callback"


def http_for(provider: FakeProvider) -> requests.Session:
    """A plain ``requests`` client whose every request the provider answers."""
    session = requests.Session()
    adapter = provider.transport()
    assert isinstance(adapter, FakeProviderAdapter) and adapter.provider is provider
    session.mount("https://", adapter)
    return session


def authorize_url(provider: FakeProvider, verifier: str, scope: str = "openid profile email") -> str:
    query = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": scope,
             "state": "state-1", "nonce": "nonce-1", "code_challenge": s256(verifier),
             "code_challenge_method": "S256"}
    return provider.discovery()["authorization_endpoint"] + "?" + urlencode(query)


def code_of(callback: str) -> str:
    return parse_qs(urlsplit(callback).query)["code"][0]


def exchange(http: requests.Session, code: str, verifier: str, secret: str = CLIENT_SECRET,
             redirect_uri: str = REDIRECT_URI) -> requests.Response:
    basic = base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
    return http.post(ISSUER + "oauth/token", headers={"Authorization": f"Basic {basic}"},
                     data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                           "redirect_uri": redirect_uri})


def refresh(http: requests.Session, token: str) -> requests.Response:
    return http.post(ISSUER + "oauth/token", auth=(CLIENT_ID, CLIENT_SECRET),
                     data={"grant_type": "refresh_token", "refresh_token": token})


def claims_of(provider: FakeProvider, id_token: str) -> dict[str, Any]:
    key = jwt.PyJWK(public_jwk(rsa_key(), provider.kid)).key
    decoded: dict[str, Any] = jwt.decode(id_token, key, algorithms=["RS256"], audience=CLIENT_ID, issuer=ISSUER)
    return decoded


def sign_in(provider: FakeProvider, http: requests.Session, scope: str = "openid profile email",
            claims: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(32)
    callback = provider.authorize(authorize_url(provider, verifier, scope), "bob", claims=claims)
    answer = exchange(http, code_of(callback), verifier)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_the_callback_carries_code_state_and_iss() -> None:
    provider = FakeProvider()
    callback = provider.authorize(authorize_url(provider, "v" * 43))
    query = parse_qs(urlsplit(callback).query)
    assert callback.startswith(REDIRECT_URI + "?")
    assert query["state"] == ["state-1"] and query["iss"] == [ISSUER]
    assert code_of(callback) in ISSUED_SECRETS


def test_a_code_is_exchanged_once_for_a_signed_id_token_with_the_nonce() -> None:
    provider = FakeProvider()
    http = http_for(provider)
    verifier = secrets.token_urlsafe(32)
    code = code_of(provider.authorize(authorize_url(provider, verifier), "bob"))
    answer = exchange(http, code, verifier)
    assert answer.status_code == 200
    body = answer.json()
    claims = claims_of(provider, body["id_token"])
    assert (claims["sub"], claims["nonce"], claims["email"]) == ("bob", "nonce-1", "bob@example.com")
    assert body["access_token"] in ISSUED_SECRETS
    assert "refresh_token" not in body  # no offline_access asked for
    assert exchange(http, code, verifier).json()["error"] == "invalid_grant"  # used up
    assert len(provider.requests_to("/oauth/token")) == 2


@pytest.mark.parametrize(("change", "status", "error"), [
    pytest.param({"verifier": "another-verifier-" + "x" * 30}, 400, "invalid_grant", id="pkce"),
    pytest.param({"redirect_uri": "https://evil.example/cb"}, 400, "invalid_grant", id="redirect-uri"),
    pytest.param({"secret": "wrong-secret"}, 401, "invalid_client", id="client-secret"),
])
def test_a_code_is_bound_to_its_verifier_redirect_uri_and_client(change: dict[str, str], status: int,
                                                                 error: str) -> None:
    provider = FakeProvider()
    verifier = secrets.token_urlsafe(32)
    code = code_of(provider.authorize(authorize_url(provider, verifier)))
    arguments = {"verifier": verifier, "secret": CLIENT_SECRET, "redirect_uri": REDIRECT_URI, **change}
    answer = exchange(http_for(provider), code, **arguments)
    assert (answer.status_code, answer.json()["error"]) == (status, error)


def test_claims_of_one_sign_in_do_not_reach_the_next() -> None:
    provider = FakeProvider()
    http = http_for(provider)
    first = claims_of(provider, sign_in(provider, http, claims={"sid": "op-session-9"})["id_token"])
    second = claims_of(provider, sign_in(provider, http)["id_token"])
    assert first["sid"] == "op-session-9"
    assert second["sid"] == "provider-session-1"


@pytest.mark.parametrize("sign_at_authorize", [True, False])
def test_sign_at_authorize_fixes_the_id_token_when_the_browser_is_sent_back(sign_at_authorize: bool) -> None:
    provider = FakeProvider(sign_at_authorize=sign_at_authorize)
    verifier = secrets.token_urlsafe(32)
    code = code_of(provider.authorize(authorize_url(provider, verifier), claims={"acr": "urn:mfa"}))
    provider.id_token_overrides = {"name": "changed after authorize"}
    claims = claims_of(provider, exchange(http_for(provider), code, verifier).json()["id_token"])
    assert claims["acr"] == "urn:mfa"
    assert (claims["name"] == "changed after authorize") is not sign_at_authorize


def test_refresh_rotates_and_a_reused_token_revokes_its_family() -> None:
    provider = FakeProvider(reuse_revokes_family=True, refresh_id_token=True)
    http = http_for(provider)
    first = sign_in(provider, http, scope="openid offline_access")["refresh_token"]
    answer = refresh(http, first).json()
    second = answer["refresh_token"]
    assert second != first and provider.live_refresh_tokens("bob") == [second]
    assert claims_of(provider, answer["id_token"])["at_hash"] == at_hash(answer["access_token"])
    assert refresh(http, first).json()["error"] == "invalid_grant"  # consumed: refused, and the family revoked
    assert provider.live_refresh_tokens() == []
    assert refresh(http, second).json()["error"] == "invalid_grant"
    assert (provider.refreshes, provider.refresh_requests) == (1, 3)


def test_revoke_ends_a_refresh_token() -> None:
    provider = FakeProvider()
    http = http_for(provider)
    token = sign_in(provider, http, scope="openid offline_access")["refresh_token"]
    assert provider.revoke(token) == 1
    assert refresh(http, token).json()["error"] == "invalid_grant"


def test_the_revocation_endpoint_kills_refresh_and_access_tokens_and_records_each_call() -> None:
    provider = FakeProvider(revocation=True)
    assert provider.discovery()["revocation_endpoint"] == ISSUER + "oauth/revoke"
    assert "revocation_endpoint" not in FakeProvider().discovery()
    http = http_for(provider)
    tokens = sign_in(provider, http, scope="openid offline_access")

    def revoke(token: str, hint: str, secret: str = CLIENT_SECRET) -> requests.Response:
        return http.post(ISSUER + "oauth/revoke", auth=(CLIENT_ID, secret),
                         data={"token": token, "token_type_hint": hint})

    assert revoke(tokens["refresh_token"], "refresh_token", secret="wrong").status_code == 401
    assert refresh(http, tokens["refresh_token"]).status_code == 200  # refused revocation: still alive (rotated)
    fresh = sign_in(provider, http, scope="openid offline_access")
    assert revoke(fresh["refresh_token"], "refresh_token").status_code == 200
    assert refresh(http, fresh["refresh_token"]).json()["error"] == "invalid_grant"
    assert revoke(fresh["access_token"], "access_token").status_code == 200
    bearer = {"Authorization": "Bearer " + fresh["access_token"]}
    assert http.get(ISSUER + "userinfo", headers=bearer).status_code == 401
    assert revoke("never-issued", "refresh_token").status_code == 200  # RFC 7009 section 2.2
    assert provider.revocations == [("refresh_token", "refresh_token"), ("access_token", "access_token"),
                                    ("refresh_token", "unknown")]
    provider.revocation_status = 503
    assert revoke("x", "access_token").status_code == 503


def test_the_repr_shows_no_code_or_token() -> None:
    provider = FakeProvider()
    verifier = secrets.token_urlsafe(32)
    code = code_of(provider.authorize(authorize_url(provider, verifier, "openid offline_access")))
    tokens = exchange(http_for(provider), code, verifier).json()
    assert repr(provider) == f"<FakeProvider issuer={ISSUER!r} client_id={CLIENT_ID!r}>"
    assert provider.refresh_tokens  # there is something to hide
    assert repr(provider.last_grant).count("nonce-1") == 0 and tokens["refresh_token"] not in repr(provider)


def test_a_fault_answers_in_place_of_the_endpoint() -> None:
    provider = FakeProvider(fail={"/userinfo": 503, "/.well-known/jwks.json": requests.ConnectionError("down")})
    http = http_for(provider)
    assert http.get(ISSUER + "userinfo").status_code == 503
    with pytest.raises(requests.ConnectionError):
        http.get(ISSUER + ".well-known/jwks.json")
    assert http.get(ISSUER + ".well-known/openid-configuration").json()["issuer"] == ISSUER
