"""Real keys for fake providers: RSA keys made once per process, their JWKs, PKCE and ``at_hash``.

A fake provider signs with real keys so that the middleware's real signature checks run;
generating a 2048-bit RSA key takes tens of milliseconds, so :func:`rsa_key` makes each
named key once per process and hands the same one out afterwards.

Security caveat: these keys live in memory, are shared by every caller in the process
and are never rotated; they are for tests only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["at_hash", "public_jwk", "rsa_key", "s256"]

_KEYS: dict[str, rsa.RSAPrivateKey] = {}
_KEYS_LOCK = threading.Lock()


def rsa_key(name: str = "default") -> rsa.RSAPrivateKey:
    """A real 2048-bit RSA key, generated once per process per ``name``."""
    with _KEYS_LOCK:
        if name not in _KEYS:
            _KEYS[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _KEYS[name]


def public_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK of ``key`` for RS256 signatures (``use: sig``), with ``extra`` members."""
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    jwk.update(extra)
    return jwk


def s256(verifier: str) -> str:
    """The PKCE ``S256`` code challenge of ``verifier`` (RFC 7636 section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def at_hash(access_token: str) -> str:
    """The ``at_hash`` of an access token for an RS256 ID token (OpenID Connect Core 3.1.3.6)."""
    digest = hashlib.sha256(access_token.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
