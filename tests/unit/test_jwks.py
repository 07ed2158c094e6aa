"""KeySet: lazy cached fetching, refetch on rotation, rate limiting, outage grace."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import OKPAlgorithm

from sso_middleware._oidc.jwks import KeySet, key_fits, key_type_for
from sso_middleware.errors import AuthFailure, ProviderError, ProviderTimeout, ProviderUnreachable

from ..tokens import JWKSFetch, ec_jwk, ec_key, public_jwk, rsa_key

TTL = 3600.0
GRACE = 600.0


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fetch() -> JWKSFetch:
    return JWKSFetch()


def key_set(fetch: JWKSFetch, clock: FakeClock, **options: Any) -> KeySet:
    return KeySet(fetch, ttl=options.pop("ttl", TTL), grace=options.pop("grace", GRACE), clock=clock, **options)


def same_key(found: Any, private: Any) -> bool:
    return bool(found.public_numbers() == private.public_key().public_numbers())


def test_fetched_lazily_and_once_within_ttl(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock)
    assert fetch.calls == 0
    for _ in range(50):
        found = keys.key_for("key-1", "RS256")
        clock.advance(10)
    assert fetch.calls == 1
    assert isinstance(found, rsa.RSAPublicKey)
    assert same_key(found, rsa_key())


def test_refetched_after_ttl(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock)
    keys.key_for("key-1", "RS256")
    clock.advance(TTL - 1)
    keys.key_for("key-1", "RS256")
    assert fetch.calls == 1
    clock.advance(1)
    keys.key_for("key-1", "RS256")
    assert fetch.calls == 2


def test_unknown_kid_refetches_once_and_finds_a_rotated_key(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock)
    keys.key_for("key-1", "RS256")
    fetch.keys = [public_jwk(rsa_key(), "key-1"), public_jwk(rsa_key("rotated"), "key-2")]
    clock.advance(1)  # a rotation right after a scheduled fetch is still picked up
    assert same_key(keys.key_for("key-2", "RS256"), rsa_key("rotated"))
    assert fetch.calls == 2
    keys.key_for("key-2", "RS256")
    keys.key_for("key-1", "RS256")
    assert fetch.calls == 2


def test_unknown_kid_still_unknown_after_one_refetch(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock)
    with pytest.raises(AuthFailure) as caught:
        keys.key_for("nope", "RS256")
    assert caught.value.code == "invalid_id_token"
    assert fetch.calls == 2  # the lazy fetch, then exactly one refetch


def test_a_flood_of_unknown_kids_is_rate_limited(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock, burst=3, refill_seconds=60)
    keys.key_for("key-1", "RS256")
    for number in range(100):
        with pytest.raises(AuthFailure):
            keys.key_for(f"forged-{number}", "RS256")
    assert fetch.calls == 1 + 3
    # A known kid keeps working without fetching.
    keys.key_for("key-1", "RS256")
    assert fetch.calls == 4


def test_rate_limit_refills_over_time(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock, burst=3, refill_seconds=60, ttl=10**9)
    keys.key_for("key-1", "RS256")

    def flood() -> None:
        for number in range(20):
            with pytest.raises(AuthFailure):
                keys.key_for(f"forged-{number}", "RS256")

    flood()
    assert fetch.calls == 4
    clock.advance(30)  # half a token
    flood()
    assert fetch.calls == 4
    clock.advance(30)  # one token
    flood()
    assert fetch.calls == 5
    clock.advance(60 * 100)  # the bucket never holds more than `burst`
    flood()
    assert fetch.calls == 8


def test_rotation_after_a_flood_is_found_once_the_bucket_refills(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock, burst=2, refill_seconds=60)
    keys.key_for("key-1", "RS256")
    for number in range(10):
        with pytest.raises(AuthFailure):
            keys.key_for(f"forged-{number}", "RS256")
    fetch.keys = [public_jwk(rsa_key("rotated"), "key-2")]
    with pytest.raises(AuthFailure):
        keys.key_for("key-2", "RS256")  # bucket empty: not fetched
    clock.advance(60)
    assert same_key(keys.key_for("key-2", "RS256"), rsa_key("rotated"))


def test_refresh_failure_keeps_old_keys_within_grace(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock, retry_seconds=5)
    keys.key_for("key-1", "RS256")
    fetch.error = ProviderUnreachable("down")
    clock.advance(TTL + 1)
    assert same_key(keys.key_for("key-1", "RS256"), rsa_key())
    assert fetch.calls == 2
    clock.advance(GRACE - 10)
    assert same_key(keys.key_for("key-1", "RS256"), rsa_key())
    assert fetch.calls == 3


def test_refresh_failure_raises_after_grace(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock)
    keys.key_for("key-1", "RS256")
    fetch.error = ProviderUnreachable("down")
    clock.advance(TTL + GRACE)
    with pytest.raises(ProviderError) as caught:
        keys.key_for("key-1", "RS256")
    assert caught.value.code == "provider_unreachable"


def test_recovery_after_an_outage(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock, retry_seconds=5)
    keys.key_for("key-1", "RS256")
    fetch.error = ProviderUnreachable("down")
    clock.advance(TTL + GRACE)
    with pytest.raises(ProviderError):
        keys.key_for("key-1", "RS256")
    fetch.error = None
    fetch.keys = [public_jwk(rsa_key("rotated"), "key-2")]
    clock.advance(5)
    assert same_key(keys.key_for("key-2", "RS256"), rsa_key("rotated"))


def test_a_failing_provider_is_not_asked_on_every_request(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock, retry_seconds=5)
    keys.key_for("key-1", "RS256")
    fetch.error = ProviderTimeout("slow")
    clock.advance(TTL + 1)
    for _ in range(50):
        keys.key_for("key-1", "RS256")
    assert fetch.calls == 2
    clock.advance(5)
    keys.key_for("key-1", "RS256")
    assert fetch.calls == 3


def test_first_fetch_failure_raises_and_is_remembered_briefly(fetch: JWKSFetch, clock: FakeClock) -> None:
    keys = key_set(fetch, clock, retry_seconds=5)
    fetch.error = ProviderUnreachable("down")
    for _ in range(10):
        with pytest.raises(ProviderError):
            keys.key_for("key-1", "RS256")
    assert fetch.calls == 1
    fetch.error = None
    clock.advance(5)
    assert same_key(keys.key_for("key-1", "RS256"), rsa_key())


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({}, id="no-keys"),
        pytest.param({"keys": {}}, id="keys-object"),
        pytest.param([], id="list"),
        pytest.param("keys", id="string"),
    ],
)
def test_a_jwks_without_a_keys_list_is_a_bad_response(document: Any, clock: FakeClock) -> None:
    keys = KeySet(lambda: document, ttl=TTL, clock=clock)
    with pytest.raises(ProviderError) as caught:
        keys.key_for("key-1", "RS256")
    assert caught.value.code == "provider_bad_response"


def test_a_bad_jwks_refresh_keeps_the_old_keys_within_grace(clock: FakeClock) -> None:
    documents: list[Any] = [{"keys": [public_jwk(rsa_key(), "key-1")]}, {"error": "oops"}]
    keys = KeySet(lambda: documents[0] if len(documents) == 2 else documents[-1], ttl=TTL, clock=clock)
    keys.key_for("key-1", "RS256")
    documents.pop(0)
    clock.advance(TTL + 1)
    assert same_key(keys.key_for("key-1", "RS256"), rsa_key())


def test_junk_entries_in_the_jwks_are_ignored(fetch: JWKSFetch, clock: FakeClock) -> None:
    fetch.keys = ["junk", 1, None, {"kty": "oct", "k": "c2VjcmV0", "kid": "key-1"},  # type: ignore[list-item]
                  public_jwk(rsa_key(), "key-1")]
    assert same_key(key_set(fetch, clock).key_for("key-1", "RS256"), rsa_key())


@pytest.mark.parametrize(
    ("jwk", "alg"),
    [
        pytest.param({"kty": "RSA", "kid": "key-1", "n": "!!", "e": "AQAB"}, "RS256", id="rsa-bad-modulus"),
        pytest.param({"kty": "RSA", "kid": "key-1", "e": "AQAB"}, "RS256", id="rsa-no-modulus"),
        pytest.param({"kty": "RSA", "kid": "key-1", "n": 5, "e": "AQAB"}, "RS256", id="rsa-number-modulus"),
        pytest.param({"kty": "EC", "kid": "key-1", "crv": "P-999", "x": "AA", "y": "AA"}, "ES256", id="ec-bad-curve"),
        pytest.param({"kty": "EC", "kid": "key-1", "crv": "P-256", "x": "AA", "y": "AA"}, "ES256",
                     id="ec-point-not-on-curve"),
        pytest.param({"kty": "EC", "kid": "key-1", "crv": "P-384", **{k: v for k, v in ec_jwk(ec_key(), "x").items()
                                                                       if k in ("x", "y")}}, "ES256",
                     id="ec-curve-mismatch"),
    ],
)
def test_a_broken_jwk_is_an_invalid_token_not_a_crash(jwk: dict[str, Any], alg: str, clock: FakeClock) -> None:
    with pytest.raises(AuthFailure) as caught:
        key_set(JWKSFetch([jwk]), clock).key_for("key-1", alg)
    assert caught.value.code == "invalid_id_token"


@pytest.mark.parametrize(
    ("jwks", "kid", "alg", "usable"),
    [
        pytest.param([public_jwk(rsa_key(), "a")], "a", "RS256", True, id="rsa-rs256"),
        pytest.param([public_jwk(rsa_key(), "a", alg="PS256")], "a", "PS256", True, id="rsa-ps256"),
        pytest.param([public_jwk(rsa_key(), "a")], "a", "PS256", False, id="jwk-alg-differs"),
        pytest.param([public_jwk(rsa_key(), "a", use="enc")], "a", "RS256", False, id="use-enc"),
        pytest.param([public_jwk(rsa_key(), "a")], "a", "ES256", False, id="rsa-for-es256"),
        pytest.param([public_jwk(rsa_key(), "a")], "a", "HS256", False, id="rsa-for-hs256"),
        pytest.param([ec_jwk(ec_key(), "a")], "a", "ES256", True, id="ec-es256"),
        pytest.param([{**ec_jwk(ec_key(), "a"), "alg": "RS256"}], "a", "RS256", False, id="ec-claiming-rs256"),
        pytest.param([public_jwk(rsa_key(), "a")], None, "RS256", True, id="no-kid-one-key"),
        pytest.param([public_jwk(rsa_key(), "a"), public_jwk(rsa_key("b"), "b")], None, "RS256", False,
                     id="no-kid-two-keys"),
        pytest.param([public_jwk(rsa_key(), "a"), ec_jwk(ec_key(), "b")], None, "RS256", True,
                     id="no-kid-one-key-of-the-family"),
        pytest.param([public_jwk(rsa_key(), "a")], "A", "RS256", False, id="kid-case-matters"),
    ],
)
def test_key_selection(jwks: list[dict[str, Any]], kid: Any, alg: str, usable: bool, clock: FakeClock) -> None:
    keys = key_set(JWKSFetch(jwks), clock)
    if usable:
        assert keys.key_for(kid, alg) is not None
    else:
        with pytest.raises(AuthFailure):
            keys.key_for(kid, alg)


def test_ec_key_is_returned_as_an_ec_key(clock: FakeClock) -> None:
    found = key_set(JWKSFetch([ec_jwk(ec_key(), "e")]), clock).key_for("e", "ES256")
    assert isinstance(found, ec.EllipticCurvePublicKey)


@pytest.mark.parametrize(
    ("alg", "kty"),
    [("RS256", "RSA"), ("PS512", "RSA"), ("ES384", "EC"), ("EdDSA", "OKP"), ("HS256", None), ("none", None)],
)
def test_key_type_for(alg: str, kty: Any) -> None:
    assert key_type_for(alg) == kty


def test_concurrent_first_use_fetches_once(clock: FakeClock) -> None:
    fetch = JWKSFetch()
    started = threading.Event()

    def slow_fetch() -> Any:
        started.set()
        time.sleep(0.05)
        return fetch()

    keys = KeySet(slow_fetch, ttl=TTL, clock=clock)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            keys.key_for("key-1", "RS256")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert fetch.calls == 1



def ed25519_jwk(kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key()))
    return {**jwk, "kid": kid}


def without(jwk: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: value for name, value in jwk.items() if name not in names}


@pytest.mark.parametrize(
    ("jwk", "alg", "fits"),
    [
        pytest.param(public_jwk(rsa_key(), "a"), "RS256", True, id="rsa-rs256"),
        pytest.param(without(public_jwk(rsa_key(), "a"), "alg"), "PS384", True, id="no-alg-member-any-rsa-alg"),
        pytest.param(without(public_jwk(rsa_key(), "a"), "use"), "RS256", True, id="no-use-member"),
        pytest.param(public_jwk(rsa_key(), "a"), "PS256", False, id="alg-member-differs"),
        pytest.param(public_jwk(rsa_key(), "a", use="enc"), "RS256", False, id="use-enc"),
        pytest.param(public_jwk(rsa_key(), "a"), "ES256", False, id="rsa-for-es256"),
        pytest.param(without(public_jwk(rsa_key(), "a"), "alg"), "HS256", False, id="rsa-as-hmac-secret"),
        pytest.param({"kty": "oct", "kid": "a", "k": "c2VjcmV0LXNlY3JldA"}, "HS256", False, id="oct-for-hmac"),
        pytest.param({"kid": "a", "k": "c2VjcmV0LXNlY3JldA"}, "HS256", False, id="no-kty-for-hmac"),
        pytest.param(without(public_jwk(rsa_key(), "a"), "alg"), "none", False, id="none"),
        pytest.param(ec_jwk(ec_key(), "a"), "ES256", True, id="ec-es256"),
        pytest.param({**ec_jwk(ec_key(), "a"), "alg": "RS256"}, "RS256", False, id="ec-claiming-rs256"),
        pytest.param(ed25519_jwk("a"), "EdDSA", True, id="okp-eddsa"),
        pytest.param(ed25519_jwk("a"), "ES256", False, id="okp-for-es256"),
    ],
)
def test_key_fits_is_the_rule_the_lookup_applies(jwk: dict[str, Any], alg: str, fits: bool,
                                                 clock: FakeClock) -> None:
    assert key_fits(jwk, alg) is fits
    keys = key_set(JWKSFetch([jwk]), clock)
    if fits:
        assert keys.key_for("a", alg) is not None
    else:
        with pytest.raises(AuthFailure, match="no usable"):
            keys.key_for("a", alg)


def test_key_fits_judges_the_members_not_the_numbers(clock: FakeClock) -> None:
    broken = {"kty": "RSA", "kid": "a", "n": "!!", "e": "AQAB"}
    assert key_fits(broken, "RS256")  # selected, so a sign-in with it fails as a broken key
    with pytest.raises(AuthFailure, match="unusable JWK"):
        key_set(JWKSFetch([broken]), clock).key_for("a", "RS256")
    assert not key_fits(["kty", "RSA"], "RS256")
    assert not key_fits(None, "RS256")
