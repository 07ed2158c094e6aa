"""The base class for a session back end of one's own: it stores text, the seal is done here.

Subclass :class:`TextRecords` and implement six methods over plain text keys
(``get_text``, ``put_text``, ``delete_text``, ``set_add``, ``set_members``,
``set_remove``); the record and index methods of
:class:`~sso_middleware.stores.backend.SessionBackend` are built on them, sealing every
value on its way in and opening it on its way out.

Security caveat: this is where the seal of a user-written back end lives, so that such a
back end cannot forget it.  Whatever ``get_text`` or ``set_members`` returns is only
handed on when :meth:`~sso_middleware._sealing.RecordSeal.open` accepts it for this kind,
this key and this application (size checked first); a value planted in the store, copied
from another key or written by another application reads as no record.  The subclass
still owns atomicity (``existing``), TTLs and :class:`StoreUnavailable` for an outage.
"""

from __future__ import annotations

import abc
from typing import Optional

from .beaker import BeakerBackend
from .errors import SessionTooLarge


class TextRecords(BeakerBackend):
    """A Beaker-session back end over a text store; subclasses store sealed text and never see a seal."""

    def record_key(self, record_id: str) -> str:
        """The full key of a record (and of an index set) in the store: bound to this application."""
        return f"{self.prefix}:{record_id}"

    # -- what the subclass implements: plain text under full keys --------------------------------

    @abc.abstractmethod
    def get_text(self, key: str) -> Optional[str]:
        """The text stored under ``key``, or None when there is none or it expired."""

    @abc.abstractmethod
    def put_text(self, key: str, text: str, ttl: int, existing: bool) -> bool:
        """Store ``text`` for ``ttl`` seconds; with ``existing``, only (atomically) over a live value: else False."""

    @abc.abstractmethod
    def delete_text(self, key: str) -> None:
        """Delete the value under ``key``; a missing one is no error."""

    @abc.abstractmethod
    def set_add(self, key: str, member: str, ttl: int) -> None:
        """Add ``member`` to the set under ``key`` and reset its TTL, keeping concurrent adds."""

    @abc.abstractmethod
    def set_members(self, key: str) -> list[str]:
        """The members of the set under ``key`` (``[]`` when there is none or it expired)."""

    @abc.abstractmethod
    def set_remove(self, key: str, members: list[str]) -> None:
        """Remove ``members`` from the set under ``key``; members added meanwhile stay."""

    # -- the protocol's record and index methods, sealed ------------------------------------------

    def read_record(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        key = self.record_key(record_id)
        stored = self.get_text(key)
        return None if stored is None else self.seal.open(kind, key, stored)

    def write_record(self, record_id: str, text: str, ttl: int, existing: bool = False, kind: str = "tokens") -> bool:
        key = self.record_key(record_id)
        try:
            sealed = self.seal.seal(kind, key, text)
        except ValueError as exc:  # over the record size limit
            raise SessionTooLarge(str(exc)) from None
        return self.put_text(key, sealed, ttl, existing)

    def delete_record(self, record_id: str) -> None:
        self.delete_text(self.record_key(record_id))

    def index_add(self, index_id: str, session_id: str, ttl: int) -> None:
        key = self.record_key(index_id)
        self.set_add(key, self.seal.seal("index", key, session_id), ttl)

    def index_members(self, index_id: str) -> list[str]:
        key = self.record_key(index_id)
        opened = (self.seal.open("index", key, member) for member in self.set_members(key))
        return sorted({member for member in opened if member is not None})

    def index_remove(self, index_id: str, session_ids: list[str]) -> None:
        key = self.record_key(index_id)
        self.set_remove(key, [self.seal.seal("index", key, session_id) for session_id in session_ids])
