"""What the middleware reads of a request it sends to sign in: is it a page load, and where it should return.

:func:`is_page_load` tells a browser's top-level navigation (redirected to sign in) from
an API call or a script's request (answered 401, never redirected: a script cannot follow
a login page).  :func:`login_target` is the request's own path and query as the
``target_url`` of that sign-in.

Security caveat: both read headers a client chooses; they decide only *how* a request
without a session is refused, never whether it is let in.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from webob import Request
from webob.request import PATH_SAFE

_SLASHES = re.compile(r"/{2,}")
#: What a query string may keep as it is in a login target (``%`` too: it is already quoted).
_QUERY_SAFE = "!$&'()*+,/:;=?@~%-._"


def login_target(environ: dict[str, Any]) -> str:
    """The request's path and query below the mount point (SCRIPT_NAME), URL-quoted: a login target.

    Repeated slashes collapse (``//admin`` would read as a host to go to, and be refused
    as a target), and whatever a client left unquoted in the query is quoted.
    """
    path = quote(_latin1(_SLASHES.sub("/", environ.get("PATH_INFO", "")) or "/"), safe=PATH_SAFE)
    query = quote(_latin1(environ.get("QUERY_STRING", "")), safe=_QUERY_SAFE)
    return f"{path}?{query}" if query else path


def _latin1(text: str) -> bytes:
    """PEP 3333: the bytes the client sent, carried as latin-1 text."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def is_page_load(request: Request) -> bool:
    """True for a top-level navigation (which may be redirected to sign in), False for API calls."""
    if request.method not in ("GET", "HEAD"):
        return False
    mode = request.headers.get("Sec-Fetch-Mode")
    if mode is not None:
        return bool(mode == "navigate")
    if request.headers.get("X-Requested-With"):
        return False
    return "text/html" in request.headers.get("Accept", "")
