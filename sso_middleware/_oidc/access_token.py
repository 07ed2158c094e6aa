"""Access tokens presented to an API (``bearer_paths``): JWT access tokens checked locally (RFC 9068).

:func:`validate_access_token` accepts a token only if all of these hold: it is a
compact JWS whose ``alg`` is in ``bearer_algorithms`` (asymmetric only: never
``none``, never ``HS*``, so a public key cannot be abused as an HMAC secret); its
signature verifies with a key of the issuer's JWKS that fits the algorithm
(:func:`.jwks.key_fits`; an unknown ``kid`` refetches the cached set once, rate
limited, as for ID tokens); its ``typ`` header is ``at+jwt`` (or
``application/at+jwt``; with ``bearer_token_type = JWT`` also ``JWT`` or none, Auth0's
default profile); ``iss`` equals the issuer exactly; ``aud`` contains
``bearer_audience``; ``exp`` is in the future and ``iat`` (and ``nbf``) not, within
``clock_skew``; ``sub`` is a non-empty string; ``scope``, when present, is a string;
and it carries no ``nonce`` and no ``events`` (an ID or logout token is no access
token, whatever its ``typ``: RFC 8725 section 3.11) and no ``cnf`` (a DPoP- or
mTLS-bound token, RFC 9449 / RFC 8705, is only usable with a proof this API does not
check: accepting it as a bearer token would undo the binding).  The signature, algorithm, issuer,
audience and time checks are the ID tokens' own (:func:`.id_token._verified_claims`).

:class:`AccessTokenVerifier` is what the WSGI side calls: JWTs through the above;
opaque tokens, when ``bearer_introspection`` is on, through :mod:`.introspection`,
else refused with a reason the client can act on.

Security caveats: a JWT access token is valid until its ``exp`` whatever happens at
the provider (revocation is not seen: keep access tokens short-lived); the
``detail`` of a refusal is sent to the client as ``error_description``, so it names
the failing check only, never a claim value or the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from .._policy.rules import scope_tokens
from ..errors import InvalidAccessToken
from .client import OIDCClient
from .id_token import TokenRules, _verified_claims
from .introspection import Introspector

#: ``typ`` values (lower-cased, without ``application/``) per ``bearer_token_type``.
_TYPES = {"at+jwt": frozenset({"at+jwt"}), "JWT": frozenset({"at+jwt", "jwt"})}
_REQUIRED = ["iss", "sub", "aud", "exp", "iat"]


class OpaqueAccessToken(InvalidAccessToken):
    """An access token that is not a JWT (no three dot-separated segments): only introspection can tell."""


@dataclass(frozen=True)
class AccessTokenRules:
    """What an API's access tokens are checked against.

    ``tokens``: the issuer, JWKS, ``bearer_algorithms`` and leeway (its client id and
    secret are unused: the audience is ``audience``, and no ``HS*`` algorithm is ever
    allowed); ``types``: the accepted ``typ`` media types; ``typ_required``: whether a
    token without ``typ`` is refused (RFC 9068 section 4; not for Auth0's default profile).
    """

    tokens: TokenRules
    audience: str
    types: frozenset[str]
    typ_required: bool


def is_jwt(token: str) -> bool:
    """Whether ``token`` has the shape of a compact JWS (three segments); anything else is opaque."""
    return token.count(".") == 2


def validate_access_token(token: str, rules: AccessTokenRules, *, now: float) -> dict[str, Any]:
    """The claims of a JWT access token, or :class:`InvalidAccessToken` naming the failed check.

    A token that is not a JWT raises :class:`OpaqueAccessToken`.  A JWKS that cannot be
    fetched raises the :class:`~sso_middleware.errors.ProviderError` (not a verdict on the token).
    """
    if not is_jwt(token):
        raise OpaqueAccessToken("the access token is not a JWT")
    claims, _ = _verified_claims(
        token, InvalidAccessToken, rules.tokens, now=now, required=_REQUIRED, typ=rules.types,
        audience=rules.audience, require_typ=rules.typ_required,
    )
    return checked_claims(claims)


def checked_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The access-token rules beyond signature, issuer, audience and times (shared with introspection)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidAccessToken("sub is missing or empty")
    if "nonce" in claims or "events" in claims:
        raise InvalidAccessToken("an ID token or logout token is not an access token")
    if "scope" in claims and not isinstance(claims["scope"], str):
        raise InvalidAccessToken("scope is not a space-separated string")
    if "cnf" in claims:
        # RFC 9449 (DPoP) / RFC 8705 (mTLS): only with its proof is such a token usable; no proof is checked here
        raise InvalidAccessToken("the access token is sender-constrained (cnf: DPoP or mTLS bound); this API "
                                 "accepts bearer tokens only")
    return dict(claims)


def scopes_of(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The token's scopes, in order, without repeats (RFC 9068 section 2.2.3's ``scope``)."""
    scope = claims.get("scope")
    return scope_tokens(scope) if isinstance(scope, str) else ()


class AccessTokenVerifier:
    """The claims of an access token presented to this API: a JWT checked locally, else introspected.

    Built once per middleware from its settings and its :class:`.OIDCClient` (whose
    cached discovery, JWKS, HTTP client and clock it shares).
    """

    def __init__(self, client: OIDCClient) -> None:
        config = client.config
        self.clock = client.clock
        self.rules = AccessTokenRules(
            tokens=TokenRules(keys=client.keys, issuer=config.issuer_url, client_id=config.client_id,
                              client_secret="", algorithms=config.bearer_algorithms,  # no HS* ever: unused
                              leeway=config.clock_skew),
            audience=config.bearer_audience,
            types=_TYPES[config.bearer_token_type],
            typ_required=config.bearer_token_type == "at+jwt",
        )
        self.introspector: Optional[Introspector] = (
            Introspector(client, audience=config.bearer_audience) if config.bearer_introspection else None
        )

    def claims(self, token: str) -> dict[str, Any]:
        """The token's claims, or :class:`InvalidAccessToken` (a :class:`ProviderError` when the provider is down)."""
        if is_jwt(token) or self.introspector is None:
            try:
                return validate_access_token(token, self.rules, now=self.clock())
            except OpaqueAccessToken:
                raise InvalidAccessToken("the access token is not a JWT; this API accepts JWT access tokens "
                                         "only") from None
        return checked_claims(self.introspector.claims(token))
