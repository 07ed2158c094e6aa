"""Client authentication at the provider's token and PAR endpoints (RFC 6749 2.3, RFC 7523, OIDC Core 9).

One home for ``token_endpoint_auth_method``: :func:`authenticate` returns the form
fields and the Basic credentials a back-channel request carries, for every request
that authenticates the client (code exchange, refresh, pushed authorization, the
doctor's credential check).

- ``client_secret_basic``: the id and secret, each form-encoded, in an
  ``Authorization: Basic`` header (RFC 6749 section 2.3.1);
- ``client_secret_post``: both in the body;
- ``client_secret_jwt``: an HS256 assertion keyed with the client secret;
- ``private_key_jwt``: an assertion signed with ``client_assertion_key`` (RS256, PS256
  or ES256 by key type), whose public key is registered at the provider.

Assertions (RFC 7523 section 3) carry ``iss`` = ``sub`` = the client id, a fresh random
``jti``, ``iat`` and an ``exp`` :data:`ASSERTION_LIFETIME` seconds later, and ``aud`` set by
``client_assertion_audience``: the issuer identifier by default -- what Auth0 documents
("the URL of the Auth0 tenant ... including the trailing slash"), what RFC 9126 section 2
recommends so that one value fits the token and the PAR endpoint, and the single value
draft-ietf-oauth-rfc7523bis requires (an audience naming the issuer cannot be replayed by
a mix-up attacker posing as another provider's token endpoint) -- or the URL of the
endpoint the request goes to (``endpoint``, for providers that want RFC 7523's older
reading).  PyJWT signs them; nothing here hand-rolls JOSE.

Security caveats: the private key is read once, when the configuration is built
(:func:`validate`), and kept in memory (rotating it needs a restart); it and the
assertions are never logged.  An assertion is a bearer credential for its ``exp``
window: the short lifetime and the ``jti`` (providers refuse a replay) bound that.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import quote

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .._config.setting_files import read_setting_file
from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .._config.settings import SSOConfig

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt")
JWT_METHODS = ("client_secret_jwt", "private_key_jwt")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds an assertion is valid; Auth0 accepts at most 5 minutes and recommends under one.
ASSERTION_LIFETIME = 60
AUDIENCES = ("issuer", "endpoint")
#: The algorithms ``private_key_jwt`` signs with, per key type (the first is the default).
KEY_ALGORITHMS = {"RSA": ("RS256", "PS256"), "EC": ("ES256",)}
_MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True)
class AssertionKey:
    """A ``private_key_jwt`` signing key: the private key (not in ``repr``), its ``kid`` and algorithm."""

    key: Any = field(repr=False)
    kid: str
    algorithm: str


def validate(config: SSOConfig) -> None:
    """Build-time checks of the client-authentication settings (one :class:`ConfigError` naming the setting).

    For ``private_key_jwt`` the key file is read and parsed now (and kept), so a wrong
    path or a public key fails at start-up, not at the first sign-in.
    """
    method = config.token_endpoint_auth_method
    if method not in AUTH_METHODS:
        raise ConfigError("token_endpoint_auth_method", f"must be one of {', '.join(AUTH_METHODS)}")
    if config.client_assertion_audience not in AUDIENCES:
        raise ConfigError("client_assertion_audience", f"must be one of {', '.join(AUDIENCES)}")
    if method != "private_key_jwt":
        for name in ("client_assertion_key", "client_assertion_kid", "client_assertion_algorithm"):
            if getattr(config, name):
                raise ConfigError(name, "is used only with token_endpoint_auth_method = private_key_jwt")
        if not config.client_secret:
            raise ConfigError("client_secret", "required (not with private_key_jwt)")
        if method == "client_secret_jwt" and len(config.client_secret.encode()) < 32:
            # RFC 7518 section 3.2: an HS256 key must be at least as long as the hash (32 bytes).
            raise ConfigError("client_secret", "must be at least 32 bytes long for client_secret_jwt (HS256)")
        return
    if not config.client_assertion_key:
        raise ConfigError("client_assertion_key", "required with private_key_jwt: a PEM or JWK private key file")
    assertion_key(config)


def assertion_key(config: SSOConfig) -> AssertionKey:
    """The configured ``private_key_jwt`` key, loaded once per (file, kid, algorithm)."""
    return _load_key(config.client_assertion_key, config.client_assertion_kid, config.client_assertion_algorithm)


@functools.cache
def _load_key(path: str, kid: str, algorithm: str) -> AssertionKey:
    setting = "client_assertion_key"
    data = read_setting_file(setting, path, _MAX_KEY_FILE)
    if data.lstrip().startswith(b"{"):
        key, jwk_kid = _parse_jwk(data, path)
    else:
        key, jwk_kid = _parse_pem(data, path), ""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ConfigError(setting, f"the RSA key in {path!r} has {key.key_size} bits; at least 2048 are needed")
        allowed = KEY_ALGORITHMS["RSA"]
    elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        allowed = KEY_ALGORITHMS["EC"]
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(setting, f"the EC key in {path!r} is on {key.curve.name}; ES256 needs P-256")
    else:
        raise ConfigError(setting, f"{path!r} holds neither an RSA nor a P-256 EC private key")
    chosen = algorithm or allowed[0]
    if chosen not in allowed:
        raise ConfigError("client_assertion_algorithm",
                          f"{chosen!r} does not fit the key in {path!r} (use {' or '.join(allowed)})")
    if kid and jwk_kid and kid != jwk_kid:
        raise ConfigError("client_assertion_kid", f"{kid!r} differs from the kid {jwk_kid!r} of the JWK in {path!r}")
    chosen_kid = kid or jwk_kid
    if not chosen_kid:
        raise ConfigError("client_assertion_kid",
                          "required for a PEM key: the kid of the key registered at the provider")
    if not all("\x21" <= char <= "\x7e" for char in chosen_kid) or len(chosen_kid) > 256:
        raise ConfigError("client_assertion_kid", "must be printable ASCII without spaces, at most 256 characters")
    return AssertionKey(key=key, kid=chosen_kid, algorithm=chosen)


def _parse_pem(data: bytes, path: str) -> Any:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError("client_assertion_key",
                          f"the key in {path!r} is encrypted; give an unencrypted one") from None
    except (ValueError, UnsupportedAlgorithm):
        if b"PUBLIC KEY" in data or b"CERTIFICATE" in data:
            raise ConfigError("client_assertion_key", f"{path!r} holds a public key or certificate, "
                              "not the private key") from None
        raise ConfigError("client_assertion_key", f"{path!r} is not a PEM private key or a JWK") from None


def _parse_jwk(data: bytes, path: str) -> tuple[Any, str]:
    try:
        jwk = json.loads(data)
    except (ValueError, RecursionError):
        raise ConfigError("client_assertion_key", f"{path!r} is not valid JSON (a JWK)") from None
    if isinstance(jwk, dict) and isinstance(jwk.get("keys"), list):
        raise ConfigError("client_assertion_key", f"{path!r} is a JWKS; give the one private JWK")
    if not isinstance(jwk, dict) or "kty" not in jwk:
        raise ConfigError("client_assertion_key", f"{path!r} is not a JWK (no kty)")
    if "d" not in jwk:
        raise ConfigError("client_assertion_key", f"the JWK in {path!r} is a public key (no 'd'); give the private one")
    try:
        key = jwt.PyJWK.from_dict(jwk).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, UnsupportedAlgorithm):
        raise ConfigError("client_assertion_key", f"the JWK in {path!r} cannot be loaded") from None
    kid = jwk.get("kid", "")
    return key, kid if isinstance(kid, str) else ""


def authenticate(
    config: SSOConfig, endpoint: str, now: Optional[float] = None
) -> tuple[dict[str, str], Optional[tuple[str, str]]]:
    """The body fields and Basic credentials that authenticate the client to ``endpoint``.

    ``endpoint`` is the URL the request is POSTed to (the token or the PAR endpoint);
    it is the assertion's audience with ``client_assertion_audience = endpoint``.
    """
    method = config.token_endpoint_auth_method
    if method == "client_secret_basic":
        return {}, (quote(config.client_id, safe=""), quote(config.client_secret, safe=""))
    if method == "client_secret_post":
        return {"client_id": config.client_id, "client_secret": config.client_secret}, None
    fields = {
        "client_id": config.client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_assertion(config, endpoint, now),
    }
    return fields, None


def make_assertion(config: SSOConfig, endpoint: str, now: Optional[float] = None) -> str:
    """A fresh signed client assertion (RFC 7523 section 3) for one request to ``endpoint``."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": config.client_id,
        "sub": config.client_id,
        "aud": config.issuer_url if config.client_assertion_audience == "issuer" else endpoint,
        "jti": secrets.token_urlsafe(32),
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    if config.token_endpoint_auth_method == "client_secret_jwt":
        return jwt.encode(claims, config.client_secret.encode(), algorithm="HS256", headers={"typ": "JWT"})
    key = assertion_key(config)
    return jwt.encode(claims, key.key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"})


def signing_algorithm(config: SSOConfig) -> Optional[str]:
    """The assertion's ``alg`` (None for the secret methods): for the doctor's support check."""
    if config.token_endpoint_auth_method == "client_secret_jwt":
        return "HS256"
    if config.token_endpoint_auth_method == "private_key_jwt":
        return assertion_key(config).algorithm
    return None


def key_file_mode_problem(path: str) -> Optional[str]:
    """Why a private key file's permissions are too open (readable by group or others), or None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return f"{path!r} is readable by group or others (mode {mode & 0o777:03o})" if mode & 0o077 else None
