"""A real PostgreSQL server (Debian's) in a temporary folder on a free loopback port, for the store tests.

One cluster is made per test run with ``initdb`` (:func:`template`): a superuser reached
only through a Unix socket in the cluster's own folder (trust), and over TCP the role
the middleware uses, ``sso_app``, which must give its password (SCRAM), owning the
database ``sso``; plus ``sso_reader``, who may read the store's table but not create
one.  Each :class:`PostgresServer` is a copy of that cluster's folder started with
``pg_ctl`` on a port of its own, so a test can stop, restart or freeze it without
touching the others.  The server is stopped by its PID (read from ``postmaster.pid``),
also by an ``atexit`` hook when a test run dies.

PostgreSQL refuses to run as root: when the tests run as root (CI), ``initdb`` and the
server run as the ``postgres`` user Debian's package creates (``nobody`` without it),
through ``setpriv``, in folders that user owns.  A missing PostgreSQL fails the test with
the command that installs it, never skips it.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import psycopg
import pytest

from sso_middleware.stores.postgresql_pool import SCHEMA, TABLE, Connections

from .servers import free_port

#: The middleware's role and its password (the password must never reach a log line or a doctor report).
APP_USER = "sso_app"
APP_PASSWORD = "pg-Sekrit-7f3c9a1e"
#: A role that may read and write the table the middleware created, but create nothing.
READER_USER = "sso_reader"
READER_PASSWORD = "reader-Sekrit-51d0"
DATABASE = "sso"
_ADMIN = "admin"
#: Small and fast: nothing here has to survive a power cut, so nothing is flushed to disk.
_SETTINGS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB "
             "-c max_connections=80 -c listen_addresses=127.0.0.1")

_live: set[PostgresServer] = set()
_template: Optional[Path] = None


def bin_dir() -> Path:
    """The newest Debian PostgreSQL's binaries; a missing one fails the test (CI installs it)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda path: int(path.split("/")[4]))
    if not found:
        pytest.fail("PostgreSQL is not installed: apt-get install -y postgresql (make test installs it)",
                    pytrace=False)
    return Path(found[-1]).parent


def _owner() -> Optional[pwd.struct_passwd]:
    """The user the server runs as when we are root (it refuses root); None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    pytest.fail("no postgres (or nobody) user to run PostgreSQL as", pytrace=False)


def _as_owner(argv: list[str]) -> list[str]:
    owner = _owner()
    if owner is None:
        return argv
    return ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--clear-groups", "--", *argv]


def _give(path: Path) -> None:
    """Hand a folder (and what is in it) to the server's user."""
    owner = _owner()
    if owner is None:
        return
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, entry) for entry in dirs + files)]:
            os.lchown(name, owner.pw_uid, owner.pw_gid)


def _run(argv: list[str], what: str, log: Optional[Path] = None) -> None:
    result = subprocess.run(_as_owner(argv), capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
        pytest.fail(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}\n{tail}", pytrace=False)


def _folder(prefix: str) -> Path:
    """A temporary folder the server's user can enter (mkdtemp makes it 0700 for root)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


def template() -> Path:
    """The data folder of a cluster with the tests' roles and database, made once per test run."""
    global _template
    if _template is not None:
        return _template
    folder = _folder("sso-pg-template-")
    atexit.register(shutil.rmtree, folder, True)
    data = folder / "data"
    pwfile = folder / "pw"
    pwfile.write_text("admin-Sekrit\n")
    _give(folder)
    _run([str(bin_dir() / "initdb"), "-D", str(data), "-U", _ADMIN, "--pwfile", str(pwfile), "-E", "UTF8",
          "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions",
          "--wal-segsize=1"],  # 1 MiB of WAL to copy per server, not 16
         "initdb")
    pwfile.unlink()
    server = PostgresServer(data_source=data, copy=False)
    server.start()
    try:
        with server.admin("postgres") as conn:
            conn.execute(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'")
            conn.execute(f"CREATE ROLE {READER_USER} LOGIN PASSWORD '{READER_PASSWORD}'")
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {APP_USER}")
        with server.admin() as conn:
            # A table the app role creates later is readable and writable by the reader role.
            conn.execute(f"GRANT USAGE ON SCHEMA public TO {READER_USER}")
            conn.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE {APP_USER} IN SCHEMA public "
                         f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {READER_USER}")
    finally:
        server.stop()
    _template = data
    return data


class PostgresServer:
    """One PostgreSQL cluster (a copy of :func:`template`) on a free loopback port; ``url`` is its session_url."""

    def __init__(self, data_source: Optional[Path] = None, copy: bool = True) -> None:
        source = data_source or template()
        self.port = free_port()
        if copy:
            self.folder = _folder("sso-pg-")
            self.data = self.folder / "data"
            shutil.copytree(source, self.data, symlinks=True)
            (self.data / "postmaster.pid").unlink(missing_ok=True)
        else:
            self.folder, self.data = source.parent, source
        self.sockets = self.folder / "sockets"
        self.sockets.mkdir(exist_ok=True)
        self.log = self.folder / "server.log"
        _give(self.folder)
        self.pid: Optional[int] = None
        self._frozen: list[int] = []

    kind = "postgresql"
    session_type = "postgresql"

    @property
    def url(self) -> str:
        return f"postgresql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def url_as(self, user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{DATABASE}"

    def _options(self) -> str:
        return f"-p {self.port} -k {self.sockets} {_SETTINGS}"

    def _pg_ctl(self, *args: str) -> None:
        _run([str(bin_dir() / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *args],
             f"pg_ctl {args[-1]}", self.log)
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def start(self) -> PostgresServer:
        """``pg_ctl start``, waiting until the server accepts connections."""
        self._pg_ctl("-o", self._options(), "start")
        _live.add(self)
        return self

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is ended, the server is back with the same data."""
        self._pg_ctl("-o", self._options(), "-m", "fast", "restart")

    @property
    def running(self) -> bool:
        return self.pid is not None and _alive(self.pid)

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster, by its PID), SIGKILL if it lingers; idempotent."""
        if self.pid is None:
            return
        self.resume()
        pid, self.pid = self.pid, None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            for child in _children(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _live.discard(self)

    def close(self) -> None:
        """Stop the server and remove its folder (the end of a test); the process's pools are closed too."""
        Connections.close_all()  # else their threads would keep trying to reach a server that is gone
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def pause(self) -> None:
        """SIGSTOP the postmaster and every backend: connections are accepted by the kernel, never answered."""
        assert self.pid is not None
        self._frozen = [self.pid, *_children(self.pid)]
        for pid in self._frozen:
            os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while not all(_state(pid) in ("T", "t") for pid in self._frozen) and time.monotonic() < deadline:
            time.sleep(0.01)

    def resume(self) -> None:
        """SIGCONT to what :meth:`pause` stopped."""
        for pid in self._frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen = []

    def admin(self, database: str = DATABASE) -> psycopg.Connection[Any]:
        """A superuser connection through the cluster's private socket (autocommit), bypassing the middleware."""
        return psycopg.connect(host=str(self.sockets), port=self.port, user=_ADMIN, dbname=database,
                               autocommit=True, connect_timeout=5)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows of one statement run as the superuser ([] for one that returns none)."""
        with self.admin() as conn:
            cursor = conn.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []


    # -- raw access to the store's table (what someone able to write rows would do) --------------

    def record(self, key: str, kind: str = "record") -> Optional[str]:
        """The stored (sealed) text of a row, expired or not; None when there is none."""
        rows = self.query(f"SELECT value FROM {TABLE} WHERE kind = %s AND key = %s AND member = ''", kind, key)
        return str(rows[0][0]) if rows else None

    def seconds_left(self, key: str, kind: str = "record") -> Optional[float]:
        """Seconds until a row's deadline (negative once past); None when there is no row."""
        rows = self.query(f"SELECT extract(epoch FROM expires_at - now()) FROM {TABLE} "
                          "WHERE kind = %s AND key = %s AND member = ''", kind, key)
        return float(rows[0][0]) if rows else None

    def members(self, key: str) -> list[str]:
        """The stored (sealed) members of an index, expired or not."""
        return sorted(str(row[0]) for row in self.query(
            f"SELECT member FROM {TABLE} WHERE kind = 'index' AND key = %s", key))

    def plant(self, key: str, value: str, kind: str = "record", member: str = "", ttl: float = 600) -> None:
        """Write a row as it is, past the middleware (creating the table first, as its first use would)."""
        self.query(SCHEMA[0])
        self.query(f"INSERT INTO {TABLE} (kind, key, member, value, expires_at) "
                   "VALUES (%s, %s, %s, %s, now() + %s * interval '1 second') ON CONFLICT (kind, key, member) "
                   "DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at",
                   kind, key, member, value, ttl)

    def rows(self) -> int:
        """How many rows the table holds, live or expired (0 when it does not exist)."""
        if not self.query("SELECT to_regclass(%s)", TABLE)[0][0]:
            return 0
        return int(self.query(f"SELECT count(*) FROM {TABLE}")[0][0])


def _state(pid: int) -> str:
    """A process's state letter (``Z`` for a zombie, ``T`` stopped); ``X`` when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


def _alive(pid: int) -> bool:
    return _state(pid) not in ("Z", "X")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError), open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


@atexit.register
def _stop_all() -> None:  # pragma: no cover - only when a fixture's own cleanup did not run
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.close()
