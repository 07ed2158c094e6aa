"""The configuration doctor: ``python -m sso_middleware check`` (or ``sso-middleware check``).

Use it when deploying, or when sign-in does not work: it loads the configuration
exactly as the middleware would get it and checks it against the real provider
and session store before the first user does, printing one line per finding::

    [ OK ] configuration: valid (environment SSO_*); issuer https://tenant.eu.auth0.com/, ...
    [FAIL] discovery: issuer mismatch: the provider announces 'https://t.auth0.com/' but ...

Where the configuration comes from (exactly one source):

* ``--ini FILE [--section filter:NAME]``: a PasteDeploy ini file, read by PasteDeploy
  itself (``%(here)s``, ``[DEFAULT]``, ``get NAME = VAR`` and ``set NAME = VALUE``);
  the section is the one named, else the first whose ``use`` is
  ``egg:sso_middleware#main``.  ``--set NAME=VALUE`` sets a global variable, like
  ``pserve app.ini NAME=VALUE`` does.
* ``--settings FILE``: ``name = value`` lines (``#`` comments) or a ``.json`` object;
  ``--set NAME=VALUE`` overrides a setting.
* ``--env`` (the default): the ``SSO_*`` environment variables; ``--set NAME=VALUE``
  overrides a setting.

Every check is a small generator function in :data:`CHECKS` yielding
``(status, message)`` findings; add one by appending a :class:`Check`.  Checks that
need the provider's discovery document are reported as skipped, in one line, when
discovery failed.  Network failures are findings, never tracebacks, and every
request is bounded by ``http_timeout`` (``session_store_timeout`` for the store).

Exit status: 0 when no check failed (warnings allowed), 1 when one did, 2 for usage
errors (bad arguments, a file or section that does not exist).

Security caveats: the doctor prints no secrets -- neither ``client_secret`` nor
``session_secret`` nor the password of ``session_url`` (``redis://:PW@host`` or
``?password=PW``) -- and as a last line of defence every printed text goes through
:meth:`Redactor.show`, which masks the configured secret values and any run of 8 or more
characters of one (error messages of libraries quote pieces of values), and prints
non-printable characters escaped (``\\x1b``): discovery values, key ids and other
provider-supplied strings cannot drive the terminal.  PasteDeploy's interpolation
errors (a ``%`` in a value) are reported by their type and option name only.  It does
send the client credentials to the provider's token endpoint (with a made-up
authorization code, so nothing is issued) to find out whether they are accepted:
run it against the provider you configured.  The file store probe writes and
removes one temporary file (and any folder it had to create); the memcached probe
writes and deletes one short-lived key.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import email.utils
import json
import os
import re
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, TextIO
from urllib.parse import urlsplit

import requests
from jwt import PyJWK
from jwt.exceptions import PyJWTError
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from . import client_auth
from .config import UNSIGNED, SSOConfig, is_loopback_host
from .egress import check_client_certificate, count_ca_certificates
from .errors import ConfigError, ProviderError
from .http import ProviderHTTP
from .id_token import accepted_algorithms
from .jwks import key_fits
from .oidc import OIDCClient, ProviderMetadata, token_request
from .redaction import Redactor, escape_text, redact_url, url_passwords
from .session import prepare_data_dir
from .stores import JsonMemcachedNamespace, JsonRedisNamespace

Status = Literal["OK", "WARN", "FAIL", "INFO", "SKIP"]
OK: Status = "OK"
WARN: Status = "WARN"
FAIL: Status = "FAIL"
INFO: Status = "INFO"
SKIP: Status = "SKIP"

#: What a check yields: a status and a one-line message.
Finding = tuple[Status, str]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

#: ``use`` values that mark the middleware's section in an ini file.
USE_VALUES = frozenset({"egg:sso_middleware#main", "egg:sso_middleware", "egg:sso-middleware#main",
                        "egg:sso-middleware"})
_MARKERS: dict[Status, str] = {OK: "[ OK ]", WARN: "[WARN]", FAIL: "[FAIL]", INFO: "[INFO]", SKIP: "[SKIP]"}
_SECRET_SETTINGS = ("client_secret", "session_secret")


class UsageError(Exception):
    """Bad arguments, or a file or section that does not exist: exit status 2."""


class SourceError(Exception):
    """The configuration file exists but cannot be read as settings: a failed check."""


@dataclass(frozen=True)
class Result:
    """One printed line."""

    status: Status
    check: str
    message: str

    def line(self) -> str:
        return f"{_MARKERS[self.status]} {self.check}: {self.message}"


# ---------------------------------------------------------------------------------------
# where the configuration comes from


@dataclass(frozen=True)
class Source:
    """A configuration source: how to build the config, and which values must never be printed."""

    description: str
    load: Callable[[], SSOConfig]
    secrets: tuple[str, ...] = field(default=(), repr=False)


def source_from_args(args: argparse.Namespace) -> Source:
    """The source the arguments name (``UsageError`` for a missing file or section)."""
    overrides = _parse_overrides(args.set or [])
    if args.section is not None and args.ini is None:
        raise UsageError("--section needs --ini")
    if args.ini is not None:
        return ini_source(args.ini, args.section, overrides)
    if args.settings is not None:
        return settings_source(args.settings, overrides)
    return env_source(os.environ, overrides)


def _parse_overrides(items: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"--set expects NAME=VALUE, not {item.split('=')[0]!r}...")
        overrides[name.strip()] = value
    return overrides


def env_source(environ: Mapping[str, str], overrides: Mapping[str, str]) -> Source:
    """``SSOConfig.from_env()``: the ``SSO_*`` variables (``overrides`` are setting names)."""
    merged = dict(environ)
    merged.update({f"SSO_{name.upper()}": value for name, value in overrides.items()})
    values = {name[4:].lower(): value for name, value in merged.items() if name.startswith("SSO_")}
    return Source("environment SSO_*", lambda: SSOConfig.from_env(merged), _secret_values(values))


def settings_source(path: str, overrides: Mapping[str, str]) -> Source:
    """A keyword file (``name = value`` lines) or a ``.json`` object of settings."""
    if not os.path.isfile(path):
        raise UsageError(f"settings file not found: {path}")
    try:
        settings = read_settings_file(path)
    except SourceError as exc:
        error = exc

        def fail() -> SSOConfig:
            raise error

        return Source(f"settings file {path}", fail)
    settings.update(overrides)
    return Source(f"settings file {path}", lambda: SSOConfig.from_settings(settings), _secret_values(settings))


def read_settings_file(path: str) -> dict[str, Any]:
    """The settings of a ``.json`` object or of ``name = value`` lines (``SourceError`` otherwise)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    if path.lower().endswith(".json"):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise SourceError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise SourceError(f"{path} must hold a JSON object of settings")
        return dict(document)
    settings: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        name = name.strip()
        if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SourceError(f"{path} line {number}: expected 'name = value'")
        if name in settings:
            raise SourceError(f"{path} line {number}: {name} is set twice")
        settings[name] = value.strip()
    return settings


def ini_source(path: str, section: Optional[str], global_overrides: Mapping[str, str]) -> Source:
    """A PasteDeploy ini file's middleware section, loaded by PasteDeploy (imported lazily)."""
    if not os.path.isfile(path):
        raise UsageError(f"ini file not found: {path}")
    try:
        from paste.deploy.loadwsgi import FILTER, loadcontext
    except ImportError:
        raise UsageError("reading an ini file needs PasteDeploy: pip install pastedeploy") from None
    path = os.path.abspath(path)
    raw = configparser.RawConfigParser(strict=False, interpolation=None)
    raw.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        raw.read(path, encoding="utf-8")
    except configparser.ParsingError as exc:  # its message quotes the lines, which may hold a secret
        # MissingSectionHeaderError (a line before any section) is one too, with a lineno but no errors list.
        lines = ", ".join(str(number) for number, _ in getattr(exc, "errors", ())) or str(getattr(exc, "lineno", "?"))
        raise UsageError(f"{path} is not an ini file: {type(exc).__name__} at line {lines}") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not an ini file: {_one_line(str(exc))}") from None
    section = _find_section(raw, path, section)
    name = section.split(":", 1)[1].strip()
    candidates: list[str] = []
    for key, value in _raw_options(raw):
        setting = key.split(" ", 1)[-1].strip()
        if key.startswith("get "):
            continue
        if setting in _SECRET_SETTINGS:
            candidates.append(value)
        elif setting == "session_url":
            candidates += url_passwords(value)

    def load() -> SSOConfig:
        try:
            context = loadcontext(FILTER, f"config:{path}", name=name, global_conf=dict(global_overrides) or None)
            local_conf = dict(context.local_conf)
        except KeyError as exc:
            raise SourceError(f"[{section}] reads the global variable {exc} (get ...), which is not set "
                              "in [DEFAULT] nor given with --set") from None
        except configparser.InterpolationError as exc:
            # Its message quotes the raw value (a secret, often): the error type and option only.
            raise SourceError(f"PasteDeploy cannot load [{section}]: {type(exc).__name__} in option "
                              f"{exc.option!r}: a literal '%' in a value must be written '%%'") from None
        except (LookupError, ImportError, ValueError, configparser.Error) as exc:
            raise SourceError(f"PasteDeploy cannot load [{section}]: {_one_line(str(exc))}") from None
        return SSOConfig.from_settings(local_conf)

    return Source(f"ini {path} [{section}]", load, tuple(candidates) + _secret_values(global_overrides))


def _raw_options(raw: configparser.RawConfigParser) -> Iterator[tuple[str, str]]:
    yield from raw.defaults().items()
    for section in raw.sections():
        for key in raw.options(section):
            yield key, raw.get(section, key)


def _find_section(raw: configparser.RawConfigParser, path: str, wanted: Optional[str]) -> str:
    if wanted is not None:
        section = wanted if ":" in wanted else f"filter:{wanted}"
        if not raw.has_section(section):
            raise UsageError(f"{path} has no section [{section}]")
        if not section.startswith("filter:"):
            raise UsageError(f"[{section}] is not a [filter:NAME] section (the middleware is a PasteDeploy filter)")
        return section
    for section in raw.sections():
        if section.startswith("filter:") and raw.get(section, "use", fallback="").strip() in USE_VALUES:
            return section
    raise UsageError(f"{path} has no [filter:NAME] section with use = egg:sso_middleware#main; name one with --section")


def _secret_values(settings: Mapping[str, Any]) -> tuple[str, ...]:
    values = [settings.get(name) for name in _SECRET_SETTINGS]
    for name in ("session_url", "http_proxy"):
        url = settings.get(name)
        if isinstance(url, str):
            values += url_passwords(url)
    return tuple(value for value in values if isinstance(value, str) and value)


# ---------------------------------------------------------------------------------------
# the checks


@dataclass
class Answer:
    """What the transport saw of the last HTTP answer (status, headers, when)."""

    url: str
    status: int
    headers: Mapping[str, str]
    sent_at: float
    received_at: float


class RecordingAdapter(HTTPAdapter):
    """A ``requests`` transport that remembers the last answer's status and headers.

    :class:`~.http.ProviderHTTP` returns only the parsed body; mounted on its session,
    this adds what the clock check (``Date``) and the reachability check (any status)
    need, from the very same bounded request.
    """

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.last: Optional[Answer] = None

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        sent_at = time.time()
        response = super().send(request, *args, **kwargs)
        self.last = Answer(str(request.url), response.status_code, CaseInsensitiveDict(response.headers),
                           sent_at, time.time())
        return response


@dataclass
class Context:
    """Shared by the checks: the configuration, the HTTP client, and what discovery found."""

    config: SSOConfig
    http: ProviderHTTP
    transport: RecordingAdapter
    document: dict[str, Any] = field(default_factory=dict)
    metadata: Optional[ProviderMetadata] = None
    discovery_answer: Optional[Answer] = None

    @classmethod
    def for_config(cls, config: SSOConfig) -> Context:
        http = ProviderHTTP.for_config(config)
        transport = RecordingAdapter()
        http.session.mount("http://", transport)
        http.session.mount("https://", transport)
        return cls(config, http, transport)

    def close(self) -> None:
        self.http.session.close()

    def get(self, url: str, what: str) -> tuple[Optional[Answer], Any, Optional[ProviderError]]:
        """GET through the middleware's bounded client: the answer seen (if any), the JSON, the error."""
        self.transport.last = None
        try:
            _, document = self.http.get_json(url, what)
        except ProviderError as exc:
            return self.transport.last, None, exc
        return self.transport.last, document, None


@dataclass(frozen=True)
class Check:
    """One entry of the checklist."""

    name: str
    run: Callable[[Context], Iterator[Finding]]
    needs_discovery: bool = False


def check_discovery(ctx: Context) -> Iterator[Finding]:
    """The discovery document: fetched, the same issuer, acceptable endpoints (``ProviderMetadata.parse``)."""
    config = ctx.config
    url = config.discovery_url
    started = time.monotonic()
    answer, document, error = ctx.get(url, "discovery")
    elapsed = time.monotonic() - started
    if error is not None:
        if answer is not None and error.code != "provider_timeout":
            yield FAIL, f"{url} answered HTTP {answer.status} without a JSON document ({error.detail})"
        else:
            yield FAIL, f"cannot fetch {url}: {describe_error(error)}"
        return
    assert answer is not None
    ctx.discovery_answer = answer
    if answer.status != 200:
        yield FAIL, f"{url} answered HTTP {answer.status}, not 200"
        return
    if not isinstance(document, dict):
        yield FAIL, f"{url} did not answer a JSON object"
        return
    announced = document.get("issuer")
    if announced != config.issuer_url:
        message = (f"issuer mismatch: the provider announces {announced!r} but the configured issuer is "
                   f"{config.issuer_url!r}; they must be equal character for character")
        if isinstance(announced, str) and announced.rstrip("/") == config.issuer_url.rstrip("/"):
            message += (f" -- only a trailing '/' differs: set issuer = {announced} (Auth0 issuers end with '/'; "
                        "domain = TENANT.auth0.com gets it right)")
        yield FAIL, message
        return
    try:
        ctx.metadata = ProviderMetadata.parse(document, config)
    except ProviderError as exc:
        yield FAIL, exc.detail
        return
    ctx.document = document
    https_only = urlsplit(config.issuer_url).scheme == "https"
    yield OK, (f"{url} answered in {elapsed:.2f} s (http_timeout {config.http_timeout:g} s); issuer matches; "
               f"endpoints are {'https' if https_only else 'https or loopback http (allow_insecure_http)'}")


def check_clock(ctx: Context) -> Iterator[Finding]:
    """This host's clock against the provider's (the discovery answer's ``Date`` header)."""
    answer = ctx.discovery_answer
    skew = ctx.config.clock_skew
    date = answer.headers.get("Date") if answer is not None else None
    if answer is None or not date:
        yield WARN, "the discovery answer has no Date header: cannot compare the clocks"
        return
    try:
        stamped = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError):
        yield WARN, f"cannot read the discovery answer's Date header {date[:40]!r}"
        return
    # The provider stamped Date, truncated to the second, between our send and our receive:
    # its clock minus ours lies in (low, high).  Judge by the smallest offset consistent with that.
    low, high = stamped - answer.received_at, stamped + 1 - answer.sent_at
    least = 0.0 if low <= 0 <= high else min(abs(low), abs(high))
    estimate = (low + high) / 2
    side = "ahead of" if estimate > 0 else "behind"
    if least == 0:
        figure = f"the provider's clock agrees with this host's to within a second (clock_skew = {skew} s)"
    else:
        figure = f"the provider's clock is about {abs(estimate):.0f} s {side} this host's (clock_skew = {skew} s)"
    if least > skew:
        yield FAIL, (f"{figure}: ID tokens would be refused as expired or not yet valid; "
                     "synchronise this host's clock (NTP)")
    elif least > skew / 2:
        yield WARN, f"{figure}: more than half the allowed leeway; synchronise this host's clock (NTP)"
    else:
        yield OK, figure


def check_signing_keys(ctx: Context) -> Iterator[Finding]:
    """The JWKS has a key for an algorithm both the provider signs with and ``id_token_algorithms`` allows.

    The algorithms are the middleware's own (:func:`.id_token.accepted_algorithms`):
    none in common fails every sign-in with ``signing_algorithm_mismatch``.
    """
    config = ctx.config
    assert ctx.metadata is not None
    allowed = list(config.id_token_algorithms)
    advertised = ctx.metadata.id_token_signing_algs
    algorithms = list(accepted_algorithms(config.id_token_algorithms, advertised))
    if advertised is None:
        yield WARN, ("discovery does not list id_token_signing_alg_values_supported; assuming id_token_algorithms"
                     + (" without 'none' (unsigned ID tokens need the provider to advertise it)"
                        if UNSIGNED in allowed else ""))
        if not algorithms:
            yield FAIL, (f"id_token_algorithms allows only {_names(allowed)}, which the provider does not "
                         "advertise: no ID token would verify (every sign-in fails with signing_algorithm_mismatch)")
            return
    elif not algorithms:
        yield FAIL, (f"the provider signs ID tokens with {_names(advertised)} but id_token_algorithms allows "
                     f"only {_names(allowed)}: no ID token would verify (every sign-in fails with "
                     "signing_algorithm_mismatch)")
        return
    if UNSIGNED in allowed:
        yield from _unsigned_warnings(config, algorithms)
        algorithms = [alg for alg in algorithms if alg != UNSIGNED]  # what remains needs keys
        if not algorithms:
            yield OK, "only unsigned ID tokens ('none') are in common with the provider: no signing key is needed"
            return
    url = ctx.metadata.jwks_uri
    answer, jwks, error = ctx.get(url, "jwks")
    if error is not None or answer is None:
        yield FAIL, f"cannot fetch the JWKS {url}: {describe_error(error)}"
        return
    if answer.status != 200:
        yield FAIL, f"the JWKS {url} answered HTTP {answer.status}"
        return
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        yield FAIL, f"the JWKS {url} has no 'keys' list"
        return
    usable: dict[str, list[str]] = {}
    for alg in algorithms:
        for key in keys:
            if _key_fits(key, alg):
                usable.setdefault(alg, []).append(str(key.get("kid", "(no kid)")))
    hmac = "HS256" in algorithms
    if usable:
        found = "; ".join(f"{alg} (kid {', '.join(kids)})" for alg, kids in usable.items())
        yield OK, f"{url}: {len(keys)} key(s), usable for {found}"
    elif hmac:
        yield OK, f"{url} has no usable public key, but HS256 ID tokens are verified with the client secret"
    else:
        types = ", ".join(sorted({str(k.get("kty")) + "/" + str(k.get("alg", "any")) for k in keys
                                  if isinstance(k, dict)})) or "none"
        yield FAIL, f"{url} has no signing key usable for {_names(algorithms)} (keys found: {types})"
    if hmac:
        yield INFO, "HS256 is allowed: such ID tokens are checked with the client secret, not the JWKS"


def _unsigned_warnings(config: SSOConfig, algorithms: list[str]) -> Iterator[Finding]:
    """Loud warnings for ``none`` in ``id_token_algorithms`` (unsigned ID tokens, issue 13 item 18)."""
    if UNSIGNED not in algorithms:
        yield WARN, ("id_token_algorithms names 'none' but the provider does not advertise it: no unsigned ID "
                     "token is accepted; remove 'none'")
        return
    yield WARN, ("UNSIGNED ID TOKENS ARE ACCEPTED: id_token_algorithms names 'none' and the provider advertises "
                 "it, so an ID token from the token endpoint needs no signature and is protected by TLS alone "
                 "(Core 3.1.3.7 item 6). Keep it only for a client registered with "
                 "id_token_signed_response_alg=none; refreshed ID tokens and logout tokens must still be signed")
    if algorithms == [UNSIGNED] and config.backchannel_logout_path:
        yield WARN, ("'none' is the only algorithm in common: logout tokens, which must be signed, can never "
                     f"verify, so {config.backchannel_logout_path} refuses them all")


def _key_fits(key: Any, alg: str) -> bool:
    """The middleware's selection rule (:func:`.jwks.key_fits`), and the key loads as it would at a sign-in."""
    if not key_fits(key, alg):
        return False
    try:
        PyJWK(key, algorithm=alg)
    except (PyJWTError, ValueError, TypeError, KeyError):
        return False
    return True


def check_capabilities(ctx: Context) -> Iterator[Finding]:
    """What the provider says it supports, against what the configuration will ask of it."""
    config, document = ctx.config, ctx.document
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "code" in response_types:
        yield OK, "response_type code (authorization code flow) supported"
    else:
        yield FAIL, f"response_types_supported ({_names(response_types)}) lacks 'code': the code flow is not offered"

    pkce = document.get("code_challenge_methods_supported")
    if isinstance(pkce, list) and "S256" in pkce:
        yield OK, "PKCE S256 supported"
    else:
        yield WARN, "code_challenge_methods_supported does not list S256: PKCE is sent anyway but may be ignored"

    yield from _response_mode_findings(config, document.get("response_modes_supported"))

    auth_methods = document.get("token_endpoint_auth_methods_supported")
    method = config.token_endpoint_auth_method
    if auth_methods is None:  # OpenID Connect Discovery 1.0 section 3: the default is client_secret_basic
        supported, listed = ["client_secret_basic"], "absent, which means client_secret_basic only"
    else:
        supported, listed = auth_methods, _names(auth_methods)
    if isinstance(supported, list) and method in supported:
        yield OK, f"token_endpoint_auth_method {method} supported"
    else:
        yield FAIL, (f"token_endpoint_auth_method {method} is not among the provider's "
                     f"token_endpoint_auth_methods_supported ({listed})")

    scopes = document.get("scopes_supported")
    wanted = config.scope.split()
    if isinstance(scopes, list):
        missing = [scope for scope in wanted if scope not in scopes]
        if missing:
            yield WARN, f"scopes {_names(missing)} are not in the provider's scopes_supported ({_names(scopes)})"
        else:
            yield OK, f"scopes {' '.join(wanted)} supported"

    if config.provider_logout:
        if document.get("end_session_endpoint"):
            yield OK, "end_session_endpoint present: sign-out also ends the provider session"
        elif config.is_auth0:
            yield WARN, ("no end_session_endpoint: sign-out uses Auth0's legacy /v2/logout (returnTo must be an "
                         "Allowed Logout URL); enable 'RP-Initiated Logout End Session Endpoint Discovery' in the "
                         "tenant's advanced settings for OpenID Connect logout")
        else:
            yield WARN, "no end_session_endpoint: sign-out will end only the local session (provider_logout)"
    if config.backchannel_logout_path:
        if document.get("backchannel_logout_supported") is True:
            yield INFO, f"back-channel logout supported: register the URI below for {config.backchannel_logout_path}"
        else:
            yield WARN, ("the provider does not advertise backchannel_logout_supported: "
                         f"{config.backchannel_logout_path} will not be called (empty backchannel_logout_path "
                         "disables it)")
    if document.get("authorization_response_iss_parameter_supported") is True:
        yield INFO, "authorization responses carry 'iss' (RFC 9207): the callback requires and checks it"
    else:
        yield INFO, "authorization responses carry no 'iss' (RFC 9207 not advertised); 'iss' is checked when sent"
    if "offline_access" in wanted:
        grants = document.get("grant_types_supported", ["authorization_code", "implicit"])
        if isinstance(grants, list) and "refresh_token" in grants:
            yield OK, "refresh_token grant supported (scope offline_access)"
        else:
            yield WARN, "scope asks for offline_access but grant_types_supported lacks refresh_token"


def _response_mode_findings(config: SSOConfig, modes: Any) -> Iterator[Finding]:
    """``response_mode``: ``form_post`` must be in ``response_modes_supported`` (absent: query and fragment only)."""
    if config.response_mode != "form_post":
        return
    if modes is None:  # OpenID Connect Discovery 1.0 section 3: the default is ["query", "fragment"]
        yield FAIL, ("response_mode form_post: the provider publishes no response_modes_supported, which means "
                     "query and fragment only; set response_mode = query")
    elif isinstance(modes, list) and "form_post" in modes:
        yield OK, ("response_mode form_post supported; transaction cookies are SameSite=None; Secure "
                   "(kept on https and, in Chromium, on http loopback)")
    else:
        yield FAIL, (f"response_mode form_post is not among the provider's response_modes_supported "
                     f"({_names(modes)}); set response_mode = query")


def check_tokens_and_rules(ctx: Context) -> Iterator[Finding]:
    """What keep_access_token and access_rules need from the provider and the session store."""
    config, document = ctx.config, ctx.document
    if config.keep_access_token:
        if "offline_access" not in config.scope.split():
            yield WARN, ("keep_access_token without offline_access in scope: no refresh token, so the access token "
                         "is not refreshed and the app sees sso.token_error=token_expired once it expires")
        elif config.session_type in ("cookie", "environ"):
            yield WARN, (f"session_type {config.session_type}: token refresh is single-flight per process only; "
                         "with several processes and rotating refresh tokens use file, ext:redis or ext:memcached")
        else:
            yield OK, (f"access tokens refreshed {config.refresh_margin} s before expiry, one refresh at a time "
                       f"through a lock in the {config.session_type} store")
    wanted_acr = sorted({value for rule in config.access_rules for value in rule.acr_values})
    if wanted_acr and ctx.metadata is not None:  # (the store-only findings above need no discovery)
        supported = document.get("acr_values_supported")
        unknown = [value for value in wanted_acr if not isinstance(supported, list) or value not in supported]
        if unknown:
            yield WARN, (f"access_rules ask for acr_values {_names(unknown)}, which the provider does not list in "
                         f"acr_values_supported ({_names(supported)}): step-up to them will end in step_up_failed")
        else:
            yield OK, f"access_rules' acr_values {_names(wanted_acr)} are in acr_values_supported"
    if config.access_rules:
        paths = ", ".join(rule.path for rule in config.access_rules)
        yield INFO, f"access_rules guard {paths}"


def check_authorize_params(ctx: Context) -> Iterator[Finding]:
    """What sign-ins add to the authorization request, and what the organization check needs."""
    config = ctx.config
    if config.authorize_params:
        yield INFO, f"authorize_params sent on every sign-in: {_names([name for name, _ in config.authorize_params])}"
    yield INFO, f"forward_params passed through from /auth/login and /auth/sso: {_names(config.forward_params)}"
    if "scope" in config.forward_params:
        yield WARN, "forward_params lists scope: any link can add scopes (e.g. offline_access) to a sign-in"
    hook = config.authorize_params_hook
    if hook is not None:
        yield INFO, f"authorize_params_hook: {getattr(hook, '__module__', '?')}:{getattr(hook, '__qualname__', hook)}"
    if not config.organization:
        yield INFO, ("organization not set: invitation links (/auth/login?invitation=...&organization=...) are "
                     "checked against their organization; other sign-ins accept whatever org_id the token has "
                     "(sso.organization)")
        return
    claim = "org_id" if config.organization.startswith("org_") else "org_name"
    yield OK, f"organization {config.organization}: every sign-in asks for it and its ID token must carry {claim}"
    if claim == "org_name":
        yield WARN, ("organization is a name: Auth0 puts org_name in ID tokens only with 'Use organization names "
                     "in Authentication API' on, else every sign-in ends in invalid_organization; an org_... id "
                     "is safer")
    if not config.is_auth0:
        yield WARN, "organization is an Auth0 feature: this provider must put org_id/org_name in its ID tokens"


def check_endpoints(ctx: Context) -> Iterator[Finding]:
    """The token, userinfo and end-session endpoints answer HTTP at all (any status)."""
    metadata = ctx.metadata
    assert metadata is not None
    for name, url in (("token endpoint", metadata.token_endpoint), ("userinfo endpoint", metadata.userinfo_endpoint),
                      ("end_session endpoint", metadata.end_session_endpoint)):
        if url is None:
            continue
        answer, _, error = ctx.get(url, name)
        if answer is not None and (error is None or error.code != "provider_timeout"):
            yield OK, f"{name} {url} reachable (a bare GET got HTTP {answer.status})"
        else:
            yield FAIL, f"{name} {url} does not answer: {describe_error(error)}"


def check_client_credentials(ctx: Context) -> Iterator[Finding]:
    """The token endpoint accepts client_id and client_secret (a made-up code must fail with ``invalid_grant``)."""
    config = ctx.config
    assert ctx.metadata is not None
    code = "sso-middleware-check-" + secrets.token_urlsafe(16)
    verifier = OIDCClient.new_login_request().code_verifier
    # exactly what the middleware sends at a callback, but with a made-up code
    body, auth = token_request(config, "authorization_code", ctx.metadata.token_endpoint, code=code,
                               redirect_uri=config.redirect_uri,
                               code_verifier=verifier)
    method = config.token_endpoint_auth_method
    try:
        status, document = ctx.http.post_form(ctx.metadata.token_endpoint, "token", body, auth=auth)
    except ProviderError as exc:
        yield FAIL, f"the token endpoint did not answer usably: {describe_error(exc)}"
        return
    error = str(document.get("error", "")) if isinstance(document, dict) else ""
    said = _provider_words(document)
    if error == "invalid_client" or (status == 401 and error != "invalid_grant"):
        yield FAIL, (f"client id or secret rejected by the token endpoint ({method}; HTTP {status}{said}): "
                     "check client_id, client_secret and token_endpoint_auth_method"
                     + (" (and client_assertion_key/kid: the registered key?)" if method == "private_key_jwt" else ""))
    elif error == "unauthorized_client":
        yield FAIL, (f"the client may not use the authorization code grant (unauthorized_client{said}): "
                     "enable it for this application at the provider")
    elif error:
        yield OK, (f"client {'credentials' if method in client_auth.JWT_METHODS else 'id and secret'} accepted "
                   f"({method}; a made-up code was refused with {error}, as expected)")
    elif status >= 500:
        yield FAIL, f"the token endpoint answered HTTP {status}"
    elif status == 200:
        yield WARN, "the token endpoint accepted a made-up authorization code: is this the right provider?"
    else:
        yield WARN, f"the token endpoint answered HTTP {status} without an OAuth error: cannot tell"


def check_client_authentication(ctx: Context) -> Iterator[Finding]:
    """The client assertion's key and algorithm (JWT methods), against what the provider advertises."""
    config, document = ctx.config, ctx.document
    method = config.token_endpoint_auth_method
    algorithm = client_auth.signing_algorithm(config)
    if algorithm is None:
        yield OK, f"{method}: the client secret authenticates the client (no assertion)"
        return
    if method == "private_key_jwt":
        key = client_auth.assertion_key(config)
        size = getattr(key.key, "key_size", 0)
        kind = "RSA" if algorithm.startswith(("RS", "PS")) else "EC P-256"
        yield OK, (f"client_assertion_key {config.client_assertion_key}: {kind} private key ({size} bits), "
                   f"kid {key.kid!r}, signs {algorithm}; register its public key at the provider")
        problem = client_auth.key_file_mode_problem(config.client_assertion_key)
        if problem:
            yield WARN, f"client_assertion_key {problem}: make it readable by this user only (chmod 600)"
    advertised = document.get("token_endpoint_auth_signing_alg_values_supported")
    if not isinstance(advertised, list):
        yield OK, f"{method} signs {algorithm} (the provider does not list token_endpoint_auth_signing_alg_values)"
    elif algorithm in advertised:
        yield OK, f"{method} signs {algorithm}, among the provider's token_endpoint_auth_signing_alg_values_supported"
    else:
        yield FAIL, (f"{method} signs {algorithm}, which is not among the provider's "
                     f"token_endpoint_auth_signing_alg_values_supported ({_names(advertised)})"
                     + ("; set client_assertion_algorithm" if method == "private_key_jwt" else ""))
    yield OK, (f"client assertions: aud = {config.client_assertion_audience} "
               f"({config.issuer_url if config.client_assertion_audience == 'issuer' else 'the endpoint URL'}), "
               f"exp {client_auth.ASSERTION_LIFETIME} s, a fresh jti each")


def check_pushed_authorization(ctx: Context) -> Iterator[Finding]:
    """PAR (RFC 9126): ``pushed_authorization`` against discovery, and one test push when it will be used."""
    config = ctx.config
    assert ctx.metadata is not None
    endpoint = ctx.metadata.pushed_authorization_request_endpoint
    required = ctx.metadata.require_pushed_authorization_requests
    mode = config.pushed_authorization
    if mode == "off" or endpoint is None:
        if required:
            yield FAIL, ("the provider requires pushed authorization requests (require_pushed_authorization_requests) "
                         + ("but pushed_authorization is off" if mode == "off" else "but advertises no endpoint")
                         + ": every sign-in fails with par_required")
        elif mode == "required":
            yield FAIL, ("pushed_authorization is required but discovery advertises no "
                         "pushed_authorization_request_endpoint: every sign-in fails with par_unavailable")
        else:
            offered = f" (the provider offers {endpoint})" if endpoint else " (the provider offers none)"
            yield OK, f"pushed_authorization {mode}: authorization parameters travel in the browser's URL{offered}"
        return
    client = OIDCClient(config, http=ctx.http)
    try:  # exactly the middleware's path: build the parameters, push them with client authentication
        url = client.authorization_url(OIDCClient.new_login_request(), prompt=None, connection=None)
    except ProviderError as exc:
        if exc.code == "signing_algorithm_mismatch":  # reported by "signing keys"; no push was tried
            yield INFO, "no test push: no ID token could be accepted (see signing keys)"
        elif exc.code == "par_failed":  # refused: most often a credential or redirect_uri the checks above name
            yield WARN, (f"the provider refused a test push to {endpoint} ({exc.detail}): sign-ins fail with "
                         f"par_failed; check that {config.redirect_uri} is a registered redirect_uri, "
                         "and the client credentials")
        else:
            yield FAIL, f"pushing a test authorization request to {endpoint} failed: {describe_error(exc)}"
        return
    yield OK, (f"pushed authorization requests ({mode}{', required by the provider' if required else ''}): a test "
               f"push to {endpoint} was answered with a request_uri; the browser carries only client_id and it "
               f"({len(url)} characters)")


def check_registration_urls(ctx: Context) -> Iterator[Finding]:
    """The URLs to register at the provider for this application."""
    config = ctx.config
    urls = config.base_urls
    if len(urls) > 1:
        yield INFO, (f"base_url lists {len(urls)} origins: each request uses the one matching its Host, any other "
                     f"Host the first ({urls[0]}); register every URL below for each origin")
    for url in config.redirect_uris:
        yield INFO, f"Allowed Callback URL (redirect_uri): {url}"
    if config.response_mode == "form_post":
        yield INFO, (f"response_mode form_post: the callback {config.callback_path} takes the provider's POST "
                     f"(body read up to max_request_body {config.max_request_body} bytes); a GET is refused")
    if config.provider_logout:
        for url in urls:
            yield INFO, f"Allowed Logout URL (post_logout_redirect_uri): {url}/"
    if config.backchannel_logout_path:
        yield INFO, (f"Back-Channel Logout URI: {urls[0]}{config.backchannel_logout_path} (its POST body is "
                     f"read up to max_request_body {config.max_request_body} bytes; larger or chunked bodies get 413)")
    yield INFO, f"Initiate Login URI (SSO entry point): {urls[0]}{config.sso_path}"


def check_cookies(ctx: Context) -> Iterator[Finding]:
    """The session cookie: Secure over https, a ``cookie_domain`` the browser accepts, its name and flags."""
    config = ctx.config
    if not config.secure_cookies:
        yield WARN, "base_url is http: cookies are not Secure (acceptable only for loopback demos)"
    domain = config.cookie_domain.lstrip(".").lower()
    for url in config.base_urls if domain else ():
        host = (urlsplit(url).hostname or "").lower()
        if host == domain or (host.endswith("." + domain) and not is_loopback_host(host) and not _is_ip(host)):
            yield OK, f"cookie_domain {config.cookie_domain} covers base_url's host {host}"
        else:
            yield FAIL, (f"cookie_domain {config.cookie_domain} does not domain-match base_url's host {host}: "
                         "browsers would drop the session cookie")
    flags = ["HttpOnly", "SameSite=Lax", f"Path={config.cookie_path}"]
    flags.append("Secure" if config.secure_cookies else "not Secure")
    flags.append(f"Domain={config.cookie_domain}" if config.cookie_domain else "host-only")
    yield INFO, f"session cookie {config.session_cookie_name}: {'; '.join(flags)}"


def _is_ip(host: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|\[?[0-9a-fA-F:]+\]?", host))


def check_session_store(ctx: Context) -> Iterator[Finding]:
    """The session store is usable: a writable folder, or a Redis/memcached server that answers."""
    config = ctx.config
    kind = config.session_type
    if kind == "file":
        yield from _probe_file_store(config)
    elif kind == "ext:redis":
        yield from _probe_redis(config)
    elif kind == "ext:memcached":
        yield from _probe_memcached(config)
    elif kind == "cookie":
        yield INFO, "session_type cookie: the session lives in the encrypted cookie (about 4 KB at most); no server"
    else:
        yield INFO, (f"session_type environ: an outer Beaker SessionMiddleware must wrap this middleware and put its "
                     f"session at environ[{config.session_environ_key!r}]; it owns the cookie and the store")


def _probe_file_store(config: SSOConfig) -> Iterator[Finding]:
    data_dir = os.path.abspath(config.data_dir)
    private = not config.session_data_dir
    missing: list[str] = []  # folders the probe creates, deepest first (removed afterwards)
    folder = data_dir
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    if private:  # the per-user root of the default folders may be shared with running apps: left alone
        missing = [path for path in missing if path != os.path.dirname(data_dir)]
    try:
        try:
            prepare_data_dir(data_dir, private)
        except ConfigError as exc:
            yield FAIL, f"file store: {exc.message} (setting {exc.setting})"
            return
        try:
            fd, probe = tempfile.mkstemp(dir=data_dir, prefix=".sso-doctor-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(b"probe")
            finally:
                os.unlink(probe)
        except OSError as exc:
            yield FAIL, f"file store: cannot write in {data_dir}: {exc.strerror}"
            return
        kind = "private default folder" if private else "folder"
        created = " (created when the middleware starts)" if data_dir in missing else ""
        yield OK, f"file store: {kind} {data_dir} is writable{created}"
    finally:
        for path in missing:
            with contextlib.suppress(OSError):
                os.rmdir(path)


def _probe_redis(config: SSOConfig) -> Iterator[Finding]:
    where = redact_url(config.session_url)
    try:
        client = JsonRedisNamespace.client_for(config.session_url, config.session_store_timeout)
        client.ping()
    except Exception as exc:  # any client error is the finding; the URL's password is not in it
        yield FAIL, f"redis at {where} does not answer PING: {type(exc).__name__}: {_one_line(str(exc))}"
        return
    yield OK, f"redis at {where} answers PING (session_store_timeout {config.session_store_timeout:g} s)"


def _probe_memcached(config: SSOConfig) -> Iterator[Finding]:
    for server in config.session_url.split(";"):
        key = f"sso_middleware:doctor-probe:{secrets.token_hex(8)}"
        try:
            client = JsonMemcachedNamespace.client_for(server, config.session_store_timeout)
            for host in client.servers:  # connect first ourselves: python-memcached leaks a refused socket
                with socket.socket(host.family, socket.SOCK_STREAM) as probe:
                    probe.settimeout(config.session_store_timeout)
                    probe.connect(host.address)
            stored = client.set(key, b"probe", time=60)
            read = client.get(key) if stored else None
            client.delete(key)
        except OSError as exc:
            yield FAIL, f"memcached at {server} does not answer: {exc.strerror or type(exc).__name__}"
            continue
        except Exception as exc:  # python-memcached mostly reports failures as False, but not always
            yield FAIL, f"memcached at {server}: {type(exc).__name__}: {_one_line(str(exc))}"
            continue
        if stored and read == b"probe":
            yield OK, f"memcached at {server} stores and returns a probe key"
        else:
            yield FAIL, f"memcached at {server} does not answer (set/get of a probe key failed)"


#: The checklist, in order.  Append a :class:`Check` to add one.
def check_egress(ctx: Context) -> Iterator[Finding]:
    """How provider calls leave: the proxy (password redacted) and whether it answers, CA bundle, client cert."""
    config = ctx.config
    url = config.discovery_url
    egress = ctx.http.egress
    proxy, source = egress.proxy_for(url)
    if proxy:
        shown = redact_url(proxy)
        yield INFO, f"provider calls go through the proxy {shown} (from {source}; CONNECT tunnels, TLS end to end)"
        yield from _probe_proxy(proxy, source, config.http_timeout)
    else:
        ignored = [name for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
                   if os.environ.get(name)]
        if config.http_trust_env:
            yield INFO, "http_trust_env: no environment proxy applies to the issuer (NO_PROXY or none set); direct"
        elif ignored:
            yield WARN, (f"{ignored[0]} is set in the environment but ignored for provider calls "
                         "(set http_proxy, or http_trust_env = true); calls go direct")
        else:
            yield INFO, "provider calls go direct (no http_proxy)"
    https = url.startswith("https://")
    if config.ca_bundle:
        count = count_ca_certificates(config.ca_bundle)
        note = "" if https else " (unused: the issuer is http://)"
        yield OK, f"ca_bundle {config.ca_bundle}: {count} certificate(s), trusted instead of the default bundle{note}"
    if config.tls_client_cert:
        yield from _describe_client_certificate(config, https)


def _probe_proxy(proxy: str, source: str, timeout: float) -> Iterator[Finding]:
    parts = urlsplit(proxy)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 3128), timeout=timeout):
            pass
    except socket.timeout:
        yield FAIL, f"the proxy {redact_url(proxy)} did not accept a connection within {timeout:g} s (check {source})"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        yield FAIL, f"the proxy {redact_url(proxy)} cannot be reached: {reason} (check {source})"
    else:
        yield OK, f"the proxy {parts.hostname}:{parts.port} accepts connections"


def _describe_client_certificate(config: SSOConfig, https: bool) -> Iterator[Finding]:
    cert = check_client_certificate(config.tls_client_cert, config.tls_client_key)
    now = time.time()
    until = cert.not_valid_after_utc.timestamp()
    subject = cert.subject.rfc4514_string()
    expires = time.strftime("%Y-%m-%d", time.gmtime(until))
    if until < now or cert.not_valid_before_utc.timestamp() > now:
        yield FAIL, f"tls_client_cert {subject} is not valid now (valid until {expires}): renew it"
    elif until - now < 30 * 86400:
        yield WARN, f"tls_client_cert {subject} expires on {expires}: renew it soon"
    else:
        note = "" if https else " (unused: the issuer is http://)"
        yield OK, f"tls_client_cert {subject}, issued by {cert.issuer.rfc4514_string()}, valid until {expires}{note}"


CHECKS: list[Check] = [
    Check("outgoing connections", check_egress),
    Check("discovery", check_discovery),
    Check("clock", check_clock, needs_discovery=True),
    Check("signing keys", check_signing_keys, needs_discovery=True),
    Check("provider capabilities", check_capabilities, needs_discovery=True),
    Check("tokens and rules", check_tokens_and_rules),
    Check("authorization parameters", check_authorize_params),
    Check("endpoints", check_endpoints, needs_discovery=True),
    Check("client credentials", check_client_credentials, needs_discovery=True),
    Check("client authentication", check_client_authentication, needs_discovery=True),
    Check("pushed authorization", check_pushed_authorization, needs_discovery=True),
    Check("register at the provider", check_registration_urls),
    Check("cookies", check_cookies),
    Check("session store", check_session_store),
]


def run_checks(config: SSOConfig, checks: Sequence[Check] = CHECKS) -> list[Result]:
    """Run ``checks`` in order; the ones needing discovery are skipped (one line) when it failed."""
    ctx = Context.for_config(config)
    results: list[Result] = []
    skipped: list[str] = []
    skip_at = 0
    try:
        for check in checks:
            if check.needs_discovery and ctx.metadata is None:
                if not skipped:
                    skip_at = len(results)
                skipped.append(check.name)
                continue
            try:
                results.extend(Result(status, check.name, message) for status, message in check.run(ctx))
            except Exception as exc:  # a doctor reports; it never ends in a traceback
                results.append(Result(FAIL, check.name, f"the check itself failed: {type(exc).__name__}: "
                                                        f"{_one_line(str(exc))}"))
    finally:
        ctx.close()
    if skipped:
        results.insert(skip_at, Result(SKIP, "provider checks", f"{', '.join(skipped)} (discovery failed)"))
    return results


def check_configuration(source: Source) -> tuple[Optional[SSOConfig], Result]:
    """Build the configuration from its source: the config and an OK line, or None and a FAIL line."""
    try:
        config = source.load()
    except ConfigError as exc:
        return None, Result(FAIL, "configuration", f"{exc} (from {source.description})")
    except SourceError as exc:
        return None, Result(FAIL, "configuration", str(exc))
    return config, Result(OK, "configuration", (
        f"valid (from {source.description}); issuer {config.issuer_url}, client_id {config.client_id}, "
        f"base_url {config.base_url}"
    ))


# ---------------------------------------------------------------------------------------
# the command


DESCRIPTION = """\
Check a deployment's configuration: load it as the middleware would, then ask the
provider and the session store whether it will work.  Prints one line per finding:
[ OK ], [WARN], [FAIL], [INFO] (and [SKIP] for checks that need discovery when it failed).
Exit status: 0 nothing failed, 1 something failed, 2 usage error.  Secrets are never printed."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``check`` subcommand's options."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--ini", metavar="FILE", help="a PasteDeploy ini file (its sso filter section)")
    source.add_argument("--settings", metavar="FILE", help="a file of 'name = value' lines, or a .json object")
    source.add_argument("--env", action="store_true", help="the SSO_* environment variables (the default)")
    parser.add_argument("--section", metavar="NAME",
                        help="with --ini: the section (filter:sso or sso); default: the first with "
                             "use = egg:sso_middleware#main")
    parser.add_argument("--set", metavar="NAME=VALUE", action="append",
                        help="with --ini: a PasteDeploy global variable (read by 'get NAME = NAME'); otherwise a "
                             "setting; repeatable")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")


def run(args: argparse.Namespace, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """Run the doctor for parsed arguments; returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        source = source_from_args(args)
    except UsageError as exc:
        print(f"sso-middleware check: error: {escape_text(str(exc))}", file=err)
        return EXIT_USAGE
    redact = Redactor(source.secrets)
    config, first = check_configuration(source)
    results = [first]
    if config is not None:
        redact.add([config.client_secret, config.session_secret, *url_passwords(config.session_url),
                    *url_passwords(config.http_proxy)])
        redact.add_public([config.client_id, config.issuer_url, *config.base_urls])
        results += run_checks(config)
    # The one place output is made printable: every check's message, whatever it quotes.
    results = [Result(r.status, redact.show(r.check), redact.show(r.message)) for r in results]
    failed = any(result.status == FAIL for result in results)
    status = EXIT_FAILED if failed else EXIT_OK
    if args.json:
        json.dump({"source": redact.show(source.description), "exit_status": status,
                   "results": [{"status": r.status, "check": r.check, "message": r.message} for r in results]},
                  out, indent=2)
        out.write("\n")
    else:
        for result in results:
            print(result.line(), file=out)
        counts = {name: sum(1 for r in results if r.status == name) for name in (OK, WARN, FAIL)}
        verdict = "some checks FAILED" if failed else "no check failed"
        print(f"{verdict}: {counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failure(s)", file=out)
    return status


def describe_error(error: Optional[BaseException]) -> str:
    """A provider error in a few words, with the operating system's reason when there is one."""
    if error is None:
        return "no answer"
    text = error.detail if isinstance(error, ProviderError) else _one_line(str(error))
    reason = _os_reason(error)
    return f"{text} ({reason})" if reason and reason not in text else text


def _os_reason(error: BaseException) -> Optional[str]:
    """The innermost operating-system reason (``Connection refused``) in an exception's chain."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    reason: Optional[str] = None
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = str(current.strerror)
        elif "Name or service not known" in str(current) or "getaddrinfo" in str(current):
            reason = reason or "host name not found"
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return reason


def _provider_words(document: Any) -> str:
    if not isinstance(document, dict):
        return ""
    error = _one_line(str(document.get("error", "")))[:64]
    description = _one_line(str(document.get("error_description", "")))[:160]
    return f": {error}" + (f" -- {description}" if description else "") if error else ""


def _names(values: Any) -> str:
    if not isinstance(values, (list, tuple)):
        return "missing"
    return ", ".join(str(value) for value in values) or "none"


def _one_line(text: str) -> str:
    return " ".join("".join(char if char.isprintable() else " " for char in text).split())[:300]
