"""One function per authentication route: a WebOb ``Request`` in, a ``Response`` out.

The handlers hold no per-request state on ``self`` (workers are threaded);
each call gets the request and that request's :class:`~sso_middleware._session.state.SSOSession`.
They raise :class:`~sso_middleware.errors.AuthFailure` for anything that stops a sign-in;
the middleware turns that into the failure page in one place.

Routes (paths are settings):

* ``sso``: ``?connection=...&target_url=...`` -- redirect when already signed in
  through that connection, else start a (by default silent) sign-in.
* ``login``: ``?target_url=...`` (optional ``connection``) -- interactive sign-in.
  Both pass the ``forward_params`` and Auth0's ``organization``/``invitation`` on
  (:mod:`sso_middleware._policy.authorize_params`); the callback checks the ID token's organization.
* ``callback``: the authorization response (a GET's query, or with
  ``response_mode = form_post`` a POSTed form, read within ``max_request_body``;
  the other method is refused): checks ``state`` (single use),
  RFC 9207 ``iss``, falls back once from a failed silent attempt, exchanges
  the code, runs the ``on_sign_in`` hook (:mod:`sso_middleware._policy.sign_in_hook`), keeps the
  ``userinfo_claims`` and signs the user in under a new session id; with a form kept for the
  sign-in (``preserve_post``) it answers with the page that posts it again, once.
* ``logout``: deletes the session, revokes its tokens (RFC 7009, :mod:`sso_middleware._oidc.revocation`),
  then ends the provider session.
* ``failure``: the escaped failure page.
* ``backchannel_logout``: a provider-signed ``logout_token`` (POST) ends every
  session of its ``sid`` (or ``sub``), on every process sharing the store.
* ``frontchannel_logout`` (off by default): the provider's logout page frames it; ``iss``
  and ``sid`` end that provider session's sessions, else the cookie's (:mod:`.frontchannel`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Optional
from urllib.parse import urlencode

from webob import Request, Response
from webob.exc import HTTPSeeOther
from webob.multidict import MultiDict

from .._config import page_template
from .._config.settings import SSOConfig
from .._oidc.client import OIDCClient
from .._oidc.revocation import TokenRevoker
from .._policy.authorize_params import (
    RequestParams,
    checked_organization,
    for_attempt,
    from_request,
    organization_matches,
)
from .._policy.redirects import absolute_target, app_path
from .._policy.rules import MAX_AGE_LEEWAY, StepUp, matching, step_up_for
from .._policy.sign_in_hook import SignInTokens, kept_claims
from .._policy.sign_in_hook import run as run_sign_in_hook
from .._sealing import same_text
from .._session.preserved_posts import PostRecords
from .._session.state import SessionStore, SignedInUser, SSOSession, Tokens
from ..errors import (
    InvalidAuthorizeParam,
    InvalidState,
    InvalidTargetUrl,
    MissingCode,
    PreservePostLost,
    PreservePostOtherUser,
    ProviderRefused,
    StepUpFailed,
)
from .backchannel import BackchannelLogout
from .failure_codes import SIG_PARAM, failure_query, shown_code
from .frontchannel import FrontchannelLogout
from .pages import failure_page, no_store
from .preserved_post import resubmit_page
from .route_params import callback_params, connection_param, param, target_param
from .transactions import Transaction, TransactionCookies

log = logging.getLogger("sso_middleware")

#: Provider answers to ``prompt=none`` that mean "the user must interact".
SILENT_FAILURES = frozenset(
    {"login_required", "consent_required", "interaction_required", "account_selection_required"}
)

#: ID-token claims about the token itself rather than the user; kept out of ``sso.userinfo``.
PROTOCOL_CLAIMS = frozenset(
    {"aud", "iss", "iat", "exp", "nbf", "nonce", "azp", "at_hash", "c_hash", "s_hash", "jti", "sid", "auth_time"}
)

Handler = Callable[[Request, SSOSession], Response]


class Handlers:
    """The authentication routes of one middleware instance."""

    def __init__(self, config: SSOConfig, client: OIDCClient, store: SessionStore, clock: Callable[[], float]) -> None:
        self.config = config
        self.client = client
        self.store = store
        self.clock = clock
        self.transactions = TransactionCookies(config)
        self.backchannel_logout = BackchannelLogout(config, client, store, clock)
        self.frontchannel_logout = FrontchannelLogout(config, client, store, clock)
        self.post_records = PostRecords(config, store.backend)
        self.revoker = TokenRevoker(client)
        #: The operator's failure page (``failure_page_template``), read when the middleware is built; None: built-in.
        self.page_template = page_template.load(config.failure_page_template) if config.failure_page_template else None

    def routes(self) -> dict[str, Handler]:
        config = self.config
        routes: dict[str, Handler] = {
            config.sso_path: self.sso,
            config.login_path: self.login,
            config.callback_path: self.callback,
            config.logout_path: self.logout,
        }
        if config.serve_failure_page:
            routes[config.failure_path] = self.failure
        if config.backchannel_logout_path:
            routes[config.backchannel_logout_path] = self.backchannel_logout
        if config.frontchannel_logout_path:
            routes[config.frontchannel_logout_path] = self.frontchannel_logout
        return routes

    # -- entry points ------------------------------------------------------

    def sso(self, request: Request, session: SSOSession) -> Response:
        target = target_param(self.config, request, required=True)
        connection = connection_param(self.config, request, required=True)
        asked = self._request_params(request)
        user = session.current_user(self.clock())
        if user is not None and user.connection == connection and (
            asked.organization is None or organization_matches(asked.organization, user.organization)
        ):
            return self._redirect(target, request)
        prompt = "none" if self.config.silent_sso else None
        return self._start_sign_in(request, session, target, connection, prompt, asked=asked)

    def login(self, request: Request, session: SSOSession) -> Response:
        """Interactive sign-in; also Auth0's "Application Login URI" (``?invitation=&organization=``)."""
        target = target_param(self.config, request, required=False)
        connection = connection_param(self.config, request, required=False)
        return self._start_sign_in(request, session, target, connection, prompt=None,
                                   asked=self._request_params(request))

    def callback(self, request: Request, session: SSOSession) -> Response:
        params = callback_params(self.config, request)
        state = params.get("state")
        transaction = None
        if state:
            transaction, expire = self.transactions.redeem(state, request.headers.get("Cookie", ""), self.clock())
            session.headers.extend(expire)  # used once, whatever happens next
        if transaction is None:
            raise InvalidState("unknown, expired or already used state")
        self.store.metrics.attempt(request.environ, transaction.prompt)
        self.client.check_response_issuer(params.get("iss"))

        error = params.get("error")
        if error is not None:
            if transaction.prompt == "none" and error in SILENT_FAILURES:
                return self._after_silent_failure(request, session, transaction, error, state)
            raise ProviderRefused.from_error(error, "the provider refused the sign-in")
        code = params.get("code")
        if not code:
            raise MissingCode("authorization response has neither code nor error")

        result = self.client.sign_in(code, transaction.nonce, transaction.code_verifier,
                                     redirect_uri=transaction.redirect_uri or self.config.redirect_uri)
        now = self.clock()
        auth_time = local_auth_time(result.claims, now)
        acr = result.claims.get("acr")
        acr = acr if isinstance(acr, str) else None
        self._check_step_up(transaction, auth_time, acr, now)
        organization = checked_organization(transaction.organization, result.claims)
        claims = {key: value for key, value in result.claims.items() if key not in PROTOCOL_CLAIMS}
        claims.update(result.userinfo)
        issued = SignInTokens.issued(result.claims, result.expires_at, result.scope, result.refresh_token,
                                     result.access_token, result.id_token)
        claims = kept_claims(run_sign_in_hook(self.config.on_sign_in, claims, issued, request.environ),
                             self.config.userinfo_claims)  # SignInDenied, SignInHookFailed: no session
        sid = result.claims.get("sid")
        user = SignedInUser(
            claims=claims, connection=transaction.connection, id_token=result.id_token, signed_in_at=now,
            sid=sid if isinstance(sid, str) else None, auth_time=auth_time, acr=acr, organization=organization,
        )
        tokens = None
        if self.config.keep_access_token:
            tokens = Tokens(result.access_token, result.expires_at, result.refresh_token, obtained_at=now)
        session.sign_in(user, now, tokens)
        log.info("sso: signed in sub=%r through connection %r", result.claims["sub"], transaction.connection)
        if transaction.preserved_post is not None:
            return self._resubmit(transaction.preserved_post, transaction.target_url, request, now, user.sub)
        return self._redirect(transaction.target_url, request)

    def _resubmit(self, reference: str, target: str, request: Request, now: float, sub: str) -> Response:
        """preserve_post: the page that sends the kept form again (taken from the store: once), or a failure.

        Only for the user whose session had ended, when it is known: a form typed under one
        account is never sent by another who signs in in that browser.
        """
        kept = self.post_records.take(reference, target, now)
        if kept is None:
            raise PreservePostLost("the kept form is gone (expired, evicted or already sent)")
        if kept.sub is not None and not same_text(kept.sub, sub):
            raise PreservePostOtherUser("signed in as another user than the one whose session ended")
        return resubmit_page(absolute_target(target, self._base(request)), kept.fields)

    def logout(self, request: Request, session: SSOSession) -> Response:
        # Sign out first: a refused target_url must not leave the user signed in.  An expired
        # session still names the user whose provider session should end.
        user = session.stored_user()
        revoking = self.config.keep_access_token and self.config.revoke_tokens_on_logout != "off"
        tokens = session.tokens() if user is not None and revoking else None
        if user is not None:  # where the data cannot be deleted (cookie sessions), copies of it are revoked
            self.store.revoke_login(user, self.clock())
        session.sign_out()
        if user is not None:
            log.info("sso: signed out sub=%r", user.sub)
            self.store.metrics.session_ended("logout")
        if tokens is not None:  # before the provider logout redirect; a failure is logged, never raised
            self.revoker.revoke(tokens.refresh_token, tokens.access_token or None)
        target = target_param(self.config, request, required=False)
        if user is not None and self.config.provider_logout:
            url = self.client.end_session_url(user.id_token, absolute_target(target, self._base(request)))
            if url is not None:
                return self._redirect(url, request)
        return self._redirect(target, request)

    def failure(self, request: Request, session: SSOSession) -> Response:
        code = shown_code(self.config, param(request, "error") or "", param(request, SIG_PARAM))
        return failure_page(code, self._base(request) + "/", request.environ, self.page_template)

    # -- helpers -----------------------------------------------------------

    def _start_sign_in(
        self,
        request: Request,
        session: SSOSession,
        target: str,
        connection: Optional[str],
        prompt: Optional[str],
        spent: Optional[str] = None,
        redirect_uri: Optional[str] = None,
        asked: Optional[RequestParams] = None,
        preserved_post: Optional[str] = None,
    ) -> Response:
        """Redirect to the provider.

        ``redirect_uri``: the retry's (its first attempt's), else the request's; ``asked``: the
        request's extra parameters (kept for a silent retry).
        """
        asked = asked or RequestParams(params={}, organization=self.config.organization or None)
        extra, prompt = for_attempt(self.config.authorize_params, asked, prompt)
        login = self.client.new_login_request()
        step_up = self._step_up_for(target, request)
        max_age = step_up.max_age if step_up is not None else None
        acr_values = " ".join(step_up.acr_values) if step_up is not None and step_up.acr_values else None
        redirect_uri = redirect_uri or self.config.redirect_uri_for(request.environ)
        url = self.client.authorization_url(login, prompt=prompt, connection=connection, max_age=max_age,
                                            acr_values=acr_values, redirect_uri=redirect_uri, extra_params=extra)
        now = self.clock()
        transaction = Transaction(nonce=login.nonce, code_verifier=login.code_verifier, target_url=target,
                                  connection=connection, prompt=prompt, expires_at=now + self.config.transaction_ttl,
                                  max_age=max_age, acr_values=acr_values,
                                  redirect_uri=redirect_uri if redirect_uri != self.config.redirect_uri else None,
                                  params=asked.params or None, organization=asked.organization,
                                  invitation=asked.invitation, preserved_post=preserved_post)
        cookies = request.headers.get("Cookie", "")
        try:
            headers = self.transactions.issue(login.state, transaction, cookies, now, spent=spent)
        except InvalidTargetUrl:
            if asked.params or asked.organization:
                raise InvalidAuthorizeParam("target and sign-in options overflow the cookie") from None
            raise
        session.headers.extend(headers)
        return self._redirect(url, request)

    def _request_params(self, request: Request) -> RequestParams:
        """The forwarded, hook and organization parameters of a ``login``/``sso`` request (checked)."""
        config = self.config
        return from_request(request.GET, request.environ, config.forward_params, config.authorize_params_hook,
                            config.organization)

    def _after_silent_failure(
        self, request: Request, session: SSOSession, transaction: Transaction, error: str, state: Optional[str]
    ) -> Response:
        self.store.metrics.silent_fallback(request.environ)
        if self.config.silent_sso_fallback == "anonymous":
            log.info("sso: silent sign-in answered %s; continuing without a user", error)
            return self._redirect(transaction.target_url, request)
        log.info("sso: silent sign-in answered %s; retrying once interactively", error)
        # The retry replaces this state's transaction, whose cookie this response expires.
        # The retry asks for what the first attempt asked for (kept in the transaction), with its own prompt.
        asked = RequestParams(params=dict(transaction.params or {}), organization=transaction.organization,
                              invitation=transaction.invitation)
        return self._start_sign_in(request, session, transaction.target_url, transaction.connection, prompt=None,
                                   spent=state, redirect_uri=transaction.redirect_uri or self.config.redirect_uri,
                                   asked=asked, preserved_post=transaction.preserved_post)

    def start_preserved_sign_in(
        self, request: Request, session: SSOSession, target: str, connection: Optional[str], reference: str
    ) -> Response:
        """preserve_post: the interactive sign-in a GET of ``target`` would start, carrying the kept form.

        No query parameter of the application's URL is forwarded (they are the form's, not
        sign-in options); ``authorize_params_hook`` and ``organization`` apply as for any login.
        """
        config = self.config
        asked = from_request(MultiDict(), request.environ, (), config.authorize_params_hook, config.organization)
        return self._start_sign_in(request, session, target, connection, prompt=None, asked=asked,
                                   preserved_post=reference)

    def _step_up_for(self, target: str, request: Request) -> Optional[StepUp]:
        """The authentication the access rules demand for a target of this application (None: none)."""
        if not self.config.access_rules:
            return None
        path = app_path(target, self._base(request))
        return step_up_for(matching(self.config.access_rules, path)) if path is not None else None

    def _check_step_up(
        self, transaction: Transaction, auth_time: Optional[float], acr: Optional[str], now: float
    ) -> None:
        """The new ID token must meet the step-up the sign-in asked for (``auth_time``, ``acr``).

        Providers may ignore ``max_age`` and ``acr_values``; refusing here (not
        signing in with a weaker authentication) is what keeps that from looping.
        """
        if transaction.max_age is None and not transaction.acr_values:
            return
        step_up = StepUp(max_age=transaction.max_age, acr_values=tuple((transaction.acr_values or "").split()))
        if not step_up.satisfied_by(auth_time, acr, now, MAX_AGE_LEEWAY):
            raise StepUpFailed("the new ID token's auth_time or acr does not meet the request")

    def _base(self, request: Request) -> str:
        """The ``base_url`` of the origin this request came to (the first when its Host is not listed)."""
        return self.config.base_url_for(request.environ)

    def _redirect(self, target: str, request: Request) -> Response:
        return redirect(absolute_target(target, self._base(request)))

    def failure_location(self, code: str, environ: Optional[dict[str, Any]] = None) -> str:
        base = self.config.base_url_for(environ) if environ is not None else self.config.primary_url
        return f"{base}{self.config.failure_path}?{urlencode(failure_query(self.config, code))}"


def local_auth_time(claims: dict[str, Any], now: float) -> Optional[float]:
    """When the user authenticated, on this host's clock: ``now`` minus the authentication's age at issue.

    The age is ``iat - auth_time``, both read from the provider's clock, so the
    two clocks never meet: ``max_age`` holds exactly, without ``clock_skew``
    (which would turn ``max_age 5`` into 65 seconds).  None without ``auth_time``.
    """
    auth_time = claims.get("auth_time")
    if auth_time is None:
        return None
    return now - max(0.0, float(claims["iat"]) - float(auth_time))  # both numbers: checked with the token


def redirect(location: str) -> Response:
    """A 303 that is never cached.  ``location`` is absolute: never built from the request's Host."""
    return no_store(HTTPSeeOther(location=location))
