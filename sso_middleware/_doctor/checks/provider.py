"""Checks of the provider itself: discovery, the clocks, the signing keys, what it supports.

``check_discovery`` runs first among them and fills :attr:`Context.metadata`; the others
need it.  The signing-keys check applies the middleware's own rules
(:func:`~sso_middleware._oidc.id_token.accepted_algorithms`,
:func:`~sso_middleware._oidc.jwks.key_fits`), so it reports the keys sign-ins will actually use.

Security caveat: the provider's answers are quoted in findings (issuers, key ids, ``kty``
values, error descriptions); the report escapes their control characters before printing.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from jwt import PyJWK
from jwt.exceptions import PyJWTError

from ..._config.settings import SSOConfig
from ..._config.validation import UNSIGNED
from ..._oidc.discovery import ProviderMetadata
from ..._oidc.id_token import accepted_algorithms
from ..._oidc.jwks import key_fits
from ...errors import ProviderError, ProviderTimeout
from ..wording import describe_error, names
from .context import FAIL, INFO, OK, WARN, Context, Finding


def check_discovery(ctx: Context) -> Iterator[Finding]:
    """The discovery document: fetched, the same issuer, acceptable endpoints (``ProviderMetadata.parse``)."""
    config = ctx.config
    url = config.discovery_url
    started = time.monotonic()
    answer, document, error = ctx.get(url, "discovery")
    elapsed = time.monotonic() - started
    if error is not None:
        if answer is not None and not isinstance(error, ProviderTimeout):
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

    The algorithms are the middleware's own (:func:`~sso_middleware._oidc.id_token.accepted_algorithms`):
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
            yield FAIL, (f"id_token_algorithms allows only {names(allowed)}, which the provider does not "
                         "advertise: no ID token would verify (every sign-in fails with signing_algorithm_mismatch)")
            return
    elif not algorithms:
        yield FAIL, (f"the provider signs ID tokens with {names(advertised)} but id_token_algorithms allows "
                     f"only {names(allowed)}: no ID token would verify (every sign-in fails with "
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
            if _key_loads(key, alg):
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
        yield FAIL, f"{url} has no signing key usable for {names(algorithms)} (keys found: {types})"
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


def _key_loads(key: Any, alg: str) -> bool:
    """The selection rule (:func:`~sso_middleware._oidc.jwks.key_fits`), and the key loads as at a sign-in."""
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
        yield FAIL, f"response_types_supported ({names(response_types)}) lacks 'code': the code flow is not offered"

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
        supported, listed = auth_methods, names(auth_methods)
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
            yield WARN, f"scopes {names(missing)} are not in the provider's scopes_supported ({names(scopes)})"
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
                     f"({names(modes)}); set response_mode = query")


def check_endpoints(ctx: Context) -> Iterator[Finding]:
    """The token, userinfo and end-session endpoints answer HTTP at all (any status)."""
    metadata = ctx.metadata
    assert metadata is not None
    for name, url in (("token endpoint", metadata.token_endpoint), ("userinfo endpoint", metadata.userinfo_endpoint),
                      ("end_session endpoint", metadata.end_session_endpoint)):
        if url is None:
            continue
        answer, _, error = ctx.get(url, name)
        if answer is not None and not isinstance(error, ProviderTimeout):
            yield OK, f"{name} {url} reachable (a bare GET got HTTP {answer.status})"
        else:
            yield FAIL, f"{name} {url} does not answer: {describe_error(error)}"
