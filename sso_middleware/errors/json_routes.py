"""Failures answered as JSON or a challenge, never a failure page: bearer tokens on API paths
(RFC 6750) and the session endpoint.
"""

from __future__ import annotations

from typing import ClassVar

from .base import SSOFailure

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
