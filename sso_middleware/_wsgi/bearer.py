"""Bearer tokens on API paths (``bearer_paths``): ``Authorization: Bearer <access token>`` instead of a session.

Use it when a single-page app, a mobile app or another service calls the wrapped
application's JSON API with an access token of its own (Auth0: one issued for the API
whose identifier is ``bearer_audience``).  On a bearer path:

- ``Authorization: Bearer <token>`` (RFC 6750 section 2.1; the scheme in any case):
  the token is validated (:class:`~sso_middleware._oidc.access_token.AccessTokenVerifier`)
  and, when ``access_rules`` (their claim conditions, against the token's claims) and
  ``bearer_rules`` allow the path, the application runs with
  ``environ["sso.userinfo"]`` = the token's claims, ``REMOTE_USER`` = its
  ``remote_user_claim`` and ``environ["sso.scopes"]`` = its scopes.  No session is read,
  written or touched, and no cookie is set.
- no ``Authorization`` header: a session cookie is honoured as on any other path (and
  ``bearer_rules`` hold for its user too, their scope requirements never met: a session
  has no granted scopes), unless ``bearer_only``; without a session,
  401 with a bare ``Bearer realm=...`` challenge (RFC 6750 section 3.1: no error code for
  a request without credentials).
- a malformed header, another scheme than Bearer with ``bearer_only``, or an
  ``access_token`` in the query string (RFC 6750 section 2.3: never accepted here, it
  would sit in logs): 400 ``invalid_request``.  A token in a form body (section 2.2) is
  never read: the body is the application's.
- an invalid, expired or foreign token: 401 ``invalid_token`` with ``error_description``;
  a valid one without the scopes ``bearer_rules`` require: 403 ``insufficient_scope`` with
  the ``scope`` it needs; the provider's keys or introspection unreachable: the
  provider error's status (503 when down), never a 500.

Every refusal is JSON (``code``, ``error``, ``error_description``, ``message``) with
``Cache-Control: no-store``.

Security caveat: put a CORS layer *outside* this middleware (so preflights never need a
token and refusals carry CORS headers); and remember that a JWT access token stays valid
until its ``exp`` even after the user signs out at the provider.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl

from webob import Response

from .._config.settings import SSOConfig
from .._oidc.access_token import AccessTokenVerifier, scopes_of
from .._oidc.introspection import B64TOKEN
from .._policy.rules import GRANTED, MAX_AGE_LEEWAY, AccessRule, decide, matching
from ..errors import (
    BearerFailure,
    BearerTokenMissing,
    InsufficientScope,
    InvalidBearerRequest,
    ProviderError,
    SSOFailure,
)
from .environ import SCOPES_KEY, USERINFO_KEY
from .pages import _quoted, no_store

log = logging.getLogger("sso_middleware")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: RFC 6750 section 2.1: ``Bearer`` 1*SP b64token; b64token = 1*( ALPHA / DIGIT / "-._~+/" ) *"=".
_CREDENTIALS = re.compile(rf"Bearer +({B64TOKEN.pattern})", re.IGNORECASE)
#: A token longer than this is refused unread (a JWT access token is a few kilobytes at most).
MAX_TOKEN_LENGTH = 16384
#: ``error_description`` characters (RFC 6750 section 3): printable ASCII without '"' and '\\'.
_DESCRIPTION_UNSAFE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


class BearerGate:
    """The bearer side of one middleware: which paths are APIs, and the answer for each request on them."""

    def __init__(self, config: SSOConfig, verifier: AccessTokenVerifier) -> None:
        self.config = config
        self.verifier = verifier
        self.apis = tuple(AccessRule(path=prefix) for prefix in config.bearer_paths)
        #: What a token is held to: every access rule (``/api/../admin`` fails closed too), and bearer_rules.
        self.token_rules = tuple(config.access_rules) + tuple(config.bearer_rules)

    def covers(self, path: str) -> bool:
        """Whether ``path`` (a ``PATH_INFO``) is under ``bearer_paths`` (as resolved or as sent, like access rules)."""
        return bool(matching(self.apis, path))

    def answer(
        self, environ: dict[str, Any], start_response: Callable[..., Any], app: WSGIApp
    ) -> Optional[Iterable[bytes]]:
        """The response to a request on a bearer path, or None to go on with the session (no credentials sent)."""
        try:
            token = self._token(environ)
            if token is None:
                if self.config.bearer_only:
                    raise BearerTokenMissing("this API accepts bearer tokens only")
                return None
            claims = self.verifier.claims(token)
            scopes = scopes_of(claims)
            self.check_rules(environ, claims, scopes)
        except (BearerFailure, ProviderError) as failure:
            refused: Iterable[bytes] = self.refusal(failure)(environ, start_response)
            return refused
        environ[USERINFO_KEY] = claims
        environ[SCOPES_KEY] = scopes
        remote_user = claims.get(self.config.remote_user_claim)
        if remote_user is not None:
            environ["REMOTE_USER"] = str(remote_user)
        return app(environ, start_response)

    def session_refusal(self, claims: Optional[dict[str, Any]], environ: dict[str, Any]) -> Optional[Response]:
        """For a request that sent no token: 401 without a signed-in user, 403 when ``bearer_rules`` stop the user."""
        try:
            if claims is None:
                raise BearerTokenMissing()
            self.check_rules(environ, claims, None)
        except BearerFailure as failure:
            return self.refusal(failure)
        return None

    def check_rules(self, environ: dict[str, Any], claims: dict[str, Any],
                    granted: Optional[tuple[str, ...]]) -> None:
        """:class:`InsufficientScope` unless every requirement for the path holds.

        With a token (``granted``: its scopes): ``bearer_rules`` and ``access_rules`` alike, the
        latter's claim conditions held against the token's claims (build time refuses their
        ``max_age``/``acr_values`` here).  Without (a session: ``granted`` None): ``bearer_rules``,
        whose scope requirements no session meets; the middleware applies ``access_rules`` itself.
        """
        rules = self.token_rules if granted is not None else self.config.bearer_rules
        if not rules:
            return
        path = environ.get("PATH_INFO", "")
        decision = decide(rules, path, claims, None, None, 0.0, MAX_AGE_LEEWAY, granted)
        if not decision.allowed:
            log.info("sso: bearer request stopped at %r: %s", path[:200], decision.reason)
            needed = dict.fromkeys(value for rule in matching(rules, path) for condition in rule.conditions
                                   if condition.op == GRANTED for value in condition.values)
            raise InsufficientScope("the access token lacks a scope or claim this path requires",
                                    scopes=tuple(needed))

    def _token(self, environ: dict[str, Any]) -> Optional[str]:
        """The bearer token of the ``Authorization`` header; None when the request sends no credentials."""
        # Parsed, not searched: ``access%5Ftoken`` is the same parameter to every application.
        query = environ.get("QUERY_STRING", "")
        if query and any(name == "access_token" for name, _ in parse_qsl(query, True)):
            raise InvalidBearerRequest("access tokens are not accepted in the URL; send the Authorization header")
        header = environ.get("HTTP_AUTHORIZATION")
        if header is None:
            return None
        if not isinstance(header, str) or len(header) > MAX_TOKEN_LENGTH:
            raise InvalidBearerRequest("the Authorization header is too long")
        scheme = header.strip().partition(" ")[0]
        if scheme.lower() != "bearer":
            if self.config.bearer_only or not scheme:
                raise InvalidBearerRequest("the Authorization header must hold bearer credentials (RFC 6750 2.1)")
            return None  # another scheme (Basic...): no bearer credentials; the session decides
        match = _CREDENTIALS.fullmatch(header.strip())
        if match is None:
            raise InvalidBearerRequest("malformed bearer credentials (RFC 6750 section 2.1)")
        return match.group(1)

    def refusal(self, failure: SSOFailure) -> Response:
        """The JSON answer to a refused request, with the RFC 6750 challenge when it is the token's fault."""
        body: dict[str, Any] = {"code": failure.code, "message": failure.message}
        response = Response(status=failure.status, content_type="application/json", charset=None)
        if isinstance(failure, BearerFailure):
            description = _DESCRIPTION_UNSAFE.sub("?", failure.detail)[:300]
            challenge = f'Bearer realm="{_quoted(self.config.origin)}"'
            if failure.error:
                challenge += f', error="{failure.error}"'
                body["error"] = failure.error
                if description:
                    challenge += f', error_description="{description}"'
                    body["error_description"] = description
            if isinstance(failure, InsufficientScope) and failure.scopes:
                challenge += f', scope="{" ".join(failure.scopes)}"'
                body["scope"] = " ".join(failure.scopes)
            response.headers["WWW-Authenticate"] = challenge
            log.info("sso: bearer request refused: %s%s", failure.code, f" ({description})" if description else "")
        else:
            log.warning("sso: bearer token not checked, provider trouble: %s", failure)
        response.body = json.dumps(body).encode()
        return no_store(response)
