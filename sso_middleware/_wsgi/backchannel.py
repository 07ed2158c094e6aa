"""The back-channel logout route (OpenID Connect Back-Channel Logout 1.0): the provider ends sessions.

The provider POSTs a signed logout token; a valid one ends every session of its ``sid`` (or
of its ``sub`` when it names no ``sid``) in every process, through the store's sid/sub index
(or the revocation journal of stores that keep no records).

Security caveat: the token is validated like an ID token (signature, ``iss``, ``aud``, times)
plus the logout rules (``events``, no ``nonce``, a ``jti``); a ``jti`` already carried out is
refused as a replay until the token expires, per process (a token replayed to another worker
ends sessions that are already ended).  Answers are JSON, never cached, never the browser's
failure-page redirect.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable, Optional

from webob import Request, Response

from .._config.settings import SSOConfig
from .._observe.seams import logout_outcome
from .._oidc.client import OIDCClient
from .._session.state import SessionStore, SSOSession
from ..errors import AuthFailure, InvalidLogoutToken, InvalidRequest, ProviderError, StoreUnavailable
from .bodies import BodyError, read_form
from .pages import no_store

log = logging.getLogger("sso_middleware")


class BackchannelLogout:
    """The route's handler: ``__call__(request, session)``, with the replay memory of this process."""

    def __init__(self, config: SSOConfig, client: OIDCClient, store: SessionStore, clock: Callable[[], float]) -> None:
        self.config = config
        self.client = client
        self.store = store
        self.clock = clock
        self._seen_jti: dict[str, float] = {}
        self._jti_lock = threading.Lock()

    @logout_outcome("backchannel")
    def __call__(self, request: Request, session: SSOSession) -> Response:
        """OpenID Connect Back-Channel Logout 1.0 section 2.5-2.8: 200 when done, 400 when refused."""
        if request.method != "POST":
            response = _json(405, {"error": "invalid_request", "error_description": "POST a logout_token"})
            response.headers["Allow"] = "POST"
            return response
        try:
            token = _form_param(request, "logout_token", self.config.max_request_body)
            if not token:
                raise InvalidRequest("no logout_token in the POST body")
            claims = self.client.validate_logout_token(token)
            self._refuse_replay(claims)
        except ProviderError as failure:
            log.warning("sso: back-channel logout could not be checked: %s", failure)
            return _json(503, {"error": "temporarily_unavailable"})
        except AuthFailure as failure:
            log.warning("sso: back-channel logout refused: %s", failure)
            return _json(400, {"error": "invalid_request", "error_description": failure.code})
        sid, sub = claims.get("sid"), claims.get("sub")
        try:
            ended = self.store.end_sessions(sid, sub, self.clock())
        except StoreUnavailable as exc:
            # Not done: a 503 (not the browser's failure-page redirect); the jti is not recorded,
            # so the provider's retry of this very token is not refused as a replay.
            log.error("sso: back-channel logout could not end the sessions: %s", exc)
            return _json(503, {"error": "temporarily_unavailable"})
        self._record_jti(claims)
        self.store.metrics.session_ended("backchannel", ended)
        log.info("sso: back-channel logout for %s ended %d session(s)", "sid" if sid else "sub", ended)
        return _json(200, None)

    def _refuse_replay(self, claims: dict[str, Any]) -> None:
        """Refuse a logout token whose ``jti`` this process has already carried out (until it expires).

        Every validated logout token has one: :func:`~sso_middleware._oidc.id_token.validate_logout_token`
        refuses a token without a non-empty string ``jti`` (Back-Channel Logout 1.0 section 2.4).
        """
        jti = str(claims["jti"])
        with self._jti_lock:
            if jti in self._seen_jti:
                raise InvalidLogoutToken("jti already used (replay)")

    def _record_jti(self, claims: dict[str, Any]) -> None:
        """Remember a carried-out logout token's ``jti`` until it expires (bounded: expired ones pruned)."""
        jti = str(claims["jti"])
        now = self.clock()
        with self._jti_lock:
            if len(self._seen_jti) > 10000:
                self._seen_jti = {key: exp for key, exp in self._seen_jti.items() if exp > now}
            self._seen_jti[jti] = float(claims["exp"]) + self.config.clock_skew


def _json(status: int, body: Optional[dict[str, Any]]) -> Response:
    """A JSON (or empty) answer that is never cached (Back-Channel Logout 1.0 section 2.8)."""
    response = Response(status=status)
    if body is not None:
        response.content_type = "application/json"
        response.charset = None
        response.body = json.dumps(body).encode()
    return no_store(response)


def _form_param(request: Request, name: str, limit: int) -> Optional[str]:
    """One text field of a POSTed form body of at most ``limit`` bytes (the middleware refused larger ones).

    For the routes that need a body (back-channel logout); a repeated field is refused as ambiguous.
    """
    if request.method != "POST":
        return None
    try:
        values = read_form(request.environ, limit).get(name, [])
    except BodyError as refused:
        raise InvalidRequest(refused.reason) from None
    if len(values) > 1:
        raise InvalidRequest(f"parameter {name!r} given more than once")
    return values[0] if values else None
