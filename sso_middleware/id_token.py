"""ID-token validation, per OpenID Connect Core 1.0 section 3.1.3.7.

:func:`validate_id_token` accepts a token only if all of these hold:
its algorithm is in the configured allow-list (``none`` never is); its
signature verifies with a key from the issuer's JWKS (or, for ``HS256`` when
explicitly allowed, the client secret); ``iss`` equals the issuer exactly;
``aud`` contains the client id, and ``azp`` is the client id when present and
present when there are several audiences; ``exp`` is in the future and
``iat`` (and ``nbf``, when present) not in the future, all numbers compared
with the caller's ``now`` within ``leeway`` seconds; ``sub`` is a
non-empty string; ``nonce`` equals the one stored for this sign-in; and
``at_hash``, when present, matches the access token.  The JOSE work is
PyJWT's; the rest is here so each rule is visible and tested.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Optional

import jwt

from .errors import AuthFailure
from .jwks import KeySet

_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
_REQUIRED = ["iss", "sub", "aud", "exp", "iat"]


def validate_id_token(
    token: str,
    *,
    keys: KeySet,
    issuer: str,
    client_id: str,
    client_secret: str,
    algorithms: tuple[str, ...],
    nonce: Optional[str],
    leeway: float,
    now: float,
    access_token: Optional[str] = None,
) -> dict[str, Any]:
    """The token's claims, or :class:`AuthFailure` ``invalid_id_token`` with the reason."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthFailure("invalid_id_token", f"malformed token: {exc}") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise AuthFailure("invalid_id_token", f"algorithm {alg!r} is not accepted")
    if "crit" in header:
        raise AuthFailure("invalid_id_token", "token has critical header parameters we do not understand")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise AuthFailure("invalid_id_token", "kid is not a string")

    key: Any = client_secret.encode() if alg.startswith("HS") else keys.key_for(kid, alg)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=client_id,
            issuer=issuer,
            # The time checks are ours, below: PyJWT's would use the wall clock, not ``now``.
            options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError as exc:
        raise AuthFailure("invalid_id_token", f"{type(exc).__name__}: {exc}") from None

    if claims.get("iss") != issuer:  # exact match, whatever the PyJWT version does
        raise AuthFailure("invalid_id_token", "iss is not the issuer")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthFailure("invalid_id_token", "sub is missing or empty")
    exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", 0)
    if not all(_is_number(value) for value in (exp, iat, nbf)):
        raise AuthFailure("invalid_id_token", "exp, iat and nbf must be numbers")
    if exp <= now - leeway:
        raise AuthFailure("invalid_id_token", "token has expired")
    if iat > now + leeway:
        raise AuthFailure("invalid_id_token", "iat is in the future")
    if nbf > now + leeway:
        raise AuthFailure("invalid_id_token", "token is not valid yet (nbf)")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise AuthFailure("invalid_id_token", "azp is not this client")
    if len(audiences) > 1 and azp is None:
        raise AuthFailure("invalid_id_token", "several audiences and no azp")
    if nonce is not None:
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce, nonce):
            raise AuthFailure("invalid_id_token", "nonce does not match this sign-in")
    if "at_hash" in claims and access_token is not None and not _hash_matches(claims["at_hash"], access_token, alg):
        raise AuthFailure("invalid_id_token", "at_hash does not match the access token")
    return claims


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def _hash_matches(expected: Any, value: str, alg: str) -> bool:
    hash_function = hashlib.sha512 if alg == "EdDSA" else _HASHES.get(alg[-3:])
    if hash_function is None or not isinstance(expected, str):
        return False
    digest = hash_function(value.encode("ascii", "replace")).digest()
    half = base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
    return hmac.compare_digest(half, expected)
