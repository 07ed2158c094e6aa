"""The file store's records: sealed JSON (never pickles), written by atomic rename, and its index records."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import logging
import os
import re
import stat
from collections.abc import Iterator
from typing import Any, Callable, Optional, TypeVar

from beaker.container import FileNamespaceManager
from beaker.synchronization import null_synchronizer

from .._sealing import MAX_RECORD_BYTES, RecordSeal
from .errors import RecordGone, StoreUnavailable
from .sealed import _SealedRecords

log = logging.getLogger("sso_middleware")


class PrivateFileNamespace(_SealedRecords, FileNamespaceManager):  # type: ignore[misc]
    """Beaker's file namespace (same files and locks), holding sealed JSON, with fewer file-system calls.

    * A record is the sealed JSON text of the namespace's dict (:mod:`sso_middleware._sealing`, kind and
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
      sign-in writes several records.  Should the file exist after all, the ordinary
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
        return read_sealed_file(self.file, f"file:{self.namespace}", self.kind, self.seal)

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


def record_path(file_dir: str, record_id: str) -> str:
    """Where Beaker's file namespace keeps a record (``encoded_path`` without digests): no folder is created."""
    ident = record_id.rpartition("/")[2].replace(".", "")  # os.path.basename, as Beaker takes it
    if not ident:  # never one of ours; os.path.join drops the empty parts
        return os.path.join(file_dir, ".cache")
    return f"{file_dir}/{ident[0:1]}/{ident[0:2]}/{ident}.cache"


def read_sealed_file(path: str, record_key: str, kind: str, seal: Optional[RecordSeal]) -> dict[str, Any]:
    """The dict of the record file at ``path``, or {} when there is none (or none sealed for it); never unpickles.

    No lock: every write replaces a record by a rename (or creates it whole), so the
    read sees the old or the new record.  Reads are bounded by the size limit.
    """
    try:
        # O_NONBLOCK: a FIFO planted under a record's name must not hang the worker in open().
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
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
    opened = None if seal is None else seal.open(kind, record_key, data)
    try:
        record = json.loads(opened) if opened is not None else {}
    except ValueError:  # pragma: no cover - we sealed JSON
        return {}
    return record if isinstance(record, dict) else {}


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
    Each line is sealed for this index (:mod:`sso_middleware._sealing`); a line that is not is ignored.
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

