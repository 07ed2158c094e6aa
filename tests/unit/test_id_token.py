"""validate_id_token with real signed tokens: every claim, signature and header rule."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable, Optional

import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import get_default_algorithms

from sso_middleware._oidc.id_token import (
    TokenRules,
    accepted_algorithms,
    validate_id_token,
    validate_refreshed_id_token,
)
from sso_middleware._oidc.jwks import KeySet
from sso_middleware.errors import AuthFailure

from ..tokens import (
    CLIENT_ID,
    ISSUER,
    JWKSFetch,
    b64url,
    claims,
    ec_jwk,
    ec_key,
    forge,
    hmac_token,
    public_jwk,
    rsa_key,
    sign,
)

HMAC_SECRET = "client-secret-of-at-least-32-bytes-long"
LEEWAY = 60


def validate(
    token: str,
    *,
    keys: Optional[list[dict[str, Any]]] = None,
    algorithms: tuple[str, ...] = ("RS256",),
    nonce: Optional[str] = "nonce-1",
    now: Optional[float] = None,
    access_token: Optional[str] = None,
    client_secret: str = HMAC_SECRET,
    allow_unsigned: bool = False,
) -> dict[str, Any]:
    fetch = JWKSFetch(keys)
    return validate_id_token(
        token,
        TokenRules(keys=KeySet(fetch, ttl=3600), issuer=ISSUER, client_id=CLIENT_ID, client_secret=client_secret,
                   algorithms=algorithms, leeway=LEEWAY),
        nonce=nonce,
        now=time.time() if now is None else now,
        access_token=access_token,
        allow_unsigned=allow_unsigned,
    )


def refused(token: str, **kwargs: Any) -> AuthFailure:
    with pytest.raises(AuthFailure) as caught:
        validate(token, **kwargs)
    assert caught.value.code == "invalid_id_token", caught.value
    assert token not in str(caught.value) or not token  # the token itself is never in the message
    return caught.value


def at_hash(access_token: str) -> str:
    return b64url(hashlib.sha256(access_token.encode()).digest()[:16])


def public_pem() -> bytes:
    return rsa_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- the valid cases ---------------------------------------------------------------


def test_valid_token_passes_and_returns_its_claims() -> None:
    result = validate(sign(claims(email="alice@example.com")))
    assert result["sub"] == "alice"
    assert result["email"] == "alice@example.com"


NOW = int(time.time())


@pytest.mark.parametrize(
    ("overrides", "what"),
    [
        pytest.param({"aud": [CLIENT_ID]}, "aud list of one without azp", id="aud-list-of-one"),
        pytest.param({"aud": [CLIENT_ID, "https://api.example"], "azp": CLIENT_ID}, "several aud with azp",
                     id="aud-list-with-azp"),
        pytest.param({"azp": CLIENT_ID}, "azp equal to client", id="azp-single-aud"),
        pytest.param({"exp": NOW - LEEWAY + 10}, "expired within leeway", id="exp-within-leeway"),
        pytest.param({"iat": NOW + LEEWAY - 10}, "iat ahead within leeway", id="iat-within-leeway"),
        pytest.param({"nbf": NOW + LEEWAY - 10}, "nbf ahead within leeway", id="nbf-within-leeway"),
        pytest.param({"iat": NOW - 3600, "exp": NOW + 60}, "old iat", id="old-iat"),
        pytest.param({"exp": NOW + 300.5, "iat": NOW + 0.5}, "float times", id="float-times"),
    ],
)
def test_valid_variants(overrides: dict[str, Any], what: str) -> None:
    assert validate(sign(claims(now=NOW, **overrides)), now=NOW)["sub"] == "alice", what


def test_no_nonce_expected_means_none_checked() -> None:
    assert validate(sign(claims(nonce=None)), nonce=None)["sub"] == "alice"


# -- claims ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"iss": "https://evil.example/"}, id="wrong-iss"),
        pytest.param({"iss": ISSUER.rstrip("/")}, id="iss-without-trailing-slash"),
        pytest.param({"iss": ISSUER.upper()}, id="iss-upper-case"),
        pytest.param({"iss": None}, id="missing-iss"),
        pytest.param({"iss": [ISSUER]}, id="iss-list"),
        pytest.param({"aud": "someone-else"}, id="wrong-aud"),
        pytest.param({"aud": None}, id="missing-aud"),
        pytest.param({"aud": []}, id="empty-aud-list"),
        pytest.param({"aud": ["someone-else"]}, id="aud-list-without-client"),
        pytest.param({"aud": [CLIENT_ID, "https://api.example"]}, id="aud-list-without-azp"),
        pytest.param({"aud": [CLIENT_ID, "https://api.example"], "azp": "someone-else"}, id="aud-list-azp-mismatch"),
        pytest.param({"azp": "someone-else"}, id="azp-mismatch"),
        pytest.param({"aud": CLIENT_ID.upper()}, id="aud-upper-case"),
        pytest.param({"exp": NOW - 3600}, id="expired"),
        pytest.param({"exp": NOW - LEEWAY - 5}, id="expired-just-beyond-leeway"),
        pytest.param({"exp": None}, id="missing-exp"),
        pytest.param({"exp": "9999999999"}, id="exp-string"),
        pytest.param({"exp": True}, id="exp-bool"),
        pytest.param({"iat": NOW + LEEWAY + 60}, id="iat-in-the-future"),
        pytest.param({"iat": None}, id="missing-iat"),
        pytest.param({"iat": "now"}, id="iat-string"),
        pytest.param({"nbf": NOW + LEEWAY + 60}, id="nbf-in-the-future"),
        pytest.param({"nbf": "later"}, id="nbf-string"),
        pytest.param({"sub": None}, id="missing-sub"),
        pytest.param({"sub": ""}, id="empty-sub"),
        pytest.param({"sub": 123}, id="integer-sub"),
        pytest.param({"sub": ["alice"]}, id="list-sub"),
        pytest.param({"nonce": None}, id="missing-nonce"),
        pytest.param({"nonce": "nonce-2"}, id="nonce-mismatch"),
        pytest.param({"nonce": ""}, id="empty-nonce"),
        pytest.param({"nonce": 1}, id="integer-nonce"),
        pytest.param({"nonce": ["nonce-1"]}, id="list-nonce"),
    ],
)
def test_claim_failures(overrides: dict[str, Any]) -> None:
    refused(sign(claims(now=NOW, **overrides)), now=NOW)


def test_time_checks_use_the_given_now_not_the_wall_clock() -> None:
    issued = 1_000_000_000  # 2001: long expired by the wall clock
    token = sign(claims(now=issued))
    assert validate(token, now=issued + 10)["sub"] == "alice"
    refused(token, now=issued + 300 + LEEWAY + 1)  # expired at the given time
    refused(token, now=issued - LEEWAY - 1)  # issued in the future at the given time
    fresh = sign(claims())
    refused(fresh, now=time.time() + 3600)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_nan_times_are_refused(claim: str) -> None:
    # Python's JSON parser accepts the non-standard NaN literal; NaN compares false with everything.
    values = claims()
    body = json.dumps({**values, claim: 0}).replace(f'"{claim}": 0', f'"{claim}": NaN')
    head = b64url(json.dumps({"alg": "RS256", "kid": "key-1"}).encode())
    signing_input = f"{head}.{b64url(body.encode())}"
    signature = get_default_algorithms()["RS256"].sign(signing_input.encode(), rsa_key())
    refused(f"{signing_input}.{b64url(signature)}")


def test_expiry_boundary_with_leeway() -> None:
    token = sign(claims(now=NOW, exp=NOW + 100))
    assert validate(token, now=NOW + 100 + LEEWAY - 1)["sub"] == "alice"
    refused(token, now=NOW + 100 + LEEWAY)


# -- signatures and algorithms -------------------------------------------------


def test_signature_by_another_key_is_refused() -> None:
    refused(sign(claims(), key=rsa_key("attacker")))


def test_tampered_payload_is_refused() -> None:
    head, _, signature = sign(claims()).split(".")
    forged_body = forge({}, claims(sub="mallory")).split(".")[1]
    refused(f"{head}.{forged_body}.{signature}")


def test_tampered_header_is_refused() -> None:
    _, body, signature = sign(claims()).split(".")
    forged_head = forge({"alg": "RS256", "kid": "key-1", "typ": "JWT"}, {}).split(".")[0]
    refused(f"{forged_head}.{body}.{signature}")


def test_signature_stripped_is_refused() -> None:
    head, body, _ = sign(claims()).split(".")
    refused(f"{head}.{body}.")


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"alg": "none"}, id="none"),
        pytest.param({"alg": "none", "kid": "key-1"}, id="none-with-kid"),
        pytest.param({"alg": "None"}, id="None"),
        pytest.param({"alg": "NONE"}, id="NONE"),
        pytest.param({"typ": "JWT"}, id="no-alg"),
        pytest.param({"alg": ""}, id="empty-alg"),
        pytest.param({"alg": ["RS256"]}, id="alg-list"),
    ],
)
def test_unsigned_tokens_are_refused(header: dict[str, Any]) -> None:
    refused(forge(header, claims()))


def test_alg_none_is_refused_even_if_a_caller_lists_it() -> None:
    refused(forge({"alg": "none"}, claims()), algorithms=("RS256", "none"))


def test_algorithm_outside_the_allow_list_is_refused() -> None:
    token = sign(claims(), alg="RS512")
    refused(token, algorithms=("RS256",), keys=[public_jwk(rsa_key(), "key-1", alg="RS512")])
    # ...and accepted once allowed, so it is the allow-list that refused it.
    assert validate(token, algorithms=("RS512",), keys=[public_jwk(rsa_key(), "key-1", alg="RS512")])


def test_ps256_with_an_rsa_key() -> None:
    token = sign(claims(), alg="PS256")
    keys = [public_jwk(rsa_key(), "key-1", alg="PS256")]
    assert validate(token, algorithms=("PS256",), keys=keys)["sub"] == "alice"
    refused(token, algorithms=("RS256",), keys=keys)


def test_hs256_signed_with_the_public_key_pem_when_hs256_is_not_allowed() -> None:
    token = hmac_token({"alg": "HS256", "kid": "key-1"}, claims(), public_pem())
    refused(token, algorithms=("RS256",))


def test_hs256_signed_with_the_public_key_pem_when_hs256_is_allowed() -> None:
    # Algorithm confusion: the verifier must use the client secret as HMAC key, never a JWK.
    token = hmac_token({"alg": "HS256", "kid": "key-1"}, claims(), public_pem())
    refused(token, algorithms=("RS256", "HS256"))
    refused(hmac_token({"alg": "HS256"}, claims(), public_pem()), algorithms=("RS256", "HS256"))


def test_hs256_signed_with_the_jwk_modulus_is_refused() -> None:
    jwk = public_jwk(rsa_key(), "key-1")
    token = hmac_token({"alg": "HS256", "kid": "key-1"}, claims(), jwk["n"].encode())
    refused(token, algorithms=("RS256", "HS256"))


def test_hs256_signed_with_the_client_secret_passes_when_allowed() -> None:
    token = sign(claims(), key=HMAC_SECRET.encode(), alg="HS256", kid=None)
    assert validate(token, algorithms=("RS256", "HS256"))["sub"] == "alice"
    refused(token, algorithms=("RS256",))
    refused(sign(claims(), key=b"another-secret-of-at-least-32-bytes!!", alg="HS256", kid=None),
            algorithms=("RS256", "HS256"))


# -- keys ----------------------------------------------------------------------------


def test_unknown_kid_is_refused() -> None:
    refused(sign(claims(), kid="key-unknown"))


def test_missing_kid_with_one_key_is_accepted() -> None:
    assert validate(sign(claims(), kid=None))["sub"] == "alice"


def test_missing_kid_with_two_keys_is_refused() -> None:
    keys = [public_jwk(rsa_key(), "key-1"), public_jwk(rsa_key("second"), "key-2")]
    refused(sign(claims(), kid=None), keys=keys)
    assert validate(sign(claims(), kid="key-1"), keys=keys)["sub"] == "alice"
    assert validate(sign(claims(), key=rsa_key("second"), kid="key-2"), keys=keys)["sub"] == "alice"


@pytest.mark.parametrize(
    "kid",
    [pytest.param(1, id="int"), pytest.param(["key-1"], id="list"), pytest.param({"k": 1}, id="object")],
)
def test_non_string_kid_is_refused(kid: Any) -> None:
    refused(sign(claims(), kid=kid))


def test_a_key_for_encryption_is_not_used_for_signatures() -> None:
    refused(sign(claims()), keys=[public_jwk(rsa_key(), "key-1", use="enc")])


def test_a_key_whose_alg_differs_is_not_used() -> None:
    refused(sign(claims()), keys=[public_jwk(rsa_key(), "key-1", alg="RS512")])
    refused(sign(claims()), keys=[public_jwk(rsa_key(), "key-1", alg="PS256")])


def test_a_key_without_use_and_alg_is_usable() -> None:
    jwk = public_jwk(rsa_key(), "key-1")
    del jwk["use"], jwk["alg"]
    assert validate(sign(claims()), keys=[jwk])["sub"] == "alice"


def test_an_ec_key_is_refused_for_rs256() -> None:
    keys = [ec_jwk(ec_key(), "key-1", alg=None)]
    keys[0].pop("alg")
    refused(sign(claims()), keys=keys)
    refused(sign(claims()), keys=[ec_jwk(ec_key(), "key-1")], algorithms=("RS256", "ES256"))


def test_es256_with_an_ec_key() -> None:
    token = sign(claims(), key=ec_key(), alg="ES256", kid="ec-1")
    keys = [public_jwk(rsa_key(), "key-1"), ec_jwk(ec_key(), "ec-1")]
    assert validate(token, algorithms=("RS256", "ES256"), keys=keys)["sub"] == "alice"
    refused(token, algorithms=("RS256",), keys=keys)
    # An RSA key under the EC key's kid is not used for ES256.
    refused(token, algorithms=("ES256",), keys=[public_jwk(rsa_key(), "ec-1", alg="ES256")])


def test_rsa_token_claiming_es256_is_refused() -> None:
    _, body, signature = sign(claims()).split(".")
    forged_head = forge({"alg": "ES256", "kid": "key-1"}, {}).split(".")[0]
    refused(f"{forged_head}.{body}.{signature}", algorithms=("RS256", "ES256"))


@pytest.mark.parametrize(
    "crit",
    [pytest.param(["exp"], id="exp"), pytest.param(["b64"], id="b64"), pytest.param([], id="empty-list")],
)
def test_crit_header_is_refused(crit: list[str]) -> None:
    refused(sign(claims(), crit=crit))


# -- at_hash -------------------------------------------------------------------------


def test_at_hash_correct() -> None:
    assert validate(sign(claims(at_hash=at_hash("at-123"))), access_token="at-123")["sub"] == "alice"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(at_hash("another-token"), id="other-token"),
        pytest.param(b64url(hashlib.sha256(b"at-123").digest()), id="full-hash"),
        pytest.param("", id="empty"),
        pytest.param(123, id="integer"),
    ],
)
def test_at_hash_incorrect(value: Any) -> None:
    refused(sign(claims(at_hash=value)), access_token="at-123")


def test_at_hash_uses_the_algorithm_hash() -> None:
    token_value = "at-512"
    expected = b64url(hashlib.sha512(token_value.encode()).digest()[:32])
    keys = [public_jwk(rsa_key(), "key-1", alg="RS512")]
    token = sign(claims(at_hash=expected), alg="RS512")
    assert validate(token, algorithms=("RS512",), keys=keys, access_token=token_value)["sub"] == "alice"
    refused(sign(claims(at_hash=at_hash(token_value)), alg="RS512"), algorithms=("RS512",), keys=keys,
            access_token=token_value)


# -- malformed tokens ----------------------------------------------------------------


def _payload_not_object() -> str:
    return sign([1, 2])  # type: ignore[arg-type]


def _payload_not_json() -> str:
    head, _, _ = sign({}).split(".")
    body = b64url(b"not json")
    signature = get_default_algorithms()["RS256"].sign(f"{head}.{body}".encode(), rsa_key())
    return f"{head}.{body}.{b64url(signature)}"


MALFORMED: list[Any] = [
    pytest.param(lambda: "", id="empty"),
    pytest.param(lambda: "a.b", id="two-segments"),
    pytest.param(lambda: "a.b.c", id="three-garbage-segments"),
    pytest.param(lambda: "garbage", id="garbage"),
    pytest.param(lambda: "....", id="dots"),
    pytest.param(lambda: "a.b.c.d.e", id="five-segments-jwe-shape"),
    pytest.param(lambda: "\u00e9\u00e9.\u00e9.\u00e9", id="non-ascii"),
    pytest.param(lambda: b64url(b"[1]") + ".e30.", id="header-not-object"),
    pytest.param(lambda: b64url(b"{not json") + ".e30.", id="header-not-json"),
    pytest.param(lambda: sign(claims()) + "x", id="signature-with-extra-char"),
    pytest.param(lambda: " " + sign(claims()), id="leading-space"),
    pytest.param(_payload_not_object, id="payload-not-object"),
    pytest.param(_payload_not_json, id="payload-not-json"),
]


@pytest.mark.parametrize("make", MALFORMED)
def test_malformed_tokens_are_refused(make: Callable[[], str]) -> None:
    refused(make())


# -- auth_time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth_time",
    [
        pytest.param("1700000000", id="string"),
        pytest.param(True, id="bool"),
        pytest.param([NOW], id="list"),
        pytest.param({"t": NOW}, id="object"),
        pytest.param(float("nan"), id="nan"),
    ],
)
def test_a_non_numeric_auth_time_is_refused(auth_time: Any) -> None:
    assert "auth_time" in refused(sign(claims(now=NOW, auth_time=auth_time)), now=NOW).detail


def test_a_json_null_auth_time_is_refused() -> None:
    payload = claims(now=NOW)
    payload["auth_time"] = None  # claims() would drop a None: set it afterwards, so the token holds null
    assert "auth_time" in refused(sign(payload), now=NOW).detail


@pytest.mark.parametrize("auth_time", [NOW - 60, NOW - 60.5, 0], ids=["int", "float", "zero"])
def test_a_numeric_auth_time_passes(auth_time: float) -> None:
    assert validate(sign(claims(now=NOW, auth_time=auth_time)), now=NOW)["auth_time"] == auth_time


# -- a refreshed ID token (Core 1.0 section 12.2) ---------------------------------------------

T0 = NOW - 3000  # the original sign-in
LATER = NOW  # the refresh
API = "https://api.example"


def original(**overrides: Any) -> str:
    """The session's ID token from the sign-in (it expired long ago: that does not matter)."""
    return sign(claims(now=T0, **{"auth_time": T0 - 5, "sid": "sid-1", **overrides}))


def fresh(**overrides: Any) -> str:
    """A refreshed ID token: same iss/sub/aud/auth_time, no nonce, issued now."""
    return sign(claims(now=LATER, **{"auth_time": T0 - 5, "sid": "sid-1", "nonce": None, **overrides}))


def validate_refreshed(token: str, previous: str, *, access_token: Optional[str] = None,
                       keys: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
    return validate_refreshed_id_token(
        token,
        previous,
        TokenRules(keys=KeySet(JWKSFetch(keys), ttl=3600), issuer=ISSUER, client_id=CLIENT_ID,
                   client_secret=HMAC_SECRET, algorithms=("RS256",), leeway=LEEWAY),
        now=LATER,
        access_token=access_token,
    )


def refused_refresh(token: str, previous: str, **kwargs: Any) -> AuthFailure:
    with pytest.raises(AuthFailure) as caught:
        validate_refreshed(token, previous, **kwargs)
    assert caught.value.code == "invalid_id_token", caught.value
    for secret in (token, previous):
        assert not secret or secret not in str(caught.value)  # the tokens themselves are never in the message
    return caught.value


def test_a_refreshed_id_token_passes_and_returns_its_claims() -> None:
    result = validate_refreshed(fresh(email="alice@example.com"), original())
    assert result["sub"] == "alice" and result["iat"] == LATER and result["email"] == "alice@example.com"


@pytest.mark.parametrize(
    ("new", "previous", "what"),
    [
        pytest.param({"auth_time": None}, {"auth_time": None}, "no auth_time in either", id="no-auth_time"),
        pytest.param({"auth_time": None}, {}, "auth_time only in the original", id="auth_time-dropped"),
        pytest.param({}, {"auth_time": None}, "auth_time only in the new one", id="auth_time-only-new"),
        pytest.param({"nonce": None}, {}, "no nonce in the new one", id="no-nonce"),
        pytest.param({"nonce": "nonce-1"}, {}, "the original nonce", id="same-nonce"),
        pytest.param({"nonce": "nonce-1"}, {"nonce": None}, "a nonce only in the new one", id="nonce-only-new"),
        pytest.param({"aud": [API, CLIENT_ID], "azp": CLIENT_ID}, {"aud": [CLIENT_ID, API], "azp": CLIENT_ID},
                     "the same audiences in another order", id="aud-list-same-set"),
        pytest.param({"aud": [CLIENT_ID]}, {}, "one audience, as a list and as a string", id="aud-list-of-one"),
        pytest.param({"azp": CLIENT_ID}, {"azp": CLIENT_ID}, "the same azp", id="same-azp"),
        pytest.param({"iat": T0, "exp": LATER + 300}, {}, "iat equal to the original's", id="same-iat"),
        pytest.param({}, {"iat": None}, "an original without iat", id="original-without-iat"),
        pytest.param({"sid": "sid-2"}, {}, "another provider session id", id="other-sid"),
        pytest.param({"acr": "urn:mfa"}, {}, "claims beyond section 12.2", id="new-acr"),
    ],
)
def test_valid_refreshed_id_tokens(new: dict[str, Any], previous: dict[str, Any], what: str) -> None:
    assert validate_refreshed(fresh(**new), original(**previous))["sub"] == "alice", what


@pytest.mark.parametrize(
    ("new", "previous", "reason"),
    [
        pytest.param({"sub": "bob"}, {}, "sub differs", id="other-sub"),
        pytest.param({"azp": CLIENT_ID}, {}, "azp differs", id="azp-appears"),
        pytest.param({}, {"azp": CLIENT_ID}, "azp differs", id="azp-disappears"),
        pytest.param({"aud": [CLIENT_ID, API], "azp": CLIENT_ID}, {"azp": CLIENT_ID}, "aud differs",
                     id="audience-added"),
        pytest.param({"azp": CLIENT_ID}, {"aud": [CLIENT_ID, API], "azp": CLIENT_ID}, "aud differs",
                     id="audience-removed"),
        pytest.param({"auth_time": T0 + 100}, {}, "auth_time is not the original", id="auth_time-changed"),
        pytest.param({"auth_time": LATER}, {}, "auth_time is not the original", id="auth_time-now"),
        pytest.param({"auth_time": "T0"}, {}, "auth_time is not a number", id="auth_time-string"),
        pytest.param({"nonce": "nonce-2"}, {}, "nonce differs", id="other-nonce"),
        pytest.param({"iat": T0 - 1, "exp": LATER + 300}, {}, "issued before", id="iat-before-the-original"),
        # the ordinary rules still hold
        pytest.param({"iss": "https://evil.example/"}, {"iss": "https://evil.example/"}, "Issuer",
                     id="both-from-another-issuer"),
        pytest.param({"aud": "someone-else"}, {"aud": "someone-else"}, "Audience", id="both-for-another-client"),
        pytest.param({"exp": LATER - 3600}, {}, "expired", id="expired"),
        pytest.param({"iat": LATER + LEEWAY + 60}, {}, "future", id="iat-in-the-future"),
        pytest.param({"sub": ""}, {"sub": ""}, "sub", id="empty-sub-in-both"),
    ],
)
def test_refreshed_id_token_rules(new: dict[str, Any], previous: dict[str, Any], reason: str) -> None:
    assert reason in refused_refresh(fresh(**new), original(**previous)).detail


def test_a_refreshed_id_token_signed_by_another_key_is_refused() -> None:
    token = sign(claims(now=LATER, auth_time=T0 - 5, nonce=None), key=rsa_key("attacker"))
    refused_refresh(token, original())


def test_the_original_is_not_checked_again_but_must_be_readable() -> None:
    # Its signature is not verified again (it came from our own storage, verified at sign-in)...
    by_another_key = sign(claims(now=T0, auth_time=T0 - 5), key=rsa_key("attacker"))
    assert validate_refreshed(fresh(), by_another_key)["sub"] == "alice"
    # ...but an unreadable one cannot be compared with.
    for unreadable in ("", "not-a-jwt", "a.b.c"):
        assert "unreadable" in refused_refresh(fresh(), unreadable).detail


def test_a_refreshed_id_token_at_hash_is_checked_against_the_new_access_token() -> None:
    token = fresh(at_hash=at_hash("at-new"))
    assert validate_refreshed(token, original(), access_token="at-new")["sub"] == "alice"
    assert "at_hash" in refused_refresh(token, original(), access_token="at-old").detail
    # An at_hash of the previous access token in the new ID token is refused as well.
    assert "at_hash" in refused_refresh(fresh(at_hash=at_hash("at-old")), original(), access_token="at-new").detail


def test_a_refreshed_id_token_never_expects_the_original_nonce() -> None:
    """The nonce belongs to the sign-in; a refreshed ID token without one is fine (section 12.2)."""
    assert "nonce" not in validate_refreshed(fresh(nonce=None), original(nonce="nonce-1"))


# -- non-ASCII values in the compared claims (issue 13 item 12) ------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("nonce-\u00e9", id="latin-1"),
        pytest.param("\u2603", id="snowman"),
        pytest.param("nonce-1\u0301", id="combining-accent-after-the-nonce"),
        pytest.param("\ud800", id="lone-surrogate"),
    ],
)
def test_a_non_ascii_nonce_is_refused_not_a_type_error(value: str) -> None:
    """``hmac.compare_digest`` raises TypeError for non-ASCII ``str``: the comparison must be of bytes."""
    assert "nonce" in refused(sign(claims(nonce=value))).detail


def test_a_non_ascii_expected_nonce_is_compared_safely() -> None:
    assert validate(sign(claims(nonce="n\u00e9")), nonce="n\u00e9")["sub"] == "alice"
    assert "nonce" in refused(sign(claims(nonce="n\u00e8")), nonce="n\u00e9").detail


@pytest.mark.parametrize("value", ["\u00e9" * 22, at_hash("at-123")[:-1] + "\u00e9", "\ud800"],
                         ids=["latin-1", "last-char", "lone-surrogate"])
def test_a_non_ascii_at_hash_is_refused_not_a_type_error(value: str) -> None:
    assert "at_hash" in refused(sign(claims(at_hash=value)), access_token="at-123").detail


# -- token types: an ID token is no other kind of JWT (issue 13 item 16) -------------------------------


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "application/jwt", "Application/JWT"])
def test_accepted_id_token_typ_headers(typ: Optional[str]) -> None:
    """RFC 7519 section 5.1: ``JWT`` (media types compare case-insensitively, ``application/`` optional)."""
    assert validate(sign(claims(), typ=typ))["sub"] == "alice"


@pytest.mark.parametrize(
    "typ",
    ["logout+jwt", "application/logout+jwt", "LOGOUT+JWT", "at+jwt", "application/at+jwt", "secevent+jwt",
     "token-introspection+jwt", "dpop+jwt", "JOSE", "JWS", "", 1, ["JWT"]],
)
def test_an_explicitly_typed_other_jwt_is_refused_as_an_id_token(typ: Any) -> None:
    """RFC 8725 section 3.11: an explicit ``typ`` naming another kind of JWT is never an ID token."""
    assert "typ" in refused(sign(claims(), typ=typ)).detail


def test_a_token_with_logout_events_is_no_id_token_even_untyped() -> None:
    """A logout token without ``typ`` (which Back-Channel Logout allows) is told apart by its ``events``."""
    from sso_middleware._oidc.id_token import LOGOUT_EVENT

    assert "events" in refused(sign(claims(events={LOGOUT_EVENT: {}}), typ=None)).detail
    assert "events" in refused(sign(claims(events={}), typ=None)).detail


def _logout_token_about_alice(typ: Optional[str]) -> str:
    from sso_middleware._oidc.id_token import LOGOUT_EVENT

    payload = claims(now=LATER, nonce=None, jti="jti-1", events={LOGOUT_EVENT: {}}, sid="sid-1")
    return sign(payload, typ=typ)


@pytest.mark.parametrize("typ", ["logout+jwt", None, "JWT"])
def test_a_logout_token_never_passes_as_a_refreshed_id_token(typ: Optional[str]) -> None:
    """A refreshed ID token carries no nonce, so nonce cannot tell it from a logout token: typ and events do."""
    refused_refresh(_logout_token_about_alice(typ), original())


# -- unsigned ID tokens from the token endpoint (issue 13 item 18, rp-id_token-sig-none) ----------------


def unsigned(payload: dict[str, Any], signature: bytes = b"", **header: Any) -> str:
    return forge({"alg": "none", **header}, payload, signature)


def test_an_unsigned_id_token_passes_only_when_none_is_allowed_and_the_caller_vouches_for_tls() -> None:
    token = unsigned(claims())
    assert validate(token, algorithms=("RS256", "none"), allow_unsigned=True)["sub"] == "alice"
    assert validate(token, algorithms=("none",), allow_unsigned=True)["sub"] == "alice"
    assert "none" in refused(token, algorithms=("RS256", "none")).detail  # not from the token endpoint
    assert "none" in refused(token, algorithms=("RS256",), allow_unsigned=True).detail  # not allowed


@pytest.mark.parametrize("alg", ["None", "NONE", "nOnE"])
def test_only_the_exact_name_none_means_unsigned(alg: str) -> None:
    refused(forge({"alg": alg}, claims()), algorithms=("RS256", "none"), allow_unsigned=True)


def test_an_unsigned_id_token_must_have_an_empty_signature() -> None:
    token = unsigned(claims(), signature=b"anything")
    assert "signature" in refused(token, algorithms=("none",), allow_unsigned=True).detail


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"iss": "https://evil.example/"}, id="iss"),
        pytest.param({"aud": "someone-else"}, id="aud"),
        pytest.param({"aud": [CLIENT_ID, "api"]}, id="aud-without-azp"),
        pytest.param({"exp": NOW - 3600}, id="expired"),
        pytest.param({"iat": None}, id="no-iat"),
        pytest.param({"sub": None}, id="no-sub"),
        pytest.param({"nonce": "nonce-2"}, id="nonce"),
        pytest.param({"nonce": "nonce-\u00e9"}, id="non-ascii-nonce"),
    ],
)
def test_an_unsigned_id_token_gets_every_other_check(overrides: dict[str, Any]) -> None:
    refused(unsigned(claims(now=NOW, **overrides)), algorithms=("none",), allow_unsigned=True, now=NOW,
            access_token="at-123")


def test_an_unsigned_id_token_at_hash_is_not_checked() -> None:
    """No JOSE hash to use (Core 3.1.3.8 hashes with the alg's), and nothing signed binds it: MAY, skipped."""
    for value in (at_hash("at-123"), "AAAAAAAAAAAAAAAAAAAAAA", "\u00e9"):
        token = unsigned(claims(at_hash=value))
        assert validate(token, algorithms=("none",), allow_unsigned=True, access_token="at-123")["sub"] == "alice"


def test_an_unsigned_id_token_is_still_typed() -> None:
    refused(unsigned(claims(), typ="logout+jwt"), algorithms=("none",), allow_unsigned=True)


def test_an_unsigned_refreshed_id_token_is_refused_even_with_none_allowed() -> None:
    token = unsigned(claims(now=LATER, auth_time=T0 - 5, sid="sid-1", nonce=None))
    with pytest.raises(AuthFailure) as caught:
        validate_refreshed_id_token(
            token, original(), TokenRules(keys=KeySet(JWKSFetch(), ttl=3600), issuer=ISSUER, client_id=CLIENT_ID,
                                          client_secret=HMAC_SECRET, algorithms=("RS256", "none"), leeway=LEEWAY),
            now=LATER,
        )
    assert caught.value.code == "invalid_id_token" and "none" in caught.value.detail


def test_none_is_accepted_only_when_the_provider_advertises_it() -> None:
    """Issue 13 item 18 (SECURITY.md: "unless id_token_algorithms names none *and* the provider advertises
    it"): a discovery document that is silent about its algorithms leaves the signed ones of the allow-list,
    never ``none`` -- an unsigned ID token is acceptable only for a client the provider says it issues them to."""
    assert accepted_algorithms(("RS256", "none"), None) == ("RS256",)
    assert accepted_algorithms(("none",), None) == ()
    assert accepted_algorithms(("RS256", "none"), ("RS256", "none")) == ("RS256", "none")
    assert accepted_algorithms(("RS256", "none"), ("RS256",)) == ("RS256",)
    assert accepted_algorithms(("RS256", "ES256"), None) == ("RS256", "ES256")


def test_token_rules_are_frozen_and_keep_the_client_secret_out_of_repr() -> None:
    rules = TokenRules(keys=KeySet(JWKSFetch(), ttl=3600), issuer=ISSUER, client_id=CLIENT_ID,
                       client_secret=HMAC_SECRET, algorithms=("RS256",), leeway=LEEWAY)
    assert HMAC_SECRET not in repr(rules) and CLIENT_ID in repr(rules)
    with pytest.raises(AttributeError):
        rules.issuer = "https://evil.example/"  # type: ignore[misc]
