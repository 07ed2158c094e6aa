"""The file store (``session_type = file``): one private folder on this machine, any number of processes.

Records are sealed JSON files (:mod:`.file_records`), the lock is an ``flock`` on a
file in the store's ``locks`` folder (released by the kernel when its holder dies),
and abandoned records are swept now and then, off the request path: Beaker's file
store never removes records, so without a sweep those of users who never come back
would fill the disk.

Security caveat: sessions hold ID tokens, so the folder must be this user's alone --
not readable by another local user, not pre-created by one (the default folder name is
predictable), not replaceable through a folder above it (:func:`prepare_data_dir`).
Files are written 0600, never through a link, and the sweep never follows links.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from ..errors import ConfigError
from .backend import TOKENS_PREFIX, Finding, stamp_interval
from .backend import Session as Container
from .beaker import RECORD_VALUE, NamespaceRecords
from .errors import StoreUnavailable
from .file_records import FileIndex, PrivateFileNamespace, open_locked, read_sealed_file, record_path
from .index import INDEX_PREFIX

if TYPE_CHECKING:
    from .._config.settings import SSOConfig

log = logging.getLogger("sso_middleware")

#: Seconds between two sweeps of abandoned session files (per process).
SWEEP_INTERVAL = 600.0


class FileBackend(NamespaceRecords):
    """Sessions, token and index records as files in ``config.data_dir``; locks by ``flock``."""

    keeps_records = True
    shared_lock = True
    namespace_class = PrivateFileNamespace
    beaker_type = "file"

    def __init__(self, config: SSOConfig) -> None:
        self.data_dir = str(config.data_dir)
        self.index_dir = os.path.join(self.data_dir, "index")
        self.lock_dir = f"{self.data_dir}/locks"
        self.file_dir = f"{self.data_dir}/container_file"  # Beaker's FileNamespaceManager's, from data_dir
        super().__init__(config)
        self._sweep_guard = threading.Lock()
        self._next_sweep = 0.0

    def namespace_args(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir, "lock_dir": self.lock_dir, "seal": self.seal}

    def read_record(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        """One open and read of the record's file: Beaker's namespace (folder checks, locks) is for writing.

        Records are replaced by a rename, so the read needs no lock; the seal is verified before
        the JSON is parsed (:func:`~.file_records.read_sealed_file`).
        """
        try:
            record = read_sealed_file(record_path(self.file_dir, record_id), f"file:{record_id}", kind, self.seal)
        except OSError as exc:
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None
        value = record.get(RECORD_VALUE)
        return value if isinstance(value, str) else None

    def _index(self, index_id: str, ttl: Optional[int] = None) -> FileIndex:
        return FileIndex(self.index_dir, index_id, self.seal)  # swept like the other index records, no TTL

    def save_session(self, session: Container, existing: bool = False) -> bool:
        if session.is_new and getattr(session, "namespace", None) is None:
            # A new session id, known to nobody yet: created in place (see PrivateFileNamespace).
            session.namespace = self.namespace(session.id)
            session.namespace.mark_fresh()
        return super().save_session(session, existing)

    # -- the lock ----------------------------------------------------------------------------------

    def acquire(self, name: str, ttl: float) -> Optional[int]:
        try:
            fd = open_locked(os.path.join(self.lock_dir, f"sso-lock-{name}"), os.O_RDWR | os.O_CREAT,
                             fcntl.LOCK_EX | fcntl.LOCK_NB)
            if fd is not None:
                os.utime(fd)  # a held lock file is never old enough for the sweep
        except OSError as exc:  # not "held by someone else": that is None
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None
        return fd

    def release(self, name: str, handle: Any) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)

    # -- housekeeping ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the folder (0700) and check that it, and the way to it, are ours alone (ConfigError if not)."""
        prepare_data_dir(self.data_dir, private=not self.config.session_data_dir)

    def session_created(self, now: float) -> None:
        """Sweep abandoned files, at most every :data:`SWEEP_INTERVAL` seconds, in a thread of its own."""
        with self._sweep_guard:
            if now < self._next_sweep:
                return
            self._next_sweep = now + SWEEP_INTERVAL
        config = self.config
        idle = config.session_idle_timeout + stamp_interval(config.session_idle_timeout) + 60
        thread = threading.Thread(
            target=sweep_file_store,
            args=(self.data_dir, now - idle, now - config.session_absolute_timeout - idle),
            name="sso-session-sweep",
            daemon=True,
        )
        thread.start()

    def probe(self) -> Iterator[Finding]:
        """The folder is (or can be made) private and writable: one temporary file written and removed.

        Folders the probe had to create are removed again, except the per-user root of the
        default folders (running applications may share it).
        """
        data_dir = os.path.abspath(self.data_dir)
        private = not self.config.session_data_dir
        missing: list[str] = []  # folders the probe creates, deepest first (removed afterwards)
        folder = data_dir
        while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
            missing.append(folder)
            folder = os.path.dirname(folder)
        if private:
            missing = [path for path in missing if path != os.path.dirname(data_dir)]
        try:
            yield from _probe_folder(data_dir, private, created=data_dir in missing)
        finally:
            for path in missing:
                with contextlib.suppress(OSError):
                    os.rmdir(path)


def _probe_folder(data_dir: str, private: bool, created: bool) -> Iterator[Finding]:
    try:
        prepare_data_dir(data_dir, private)
    except ConfigError as exc:
        yield "FAIL", f"file store: {exc.message} (setting {exc.setting})"
        return
    try:
        fd, probe = tempfile.mkstemp(dir=data_dir, prefix=".sso-doctor-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"probe")
        finally:
            os.unlink(probe)
    except OSError as exc:
        yield "FAIL", f"file store: cannot write in {data_dir}: {exc.strerror}"
        return
    kind = "private default folder" if private else "folder"
    yield "OK", f"file store: {kind} {data_dir} is writable{' (created when the middleware starts)' if created else ''}"


def prepare_data_dir(data_dir: str, private: bool) -> None:
    """Create the store's folder (0700) and check that it, and the way to it, are ours alone.

    Sessions hold ID tokens, so another local user must not be able to read them, to
    pre-create the folder (the default one is predictable) or to plant records in it or
    swap it for another: the folder must be a directory (not a link) owned by this user
    with no group or other access, and no folder above it may be writable by another
    user unless it is sticky (like ``/tmp``).  This holds for an explicit
    ``session_data_dir`` as for the default one.  ``private``: the folder is the default
    one, whose per-user parent is created and checked the same way.  The cookie and
    environ stores keep their revocation journal here.
    """
    data_dir = os.path.abspath(data_dir)
    ours = [os.path.dirname(data_dir), data_dir] if private else [data_dir]
    try:
        for folder in ours:
            os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError("session_data_dir", f"cannot create {data_dir!r}: {exc.strerror}") from None
    for folder in ours:
        info = os.lstat(folder)
        if not private and stat.S_ISLNK(info.st_mode) and info.st_uid in (0, os.getuid()):
            info = os.stat(folder)  # an explicit folder may be a link of ours (or root's): its target is checked
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077 \
                and not info.st_mode & 0o022:
            # Ours, readable by others but never writable by them (so nothing can have been
            # planted inside): an older version or a umask left it open; close it.
            os.chmod(folder, 0o700)
            info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            kind = "the default session folder" if private else "session_data_dir"
            raise ConfigError(
                "session_data_dir",
                f"{kind} {folder!r} is not a private (0700) folder of this user"
                + ("; remove it or set session_data_dir" if private else "; create it with mode 0700"),
            )
    for start in {os.path.dirname(ours[0]), os.path.dirname(os.path.realpath(ours[0]))}:  # as named, and as linked
        _check_parents(start)
    if not os.access(data_dir, os.W_OK):
        raise ConfigError("session_data_dir", f"{data_dir!r} is not writable")


def _check_parents(folder: str) -> None:
    """Refuse a folder above the store that another user could write to (and so replace what is below)."""
    while True:
        try:
            link = os.lstat(folder)  # a link another user owns could be re-pointed (in a sticky folder too)
            info = os.stat(folder)  # and the folder it leads to
        except OSError as exc:
            raise ConfigError("session_data_dir", f"cannot inspect {folder!r}: {exc.strerror}") from None
        writable_by_others = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX
        if writable_by_others or info.st_uid not in (0, os.getuid()) or link.st_uid not in (0, os.getuid()):
            raise ConfigError(
                "session_data_dir",
                f"{folder!r}, above the session folder, can be changed by other users (group/other-writable "
                "without the sticky bit, or owned by another user): they could replace the session folder",
            )
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def sweep_file_store(data_dir: str, before: float, index_before: Optional[float] = None) -> int:
    """Delete session records and lock files not written since ``before``.

    A live session is written at least every ``stamp_interval`` while in use, so
    an old record is an idle one; Beaker recreates a lock file when it needs it.
    Back-channel logout index records (``sso-index-*``) and token records
    (``sso-tokens-*``) are not written on every use, so they are kept until
    ``index_before`` (past the absolute timeout).
    Symbolic links are never followed.  Returns how many files were removed;
    errors (a file already gone) are ignored.
    """
    index_cutoff = before if index_before is None else index_before
    removed = 0
    for folder in (os.path.join(data_dir, name) for name in ("container_file", "locks", "index")):
        if os.path.islink(folder):
            log.warning("sso: %s is a symbolic link; not sweeping it", folder)
            continue
        for root, _dirs, files in os.walk(folder):
            for name in files:
                path = os.path.join(root, name)
                try:
                    info = os.lstat(path)
                    cutoff = index_cutoff if name.startswith((INDEX_PREFIX, TOKENS_PREFIX)) else before
                    if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                        os.remove(path)
                        removed += 1
                except OSError:
                    continue
    if removed:
        log.info("sso: removed %d abandoned session files", removed)
    return removed
