"""Server-side OpenID Connect single sign-on for any WSGI application.

>>> from sso_middleware import SSOMiddleware, SSOConfig, get_userinfo, authorization_header, api_session

See :class:`SSOMiddleware` for the contract and the README for the settings.

This module is the public API, with three public sub-packages: :mod:`sso_middleware.errors`
(the exceptions and the failure-code catalogue), :mod:`sso_middleware.stores` (the
``SessionBackend`` protocol for a session store of one's own) and
:mod:`sso_middleware.testing` (the in-memory ``FakeProvider``, the bundled ``DevProvider``
and the pytest plugin).  Everything under an ``_``-prefixed name is implementation and may
change without notice.
"""

from ._config.settings import SSOConfig
from ._policy.sign_in_hook import SignInTokens
from ._wsgi.api_session import api_session
from ._wsgi.environ import (
    NoAccessToken,
    authorization_header,
    get_access_token,
    get_organization,
    get_scopes,
    get_userinfo,
)
from ._wsgi.middleware import SSOMiddleware
from .errors import AuthFailure, ConfigError, SignInDenied, SSOError
from .stores import SessionBackend, StoreUnavailable

__all__ = [
    "AuthFailure",
    "ConfigError",
    "NoAccessToken",
    "SSOConfig",
    "SSOError",
    "SSOMiddleware",
    "SessionBackend",
    "SignInDenied",
    "SignInTokens",
    "StoreUnavailable",
    "api_session",
    "authorization_header",
    "get_access_token",
    "get_organization",
    "get_scopes",
    "get_userinfo",
]
__version__ = "0.1.0"
