"""validate_logout_token (Back-Channel Logout 1.0 sections 2.4 and 2.6) with real signed tokens.

The ID-token rules it shares (signature, algorithm, ``iss``, ``aud``, times) are
covered exhaustively in ``test_id_token.py``; here each is checked once more on
a logout token, together with the logout token's own rules.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import pytest

from sso_middleware._oidc.id_token import LOGOUT_EVENT, TokenRules, validate_logout_token
from sso_middleware._oidc.jwks import KeySet
from sso_middleware.errors import AuthFailure, ProviderError, ProviderUnreachable

from ..tokens import CLIENT_ID, ISSUER, JWKSFetch, claims, ec_key, forge, hmac_token, rsa_key, sign

LEEWAY = 60
NOW = int(time.time())
CLIENT_SECRET = "client-secret-of-at-least-32-bytes-long"


def logout_claims(now: float = NOW, **overrides: Any) -> dict[str, Any]:
    """Valid logout-token claims (with ``sid``); overrides replace (None removes) claims."""
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "iat": int(now),
        "exp": int(now) + 120,
        "jti": "jti-1",
        "sid": "provider-session-1",
        "events": {LOGOUT_EVENT: {}},
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def validate(token: str, *, algorithms: tuple[str, ...] = ("RS256",), now: float = NOW,
             fetch: Optional[JWKSFetch] = None) -> dict[str, Any]:
    return validate_logout_token(
        token,
        TokenRules(keys=KeySet(fetch or JWKSFetch(), ttl=3600), issuer=ISSUER, client_id=CLIENT_ID,
                   client_secret=CLIENT_SECRET, algorithms=algorithms, leeway=LEEWAY),
        now=now,
    )


def refused(token: str, **kwargs: Any) -> AuthFailure:
    with pytest.raises(AuthFailure) as caught:
        validate(token, **kwargs)
    assert caught.value.code == "invalid_logout_token", caught.value
    assert not isinstance(caught.value, ProviderError)
    assert token not in str(caught.value)
    return caught.value


def logout_token(typ: Optional[str] = "logout+jwt", **overrides: Any) -> str:
    return sign(logout_claims(**overrides), typ=typ)


# -- valid tokens ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "sid", "sub"),
    [
        pytest.param({}, "provider-session-1", None, id="sid"),
        pytest.param({"sid": None, "sub": "alice"}, None, "alice", id="sub"),
        pytest.param({"sub": "alice"}, "provider-session-1", "alice", id="sid-and-sub"),
    ],
)
def test_valid_logout_tokens(overrides: dict[str, Any], sid: Optional[str], sub: Optional[str]) -> None:
    result = validate(logout_token(**overrides))
    assert result.get("sid") == sid
    assert result.get("sub") == sub
    assert result["events"] == {LOGOUT_EVENT: {}}


@pytest.mark.parametrize("typ", ["logout+jwt", "application/logout+jwt", "Logout+JWT", "APPLICATION/logout+jwt", None,
                                 "JWT", "application/jwt"])
def test_accepted_typ_headers(typ: Optional[str]) -> None:
    """Section 2.4: ``logout+jwt``; media types compare case-insensitively, ``application/`` optional (RFC 7515).

    The generic ``JWT`` counts as untyped (Keycloak sends it): its ``events``, ``jti`` and no ``nonce``
    are what keep an ID token out (see test_an_id_token_replayed_as_a_logout_token_is_refused).
    """
    assert validate(logout_token(typ=typ))["sid"] == "provider-session-1"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"events": {LOGOUT_EVENT: {}, "http://example.com/other-event": {}}}, id="other-events-too"),
        pytest.param({"aud": [CLIENT_ID]}, id="aud-list-of-one"),
        pytest.param({"exp": NOW - LEEWAY + 10}, id="exp-within-leeway"),
        pytest.param({"iat": NOW + LEEWAY - 10}, id="iat-within-leeway"),
    ],
)
def test_valid_variants(overrides: dict[str, Any]) -> None:
    assert validate(logout_token(**overrides))["sid"] == "provider-session-1"


def test_an_es256_logout_token_with_its_key_in_the_jwks() -> None:
    from ..tokens import ec_jwk

    fetch = JWKSFetch([ec_jwk(ec_key(), "ec-1")])
    token = sign(logout_claims(), key=ec_key(), alg="ES256", kid="ec-1", typ="logout+jwt")
    assert validate(token, algorithms=("RS256", "ES256"), fetch=fetch)["sid"] == "provider-session-1"


# -- the logout token's own rules --------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"events": None}, id="missing-events"),
        pytest.param({"events": {"http://schemas.openid.net/event/other": {}}}, id="wrong-event-uri"),
        pytest.param({"events": {LOGOUT_EVENT.replace("http://", "https://"): {}}}, id="event-uri-https"),
        pytest.param({"events": {LOGOUT_EVENT + "/": {}}}, id="event-uri-trailing-slash"),
        pytest.param({"events": [LOGOUT_EVENT]}, id="events-a-list"),
        pytest.param({"events": LOGOUT_EVENT}, id="events-a-string"),
        pytest.param({"events": {}}, id="events-empty"),
        pytest.param({"events": {LOGOUT_EVENT: "yes"}}, id="event-value-not-an-object"),
        pytest.param({"events": {LOGOUT_EVENT: None}}, id="event-value-null"),
        pytest.param({"nonce": "nonce-1"}, id="nonce-present"),
        pytest.param({"nonce": ""}, id="empty-nonce-present"),
        pytest.param({"sid": None}, id="neither-sub-nor-sid"),
        pytest.param({"sid": ""}, id="empty-sid"),
        pytest.param({"sid": None, "sub": ""}, id="empty-sub"),
        pytest.param({"sid": 123}, id="integer-sid"),
        pytest.param({"sid": None, "sub": ["alice"]}, id="list-sub"),
        pytest.param({"sub": 7}, id="sid-with-integer-sub"),
    ],
)
def test_logout_rules(overrides: dict[str, Any]) -> None:
    refused(logout_token(**overrides))


@pytest.mark.parametrize("typ", [None, "JWT"])
def test_an_id_token_replayed_as_a_logout_token_is_refused(typ: Optional[str]) -> None:
    # A perfectly valid ID token of this client (nonce, no events), signed by the provider, typed or not.
    headers = {"typ": typ} if typ else {}
    id_token = sign(claims(now=NOW, sid="provider-session-1"), **headers)
    refused(id_token)


def test_an_id_token_with_an_events_claim_but_a_nonce_is_still_refused() -> None:
    refused(sign(claims(now=NOW, events={LOGOUT_EVENT: {}}, sid="provider-session-1")))


@pytest.mark.parametrize("typ", ["at+jwt", "id_token+jwt", "secevent+jwt", "JOSE", "logout+JWT+x", "",
                                 "logout", 7, ["logout+jwt"]])
def test_other_typ_headers_are_refused(typ: Any) -> None:
    """An explicit ``typ`` other than ``logout+jwt`` (or the generic ``JWT``) is refused."""
    assert "typ" in refused(logout_token(typ=typ)).detail


# -- jti (issue 13 item 13) ----------------------------------------------------------------------


@pytest.mark.parametrize("jti", [None, "", 17, ["jti-1"], {"id": 1}], ids=["missing", "empty", "int", "list", "object"])
def test_a_logout_token_without_a_usable_jti_is_refused(jti: Any) -> None:
    """Section 2.4 makes ``jti`` REQUIRED: without it a replay could never be told from a new logout."""
    assert "jti" in refused(logout_token(jti=jti)).detail.lower()


# -- the rules shared with ID tokens ---------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"iss": "https://evil.example/"}, id="wrong-iss"),
        pytest.param({"iss": ISSUER.rstrip("/")}, id="iss-without-trailing-slash"),
        pytest.param({"iss": None}, id="missing-iss"),
        pytest.param({"aud": "another-client"}, id="wrong-aud"),
        pytest.param({"aud": None}, id="missing-aud"),
        pytest.param({"aud": [CLIENT_ID, "another-client"]}, id="several-aud-without-azp"),
        pytest.param({"exp": NOW - 3600}, id="expired"),
        pytest.param({"exp": NOW - LEEWAY - 5}, id="expired-beyond-leeway"),
        pytest.param({"iat": NOW + LEEWAY + 60}, id="iat-in-the-future"),
        pytest.param({"iat": None}, id="missing-iat"),
        pytest.param({"exp": None}, id="missing-exp"),
        pytest.param({"exp": "9999999999"}, id="exp-string"),
        pytest.param({"nbf": NOW + LEEWAY + 60}, id="nbf-in-the-future"),
    ],
)
def test_shared_claim_rules(overrides: dict[str, Any]) -> None:
    refused(logout_token(**overrides))


def test_alg_none_is_refused() -> None:
    refused(forge({"alg": "none", "typ": "logout+jwt"}, logout_claims()))
    refused(forge({"alg": "none", "typ": "logout+jwt"}, logout_claims()), algorithms=("RS256", "none"))


def test_an_algorithm_outside_the_allow_list_is_refused() -> None:
    refused(sign(logout_claims(), alg="RS384", typ="logout+jwt"))
    refused(sign(logout_claims(), alg="PS256", typ="logout+jwt"), algorithms=("RS256", "ES256"))


def test_hs256_keyed_with_the_public_key_is_refused() -> None:
    """The RS/HS confusion: HS256 is not allowed here, whatever the HMAC key."""
    from cryptography.hazmat.primitives import serialization

    pem = rsa_key().public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    refused(hmac_token({"alg": "HS256", "typ": "logout+jwt", "kid": "key-1"}, logout_claims(), pem))


def test_an_unknown_kid_is_refused() -> None:
    fetch = JWKSFetch()
    refused(sign(logout_claims(), kid="key-unknown", typ="logout+jwt"), fetch=fetch)
    assert fetch.calls >= 1  # looked for it (a rotation would have been picked up)


def test_a_bad_signature_is_refused() -> None:
    refused(sign(logout_claims(), key=rsa_key("attacker"), typ="logout+jwt"))
    head, body, signature = logout_token().split(".")
    refused(f"{head}.{body}.{signature[:-6]}AAAAAA")
    forged_body = forge({}, logout_claims(sid="someone-else")).split(".")[1]
    refused(f"{head}.{forged_body}.{signature}")


def test_critical_headers_are_refused() -> None:
    refused(sign(logout_claims(), typ="logout+jwt", crit=["exp"]))


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b", "a.b.c", "...."])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(AuthFailure) as caught:
        validate(token)
    assert caught.value.code == "invalid_logout_token"


def test_the_time_checks_use_the_given_now() -> None:
    issued = 1_000_000_000
    token = sign(logout_claims(now=issued), typ="logout+jwt")
    assert validate(token, now=issued + 10)["sid"] == "provider-session-1"
    refused(token, now=issued + 120 + LEEWAY + 1)
    refused(token, now=issued - LEEWAY - 1)


def test_jwks_unreachable_is_a_provider_error_not_a_refusal() -> None:
    fetch = JWKSFetch()
    fetch.error = ProviderUnreachable("jwks: ConnectionError")
    with pytest.raises(ProviderError) as caught:
        validate(logout_token(), fetch=fetch)
    assert caught.value.code == "provider_unreachable"
