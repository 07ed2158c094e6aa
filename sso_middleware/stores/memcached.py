"""The memcached store (``session_type = ext:memcached``): sealed text records with a TTL, never unpickled.

``session_url = host:port;host:port`` (needs the ``python-memcached`` client).  An
index record is one sealed JSON list changed by compare-and-swap; the lock is an
``add`` (atomic create-if-absent) with a TTL, released by a compare-and-swap to a
tombstone (only if the value is still ours), then ``delete``.  memcached may evict
records under memory pressure (the user signs in again).

Security caveat: python-memcached unpickles whatever a value's flags ask for; the client here
refuses pickled and compressed values, and every value is sealed.  Removing a record deletes
that one key (Beaker's memcached ``remove`` would flush the whole server).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from beaker.container import NamespaceManager
from beaker.util import SyncDict

from .._sealing import MAX_RECORD_BYTES, RecordSeal
from ..errors import ConfigError
from .backend import Finding, lock_key, one_line
from .beaker import ServerRecords
from .errors import RecordGone, StoreUnavailable
from .sealed import _SealedRecords

if TYPE_CHECKING:
    from .._config.settings import SSOConfig

try:  # optional back end
    import memcache
except ImportError:  # pragma: no cover
    memcache = None

log = logging.getLogger("sso_middleware")


#: memcached takes an expiry time above 30 days as an absolute Unix time, not as seconds from now.
MEMCACHED_MAX_RELATIVE_TTL = 30 * 86400



class _RefusingUnpickler:
    """python-memcached's unpickler: a value flagged as pickled is refused, never loaded."""

    def __init__(self, file: Any) -> None:
        self.file = file

    def load(self) -> Any:
        raise ValueError("pickled values are refused")


def _refuse_compressed(data: bytes) -> bytes:
    raise ValueError("compressed values are refused")


def _accepts(server: Any) -> bool:
    """True when a python-memcached server accepts a connection now (probed on a socket closed at once)."""
    try:
        with socket.socket(server.family, socket.SOCK_STREAM) as probe:
            probe.settimeout(server.socket_timeout)
            probe.connect(server.address)
    except (OSError, OverflowError):
        return False
    return True


class JsonMemcachedNamespace(_SealedRecords, NamespaceManager):  # type: ignore[misc]
    """A Beaker namespace over memcached (python-memcached) that stores sealed text, never unpickles, with a TTL.

    An index record is one sealed JSON list, changed by compare-and-swap.
    """

    clients = SyncDict()

    def __init__(self, namespace: str, url: str, ttl: Optional[int] = None,
                 socket_timeout: float = 2.0, seal: Optional[RecordSeal] = None,
                 prefix: str = "sso_middleware", kind: str = "session", **kw: Any) -> None:
        super().__init__(namespace)
        self.ttl = ttl
        self.seal, self.prefix, self.kind = seal, prefix, kind
        self.socket_timeout = socket_timeout
        self.mc = self.client_for(url, socket_timeout)

    @classmethod
    def client_for(cls, url: str, socket_timeout: float) -> Any:
        """The (shared) client of a server list; ``ValueError`` for one it cannot parse.  Does not connect."""
        if memcache is None:
            raise StoreUnavailable("the python-memcached package is not installed (pip install python-memcached)")

        def create() -> Any:
            client = memcache.Client(
                url.split(";"), unpickler=_RefusingUnpickler, decompressor=_refuse_compressed,
                socket_timeout=socket_timeout, dead_retry=1, cache_cas=True,
            )
            for server in client.servers:  # an out-of-range port would raise OverflowError on every call
                port = getattr(server, "port", None)  # None for a unix socket
                if port is not None and not 0 < port < 65536:
                    raise ValueError(f"port {port} is out of range")
            return client

        return cls.clients.get((url, socket_timeout), create)

    def _name(self, key: str) -> str:
        """The record's full key before hashing (what its seal is bound to)."""
        return f"{self.prefix}:{self.namespace}:{key}"

    def _key(self, key: str) -> str:
        return hashlib.sha256(self._name(key).encode()).hexdigest()

    def _down(self) -> bool:
        now = time.time()
        return all(server.deaduntil > now for server in self.mc.servers)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A python-memcached call, made once more if it broke on a connection opened before.

        python-memcached marks a server dead for ``dead_retry`` as soon as a call fails, also
        when the call merely found its idle connection closed (memcached was restarted): without
        this retry every thread's first request after a restart would be answered 503.  It is
        made only when the server accepts a connection again; a server that is down is left
        marked dead, and later calls skip it until ``dead_retry`` has passed.
        """
        now = time.time()
        connected = [server for server in self.mc.servers if server.socket is not None and server.deaduntil <= now]
        result = getattr(self.mc, method)(*args, **kwargs)
        if time.time() - now > self.socket_timeout / 2:
            return result  # it timed out (a hung server), not a stale connection: no second wait
        reopened = [server for server in connected if server.deaduntil > now and _accepts(server)]
        if reopened:
            for server in reopened:
                server.deaduntil = 0
            result = getattr(self.mc, method)(*args, **kwargs)
        return result

    def __getitem__(self, key: str) -> Any:
        try:
            value = self._call("get", self._key(key))
        except ValueError:  # a value we would not have written (pickled, compressed, odd flags)
            raise KeyError(key) from None
        if value is None:
            if self._down():
                raise StoreUnavailable("memcached: no server answers")
            raise KeyError(key)
        opened = self._opened(self._name(key), key, value)
        if opened is None:  # not sealed for this key: no record
            raise KeyError(key)
        return opened

    def __contains__(self, key: str) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def has_key(self, key: str) -> bool:
        return key in self

    def _expiry(self, ttl: Optional[int]) -> int:
        seconds = int(ttl or self.ttl or 0)
        if seconds > MEMCACHED_MAX_RELATIVE_TTL:  # memcached reads a larger number as a Unix time
            seconds += int(time.time())
        return seconds

    def set_value(self, key: str, value: Any, expiretime: Optional[int] = None) -> None:
        ttl = self._expiry(expiretime)
        value = self._sealed(self._name(key), key, value)
        if self.only_if_exists:  # an update: "replace" never recreates a record deleted meanwhile
            if not self._call("replace", self._key(key), value, time=ttl):
                if self._down():
                    raise StoreUnavailable("memcached: the value was not stored")
                raise RecordGone(self.namespace)
        elif not self._call("set", self._key(key), value, time=ttl):
            raise StoreUnavailable("memcached: the value was not stored")

    def __setitem__(self, key: str, value: Any) -> None:
        self.set_value(key, value)

    def __delitem__(self, key: str) -> None:
        # python-memcached answers 0 both for "no such key" and for a failure: tell them apart,
        # or a sign-out (or back-channel logout) would report success with the record still there.
        if not self._call("delete", self._key(key)) and self._down():
            raise StoreUnavailable("memcached: no server answers")

    def do_remove(self) -> None:
        del self["session"]  # one key: never flush_all, which would sign everyone out

    #: Set by the store for an update of an existing session: never recreate a deleted record.
    only_if_exists = False

    def index_add(self, member: str) -> None:
        """Add a session id to this index record (compare-and-swap, so concurrent sign-ins are kept)."""
        self._swap(lambda members: [*(kept for kept in members if kept != member), member])

    def index_members(self) -> list[str]:
        """The session ids of this index record (read only)."""
        try:
            raw = self._call("get", self._key("index"))
        except ValueError:
            raw = None
        if raw is None:
            if self._down():
                raise StoreUnavailable("memcached: no server answers")
            return []
        return sorted(self._members(raw))

    def _members(self, raw: Any) -> list[str]:
        """The session ids of an index record's value; [] when it is not sealed for this index."""
        opened = self._opened(self._name("index"), "index", raw)
        try:
            members = json.loads(opened) if opened is not None else []
        except ValueError:  # pragma: no cover - we sealed JSON
            return []
        return [member for member in members if isinstance(member, str)] if isinstance(members, list) else []

    def _sealed_members(self, members: list[str]) -> str:
        """The sealed value of an index record; the oldest ids are dropped if it would be over the size limit."""
        while True:
            text = json.dumps(members)
            if len(text) < MAX_RECORD_BYTES - 100 or not members:
                return self._sealed(self._name("index"), "index", text)
            log.warning("sso: an index record is full; forgetting its oldest session for back-channel logout")
            members = members[len(members) // 10 + 1:]

    def index_remove(self, members: list[str]) -> None:
        """Remove session ids (already deleted) from this index record (compare-and-swap)."""
        gone = set(members)
        if gone:
            self._swap(lambda current: [member for member in current if member not in gone])

    def _swap(self, change: Any) -> None:
        key, ttl = self._key("index"), self._expiry(None)
        for _attempt in range(20):
            try:
                raw = self._call("gets", key)
            except ValueError:  # a value we would not have written (odd flags)
                raw = None
            if raw is None:
                if self._down():
                    raise StoreUnavailable("memcached: no server answers")
                if self._call("add", key, self._sealed_members(change([])), time=ttl):
                    return
                if _attempt:  # it exists but cannot be read (a planted pickle): replace it
                    self._call("delete", key)
                continue  # someone created it meanwhile: read again
            if self._call("cas", key, self._sealed_members(change(self._members(raw))), time=ttl):
                return
        raise StoreUnavailable("memcached: the index kept changing")

    def keys(self) -> list[str]:
        return ["session"] if "session" in self else []


class MemcachedBackend(ServerRecords):
    """Sessions, token and index records in memcached (:class:`JsonMemcachedNamespace`); a lock shared by every host."""

    namespace_class = JsonMemcachedNamespace
    beaker_type = "ext:memcached"

    def __init__(self, config: SSOConfig) -> None:
        super().__init__(config)
        # The locks go through a namespace's calls: the same shared client, and its retry after a restart.
        self._locks = JsonMemcachedNamespace("locks", config.session_url, socket_timeout=config.session_store_timeout)

    @classmethod
    def validate(cls, config: SSOConfig) -> None:
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+(;[A-Za-z0-9.\-\[\]:]+)*", config.session_url):
            raise ConfigError("session_url", "ext:memcached needs servers like 127.0.0.1:11211;10.0.0.2:11211")
        if config.session_idle_timeout > 30 * 86400:
            raise ConfigError("session_idle_timeout", "memcached keeps records at most 30 days")

    def acquire(self, name: str, ttl: float) -> Optional[str]:
        token = secrets.token_hex(16)
        if self._locks._call("add", _lock_key(name), token, time=max(1, int(ttl + 0.999))):
            return token
        if self._locks._down():
            raise StoreUnavailable("memcached: no server answers")
        return None

    def release(self, name: str, handle: Any) -> None:
        # memcached has no compare-and-delete: compare-and-swap ours for a short tombstone (fails if the lock
        # expired and someone else took it meanwhile), then delete the tombstone, which nobody can hold.
        key, locks = _lock_key(name), self._locks
        with contextlib.suppress(ValueError):  # a value we would not have written: leave it to expire
            if locks._call("gets", key) == handle and locks._call("cas", key, "released", time=1):
                locks._call("delete", key)

    def probe(self) -> Iterator[Finding]:
        """Each server stores and returns a probe key (deleted again)."""
        timeout = self.config.session_store_timeout
        for server in self.config.session_url.split(";"):
            key = f"sso_middleware:doctor-probe:{secrets.token_hex(8)}"
            try:
                client = JsonMemcachedNamespace.client_for(server, timeout)
                for host in client.servers:  # connect first ourselves: python-memcached leaks a refused socket
                    with socket.socket(host.family, socket.SOCK_STREAM) as probe:
                        probe.settimeout(timeout)
                        probe.connect(host.address)
                stored = client.set(key, b"probe", time=60)
                read = client.get(key) if stored else None
                client.delete(key)
            except OSError as exc:
                yield "FAIL", f"memcached at {server} does not answer: {exc.strerror or type(exc).__name__}"
                continue
            except Exception as exc:  # python-memcached mostly reports failures as False, but not always
                yield "FAIL", f"memcached at {server}: {type(exc).__name__}: {one_line(str(exc))}"
                continue
            if stored and read == b"probe":
                yield "OK", f"memcached at {server} stores and returns a probe key"
            else:
                yield "FAIL", f"memcached at {server} does not answer (set/get of a probe key failed)"


def _lock_key(name: str) -> str:
    return hashlib.sha256(lock_key(name).encode()).hexdigest()
