"""An in-memory session back end, written from the README's "Writing your own session back end" alone.

Honest to that contract: every record and index member is sealed with ``self.seal`` and
only what ``self.seal.open`` returns is handed back; records and index sets expire by
their TTL (on ``self.clock``, so a test can move it); an update of an existing record
happens under one lock with its existence check; ``down = True`` plays a store that
cannot be reached.  Everything using one object shares its dict -- and so its lock,
which is why ``shared_lock`` is true.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

from sso_middleware import ConfigError, SSOConfig
from sso_middleware.stores import BeakerBackend, SessionTooLarge, StoreUnavailable


class DictBackend(BeakerBackend):
    """Sessions, token records and index sets in dicts of this object."""

    shared_lock = True

    def __init__(self, config: SSOConfig) -> None:
        super().__init__(config)
        self.records: dict[str, tuple[float, str]] = {}  # key -> (expires at, sealed text)
        self.indexes: dict[str, tuple[float, set[str]]] = {}  # key -> (expires at, sealed members)
        self.locks: dict[str, tuple[float, str]] = {}  # name -> (expires at, holder's token)
        self.guard = threading.Lock()
        self.down = False
        self.clock = time.time

    @classmethod
    def validate(cls, config: SSOConfig) -> None:
        if config.session_url and not config.session_url.startswith("memory:"):
            raise ConfigError("session_url", "DictBackend keeps sessions in memory: no URL but memory:NAME")

    def probe(self) -> Iterator[tuple[str, str]]:
        self._reachable()
        with self.guard:
            count = len(self.records)
        yield "OK", f"in-memory store: {count} records"

    def _key(self, record_id: str) -> str:
        return f"{self.prefix}:dict:{record_id}"

    def _reachable(self) -> None:
        if self.down:
            raise StoreUnavailable("dict store: down")

    # -- records -------------------------------------------------------------------------------

    def read_record(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        self._reachable()
        key = self._key(record_id)
        with self.guard:
            entry = self.records.get(key)
        if entry is None or entry[0] <= self.clock():
            return None
        return self.seal.open(kind, key, entry[1])

    def write_record(self, record_id: str, text: str, ttl: int, existing: bool = False, kind: str = "tokens") -> bool:
        self._reachable()
        key = self._key(record_id)
        try:
            sealed = self.seal.seal(kind, key, text)
        except ValueError as exc:
            raise SessionTooLarge(str(exc)) from None
        with self.guard:
            now = self.clock()
            if existing:
                current = self.records.get(key)
                if current is None or current[0] <= now:
                    return False
            self.records[key] = (now + ttl, sealed)
        return True

    def delete_record(self, record_id: str) -> None:
        self._reachable()
        with self.guard:
            self.records.pop(self._key(record_id), None)

    # -- the sid/sub index -----------------------------------------------------------------------

    def index_add(self, index_id: str, session_id: str, ttl: int) -> None:
        self._reachable()
        key = self._key(index_id)
        member = self.seal.seal("index", key, session_id)
        with self.guard:
            now = self.clock()
            expires, members = self.indexes.get(key, (0.0, set()))
            if expires <= now:
                members = set()
            self.indexes[key] = (now + ttl, {*members, member})

    def index_members(self, index_id: str) -> list[str]:
        self._reachable()
        key = self._key(index_id)
        with self.guard:
            expires, members = self.indexes.get(key, (0.0, set()))
            members = set(members) if expires > self.clock() else set()
        opened = [self.seal.open("index", key, member) for member in members]
        return sorted(member for member in opened if member is not None)

    def index_remove(self, index_id: str, session_ids: list[str]) -> None:
        self._reachable()
        key = self._key(index_id)
        gone = {self.seal.seal("index", key, session_id) for session_id in session_ids}
        with self.guard:
            if key in self.indexes:
                expires, members = self.indexes[key]
                self.indexes[key] = (expires, members - gone)

    # -- the lock --------------------------------------------------------------------------------

    def acquire(self, name: str, ttl: float) -> Optional[str]:
        self._reachable()
        with self.guard:
            now = self.clock()
            held = self.locks.get(name)
            if held is not None and held[0] > now:
                return None
            token = secrets.token_hex(16)
            self.locks[name] = (now + ttl, token)
            return token

    def release(self, name: str, handle: Any) -> None:
        with self.guard:
            held = self.locks.get(name)
            if held is not None and held[1] == handle:
                del self.locks[name]


class NotABackend:
    """Reads records, and nothing else: not a session back end."""

    def read_record(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        return None


class HalfABackend(BeakerBackend):
    """Stores records but keeps no index: its abstract index methods are left unimplemented."""

    def read_record(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        return None

    def write_record(self, record_id: str, text: str, ttl: int, existing: bool = False, kind: str = "tokens") -> bool:
        return True

    def delete_record(self, record_id: str) -> None:
        return None
