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
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from .._policy import authorize_params as authz
from .._policy import sign_in_hook
from .._policy.rule_parsing import parse_rules
from .._policy.rules import AccessRule
from ..errors import ConfigError
from .derived import DerivedValues
from .urls import origin_of
from .validation import check_known, convert, field_types, split_list, validate


def _setting(default: Any, help: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass(frozen=True)
class SSOConfig(DerivedValues):
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
    session_endpoint_path: str = _setting(
        "", "Session endpoint for the page's own scripts, e.g. `/auth/session` (empty: off): `GET` tells whether "
        "someone is signed in, with `sub`, claims and expiries (never a token); a same-origin `POST` with "
        "`X-SSO-CSRF: 1` refreshes the access token and extends the idle timeout (see Session endpoint)."
    )
    backchannel_logout_path: str = _setting(
        "/auth/backchannel-logout", "OpenID Connect Back-Channel Logout endpoint (POST); empty to disable."
    )
    frontchannel_logout_path: str = _setting(
        "", "OpenID Connect Front-Channel Logout endpoint (GET, framed by the provider's logout page), e.g. "
        "`/auth/frontchannel-logout`; empty (the default) disables it. With `iss` and `sid` it ends that provider "
        "session's sessions in the store; without them, the browser's own (see Front-channel logout)."
    )
    max_request_body: int = _setting(
        65536, "Largest request body (bytes) an auth route reads (back-channel logout, the `form_post` callback); "
        "a larger or unsized (chunked) body gets 413 unread. Other auth routes never read a body."
    )
    # -- form data kept across a sign-in (see Form data kept across re-login) --
    preserve_post: tuple[str, ...] = _setting(
        (), "Path prefixes (canonicalized like protected_paths; under protected_paths or access_rules) where a "
        "same-origin form POST (`application/x-www-form-urlencoded`) without a valid session is kept (sealed and "
        "encrypted, server-side) across the sign-in and re-posted once afterwards. Empty: off (the POST gets 401)."
    )
    preserve_post_max_body: int = _setting(
        16384, "Largest form body (bytes, a declared Content-Length) preserve_post keeps; at most max_request_body. "
        "Larger ones get a 413 page saying the form could not be kept."
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
    # -- bearer tokens on API paths (see Bearer tokens on API paths) --
    bearer_paths: tuple[str, ...] = _setting(
        (), "Path prefixes of an API that accepts `Authorization: Bearer <access token>` (validated locally: no "
        "session is read or written); canonicalized like protected_paths. Needs bearer_audience."
    )
    bearer_audience: str = _setting(
        "", "The API's identifier (Auth0: the API Identifier, the `audience` clients ask for): an access token's "
        "`aud` must contain it. Required with bearer_paths; never the client_id (ID tokens have that audience) nor "
        "the userinfo audience `<issuer>/userinfo`."
    )
    bearer_only: bool = _setting(
        False, "On bearer_paths, accept only bearer tokens; otherwise a session cookie is honoured when a request "
        "sends no `Authorization` header."
    )
    bearer_token_type: str = _setting(
        "at+jwt", "The JWT `typ` an access token must have: `at+jwt` (RFC 9068, also `application/at+jwt`), or `JWT` "
        "(also accepts `JWT` and no `typ`: Auth0's default token profile)."
    )
    bearer_algorithms: tuple[str, ...] = _setting(
        ("RS256", "PS256", "ES256"),
        "Accepted access-token signature algorithms, verified with the provider's JWKS; asymmetric only "
        "(never `none` or `HS*`).",
    )
    bearer_rules: tuple[AccessRule, ...] = _setting(
        (), "Scopes and claims required per path under bearer_paths, access_rules' syntax: `/api/admin scope "
        "read:admin` (every listed scope), `/api/x claim permissions includes write:x`; else 403 "
        "insufficient_scope. They hold for session users on those paths too (who have no scopes)."
    )
    bearer_introspection: bool = _setting(
        False, "Accept opaque (non-JWT) access tokens by asking the provider's introspection endpoint (RFC 7662, "
        "with the client's credentials); off: they get 401 invalid_token."
    )
    bearer_introspection_ttl: int = _setting(
        60, "Seconds an introspection answer is cached (keyed by the token's hash, never past its `exp`; 0: ask "
        "every time)."
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
    on_sign_in: Optional[sign_in_hook.SignInHook] = _setting(  # noqa: RUF009 - a field(), like the others
        None,
        "Python callable `hook(claims, tokens, environ)` run once per successful sign-in (`module:function` in "
        "ini/env): returns the claims to keep (`sub` unchanged), or raises `SignInDenied(reason)` (403, no "
        "session); any other exception is the `sign_in_hook_failed` page (see Sign-in hook).",
    )
    userinfo_claims: tuple[str, ...] = _setting(
        (), "Allow-list of the claims a session keeps (and `sso.userinfo` shows), applied after on_sign_in; `sub` "
        "is always kept; empty keeps all. Keeps cookie sessions small."
    )
    silent_sso: bool = _setting(True, "`/auth/sso` first tries `prompt=none` (no login screen).")
    silent_sso_fallback: str = _setting(
        "interactive",
        "When silent SSO finds no provider session: `interactive` (one retry with a login screen) "
        "or `anonymous` (go to the target without a user).",
    )
    provider_logout: bool = _setting(True, "Sign-out also ends the provider session (RP-initiated logout).")
    revoke_tokens_on_logout: str = _setting(
        "auto", "Sign-out revokes the session's refresh token, then its access token, at the provider's "
        "`revocation_endpoint` (RFC 7009) before the provider logout: `auto` (when discovery advertises one and "
        "keep_access_token keeps tokens), `on` or `off`. A failed revocation never blocks sign-out."
    )
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
        "file", "Session store: `file`, `ext:redis`, `ext:memcached`, `postgresql`, `cookie` or `environ` (see Session "
        "stores), "
        "or a back end of your own: `module:Class` (a class or object in Python; see Writing your own session "
        "back end)."
    )
    session_url: str = _setting(  # not in repr: it may hold the Redis password
        "",
        "`ext:redis`: `redis://host:port/db` (`rediss://` for TLS, `unix:///path?db=N`), "
        "`redis+sentinel://host:port[,host:port]/service_name[/db]` or `redis+cluster://host:port[,host:port]` "
        "(`rediss+sentinel://`, `rediss+cluster://` for TLS; see Session stores); "
        "`ext:memcached`: `host:port` servers separated by `;`; "
        "`postgresql`: `postgresql://user:password@host:port/dbname` (any libpq URL).",
        repr=False,
    )
    session_environ_key: str = _setting(
        "beaker.session", "`environ`: the environ key of the outer Beaker `SessionMiddleware`'s session."
    )
    session_store_timeout: float = _setting(
        2.0, "Timeout in seconds of each call to a Redis/memcached/PostgreSQL store."
    )
    session_pool_size: int = _setting(
        10, "`postgresql`: most connections each process keeps to the server; at least the worker's threads, so "
        "that no request waits for a connection."
    )
    session_tls_ca_file: str = _setting(
        "", "PEM file (or folder of `c_rehash`ed certificates) of the CAs trusted for a TLS `session_url` "
        "(`rediss://`...) instead of the default bundle."
    )
    session_tls_cert_file: str = _setting(
        "", "PEM client certificate presented to a TLS `session_url` (Redis `tls-auth-clients`); needs "
        "session_tls_key_file."
    )
    session_tls_key_file: str = _setting("", "PEM private key (unencrypted) of `session_tls_cert_file`.")
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
    failure_page_template: str = _setting(
        "", "HTML file branding the failure and 403 pages: `{title}`, `{message}` and `{code}` required, `{lang}` "
        "and `{home}` optional, every value HTML-escaped; read and checked at start-up (see Failure pages)."
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
    metrics_path: str = _setting(
        "", "Path answering Prometheus metrics (e.g. `/auth/metrics`; needs the `metrics` extra), to "
        "`metrics_allowed_networks` (and `metrics_token`); never passed to the app (see Metrics and health)."
    )
    metrics_allowed_networks: tuple[str, ...] = _setting(
        ("127.0.0.0/8", "::1/128"),
        "Client networks (or addresses) that may read `metrics_path`, checked against `REMOTE_ADDR`; behind a "
        "proxy on the same host every client is loopback: set `metrics_token` then.",
    )
    metrics_token: str = _setting(
        "", "Secret (32+ characters) a scraper must send as `Authorization: Bearer` to read `metrics_path`.",
        repr=False,
    )
    metrics_registry: Any = _setting(  # noqa: RUF009 - a CollectorRegistry, or module:attr naming one
        None, "Your own prometheus_client `CollectorRegistry` (`module:attr` in ini/env) to register the "
        "metrics in, instead of (or besides) `metrics_path`."
    )
    health_path: str = _setting(
        "", "Path answering `200 ok` when the session store and the provider's discovery answer, else `503 "
        "unavailable` (e.g. `/auth/health`); never passed to the app."
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("tuple[str, ...]", tuple[str, ...]) and isinstance(value, (list, str)):
                object.__setattr__(self, f.name, split_list(value) if isinstance(value, str) else tuple(value))
        for name, bearer in (("access_rules", False), ("bearer_rules", True)):
            try:  # text, lines, mappings or AccessRule objects: all checked (and merged by path) the same way
                object.__setattr__(self, name, parse_rules(getattr(self, name), bearer=bearer))
            except (ValueError, TypeError) as exc:
                raise ConfigError(name, str(exc)) from None
        object.__setattr__(self, "authorize_params", authz.parse_fixed(self.authorize_params))
        object.__setattr__(self, "authorize_params_hook", authz.resolve_hook(self.authorize_params_hook))
        object.__setattr__(self, "on_sign_in", sign_in_hook.resolve(self.on_sign_in))
        validate(self)
        # Compared with origin_of(target) later, so keep them in that canonical form.
        origins = tuple(dict.fromkeys(origin_of(origin) or origin for origin in self.allowed_redirect_origins))
        object.__setattr__(self, "allowed_redirect_origins", origins)

    # -- other ways to build one -----------------------------------------

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SSOConfig:
        """Build from string values (PasteDeploy ``[filter:sso]``), converting by field type."""
        hints = field_types()
        return cls(**{name: convert(name, hints[name], value) for name, value in check_known(settings).items()})

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
