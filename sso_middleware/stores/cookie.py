"""The cookie store (``session_type = cookie``): the whole session, encrypted and signed, in the cookie.

No server-side state: about 4 KB at most (a larger session is
:class:`~.errors.SessionTooLarge`), no records to delete, so sign-out and
back-channel logout become revocations (:mod:`sso_middleware._session.revocations`), and the token-refresh
lock holds within one process only.

Security caveat: the cookie is AES-encrypted and signed with keys derived from
``session_secret``, the issuer and the client id; a copy of a cookie taken before a
sign-out is only refused where the revocation journal reaches (one host).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Optional

from beaker.session import CookieSession

from .._sealing import app_key_text
from .backend import Finding
from .backend import Session as Container
from .beaker import BeakerBackend


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


class NoRecords:
    """The side-record and index methods of a back end that keeps no records (never called: ``keeps_records``)."""

    keeps_records: ClassVar[bool] = False

    def read_record(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        raise TypeError(f"{type(self).__name__} keeps no records")

    def write_record(self, record_id: str, text: str, ttl: int, existing: bool = False, kind: str = "tokens") -> bool:
        raise TypeError(f"{type(self).__name__} keeps no records")

    def delete_record(self, record_id: str) -> None:
        raise TypeError(f"{type(self).__name__} keeps no records")

    def index_add(self, index_id: str, session_id: str, ttl: int) -> None:
        raise TypeError(f"{type(self).__name__} keeps no index")

    def index_members(self, index_id: str) -> list[str]:
        raise TypeError(f"{type(self).__name__} keeps no index")

    def index_remove(self, index_id: str, session_ids: list[str]) -> None:
        raise TypeError(f"{type(self).__name__} keeps no index")


class CookieBackend(NoRecords, BeakerBackend):
    """Beaker's encrypted cookie session (:class:`LazyCookieSession`)."""

    keeps_records = False
    session_class = LazyCookieSession

    def beaker_options(self) -> dict[str, Any]:
        return {"encrypt_key": app_key_text(self.config, "cookie encryption"),
                "validate_key": app_key_text(self.config, "cookie signature")}

    def session_cookie(self, session: Container, created: bool) -> Optional[str]:
        """The whole session travels in the cookie: every save sends it again."""
        return str(session.request["cookie_out"])

    def probe(self) -> Iterator[Finding]:
        yield "INFO", "session_type cookie: the session lives in the encrypted cookie (about 4 KB at most); no server"
