"""Ended sessions that cannot be deleted server-side, known to every process of one host.

The cookie store keeps a whole session in the browser's cookie, and the
``environ`` store may sit inside an outer *cookie* session: there is no record
to delete, so a copy of the cookie taken before a sign-out (or before a
back-channel logout) would stay signed in until its absolute timeout.  Instead
the session's keys are *revoked*: ``login:<id>`` (one sign-in, at sign-out),
``sid:<sid>``, ``sub:<sub>`` and ``nosid:<sub>`` (back-channel logout), each
with the time of the revocation; a session signed in before a revocation of one
of its keys is no session.

Where: one append-only journal, ``<data folder>/revocations`` (0600, opened
with ``O_NOFOLLOW``, in the private data folder), one line per key:
``<keyed hash of the key> <time>``.  Keys are hashed with a key derived from
``session_secret``, the issuer and the client id (:func:`~sso_middleware._sealing.app_key`), so the
file names no user or provider session and applications sharing a folder and a
secret never revoke each other's sessions.  Every
process keeps what it has read and the offset it read to; the hot path costs one
``os.stat`` (size and inode unchanged: nothing to read) and, only when anything
is revoked at all, a few hashes and dict lookups.  Appends are serialised with
``flock``; when the oldest line is past the horizon (the absolute timeout: no
session signed in before it is alive any more) the journal is rewritten without
the stale lines and renamed into place, which readers notice by its new inode.
A journal rather than one file per key: each worker reads only the lines added
since its last look instead of listing a folder of every sign-out of the week.

Security caveat (the limit that remains): processes sharing the data folder
(one host, or one container) share revocations; another host does not see them,
so there a copied cookie keeps working until its absolute timeout.  Use a
server-side store (Redis, memcached, files on one host) where that matters.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterable
from typing import Callable, Optional

from ..stores import StoreUnavailable

log = logging.getLogger("sso_middleware")

#: The journal's file name inside the data folder.
FILE_NAME = "revocations"
#: Below this size the journal is never compacted (a few thousand lines).
COMPACT_SIZE = 64 * 1024
#: The key noting a provider session that signed in on this host (front-channel logout on).
SIGNED_IN_SID = "signed-in-sid:"
#: Keys whose hashed name is remembered (per process).
NAME_CACHE_SIZE = 10000
_LINE = re.compile(rb"([0-9a-f]{32}) ([0-9]{1,12}(?:\.[0-9]{1,6})?)")
_OPEN_FLAGS = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class Revocations:
    """The host-wide registry of revoked session keys (see the module docstring)."""

    def __init__(self, folder: str, horizon: float, key: bytes = b"",
                 prepare: Optional[Callable[[], None]] = None) -> None:
        """``horizon``: seconds a revocation matters (the absolute timeout); ``prepare`` creates the folder."""
        self.folder = folder
        self.horizon = horizon
        self._key = hashlib.sha256(b"sso_middleware revocations|" + key).digest()
        # One journal per application (the key is bound to it): an application sharing the folder
        # compacts by its own horizon and must never drop revocations another one still needs.
        self.path = os.path.join(folder, f"{FILE_NAME}-{hashlib.sha256(b'file|' + self._key).hexdigest()[:16]}")
        self._prepare = prepare
        self._prepared = False
        self._lock = threading.Lock()
        self._entries: dict[str, float] = {}  # hashed key -> latest revocation time
        #: The journal read so far: st_dev, st_ino and its first line (an inode number can be reused
        #: by a later compaction; the first line of a compacted journal differs, as old lines went).
        self._file: Optional[tuple[int, int, bytes]] = None
        self._offset = 0
        self._warned = False
        self._names: dict[str, str] = {}

    def name(self, key: str) -> str:
        """The journal's name for a key: a keyed hash, so the file holds no ``sub`` or ``sid``.

        Cached (a signed-in user's keys are the same on every request; hashing costs more than the stat).
        """
        name = self._names.get(key)
        if name is None:
            if len(self._names) >= NAME_CACHE_SIZE:
                self._names.clear()
            name = self._names[key] = hashlib.blake2b(key.encode(), key=self._key, digest_size=16).hexdigest()
        return name

    # -- reading (the hot path) -------------------------------------------------

    def revoked_since(self, keys: Iterable[str], since: float) -> bool:
        """True when any of ``keys`` was revoked at or after ``since`` (the session's sign-in)."""
        self._refresh()
        entries = self._entries
        if not entries:
            return False
        for key in keys:
            when = entries.get(self.name(key))
            if when is not None and when >= since:
                return True
        return False

    def note_sign_in(self, sid: str, when: float, lifetime: float) -> None:
        """Note that provider session ``sid`` signed in on this host at ``when``, for a session of ``lifetime`` s.

        Silent SSO signs one sid in again and again: a note that outlives this session already (it
        stays until ``horizon`` after it was written) is not written again.
        """
        self._refresh()
        noted = self._entries.get(self.name(SIGNED_IN_SID + sid))
        if noted is None or noted + self.horizon < when + lifetime:
            self.record([SIGNED_IN_SID + sid], when)

    def signed_in_here(self, sid: str) -> bool:
        """True when :meth:`note_sign_in` noted ``sid`` within the horizon, in any process sharing the folder.

        Security caveat: a front-channel logout names a ``sid`` and proves nothing; recording every
        made-up one would keep it for the absolute timeout, on disk and in every worker, so only a
        noted ``sid`` is revoked.
        """
        self._refresh()
        return self.name(SIGNED_IN_SID + sid) in self._entries

    def _refresh(self) -> None:
        """Read what other processes appended since the last look: one ``lstat`` when nothing changed."""
        try:
            info = os.lstat(self.path)
        except OSError:  # none yet (nothing revoked on this host), or the folder is gone: keep what we know
            return
        if self._file is not None and (info.st_dev, info.st_ino) == self._file[:2] and info.st_size == self._offset:
            return
        with self._lock:
            self._read()

    def _read(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | _OPEN_FLAGS)
        except OSError:  # a symbolic link (ELOOP) or gone meanwhile
            return
        try:
            info = os.fstat(fd)
            if not self._trusted(info):
                return
            first = os.pread(fd, 128, 0)
            identity = (info.st_dev, info.st_ino, first[: first.find(b"\n") + 1])
            start = self._offset if identity == self._file and info.st_size >= self._offset else 0
            data = os.pread(fd, info.st_size - start, start) if info.st_size > start else b""
        finally:
            os.close(fd)
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
        # A new (compacted) journal is read whole into a new dict, swapped in at once: a
        # concurrent check sees the old entries or the new ones, never an empty dict.
        entries = {} if start == 0 else self._entries
        self._merge(entries, complete)
        self._entries = entries
        self._file, self._offset = identity, start + len(complete)

    def _trusted(self, info: os.stat_result) -> bool:
        """Only a regular file of this user that no one else may write is read."""
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022:
            return True
        if not self._warned:
            self._warned = True
            log.error("sso: %s is not a private file of this user; ignoring it", self.path)
        return False

    @staticmethod
    def _merge(entries: dict[str, float], data: bytes, cutoff: float = float("-inf")) -> None:
        for line in data.splitlines():
            match = _LINE.fullmatch(line)
            if match is None:
                continue
            name, when = match.group(1).decode(), float(match.group(2))
            if when >= cutoff and when > entries.get(name, float("-inf")):
                entries[name] = when

    # -- writing (sign-out, back-channel logout) --------------------------------------------

    def record(self, keys: Iterable[str], now: float) -> None:
        """Revoke ``keys`` as of ``now`` for every process sharing the folder.

        Raises :class:`StoreUnavailable` when the journal cannot be written (this
        process still knows the revocation; the caller answers 503).
        """
        names = [self.name(key) for key in keys]
        with self._lock:
            for name in names:
                if now > self._entries.get(name, float("-inf")):
                    self._entries[name] = now
        lines = "".join(f"{name} {now:.3f}\n" for name in names).encode()
        try:
            self._ensure_folder()
            fd = self._open_locked()
            try:
                os.write(fd, lines)
                if os.fstat(fd).st_size > COMPACT_SIZE and self._oldest(fd) < now - self.horizon * 1.25:
                    self._compact(fd, now - self.horizon)
            finally:
                os.close(fd)  # releases the lock
        except OSError as exc:
            raise StoreUnavailable(f"revocations: {exc.strerror or type(exc).__name__}") from None

    def _ensure_folder(self) -> None:
        if self._prepared:
            return
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception as exc:  # ConfigError: the folder is not private, not writable...
                raise StoreUnavailable(f"revocations: {exc}") from None
        else:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
        self._prepared = True

    def _open_locked(self) -> int:
        """The journal open for appending, exclusively locked, and still the one at ``path``."""
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _OPEN_FLAGS, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                info = os.fstat(fd)
                if not self._trusted(info):
                    raise OSError(errno.EPERM, "the revocation journal is not a private file of this user")
                current = os.lstat(self.path)
                if (current.st_dev, current.st_ino) == (info.st_dev, info.st_ino):
                    return fd
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # compacted (replaced) while we waited for the lock: open the new one
        raise OSError(errno.EAGAIN, "the revocation journal keeps changing")

    @staticmethod
    def _oldest(fd: int) -> float:
        match = _LINE.match(os.pread(fd, 64, 0))
        return float(match.group(2)) if match else float("-inf")

    def _compact(self, fd: int, cutoff: float) -> None:
        """Rewrite the journal without revocations older than ``cutoff`` (called holding its lock)."""
        size = os.fstat(fd).st_size
        with open(self.path, "rb", opener=lambda path, flags: os.open(path, flags | _OPEN_FLAGS)) as journal:
            data = journal.read(size)
        live: dict[str, float] = {}
        self._merge(live, data, cutoff)
        temporary = os.path.join(self.folder, f".{FILE_NAME}-{secrets.token_hex(8)}")
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o600)
        try:
            ordered = sorted(live.items(), key=lambda item: item[1])  # oldest first: _oldest() reads line one
            os.write(out, "".join(f"{name} {when:.3f}\n" for name, when in ordered).encode())
        finally:
            os.close(out)
        os.replace(temporary, self.path)
        log.info("sso: compacted the revocation journal to %d entries", len(live))
