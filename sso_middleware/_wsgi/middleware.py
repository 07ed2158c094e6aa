"""``SSOMiddleware``: server-side single sign-on in front of any WSGI application.

Wrap the application once::

    app = SSOMiddleware(legacy_app, issuer="https://tenant.eu.auth0.com/",
                        client_id="...", client_secret="...",
                        base_url="https://app2.example", session_secret="...")

Requests to the authentication paths (``/auth/sso``, ``/auth/login``,
``/auth/callback``, ``/auth/logout``, ``/auth/failure`` by default, and the
session endpoint when ``session_endpoint_path`` is set: :mod:`.session_endpoint`) are answered
here (a request body over ``max_request_body``, or unsized, is refused with
413 before anything reads it).  Every other request passes through to the
application untouched except for the environ: when a user is signed in,
``environ["sso.userinfo"]`` holds their claims and ``REMOTE_USER`` the
``remote_user_claim``; otherwise both are absent.  Anonymous requests for
``protected_paths`` are sent to sign in (page loads) or answered 401 (API calls);
a form POST under ``preserve_post`` is kept across that sign-in (:mod:`.preserved_post`).
On ``bearer_paths`` an ``Authorization: Bearer`` access token authenticates the
request instead of a session (:mod:`.bearer`).

Security caveat: ``REMOTE_USER``, ``sso.userinfo``, ``sso.connection`` and the
middleware's other keys (``OWN_KEYS``: the access token, and ``sso.api_settings``,
which decides how :func:`~sso_middleware.api_session` sends it) arriving from outside
are always removed, so the application can trust them -- but only if nothing
between this middleware and the application sets them again.  Mount it
outermost among the authentication-related middlewares.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Callable, Optional, Union
from urllib.parse import urlencode

from requests.adapters import BaseAdapter
from webob import Request, Response

from .._config.settings import SSOConfig
from .._config.validation import check_known
from .._oidc.access_token import AccessTokenVerifier
from .._oidc.client import OIDCClient
from .._oidc.http import ProviderHTTP
from .._policy.rules import MAX_AGE_LEEWAY, AccessRule, Decision, as_sent, decide, matching
from .._session.refresh import TokenRefresher, TokenState
from .._session.state import SessionStore, SessionTooLarge, SignedInUser, SSOSession, StoreUnavailable
from ..errors import AuthFailure, BearerTokenMissing, ProviderError
from .api_session import APISettings
from .bearer import BearerGate
from .bodies import refusal
from .environ import (
    ACCESS_TOKEN_EXPIRES_KEY,
    ACCESS_TOKEN_KEY,
    API_SETTINGS_KEY,
    CONNECTION_KEY,
    ORGANIZATION_KEY,
    OWN_KEYS,
    TOKEN_ERROR_KEY,
    USERINFO_KEY,
)
from .handlers import Handler, Handlers, redirect
from .navigation import is_page_load, login_target
from .observability import Observability
from .pages import failure_page, forbidden, login_required, server_error, step_up_required
from .preserved_post import PreservePost
from .session_endpoint import SessionEndpoint

log = logging.getLogger("sso_middleware")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SSOMiddleware:
    """WSGI middleware adding OpenID Connect single sign-on to ``app``.

    Settings come as an :class:`SSOConfig`, as keyword arguments with the same
    names, or both (keywords override the config's values).

    Two seams for tests (``sso_middleware.testing`` serves both):

    - ``http_transport``: a ``requests`` transport adapter that answers every request
      the middleware sends to the provider (discovery, JWKS, token, userinfo, PAR), in
      place of the network -- ``FakeProvider().transport()``, or a ``RecordingTransport``
      that forwards and counts. Security caveat: the adapter is handed the proxy, CA
      bundle and client certificate settings but is free to ignore them; it is for tests.
    - ``clock``: a callable returning seconds since the epoch (default ``time.time``),
      the time the middleware's session timeouts, sign-in lifetime, ``max_age``, token
      expiry and refresh read (a store's own expiry keeps the real time) -- a
      ``testing.Clock`` lets a test move it.
    """

    def __init__(
        self,
        app: WSGIApp,
        config: Optional[SSOConfig] = None,
        *,
        http_transport: Optional[BaseAdapter] = None,
        clock: Optional[Callable[[], float]] = None,
        **settings: Any,
    ) -> None:
        if config is None:
            config = SSOConfig(**check_known(settings))
        elif settings:
            config = config.replace(**settings)
        self.app = app
        self.config = config
        self._clock: Callable[[], float] = clock if clock is not None else time.time
        http = ProviderHTTP.for_config(config, transport=http_transport)
        self.client = OIDCClient(config, http=http, clock=self._clock)
        self.store = SessionStore(config)
        self.handlers = Handlers(config, self.client, self.store, clock=self._clock)
        self.refresher = TokenRefresher(config, self.client, self.store)
        self.api_settings = APISettings.from_config(config)  # handed to api_session next to each token
        self.routes: dict[str, Handler] = self.handlers.routes()
        observability = Observability(config, self.client, self.store, self._clock)
        self.routes.update(observability.routes())  # metrics_path, health_path
        # Paths that need a signed-in user: protected_paths and the paths of the access rules.
        # (protected_paths are canonical prefixes already: SSOConfig checked and normalized them.)
        self.guarded = tuple(AccessRule(path=prefix) for prefix in config.protected_paths) + tuple(config.access_rules)
        self.bearer = BearerGate(config, AccessTokenVerifier(self.client)) if config.bearer_paths else None
        self.preserve = PreservePost(config, self.handlers.post_records) if config.preserve_post else None
        self.session_endpoint = (SessionEndpoint(config, self.store, self.refresher, self._clock)
                                 if config.session_endpoint_path else None)

    @property
    def clock(self) -> Callable[[], float]:
        """The clock given at construction, read-only: the client, the routes and the sessions all share it."""
        return self._clock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        handler = self.routes.get(path)
        if handler is not None:
            return self._answer(handler, environ, start_response)
        if self.session_endpoint is not None and path == self.config.session_endpoint_path:
            for key in OWN_KEYS:  # nothing downstream reads them, but no request keeps them either
                environ.pop(key, None)
            return self.session_endpoint(environ, start_response)
        return self._pass_through(environ, start_response)

    # -- authentication routes ---------------------------------------------

    def _answer(self, handler: Handler, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Before anything could read it: a body over max_request_body, or unsized, is refused unread (413).
        as_json = environ.get("PATH_INFO") == self.config.backchannel_logout_path
        refused = refusal(environ, self.config.max_request_body, as_json)
        if refused is not None:
            log.info("sso: %s refused: %s", environ.get("PATH_INFO"), refused.status)
            answer: Iterable[bytes] = refused(environ, start_response)
            return answer
        request = Request(environ)
        session = self.store.open(environ)
        try:
            response = handler(request, session)
            headers = session.commit()
        except AuthFailure as failure:
            level = logging.WARNING if isinstance(failure, ProviderError) else logging.INFO
            log.log(level, "sso: %s failed: %s", request.path_info, failure)
            self.store.metrics.route_failed(environ, failure.code)
            response = redirect(self.handlers.failure_location(failure.code, environ))
            headers = _commit_quietly(session)  # a redeemed sign-in stays used up
        except (StoreUnavailable, SessionTooLarge) as exc:
            self.store.metrics.route_failed(environ, exc.code)
            response = redirect(self.handlers.failure_location(_store_failure(exc), environ))
            headers = list(session.headers)  # transaction cookies need no store: a redeemed one is still expired
        except Exception:
            log.exception("sso: unexpected error on %s", request.path_info)
            response, headers = server_error(), list(session.headers)
        response.headerlist.extend(headers)
        result: Iterable[bytes] = response(environ, start_response)
        return result

    # -- everything else ---------------------------------------------------

    def _pass_through(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        for key in OWN_KEYS:
            environ.pop(key, None)
        api = self.bearer if self.bearer is not None and self.bearer.covers(environ.get("PATH_INFO", "")) else None
        if api is not None:  # a bearer token answers here, touching no session; without one the session decides
            answered = api.answer(environ, start_response, self.app)
            if answered is not None:
                return answered
        if not self.store.may_have_session(environ):  # anonymous, no cookie: touch nothing
            if api is not None:
                return self._respond(api.refusal(BearerTokenMissing()), [], environ, start_response)
            if self._is_guarded(environ.get("PATH_INFO", "")):
                return self._require_login(environ, [], start_response)
            return self.app(environ, start_response)
        session = self.store.open(environ)
        tokens: Optional[TokenState] = None
        try:
            now = self._clock()
            user = session.current_user(now)
            if user is not None and self.config.keep_access_token:
                tokens = self.refresher.current(session, user, now)
                user = tokens.user
            headers = session.commit()
            if session.ended_elsewhere:  # signed out by a concurrent request: not signed in any more
                user = None
        except (StoreUnavailable, SessionTooLarge) as exc:
            page = failure_page(_store_failure(exc), self.config.base_url_for(environ) + "/", environ,
                                self.handlers.page_template)
            answer: Iterable[bytes] = page(environ, start_response)
            return answer
        if user is not None:
            claims = dict(user.claims)
            environ[USERINFO_KEY] = claims
            environ[CONNECTION_KEY] = user.connection
            if user.organization:  # only for a sign-in through an Auth0 organization (others see no new key)
                environ[ORGANIZATION_KEY] = dict(user.organization)
            remote_user = claims.get(self.config.remote_user_claim)
            if remote_user is not None:
                environ["REMOTE_USER"] = str(remote_user)
            if tokens is not None:
                _set_token_keys(environ, tokens, self.api_settings)
        if api is not None:  # no token sent: the session's user, held to bearer_rules (none: 401)
            refused = api.session_refusal(dict(user.claims) if user is not None else None, environ)
            if refused is not None:
                return self._respond(refused, headers, environ, start_response)
        if user is None:
            if self._is_guarded(environ.get("PATH_INFO", "")):
                ended = session.expired_user
                return self._require_login(environ, headers, start_response, ended.sub if ended else None)
        elif self.config.access_rules and not self._is_failure_page(environ.get("PATH_INFO", "")):
            decision = decide(self.config.access_rules, environ.get("PATH_INFO", ""), user.claims, user.auth_time,
                              user.acr, now, MAX_AGE_LEEWAY)
            if not decision.allowed:
                return self._refuse(environ, headers, start_response, user, decision)
        if not headers:
            return self.app(environ, start_response)

        def start_with_cookie(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, list(response_headers) + headers, exc_info)

        return self.app(environ, start_with_cookie)

    def _is_guarded(self, path: str) -> bool:
        """True when ``path`` needs a signed-in user (``protected_paths`` or an access rule's path)."""
        return bool(self.guarded) and bool(matching(self.guarded, path)) and not self._is_failure_page(path)

    def _is_failure_page(self, path: str) -> bool:
        """The failure page, when the application serves it: never guarded, or a failing sign-in would loop.

        Only the path *as sent* counts (repeated slashes collapsed, a trailing slash dropped, dot segments
        kept): the application routes ``/admin/../auth/failure`` under ``/admin``, so a path that merely
        resolves to the failure page must stay guarded.
        """
        return not self.config.serve_failure_page and as_sent(path) == self.config.failure_path

    def _require_login(
        self, environ: dict[str, Any], headers: list[tuple[str, str]], start_response: Callable[..., Any],
        ended_sub: Optional[str] = None,
    ) -> Iterable[bytes]:
        """Send to sign in, 401 for API calls; a form under preserve_post is kept (for ``ended_sub``, when known)."""
        if self.preserve is not None and self.preserve.covers(environ):
            return self._preserve(self.preserve, environ, headers, start_response, None, ended_sub)
        request = Request(environ)
        login_url = self._login_url(environ)
        response = redirect(login_url) if is_page_load(request) else login_required(login_url, self.config.origin)
        return self._respond(response, headers, environ, start_response)

    def _refuse(
        self,
        environ: dict[str, Any],
        headers: list[tuple[str, str]],
        start_response: Callable[..., Any],
        user: SignedInUser,
        decision: Decision,
    ) -> Iterable[bytes]:
        """A signed-in user the access rules stop: authenticate again (step-up), or 403 -- never a login loop."""
        request = Request(environ)
        log.info("sso: sub=%r stopped at %r: %s", user.sub, environ.get("PATH_INFO", "")[:200], decision.reason)
        step_up = decision.step_up
        if step_up is None:
            response = forbidden(self.config.base_url_for(environ) + "/", as_json=not is_page_load(request),
                                 environ=environ, template=self.handlers.page_template)
        else:
            # The login route asks the provider for what the rules of the target demand (max_age, acr_values)
            # and refuses a sign-in that does not deliver it, so a provider ignoring them cannot cause a loop.
            if self.preserve is not None and self.preserve.covers(environ):
                return self._preserve(self.preserve, environ, headers, start_response, user.connection, user.sub)
            login_url = self._login_url(environ, user.connection)
            if is_page_load(request):
                response = redirect(login_url)
            else:
                response = step_up_required(login_url, self.config.origin, step_up.max_age, step_up.acr_values)
        return self._respond(response, headers, environ, start_response)

    def _preserve(
        self,
        preserve: PreservePost,
        environ: dict[str, Any],
        headers: list[tuple[str, str]],
        start_response: Callable[..., Any],
        connection: Optional[str],
        sub: Optional[str],
    ) -> Iterable[bytes]:
        """preserve_post: keep the form (for ``sub``, when known), start the sign-in; or a page: not kept."""
        request = Request(environ)
        session = self.store.open(environ)  # only for the transaction cookie's header: nothing is read or written
        home = self.config.base_url_for(environ) + "/"
        target = login_target(environ)
        reference: Optional[str] = None
        try:
            reference = preserve.keep(environ, target, self._clock(), sub)
            response = self.handlers.start_preserved_sign_in(request, session, target, connection, reference)
        except AuthFailure as failure:
            if reference is not None:  # kept, but the sign-in could not start: nobody would take it
                _discard_quietly(preserve, reference)
            level = logging.WARNING if isinstance(failure, ProviderError) else logging.INFO
            log.log(level, "sso: form to %r not kept: %s", environ.get("PATH_INFO", "")[:200], failure)
            response = failure_page(failure.code, home, environ, self.handlers.page_template)
        except (StoreUnavailable, SessionTooLarge) as exc:
            response = failure_page(_store_failure(exc), home, environ, self.handlers.page_template)
        return self._respond(response, headers + session.headers, environ, start_response)

    def _login_url(self, environ: dict[str, Any], connection: Optional[str] = None) -> str:
        params = {"target_url": login_target(environ)}
        if connection:
            params["connection"] = connection
        return f"{self.config.base_url_for(environ)}{self.config.login_path}?{urlencode(params)}"

    @staticmethod
    def _respond(
        response: Response, headers: list[tuple[str, str]], environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        response.headerlist.extend(headers)
        result: Iterable[bytes] = response(environ, start_response)
        return result


def _set_token_keys(environ: dict[str, Any], state: TokenState, api_settings: APISettings) -> None:
    if state.tokens is not None:
        environ[ACCESS_TOKEN_KEY] = state.tokens.access_token
        environ[ACCESS_TOKEN_EXPIRES_KEY] = state.tokens.expires_at
        environ[API_SETTINGS_KEY] = api_settings
    elif state.error is not None:
        environ[TOKEN_ERROR_KEY] = state.error
    else:
        environ[TOKEN_ERROR_KEY] = "no_token"


def _store_failure(exc: Union[StoreUnavailable, SessionTooLarge]) -> str:
    """Log a session-store failure for the operator; the failure code for the user."""
    if isinstance(exc, SessionTooLarge):
        log.error("sso: the session does not fit in a cookie (%s); choose a server-side session_type "
                  "(file, ext:redis, ext:memcached or postgresql)", exc)
        return exc.code
    log.error("sso: session store unavailable: %s", exc)
    return exc.code


def _discard_quietly(preserve: PreservePost, reference: str) -> None:
    try:
        preserve.records.discard(reference)
    except (StoreUnavailable, SessionTooLarge) as exc:  # it expires with its TTL anyway
        _store_failure(exc)


def _commit_quietly(session: SSOSession) -> list[tuple[str, str]]:
    try:
        return session.commit()
    except (StoreUnavailable, SessionTooLarge) as exc:
        _store_failure(exc)
        return list(session.headers)
