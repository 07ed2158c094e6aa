"""Forms kept across a sign-in (``preserve_post``): one sealed, encrypted, single-use record each.

When a form POST reaches a ``preserve_post`` path without a valid session,
:mod:`sso_middleware._wsgi.preserved_post` reads its fields and :meth:`PostRecords.keep`
stores them as a side record of the session store (``sso-post-<random id>``, record
kind ``post``): the JSON of the fields, the target they go back to and an expiry,
encrypted with a fresh Fernet key (AES-CBC + HMAC-SHA256) made for this record alone,
then sealed like every server-side record (:mod:`sso_middleware._sealing`).  The
record's id and key travel only in the sign-in's transaction cookie (itself encrypted;
:mod:`sso_middleware._wsgi.transactions`), as one opaque *reference*.  After the
callback, :meth:`PostRecords.take` deletes the record first, then decrypts it: a
record is handed out at most once.

Security caveats:

* Bound to the browser that posted: only its transaction cookie holds the reference,
  and the key is in no other place -- whoever can read the store (or holds
  ``session_secret``) sees ciphertext, never the fields, and cannot make a record that
  decrypts under a reference the middleware issued.
* Single use rests on two things: the record is deleted before it is decrypted, and
  the callback that takes it has redeemed a single-use ``state`` and exchanged a
  single-use code.  Two callbacks racing with a *copied* transaction cookie would both
  need the provider to accept one code twice.
* An anonymous client can make the store hold up to ``preserve_post_max_body`` bytes
  (plus about a third for the encoding) per POST, for ``transaction_ttl`` seconds; the
  paths are the operator's choice, and a proxy's rate limit bounds the rest.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from cryptography.fernet import Fernet, InvalidToken

from .._config.settings import SSOConfig
from .._sealing import same_text
from ..stores import SessionBackend

log = logging.getLogger("sso_middleware")

__all__ = ["RECORD_PREFIX", "Fields", "KeptForm", "PostRecords"]

#: Prefix of the records holding kept forms (``<prefix><random id>``).
RECORD_PREFIX = "sso-post-"
#: The record kind of :mod:`sso_middleware._sealing` (part of each record's seal).
KIND = "post"
#: Seconds a record outlives its sign-in's ``transaction_ttl`` (the callback comes within that).
_MARGIN = 60

#: The fields of a form, in order, repeated names kept.
Fields = list[tuple[str, str]]


@dataclass(frozen=True)
class KeptForm:
    """A form taken back: its fields, and the ``sub`` of the user whose session had ended (None: unknown)."""

    fields: Fields = field(repr=False)  # what the user typed: never in a repr
    sub: Optional[str] = None


class PostRecords:
    """Keeps and hands back the forms of one middleware, in its session store's side records."""

    def __init__(self, config: SSOConfig, backend: SessionBackend) -> None:
        self._backend = backend
        self._ttl = int(config.transaction_ttl) + _MARGIN

    def keep(self, fields: Sequence[tuple[str, str]], target: str, now: float, sub: Optional[str] = None) -> str:
        """Store ``fields`` for a POST to ``target``; the reference for the sign-in's transaction.

        ``sub``: the user whose session had ended (expired, revoked, or too weak for a step-up),
        when known; the form is then sent again only for that user.

        Raises :class:`~sso_middleware.stores.StoreUnavailable` when the store cannot be written.
        """
        record_id = RECORD_PREFIX + secrets.token_urlsafe(24)
        key = Fernet.generate_key()
        payload = json.dumps({"target": target, "expires_at": now + self._ttl, "sub": sub,
                              "fields": [list(f) for f in fields]})
        token = Fernet(key).encrypt_at_time(payload.encode("utf-8"), int(now)).decode("ascii")
        self._backend.write_record(record_id, token, self._ttl, kind=KIND)
        return f"{record_id}.{key.decode('ascii')}"

    def discard(self, reference: str) -> None:
        """Delete the record of ``reference`` (its sign-in could not start: nobody will take it)."""
        record_id = reference.partition(".")[0]
        if record_id.startswith(RECORD_PREFIX):
            self._backend.delete_record(record_id)

    def take(self, reference: str, target: str, now: float) -> Optional[KeptForm]:
        """The fields kept under ``reference`` for ``target``, deleted from the store now; None when gone.

        None also for a reference or record that is not one of ours, another target's,
        or expired -- in every case the record named is deleted first.
        """
        record_id, _, key = reference.partition(".")
        if not record_id.startswith(RECORD_PREFIX) or not key:
            return None
        token = self._backend.read_record(record_id, kind=KIND)
        if token is None:
            return None
        self._backend.delete_record(record_id)  # before anything else: at most once, whatever follows
        try:
            data = json.loads(Fernet(key.encode("ascii")).decrypt_at_time(token.encode("ascii"), self._ttl, int(now)))
            kept_for, expires_at, raw, sub = data["target"], float(data["expires_at"]), data["fields"], data["sub"]
            fields = [(str(name), str(value)) for name, value in raw]
            if sub is not None and not isinstance(sub, str):
                raise TypeError("sub")
        except (InvalidToken, ValueError, TypeError, KeyError, UnicodeError):
            log.warning("sso: a kept form record could not be opened with its reference; dropped")
            return None
        if not isinstance(kept_for, str) or not same_text(kept_for, target) or expires_at <= now:
            log.info("sso: a kept form record was for another target or expired; dropped")
            return None
        return KeptForm(fields, sub)
