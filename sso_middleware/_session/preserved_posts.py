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
* Keeping a form is a store write by an anonymous client (its headers prove nothing to a
  script), so each process holds at most :data:`MAX_KEPT_BYTES` of forms it kept and that
  are not yet taken or expired (:class:`_Budget`; a small record counts
  :data:`MIN_RECORD_BYTES`); beyond that a form is refused, unwritten.  Without it a
  script POSTing in a loop fills the store at request rate -- memcached or an LRU Redis
  then evict *sessions*, the file store fills its disk.  The bound is per process, so the
  store holds at most that times the processes; while a flood holds it, real users' forms
  are refused too (a page saying so, as before ``preserve_post``), never a session lost.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from cryptography.fernet import Fernet, InvalidToken

from .._config.settings import SSOConfig
from .._sealing import same_text
from ..errors import PreservePostBusy
from ..stores import SessionBackend

log = logging.getLogger("sso_middleware")

__all__ = ["RECORD_PREFIX", "Fields", "KeptForm", "PostRecords"]

#: Prefix of the records holding kept forms (``<prefix><random id>``).
RECORD_PREFIX = "sso-post-"
#: The record kind of :mod:`sso_middleware._sealing` (part of each record's seal).
KIND = "post"
#: Seconds a record outlives its sign-in's ``transaction_ttl`` (the callback comes within that).
_MARGIN = 60
#: Most bytes of kept forms (as stored) one process holds in the store, not yet taken or expired.
MAX_KEPT_BYTES = 32 * 1024 * 1024
#: What a record counts against :data:`MAX_KEPT_BYTES` at least (the store's own overhead per record).
MIN_RECORD_BYTES = 1024
#: Seconds between two warnings that the budget is full (a flood would otherwise write one line per request).
_WARN_INTERVAL = 60.0

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
        self._budget = _Budget(MAX_KEPT_BYTES)

    def keep(self, fields: Sequence[tuple[str, str]], target: str, now: float, sub: Optional[str] = None) -> str:
        """Store ``fields`` for a POST to ``target``; the reference for the sign-in's transaction.

        ``sub``: the user whose session had ended (expired, revoked, or too weak for a step-up),
        when known; the form is then sent again only for that user.

        Raises :class:`~sso_middleware.errors.PreservePostBusy` when this process already holds
        :data:`MAX_KEPT_BYTES` of forms (nothing written), :class:`~sso_middleware.stores.StoreUnavailable`
        when the store cannot be written.
        """
        record_id = RECORD_PREFIX + secrets.token_urlsafe(24)
        key = Fernet.generate_key()
        payload = json.dumps({"target": target, "expires_at": now + self._ttl, "sub": sub,
                              "fields": [list(f) for f in fields]})
        token = Fernet(key).encrypt_at_time(payload.encode("utf-8"), int(now)).decode("ascii")
        if not self._budget.reserve(record_id, max(len(token), MIN_RECORD_BYTES), now, now + self._ttl):
            raise PreservePostBusy(f"this process already keeps {MAX_KEPT_BYTES} bytes of forms")
        try:
            self._backend.write_record(record_id, token, self._ttl, kind=KIND)
        except BaseException:
            self._budget.release(record_id)
            raise
        return f"{record_id}.{key.decode('ascii')}"

    def discard(self, reference: str) -> None:
        """Delete the record of ``reference`` (its sign-in could not start: nobody will take it)."""
        record_id = reference.partition(".")[0]
        if record_id.startswith(RECORD_PREFIX):
            self._budget.release(record_id)
            self._backend.delete_record(record_id)

    def take(self, reference: str, target: str, now: float) -> Optional[KeptForm]:
        """The fields kept under ``reference`` for ``target``, deleted from the store now; None when gone.

        None also for a reference that is not one of ours (no record id of this kind, or no key:
        nothing is read), and for a record that does not open with the key, is another target's
        or expired -- a record that was found is deleted before any of that is checked.
        """
        record_id, _, key = reference.partition(".")
        if not record_id.startswith(RECORD_PREFIX) or not key:
            return None
        self._budget.release(record_id)  # (kept by another process: not in this one's budget)
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


class _Budget:
    """The bytes of the records one process kept that are neither taken, discarded nor expired.

    Every record lives the same TTL, so insertion order is expiry order: expired entries
    are dropped from the front, in amortized constant time per reservation.  A record taken
    by another process (its callback landed there) counts here until it expires: the bound
    errs on the safe side.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._held: dict[str, tuple[float, int]] = {}  # record id -> (expires at, bytes), oldest first
        self._total = 0
        self._warned_at = float("-inf")

    def reserve(self, record_id: str, size: int, now: float, expires_at: float) -> bool:
        """Count ``size`` bytes for ``record_id`` until ``expires_at``; False (nothing counted) when over the limit."""
        with self._lock:
            while self._held:
                oldest = next(iter(self._held))
                if self._held[oldest][0] > now:
                    break
                self._total -= self._held.pop(oldest)[1]
            if self._total + size > self._limit:
                if now - self._warned_at >= _WARN_INTERVAL:
                    self._warned_at = now
                    log.warning("sso: preserve_post keeps %d bytes of forms in this process (the most it may): "
                                "new forms are refused until some are taken or expire", self._total)
                return False
            self._held[record_id] = (expires_at, size)
            self._total += size
            return True

    def release(self, record_id: str) -> None:
        """The record is gone (taken or discarded): its bytes count no more."""
        with self._lock:
            held = self._held.pop(record_id, None)
            if held is not None:
                self._total -= held[1]
