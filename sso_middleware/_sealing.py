"""Record integrity and application-bound keys: the one home of both.

Every key the middleware derives from ``session_secret`` comes from :func:`app_key`,
which binds it to a purpose *and* to the application (the issuer and the client id),
so two deployments that share a secret (the demo's two apps do) still get different
keys: different transaction-cookie keys, cookie-store keys, signed session ids and
record namespaces, and seals that the other cannot forge or reuse.

Every server-side record (Redis, memcached, file: session records, token records,
index records) is written through a :class:`RecordSeal` and read back through
:meth:`RecordSeal.open`, which, in this order,

1. refuses anything larger than :data:`MAX_RECORD_BYTES` before any other work;
2. verifies an HMAC-SHA256 over the record's kind, its full key and its payload,
   with a key bound to the application (``hmac.compare_digest`` on bytes);
3. only then hands the payload on to be decoded.

A record that fails any step is treated exactly like no record (logged at warning
level, without its id).  Beaker's session payloads (base64 of zlib of JSON) are, in
addition, decompressed with a bound (:class:`BoundedJsonSerializer`), so even a
record sealed with the right key cannot become a decompression bomb.

Security caveats: anyone holding ``session_secret`` can forge records and cookies for
every application that shares it -- the binding separates applications, it does not
protect a leaked secret.  A seal proves who wrote a record and where, not when: a
record can be written back under its own key (replayed) by someone who can write to
the store and saved an earlier copy; its lifetime fields (``signed_in_at``,
``last_seen``) and the store's TTL still bound it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import zlib
from typing import Any, Optional, Union

from ._config.settings import SSOConfig

log = logging.getLogger("sso_middleware")

#: The largest sealed record accepted (bytes), checked before anything else is done with it.  A session
#: record holds the claims and the ID token, compressed (a few KB; tens of KB with large group claims),
#: a token record an access and a refresh token (JWT access tokens are at most a few tens of KB), and an
#: index member list about 100 bytes per session: 256 KiB is several times the largest real record and
#: memcached's default 1 MiB item limit leaves room for it, while one read of a planted record costs at
#: most one HMAC over 256 KiB (well under a millisecond) and no decoding at all.
MAX_RECORD_BYTES = 256 * 1024

#: The most a session payload may decompress to (bytes): its JSON is a few KB; zlib's ratio reaches
#: about 1000:1, so without a bound 256 KiB could become 256 MiB.
MAX_SESSION_JSON_BYTES = 1024 * 1024

#: Version tag of the sealed format: ``1.<43 characters of base64url HMAC>.<payload>``.
_TAG = b"1."
_MAC_LENGTH = 43  # base64url of 32 bytes, unpadded

#: The kinds of records; each is part of the MAC, so a record of one kind never passes for another.
KINDS = frozenset({"session", "tokens", "index", "post"})  # post: a form kept across a sign-in (preserve_post)


def same_text(a: str, b: str) -> bool:
    """Constant-time equality of two strings, as UTF-8 bytes.

    ``hmac.compare_digest`` raises TypeError for ``str`` with non-ASCII characters;
    a token can hold any (even a lone surrogate, hence ``surrogatepass``).
    """
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def app_key(config: SSOConfig, purpose: str) -> bytes:
    """A 32-byte key for one ``purpose``, derived from ``session_secret`` and bound to this application.

    HMAC-SHA256 keyed with the secret over an unambiguous encoding (a JSON list) of the
    purpose, the issuer and the client id: two applications sharing a secret get
    unrelated keys.  Changing the issuer or the client id changes every key (existing
    sessions end once).
    """
    message = json.dumps(["sso_middleware", purpose, config.issuer_url, config.client_id]).encode()
    return hmac.new(config.session_secret.encode(), message, hashlib.sha256).digest()


def app_key_text(config: SSOConfig, purpose: str) -> str:
    """:func:`app_key` as 64 hex characters, for settings that take text (Beaker's keys and ``secret``)."""
    return app_key(config, purpose).hex()


def record_prefix(config: SSOConfig) -> str:
    """The prefix of this application's keys in Redis and memcached (``sso_middleware:<tag>``).

    The tag comes from :func:`app_key`: applications sharing a secret and a server never
    read, overwrite or delete each other's records.
    """
    return "sso_middleware:" + app_key(config, "record namespace").hex()[:20]


class RecordSeal:
    """Seals and opens the server-side records of one application (see the module's docstring)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_config(cls, config: SSOConfig) -> RecordSeal:
        return cls(app_key(config, "record seal"))

    def _mac(self, kind: str, record_key: str, payload: bytes) -> bytes:
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}")
        message = b"\x00".join((kind.encode(), record_key.encode("utf-8", "surrogateescape"), payload))
        digest = hmac.digest(self._key, message, "sha256")
        return base64.urlsafe_b64encode(digest).rstrip(b"=")

    def seal(self, kind: str, record_key: str, payload: str) -> str:
        """The text to store for ``payload`` under ``record_key``; ``ValueError`` when it would be too large."""
        data = payload.encode("utf-8")
        sealed = _TAG + self._mac(kind, record_key, data) + b"." + data
        if len(sealed) > MAX_RECORD_BYTES:
            raise ValueError(f"a {kind} record of {len(sealed)} bytes is over the {MAX_RECORD_BYTES}-byte limit")
        return sealed.decode("utf-8")

    def open(self, kind: str, record_key: str, sealed: Any, quiet: bool = False) -> Optional[str]:
        """The payload of a record sealed by :meth:`seal` for this kind and key, or None (no record).

        ``quiet``: do not log a refusal (the caller logs once for many, e.g. an index's members).
        """
        if not isinstance(sealed, (str, bytes, bytearray)):
            return self._refused(kind, "not text", quiet)
        if len(sealed) > MAX_RECORD_BYTES:  # before anything else, also before encoding a str
            return self._refused(kind, "too large", quiet)
        raw: Union[bytes, bytearray]
        try:
            raw = sealed.encode("utf-8") if isinstance(sealed, str) else sealed
        except UnicodeError:
            return self._refused(kind, "not UTF-8", quiet)
        if len(raw) > MAX_RECORD_BYTES:
            return self._refused(kind, "too large", quiet)
        head = len(_TAG) + _MAC_LENGTH
        if raw[:len(_TAG)] != _TAG or raw[head:head + 1] != b".":
            return self._refused(kind, "not sealed", quiet)
        payload = bytes(raw[head + 1:])
        if not hmac.compare_digest(bytes(raw[len(_TAG):head]), self._mac(kind, record_key, payload)):
            return self._refused(kind, "bad seal", quiet)
        try:
            return payload.decode("utf-8")
        except UnicodeError:  # pragma: no cover - we sealed UTF-8 text
            return self._refused(kind, "not UTF-8", quiet)

    @staticmethod
    def _refused(kind: str, why: str, quiet: bool) -> None:
        if not quiet:
            log.warning("sso: ignoring a %s record that is not sealed for this application (%s): "
                        "forged, copied, or written by an older version", kind, why)
        return None


class BoundedJsonSerializer:
    """Beaker's ``json`` serializer (zlib-compressed JSON) whose decompression is bounded.

    Defence in depth behind the seal: only records we sealed reach it, but a payload that
    would decompress to more than :data:`MAX_SESSION_JSON_BYTES` raises ``ValueError``
    after at most that much output, never allocating more.
    """

    def loads(self, data_string: bytes) -> Any:
        inflater = zlib.decompressobj()
        data = inflater.decompress(data_string, MAX_SESSION_JSON_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("the session payload is too large or truncated")
        return json.loads(data.decode("utf-8"))

    def dumps(self, data: Any) -> bytes:
        return zlib.compress(json.dumps(data).encode("utf-8"))
