"""validate_access_token with real signed tokens: every RFC 9068 rule, and the attack each one stops."""

from __future__ import annotations

import time
from typing import Any, Optional

import pytest
from cryptography.hazmat.primitives import serialization

from sso_middleware._oidc.access_token import (
    AccessTokenRules,
    OpaqueAccessToken,
    checked_claims,
    is_jwt,
    scopes_of,
    validate_access_token,
)
from sso_middleware._oidc.id_token import TokenRules
from sso_middleware._oidc.jwks import KeySet
from sso_middleware.errors import InvalidAccessToken, ProviderUnreachable

from ..tokens import (
    API,
    CLIENT_ID,
    ISSUER,
    JWKSFetch,
    access_claims,
    access_token,
    claims,
    ec_jwk,
    ec_key,
    forge,
    hmac_token,
    public_jwk,
    rsa_key,
    sign,
)

LEEWAY = 60
NOW = 1_900_000_000.0
AT_JWT = frozenset({"at+jwt"})
AUTH0_DEFAULT = frozenset({"at+jwt", "jwt"})


def rules(fetch: Optional[JWKSFetch] = None, *, algorithms: tuple[str, ...] = ("RS256", "ES256"),
          types: frozenset[str] = AT_JWT, typ_required: bool = True, audience: str = API) -> AccessTokenRules:
    keys = KeySet(fetch or JWKSFetch(), ttl=3600)
    return AccessTokenRules(
        tokens=TokenRules(keys=keys, issuer=ISSUER, client_id=CLIENT_ID, client_secret="", algorithms=algorithms,
                          leeway=LEEWAY),
        audience=audience, types=types, typ_required=typ_required,
    )


def validate(token: str, now: float = NOW, **kwargs: Any) -> dict[str, Any]:
    return validate_access_token(token, rules(**kwargs), now=now)


def refused(token: str, now: float = NOW, **kwargs: Any) -> InvalidAccessToken:
    with pytest.raises(InvalidAccessToken) as caught:
        validate(token, now, **kwargs)
    assert caught.value.code == "invalid_access_token"
    assert token not in str(caught.value)  # never the token in a message
    return caught.value


def test_a_valid_token_gives_its_claims_and_scopes() -> None:
    found = validate(access_token(NOW))
    assert found == access_claims(NOW)
    assert scopes_of(found) == ("read:messages", "read:admin")


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+Jwt"])
def test_the_rfc_9068_types_are_accepted(typ: str) -> None:
    assert validate(access_token(NOW, typ=typ))["sub"] == "alice"


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        pytest.param({"iss": "https://evil.example/"}, "iss", id="wrong-iss"),
        pytest.param({"iss": ISSUER.rstrip("/")}, "iss", id="iss-without-slash"),
        pytest.param({"aud": "https://other-api.example/"}, "aud", id="wrong-aud"),
        pytest.param({"aud": [CLIENT_ID]}, "aud", id="aud-is-the-client"),
        pytest.param({"aud": None}, "aud", id="no-aud"),
        pytest.param({"exp": NOW - LEEWAY - 1}, "expired", id="expired"),
        pytest.param({"exp": None}, "exp", id="no-exp"),
        pytest.param({"nbf": NOW + LEEWAY + 5}, "nbf", id="nbf-future"),
        pytest.param({"iat": NOW + LEEWAY + 5}, "iat", id="iat-future"),
        pytest.param({"iat": None}, "iat", id="no-iat"),
        pytest.param({"sub": None}, "sub", id="no-sub"),
        pytest.param({"sub": ""}, "sub", id="empty-sub"),
        pytest.param({"sub": 42}, "sub", id="sub-not-a-string"),
        pytest.param({"exp": "soon"}, "exp", id="exp-not-a-number"),
        pytest.param({"scope": ["read:messages"]}, "scope", id="scope-not-a-string"),
        pytest.param({"nonce": "n-1"}, "ID token", id="carries-a-nonce"),
        pytest.param({"events": {"x": {}}}, "logout", id="carries-events"),
    ],
)
def test_every_claim_rule_refuses_its_attack(overrides: dict[str, Any], why: str) -> None:
    failure = refused(access_token(NOW, **overrides))
    assert why.lower() in failure.detail.lower(), failure.detail


def test_times_within_the_leeway_pass() -> None:
    assert validate(access_token(NOW, exp=NOW - LEEWAY + 1, iat=NOW + LEEWAY - 1, nbf=NOW + LEEWAY - 1))


def test_aud_as_a_list_containing_the_api_passes_and_azp_is_not_ours_to_check() -> None:
    token = access_token(NOW, aud=[API, ISSUER + "userinfo"], azp="spa-client")  # Auth0's shape
    assert validate(token)["azp"] == "spa-client"


def test_alg_none_is_refused() -> None:
    token = forge({"alg": "none", "typ": "at+jwt"}, access_claims(NOW))
    assert "algorithm" in refused(token).detail
    assert "algorithm" in refused(token, algorithms=("RS256", "none")).detail  # even if someone listed it


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    """Algorithm confusion: the JWKS's public key used as an HMAC secret."""
    pem = rsa_key().public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    token = hmac_token({"alg": "HS256", "typ": "at+jwt", "kid": "key-1"}, access_claims(NOW), pem)
    assert "algorithm" in refused(token).detail
    # Even with HS256 in the allow-list (which the settings refuse), no key fits an HMAC algorithm.
    assert refused(token, algorithms=("RS256", "HS256"))


def test_an_algorithm_outside_the_allow_list_is_refused_before_the_key_lookup() -> None:
    fetch = JWKSFetch([ec_jwk(ec_key(), "ec-1")])
    token = access_token(NOW, key=ec_key(), alg="ES256", kid="ec-1")
    assert validate(token, fetch=fetch)["sub"] == "alice"
    with pytest.raises(InvalidAccessToken, match="algorithm"):
        validate_access_token(token, rules(fetch, algorithms=("RS256",)), now=NOW)
    assert fetch.calls == 1  # the second check never needed the keys


def test_a_key_of_another_family_is_never_used() -> None:
    """An RS256 header naming the EC key's kid: key_fits refuses the pair."""
    fetch = JWKSFetch([ec_jwk(ec_key(), "ec-1"), public_jwk(rsa_key(), "key-1")])
    token = access_token(NOW, kid="ec-1")
    with pytest.raises(InvalidAccessToken, match="no usable RS256 key"):
        validate_access_token(token, rules(fetch), now=NOW)


def test_an_unknown_kid_refetches_once_then_fails() -> None:
    fetch = JWKSFetch()
    keys = rules(fetch)
    assert validate_access_token(access_token(NOW), keys, now=NOW)
    assert fetch.calls == 1
    with pytest.raises(InvalidAccessToken, match="kid 'rotated'"):
        validate_access_token(access_token(NOW, kid="rotated"), keys, now=NOW)
    assert fetch.calls == 2  # one refetch for the unknown kid, then the refusal


def test_a_rotated_key_is_found_by_the_refetch() -> None:
    fetch = JWKSFetch()
    keys = rules(fetch)
    assert validate_access_token(access_token(NOW), keys, now=NOW)
    new_key = ec_key("rotated")
    fetch.keys = [ec_jwk(new_key, "rotated")]
    assert validate_access_token(access_token(NOW, key=new_key, alg="ES256", kid="rotated"), keys, now=NOW)
    assert fetch.calls == 2


def test_a_bad_signature_is_refused() -> None:
    token = access_token(NOW)
    head, body, _ = token.split(".")
    other = access_token(NOW, sub="bob").split(".")[2]
    assert "Signature" in refused(f"{head}.{body}.{other}").detail


def test_a_token_signed_by_another_key_with_the_right_kid_is_refused() -> None:
    assert refused(access_token(NOW, key=rsa_key("attacker")))


@pytest.mark.parametrize(
    ("typ", "types", "required", "accepted"),
    [
        pytest.param("JWT", AT_JWT, True, False, id="JWT-in-at+jwt-mode"),
        pytest.param(None, AT_JWT, True, False, id="no-typ-in-at+jwt-mode"),
        pytest.param("logout+jwt", AT_JWT, True, False, id="logout-typ"),
        pytest.param("JWT", AUTH0_DEFAULT, False, True, id="JWT-in-JWT-mode"),
        pytest.param(None, AUTH0_DEFAULT, False, True, id="no-typ-in-JWT-mode"),
        pytest.param("at+jwt", AUTH0_DEFAULT, False, True, id="at+jwt-in-JWT-mode"),
        pytest.param("logout+jwt", AUTH0_DEFAULT, False, False, id="logout-typ-in-JWT-mode"),
        pytest.param("secevent+jwt", AUTH0_DEFAULT, False, False, id="secevent-typ-in-JWT-mode"),
    ],
)
def test_the_typ_header(typ: Optional[str], types: frozenset[str], required: bool, accepted: bool) -> None:
    token = access_token(NOW, typ=typ)
    if accepted:
        assert validate(token, types=types, typ_required=required)["sub"] == "alice"
    else:
        assert "typ" in refused(token, types=types, typ_required=required).detail


@pytest.mark.parametrize("types", [AT_JWT, AUTH0_DEFAULT], ids=["at+jwt", "JWT"])
def test_an_id_token_presented_as_an_access_token_is_refused(types: frozenset[str]) -> None:
    """A real ID token of this provider (typ JWT, aud the client, a nonce, no scope) never passes."""
    id_token = sign(claims(NOW))
    refused(id_token, types=types, typ_required=types == AT_JWT)
    # even re-typed at+jwt and addressed to the API, its nonce gives it away
    assert "ID token" in refused(sign(claims(NOW, aud=API), typ="at+jwt")).detail


def test_the_jwks_being_down_is_a_provider_error_not_a_verdict() -> None:
    fetch = JWKSFetch()
    fetch.error = ProviderUnreachable("jwks: HTTP 503")
    with pytest.raises(ProviderUnreachable):
        validate_access_token(access_token(NOW), rules(fetch), now=NOW)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("opaque-token-value", id="opaque"),
        pytest.param("a.b", id="two-segments"),
        pytest.param("a.b.c.d.e", id="jwe-shaped"),
    ],
)
def test_a_token_that_is_not_a_jws_is_opaque(token: str) -> None:
    assert not is_jwt(token)
    with pytest.raises(OpaqueAccessToken):
        validate(token)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("x.y.z", id="garbage-segments"),
        pytest.param("e30.e30.", id="empty-objects"),
        pytest.param(forge({"alg": "RS256", "typ": "at+jwt", "crit": ["exp"]}, access_claims(NOW)), id="crit"),
        pytest.param(forge({"alg": "RS256", "typ": "at+jwt", "kid": 7}, access_claims(NOW)), id="kid-not-a-string"),
        pytest.param(forge(["not", "an", "object"], access_claims(NOW)), id="header-a-list"),  # type: ignore[arg-type]
    ],
)
def test_malformed_jwts_are_invalid_not_errors(token: str) -> None:
    refused(token)


def test_checked_claims_is_what_introspection_answers_meet_too() -> None:
    assert checked_claims({"sub": "alice", "scope": "a b"}) == {"sub": "alice", "scope": "a b"}
    for bad in ({"scope": "a"}, {"sub": "alice", "nonce": "x"}, {"sub": "alice", "scope": 3}):
        with pytest.raises(InvalidAccessToken):
            checked_claims(bad)


def test_scopes_of() -> None:
    assert scopes_of({"scope": "a  b a"}) == ("a", "b")
    assert scopes_of({}) == ()
    assert scopes_of({"scope": ["a"]}) == ()


def test_the_real_clock_is_the_default_moment() -> None:
    now = time.time()
    assert validate(access_token(now), now=now)


# -- scope separators, sender-constrained tokens ----------------------------------


@pytest.mark.parametrize("separator", ["\u00a0", "\u2003", "\x1f", "\u3000", "\t", "\n"])
def test_scopes_are_separated_by_spaces_only(separator: str) -> None:
    """RFC 6749 section 3.3: scope = scope-token *( SP scope-token ); SP is %x20 alone.

    ``str.split()`` also splits on NBSP, em space, \\x1c-\\x1f...: a scope the provider issued
    as one opaque string ``x<NBSP>read:admin`` must not turn into the granted ``read:admin``
    (neither in ``sso.scopes`` nor in a ``bearer_rules`` scope check).
    """
    from sso_middleware._policy.rules import Condition

    scope = f"read:messages x{separator}read:admin"
    assert scopes_of({"scope": scope}) == ("read:messages", f"x{separator}read:admin")
    assert not Condition("scope", "includes", ("read:admin",)).holds({"scope": scope})
    assert scopes_of({"scope": "  read:messages   read:admin read:messages "}) == ("read:messages", "read:admin")


def test_a_sender_constrained_token_is_not_a_bearer_token() -> None:
    """A DPoP- or mTLS-bound access token (``cnf``, RFC 9449 / RFC 8705) needs its proof checked.

    The gate checks no proof, so accepting such a token as plain ``Bearer`` turns a stolen
    sender-constrained token back into a bearer one.  Refuse tokens carrying ``cnf``.
    """
    token = access_token(NOW, cnf={"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})
    with pytest.raises(InvalidAccessToken, match="sender-constrained"):
        validate(token)
    assert validate(access_token(NOW))  # the same token without cnf passes
