"""An in-memory session back end, written from the README's "Writing your own session back end" alone.

Honest to that contract: it subclasses ``TextRecords``, which seals every record and index
member before ``put_text``/``set_add`` see it and hands back only what its seal opens; the
back end stores text. Records and index sets expire by their TTL (on ``self.clock``, so a
test can move it); an update of an existing record happens under one lock with its
existence check; ``down = True`` plays a store that cannot be reached.  Everything using one
object shares its dict -- and so its lock, which is why ``shared_lock`` is true.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

from sso_middleware import ConfigError, SSOConfig
from sso_middleware.stores import BeakerBackend, StoreUnavailable, TextRecords


class DictBackend(TextRecords):
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

    def record_key(self, record_id: str) -> str:
        return f"{self.prefix}:dict:{record_id}"

    def _reachable(self) -> None:
        if self.down:
            raise StoreUnavailable("dict store: down")

    # -- text values (TextRecords seals them before they reach here) ----------------------------

    def get_text(self, key: str) -> Optional[str]:
        self._reachable()
        with self.guard:
            entry = self.records.get(key)
        return entry[1] if entry is not None and entry[0] > self.clock() else None

    def put_text(self, key: str, text: str, ttl: int, existing: bool) -> bool:
        self._reachable()
        with self.guard:
            now = self.clock()
            if existing:
                current = self.records.get(key)
                if current is None or current[0] <= now:
                    return False
            self.records[key] = (now + ttl, text)
        return True

    def delete_text(self, key: str) -> None:
        self._reachable()
        with self.guard:
            self.records.pop(key, None)

    # -- sets (the sid/sub index) -----------------------------------------------------------------

    def set_add(self, key: str, member: str, ttl: int) -> None:
        self._reachable()
        with self.guard:
            now = self.clock()
            expires, members = self.indexes.get(key, (0.0, set()))
            if expires <= now:
                members = set()
            self.indexes[key] = (now + ttl, {*members, member})

    def set_members(self, key: str) -> list[str]:
        self._reachable()
        with self.guard:
            expires, members = self.indexes.get(key, (0.0, set()))
            return list(members) if expires > self.clock() else []

    def set_remove(self, key: str, members: list[str]) -> None:
        self._reachable()
        with self.guard:
            if key in self.indexes:
                expires, current = self.indexes[key]
                self.indexes[key] = (expires, current - set(members))

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
