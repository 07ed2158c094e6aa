"""The middleware's settings: one frozen, validated :class:`SSOConfig`.

Settings are the field names of :class:`SSOConfig`.  The same names work as
keyword arguments to :class:`~sso_middleware.SSOMiddleware`, in a PasteDeploy
``[filter:sso]`` section (values are strings, converted here by
:meth:`SSOConfig.from_settings`) and as ``SSO_<NAME>`` environment variables
(:meth:`SSOConfig.from_env`).  Everything is checked when the object is built,
and a bad value raises one :class:`~sso_middleware.errors.ConfigError` that
names the setting -- never an error on the first request.

Security caveat: ``allow_insecure_http`` exists for tests and local demos on
loopback only; it is refused for any other host and it changes no
process-wide state (no ``OAUTHLIB_INSECURE_TRANSPORT``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import os
import re
import tempfile
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlsplit

from .._oidc import client_auth, egress
from .._policy import authorize_params as authz
from .._policy.rule_parsing import parse_rules
from .._policy.rules import AccessRule, configured_prefix
from ..errors import ConfigError

#: ID-token signature algorithms the middleware knows how to verify.
KNOWN_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "HS256"}
)
#: The ``alg`` of an unsigned JWS (RFC 7515 appendix A.5).  Named in ``id_token_algorithms``, it accepts
#: *unsigned* ID tokens, and only from the token endpoint over TLS (Core 1.0 section 3.1.3.7 item 6; see
#: :mod:`.id_token`).  Never a default.
UNSIGNED = "none"
FALLBACKS = ("interactive", "anonymous")
REFRESH_FAILURES = ("sign_out", "keep_session")
RESPONSE_MODES = ("query", "form_post")
AUTH_METHODS = client_auth.AUTH_METHODS
PUSHED_AUTHORIZATION = ("auto", "required", "off")
_LOOPBACK_NAMES = frozenset({"localhost"})
#: The largest ``max_request_body`` accepted (16 MiB): auth routes need a few kilobytes.
MAX_REQUEST_BODY_LIMIT = 16 * 1024 * 1024
_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*$")
_CLAIM_RE = re.compile(r"^[\x21-\x7e]{1,256}$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _setting(default: Any, help: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass(frozen=True)
class SSOConfig:
    """All settings of one middleware instance.  See the README's table."""

    issuer: str = _setting("", "OpenID Provider issuer URL, exactly as its discovery document says it.")
    domain: str = _setting("", "Auth0 domain (`tenant.eu.auth0.com`); shorthand for `issuer=https://DOMAIN/`.")
    client_id: str = _setting("", "Client (application) id registered at the provider. Required.")
    client_secret: str = _setting(
        "", "Client secret. Required, except with `token_endpoint_auth_method = private_key_jwt`.", repr=False
    )
    base_url: str = _setting(
        "", "Public origin (and path prefix) of the wrapped app, e.g. `https://app2.example`. Required. Several "
        "origins of one app (space or comma separated, one shared path, all https or all http): each request "
        "uses the one matching its Host, an unlisted Host the first (see Several hostnames)."
    )
    session_secret: str = _setting("", "Secret signing the session cookie; 32+ characters. Required.", repr=False)
    scope: str = _setting("openid profile email", "Scopes asked for; must include `openid`.")
    audience: str = _setting("", "Auth0 `audience`: the API an access token is asked for.")
    sso_path: str = _setting("/auth/sso", "The SSO entry point (`?connection=...&target_url=...`).")
    login_path: str = _setting("/auth/login", "Interactive login (`?target_url=...`, optional `connection`).")
    callback_path: str = _setting("/auth/callback", "Redirect URI path; `redirect_uri = base_url + callback_path`.")
    response_mode: str = _setting(
        "query", "How the provider returns to the callback: `query` (a GET) or `form_post` (an auto-submitted "
        "POST: no code in URLs or logs; transaction cookies become `SameSite=None; Secure`, see form_post)."
    )
    logout_path: str = _setting("/auth/logout", "Sign-out (`?target_url=...`).")
    failure_path: str = _setting("/auth/failure", "Failure page (`?error=CODE`).")
    backchannel_logout_path: str = _setting(
        "/auth/backchannel-logout", "OpenID Connect Back-Channel Logout endpoint (POST); empty to disable."
    )
    max_request_body: int = _setting(
        65536, "Largest request body (bytes) an auth route reads (back-channel logout, the `form_post` callback); "
        "a larger or unsized (chunked) body gets 413 unread. Other auth routes never read a body."
    )
    default_connection: str = _setting("", "Connection used when a request names none.")
    allowed_connections: tuple[str, ...] = _setting((), "If set, the only connections accepted.")
    allowed_redirect_origins: tuple[str, ...] = _setting(
        (), "Origins (`https://host[:port]`) that absolute `target_url`s may point to, besides `base_url`'s."
    )
    protected_paths: tuple[str, ...] = _setting(
        (), "Path prefixes that require a signed-in user (percent-escapes and non-ASCII text are decoded as the "
        "server decodes request paths; `%2F` and encoded dot segments are refused)."
    )
    access_rules: tuple[AccessRule, ...] = _setting(
        (),
        "Claim and step-up rules per path prefix, one per line (or `;`): `/admin claim ROLE_CLAIM includes admin`, "
        "`claim NAME equals V`, `claim NAME present`, `/billing max_age 300`, `/vault acr_values V1,V2` "
        "(see Access rules). A rule's paths require a signed-in user.",
    )
    authorize_params: tuple[tuple[str, str], ...] = _setting(
        (),
        "Fixed extra parameters of every authorization request: `name=value` items (new lines or `&`, "
        "percent-decoded), e.g. `ui_locales=fr%20en`; a dict in Python. Never a protocol parameter "
        "(see Authorization parameters).",
    )
    forward_params: tuple[str, ...] = _setting(
        authz.DEFAULT_FORWARD,
        "Query parameters `/auth/login` and `/auth/sso` pass to the provider (values: printable, at most 256 "
        "characters, else 400). `prompt` only as `login`/`consent`/`select_account`; `scope` only adds scopes; "
        "protocol parameters are refused.",
    )
    authorize_params_hook: Optional[authz.Hook] = _setting(  # noqa: RUF009 - a field(), like the others
        None,
        "Python callable `hook(environ) -> dict` of per-request authorization parameters (`module:function` in "
        "ini/env); its output meets the `forward_params` rules; an exception is a 503 failure page.",
    )
    organization: str = _setting(
        "",
        "Auth0 Organizations: the organization (`org_...` id, or name) every sign-in is for; the ID token's "
        "`org_id` (or `org_name`) must match (see Auth0 Organizations).",
    )
    remote_user_claim: str = _setting("sub", "Claim copied to `REMOTE_USER`.")
    silent_sso: bool = _setting(True, "`/auth/sso` first tries `prompt=none` (no login screen).")
    silent_sso_fallback: str = _setting(
        "interactive",
        "When silent SSO finds no provider session: `interactive` (one retry with a login screen) "
        "or `anonymous` (go to the target without a user).",
    )
    provider_logout: bool = _setting(True, "Sign-out also ends the provider session (RP-initiated logout).")
    token_endpoint_auth_method: str = _setting(
        "client_secret_basic",
        "How the client authenticates to the token and PAR endpoints: `client_secret_basic`, `client_secret_post`, "
        "`client_secret_jwt` (HS256 assertion, secret of 32+ bytes) or `private_key_jwt` (see Client authentication).",
    )
    client_assertion_key: str = _setting(
        "",
        "`private_key_jwt`: file with the private key, unencrypted PEM or a JWK (JSON): RSA (2048+ bits) or EC P-256.",
    )
    client_assertion_kid: str = _setting(
        "", "`private_key_jwt`: the `kid` of the key registered at the provider (default: the JWK's own `kid`)."
    )
    client_assertion_algorithm: str = _setting(
        "", "`private_key_jwt`: `RS256` or `PS256` for an RSA key, `ES256` for an EC key (default: RS256 / ES256)."
    )
    client_assertion_audience: str = _setting(
        "issuer", "`aud` of client assertions: `issuer` (the issuer URL, as Auth0 and RFC 9126 want) or `endpoint` "
        "(the URL of the token or PAR endpoint the assertion is sent to)."
    )
    pushed_authorization: str = _setting(
        "auto",
        "Pushed authorization requests (PAR, RFC 9126): `auto` (when discovery advertises the endpoint), `required` "
        "(refuse to sign in without it) or `off` (a provider requiring PAR then refuses sign-ins: `par_required`).",
    )
    id_token_algorithms: tuple[str, ...] = _setting(
        ("RS256", "PS256", "ES256"),
        "Accepted ID-token signature algorithms; only those the provider also advertises are used. "
        "`none` (never a default) accepts unsigned ID tokens, from the token endpoint over TLS only.",
    )
    clock_skew: int = _setting(60, "Leeway in seconds for `exp`/`iat` checks.")
    http_timeout: float = _setting(5.0, "Timeout in seconds of each request to the provider.")
    http_proxy: str = _setting(
        "",
        "Proxy for every call to the provider: `http://[user:password@]host:port` (or `https://`); CONNECT "
        "tunnels, TLS verified end to end (see Enterprise networks). Its password is never printed.",
        repr=False,
    )
    http_trust_env: bool = _setting(
        False, "Without `http_proxy`: use the environment's `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` for provider calls."
    )
    ca_bundle: str = _setting(
        "",
        "PEM file (or folder of `c_rehash`ed certificates) trusted for the provider instead of the default bundle "
        "(also for an `https://` proxy).",
    )
    tls_client_cert: str = _setting(
        "", "PEM client certificate (chain) presented to the provider, for mutual-TLS gateways; needs tls_client_key."
    )
    tls_client_key: str = _setting("", "PEM private key (unencrypted) of `tls_client_cert`.")
    discovery_ttl: int = _setting(3600, "Seconds the discovery document and JWKS are cached.")
    transaction_ttl: int = _setting(600, "Seconds a started sign-in may take before its `state` expires.")
    session_idle_timeout: int = _setting(86400, "Seconds of inactivity after which a session ends.")
    session_absolute_timeout: int = _setting(604800, "Seconds after sign-in at which a session ends regardless.")
    session_type: Any = _setting(  # noqa: RUF009 - a name, or a back-end class or object (stores.registry)
        "file", "Session store: `file`, `ext:redis`, `ext:memcached`, `cookie` or `environ` (see Session stores), "
        "or a back end of your own: `module:Class` (a class or object in Python; see Writing your own session "
        "back end)."
    )
    session_url: str = _setting(  # not in repr: it may hold the Redis password
        "", "`ext:redis`: `redis://host:port/db`; `ext:memcached`: `host:port` servers separated by `;`.", repr=False
    )
    session_environ_key: str = _setting(
        "beaker.session", "`environ`: the environ key of the outer Beaker `SessionMiddleware`'s session."
    )
    session_store_timeout: float = _setting(2.0, "Timeout in seconds of each call to a Redis/memcached store.")
    session_data_dir: str = _setting(
        "", "Directory of the `file` store (default: a private per-application folder in the temp dir). Must be "
        "this user's, without group/other access (created 0700), under folders other users cannot write to."
    )
    cookie_name: str = _setting(
        "",
        "Name of the session cookie (default: `__Host-sso_session` when base_url is https and no cookie_domain "
        "is set, so a sibling subdomain cannot plant it; `__Secure-sso_session` if base_url also has a path; "
        "else `sso_session`). Its Path is base_url's path.",
    )
    cookie_domain: str = _setting("", "Domain attribute of the session cookie (default: host-only).")
    allow_insecure_http: bool = _setting(False, "Allow an `http://` issuer and base_url, on loopback hosts only.")
    serve_failure_page: bool = _setting(
        True, "Serve the built-in failure page; if false, `failure_path` passes through to the app."
    )
    keep_access_token: bool = _setting(
        False,
        "Keep the access token (and the refresh token, with `offline_access` in `scope`) in the session and "
        "hand it to the app as `environ['sso.access_token']`; sessions grow by the tokens' size.",
    )
    refresh_margin: int = _setting(
        60, "Seconds before the access token expires at which it is refreshed (needs a refresh token)."
    )
    refresh_failure: str = _setting(
        "sign_out",
        "When the provider refuses a refresh (revoked, `invalid_grant`): `sign_out`, or `keep_session` "
        "(the user stays signed in without a token; the app sees `environ['sso.token_error']`).",
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("tuple[str, ...]", tuple[str, ...]) and isinstance(value, (list, str)):
                object.__setattr__(self, f.name, _split_list(value) if isinstance(value, str) else tuple(value))
        try:  # text, lines, mappings or AccessRule objects: all checked (and merged by path) the same way
            object.__setattr__(self, "access_rules", parse_rules(self.access_rules))
        except (ValueError, TypeError) as exc:
            raise ConfigError("access_rules", str(exc)) from None
        object.__setattr__(self, "authorize_params", authz.parse_fixed(self.authorize_params))
        object.__setattr__(self, "authorize_params_hook", authz.resolve_hook(self.authorize_params_hook))
        _validate(self)
        # Compared with origin_of(target) later, so keep them in that canonical form.
        origins = tuple(dict.fromkeys(origin_of(origin) or origin for origin in self.allowed_redirect_origins))
        object.__setattr__(self, "allowed_redirect_origins", origins)

    # -- derived values -------------------------------------------------

    @property
    def issuer_url(self) -> str:
        """The issuer the provider must announce (from ``issuer`` or ``domain``)."""
        return self.issuer or f"https://{self.domain}/"

    @property
    def discovery_url(self) -> str:
        return self.issuer_url.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def base_urls(self) -> tuple[str, ...]:
        """The origins (with the shared path prefix) listed in ``base_url``; the first is the default."""
        return tuple(self.base_url.split())

    @property
    def primary_url(self) -> str:
        """The first ``base_url``: for requests whose Host is not listed, and where no request is at hand."""
        return self.base_urls[0]

    def base_url_for(self, environ: Mapping[str, Any]) -> str:
        """The listed ``base_url`` whose origin is the request's (``wsgi.url_scheme`` + ``Host``), else the first.

        The Host header is the client's to choose: it is only compared with the list, never
        used to build a URL.  ``X-Forwarded-*`` headers count only where a proxy-fix
        middleware in front already rewrote the environ from them (this one never reads them).
        """
        urls = self.base_urls
        if len(urls) > 1:
            origin = request_origin(environ)
            for url in urls:
                if origin_of(url) == origin:
                    return url
        return urls[0]

    @property
    def redirect_uri(self) -> str:
        """The default (first) redirect URI; :meth:`redirect_uri_for` picks the request's."""
        return self.primary_url + self.callback_path

    @property
    def redirect_uris(self) -> tuple[str, ...]:
        """Every redirect URI to register at the provider (one per listed origin)."""
        return tuple(url + self.callback_path for url in self.base_urls)

    def redirect_uri_for(self, environ: Mapping[str, Any]) -> str:
        return self.base_url_for(environ) + self.callback_path

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of the first ``base_url``."""
        return origin_of(self.primary_url) or ""

    @property
    def origins(self) -> tuple[str, ...]:
        """The origins of every listed ``base_url``."""
        return tuple(origin_of(url) or "" for url in self.base_urls)

    @property
    def secure_cookies(self) -> bool:
        return self.primary_url.startswith("https://")  # all listed origins agree (checked at build)

    @property
    def cookie_path(self) -> str:
        """The session cookie's ``Path``: ``base_url``'s path, so apps under other paths of the origin keep theirs."""
        return urlsplit(self.primary_url).path.rstrip("/") or "/"

    @property
    def session_cookie_name(self) -> str:
        """``cookie_name``, or the default: ``__Host-`` prefixed whenever the browser can enforce it.

        ``__Host-`` requires ``Path=/`` and no ``Domain``; under a path prefix the
        default is ``__Secure-sso_session`` (Secure enforced, the path kept).
        """
        if self.cookie_name:
            return self.cookie_name
        if not self.secure_cookies or self.cookie_domain:
            return "sso_session"
        return "__Host-sso_session" if self.cookie_path == "/" else "__Secure-sso_session"

    @property
    def is_auth0(self) -> bool:
        """True when the provider is an Auth0 tenant (legacy ``/v2/logout`` applies)."""
        host = urlsplit(self.issuer_url).hostname or ""
        return bool(self.domain) or host.endswith(".auth0.com")

    @property
    def data_dir(self) -> str:
        """Where the ``file`` store keeps sessions (private default per application)."""
        if self.session_data_dir:
            return self.session_data_dir
        digest = hashlib.sha256(f"{self.issuer_url}|{self.client_id}|{self.primary_url}".encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"sso_middleware-{os.getuid()}", digest)

    # -- other ways to build one -----------------------------------------

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SSOConfig:
        """Build from string values (PasteDeploy ``[filter:sso]``), converting by field type."""
        hints = _field_types()
        return cls(**{name: _convert(name, hints[name], value) for name, value in check_known(settings).items()})

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, prefix: str = "SSO_") -> SSOConfig:
        """Build from ``SSO_<NAME>`` environment variables; unknown ``SSO_*`` names are errors."""
        source = os.environ if environ is None else environ
        settings = {
            key[len(prefix):].lower(): value
            for key, value in source.items()
            if key.startswith(prefix)
        }
        return cls.from_settings(settings)

    def replace(self, **changes: Any) -> SSOConfig:
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **check_known(changes))


def origin_of(url: str) -> Optional[str]:
    """``scheme://host[:port]`` of an absolute http(s) URL (lower-cased, default port dropped), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def request_origin(environ: Mapping[str, Any]) -> Optional[str]:
    """The canonical origin a request was sent to (``wsgi.url_scheme`` and ``HTTP_HOST``, else ``SERVER_NAME``).

    For comparison with configured origins only: it is whatever the client sent.
    """
    scheme = str(environ.get("wsgi.url_scheme") or "http")
    host = str(environ.get("HTTP_HOST") or "")
    if not host:
        host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}".rstrip(":")
    if not host or not all("\x21" <= char <= "\x7e" for char in host) or any(c in host for c in "/?#@\\"):
        return None
    return origin_of(f"{scheme}://{host}")


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint_url(name: str, url: str, allow_insecure_http: bool) -> None:
    """Refuse a URL that is not https (or http on loopback when allowed); used for provider URLs too."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(name, f"{url!r} is not a valid URL") from exc
    if not parts.hostname or parts.scheme not in ("http", "https"):
        raise ConfigError(name, f"{url!r} must be an absolute https:// URL")
    if parts.scheme == "http":
        if not allow_insecure_http:
            raise ConfigError(name, f"{url!r} uses http://; use https:// (allow_insecure_http is for loopback tests)")
        if not is_loopback_host(parts.hostname):
            raise ConfigError(name, f"{url!r}: http:// is allowed only on a loopback host")
    if parts.username or parts.password:
        raise ConfigError(name, "must not contain credentials")
    if parts.fragment or "#" in url or not all("\x21" <= char <= "\x7e" for char in url):
        raise ConfigError(name, f"{url!r} must not contain a fragment, spaces or control characters")


def check_known(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    """``settings``, after refusing any name that is not a setting (one error naming it)."""
    known = _field_types()
    for name in settings:
        if name not in known:
            raise ConfigError(name, "unknown setting")
    return settings


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(SSOConfig)


def _split_list(text: str) -> tuple[str, ...]:
    """A list setting given as one string: items separated by spaces, commas or new lines."""
    return tuple(item for item in re.split(r"[\s,]+", text.strip()) if item)


def _convert(name: str, kind: Any, value: Any) -> Any:
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
        return _split_list(text)
    return text  # access_rules, authorize_params, authorize_params_hook: parsed by SSOConfig itself


def _validate(config: SSOConfig) -> None:
    for name, kind in _field_types().items():
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
    for name in ("sso_path", "login_path", "callback_path", "logout_path", "failure_path", "backchannel_logout_path"):
        value = getattr(config, name)
        if not value and name == "backchannel_logout_path":
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
    _positive(config, "max_request_body", maximum=MAX_REQUEST_BODY_LIMIT)
    if config.max_request_body < 1024:
        raise ConfigError("max_request_body", "must be at least 1024 bytes (a logout token is about 1 KB)")

    authz.check_forward(config.forward_params)
    authz.check_organization_setting(config.organization)
    if not _CLAIM_RE.match(config.remote_user_claim):
        raise ConfigError("remote_user_claim", "must be a claim name")
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
    backend.validate(config)  # the back end's own settings (session_url, session_environ_key...)
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
    elif kind in (tuple[AccessRule, ...], tuple[tuple[str, str], ...], Optional[authz.Hook], Any):
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
