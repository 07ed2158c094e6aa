"""PasteDeploy entry point: ``[filter:sso]`` with ``use = egg:sso_middleware#main``.

Every other key of the section is a setting of :class:`~sso_middleware._config.settings.SSOConfig`,
given as a string and converted (booleans ``true``/``false``, lists separated
by spaces, commas or new lines).  ``%(here)s``-style interpolation is done by
PasteDeploy before the values reach us.
"""

from __future__ import annotations

from typing import Any, Callable

from ._config.settings import SSOConfig
from ._wsgi.middleware import SSOMiddleware, WSGIApp


def make_filter(global_conf: dict[str, Any], **local_conf: str) -> Callable[[WSGIApp], SSOMiddleware]:
    """PasteDeploy filter factory: validates the settings now, wraps the app later."""
    config = SSOConfig.from_settings(local_conf)

    def wrap(app: WSGIApp) -> SSOMiddleware:
        return SSOMiddleware(app, config)

    return wrap
