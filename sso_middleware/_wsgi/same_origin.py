"""Whether a request that changes state was sent by this site's own pages: the one home of that rule.

A POST proves where it comes from only by what the browser adds to it: ``Origin`` (sent
with every POST by a current browser, as the canonical serialization
``scheme://host[:port]``) and Fetch metadata (``Sec-Fetch-Site``).  :func:`foreign_origin`
accepts a request whose ``Origin`` is exactly one of ``base_url``'s origins, or -- when a
browser sent no ``Origin`` -- whose ``Sec-Fetch-Site`` is ``same-origin``; a
``Sec-Fetch-Site`` other than ``same-origin`` is refused either way.  Used by the session
endpoint's POST (:mod:`.session_endpoint`, which also asks for its custom header) and by
``preserve_post`` (:mod:`.preserved_post`), which must never keep a cross-site form.

Security caveat: the comparison is exact (``"null"``, a sibling subdomain, another scheme
or port never match), and a request carrying neither header is refused: nothing proves
where it comes from.  Both headers are a browser's; a non-browser client can send any
value, so this stops cross-site requests made *through a victim's browser* (CSRF), not a
client that holds the user's cookie itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

__all__ = ["foreign_origin"]


def foreign_origin(environ: Mapping[str, Any], origins: tuple[str, ...]) -> Optional[str]:
    """Why the request is not proven to come from one of ``origins`` (for the log), or None when it is."""
    origin = environ.get("HTTP_ORIGIN")
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if origin is not None:
        if origin not in origins:  # browsers send the canonical serialization; "null" never matches
            return "Origin is not one of base_url's origins"
    elif site != "same-origin":
        return "no Origin, and Sec-Fetch-Site is not same-origin"
    if site is not None and site != "same-origin":
        return "Sec-Fetch-Site is not same-origin"
    return None
