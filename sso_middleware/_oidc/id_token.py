"""ID-token validation (OpenID Connect Core 1.0 section 3.1.3.7) and logout-token validation.

:func:`validate_id_token` accepts a token only if all of these hold:
its algorithm is among the accepted ones (the configured allow-list, narrowed
by :func:`accepted_algorithms` to what the provider advertises); its
signature verifies with a key from the issuer's JWKS (or, for ``HS256`` when
explicitly allowed, the client secret); an explicit ``typ`` says ``JWT`` and no
logout ``events`` claim is present (it is no other kind of JWT: RFC 8725
section 3.11); ``iss`` equals the issuer exactly;
``aud`` contains the client id, and ``azp`` is the client id when present and
present when there are several audiences; ``exp`` is in the future and
``iat`` (and ``nbf``, when present) not in the future, all numbers compared
with the caller's ``now`` within ``leeway`` seconds; ``sub`` is a
non-empty string; ``nonce`` equals the one stored for this sign-in; and
``at_hash``, when present, matches the access token.  Values are compared
as bytes, so non-ASCII claims are refused, never a ``TypeError``.  The JOSE
work is PyJWT's; the rest is here so each rule is visible and tested.

Unsigned tokens (``alg: none``) are refused unless the caller passes
``allow_unsigned`` *and* ``none`` is among the accepted algorithms: only
:meth:`.OIDCClient.sign_in` does, for the ID token it received itself from the
token endpoint over TLS (Core 1.0 section 3.1.3.7 item 6, the RP
certification's ``rp-id_token-sig-none``).  Refreshed ID tokens and logout
tokens are never accepted unsigned.

:func:`validate_logout_token` applies the same signature, issuer, audience and
time rules to Back-Channel Logout 1.0 logout tokens, plus that spec's own.

What a token is checked against (keys, issuer, client, algorithms, leeway) is one
:class:`TokenRules` value, built by the client; the moment (``now``) is each
call's own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import jwt

from .._config.validation import UNSIGNED
from .._sealing import same_text
from ..errors import AuthFailure, InvalidIdToken, InvalidLogoutToken, ProviderError, SSOFailure
from .jwks import KeySet


class IdentityMismatch(InvalidIdToken):
    """A refreshed ID token that is valid but not about the session's user (Core 1.0 section 12.2)."""


_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
_REQUIRED = ["iss", "sub", "aud", "exp", "iat"]
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: ``typ`` values, as :func:`_media_type` normalises them: an ID token is a plain JWT (RFC 7519 section
#: 5.1), a logout token a ``logout+jwt`` (Back-Channel Logout 1.0 section 2.4, a SHOULD).  Absent is accepted
#: for both, and so is the generic ``JWT`` on logout tokens, read as untyped: Keycloak sends it (its issue
#: #28939; Connect2id's validator made the same choice).  What keeps an ID token out is not its type but
#: the logout token's own rules: the back-channel ``events`` member and a ``jti`` required, ``nonce``
#: forbidden -- and an ID token carrying ``events`` is refused in turn.
_ID_TOKEN_TYPES = frozenset({"jwt"})
_LOGOUT_TOKEN_TYPES = frozenset({"logout+jwt", "jwt"})


def accepted_algorithms(configured: tuple[str, ...], advertised: Optional[tuple[str, ...]]) -> tuple[str, ...]:
    """The algorithms a token may be signed with: ``id_token_algorithms`` the provider also advertises.

    Core 1.0 section 3.1.3.7 ties the algorithm to the client's registration (the
    provider's ``id_token_signing_alg_values_supported``), so an algorithm we would
    allow but the provider never uses is refused too.  ``advertised`` None (the
    provider does not say) leaves the allow-list alone, except ``none``: unsigned
    tokens need the provider to say it issues them.  An empty result means no
    token can be accepted: a configuration error the caller reports.  Logout tokens
    are signed with the ID tokens' keys and algorithms (Back-Channel Logout 1.0
    section 2.4), so the same set applies to them.
    """
    if advertised is None:
        return tuple(alg for alg in configured if alg != UNSIGNED)
    return tuple(alg for alg in configured if alg in advertised)


@dataclass(frozen=True)
class TokenRules:
    """What every token one client accepts is checked against: one value for the three validators.

    ``keys``: the issuer's JWKS; ``issuer``: the exact ``iss``; ``client_id``: the
    audience (and ``azp``); ``client_secret``: the ``HS*`` key, used only when
    ``algorithms`` names an ``HS`` algorithm; ``algorithms``: the accepted ones
    (:func:`accepted_algorithms`, never empty when built by the client);
    ``leeway``: seconds of clock skew allowed on ``exp``, ``iat`` and ``nbf``.

    Security caveat: ``client_secret`` is kept out of ``repr`` (error reporters
    that capture locals would send it away).
    """

    keys: KeySet
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    algorithms: tuple[str, ...]
    leeway: float


def validate_id_token(
    token: str,
    rules: TokenRules,
    *,
    nonce: Optional[str],
    now: float,
    access_token: Optional[str] = None,
    allow_unsigned: bool = False,
) -> dict[str, Any]:
    """The token's claims, or :class:`AuthFailure` ``invalid_id_token`` with the reason.

    ``allow_unsigned``: the caller received ``token`` directly from the token
    endpoint over TLS, so an ``alg: none`` token is acceptable when
    ``rules.algorithms`` names ``none`` (see the module docstring).  Never set it for anything else.
    """
    claims, alg = _verified_claims(
        token, InvalidIdToken, rules, now=now, required=_REQUIRED, typ=_ID_TOKEN_TYPES, allow_unsigned=allow_unsigned,
    )
    if "events" in claims:  # a security event token, e.g. a logout token sent without a typ
        raise InvalidIdToken("an ID token has no events claim (a logout token?)")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidIdToken("sub is missing or empty")
    if "auth_time" in claims and not _is_number(claims["auth_time"]):
        raise InvalidIdToken("auth_time is not a number")
    if nonce is not None:
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not same_text(token_nonce, nonce):
            raise InvalidIdToken("nonce does not match this sign-in")
    # An unsigned token's at_hash is not checked: there is no JOSE hash to use (Core 3.1.3.8 hashes with
    # the alg's), nothing signed binds it, and it came in the same TLS answer as the access token.
    if ("at_hash" in claims and access_token is not None and alg != UNSIGNED
            and not _hash_matches(claims["at_hash"], access_token, alg)):
        raise InvalidIdToken("at_hash does not match the access token")
    return claims


def validate_refreshed_id_token(
    token: str,
    previous_token: str,
    rules: TokenRules,
    *,
    now: float,
    access_token: Optional[str] = None,
) -> dict[str, Any]:
    """An ID token from a refresh response (Core 1.0 section 12.2), or ``invalid_id_token``.

    Validated like the first ID token (without a nonce of its own to expect, and
    never unsigned: only the sign-in's own token may be), then against the
    previous one of the session: ``iss``, ``sub``, ``aud`` and ``azp``
    are the same (an absent ``azp`` stays absent), ``auth_time`` is the original
    authentication's when present, a ``nonce`` if any is the original one, and it
    was not issued before the previous token.  ``previous_token`` comes from our
    own session storage, so its signature is not checked again.
    """
    claims = validate_id_token(token, rules, nonce=None, now=now, access_token=access_token)
    try:
        previous: dict[str, Any] = jwt.decode(previous_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InvalidIdToken("the session's previous ID token is unreadable") from None
    for name in ("iss", "sub", "azp"):
        if claims.get(name) != previous.get(name):
            raise IdentityMismatch(f"refreshed ID token: {name} differs from the original")
    if _audiences(claims) != _audiences(previous):
        raise IdentityMismatch("refreshed ID token: aud differs from the original")
    if "auth_time" in claims and "auth_time" in previous and claims["auth_time"] != previous["auth_time"]:
        raise IdentityMismatch("refreshed ID token: auth_time is not the original authentication's")
    if "nonce" in claims and "nonce" in previous and claims["nonce"] != previous["nonce"]:
        raise IdentityMismatch("refreshed ID token: nonce differs from the original")
    if _is_number(previous.get("iat")) and claims["iat"] < previous["iat"]:
        raise IdentityMismatch("refreshed ID token: issued before the previous one")
    return claims


def _audiences(claims: dict[str, Any]) -> set[str]:
    aud = claims.get("aud")
    return {str(item) for item in aud} if isinstance(aud, list) else {str(aud)}


def validate_logout_token(token: str, rules: TokenRules, *, now: float) -> dict[str, Any]:
    """A back-channel logout token's claims (Back-Channel Logout 1.0 section 2.6), or ``invalid_logout_token``.

    Beyond the signature (never ``none``), ``iss``, ``aud``, ``iat`` and ``exp``
    checks shared with ID tokens: the ``events`` member must hold the back-channel
    logout event, a ``sub`` or a ``sid`` must be present, a ``nonce`` must not (so
    an ID token cannot be replayed as a logout token), an explicit ``typ`` must be
    ``logout+jwt`` (not even the generic ``JWT`` of ID tokens), and ``jti`` must be
    a non-empty string (section 2.4 REQUIRES it; without one, the caller could
    never tell a replay from a new logout).
    """
    claims, _ = _verified_claims(
        token, InvalidLogoutToken, rules, now=now, required=["iss", "aud", "iat", "exp", "jti"],
        typ=_LOGOUT_TOKEN_TYPES,
    )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidLogoutToken("jti is missing or empty")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise InvalidLogoutToken("events does not hold the back-channel logout event")
    if "nonce" in claims:
        raise InvalidLogoutToken("a logout token must not contain a nonce")
    sub, sid = claims.get("sub"), claims.get("sid")
    if not (isinstance(sub, str) and sub) and not (isinstance(sid, str) and sid):
        raise InvalidLogoutToken("neither sub nor sid")
    for name in ("sub", "sid"):
        if name in claims and not (isinstance(claims[name], str) and claims[name]):
            raise InvalidLogoutToken(f"{name} is not a string")
    return claims


def _verified_claims(
    token: str,
    invalid: type[SSOFailure],
    rules: TokenRules,
    *,
    now: float,
    required: list[str],
    typ: frozenset[str],
    allow_unsigned: bool = False,
    audience: Optional[str] = None,
    require_typ: bool = False,
) -> tuple[dict[str, Any], str]:
    """Checks shared by ID, logout and access tokens: header, algorithm, key, signature, iss, aud/azp, times.

    ``audience``: the ``aud`` to require instead of the client id, for a token meant for
    someone else than this client (an API's access token): then ``azp`` is not checked
    (it names the client the token was issued to, not us).  ``require_typ``: a token
    without ``typ`` is refused too (RFC 9068 section 4).
    """
    keys, issuer, algorithms, leeway = rules.keys, rules.issuer, rules.algorithms, rules.leeway
    client_id = rules.client_id if audience is None else audience
    header = _header(token, invalid)
    alg = header.get("alg")
    unsigned = alg == UNSIGNED and allow_unsigned
    if not isinstance(alg, str) or alg not in algorithms or (alg == UNSIGNED and not unsigned):
        raise invalid(f"algorithm {alg!r} is not accepted")
    if "crit" in header:
        raise invalid("token has critical header parameters we do not understand")
    if ("typ" in header or require_typ) and _media_type(header.get("typ")) not in typ:
        raise invalid(f"typ {header.get('typ')!r} is not accepted here")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise invalid("kid is not a string")
    if unsigned and token.rpartition(".")[2]:
        raise invalid("an unsigned (alg 'none') token must have an empty signature")

    try:
        key: Any = (None if unsigned else
                    rules.client_secret.encode() if alg.startswith("HS") else keys.key_for(kid, alg))
    except ProviderError:
        raise  # the JWKS could not be fetched: a provider fault, not a bad token
    except AuthFailure as failure:
        raise invalid(failure.detail) from None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=client_id,
            issuer=issuer,
            # The time checks are ours, below: PyJWT's would use the wall clock, not ``now``.  Without a
            # signature PyJWT would skip its claim checks too, so they are asked for explicitly.
            options={"require": required, "verify_signature": not unsigned, "verify_aud": True,
                     "verify_iss": True, "verify_sub": True, "verify_jti": True,
                     "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError as exc:
        raise invalid(f"{type(exc).__name__}: {exc}") from None

    if claims.get("iss") != issuer:  # exact match, whatever the PyJWT version does
        raise invalid("iss is not the issuer")
    exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", 0)
    if not all(_is_number(value) for value in (exp, iat, nbf)):
        raise invalid("exp, iat and nbf must be numbers")
    if exp <= now - leeway:
        raise invalid("token has expired")
    if iat > now + leeway:
        raise invalid("iat is in the future")
    if nbf > now + leeway:
        raise invalid("token is not valid yet (nbf)")
    if audience is not None:
        return claims, alg
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise invalid("azp is not this client")
    if len(audiences) > 1 and azp is None:
        raise invalid("several audiences and no azp")
    return claims, alg


def _header(token: str, invalid: type[SSOFailure]) -> dict[str, Any]:
    """The JOSE header of a compact JWS, read from its first segment alone (PyJWT checks the whole token later)."""
    segment, dot, rest = token.partition(".")
    if not dot or rest.count(".") != 1 or len(segment) > 8192:
        raise invalid("malformed token: not three segments")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError, RecursionError):
        raise invalid("malformed token: unreadable header") from None
    if not isinstance(header, dict):
        raise invalid("malformed token: the header is not a JSON object")
    return header


def _media_type(typ: Any) -> Optional[str]:
    """A ``typ`` header as compared: lower-cased, without ``application/`` (RFC 7515 section 4.1.9); None if no text."""
    if not isinstance(typ, str):
        return None
    lowered = typ.lower()
    return lowered[len("application/"):] if lowered.startswith("application/") else lowered


def _is_number(value: Any) -> bool:
    """A JSON number usable as a time: not a boolean, not NaN or infinite, not too large for a float."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _hash_matches(expected: Any, value: str, alg: str) -> bool:
    hash_function = hashlib.sha512 if alg == "EdDSA" else _HASHES.get(alg[-3:])
    if hash_function is None or not isinstance(expected, str):
        return False
    digest = hash_function(value.encode("ascii", "replace")).digest()
    half = base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
    return same_text(half, expected)
