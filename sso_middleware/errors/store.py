"""Failures of the session store: unreachable (503), or a cookie session too large for its cookie.
"""

from __future__ import annotations

from .base import SSOFailure

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
