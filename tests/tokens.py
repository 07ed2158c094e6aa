"""Helpers for ID-token and JWKS tests: real keys, real signatures, and hand-made forgeries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Optional

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm, get_default_algorithms

from .fakes import CLIENT_ID, ISSUER, public_jwk, rsa_key

__all__ = [
    "API",
    "CLIENT_ID",
    "ISSUER",
    "JWKSFetch",
    "access_claims",
    "access_token",
    "b64url",
    "claims",
    "ec_jwk",
    "ec_key",
    "forge",
    "hmac_token",
    "public_jwk",
    "rsa_key",
    "sign",
]

def get_algorithm_by_name(name: str) -> Any:
    return get_default_algorithms()[name]


_EC_KEYS: dict[str, ec.EllipticCurvePrivateKey] = {}


def ec_key(name: str = "ec") -> ec.EllipticCurvePrivateKey:
    """A real P-256 key, generated once per test session per name."""
    if name not in _EC_KEYS:
        _EC_KEYS[name] = ec.generate_private_key(ec.SECP256R1())
    return _EC_KEYS[name]


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "ES256"})
    jwk.update(extra)
    return jwk


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(now: Optional[float] = None, **overrides: Any) -> dict[str, Any]:
    """Valid ID-token claims for CLIENT_ID at ISSUER; overrides replace (None removes) claims."""
    moment = int(time.time() if now is None else now)
    values: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": CLIENT_ID,
        "exp": moment + 300,
        "iat": moment,
        "nonce": "nonce-1",
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


#: The API identifier (``bearer_audience``) of the suite's access tokens.
API = "https://api.app2.example/"


def access_claims(now: Optional[float] = None, **overrides: Any) -> dict[str, Any]:
    """Valid RFC 9068 access-token claims for API at ISSUER; overrides replace (None removes) claims."""
    moment = int(time.time() if now is None else now)
    values: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": API,
        "client_id": "spa-client",
        "scope": "read:messages read:admin",
        "exp": moment + 300,
        "iat": moment,
        "jti": "at-1",
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def access_token(now: Optional[float] = None, *, key: Any = None, alg: str = "RS256", typ: Optional[str] = "at+jwt",
                 kid: Optional[str] = "key-1", **overrides: Any) -> str:
    """A really signed JWT access token (``typ`` at+jwt, the fake provider's key) with ``access_claims``."""
    return sign(access_claims(now, **overrides), key, alg, typ=typ, kid=kid)


def sign(payload: dict[str, Any], key: Any = None, alg: str = "RS256", **headers: Any) -> str:
    """A really signed token (default: the fake provider's RSA key, kid ``key-1``).

    Signed by hand with PyJWT's algorithm objects, so headers and claims may have
    shapes ``jwt.encode`` refuses to produce (a non-string ``kid`` or ``iss``).
    """
    header = {"alg": alg, "typ": "JWT", "kid": "key-1", **headers}
    header = {name: value for name, value in header.items() if value is not None}
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    algorithm = get_algorithm_by_name(alg)
    signature = algorithm.sign(f"{head}.{body}".encode(), algorithm.prepare_key(rsa_key() if key is None else key))
    return f"{head}.{body}.{b64url(signature)}"


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token assembled by hand (for shapes PyJWT refuses to produce)."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{head}.{body}.{b64url(signature)}"


def hmac_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token signed with an arbitrary byte string (e.g. a public key's PEM)."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


class JWKSFetch:
    """A JWKS fetch function for ``KeySet`` that serves ``keys`` and counts its calls."""

    def __init__(self, keys: Optional[list[dict[str, Any]]] = None) -> None:
        self.keys = [public_jwk(rsa_key(), "key-1")] if keys is None else keys
        self.calls = 0
        self.error: Optional[Exception] = None

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return {"keys": list(self.keys)}
