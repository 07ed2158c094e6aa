"""What the wrapped application reads: namespaced environ keys and their accessors.

When a user is signed in, the middleware sets ``environ["sso.userinfo"]`` (a
dict of the user's claims: the ID token's identity claims merged with the
userinfo response), ``environ["sso.connection"]`` (the connection they signed
in through, or None) and ``REMOTE_USER``.  When nobody is signed in, all three
are absent: values that arrive from outside are removed before the
application runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

USERINFO_KEY = "sso.userinfo"
CONNECTION_KEY = "sso.connection"


def get_userinfo(environ: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """The signed-in user's claims, or None when nobody is signed in."""
    userinfo = environ.get(USERINFO_KEY)
    return userinfo if isinstance(userinfo, dict) else None
