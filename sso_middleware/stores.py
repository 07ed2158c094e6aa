"""Where sessions live: Beaker's back ends, configured safely for sharing between processes.

``session_type`` selects one Beaker back end:

* ``file`` (default): one machine, any number of processes (file locks).
* ``ext:redis``: ``session_url = redis://host:port/db``; many hosts.
* ``ext:memcached``: ``session_url = host:port;host:port``; many hosts (needs the
  ``python-memcached`` client).
* ``cookie``: the whole session, encrypted and signed, in the cookie itself (about
  4 KB at most); no server-side state.
* ``environ``: an existing Beaker session from an outer ``SessionMiddleware``
  (``environ[session_environ_key]``); that middleware owns the cookie and the store.

Security caveats.  Beaker's own Redis back end pickles what it stores, and
python-memcached unpickles whatever a value's flags ask for: anyone able to
write to a shared cache could then run code in every process.  The namespace
managers here store text, refuse pickled or compressed values, and never
unpickle anything (the file store too: its records are sealed JSON, not
Beaker's pickles).  Every record they write -- session, token and index
records -- is sealed (:mod:`.sealing`: an HMAC bound to the record's kind, its
full key and this application) and verified, size first, before anything
decodes it: a record planted by someone able to write to the store (or copied
from another key, or written by another application sharing the secret) reads
as no record.  Keys live under an application-bound prefix
(:func:`.sealing.record_prefix`).  Server-side records get a TTL a little longer than the idle
timeout.  Removing a record deletes that one key (Beaker's memcached ``remove``
would flush the whole server).  Connection failures become
:class:`StoreUnavailable`, answered 503 by the middleware, and every call is
bounded by ``session_store_timeout``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import socket
import stat
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional, TypeVar

from beaker.container import FileNamespaceManager, NamespaceManager
from beaker.exceptions import BeakerException
from beaker.session import CookieSession, Session
from beaker.synchronization import null_synchronizer
from beaker.util import SyncDict

from .config import SSOConfig
from .errors import ConfigError
from .sealing import MAX_RECORD_BYTES, BoundedJsonSerializer, RecordSeal, app_key_text, record_prefix

try:  # optional back ends
    import redis
except ImportError:  # pragma: no cover - exercised only without the extra
    redis = None  # type: ignore[assignment]
try:
    import memcache
except ImportError:  # pragma: no cover
    memcache = None


log = logging.getLogger("sso_middleware")

#: memcached takes an expiry time above 30 days as an absolute Unix time, not as seconds from now.
MEMCACHED_MAX_RELATIVE_TTL = 30 * 86400


class StoreUnavailable(Exception):
    """The session store cannot be reached; the request is answered 503."""


class SessionTooLarge(Exception):
    """A cookie session would not fit in a cookie."""


class RecordGone(Exception):
    """An update found its record deleted meanwhile (signed out elsewhere): it is not written back."""


class _RefusingUnpickler:
    """python-memcached's unpickler: a value flagged as pickled is refused, never loaded."""

    def __init__(self, file: Any) -> None:
        self.file = file

    def load(self) -> Any:
        raise ValueError("pickled values are refused")


def _refuse_compressed(data: bytes) -> bytes:
    raise ValueError("compressed values are refused")


class _SealedRecords:
    """What the namespace managers share: sealing a value on its way in, opening it on its way out.

    ``kind`` is the kind of the record's ``session`` value ("session" for Beaker's records,
    "tokens" for a token record); an index record is always of kind "index".  Without a
    seal (a namespace built only for its client, e.g. by the locks) nothing is readable.
    """

    seal: Optional[RecordSeal] = None
    kind = "session"

    def _kind_of(self, key: str) -> str:
        return "index" if key == "index" else self.kind

    def _sealed(self, record_key: str, key: str, value: Any) -> str:
        if self.seal is None:
            raise RuntimeError("this namespace has no seal: it cannot write records")
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        if not isinstance(text, str):
            raise TypeError(f"records are text, not {type(value).__name__}")
        try:
            return self.seal.seal(self._kind_of(key), record_key, text)
        except ValueError as exc:  # over the size limit
            raise SessionTooLarge(str(exc)) from None

    def _opened(self, record_key: str, key: str, value: Any, quiet: bool = False) -> Optional[str]:
        if self.seal is None:
            return None
        return self.seal.open(self._kind_of(key), record_key, value, quiet=quiet)

    def _open_members(self, record_key: str, members: list[Any]) -> list[str]:
        """The members of an index that are sealed for it (each on its own); refusals logged once."""
        opened = [self._opened(record_key, "index", member, quiet=True) for member in members]
        if None in opened:
            log.warning("sso: ignoring %d index entries not sealed for this application", opened.count(None))
        return [member for member in opened if member is not None]


class JsonRedisNamespace(_SealedRecords, NamespaceManager):  # type: ignore[misc]
    """A Beaker namespace over Redis that stores sealed text (no pickle), with a TTL.

    An index record is a Redis set whose members are each sealed (so ``SADD``/``SREM``
    stay atomic); a member that is not sealed for this index is ignored.
    """

    clients = SyncDict()

    def __init__(self, namespace: str, url: str, ttl: Optional[int] = None,
                 socket_timeout: float = 2.0, seal: Optional[RecordSeal] = None,
                 prefix: str = "sso_middleware", kind: str = "session", **kw: Any) -> None:
        super().__init__(namespace)
        self.ttl = ttl
        self.seal, self.prefix, self.kind = seal, prefix, kind
        self.client = self.client_for(url, socket_timeout)

    @classmethod
    def client_for(cls, url: str, socket_timeout: float) -> Any:
        """The (shared) client of a URL; ``ValueError`` for a URL it cannot parse.  Does not connect."""
        if redis is None:
            raise StoreUnavailable("the redis package is not installed (pip install redis)")
        return cls.clients.get(
            (url, socket_timeout),
            lambda: redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{self.namespace}:{key}"

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except redis.ResponseError:
            raise  # the server answered: a wrong type under our key, handled by the caller
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from None

    def __getitem__(self, key: str) -> Any:
        try:
            # At most one byte over the size limit is ever read: a planted value of hundreds of MiB is
            # refused by its size without crossing the network (GETRANGE answers "" for no record).
            value = self._call("getrange", self._key(key), 0, MAX_RECORD_BYTES) or None
        except redis.ResponseError:  # WRONGTYPE: a set, list or hash planted under our key is no record
            raise KeyError(key) from None
        opened = None if value is None else self._opened(self._key(key), key, value)
        if opened is None:  # missing, or not sealed for this key: no record
            raise KeyError(key)
        return opened  # Beaker stores (and expects back) the session as base64 text

    def __contains__(self, key: str) -> bool:
        return bool(self._call("exists", self._key(key)))

    def has_key(self, key: str) -> bool:
        return key in self

    #: Set by the store for an update of an existing session: never recreate a deleted record.
    only_if_exists = False

    def set_value(self, key: str, value: Any, expiretime: Optional[int] = None) -> None:
        ttl = expiretime or self.ttl
        sealed = self._sealed(self._key(key), key, value)
        stored = self._call("set", self._key(key), sealed, ex=int(ttl) if ttl else None, xx=self.only_if_exists)
        if not stored:
            raise RecordGone(self.namespace)

    def index_add(self, member: str) -> None:
        """Add a session id to this index record (a Redis set; atomic, refreshed TTL)."""
        sealed = self._sealed(self._key("index"), "index", member)
        for _attempt in range(2):
            pipe = self.client.pipeline(transaction=True)
            pipe.sadd(self._key("index"), sealed)
            pipe.expire(self._key("index"), int(self.ttl or 0) or 86400)
            try:
                self._call_pipe(pipe)
                return
            except redis.ResponseError:  # something else was planted under our key: replace it
                self._call("delete", self._key("index"))
        raise StoreUnavailable("redis: the index record cannot be written")

    def index_members(self) -> list[str]:
        """The session ids of this index record (read only: a timed-out call changes nothing)."""
        try:
            members = self._call("smembers", self._key("index"))
        except redis.ResponseError:  # not a set: nothing we wrote
            return []
        return sorted(self._open_members(self._key("index"), list(members)))

    def index_remove(self, members: list[str]) -> None:
        """Remove session ids (already deleted) from this index record."""
        if members:
            self._call("srem", self._key("index"), *(self._sealed(self._key("index"), "index", m) for m in members))

    def _call_pipe(self, pipe: Any) -> Any:
        try:
            return pipe.execute()
        except redis.ResponseError:
            raise
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.set_value(key, value)

    def __delitem__(self, key: str) -> None:
        self._call("delete", self._key(key))

    def do_remove(self) -> None:
        self._call("delete", self._key("session"))

    def keys(self) -> list[str]:
        return ["session"] if "session" in self else []


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


class PrivateFileNamespace(_SealedRecords, FileNamespaceManager):  # type: ignore[misc]
    """Beaker's file namespace (same files and locks), holding sealed JSON, with fewer file-system calls.

    * A record is the sealed JSON text of the namespace's dict (:mod:`.sealing`, kind and
      record id bound), never a pickle: a file that is not sealed for this record --
      planted, copied from another record, or a pickle of an older version -- reads as
      no record, and nothing is ever unpickled.  Reads are bounded by the size limit.

    * Reads take no lock: every write replaces the record by a rename (or, below,
      creates it whole before anyone knows its name), so a reader sees the old or the
      new record, never half of one.  Writes and removals keep Beaker's file lock.
    * Records are written with mode 0600 (they hold tokens), never through a planted link.
    * An update (``only_if_exists``) never recreates a record deleted meanwhile: the
      check runs under the write lock that a removal takes too.
    * A record the store knows to be new (:meth:`mark_fresh`: a session id just
      generated, known to nobody else yet) is created in place with ``O_EXCL``: no
      lock file and no temporary file.  Creating files is the expensive part of a
      file-system write (hundreds of microseconds on some virtual disks), and a
      sign-in used to create six.  Should the file exist after all, the ordinary
      locked write is used.
    """

    fresh = False
    #: Set by the store for an update of an existing session: never recreate a deleted record.  Checked
    #: under the record's write lock, which sign-out and back-channel logout take to delete it.
    only_if_exists = False
    flags: Optional[str]
    hash: dict[str, Any]

    def __init__(self, namespace: str, seal: Optional[RecordSeal] = None, kind: str = "session",
                 **kwargs: Any) -> None:
        super().__init__(namespace, **kwargs)
        self.seal, self.kind = seal, kind

    def do_open(self, flags: str, replace: bool) -> None:
        self.hash = {}
        if not replace:
            self.hash = self._read()
        self.flags = flags

    def _read(self) -> dict[str, Any]:
        """The record's dict, or {} when there is none (or none sealed for it); never unpickles."""
        try:
            # O_NONBLOCK: a FIFO planted under a record's name must not hang the worker in open().
            fd = os.open(self.file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EACCES, errno.ELOOP):
                return {}  # gone, or not a record of ours (a planted link)
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return {}  # a FIFO, device or folder: not a record of ours
            data = os.read(fd, MAX_RECORD_BYTES + 1)  # more than the limit is refused by the seal, unread
        finally:
            os.close(fd)
        opened = self._opened(f"file:{self.namespace}", "session", data)
        try:
            record = json.loads(opened) if opened is not None else {}
        except ValueError:  # pragma: no cover - we sealed JSON
            return {}
        return record if isinstance(record, dict) else {}

    def mark_fresh(self) -> None:
        self.fresh = True
        self.access_lock = null_synchronizer()

    def acquire_read_lock(self) -> None:
        self.open("r", checkcount=True)

    def release_read_lock(self) -> None:
        self.close(checkcount=True)

    def do_close(self) -> None:
        if self.flags not in ("c", "w"):
            self.hash = {}
            self.flags = None
            return
        data = self._sealed(f"file:{self.namespace}", "session", json.dumps(self.hash)).encode("utf-8")
        if self.only_if_exists and not self.fresh and not os.path.exists(self.file):
            self.hash = {}
            self.flags = None
            raise RecordGone(self.namespace)
        if self.fresh:
            self.fresh = False
            try:
                fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                self.access_lock = self.get_access_lock()
                with _held(self.access_lock):
                    _private_write(self.file, data)
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
        else:
            _private_write(self.file, data)
        self.hash = {}
        self.flags = None


def _private_write(path: str, data: bytes) -> None:
    """Replace a file atomically (temporary file and rename, like Beaker's ``safe_write``), readable by us alone.

    Records hold ID, access and refresh tokens: mode 0600 whatever the umask or the folder.
    """
    temporary = f"{path}.temp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # a leftover of a crash, or a planted file or link: never written through
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.rename(temporary, path)


@contextlib.contextmanager
def _held(lock: Any) -> Iterator[None]:
    lock.acquire_write_lock()
    try:
        yield
    finally:
        lock.release_write_lock()


_Result = TypeVar("_Result")


def _store_errors(method: Callable[..., _Result]) -> Callable[..., _Result]:
    """File-system errors of a store method become :class:`StoreUnavailable`."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> _Result:
        try:
            return method(*args, **kwargs)
        except OSError as exc:
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None

    return wrapper


class FileIndex(_SealedRecords):
    """A back-channel logout index record of the file store: session ids, one sealed line each, appended.

    Adding appends one line under ``flock`` on the record itself (no lock file, no
    temporary file, no rewrite); removing rewrites it under the same lock, so an id
    added meanwhile is never lost.  Records are swept like the other index records.
    Each line is sealed for this index (:mod:`.sealing`); a line that is not is ignored.
    """

    def __init__(self, folder: str, name: str, seal: Optional[RecordSeal] = None) -> None:
        self.folder = folder
        self.path = os.path.join(folder, name)
        self.seal = seal
        self.record_key = f"file-index:{name}"

    def _line(self, member: str) -> bytes:
        return self._sealed(self.record_key, "index", member).encode("ascii") + b"\n"

    @_store_errors
    def index_add(self, member: str) -> None:
        fd = open_locked(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, fcntl.LOCK_EX)
        assert fd is not None
        try:
            os.write(fd, self._line(member))
        finally:
            os.close(fd)

    def _members(self, data: bytes) -> list[str]:
        members = self._open_members(self.record_key, _lines(data))
        return [member for member in members if _SESSION_ID.fullmatch(member)]

    @_store_errors
    def index_members(self) -> list[str]:
        fd = open_locked(self.path, os.O_RDONLY, fcntl.LOCK_SH)
        if fd is None:
            return []
        try:
            return self._members(_read_all(fd))
        finally:
            os.close(fd)

    @_store_errors
    def index_remove(self, members: list[str]) -> None:
        gone = set(members)
        fd = open_locked(self.path, os.O_RDWR, fcntl.LOCK_EX) if gone else None
        if fd is None:
            return
        try:
            # Only our own lines of those ids go: a line not sealed for us may be another application's
            # sharing the folder (its seal has its key), whose back-channel logout still needs it.
            kept = [line for line in _lines(_read_all(fd))
                    if self._opened(self.record_key, "index", line, quiet=True) not in gone]
            os.ftruncate(fd, 0)
            if kept:
                os.pwrite(fd, "".join(line + "\n" for line in kept).encode("ascii"), 0)
        finally:
            os.close(fd)


def open_locked(path: str, flags: int, operation: int) -> Optional[int]:
    """Open ``path`` (never through a link) and ``flock`` it; the descriptor, or None.

    None when the file does not exist (without ``O_CREAT``) or, with ``LOCK_NB``, is
    held by someone else.  The folder is created (0700) when needed.  If the file was
    removed or replaced between the open and the lock (the sweep deletes old files),
    the lock would be on an orphan nobody else sees: it is opened again.  Other
    errors are raised.
    """
    for _attempt in range(5):
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            if not flags & os.O_CREAT:
                return None
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, operation)
            linked = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except BlockingIOError:  # LOCK_NB: held elsewhere
            os.close(fd)
            return None
        except FileNotFoundError:
            linked = False
        except BaseException:
            os.close(fd)
            raise
        if linked:
            return fd
        os.close(fd)
    raise OSError(errno.EAGAIN, f"{os.path.basename(path)} kept being replaced")


#: The largest file index record read (bytes): about 100 bytes per sealed line.
_MAX_INDEX_BYTES = 4 * MAX_RECORD_BYTES


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while offset < _MAX_INDEX_BYTES:
        chunk = os.pread(fd, 65536, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _lines(data: bytes) -> list[str]:
    """The distinct, well-formed sealed lines of an index record, in order (a torn last line is skipped)."""
    found: dict[str, None] = {}
    for line in data.decode("ascii", "replace").split("\n"):
        if line and _SEALED_LINE.fullmatch(line):
            found[line] = None
    return list(found)


_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_SEALED_LINE = re.compile(r"1\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{1,128}")

#: The key of a small record's value: the one Beaker's session records use, so :meth:`BeakerStore.remove_id`
#: deletes either kind of record.
_VALUE_KEY = "session"

_NAMESPACES: dict[str, Any] = {"ext:redis": JsonRedisNamespace, "ext:memcached": JsonMemcachedNamespace}


class BeakerStore:
    """Builds, loads and removes Beaker session objects for one configuration."""

    def __init__(self, config: SSOConfig, cookie_name: str, data_dir: Optional[str]) -> None:
        self.kind = config.session_type
        self.ttl = int(config.session_idle_timeout + 180)
        options: dict[str, Any] = {
            "key": cookie_name,
            "httponly": True,
            "secure": config.secure_cookies,
            "samesite": "Lax",
            "cookie_domain": config.cookie_domain or None,
            "cookie_path": config.cookie_path,
            "data_serializer": BoundedJsonSerializer(),  # Beaker's "json", its decompression bounded
            "invalidate_corrupt": False,  # corruption and outages are told apart in load()
            "cookie_expires": True,
        }
        # Every key is bound to this application (issuer and client id), not only to the secret.
        self.seal = RecordSeal.for_config(config)
        if self.kind == "cookie":
            options["encrypt_key"] = app_key_text(config, "cookie encryption")
            options["validate_key"] = app_key_text(config, "cookie signature")
        elif self.kind == "file":
            options.update(type="file", secret=app_key_text(config, "session id signature"), data_dir=data_dir,
                           lock_dir=f"{data_dir}/locks", namespace_class=PrivateFileNamespace, seal=self.seal)
            self.index_dir = os.path.join(str(data_dir), "index")
        else:  # Beaker hands the extra keywords to the namespace manager of each record
            try:  # a URL the client cannot use fails here, at construction, not on the first request
                _NAMESPACES[self.kind].client_for(config.session_url, config.session_store_timeout)
            except ValueError as exc:
                raise ConfigError("session_url", str(exc)) from None  # not the URL: it may hold a password
            except StoreUnavailable as exc:
                raise ConfigError("session_type", str(exc)) from None
            options.update(type=self.kind, secret=app_key_text(config, "session id signature"),
                           namespace_class=_NAMESPACES[self.kind], url=config.session_url, ttl=self.ttl,
                           socket_timeout=config.session_store_timeout, seal=self.seal, prefix=record_prefix(config))
        self.options = options
        self.server_side = self.kind != "cookie"

    def namespace_args(self) -> dict[str, Any]:
        """What Beaker passes to the namespace manager of a record."""
        names = ("data_dir", "lock_dir", "seal") if self.kind == "file" else ("url", "ttl", "socket_timeout", "seal",
                                                                             "prefix")
        return {name: self.options[name] for name in names}

    def session(self, cookie_header: str) -> Session:
        """The session a cookie header names (loaded), or a new one for ``""``.

        Raises :class:`StoreUnavailable` when the store cannot be read, and
        ``ValueError`` when the record (or cookie) is unreadable.
        """
        request = {"cookie": cookie_header}
        try:
            if self.kind == "cookie":
                return LazyCookieSession(request, **self.options)
            return Session(request, **self.options)
        except StoreUnavailable:
            raise
        except OSError as exc:
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None
        except Exception as exc:  # undecodable cookie, corrupt record (bad pickle, JSON, base64...)
            raise ValueError(f"unreadable session: {type(exc).__name__}") from None

    def save(self, session: Session, existing: bool = False) -> bool:
        """Write a session; for an ``existing`` one, only if its record is still there.

        Returns False when the record was deleted meanwhile (a sign-out or a back-channel
        logout on another request): an update must not bring a signed-out session back.
        """
        if self.kind == "file" and session.is_new and getattr(session, "namespace", None) is None:
            # A new session id, known to nobody yet: created in place (see PrivateFileNamespace).
            session.namespace = self.namespace(session.id)
            session.namespace.mark_fresh()
        namespace = getattr(session, "namespace", None)
        if namespace is not None and hasattr(namespace, "only_if_exists"):
            namespace.only_if_exists = existing
        try:
            session.save()
        except RecordGone:
            return False
        except StoreUnavailable:
            raise
        except OSError as exc:
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None
        except BeakerException as exc:
            if "too long" in str(exc):
                raise SessionTooLarge(str(exc)) from None
            raise
        return True

    def index_add(self, index_id: str, session_id: str, ttl: int) -> None:
        """Record that ``session_id`` belongs to an index (a provider ``sid`` or ``sub``)."""
        self._index(index_id, ttl).index_add(session_id)

    def end_index(self, index_id: str, companions: tuple[str, ...] = ()) -> list[str]:
        """Delete every session of an index, then those ids from the index; the ids ended.

        ``companions``: prefixes of records that belong to a session and go with it
        (``<prefix><session id>``, e.g. its tokens).

        Idempotent, so a provider retrying after a store outage completes the job: the
        index is only read before the sessions are deleted, and trimmed after.
        """
        index = self._index(index_id)
        members = list(index.index_members())
        for session_id in members:
            for prefix in companions:
                self.remove_id(prefix + session_id)
            self.remove_id(session_id)
        index.index_remove(members)
        return members

    def _index(self, index_id: str, ttl: Optional[int] = None) -> Any:
        """The index record: a Redis set, a memcached JSON list, or a :class:`FileIndex`."""
        if self.kind == "file":
            return FileIndex(self.index_dir, index_id, self.seal)
        return self.namespace(index_id, ttl=ttl)

    def read_value(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        """The text of a small record of our own (``None`` when there is none, or none sealed), e.g. a session's tokens.

        ``kind`` is part of the record's seal (:mod:`.sealing`): a record written as one kind never reads as another.
        """
        namespace = self.namespace(record_id, kind=kind)
        try:
            if self.kind == "file":
                namespace.acquire_read_lock()
                try:
                    value = namespace[_VALUE_KEY]
                finally:
                    namespace.release_read_lock()
            else:
                value = namespace[_VALUE_KEY]
        except (KeyError, ValueError):  # ValueError: bytes we would not have written (not UTF-8...)
            return None
        except OSError as exc:
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None
        return value if isinstance(value, str) else None

    def write_value(self, record_id: str, value: str, ttl: int, existing: bool = False, kind: str = "tokens") -> bool:
        """Write a small sealed record; for an ``existing`` one only if it is still there (False when it is gone)."""
        namespace = self.namespace(record_id, ttl=ttl, kind=kind)
        namespace.only_if_exists = existing
        try:
            if self.kind == "file":
                namespace.acquire_write_lock()
                try:
                    namespace[_VALUE_KEY] = value
                finally:
                    namespace.release_write_lock()  # writes (or refuses: RecordGone) here
            else:
                namespace.set_value(_VALUE_KEY, value)
        except RecordGone:
            return False
        except OSError as exc:
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None
        return True

    def remove(self, session: Session) -> None:
        """Delete a stored record (server-side stores); the cookie is expired by the caller."""
        if self.server_side and not session.is_new:
            self.remove_id(session.id)

    def remove_id(self, session_id: str) -> None:
        """Delete the record of a session id (back-channel logout)."""
        try:
            self.namespace(session_id).remove()
        except OSError as exc:
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None

    def namespace(self, record_id: str, ttl: Optional[int] = None, kind: str = "session") -> NamespaceManager:
        """The Beaker namespace manager of one record (``ttl`` overrides the sessions' TTL; ``kind``: see sealing)."""
        args = self.namespace_args()
        if ttl is not None and "ttl" in args:
            args["ttl"] = ttl
        namespace_class = self.options.get("namespace_class") or FileNamespaceManager
        return namespace_class(record_id, digest_filenames=False, kind=kind, **args)
