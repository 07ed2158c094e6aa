"""Turning settings given as strings into values, and checking a built :class:`SSOConfig`.

Every check raises one :class:`~sso_middleware.errors.ConfigError` naming the setting, so a bad value is
refused when the middleware is built, never on the first request.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlsplit

from .._observe import settings as observe_settings
from .._oidc import client_auth, egress, revocation
from .._policy import authorize_params as authz
from .._policy import sign_in_hook
from .._policy.rules import AccessRule, configured_prefix
from ..errors import ConfigError
from . import page_template
from .urls import check_endpoint_url, origin_of

if TYPE_CHECKING:
    from .settings import SSOConfig

#: ID-token signature algorithms the middleware knows how to verify.
KNOWN_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "HS256"}
)
#: The ``alg`` of an unsigned JWS (RFC 7515 appendix A.5).  Named in ``id_token_algorithms``, it accepts
#: *unsigned* ID tokens, and only from the token endpoint over TLS (Core 1.0 section 3.1.3.7 item 6; see
#: :mod:`sso_middleware._oidc.id_token`).  Never a default.
UNSIGNED = "none"
#: Access-token signature algorithms (``bearer_algorithms``): asymmetric only, verified with the JWKS's public
#: keys (an ``HS*`` "signature" made with a public key as HMAC secret is the classic confusion attack).
BEARER_ALGORITHMS = KNOWN_ALGORITHMS - {"HS256"}
#: ``bearer_token_type`` values: RFC 9068's ``at+jwt``, or ``JWT`` for Auth0's default token profile.
BEARER_TOKEN_TYPES = ("at+jwt", "JWT")
FALLBACKS = ("interactive", "anonymous")
REFRESH_FAILURES = ("sign_out", "keep_session")
RESPONSE_MODES = ("query", "form_post")
AUTH_METHODS = client_auth.AUTH_METHODS
PUSHED_AUTHORIZATION = ("auto", "required", "off")
#: The largest ``max_request_body`` accepted (16 MiB): auth routes need a few kilobytes.
MAX_REQUEST_BODY_LIMIT = 16 * 1024 * 1024
_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*$")
#: The route settings that may be empty (the route is off); each set one is checked like the others.
_OPTIONAL_ROUTES = ("backchannel_logout_path", "frontchannel_logout_path", "session_endpoint_path", "metrics_path",
                    "health_path")
_CLAIM_RE = re.compile(r"^[\x21-\x7e]{1,256}$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def check_known(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    """``settings``, after refusing any name that is not a setting (one error naming it)."""
    known = field_types()
    for name in settings:
        if name not in known:
            raise ConfigError(name, "unknown setting")
    return settings


@functools.cache
def field_types() -> dict[str, Any]:
    """Each setting's type, from :class:`SSOConfig`'s annotations."""
    from .settings import SSOConfig  # the class checks itself through this module when it is built

    return typing.get_type_hints(SSOConfig)


def split_list(text: str) -> tuple[str, ...]:
    """A list setting given as one string: items separated by spaces, commas or new lines."""
    return tuple(item for item in re.split(r"[\s,]+", text.strip()) if item)


def convert(name: str, kind: Any, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if kind is bool:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(name, f"{value!r} is not a boolean (true/false)")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(name, f"{value!r} is not an integer") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(name, f"{value!r} is not a number") from None
    if kind == tuple[str, ...]:
        return split_list(text)
    return text  # access_rules, authorize_params, authorize_params_hook: parsed by SSOConfig itself


def validate(config: SSOConfig) -> None:
    for name, kind in field_types().items():
        _check_type(name, getattr(config, name), kind)

    if config.issuer and config.domain:
        raise ConfigError("domain", "give either issuer or domain, not both")
    if not config.issuer and not config.domain:
        raise ConfigError("issuer", "required (or set domain for an Auth0 tenant)")
    if config.domain and not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]+)?", config.domain):
        raise ConfigError("domain", f"{config.domain!r} is not a host name (no scheme, no path)")
    check_endpoint_url("issuer" if config.issuer else "domain", config.issuer_url, config.allow_insecure_http)
    if urlsplit(config.issuer_url).query or urlsplit(config.issuer_url).fragment:
        raise ConfigError("issuer", "must not have a query or fragment")

    if not config.client_id:
        raise ConfigError("client_id", "required")
    client_auth.validate(config)  # token_endpoint_auth_method, client_secret, the private key (read now)
    if config.pushed_authorization not in PUSHED_AUTHORIZATION:
        raise ConfigError("pushed_authorization", f"must be one of {', '.join(PUSHED_AUTHORIZATION)}")
    _check_base_urls(config)
    if len(config.session_secret) < 32:
        raise ConfigError("session_secret", "required, at least 32 characters of random data")

    if "openid" not in config.scope.split():
        raise ConfigError("scope", "must include 'openid'")
    for name in ("scope", "audience"):
        if any(ord(c) < 0x20 or c == "\x7f" for c in getattr(config, name)):
            raise ConfigError(name, "must not contain control characters")

    paths: dict[str, str] = {}
    for name in ("sso_path", "login_path", "callback_path", "logout_path", "failure_path", *_OPTIONAL_ROUTES):
        value = getattr(config, name)
        if not value and name in _OPTIONAL_ROUTES:  # empty: the route is off
            continue
        if not _PATH_RE.match(value) or "//" in value:
            raise ConfigError(name, f"{value!r} is not an absolute path like /auth/login")
        if "%" in value:  # routes are looked up by the decoded PATH_INFO: an escape would never match
            raise ConfigError(name, f"{value!r} must not contain percent-escapes (requests are routed decoded)")
        if value in paths:
            raise ConfigError(name, f"same path as {paths[value]}")
        paths[value] = name

    if config.default_connection and not is_valid_connection(config.default_connection):
        raise ConfigError("default_connection", "not a valid connection name")
    for connection in config.allowed_connections:
        if not is_valid_connection(connection):
            raise ConfigError("allowed_connections", f"{connection!r} is not a valid connection name")
    if config.default_connection and config.allowed_connections and (
        config.default_connection not in config.allowed_connections
    ):
        raise ConfigError("default_connection", "is not among allowed_connections")
    for origin in config.allowed_redirect_origins:
        if origin_of(origin) != origin.rstrip("/").lower() or urlsplit(origin).path not in ("", "/"):
            raise ConfigError("allowed_redirect_origins", f"{origin!r} is not an origin like https://host[:port]")
    try:  # compared with PATH_INFO, so decoded as servers decode it (canonical: checking again changes nothing)
        prefixes = tuple(dict.fromkeys(configured_prefix(prefix) for prefix in config.protected_paths))
    except ValueError as exc:
        raise ConfigError("protected_paths", str(exc)) from None
    object.__setattr__(config, "protected_paths", prefixes)
    _check_bearer(config)
    _positive(config, "max_request_body", maximum=MAX_REQUEST_BODY_LIMIT)
    if config.max_request_body < 1024:
        raise ConfigError("max_request_body", "must be at least 1024 bytes (a logout token is about 1 KB)")

    authz.check_forward(config.forward_params)
    authz.check_organization_setting(config.organization)
    if not _CLAIM_RE.match(config.remote_user_claim):
        raise ConfigError("remote_user_claim", "must be a claim name")
    sign_in_hook.check_userinfo_claims(config.userinfo_claims, config.remote_user_claim,
                                       config.access_rules + config.bearer_rules)
    revocation.validate(config)
    if config.silent_sso_fallback not in FALLBACKS:
        raise ConfigError("silent_sso_fallback", f"must be one of {', '.join(FALLBACKS)}")
    if config.response_mode not in RESPONSE_MODES:
        raise ConfigError("response_mode", f"must be one of {', '.join(RESPONSE_MODES)}")
    if not config.id_token_algorithms:
        raise ConfigError("id_token_algorithms", "must list at least one algorithm")
    for alg in config.id_token_algorithms:
        if alg not in KNOWN_ALGORITHMS and alg != UNSIGNED:
            raise ConfigError("id_token_algorithms", f"{alg!r} is not supported (unsigned tokens: exactly 'none')")
    if len(set(config.id_token_algorithms)) != len(config.id_token_algorithms):
        raise ConfigError("id_token_algorithms", "lists an algorithm twice")
    if "HS256" in config.id_token_algorithms and len(config.client_secret.encode()) < 32:
        # RFC 7518 section 3.2: the HMAC key (here the client secret) must be at least as long as the hash.
        raise ConfigError("client_secret", "must be at least 32 bytes long when id_token_algorithms allows HS256")

    if config.failure_page_template:
        page_template.load(config.failure_page_template)  # read and checked now: ConfigError naming the setting
    _positive(config, "clock_skew", allow_zero=True, maximum=600)
    _positive(config, "http_timeout", maximum=120)
    egress.validate(config)  # http_proxy, ca_bundle, tls_client_cert/key: the files are read now
    _positive(config, "discovery_ttl")
    _positive(config, "transaction_ttl")
    _positive(config, "session_idle_timeout")
    _positive(config, "session_absolute_timeout")
    _positive(config, "refresh_margin", allow_zero=True)
    if config.refresh_failure not in REFRESH_FAILURES:
        raise ConfigError("refresh_failure", f"must be one of {', '.join(REFRESH_FAILURES)}")
    from ..stores import registry  # here: the back ends import this module

    backend = registry.resolve(config.session_type)  # ConfigError("session_type") when it names no back end
    _positive(config, "session_store_timeout", maximum=60)
    _positive(config, "session_pool_size", maximum=1000)
    backend.validate(config)  # the back end's own settings (session_url, session_environ_key...)
    _check_preserve_post(config, keeps_records=bool(getattr(backend, "keeps_records", False)))
    if config.cookie_name and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", config.cookie_name):
        raise ConfigError("cookie_name", "must be a short token of letters, digits, '_', '.', '-'")
    if config.cookie_name.startswith(("__Host-", "__Secure-")) and not config.secure_cookies:
        raise ConfigError("cookie_name", "a __Host-/__Secure- cookie needs an https base_url")
    if config.cookie_name.startswith("__Host-") and config.cookie_domain:
        raise ConfigError("cookie_name", "a __Host- cookie cannot have a cookie_domain")
    if config.cookie_name.startswith("__Host-") and config.cookie_path != "/":
        raise ConfigError("cookie_name", "a __Host- cookie needs Path=/, but base_url has a path (use __Secure-)")
    if config.cookie_domain and not re.fullmatch(r"\.?[A-Za-z0-9.-]+", config.cookie_domain):
        raise ConfigError("cookie_domain", "must be a host name")
    observe_settings.validate(config)  # metrics_* (the route paths are checked above with the others)


def _check_bearer(config: SSOConfig) -> None:
    """The ``bearer_*`` settings; ``bearer_paths`` canonical like ``protected_paths``."""
    try:
        prefixes = tuple(dict.fromkeys(configured_prefix(prefix) for prefix in config.bearer_paths))
    except ValueError as exc:
        raise ConfigError("bearer_paths", str(exc)) from None
    object.__setattr__(config, "bearer_paths", prefixes)
    spellings = {"at+jwt": "at+jwt", "application/at+jwt": "at+jwt", "jwt": "JWT"}
    token_type = spellings.get(config.bearer_token_type.lower())
    if token_type is None:
        raise ConfigError("bearer_token_type", f"must be one of {', '.join(BEARER_TOKEN_TYPES)}")
    object.__setattr__(config, "bearer_token_type", token_type)
    if not config.bearer_algorithms:
        raise ConfigError("bearer_algorithms", "must list at least one algorithm")
    for alg in config.bearer_algorithms:
        if alg not in BEARER_ALGORITHMS:
            raise ConfigError("bearer_algorithms", f"{alg!r} is not accepted: asymmetric algorithms only "
                              f"({', '.join(sorted(BEARER_ALGORITHMS))}); never none or HS*")
    _positive(config, "bearer_introspection_ttl", allow_zero=True, maximum=86400)
    if any(ord(c) < 0x20 or c == "\x7f" for c in config.bearer_audience):
        raise ConfigError("bearer_audience", "must not contain control characters")
    if not prefixes:
        if config.bearer_rules:
            raise ConfigError("bearer_rules", "needs bearer_paths (the API paths they are about)")
        return
    if not config.bearer_audience:
        raise ConfigError("bearer_audience", "required with bearer_paths: the API identifier access tokens are for")
    if config.bearer_audience == config.client_id:
        raise ConfigError("bearer_audience", "must not be the client_id: ID tokens have that audience, and one "
                          "presented as an access token must fail")
    if config.bearer_audience.rstrip("/") == config.issuer_url.rstrip("/") + "/userinfo":
        raise ConfigError("bearer_audience", "must not be the provider's userinfo audience (<issuer>/userinfo): "
                          "Auth0 puts it in access tokens for any API and any application; name this API's own "
                          "identifier")
    apis = tuple(AccessRule(path=prefix) for prefix in prefixes)
    for rule in config.bearer_rules:
        if not any(api.applies_to(rule.path_info) for api in apis):
            raise ConfigError("bearer_rules", f"{rule.path!r} is not under bearer_paths ({' '.join(prefixes)})")
    for rule in config.access_rules:
        # Access rules hold for bearer requests too (their claims against the token's); a step-up cannot:
        # an access token is no sign-in the user could repeat, and its auth_time is nobody's promise here.
        if any(api.overlaps(rule) for api in apis) and (rule.max_age is not None or rule.acr_values):
            raise ConfigError("access_rules", f"{rule.path!r} asks for max_age/acr_values on bearer_paths "
                              f"({' '.join(prefixes)}), which an access token cannot satisfy; guard those paths "
                              "with claims, and bearer_rules for scopes")


def _check_preserve_post(config: SSOConfig, keeps_records: bool) -> None:
    """``preserve_post`` (canonical like ``protected_paths``, each under a guarded path) and its size bound."""
    try:
        prefixes = tuple(dict.fromkeys(configured_prefix(prefix) for prefix in config.preserve_post))
    except ValueError as exc:
        raise ConfigError("preserve_post", str(exc)) from None
    object.__setattr__(config, "preserve_post", prefixes)
    _positive(config, "preserve_post_max_body")
    if not prefixes:  # off: a smaller max_request_body (kept for the auth routes) leaves the default bound be
        return
    _positive(config, "preserve_post_max_body", maximum=config.max_request_body)
    if not keeps_records:
        raise ConfigError("preserve_post", "needs a session_type that keeps server-side records (file, ext:redis, "
                          "ext:memcached, postgresql): the form is kept there, never in a cookie")
    guarded = tuple(AccessRule(path=prefix) for prefix in config.protected_paths) + tuple(config.access_rules)
    for prefix in prefixes:
        kept = AccessRule(path=prefix)
        if not any(rule.overlaps(kept) for rule in guarded):
            raise ConfigError("preserve_post", f"{prefix!r} is not under protected_paths or access_rules: a POST "
                              "there reaches the application without a session, and is never kept")


def _check_base_urls(config: SSOConfig) -> None:
    """``base_url``: one or several origins of the app sharing one path; stored space-separated, in order."""
    urls = tuple(item for item in re.split(r"[\s,]+", config.base_url.strip()) if item)
    if not urls:
        raise ConfigError("base_url", "required (public origin of the app, e.g. https://app.example)")
    for url in urls:
        check_endpoint_url("base_url", url, config.allow_insecure_http)
        base = urlsplit(url)
        if base.query or base.fragment or url.endswith("/"):
            raise ConfigError("base_url", "must be an origin with an optional path prefix, without a trailing slash")
        if not re.fullmatch(r"[A-Za-z0-9._~!$&'()*+=:@/%-]*", base.path):
            # The path is the session cookie's Path: as browsers send it (percent-encoded), no ';' (nor ',').
            raise ConfigError("base_url", "its path must be percent-encoded, without ';' (it is the cookie Path)")
    origins = [origin_of(url) for url in urls]
    if len(set(origins)) != len(origins):
        raise ConfigError("base_url", "lists the same origin twice")
    if len({urlsplit(url).path for url in urls}) > 1:
        # One cookie Path, one set of routes: the origins must be the same app at the same path.
        raise ConfigError("base_url", "all listed origins must share one path prefix")
    if len({urlsplit(url).scheme for url in urls}) > 1:
        raise ConfigError("base_url", "all listed origins must be https, or all http (cookies' Secure flag)")
    object.__setattr__(config, "base_url", " ".join(urls))


def _check_type(name: str, value: Any, kind: Any) -> None:
    if kind == tuple[str, ...]:
        ok = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        expected = "a tuple of strings"
    elif kind in (tuple[AccessRule, ...], tuple[tuple[str, str], ...], Optional[authz.Hook],
                  Optional[sign_in_hook.SignInHook], Any):
        ok = True  # parsed (and checked) in __post_init__; session_type by the store registry
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        expected = "a number"
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    else:
        ok = isinstance(value, kind)
        expected = f"a {kind.__name__}"
    if not ok:
        raise ConfigError(name, f"must be {expected}, not {type(value).__name__}")


def _positive(config: SSOConfig, name: str, allow_zero: bool = False, maximum: Optional[float] = None) -> None:
    value = getattr(config, name)
    if not value >= 0 or (value == 0 and not allow_zero):  # "not >=" also refuses NaN
        raise ConfigError(name, "must be a positive number")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"must be at most {maximum}")


def is_valid_connection(value: str) -> bool:
    """Connection names: printable ASCII without spaces, at most 128 characters."""
    return bool(re.fullmatch(r"[\x21-\x7e]{1,128}", value))
