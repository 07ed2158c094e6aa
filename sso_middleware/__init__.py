"""Server-side OpenID Connect single sign-on for any WSGI application.

>>> from sso_middleware import SSOMiddleware, SSOConfig, get_userinfo, authorization_header

See :class:`SSOMiddleware` for the contract and the README for the settings.
"""

from ._config.settings import SSOConfig
from ._wsgi.environ import NoAccessToken, authorization_header, get_access_token, get_organization, get_userinfo
from ._wsgi.middleware import SSOMiddleware
from .errors import AuthFailure, ConfigError

__all__ = [
    "AuthFailure",
    "ConfigError",
    "NoAccessToken",
    "SSOConfig",
    "SSOMiddleware",
    "authorization_header",
    "get_access_token",
    "get_organization",
    "get_userinfo",
]
__version__ = "0.1.0"
