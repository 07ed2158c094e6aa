"""The PostgreSQL store's connections and its one table: a shared pool per URL, every wait bounded.

:class:`Connections` runs a piece of work on a connection of a ``psycopg_pool`` pool
shared by every back end of one ``session_url`` in the process (threaded workers share
its ``session_pool_size`` connections; the pool opens on first use, so a preloading
server forks before any connection exists).  Every call is bounded by
``session_store_timeout``: waiting for a connection from the pool, the server's own
``statement_timeout``, and -- for a server that accepts but never answers -- each wait
of the client for the server (:class:`_BoundedConnection`).  Any failure of the server or
of the connection is :class:`~.errors.StoreUnavailable` (answered 503); a connection
that a server restart broke is replaced at once, so a restart nobody was using the store
through costs no request.

The table (:data:`TABLE`, :func:`create_table`) is created when a statement first finds it
missing, under a transaction-level advisory lock so that workers racing to create it
wait for each other instead of failing; ``sso-middleware migrate`` creates it ahead.

Security caveat: ``session_url`` may hold a password: it is never logged, and errors are
reported by their class and SQLSTATE only -- a server's message can quote the values of
a row (session ids among them).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Generator
from typing import Any, Callable, ClassVar, Optional, TypeVar

from .errors import StoreUnavailable

try:  # optional back end
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from psycopg_pool import ConnectionPool
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]

log = logging.getLogger("sso_middleware")

T = TypeVar("T")

#: The store's one table: records, index rows and locks, each with its deadline.
TABLE = "sso_middleware_records"

#: What :func:`create_table` runs (idempotent).  ``kind``: ``record`` (a sealed record: a session,
#: a token record), ``index`` (one row per sealed member of a sid/sub index) or ``lock``;
#: ``member`` is an index row's sealed session id ('' otherwise); ``value`` a record's sealed
#: text (a lock's holder token).  Rows whose ``expires_at`` has passed are no rows: every read
#: says so, and the sweep deletes them through the ``expires_at`` index.
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " kind text NOT NULL,"
    " key text NOT NULL,"
    " member text NOT NULL DEFAULT '',"
    " value text NOT NULL DEFAULT '',"
    " expires_at timestamptz NOT NULL,"
    " PRIMARY KEY (kind, key, member))",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_expires_at ON {TABLE} (expires_at)",
)

#: The transaction-level advisory lock the creators of the table take turns with (any fixed number).
_CREATE_LOCK = 0x55_50_4D_49_44_44_4C  # "SSOMIDDL"


def create_table(conn: Any) -> bool:
    """Create the table and its index unless they exist; True when this call created the table.

    Raises ``psycopg.errors.InsufficientPrivilege`` when the role may not create it.
    """
    with conn.transaction():
        # CREATE TABLE IF NOT EXISTS alone fails (a unique violation in the catalogue) when two
        # sessions create the same table at once: the lock makes the second wait and find it.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_CREATE_LOCK])
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE]).fetchone()[0]
        for statement in SCHEMA:
            conn.execute(statement)
    if not exists:
        log.info("sso: created the PostgreSQL table %s", TABLE)
    return not exists


def installed() -> bool:
    """True when psycopg and psycopg_pool can be imported (the ``postgresql`` extra)."""
    return psycopg is not None


def parse_url(url: str) -> dict[str, Any]:
    """The connection parameters of a ``postgresql://`` URL; ``ValueError`` (quoting none of it) if libpq refuses it."""
    try:
        params = dict(conninfo_to_dict(url))
    except psycopg.ProgrammingError as exc:
        # libpq quotes the offending piece of the URL, which may be the password: leave quotes out.
        reason = str(exc).split('"', 1)[0].strip().rstrip(":")
        raise ValueError(f"libpq cannot read it ({reason or 'invalid URL'})") from None
    for port in str(params.get("port") or "").split(","):  # libpq itself only finds out when it connects
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError("its port is not a number from 1 to 65535") from None
    return params


def conninfo_for(url: str, timeout: float) -> str:
    """The URL's connection string with the store's bounds: connect, statement and TCP timeouts."""
    params = parse_url(url)
    milliseconds = max(1, int(timeout * 1000))
    extra: dict[str, Any] = {
        "connect_timeout": max(2, int(timeout + 0.999)),  # libpq's minimum is 2 s; the pool's wait is shorter
        # The server gives up on a statement (a lock wait, a slow disk) after the timeout; the URL's own
        # options (a search_path...) are kept.
        "options": f"{params.get('options') or ''} -c statement_timeout={milliseconds}".strip(),
        "application_name": params.get("application_name") or "sso_middleware",
    }
    if "tcp_user_timeout" not in params:  # a partitioned network: unacknowledged data drops the connection
        extra["tcp_user_timeout"] = milliseconds
    try:
        return str(make_conninfo(url, **extra))
    except psycopg.ProgrammingError:  # a libpq too old for one of these parameters
        raise ValueError("the installed libpq does not know tcp_user_timeout (libpq 12 or newer needed)") from None


def _until(gen: Generator[Any, Any, T], deadline: float) -> Generator[Any, Any, T]:
    """``gen`` (psycopg's protocol generator) stopped with OperationalError once ``deadline`` has passed.

    psycopg's wait loop resumes the generator when the socket is ready and every 0.1 s when
    it stays silent; the deadline is checked each time.
    """
    try:
        wanted = next(gen)
        while True:
            ready = yield wanted
            if time.monotonic() >= deadline:
                raise _NoAnswer("the PostgreSQL server did not answer within session_store_timeout")
            wanted = gen.send(ready)
    except StopIteration as done:
        result: T = done.value
        return result


if psycopg is not None:

    class _NoAnswer(psycopg.OperationalError):
        """The server accepted the connection but did not answer in time."""

    class _BoundedConnection(psycopg.Connection[Any]):
        """A connection whose every wait for the server ends after ``call_timeout`` seconds.

        psycopg waits on the socket without an overall limit, so a server that is frozen
        (its host hung, or SIGSTOP) would hold the thread forever: each wait is wrapped in
        :func:`_until`, and a connection that timed out mid-statement is closed.
        """

        call_timeout = 2.0

        def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().wait(_until(gen, time.monotonic() + self.call_timeout), *args, **kwargs)
            except _NoAnswer:
                self.close()
                raise


class Connections:
    """One pool of connections to one PostgreSQL server, shared in the process by the back ends of one URL."""

    _shared: ClassVar[dict[tuple[str, float, int], Connections]] = {}
    _guard = threading.Lock()

    @classmethod
    def for_url(cls, url: str, timeout: float, size: int) -> Connections:
        """The (shared) connections of a URL; ``ValueError`` for one libpq cannot read.  Connects to nothing."""
        conninfo = conninfo_for(url, timeout)
        with cls._guard:
            found = cls._shared.get((conninfo, timeout, size))
            if found is None:
                found = cls._shared[(conninfo, timeout, size)] = cls(conninfo, timeout, size)
            return found

    @classmethod
    def close_all(cls) -> None:
        """Close every pool (the process exits; tests between servers)."""
        with cls._guard:
            pools, cls._shared = list(cls._shared.values()), {}
        for pool in pools:
            pool.close()

    def __init__(self, conninfo: str, timeout: float, size: int) -> None:
        self.timeout = timeout
        bounded = type("BoundedConnection", (_BoundedConnection,), {"call_timeout": timeout})
        self.pool: Any = ConnectionPool(
            conninfo, connection_class=bounded, kwargs={"autocommit": True}, open=False,
            min_size=1, max_size=size, timeout=timeout, max_idle=300, name="sso_middleware",
            # A connection attempt that keeps failing backs off (1, 2, 4 s...) and is given up after this
            # long; the next request starts a fresh one, so service resumes within seconds of the server.
            reconnect_timeout=max(4.0, 2 * timeout),
        )
        self._opened = False
        self._open_guard = threading.Lock()

    def _open(self) -> None:
        if not self._opened:
            with self._open_guard:
                if not self._opened:
                    self.pool.open(wait=False)
                    self._opened = True

    def close(self) -> None:
        with self._open_guard:
            if self._opened:
                self.pool.close(timeout=1)
                self._opened = False

    def run(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` on a pooled connection (autocommit); StoreUnavailable when it cannot be done.

        A statement that finds the table missing creates it (:func:`create_table`) and runs again.
        A connection broken before the call (the server restarted since it was last used) is
        replaced and the work done once more; a wait that ran out is not repeated.
        """
        self._open()
        started = time.monotonic()
        for attempt in (1, 2):
            conn: Any = None
            try:
                left = self.timeout - (time.monotonic() - started)
                with self.pool.connection(timeout=max(0.05, left)) as conn:
                    try:
                        return work(conn)
                    except pg_errors.UndefinedTable:
                        create_table(conn)
                        return work(conn)
            except pg_errors.InsufficientPrivilege:
                log.error("sso: the PostgreSQL role may not use (or create) the table %s: run "
                          "'sso-middleware migrate' as its owner, or grant SELECT, INSERT, UPDATE, DELETE", TABLE)
                raise StoreUnavailable("postgresql: InsufficientPrivilege") from None
            except psycopg.OperationalError as exc:
                fast = time.monotonic() - started < self.timeout / 2
                if attempt == 1 and fast and conn is not None and conn.closed and not isinstance(exc, _NoAnswer):
                    self.pool.check()  # the others idle in the pool were broken by the same restart
                    continue
                raise StoreUnavailable(f"postgresql: {_described(exc)}") from None
            except psycopg.Error as exc:  # the server answered with an error (read-only standby, disk full...)
                raise StoreUnavailable(f"postgresql: {_described(exc)}") from None
        raise AssertionError("unreachable")  # pragma: no cover


def _described(exc: BaseException) -> str:
    """An error as its class and SQLSTATE: never its message (it may quote a row's values)."""
    state: Optional[str] = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__}{f' ({state})' if state else ''}"


atexit.register(Connections.close_all)
