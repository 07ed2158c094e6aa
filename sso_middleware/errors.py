"""Exceptions, and the catalogue of failure codes built from them.

Every exception the middleware raises on purpose is an :class:`SSOError`.  A
request that cannot go on is an :class:`SSOFailure`: its class names, as class
attributes, the short machine-readable ``code`` (for instance ``invalid_state``),
the HTTP ``status`` and the ``message`` of the failure page, one class per code
(in the manner of oauthlib's ``error``/``status_code``).  Sign-in and sign-out
failures are :class:`AuthFailure`; those the provider is to blame for are
:class:`ProviderError`; a provider's own OAuth ``error`` answer is
:class:`ProviderRefused`.  Code decides by class (``isinstance``), never by
comparing codes; :data:`ERRORS`, what :func:`describe` shows, is built from the
classes.

Security caveat: the code travels in the failure page's query string, so it
never carries a token, a secret or provider-supplied free text: a provider's
``error`` is reduced to a safe alphabet by :class:`ProviderRefused`, and the page
shows only catalogue codes and OAuth vocabulary.  ``detail`` is for the
operator's log only and must not contain tokens or secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Optional

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


class SSOError(Exception):
    """Base of every exception sso_middleware raises on purpose: ``except SSOError`` catches them all."""


class ConfigError(SSOError, ValueError):
    """A setting is missing or invalid; raised when the middleware is built.

    ``setting`` names the offending setting so one message tells the operator
    what to fix.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"sso_middleware setting {setting!r}: {message}")
        self.setting = setting
        self.message = message


class SSOFailure(SSOError):
    """A request that cannot go on, answered with the failure page its class describes.

    Each subclass that declares its own ``code`` also declares its ``status``
    (400-599) and page ``message``, and is the only class with that code; a
    subclass without a ``code`` of its own is a kind of its parent and gets its
    parent's page.  Such codes are declared in this module only, so the
    catalogue built here is complete.
    """

    code: str
    status: ClassVar[int]
    message: ClassVar[str]

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in vars(cls) and cls.__module__ != __name__:
            raise TypeError(f"{cls.__qualname__}: failure codes are declared in {__name__}, "
                            "where the catalogue is built")


class AuthFailure(SSOFailure):
    """A sign-in, sign-out or SSO request that cannot go on: the user is redirected to the failure page.

    Raised bare it is the generic page (``unknown_error``), also shown for any
    code the catalogue does not know.
    """
    code = "unknown_error"
    status = 400
    message = "Signing in did not succeed. Please try again."

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


# -- the request -------------------------------------------------------------

class InvalidRequest(AuthFailure):
    """A request to an authentication route that is malformed (encoding, method, repeated parameter)."""
    code = "invalid_request"
    status = 400
    message = "The link is malformed. Please start again from the application."


class MissingTargetUrl(AuthFailure):
    """``/sso`` without the ``target_url`` to return to."""
    code = "missing_target_url"
    status = 400
    message = "The link is incomplete: it does not say where to go after signing in."


class InvalidTargetUrl(AuthFailure):
    """A ``target_url`` that is not one of this site's (an open redirect refused), or too long to keep."""
    code = "invalid_target_url"
    status = 400
    message = "The link asks to go to an address this site does not send people to."


class MissingConnection(AuthFailure):
    """A sign-in that must name a connection and names none."""
    code = "missing_connection"
    status = 400
    message = "The link is incomplete: it does not say which sign-in connection to use."


class InvalidConnection(AuthFailure):
    """A connection name that is not a valid one."""
    code = "invalid_connection"
    status = 400
    message = "The link names a sign-in connection that is not valid."


class ConnectionNotAllowed(AuthFailure):
    """A connection outside ``allowed_connections``."""
    code = "connection_not_allowed"
    status = 400
    message = "The link asks for a sign-in connection this site does not accept."


class InvalidAuthorizeParam(AuthFailure):
    """A forwarded sign-in option that is too long, not printable, repeated or not allowed."""
    code = "invalid_authorize_param"
    status = 400
    message = ("The link carries a sign-in option this site does not accept (too long, not printable, or not "
               "allowed). Please start again from the application.")


# -- form data kept across a sign-in (preserve_post) -------------------------

class PreservePostRefused(AuthFailure):
    """A form POST to a ``preserve_post`` path, without a session, that cannot be kept across the sign-in.

    Answered where it was sent, with a page saying the form was not kept (never a
    silent redirect that would drop it); nothing of the body is stored.
    """
    code = "preserve_post_refused"
    status = 400
    message = "Your session has ended, and the form you sent could not be kept. Please sign in and send it again."


class PreservePostTooLarge(PreservePostRefused):
    """The form's declared ``Content-Length`` is over ``preserve_post_max_body`` (nothing was read)."""
    code = "preserve_post_too_large"
    status = 413
    message = ("Your session has ended, and the form you sent is too large to be kept while you sign in again. "
               "Please copy what you typed, sign in, and send it again.")


class PreservePostLengthRequired(PreservePostRefused):
    """A form sent without ``Content-Length`` (chunked): its size cannot be checked before reading it."""
    code = "preserve_post_length_required"
    status = 411
    message = ("Your session has ended, and the form you sent did not say its size, so it could not be kept. "
               "Please sign in and send it again.")


class PreservePostUnsupported(PreservePostRefused):
    """A body that is not ``application/x-www-form-urlencoded`` in UTF-8 (file uploads: ``multipart/form-data``)."""
    code = "preserve_post_unsupported"
    status = 415
    message = ("Your session has ended, and this kind of form (for example one with a file upload) cannot be kept "
               "while you sign in again. Please copy what you typed, sign in, and send it again.")


class PreservePostUnreadable(PreservePostRefused):
    """A form body that is malformed, too many fields, or holds text a browser form cannot send back unchanged."""
    code = "preserve_post_unreadable"
    status = 400
    message = ("Your session has ended, and the form you sent could not be read, so it was not kept. "
               "Please sign in and send it again.")


class PreservePostCrossSite(PreservePostRefused):
    """A form POST that did not come from this site's own pages (``Sec-Fetch-Site``/``Origin``): never kept."""
    code = "preserve_post_cross_site"
    status = 403
    message = ("Your session has ended, and the form was sent from another site, so it was not kept. "
               "Please sign in and use the form on this site.")


class PreservePostOtherUser(AuthFailure):
    """After the sign-in, the user is another one than the one whose session ended: the kept form is not sent."""
    code = "preserve_post_other_user"
    status = 409
    message = ("You are signed in as another user than the one who filled in the form before, so it was not sent. "
               "Please fill it in again if you meant to.")


class PreservePostLost(AuthFailure):
    """After the sign-in, the kept form is gone (expired, evicted, or already sent once): it is not sent again."""
    code = "preserve_post_lost"
    status = 410
    message = ("You are signed in again, but the form you sent before could not be restored (it expired, or was "
               "already sent). Please fill it in again.")


class OrganizationNotAllowed(AuthFailure):
    """A link naming another organization than the ``organization`` setting."""
    code = "organization_not_allowed"
    status = 400
    message = "The link names an organization this site does not sign people in to."


class AuthorizeHookFailed(AuthFailure):
    """The ``authorize_params_hook`` raised or returned something that breaks a rule (the operator's to fix)."""
    code = "authorize_hook_failed"
    status = 503
    message = "Signing in cannot start right now; the site's operator has been told. Please try again later."


#: What a :class:`SignInDenied` reason may be: it is shown on the failure page and travels in its URL.
SIGN_IN_DENIED_REASON = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class SignInDenied(AuthFailure):
    """Raised by an ``on_sign_in`` hook to refuse a user the provider signed in: no session is created.

    ``reason`` is a short code of the application's own (``not_provisioned``,
    ``account_locked``): 1-64 letters, digits or ``_.-`` (anything else is a
    ``ValueError`` here, so the hook fails loudly as ``sign_in_hook_failed``).  The
    failure page (403) shows the code ``sign_in_denied:<reason>``; ``detail`` goes to
    the operator's log only.

    Security caveat: the failure page's URL can be typed by anyone, so a page showing
    ``sign_in_denied:<reason>`` proves nothing; the reason is never free text.
    """
    code = "sign_in_denied"
    status = 403
    message = ("You signed in at the sign-in provider, but this site does not let your account in. "
               "If you think it should, tell the site's support the error code below.")

    def __init__(self, reason: str, detail: str = "") -> None:
        if not isinstance(reason, str) or not SIGN_IN_DENIED_REASON.fullmatch(reason):
            raise ValueError("SignInDenied(reason): the reason must be 1-64 letters, digits or '_.-'")
        self.reason = reason
        self.code = f"{SignInDenied.code}:{reason}"
        super().__init__(detail)


class SignInHookFailed(AuthFailure):
    """The ``on_sign_in`` hook raised (other than :class:`SignInDenied`) or returned claims that break a rule."""
    code = "sign_in_hook_failed"
    status = 503
    message = ("You signed in at the sign-in provider, but this site could not finish signing you in; "
               "the site's operator has been told. Please try again later.")


# -- the provider's answer ---------------------------------------------------

class InvalidState(AuthFailure):
    """A callback whose ``state`` is unknown, expired or already used."""
    code = "invalid_state"
    status = 400
    message = "This sign-in link has expired or was already used. Please start signing in again."


class MissingCode(AuthFailure):
    """An authorization response with neither ``code`` nor ``error``."""
    code = "missing_code"
    status = 400
    message = "The sign-in provider's answer was incomplete. Please start signing in again."


class IssuerMismatch(AuthFailure):
    """An authorization response whose ``iss`` is not our issuer, or missing when promised (RFC 9207)."""
    code = "issuer_mismatch"
    status = 400
    message = "The sign-in answer did not come from the expected provider. Please start signing in again."


class InvalidIdToken(AuthFailure):
    """An ID token that fails validation (signature, claims, times, nonce, ``at_hash``)."""
    code = "invalid_id_token"
    status = 401
    message = "The sign-in provider's identity token could not be verified."


class InvalidLogoutToken(AuthFailure):
    """A back-channel logout token that fails validation, or replayed."""
    code = "invalid_logout_token"
    status = 400
    message = "The logout token could not be verified."


# -- front-channel logout (OpenID Connect Front-Channel Logout 1.0; answered in the provider's iframe) --

class InvalidLogoutRequest(AuthFailure):
    """A front-channel logout request that is malformed: ``iss`` without ``sid`` (or the reverse), a
    repeated or unreadable parameter, or a ``sid`` that no provider issues (empty, too long, not printable)."""
    code = "invalid_logout_request"
    status = 400
    message = "The sign-out request from the sign-in provider is not valid."


class LogoutIssuerMismatch(AuthFailure):
    """A front-channel logout request whose ``iss`` is not the configured issuer (exact comparison)."""
    code = "logout_issuer_mismatch"
    status = 400
    message = "The sign-out request did not come from this site's sign-in provider."


class LogoutRequestTooLong(AuthFailure):
    """A front-channel logout request whose query string is longer than any real one (refused unparsed)."""
    code = "logout_request_too_long"
    status = 414
    message = "The sign-out request is too long."


class UserinfoMismatch(AuthFailure):
    """A userinfo answer about someone else than the ID token's ``sub``."""
    code = "userinfo_mismatch"
    status = 401
    message = "The sign-in provider returned inconsistent identity information."


class InvalidTokenResponse(AuthFailure):
    """A token response that is not a well-formed Bearer token response."""
    code = "invalid_token_response"
    status = 502
    message = "The sign-in provider gave an answer that could not be understood."


class StepUpFailed(AuthFailure):
    """A new ID token whose ``auth_time`` or ``acr`` does not meet the step-up the sign-in asked for."""
    code = "step_up_failed"
    status = 403
    message = ("This page needs a more recent or a stronger sign-in than the one that just took place. "
               "Please try again, completing every step the sign-in page asks for.")


class InvalidOrganization(AuthFailure):
    """An ID token whose ``org_id``/``org_name`` is not the organization the sign-in was for.

    403, not 401: the user did authenticate, but not as a member of that organization.
    """
    code = "invalid_organization"
    status = 403
    message = ("You signed in, but not as a member of the organization this sign-in was for. Use the invitation or "
               "the account of that organization, or ask its administrator for access.")


class ProviderRefused(AuthFailure):
    """The provider answered with an OAuth ``error`` (RFC 6749 sections 4.1.2.1 and 5.2): it did not sign the user in.

    ``error`` is the provider's value reduced to letters, digits and ``_.-`` (at
    most 64), and the code is ``provider_error:<error>``; the page names the
    error only when it is OAuth vocabulary (:data:`OAUTH_ERRORS`), else shows
    ``provider_error``.  :meth:`from_error` picks the subclass for an error whose
    handling differs (:class:`InvalidGrant`).
    """
    code = "provider_error"
    status = 401
    message = "The sign-in provider did not sign you in ({detail})."
    #: The error a subclass stands for; an instance's own, made safe.
    error: str = ""

    def __init__(self, detail: str = "", *, error: Optional[str] = None) -> None:
        self.error = _UNSAFE.sub("", self.error if error is None else error)[:64] or "unknown"
        self.code = f"{ProviderRefused.code}:{self.error}"
        super().__init__(detail)

    @classmethod
    def from_error(cls, error: str, detail: str = "") -> ProviderRefused:
        """The refusal for an ``error`` value the provider sent (any text: it is made safe)."""
        refusal = cls(detail, error=error)
        for kind in cls.__subclasses__():
            if kind.error == refusal.error:
                return kind(detail)
        return refusal


class InvalidGrant(ProviderRefused):
    """The provider refused the code or refresh token as invalid, expired or revoked (RFC 6749 section 5.2).

    For a refresh, a verdict on the session: it ends.
    """
    error = "invalid_grant"


# -- the provider cannot be used ---------------------------------------------

class ProviderError(AuthFailure):
    """The provider could not be used: unreachable, slow, or answering nonsense.

    Not a verdict on the user or the token: nobody is signed out for it, cached
    metadata and keys keep serving, a back-channel logout is answered 503 (so the
    provider retries), and it is logged as a warning for the operator.
    """


class ProviderBadResponse(ProviderError):
    """A provider answer (discovery, JWKS, userinfo, any JSON) that is not what the protocol says."""
    code = "provider_bad_response"
    status = 502
    message = "The sign-in provider gave an answer that could not be understood."


class SigningAlgorithmMismatch(ProviderError):
    """``id_token_algorithms`` has no algorithm in common with what the provider advertises: no token can pass."""
    code = "signing_algorithm_mismatch"
    status = 502
    message = ("This site and its sign-in provider do not agree on how identity tokens are signed, so nobody can "
               "sign in right now; the site's operator has been told.")


class ParFailed(ProviderError):
    """A pushed authorization request (RFC 9126) refused or answered with nonsense."""
    code = "par_failed"
    status = 502
    message = ("The sign-in provider refused or did not understand this site's request to start signing in. "
               "Please try again later; the site's operator has been told.")


class ParRequired(ProviderError):
    """The provider requires pushed authorization requests, which ``pushed_authorization`` does not send."""
    code = "par_required"
    status = 502
    message = ("The sign-in provider requires pushed authorization requests, which this site does not send "
               "(pushed_authorization); the site's operator has been told.")


class ParUnavailable(ProviderError):
    """``pushed_authorization = required`` and the provider offers no PAR endpoint."""
    code = "par_unavailable"
    status = 502
    message = ("This site requires pushed authorization requests, which its sign-in provider does not offer; "
               "the site's operator has been told.")


class ProviderUnreachable(ProviderError):
    """No answer, or a 5xx or 429: the provider is down or rate-limiting."""
    code = "provider_unreachable"
    status = 503
    message = "The sign-in provider cannot be reached right now. Please try again later."


class ProviderTimeout(ProviderError):
    """The provider did not answer within ``http_timeout``."""
    code = "provider_timeout"
    status = 504
    message = "The sign-in provider did not answer in time. Please try again later."


class ProviderProxyError(ProviderError):
    """The outgoing proxy (``http_proxy``) failed: the site's connection, not the provider, needs fixing."""
    code = "provider_proxy_error"
    status = 502
    message = ("The sign-in provider cannot be reached through this site's outgoing proxy (http_proxy). "
               "The site's operator has been told; please try again later.")


class ProviderTlsError(ProviderError):
    """TLS to the provider failed (``ca_bundle``, ``tls_client_cert``): the site's set-up needs fixing."""
    code = "provider_tls_error"
    status = 502
    message = ("A secure connection to the sign-in provider could not be made: its certificate is not trusted "
               "(ca_bundle) or it refused this site's client certificate (tls_client_cert). Please try again later.")


# -- bearer tokens on API paths ----------------------------------------------

class BearerFailure(SSOFailure):
    """A request to a ``bearer_paths`` API that is not let through: answered there, as RFC 6750 section 3 says.

    Never a redirect and never the failure page: an API client gets the status, a
    ``WWW-Authenticate: Bearer`` challenge carrying :attr:`error` (the RFC 6750 error
    code, empty when the request carried no credentials at all) and ``detail`` as its
    ``error_description``, and a JSON body with the ``code``.  ``detail`` is sent to
    the client: it names the failing check, never a token or a claim value.  Raised
    bare it is a generic refusal (``bearer_refused``).
    """
    code = "bearer_refused"
    status = 401
    message = "This API did not accept the request's credentials."
    #: The RFC 6750 ``error`` of the challenge; "" for a request without any credentials (section 3.1).
    error: ClassVar[str] = ""


class BearerTokenMissing(BearerFailure):
    """A ``bearer_paths`` request without an access token (and without a session, or with ``bearer_only``)."""
    code = "bearer_token_missing"
    status = 401
    message = "This API needs an access token, sent in the Authorization header."


class InvalidBearerRequest(BearerFailure):
    """A malformed ``Authorization`` header, or an access token sent in the URL (RFC 6750 ``invalid_request``)."""
    code = "invalid_bearer_request"
    status = 400
    message = "The request's access token is malformed or sent the wrong way (only Authorization: Bearer)."
    error = "invalid_request"


class InvalidAccessToken(BearerFailure):
    """An access token that fails validation: signature, algorithm, type, issuer, audience, times, or inactive."""
    code = "invalid_access_token"
    status = 401
    message = "The access token is invalid, expired or not meant for this API."
    error = "invalid_token"


class InsufficientScope(BearerFailure):
    """A valid access token without the scopes (or claims) ``bearer_rules`` require for the path."""
    code = "insufficient_scope"
    status = 403
    message = "The access token does not grant the scope this API path requires."
    error = "insufficient_scope"

    def __init__(self, detail: str = "", *, scopes: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        #: The scopes the path requires (the challenge's ``scope``); empty when only claims are required.
        self.scopes = scopes


# -- the session endpoint (session_endpoint_path) ----------------------------

class SessionEndpointFailure(SSOFailure):
    """A request to ``session_endpoint_path`` that is refused or cannot be done: answered there, as JSON.

    Never a redirect and never the failure page: the page's script gets the status and
    ``{"error": code, "message": ...}`` (plus the session's state where there is one).
    Raised bare it is a generic refusal (``session_endpoint_refused``).
    """
    code = "session_endpoint_refused"
    status = 400
    message = "The session endpoint refused the request."


class MethodNotAllowed(SessionEndpointFailure):
    """A method other than GET, HEAD or POST (the answer names them in ``Allow``)."""
    code = "method_not_allowed"
    status = 405
    message = "The session endpoint answers GET (the session's state) and POST (refresh and extend it) only."


class CrossOriginRefused(SessionEndpointFailure):
    """A POST not proven to come from this site's own pages: ``Origin`` (or ``Sec-Fetch-Site``) or the CSRF header."""
    code = "cross_origin_refused"
    status = 403
    message = ("Only this site's own pages may refresh the session: a same-origin request with the header "
               "X-SSO-CSRF: 1.")


class NoRefreshToken(SessionEndpointFailure):
    """A POST asking for a refresh in a session that holds an access token but no refresh token."""
    code = "no_refresh_token"
    status = 409
    message = ("This session has no refresh token (scope without offline_access), so its access token cannot be "
               "refreshed; sign in again for a new one.")


class RefreshUnavailable(SessionEndpointFailure):
    """A POST whose refresh cannot be made now: one failed seconds ago, or another request's is still running."""
    code = "refresh_unavailable"
    status = 503
    message = "The access token cannot be refreshed right now; the current one still serves. Try again shortly."


class RefreshRefused(SessionEndpointFailure):
    """A POST whose refresh the provider refused (``invalid_grant``), or whose new ID token is about someone else."""
    code = "refresh_failed"
    status = 401
    message = "The sign-in provider refused to refresh the access token; sign in again for a new one."


# -- the session store -------------------------------------------------------

class StoreUnavailable(SSOFailure):
    """The session store cannot be reached; the request is answered 503.

    A session back end raises it with a message for the operator's log
    (``StoreUnavailable("redis: ConnectionError")``); never a password or session id.
    """
    code = "session_store_unavailable"
    status = 503
    message = "Sessions cannot be read or saved right now. Please try again soon."


class SessionTooLarge(SSOFailure):
    """A cookie session would not fit in a cookie; the request is answered 503."""
    code = "session_too_large"
    status = 503
    message = "Your session is too large for this site's cookie storage; the site's operator has been told."


def _kinds(base: type[SSOFailure]) -> Iterator[type[SSOFailure]]:
    """``base`` and every subclass, in the order they are declared."""
    yield base
    for kind in base.__subclasses__():
        yield from _kinds(kind)


def _catalogue() -> Mapping[str, type[SSOFailure]]:
    # ProviderRefused's codes are one per error value (``provider_error:<error>``): describe() handles them.
    found: dict[str, type[SSOFailure]] = {}
    for kind in _kinds(SSOFailure):
        if "code" in vars(kind) and not issubclass(kind, ProviderRefused):
            if kind.code in found:
                raise TypeError(f"failure code {kind.code!r} is both {found[kind.code].__name__} and {kind.__name__}")
            found[kind.code] = kind
    return MappingProxyType(found)


#: The failure page of each code: code -> the class declaring it (its ``status`` and ``message``).
ERRORS: Mapping[str, type[SSOFailure]] = _catalogue()

#: ``error`` values of RFC 6749, OpenID Connect Core and RFC 9126 that the failure page names.
OAUTH_ERRORS = frozenset({
    "access_denied", "invalid_request", "unauthorized_client", "unsupported_response_type", "invalid_scope",
    "server_error", "temporarily_unavailable", "login_required", "consent_required", "interaction_required",
    "account_selection_required", "invalid_request_uri", "invalid_request_object", "request_not_supported",
    "request_uri_not_supported", "registration_not_supported", "invalid_grant", "invalid_client",
    "unsupported_grant_type", "invalid_target", "mfa_required", "unauthorized",
})


def provider_error_code(error: str) -> str:
    """The failure code for an ``error`` value the provider sent, made safe for a URL."""
    return ProviderRefused.from_error(error).code


def describe(code: str) -> tuple[int, str, str]:
    """Status, human message and the code to show for a failure code.

    The code arrives in a URL anyone can craft, so only codes of the catalogue and
    provider errors from the OAuth/OpenID vocabulary are shown; anything else is a
    generic 400 shown as ``unknown_error``, and no free text reaches the page.
    """
    kind = ERRORS.get(code)
    if kind is not None:
        return kind.status, kind.message, code
    denied, _, reason = code.partition(":")
    if denied == SignInDenied.code and SIGN_IN_DENIED_REASON.fullmatch(reason):
        return SignInDenied.status, SignInDenied.message, code
    prefix = ProviderRefused.code + ":"
    detail = code[len(prefix):] if code.startswith(prefix) else ""
    if detail in OAUTH_ERRORS:
        return ProviderRefused.status, ProviderRefused.message.format(detail=detail.replace("_", " ")), code
    if detail:
        return ProviderRefused.status, ProviderRefused.message.format(detail="other reason"), ProviderRefused.code
    return AuthFailure.status, AuthFailure.message, AuthFailure.code
