"""The front-channel logout route (OpenID Connect Front-Channel Logout 1.0): the provider's page ends sessions.

When a user signs out at the provider (or at another application through it), the
provider's logout page holds an ``<iframe src="frontchannel_logout_uri">`` for every
application the user signed in to, and the browser loads this route in it.  Two forms:

* ``?iss=<issuer>&sid=<sid>`` (the client registered ``frontchannel_logout_session_required``):
  every session of that provider session is ended in the store -- through the same sid
  index as a back-channel logout (:meth:`~sso_middleware._session.state.SessionStore.end_sessions`, unproven:
  on cookie and environ stores, only a sid that signed in on this host) -- so it ends on
  every process and host, and needs no cookie.
* no ``iss``/``sid``: the session of the cookie the browser sent is ended.  A cross-site
  iframe carries no ``SameSite=Lax`` cookie, so this form only works when the provider and
  the application are the same site (e.g. ``login.example.com`` and ``app.example.com``).

Answers are a small HTML page, never cached (``Cache-Control: no-cache, no-store``, as
section 2 recommends), framable only by the provider's origin (``frame-ancestors``: the
issuer's origin and the end-session endpoint's).  An unknown ``sid`` is a 200: the user is
already signed out here, which section 2 counts as success, and answering otherwise would
tell anyone which provider sessions have a session here.  Malformed requests and a foreign
``iss`` get a 4xx page (the provider ignores the frame's status, so it costs nothing and
shows the operator the misconfiguration); a store that cannot be written gets 503.

Security caveat: this is a GET that ends sessions with no signature, so anyone can make a
browser load it.  It can only *end* sessions: a forged request signs a user out (logout
CSRF), which ``logout_path`` allows anyway, and the ``sid`` form needs the provider's
session id, which only ID tokens and the provider's own pages carry.  The ``iss`` check is
a consistency check, not authentication: the issuer is public.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Callable, Optional

from webob import Request, Response

from .._config.settings import SSOConfig
from .._config.urls import provider_origins
from .._observe.seams import logout_outcome
from .._oidc.client import OIDCClient
from .._session.state import SessionStore, SSOSession
from ..errors import (
    AuthFailure,
    InvalidLogoutRequest,
    LogoutIssuerMismatch,
    LogoutRequestTooLong,
    ProviderError,
    SSOFailure,
    StoreUnavailable,
)
from .route_params import query_values

log = logging.getLogger("sso_middleware")

#: The longest query string read: an issuer URL and a session id fit many times over; servers refuse ~8 KB lines.
MAX_QUERY = 4096
#: A provider's session id: 1-255 visible ASCII characters (Auth0, Keycloak, Entra ID and oidc-provider use
#: URL-safe ids or UUIDs); anything else is no session id any provider issued.
_SID = re.compile(r"[\x21-\x7e]{1,255}")

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><p id="frontchannel-logout" data-code="{code}">{message}</p></body></html>
"""


class FrontchannelLogout:
    """The route's handler: ``__call__(request, session)``; holds no per-request state."""

    def __init__(self, config: SSOConfig, client: OIDCClient, store: SessionStore, clock: Callable[[], float]) -> None:
        self.config = config
        self.client = client
        self.store = store
        self.clock = clock

    @logout_outcome("frontchannel")
    def __call__(self, request: Request, session: SSOSession) -> Response:
        """Front-Channel Logout 1.0 section 2: end the session(s), answer 200 (4xx refused, 503 store down)."""
        if request.method != "GET":
            response = self._page(405, InvalidLogoutRequest.code, InvalidLogoutRequest.message)
            response.headers["Allow"] = "GET"
            return response
        try:
            sid = self._sid(request)
        except AuthFailure as refused:
            log.warning("sso: front-channel logout refused: %s", refused)
            return self._failure(refused)
        now = self.clock()
        try:
            if sid is not None:
                ended = self.store.end_sessions(sid, None, now, proven=False)  # the back-channel logout's own
                self.store.metrics.session_ended("frontchannel", ended)
                log.info("sso: front-channel logout for a sid ended %d session(s)", ended)
            else:
                user = session.stored_user()
                if user is not None:
                    self.store.revoke_login(user, now)  # cookie stores: copies of this cookie end too
                    session.sign_out()
                    self.store.metrics.session_ended("frontchannel", 1)
                    log.info("sso: front-channel logout signed out sub=%r (its cookie)", user.sub)
        except StoreUnavailable as exc:
            log.error("sso: front-channel logout could not end the sessions: %s", exc)
            return self._failure(exc)
        return self._page(200, "signed_out", "You are signed out of this application.")

    def _sid(self, request: Request) -> Optional[str]:
        """The checked ``sid`` of an ``iss``/``sid`` request; None for a request naming neither (cookie form)."""
        if len(request.environ.get("QUERY_STRING", "")) > MAX_QUERY:
            raise LogoutRequestTooLong(f"query string over {MAX_QUERY} characters")
        issuers = query_values(request, "iss", InvalidLogoutRequest)
        sids = query_values(request, "sid", InvalidLogoutRequest)
        if len(issuers) > 1 or len(sids) > 1:
            raise InvalidLogoutRequest("iss or sid given more than once")
        if not issuers and not sids:
            return None
        if not issuers or not sids:  # section 2: "if either is included, both MUST be"
            raise InvalidLogoutRequest("iss and sid must be sent together")
        if issuers[0] != self.config.issuer_url:
            raise LogoutIssuerMismatch("iss is not the configured issuer")
        sid = sids[0]
        if not _SID.fullmatch(sid):
            raise InvalidLogoutRequest("sid is not 1-255 visible ASCII characters")
        return sid

    def _failure(self, failure: SSOFailure) -> Response:
        return self._page(failure.status, failure.code, failure.message)

    def _page(self, status: int, code: str, message: str) -> Response:
        """The small page the provider's iframe shows (nobody sees it), with the headers the route needs."""
        title = "Signed out" if status == 200 else "Sign-out not done"
        body = _PAGE.format(title=title, code=html.escape(code, quote=True), message=html.escape(message))
        response = Response(body=body.encode(), status=status, content_type="text/html", charset="utf-8")
        # Section 2's recommendation verbatim: a cached answer would stop a later logout from reaching us.
        response.headers["Cache-Control"] = "no-cache, no-store"
        response.headers["Pragma"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Framed by the provider's logout page only (no X-Frame-Options: it cannot name an origin to allow).
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; frame-ancestors {' '.join(self.frame_ancestors())}"
        )
        return response

    def frame_ancestors(self) -> list[str]:
        """The origins that may frame this route: the issuer's, and the end-session endpoint's if different.

        The end-session endpoint comes from the cached discovery document; when the provider cannot be
        reached for it, the issuer's origin alone (the page that frames us is usually there).
        """
        try:
            endpoint = self.client.metadata().end_session_endpoint
        except ProviderError:
            endpoint = None
        return provider_origins(self.config.issuer_url, endpoint)
