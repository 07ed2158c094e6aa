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

from .base import AuthFailure, ConfigError, SSOError, SSOFailure
from .catalogue import ERRORS, OAUTH_ERRORS, describe, provider_error_code
from .json_routes import (
    BearerFailure,
    BearerTokenMissing,
    CrossOriginRefused,
    InsufficientScope,
    InvalidAccessToken,
    InvalidBearerRequest,
    MethodNotAllowed,
    NoRefreshToken,
    RefreshRefused,
    RefreshUnavailable,
    SessionEndpointFailure,
)
from .provider import (
    InvalidGrant,
    InvalidIdToken,
    InvalidLogoutRequest,
    InvalidLogoutToken,
    InvalidOrganization,
    InvalidState,
    InvalidTokenResponse,
    IssuerMismatch,
    LogoutIssuerMismatch,
    LogoutRequestTooLong,
    MissingCode,
    ParFailed,
    ParRequired,
    ParUnavailable,
    ProviderBadResponse,
    ProviderError,
    ProviderProxyError,
    ProviderRefused,
    ProviderTimeout,
    ProviderTlsError,
    ProviderUnreachable,
    SigningAlgorithmMismatch,
    StepUpFailed,
    UserinfoMismatch,
)
from .request import (
    SIGN_IN_DENIED_REASON,
    AuthorizeHookFailed,
    ConnectionNotAllowed,
    InvalidAuthorizeParam,
    InvalidConnection,
    InvalidRequest,
    InvalidTargetUrl,
    MissingConnection,
    MissingTargetUrl,
    OrganizationNotAllowed,
    PreservePostBusy,
    PreservePostCrossSite,
    PreservePostLengthRequired,
    PreservePostLost,
    PreservePostOtherUser,
    PreservePostRefused,
    PreservePostTooLarge,
    PreservePostUnreadable,
    PreservePostUnsupported,
    SignInDenied,
    SignInHookFailed,
)
from .store import (
    SessionTooLarge,
    StoreUnavailable,
)

__all__ = [
    "ERRORS",
    "OAUTH_ERRORS",
    "SIGN_IN_DENIED_REASON",
    "AuthFailure",
    "AuthorizeHookFailed",
    "BearerFailure",
    "BearerTokenMissing",
    "ConfigError",
    "ConnectionNotAllowed",
    "CrossOriginRefused",
    "InsufficientScope",
    "InvalidAccessToken",
    "InvalidAuthorizeParam",
    "InvalidBearerRequest",
    "InvalidConnection",
    "InvalidGrant",
    "InvalidIdToken",
    "InvalidLogoutRequest",
    "InvalidLogoutToken",
    "InvalidOrganization",
    "InvalidRequest",
    "InvalidState",
    "InvalidTargetUrl",
    "InvalidTokenResponse",
    "IssuerMismatch",
    "LogoutIssuerMismatch",
    "LogoutRequestTooLong",
    "MethodNotAllowed",
    "MissingCode",
    "MissingConnection",
    "MissingTargetUrl",
    "NoRefreshToken",
    "OrganizationNotAllowed",
    "ParFailed",
    "ParRequired",
    "ParUnavailable",
    "PreservePostBusy",
    "PreservePostCrossSite",
    "PreservePostLengthRequired",
    "PreservePostLost",
    "PreservePostOtherUser",
    "PreservePostRefused",
    "PreservePostTooLarge",
    "PreservePostUnreadable",
    "PreservePostUnsupported",
    "ProviderBadResponse",
    "ProviderError",
    "ProviderProxyError",
    "ProviderRefused",
    "ProviderTimeout",
    "ProviderTlsError",
    "ProviderUnreachable",
    "RefreshRefused",
    "RefreshUnavailable",
    "SSOError",
    "SSOFailure",
    "SessionEndpointFailure",
    "SessionTooLarge",
    "SignInDenied",
    "SignInHookFailed",
    "SigningAlgorithmMismatch",
    "StepUpFailed",
    "StoreUnavailable",
    "UserinfoMismatch",
    "describe",
    "provider_error_code",
]
