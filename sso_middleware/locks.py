"""Short mutexes shared by every process using one session store: single-flight token refresh.

:meth:`StoreLocks.hold` makes concurrent holders of one name take turns, with a
bounded wait.  Within a process the waiters queue on a ``threading.Lock``; across
processes (and hosts) the lock lives where the sessions do:

* ``ext:redis``: ``SET key token NX PX ttl``, released by a compare-and-delete
  script, so a holder whose lock expired never releases the next holder's.
* ``ext:memcached``: ``add`` (atomic create-if-absent) with a TTL; released by a
  compare-and-swap to a tombstone (only if the value is still ours), then ``delete``.
* ``file``: ``flock`` on a file in the store's lock folder; the kernel releases
  it when the holder dies.
* ``cookie`` and ``environ``: there is no shared store, so the lock is per
  process only (documented: use a server-side store for refresh across processes).

Security caveat: a lock is advisory and expires (Redis/memcached) after ``ttl``
seconds, so a holder must finish its work within ``ttl``; callers pass a ``ttl``
longer than their whole bounded work (the provider call's deadline).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional

from .config import SSOConfig
from .stores import JsonMemcachedNamespace, JsonRedisNamespace, StoreUnavailable, open_locked

try:
    import redis
except ImportError:  # pragma: no cover - exercised only without the extra
    redis = None  # type: ignore[assignment]

#: Seconds between two attempts at a lock another process holds (doubling up to ``_MAX_POLL``).
_FIRST_POLL = 0.01
_MAX_POLL = 0.1

_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

#: (acquire, release) of one lock in a shared store: ``acquire`` returns a handle or None when taken.
Acquire = Callable[[str, float], Optional[Any]]
Release = Callable[[str, Any], None]


class StoreLocks:
    """Named, expiring mutexes in the session store of one configuration."""

    def __init__(self, config: SSOConfig) -> None:
        self.kind = config.session_type
        self._local: dict[str, tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()
        self._shared: Optional[tuple[Acquire, Release]] = None
        if self.kind == "ext:redis":
            self._shared = _redis_lock(config)
        elif self.kind == "ext:memcached":
            self._shared = _memcached_lock(config)
        elif self.kind == "file":
            self._shared = _file_lock(os.path.join(config.data_dir, "locks"))

    @property
    def shared(self) -> bool:
        """True when the lock holds across processes (a server-side store)."""
        return self._shared is not None

    @contextlib.contextmanager
    def hold(self, name: str, ttl: float, wait: float) -> Iterator[bool]:
        """Hold the lock ``name`` for the block: yields True when acquired within ``wait`` seconds, else False.

        Raises :class:`StoreUnavailable` when the store cannot be asked.
        """
        deadline = time.monotonic() + wait
        local = self._local_lock(name)
        try:
            if not local.acquire(timeout=max(0.0, wait)):
                yield False
                return
            try:
                handle = self._acquire_shared(name, ttl, deadline)
                if self._shared is not None and handle is None:
                    yield False
                    return
                try:
                    yield True
                finally:
                    if self._shared is not None:
                        self._shared[1](name, handle)
            finally:
                local.release()
        finally:
            self._forget_local(name)

    def _acquire_shared(self, name: str, ttl: float, deadline: float) -> Optional[Any]:
        if self._shared is None:
            return None
        acquire = self._shared[0]
        pause = _FIRST_POLL
        while True:
            handle = acquire(name, ttl)
            if handle is not None:
                return handle
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(pause, left))
            pause = min(pause * 2, _MAX_POLL)

    def _local_lock(self, name: str) -> threading.Lock:
        with self._guard:
            lock, users = self._local.get(name) or (threading.Lock(), 0)
            self._local[name] = (lock, users + 1)
            return lock

    def _forget_local(self, name: str) -> None:
        with self._guard:
            lock, users = self._local[name]
            if users <= 1:
                del self._local[name]
            else:
                self._local[name] = (lock, users - 1)


def _store_key(name: str) -> str:
    return f"sso_middleware:lock:{name}"


def _redis_lock(config: SSOConfig) -> tuple[Acquire, Release]:
    client = JsonRedisNamespace.client_for(config.session_url, config.session_store_timeout)
    release_script = client.register_script(_RELEASE_SCRIPT)

    def acquire(name: str, ttl: float) -> Optional[str]:
        token = secrets.token_hex(16)
        try:
            taken = client.set(_store_key(name), token, nx=True, px=max(1, int(ttl * 1000)))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from None
        return token if taken else None

    def release(name: str, token: Any) -> None:
        with contextlib.suppress(redis.RedisError):  # it expires by itself
            release_script(keys=[_store_key(name)], args=[token])

    return acquire, release


def _memcached_lock(config: SSOConfig) -> tuple[Acquire, Release]:
    # Through the namespace's calls: the same shared client, and its retry after a memcached restart.
    memcached = JsonMemcachedNamespace("locks", config.session_url, socket_timeout=config.session_store_timeout)

    def key(name: str) -> str:
        return hashlib.sha256(_store_key(name).encode()).hexdigest()

    def acquire(name: str, ttl: float) -> Optional[str]:
        token = secrets.token_hex(16)
        if memcached._call("add", key(name), token, time=max(1, int(ttl + 0.999))):
            return token
        if memcached._down():
            raise StoreUnavailable("memcached: no server answers")
        return None

    def release(name: str, token: Any) -> None:
        # memcached has no compare-and-delete: compare-and-swap ours for a short tombstone (fails if the lock
        # expired and someone else took it meanwhile), then delete the tombstone, which nobody can hold.
        with contextlib.suppress(ValueError):  # a value we would not have written: leave it to expire
            if memcached._call("gets", key(name)) == token and memcached._call("cas", key(name), "released", time=1):
                memcached._call("delete", key(name))

    return acquire, release


def _file_lock(folder: str) -> tuple[Acquire, Release]:
    def acquire(name: str, ttl: float) -> Optional[int]:
        try:
            fd = open_locked(os.path.join(folder, f"sso-lock-{name}"), os.O_RDWR | os.O_CREAT,
                             fcntl.LOCK_EX | fcntl.LOCK_NB)
            if fd is not None:
                os.utime(fd)  # a held lock file is never old enough for the sweep
        except OSError as exc:  # not "held by someone else": that is None
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None
        return fd

    def release(name: str, fd: Any) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    return acquire, release
