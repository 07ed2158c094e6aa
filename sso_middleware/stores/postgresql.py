"""The PostgreSQL store (``session_type = postgresql``): sealed records in one table; many hosts, no Redis.

``session_url = postgresql://user:password@host:port/dbname`` (any libpq URL: ``sslmode``,
``options=-csearch_path%3Dsso``...; needs ``pip install sso_middleware[postgresql]``).
Sessions, token records, the sid/sub index (one row per member) and the token-refresh
locks live in the table :data:`~.postgresql_pool.TABLE`, created on first use or by
``sso-middleware migrate``; connections come from a pool shared by the threads of a
process (:mod:`.postgresql_pool`).

* **Expiry**: every row carries a deadline (``expires_at``, on the server's clock); reads
  ignore a row past it, an update never revives one, and a sweep deletes them in
  bounded batches now and then (:meth:`PostgresBackend.sweep`), off the request path.
* **Locks**: a lock is a row (``kind = 'lock'``) holding its holder's random token and a
  deadline, taken by an insert that may only replace an expired lock and released by a
  compare-and-delete -- Redis's ``SET NX PX`` and its release script, in SQL.  Session-level
  advisory locks (``pg_try_advisory_lock``) were not used: they live as long as the
  connection, not for ``ttl`` (a hung holder would hold them for ever), and would pin a pooled
  connection for the length of a provider call.
* **Outages**: every call is bounded by ``session_store_timeout``; a server that is down,
  restarting, frozen or read-only is :class:`~.errors.StoreUnavailable` (503), and service
  resumes by itself when it is back.  Records survive a restart of the server.

Security caveat: the records are sealed (:class:`~.text_records.TextRecords` seals every
record and index member, bound to its kind, its full key and this application), so a
role that can write the table can plant or copy rows but not make one that reads as a
session; it can still delete them (sign everyone out) or take a lock (delay a refresh).
Nothing is read beyond the size limit.  ``session_url`` may hold a password: it is never
logged or printed (the doctor shows it masked).
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from .._redaction import redact_url
from .._sealing import MAX_RECORD_BYTES
from ..errors import ConfigError
from .backend import Finding, lock_key, one_line
from .errors import StoreUnavailable
from .postgresql_pool import TABLE, Connections, create_table, installed, parse_url
from .text_records import TextRecords

if TYPE_CHECKING:
    from .._config.settings import SSOConfig

log = logging.getLogger("sso_middleware")

#: Seconds between two sweeps of expired rows (per process).
SWEEP_INTERVAL = 600.0
#: Rows one sweep statement deletes at most, and statements one sweep runs at most.
SWEEP_BATCH = 1000
SWEEP_BATCHES = 20

# The statements, on the table :data:`~.postgresql_pool.TABLE`.  A row whose deadline (``expires_at``, on
# the server's clock; set as now() + a TTL in seconds) has passed is no row for any of them.
_GET = ("SELECT substr(value, 1, %s) FROM sso_middleware_records "
        "WHERE kind = 'record' AND key = %s AND member = '' AND expires_at > now()")
_UPDATE = ("UPDATE sso_middleware_records SET value = %s, expires_at = now() + %s * interval '1 second' "
           "WHERE kind = 'record' AND key = %s AND member = '' AND expires_at > now()")
_UPSERT = ("INSERT INTO sso_middleware_records (kind, key, member, value, expires_at) "
           "VALUES ('record', %s, '', %s, now() + %s * interval '1 second') ON CONFLICT (kind, key, member) "
           "DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at")
_DELETE = "DELETE FROM sso_middleware_records WHERE kind = 'record' AND key = %s AND member = ''"
# Each member row has its own deadline, so the set lives as long as its newest member: a member is added
# with the TTL its session can last at most, and adding one touches one row however many the set holds.
_INDEX_ADD = ("INSERT INTO sso_middleware_records (kind, key, member, expires_at) "
              "VALUES ('index', %s, %s, now() + %s * interval '1 second') "
              "ON CONFLICT (kind, key, member) DO UPDATE SET expires_at = EXCLUDED.expires_at")
_INDEX_MEMBERS = ("SELECT member FROM sso_middleware_records "
                  "WHERE kind = 'index' AND key = %s AND expires_at > now()")
_INDEX_REMOVE = "DELETE FROM sso_middleware_records WHERE kind = 'index' AND key = %s AND member = ANY(%s)"
# Taken when there is no lock row or only an expired one; RETURNING says whether this insert won.
_LOCK = ("INSERT INTO sso_middleware_records AS held (kind, key, member, value, expires_at) "
         "VALUES ('lock', %s, '', %s, now() + %s * interval '1 second') ON CONFLICT (kind, key, member) "
         "DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at WHERE held.expires_at <= now() "
         "RETURNING value")
_UNLOCK = "DELETE FROM sso_middleware_records WHERE kind = 'lock' AND key = %s AND member = '' AND value = %s"
# Skips rows another sweep (another process) holds, so sweeps block neither each other nor requests.
_SWEEP = ("DELETE FROM sso_middleware_records WHERE ctid = ANY(ARRAY("
          "SELECT ctid FROM sso_middleware_records WHERE expires_at <= now() LIMIT %s FOR UPDATE SKIP LOCKED))")


class PostgresBackend(TextRecords):
    """Sessions, token and index records and the lock in one PostgreSQL table, shared by every host."""

    shared_lock = True
    beaker_type = "postgresql"

    @classmethod
    def validate(cls, config: SSOConfig) -> None:
        if not re.match(r"postgres(ql)?://", config.session_url):
            raise ConfigError("session_url", "postgresql needs a postgresql://user:password@host:port/dbname URL")
        if installed():
            try:
                parse_url(config.session_url)
            except ValueError as exc:
                raise ConfigError("session_url", f"is not a PostgreSQL URL: {exc}") from None

    def __init__(self, config: SSOConfig) -> None:
        super().__init__(config)
        if not installed():
            raise ConfigError("session_type", "postgresql needs psycopg and psycopg_pool: "
                                              "pip install sso_middleware[postgresql]")
        try:
            self.connections = Connections.for_url(config.session_url, config.session_store_timeout,
                                                   config.session_pool_size)
        except ValueError as exc:
            raise ConfigError("session_url", str(exc)) from None  # not the URL: it may hold a password
        self._sweep_guard = threading.Lock()
        self._next_sweep = 0.0

    # -- records ---------------------------------------------------------------------------------

    def get_text(self, key: str) -> Optional[str]:
        # At most one character over the size limit is read: a planted value of hundreds of MiB is
        # refused by the seal for its size without crossing the network whole.
        row = self.connections.run(lambda conn: conn.execute(_GET, [MAX_RECORD_BYTES + 1, key]).fetchone())
        return None if row is None else str(row[0])

    def put_text(self, key: str, text: str, ttl: int, existing: bool) -> bool:
        # An update (existing) never brings back a row deleted (or expired) meanwhile.
        sql, params = (_UPDATE, [text, ttl, key]) if existing else (_UPSERT, [key, text, ttl])
        return bool(self.connections.run(lambda conn: conn.execute(sql, params).rowcount) == 1)

    def delete_text(self, key: str) -> None:
        self.connections.run(lambda conn: conn.execute(_DELETE, [key]))

    # -- the sid/sub index: one row per (sealed) member ------------------------------------------

    def set_add(self, key: str, member: str, ttl: int) -> None:
        self.connections.run(lambda conn: conn.execute(_INDEX_ADD, [key, member, ttl]))

    def set_members(self, key: str) -> list[str]:
        rows = self.connections.run(lambda conn: conn.execute(_INDEX_MEMBERS, [key]).fetchall())
        return [str(row[0]) for row in rows]

    def set_remove(self, key: str, members: list[str]) -> None:
        if members:
            self.connections.run(lambda conn: conn.execute(_INDEX_REMOVE, [key, members]))

    # -- the lock: a row with a deadline and its holder's token -----------------------------------

    def acquire(self, name: str, ttl: float) -> Optional[str]:
        token = secrets.token_hex(16)
        row = self.connections.run(lambda conn: conn.execute(_LOCK, [lock_key(name), token, ttl]).fetchone())
        return token if row is not None and row[0] == token else None

    def release(self, name: str, handle: Any) -> None:
        # Only if it is still ours: a holder whose lock expired never frees the next holder's.
        with contextlib.suppress(StoreUnavailable):  # it expires by itself
            self.connections.run(lambda conn: conn.execute(_UNLOCK, [lock_key(name), handle]))

    # -- housekeeping ------------------------------------------------------------------------------

    def session_created(self, now: float) -> None:
        """Sweep expired rows, at most every :data:`SWEEP_INTERVAL` seconds, in a thread of its own."""
        with self._sweep_guard:
            if now < self._next_sweep:
                return
            self._next_sweep = now + SWEEP_INTERVAL
        threading.Thread(target=self._sweep_quietly, name="sso-session-sweep", daemon=True).start()

    def _sweep_quietly(self) -> None:
        try:
            self.sweep()
        except StoreUnavailable as exc:
            log.warning("sso: the sweep of expired PostgreSQL rows failed (%s); the next sign-in tries again", exc)
            with self._sweep_guard:
                self._next_sweep = 0.0

    def sweep(self, batch: int = SWEEP_BATCH, batches: int = SWEEP_BATCHES) -> int:
        """Delete up to ``batch * batches`` expired rows (records, index members, locks); how many were deleted.

        Each statement deletes at most ``batch`` rows and skips rows another sweep (of another
        process) holds, so sweeps of several workers neither block each other nor the requests.
        """
        removed = 0
        for _ in range(batches):
            count = int(self.connections.run(lambda conn: conn.execute(_SWEEP, [batch]).rowcount))
            removed += count
            if count < batch:
                break
        if removed:
            log.info("sso: removed %d expired PostgreSQL rows", removed)
        return removed

    def migrate(self) -> str:
        """Create the table (and its index) unless it exists: what was done, as one line.

        Raises :class:`StoreUnavailable` when the server cannot be reached or the role may not create it.
        """
        created = self.connections.run(create_table)
        where = redact_url(self.config.session_url)
        return f"created table {TABLE} at {where}" if created else f"table {TABLE} already exists at {where}"

    def probe(self) -> Iterator[Finding]:
        """The server answers, the table exists (or may be created) and the role may use it."""
        where = redact_url(self.config.session_url)
        try:
            facts = self.connections.run(_facts)
        except StoreUnavailable as exc:
            yield "FAIL", f"postgresql at {where} does not answer: {one_line(str(exc))}"
            return
        yield "OK", (f"postgresql {facts['version']} at {where} answers as role {facts['role']} "
                     f"(session_store_timeout {self.config.session_store_timeout:g} s, "
                     f"pool of {self.config.session_pool_size} connections per process)")
        if facts["exists"]:
            missing = [right for right in ("SELECT", "INSERT", "UPDATE", "DELETE") if not facts[right]]
            if missing:
                yield "FAIL", f"postgresql: role {facts['role']} lacks {', '.join(missing)} on table {TABLE}"
            else:
                yield "OK", f"postgresql: table {TABLE} exists; role {facts['role']} may read, write and delete rows"
        elif facts["may_create"]:
            yield "INFO", (f"postgresql: table {TABLE} does not exist yet: created on first use (or now by "
                           "'sso-middleware migrate')")
        else:
            yield "FAIL", (f"postgresql: table {TABLE} does not exist and role {facts['role']} may not create it in "
                           f"schema {facts['schema'] or '(none on search_path)'}: run 'sso-middleware migrate' "
                           "as a role that may")


def _facts(conn: Any) -> dict[str, Any]:
    """What the probe reports: the server's version, the role, the table and the role's rights on it."""
    version, role, schema, exists = conn.execute(
        "SELECT current_setting('server_version'), current_user, current_schema(), to_regclass(%s) IS NOT NULL",
        [TABLE]).fetchone()
    facts = {"version": version, "role": role, "schema": schema, "exists": exists}
    if exists:
        for right in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            facts[right] = conn.execute("SELECT has_table_privilege(%s, %s)", [TABLE, right]).fetchone()[0]
    else:
        facts["may_create"] = bool(schema) and conn.execute(
            "SELECT has_schema_privilege(current_schema(), 'CREATE')").fetchone()[0]
    return facts
