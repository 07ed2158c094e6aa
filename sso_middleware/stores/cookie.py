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

import re
from collections.abc import Iterator
from typing import Any, ClassVar, Optional

from beaker._compat import b64decode
from beaker.crypto import DEFAULT_NONCE_BITS, generateCryptoKeys, get_crypto_module, get_nonce_size
from beaker.session import CookieSession

from .._sealing import BoundedJsonSerializer, app_key_text
from .backend import Finding
from .backend import Session as Container
from .beaker import BeakerBackend
from .direct import StoredSession, signed_part

#: Beaker's encryption module of ``crypto_type = default`` (pyca/cryptography: AES-GCM).
_CRYPTO = get_crypto_module("default")
#: What Beaker writes in an encrypted session cookie: 40 hex digits of HMAC-SHA1, then nonce and base64 text
#: (double-quoted by :mod:`http.cookies` whenever that holds ``/`` or ``=``).
_ENCRYPTED = re.compile(r'([0-9a-f]{40}[A-Za-z0-9+/=]+)|"([0-9a-f]{40}[A-Za-z0-9+/=]+)"')


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
    """Beaker's encrypted cookie session (:class:`LazyCookieSession`), read directly, written by Beaker.

    A request's cookie is verified and decrypted here, in Beaker's format (HMAC-SHA1 over
    the rest, then a nonce, the AES-GCM key derived from both keys and the nonce, and
    the bounded zlib JSON): :class:`LazyCookieSession` is built only to write a new cookie.
    """

    keeps_records = False
    session_class = LazyCookieSession

    def beaker_options(self) -> dict[str, Any]:
        return {"encrypt_key": app_key_text(self.config, "cookie encryption"),
                "validate_key": app_key_text(self.config, "cookie signature")}

    def can_read_directly(self) -> bool:
        """True with the options this class gives Beaker (another subclass's keep Beaker's reads)."""
        options = self.options
        return (self.session_class is LazyCookieSession and not options.get("timeout")
                and isinstance(options.get("encrypt_key"), str) and isinstance(options.get("validate_key"), str)
                and options.get("crypto_type", "default") == "default" and _CRYPTO.has_aes
                and isinstance(options.get("data_serializer"), BoundedJsonSerializer))

    def reads_directly(self, value: str) -> bool:
        """True for the shape Beaker writes: signature, nonce and base64, in double quotes or not."""
        return _ENCRYPTED.fullmatch(value) is not None

    def read_directly(self, value: str, cookie: str) -> Optional[StoredSession]:
        """The session in an encrypted cookie, as Beaker's ``CookieSession`` reads it; None when it is not ours."""
        options = self.options
        validate_key = options["validate_key"]
        payload = signed_part(value.strip('"'), validate_key.encode("utf-8"))
        if payload is None:
            return None  # as Beaker: a wrong signature is no session
        nonce_length = get_nonce_size(options.get("encrypt_nonce_bits", DEFAULT_NONCE_BITS))[1]
        nonce = payload[:nonce_length]
        try:
            key = generateCryptoKeys(options["encrypt_key"], validate_key + nonce, 1, _CRYPTO.getKeyLength())
            data = options["data_serializer"].loads(_CRYPTO.aesDecrypt(b64decode(payload[nonce_length:]), key))
        except Exception:  # whatever Beaker's decryption would raise: not a session of ours
            return None
        if not isinstance(data, dict):
            return None
        return StoredSession(str(data.get("_id", "")), data, cookie)

    def session_cookie(self, session: Container, created: bool) -> Optional[str]:
        """The whole session travels in the cookie: every save sends it again."""
        written = session.written if isinstance(session, StoredSession) else session
        return str(written.request["cookie_out"])

    def probe(self) -> Iterator[Finding]:
        yield "INFO", "session_type cookie: the session lives in the encrypted cookie (about 4 KB at most); no server"
