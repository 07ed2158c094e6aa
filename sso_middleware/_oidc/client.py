"""The OpenID Connect protocol client: discovery, authorization, tokens, userinfo, logout.

:class:`OIDCClient` knows the provider and nothing of WSGI.  Discovery is
fetched lazily on first use, cached for ``discovery_ttl`` and shared by all
threads; its ``issuer`` must equal the configured issuer exactly and every
endpoint must be https (or loopback http under ``allow_insecure_http``): :mod:`.discovery`.
Authorization requests always carry ``state``, ``nonce`` and a PKCE S256
challenge, in the URL or pushed first (PAR, :mod:`.par`).  The code exchange, the
refresh and the push authenticate the client per ``token_endpoint_auth_method``
(:mod:`.client_auth`), and the ID token is validated completely (:mod:`.id_token`) before the
userinfo endpoint is called, whose ``sub`` must match.

oauthlib makes the PKCE pair, builds the token request and parses the token
response; the authorization URL and the HTTP calls are our own (:mod:`.http`)
because oauthlib's URL builder and requests-oauthlib gate ``http://`` endpoints
on the process-wide ``OAUTHLIB_INSECURE_TRANSPORT`` variable, which a library
must not set.
Security caveat: none of the values returned here are logged; errors carry
only codes and the names of the failing checks.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlencode, urlsplit

from oauthlib.oauth2 import WebApplicationClient
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from .._config.settings import SSOConfig
from .._config.validation import UNSIGNED
from .._policy.authorize_params import merged_scope
from ..errors import (
    InvalidTokenResponse,
    IssuerMismatch,
    ProviderBadResponse,
    ProviderError,
    ProviderRefused,
    ProviderUnreachable,
    SigningAlgorithmMismatch,
    UserinfoMismatch,
)
from .discovery import ProviderMetadata
from .http import ProviderHTTP
from .id_token import (
    TokenRules,
    accepted_algorithms,
    validate_id_token,
    validate_logout_token,
    validate_refreshed_id_token,
)
from .jwks import KeySet
from .par import authorization_redirect
from .token_endpoint import expires_at, optional_str, token_request

log = logging.getLogger("sso_middleware")

#: Seconds a failed discovery is remembered, so an outage is not hammered.
DISCOVERY_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class LoginRequest:
    """The secrets of one sign-in attempt; stored server-side until the callback.

    Security caveat: ``state``, ``nonce`` and ``code_verifier`` are kept out of ``repr``
    (error reporters that capture locals would send them away); so are the tokens below.
    """

    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    code_challenge: str


@dataclass(frozen=True)
class SignInResult:
    """What a successful code exchange yields (the tokens are not in its ``repr``)."""

    id_token: str = field(repr=False)
    claims: dict[str, Any]
    userinfo: dict[str, Any]
    access_token: str = field(repr=False)
    expires_at: Optional[float] = None
    refresh_token: Optional[str] = field(default=None, repr=False)
    scope: Optional[str] = None  # the token response's granted scope (None: it did not say)


@dataclass(frozen=True)
class RefreshResult:
    """What a successful refresh yields; ``refresh_token`` is None when the provider keeps the old one.

    The tokens are not in its ``repr``.
    """

    access_token: str = field(repr=False)
    expires_at: Optional[float]
    refresh_token: Optional[str] = field(repr=False)
    id_token: Optional[str] = field(repr=False)


class OIDCClient:
    """Protocol operations against one provider, for one client."""

    def __init__(
        self,
        config: SSOConfig,
        http: Optional[ProviderHTTP] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.http = http or ProviderHTTP.for_config(config)
        self.clock = clock
        self._lock = threading.Lock()
        self._metadata: Optional[ProviderMetadata] = None
        self._metadata_at = 0.0
        self._failure: Optional[tuple[float, ProviderError]] = None
        self._rules: Optional[tuple[ProviderMetadata, TokenRules]] = None  # for that metadata
        self.keys = KeySet(self._fetch_jwks, ttl=config.discovery_ttl)
        if UNSIGNED in config.id_token_algorithms:
            log.warning("sso: id_token_algorithms names 'none': unsigned ID tokens from the token endpoint are "
                        "accepted, protected by TLS alone (refreshed ID tokens and logout tokens never are)")

    # -- discovery ---------------------------------------------------------

    def metadata(self) -> ProviderMetadata:
        """The provider's metadata, fetched on first use and cached for ``discovery_ttl``."""
        metadata = self._metadata
        if metadata is not None and time.monotonic() - self._metadata_at < self.config.discovery_ttl:
            return metadata
        with self._lock:
            now = time.monotonic()
            if self._metadata is not None and now - self._metadata_at < self.config.discovery_ttl:
                return self._metadata
            if self._failure is not None and now - self._failure[0] < DISCOVERY_RETRY_SECONDS:
                raise self._failure[1]
            try:
                status, document = self.http.get_json(self.config.discovery_url, "discovery")
                if status != 200:
                    raise ProviderUnreachable(f"discovery: HTTP {status}")
                fresh = ProviderMetadata.parse(document, self.config)
            except ProviderError as exc:
                if self._metadata is not None:
                    log.warning("sso: discovery refresh failed (%s); keeping the cached metadata", exc)
                    self._metadata_at = now
                    return self._metadata
                self._failure = (now, exc)
                raise
            self._metadata, self._metadata_at, self._failure = fresh, now, None
            return fresh

    def _fetch_jwks(self) -> Any:
        status, document = self.http.get_json(self.metadata().jwks_uri, "jwks")
        if status != 200:
            raise ProviderUnreachable(f"jwks: HTTP {status}")
        return document

    # -- authorization -----------------------------------------------------

    @staticmethod
    def new_login_request() -> LoginRequest:
        """Fresh ``state``, ``nonce`` and PKCE verifier/challenge for one sign-in."""
        client = WebApplicationClient("")
        verifier = client.create_code_verifier(64)
        return LoginRequest(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=verifier,
            code_challenge=client.create_code_challenge(verifier, "S256"),
        )

    def authorization_url(
        self,
        login: LoginRequest,
        prompt: Optional[str],
        connection: Optional[str],
        max_age: Optional[int] = None,
        acr_values: Optional[str] = None,
        redirect_uri: Optional[str] = None,
        extra_params: Optional[Mapping[str, str]] = None,
    ) -> str:
        """The provider URL that starts a sign-in (authorization code flow, PKCE S256).

        The parameters go into its query string, or are pushed (PAR) so that the URL
        carries only ``client_id`` and ``request_uri``.  ``max_age`` and ``acr_values`` ask
        for a recent or stronger authentication (step-up).  ``redirect_uri``: the request's
        (one of ``base_url``'s origins; default the first); the code exchange must send the
        same one.  ``response_mode`` is sent only for ``form_post`` (``query`` is the code
        flow's default).  ``extra_params``: checked extra parameters (:mod:`sso_middleware._policy.authorize_params`);
        they can never replace a protocol parameter, and an extra ``scope`` only adds scopes.

        Built here rather than with oauthlib's ``prepare_request_uri``, which refuses
        ``http://`` endpoints unless a process-wide environment variable is set.
        """
        extra = dict(extra_params or {})
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri or self.config.redirect_uri,
            "response_mode": "form_post" if self.config.response_mode == "form_post" else None,
            "scope": merged_scope(self.config.scope, extra.get("scope")),
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": login.code_challenge,
            "code_challenge_method": "S256",
            "prompt": prompt,
            "connection": connection,
            "audience": self.config.audience,
            "max_age": str(max_age) if max_age is not None else None,
            "acr_values": acr_values,
        }
        # Extras come after, and never replace what the middleware sets (even an empty value of its own).
        params.update({key: value for key, value in extra.items() if key not in params})
        self.signing_algorithms()  # no sign-in whose ID token could never be accepted
        return authorization_redirect(self.config, self.metadata(), self.http,
                                      {key: value for key, value in params.items() if value})

    # -- callback ----------------------------------------------------------

    def check_response_issuer(self, iss: Optional[str]) -> None:
        """RFC 9207: the authorization response's ``iss`` must be our issuer when sent or promised."""
        if iss is None:
            if self.metadata().iss_parameter_supported:
                raise IssuerMismatch("the provider promises 'iss' in responses but sent none")
            return
        if iss != self.config.issuer_url:
            raise IssuerMismatch("authorization response 'iss' is not our issuer (mix-up?)")

    def sign_in(
        self, code: str, nonce: str, code_verifier: str, redirect_uri: Optional[str] = None
    ) -> SignInResult:
        """Exchange the code, validate the ID token, fetch userinfo and check its ``sub``.

        ``redirect_uri``: the one the authorization request sent (default: the first ``base_url``'s).
        """
        tokens = self._token_request("the code", "authorization_code", code=code,
                                     redirect_uri=redirect_uri or self.config.redirect_uri, code_verifier=code_verifier)
        id_token = tokens.get("id_token")
        access_token = tokens["access_token"]
        if not isinstance(id_token, str):
            raise InvalidTokenResponse("token response lacks id_token")
        now = self.clock()
        claims = validate_id_token(id_token, self.token_rules(), nonce=nonce, now=now, access_token=access_token,
                                   allow_unsigned=self._token_endpoint_is_tls())
        userinfo = self._userinfo(access_token, claims["sub"])
        return SignInResult(id_token=id_token, claims=claims, userinfo=userinfo, access_token=access_token,
                            expires_at=expires_at(tokens, now), refresh_token=optional_str(tokens, "refresh_token"),
                            scope=_granted_scope(tokens))

    def refresh(self, refresh_token: str, previous_id_token: str) -> RefreshResult:
        """Redeem a refresh token (RFC 6749 section 6) for fresh tokens.

        A refreshed ID token, when the provider sends one, is validated like the first
        one (signature, never ``none``, ``iss``, ``aud``, times, ``at_hash``) and against the
        previous one (Core section 12.2: same ``iss``, ``sub``, ``aud``, ``azp`` and ``auth_time``).
        The provider refusing the token (revoked, expired: ``invalid_grant``) raises
        :class:`AuthFailure`; an unreachable provider raises :class:`ProviderError`.
        """
        tokens = self._token_request("the refresh token", "refresh_token", refresh_token=refresh_token)
        access_token = tokens["access_token"]
        now = self.clock()
        id_token = optional_str(tokens, "id_token")
        if id_token is not None:
            validate_refreshed_id_token(id_token, previous_id_token, self.token_rules(), now=now,
                                        access_token=access_token)
        return RefreshResult(access_token=access_token, expires_at=expires_at(tokens, now),
                             refresh_token=optional_str(tokens, "refresh_token"), id_token=id_token)

    def token_rules(self) -> TokenRules:
        """What every token this client accepts is checked against (:class:`.TokenRules`).

        Built from the settings and the provider's metadata, once per metadata document:
        a discovery refresh may change the advertised algorithms (:meth:`signing_algorithms`,
        whose :class:`ProviderError` it raises again on every call until the provider agrees).
        """
        metadata = self.metadata()
        built = self._rules
        if built is not None and built[0] is metadata:
            return built[1]
        rules = TokenRules(keys=self.keys, issuer=self.config.issuer_url, client_id=self.config.client_id,
                           client_secret=self.config.client_secret, algorithms=self.signing_algorithms(),
                           leeway=self.config.clock_skew)
        self._rules = (metadata, rules)  # one assignment: a racing thread builds an equal value
        return rules

    def signing_algorithms(self) -> tuple[str, ...]:
        """``id_token_algorithms`` narrowed to what the provider advertises (:func:`.accepted_algorithms`).

        None in common is a configuration error, not a bad token: :class:`ProviderError`
        ``signing_algorithm_mismatch`` (a 502 page; the log line names the setting).
        """
        advertised = self.metadata().id_token_signing_algs
        algorithms = accepted_algorithms(self.config.id_token_algorithms, advertised)
        if not algorithms:
            raise SigningAlgorithmMismatch(
                f"id_token_algorithms {' '.join(self.config.id_token_algorithms)!r} has no algorithm in common "
                f"with the provider's id_token_signing_alg_values_supported {' '.join(advertised or ())!r}",
            )
        return algorithms

    def _token_endpoint_is_tls(self) -> bool:
        """Whether the token endpoint's TLS may stand in for an ID token's signature (Core 3.1.3.7 item 6).

        Discovery already refused endpoints neither https nor (``allow_insecure_http``)
        loopback http; this says so where it is relied on.
        """
        scheme = urlsplit(self.metadata().token_endpoint).scheme
        return scheme == "https" or (scheme == "http" and self.config.allow_insecure_http)

    def _token_request(self, what: str, grant_type: str, **params: str) -> dict[str, Any]:
        """POST to the token endpoint with client authentication; the checked token response.

        ``access_token`` is a string and ``token_type`` Bearer in what is returned.
        """
        endpoint = self.metadata().token_endpoint
        body, auth = token_request(self.config, grant_type, endpoint, **params)
        client = WebApplicationClient(self.config.client_id)
        status, document = self.http.post_form(endpoint, "token", body, auth=auth)
        if not isinstance(document, dict):
            raise InvalidTokenResponse(f"token endpoint: HTTP {status}, not a JSON object")
        if status >= 500 or status == 429:  # down, or rate-limiting us: the provider's trouble, not a refusal
            raise ProviderUnreachable(f"token endpoint: HTTP {status}")
        if "error" in document or status != 200:
            raise ProviderRefused.from_error(str(document.get("error", f"http_{status}")),
                                             f"token endpoint refused {what} (HTTP {status})")
        try:
            tokens = dict(client.parse_request_body_response(json.dumps(document), scope=None))
        except (OAuth2Error, ValueError, TypeError, AttributeError, ArithmeticError) as exc:  # malformed members
            raise InvalidTokenResponse(f"token response: {type(exc).__name__}") from None
        if "expires_in" in document:  # as sent: oauthlib drops an expires_in of 0 ("expired already")
            tokens["expires_in"] = document["expires_in"]
        if not isinstance(tokens.get("access_token"), str) or not tokens["access_token"]:
            raise InvalidTokenResponse("token response lacks access_token")
        if str(tokens.get("token_type", "")).lower() != "bearer":
            raise InvalidTokenResponse("token_type is not Bearer")
        for name in ("id_token", "refresh_token"):
            if name in tokens and not (isinstance(tokens[name], str) and tokens[name]):
                raise InvalidTokenResponse(f"{name} is not a string")
        return tokens

    def _userinfo(self, access_token: str, sub: str) -> dict[str, Any]:
        endpoint = self.metadata().userinfo_endpoint
        if endpoint is None:
            return {}
        status, document = self.http.get_json(endpoint, "userinfo", headers={"Authorization": f"Bearer {access_token}"})
        if status >= 500:
            raise ProviderUnreachable(f"userinfo: HTTP {status}")
        if status != 200 or not isinstance(document, dict):
            raise ProviderBadResponse(f"userinfo: HTTP {status}")
        if document.get("sub") != sub:
            raise UserinfoMismatch("userinfo sub differs from the ID token's")
        return document

    # -- logout ------------------------------------------------------------

    def validate_logout_token(self, token: str) -> dict[str, Any]:
        """A back-channel logout token's claims, validated (``invalid_logout_token`` otherwise)."""
        return validate_logout_token(token, self.token_rules(), now=self.clock())

    def end_session_url(self, id_token_hint: Optional[str], post_logout_redirect_uri: str) -> Optional[str]:
        """Where to send the browser to end the provider session, or None if the provider has no way."""
        try:
            endpoint = self.metadata().end_session_endpoint
        except ProviderError as exc:
            log.warning("sso: cannot reach the provider for logout (%s); signed out locally only", exc.code)
            return None
        if endpoint is not None:
            params = {"post_logout_redirect_uri": post_logout_redirect_uri, "client_id": self.config.client_id}
            if id_token_hint:
                params["id_token_hint"] = id_token_hint
            return _add_query(endpoint, params)
        if self.config.is_auth0:
            legacy = self.config.issuer_url.rstrip("/") + "/v2/logout"
            return _add_query(legacy, {"client_id": self.config.client_id, "returnTo": post_logout_redirect_uri})
        return None


def _add_query(url: str, params: Mapping[str, Optional[str]]) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode(params)


def _granted_scope(tokens: Mapping[str, Any]) -> Optional[str]:
    """The token response's ``scope`` as text (oauthlib may have made it a list), or None when not said."""
    scope = tokens.get("scope")
    if isinstance(scope, (list, tuple)):
        scope = " ".join(str(item) for item in scope)
    return scope if isinstance(scope, str) and scope else None
