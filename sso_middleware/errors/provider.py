"""Failures of the provider's answer (state, ID token, logout requests) and of the provider itself
(unreachable, slow, refusing); :class:`ProviderRefused` carries its OAuth ``error`` in a safe alphabet.
"""

from __future__ import annotations

from typing import Optional

from .base import _UNSAFE, AuthFailure

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
