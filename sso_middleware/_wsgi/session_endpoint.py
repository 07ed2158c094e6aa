"""The session endpoint (``session_endpoint_path``, off by default): the page's own scripts ask about the session.

``GET`` (or ``HEAD``) answers JSON: ``{"signed_in": false}`` for nobody (200, never a
redirect), else ``signed_in``, ``sub``, ``claims`` (what the session keeps), the deadlines
``idle_expires_at`` and ``expires_at`` (Unix seconds) and, with ``keep_access_token``,
``access_token_expires_at`` (and ``token_error`` when the session lost its token).  It
reads the session and changes nothing: it does not count as activity, so a page polling
it does not keep an abandoned session alive, and it never refreshes.

``POST`` refreshes the access token now -- through :class:`~sso_middleware._session.refresh.TokenRefresher`,
the same single-flight path (and lock) as a due refresh -- restarts the idle timeout, and
answers the same JSON; when the refresh cannot be made it answers a
:class:`~sso_middleware.errors.SessionEndpointFailure` code (``no_refresh_token`` 409,
``refresh_failed`` 401, ``refresh_unavailable`` 503, or the provider's trouble:
``provider_unreachable`` 503, ``provider_timeout`` 504, others 502), with the session's
state beside it.  Any other method is 405 with ``Allow``.  The request never reaches the
application; every answer is ``Cache-Control: no-store`` and ``Vary: Cookie``; a store
that cannot be reached is 503 ``session_store_unavailable``, never a 500.

Security caveats.  A POST changes state, so it must come from this site's own pages:
its ``Origin`` must be one of ``base_url``'s origins exactly (or, when a browser sent none,
``Sec-Fetch-Site: same-origin``; a ``Sec-Fetch-Site`` other than ``same-origin`` is refused
either way), and it must carry ``X-SSO-CSRF: 1``.  The custom header is what a cross-site
form can never send and what makes any cross-origin ``fetch`` ask a CORS preflight first,
which this endpoint refuses (405), so the POST is never sent; the ``Origin`` check also
stops sibling subdomains, which ``SameSite=Lax`` cookies do not.  A GET needs neither:
it changes nothing and its answer is readable only by same-origin scripts (no CORS
headers).  No token is ever in an answer -- only the access token's expiry -- and the
claims are the user's own, shown to the user's own browser.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from typing import Any, Callable, Optional

from webob import Response

from .._config.settings import SSOConfig
from .._session.refresh import NO_REFRESH_TOKEN, REFRESH_FAILED, RETRY_SECONDS, TEMPORARILY_UNAVAILABLE, TokenRefresher
from .._session.state import SessionStore, SessionTooLarge, SignedInUser, SSOSession, StoreUnavailable, Tokens
from ..errors import (
    CrossOriginRefused,
    MethodNotAllowed,
    NoRefreshToken,
    RefreshRefused,
    RefreshUnavailable,
    SSOFailure,
    describe,
)
from .bodies import refusal
from .pages import no_store
from .same_origin import foreign_origin

log = logging.getLogger("sso_middleware")

#: The methods the endpoint answers.
ALLOW = "GET, HEAD, POST"
#: The header (and its one value) a POST must carry: no cross-site form can send it, and cross-origin scripts
#: cannot send it without a CORS preflight, which is refused.
CSRF_HEADER = "X-SSO-CSRF"
CSRF_VALUE = "1"
#: The JSON error of a POST by nobody (as for API calls to protected paths).
LOGIN_REQUIRED = "login_required"


def cross_origin_reason(environ: dict[str, Any], origins: tuple[str, ...]) -> Optional[str]:
    """Why a POST is not proven to come from this site's own pages (for the log), or None when it is.

    The origin rule is :func:`~sso_middleware._wsgi.same_origin.foreign_origin`'s; this endpoint adds its header.
    """
    foreign = foreign_origin(environ, origins)
    if foreign is not None:
        return foreign
    if environ.get("HTTP_" + CSRF_HEADER.upper().replace("-", "_")) != CSRF_VALUE:
        return f"no {CSRF_HEADER}: {CSRF_VALUE} header"
    return None


class SessionEndpoint:
    """The WSGI answer of ``session_endpoint_path``; one per middleware, no per-request state on ``self``."""

    def __init__(self, config: SSOConfig, store: SessionStore, refresher: TokenRefresher,
                 clock: Callable[[], float]) -> None:
        self.config = config
        self.store = store
        self.refresher = refresher
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        if method in ("GET", "HEAD"):
            response = self._answer(environ, refresh=False)
        elif method == "POST":
            refused = refusal(environ, self.config.max_request_body, as_json=True)  # never read, but bounded
            reason = cross_origin_reason(environ, self.config.origins)
            if refused is not None:  # 413, or 400 for a malformed length: JSON too, with this endpoint's headers
                response = refused
                response.headers["Vary"] = "Cookie"
                response.headers["X-Content-Type-Options"] = "nosniff"
            elif reason is not None:
                log.info("sso: session endpoint POST refused: %s", reason)
                response = _json(CrossOriginRefused.status, _error(CrossOriginRefused))
            else:
                response = self._answer(environ, refresh=True)
        else:
            response = _json(MethodNotAllowed.status, _error(MethodNotAllowed))
            response.headers["Allow"] = ALLOW
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _answer(self, environ: dict[str, Any], refresh: bool) -> Response:
        session = self.store.open(environ)
        try:
            status, document = self._state(session, refresh)
            headers = session.commit()
            if session.ended_elsewhere:  # signed out by a concurrent request meanwhile
                status, document = (401, {"signed_in": False, "error": LOGIN_REQUIRED}) if refresh else (
                    200, {"signed_in": False})
        except (StoreUnavailable, SessionTooLarge) as exc:
            log.error("sso: session endpoint: the session store failed: %s", exc)
            status, document, headers = exc.status, _error(type(exc)), list(session.headers)
        except Exception:
            log.exception("sso: unexpected error on the session endpoint")
            status, document, headers = 500, {"error": "internal_error"}, list(session.headers)
        response = _json(status, document)
        if status == RefreshUnavailable.status and document.get("error") == RefreshUnavailable.code:
            response.headers["Retry-After"] = str(int(RETRY_SECONDS))
        response.headerlist.extend(headers)
        return response

    def _state(self, session: SSOSession, refresh: bool) -> tuple[int, dict[str, Any]]:
        """The status and JSON document of a GET (``refresh=False``) or a POST."""
        now = self.clock()
        user = session.current_user(now, stamp=False)  # a GET is no activity; a POST extends below, always
        if user is None:
            if refresh:
                return 401, {"signed_in": False, "error": LOGIN_REQUIRED,
                             "message": "Nobody is signed in: there is no session to refresh."}
            return 200, {"signed_in": False}
        if not refresh:
            return 200, self._document(session, user, session.tokens() if self.config.keep_access_token else None)
        session.extend(now)
        if not self.config.keep_access_token:  # nothing to refresh: the POST only extends the session
            return 200, self._document(session, user, None)
        state = self.refresher.current(session, user, now, force=True)
        if state.user is None:  # the provider refused the refresh token (sign_out), or the session ended meanwhile
            error = RefreshRefused if state.error == REFRESH_FAILED else None
            document: dict[str, Any] = {"signed_in": False, **(_error(error) if error else {"error": LOGIN_REQUIRED})}
            return 401, document
        document = self._document(session, state.user, state.tokens or session.tokens())
        failure = _failure_of(state.error, state.skipped, state.tokens)
        if failure is None:
            return 200, document
        status, error_document = failure
        return status, {**document, **error_document}

    def _document(self, session: SSOSession, user: SignedInUser, tokens: Optional[Tokens]) -> dict[str, Any]:
        idle, absolute = session.deadlines(user)
        document: dict[str, Any] = {
            "signed_in": True,
            "sub": user.sub,
            "claims": dict(user.claims),
            "idle_expires_at": math.floor(idle),
            "expires_at": math.floor(absolute),
        }
        if self.config.keep_access_token:
            usable = tokens is not None and bool(tokens.access_token)
            expires_at = tokens.expires_at if tokens is not None and usable else None
            document["access_token_expires_at"] = math.floor(expires_at) if expires_at is not None else None
            if tokens is not None and tokens.error:
                document["token_error"] = tokens.error
        return document


def _failure_of(error: Optional[str], skipped: Optional[str],
                tokens: Optional[Tokens]) -> Optional[tuple[int, dict[str, Any]]]:
    """The status and error members of a POST whose refresh did not happen (None: it did)."""
    if error == REFRESH_FAILED:  # refused by the provider (keep_session: still signed in, without a token)
        return RefreshRefused.status, _error(RefreshRefused)
    if skipped == NO_REFRESH_TOKEN or (skipped is None and tokens is None):
        return NoRefreshToken.status, _error(NoRefreshToken)
    if skipped == TEMPORARILY_UNAVAILABLE:
        return RefreshUnavailable.status, _error(RefreshUnavailable)
    if skipped is not None:  # the provider's trouble: its code (provider_unreachable...), never a 4xx of ours
        status, message, code = describe(skipped)  # a code outside the catalogue is a 4xx here: 502 then
        return (status if status >= 500 else 502), {"error": code, "message": message}
    return None


def _error(kind: type[SSOFailure]) -> dict[str, Any]:
    return {"error": kind.code, "message": kind.message}


def _json(status: int, document: dict[str, Any]) -> Response:
    body = json.dumps(document, default=str).encode()
    response = Response(body=body, status=status, content_type="application/json", charset=None)
    response.headers["Vary"] = "Cookie"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return no_store(response)


__all__ = ["ALLOW", "CSRF_HEADER", "CSRF_VALUE", "SessionEndpoint", "cross_origin_reason"]
