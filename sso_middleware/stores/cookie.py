"""The cookie store: Beaker's encrypted cookie session, built lazily."""

from __future__ import annotations

from typing import Any

from beaker.session import CookieSession


class LazyCookieSession(CookieSession):  # type: ignore[misc]
    """Beaker's encrypted cookie session, without re-encrypting the cookie on every read.

    ``CookieSession.__init__`` ends by serialising, compressing and encrypting the whole
    session again -- about half the cost of a signed-in request on the cookie store --
    for a ``Set-Cookie`` that is only sent when the session changed.  Here the cookie
    is built when the session is saved (or deleted), never while it is loaded.
    """

    _loading = False

    def __init__(self, request: dict[str, Any], **options: Any) -> None:
        self._loading = True
        try:
            super().__init__(request, **options)
        finally:
            self._loading = False

    def _create_cookie(self) -> None:
        if not self._loading:
            super()._create_cookie()
