"""Exceptions, and the catalogue of sign-in error codes.

Every failure the middleware can meet while signing a user in or out is an
:class:`AuthFailure` carrying a short machine-readable ``code`` (for instance
``invalid_state`` or ``provider_error:access_denied``).  Handlers raise it; the
middleware turns it into a redirect to the failure page in exactly one place.
The code travels in the failure page's query string, so it never carries a
token, a secret or provider-supplied free text: provider error codes are
reduced to a safe alphabet by :func:`provider_error_code`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class ConfigError(ValueError):
    """A setting is missing or invalid; raised when the middleware is built.

    ``setting`` names the offending setting so one message tells the operator
    what to fix.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"sso_middleware setting {setting!r}: {message}")
        self.setting = setting
        self.message = message


class AuthFailure(Exception):
    """A sign-in, sign-out or SSO request that cannot go on.

    ``code`` is shown to the user (escaped) and selects the failure page's
    status and message; ``detail`` is for the operator's log only and must
    not contain tokens or secrets.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code if not detail else f"{code}: {detail}")
        self.code = code
        self.detail = detail


class ProviderError(AuthFailure):
    """The provider could not be used: unreachable, slow, or answering nonsense."""


@dataclass(frozen=True)
class ErrorInfo:
    """How the failure page presents one error code."""

    status: int
    message: str


_PROVIDER_ERROR_PREFIX = "provider_error:"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")

ERRORS: dict[str, ErrorInfo] = {
    "invalid_request": ErrorInfo(400, "The link is malformed. Please start again from the application."),
    "missing_target_url": ErrorInfo(400, "The link is incomplete: it does not say where to go after signing in."),
    "invalid_target_url": ErrorInfo(400, "The link asks to go to an address this site does not send people to."),
    "missing_connection": ErrorInfo(400, "The link is incomplete: it does not say which sign-in connection to use."),
    "invalid_connection": ErrorInfo(400, "The link names a sign-in connection that is not valid."),
    "connection_not_allowed": ErrorInfo(400, "The link asks for a sign-in connection this site does not accept."),
    "invalid_state": ErrorInfo(
        400, "This sign-in link has expired or was already used. Please start signing in again."
    ),
    "missing_code": ErrorInfo(400, "The sign-in provider's answer was incomplete. Please start signing in again."),
    "issuer_mismatch": ErrorInfo(
        400, "The sign-in answer did not come from the expected provider. Please start signing in again."
    ),
    "invalid_id_token": ErrorInfo(401, "The sign-in provider's identity token could not be verified."),
    "invalid_logout_token": ErrorInfo(400, "The logout token could not be verified."),
    "userinfo_mismatch": ErrorInfo(401, "The sign-in provider returned inconsistent identity information."),
    "invalid_token_response": ErrorInfo(502, "The sign-in provider gave an answer that could not be understood."),
    "provider_bad_response": ErrorInfo(502, "The sign-in provider gave an answer that could not be understood."),
    "signing_algorithm_mismatch": ErrorInfo(
        502, "This site and its sign-in provider do not agree on how identity tokens are signed, so nobody can "
        "sign in right now; the site's operator has been told."
    ),
    # Pushed authorization requests (RFC 9126): the sign-in could not be started at the provider.
    "par_failed": ErrorInfo(
        502, "The sign-in provider refused or did not understand this site's request to start signing in. "
        "Please try again later; the site's operator has been told."
    ),
    "par_required": ErrorInfo(
        502, "The sign-in provider requires pushed authorization requests, which this site does not send "
        "(pushed_authorization); the site's operator has been told."
    ),
    "par_unavailable": ErrorInfo(
        502, "This site requires pushed authorization requests, which its sign-in provider does not offer; "
        "the site's operator has been told."
    ),
    "provider_unreachable": ErrorInfo(503, "The sign-in provider cannot be reached right now. Please try again later."),
    "provider_timeout": ErrorInfo(504, "The sign-in provider did not answer in time. Please try again later."),
    # Proxy and TLS set-up failures: the site's outgoing connection, not the provider, needs fixing.
    "provider_proxy_error": ErrorInfo(
        502, "The sign-in provider cannot be reached through this site's outgoing proxy (http_proxy). "
        "The site's operator has been told; please try again later."
    ),
    "provider_tls_error": ErrorInfo(
        502, "A secure connection to the sign-in provider could not be made: its certificate is not trusted "
        "(ca_bundle) or it refused this site's client certificate (tls_client_cert). Please try again later."
    ),
    "step_up_failed": ErrorInfo(
        403, "This page needs a more recent or a stronger sign-in than the one that just took place. "
        "Please try again, completing every step the sign-in page asks for."
    ),
    "invalid_authorize_param": ErrorInfo(
        400, "The link carries a sign-in option this site does not accept (too long, not printable, or not "
        "allowed). Please start again from the application."
    ),
    "organization_not_allowed": ErrorInfo(400, "The link names an organization this site does not sign people in to."),
    # 403, not 401: the user did authenticate, but not as a member of the organization the sign-in was for.
    "invalid_organization": ErrorInfo(
        403, "You signed in, but not as a member of the organization this sign-in was for. Use the invitation or "
        "the account of that organization, or ask its administrator for access."
    ),
    "authorize_hook_failed": ErrorInfo(
        503, "Signing in cannot start right now; the site's operator has been told. Please try again later."
    ),
    "session_store_unavailable": ErrorInfo(503, "Sessions cannot be read or saved right now. Please try again soon."),
    "session_too_large": ErrorInfo(
        503, "Your session is too large for this site's cookie storage; the site's operator has been told."
    ),
}

_UNKNOWN = ErrorInfo(400, "Signing in did not succeed. Please try again.")
_PROVIDER_REFUSED = ErrorInfo(401, "The sign-in provider did not sign you in ({detail}).")

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
    cleaned = _UNSAFE.sub("", error)[:64] or "unknown"
    return _PROVIDER_ERROR_PREFIX + cleaned


def describe(code: str) -> tuple[int, str, str]:
    """Status, human message and the code to show for a failure code.

    The code arrives in a URL anyone can craft, so only codes of the catalogue and
    provider errors from the OAuth/OpenID vocabulary are shown; anything else is a
    generic 400 shown as ``unknown_error``, and no free text reaches the page.
    """
    info = ERRORS.get(code)
    if info is not None:
        return info.status, info.message, code
    detail = code[len(_PROVIDER_ERROR_PREFIX):] if code.startswith(_PROVIDER_ERROR_PREFIX) else ""
    if detail in OAUTH_ERRORS:
        return _PROVIDER_REFUSED.status, _PROVIDER_REFUSED.message.format(detail=detail.replace("_", " ")), code
    if detail:
        return _PROVIDER_REFUSED.status, _PROVIDER_REFUSED.message.format(detail="other reason"), "provider_error"
    return _UNKNOWN.status, _UNKNOWN.message, "unknown_error"
