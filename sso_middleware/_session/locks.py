"""Short mutexes shared by every process using one session store: single-flight token refresh.

:meth:`StoreLocks.hold` makes concurrent holders of one name take turns, with a
bounded wait.  Within a process the waiters queue on a ``threading.Lock``; across
processes (and hosts) the lock lives where the sessions do: the back end's
:meth:`~sso_middleware.stores.SessionBackend.acquire` (Redis ``SET NX PX``, memcached ``add``, the
file store's ``flock``).  A back end without ``shared_lock`` (cookie, environ) has no
shared store, so the lock is per process only (documented: use a server-side store
for refresh across processes).

Security caveat: a lock is advisory and expires (Redis/memcached) after ``ttl``
seconds, so a holder must finish its work within ``ttl``; callers pass a ``ttl``
longer than their whole bounded work (the provider call's deadline).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

from .._config.settings import SSOConfig
from ..stores import SessionBackend, backend_for

#: Seconds between two attempts at a lock another process holds (doubling up to ``_MAX_POLL``).
_FIRST_POLL = 0.01
_MAX_POLL = 0.1


class StoreLocks:
    """Named, expiring mutexes in the session store of one configuration."""

    def __init__(self, config: SSOConfig, backend: Optional[SessionBackend] = None) -> None:
        """Locks in ``backend`` (by default a back end of its own, built from ``config``)."""
        self.backend = backend if backend is not None else backend_for(config)
        self._local: dict[str, tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()

    @property
    def shared(self) -> bool:
        """True when the lock holds across processes (a server-side store)."""
        return self.backend.shared_lock

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
                if handle is None:
                    yield False
                    return
                try:
                    yield True
                finally:
                    self.backend.release(name, handle)
            finally:
                local.release()
        finally:
            self._forget_local(name)

    def _acquire_shared(self, name: str, ttl: float, deadline: float) -> Optional[Any]:
        pause = _FIRST_POLL
        while True:
            handle = self.backend.acquire(name, ttl)
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

