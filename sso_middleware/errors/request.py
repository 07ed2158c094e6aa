"""Failures of the request itself and of the sign-in the application decides: bad links, forms that
cannot be kept (``preserve_post``), organizations, the application's hooks.
"""

from __future__ import annotations

import re

from .base import AuthFailure

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


class PreservePostBusy(PreservePostRefused):
    """This process already keeps as many forms as it may (``MAX_KEPT_BYTES``): the form is refused, nothing written.

    A flood of anonymous POSTs must not fill the store (evicting sessions from memcached or
    an LRU Redis, filling the file store's disk); while it lasts, real forms are refused too.
    """
    code = "preserve_post_busy"
    status = 503
    message = ("Your session has ended, and the form you sent could not be kept right now. "
               "Please copy what you typed, sign in, and send it again.")


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
