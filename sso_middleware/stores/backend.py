"""The one protocol of the session stores: :class:`SessionBackend`.

The session layer (:mod:`sso_middleware._session.state`), the token-refresh lock
(:mod:`sso_middleware._session.locks`) and the doctor talk to where sessions live only
through these methods and flags; which store it is, is decided once, by :mod:`.registry`.
Beaker stays the storage layer: :class:`~.beaker.BeakerBackend` implements the session methods over Beaker's
sessions for the file, Redis, memcached and cookie back ends, and is the class to
subclass for a back end of your own (the README's "Writing your own session back
end" says what each method must guarantee).

Security caveat: a record read from a store that others can write to is only
trustworthy once its seal (:class:`~sso_middleware._sealing.RecordSeal`, bound to the record's
kind, its full key and this application) has been verified, size first; a back end
must hand back nothing of a record that :meth:`RecordSeal.open` did not return.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, Optional, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .._config.settings import SSOConfig

#: A doctor finding's status (the doctor prints ``[ OK ]``, ``[WARN]``, ``[FAIL]``...).
Status = Literal["OK", "WARN", "FAIL", "INFO", "SKIP"]
#: What :meth:`SessionBackend.probe` yields: a status and a one-line message (no secrets in it).
Finding = tuple[Status, str]

#: A session: a dict with ``id`` and ``is_new`` (a Beaker ``Session``, or the view of an outer one).
Session = Any

#: Prefix of the side records that hold a session's tokens (``<prefix><session id>``).
TOKENS_PREFIX = "sso-tokens-"


@runtime_checkable
class SessionBackend(Protocol):
    """Where sessions live: sessions, side records, the sid/sub index, a lock, checks and housekeeping.

    A back end is built once per middleware from its configuration (``Backend(config)``);
    it must be safe to call from several threads at once.  Every method that talks to
    the store raises :class:`~.errors.StoreUnavailable` when the store cannot be reached
    (the request is answered 503); none may raise for a record that is missing or
    unreadable: that is no record.
    """

    #: True: each session is a record of its own, found and deleted by its id, with its side
    #: records (tokens, index entries) beside it; sign-out and back-channel logout delete them.
    #: False: the session travels with the browser (or an outer middleware's session): the side-record
    #: and index methods are never called, tokens stay in the session, and ends are revocations.
    keeps_records: bool
    #: True: :meth:`acquire` excludes every process (and host) using the store; False: this process only.
    shared_lock: bool

    # -- checks and housekeeping ------------------------------------------------------------

    @classmethod
    def validate(cls, config: SSOConfig) -> None:
        """Check the settings this back end reads, when the configuration is built.

        Raises :class:`~..errors.ConfigError` naming the setting at fault; connects to nothing.
        """

    def probe(self) -> Iterator[Finding]:
        """The doctor's findings about the store: reachable, writable; never a secret in a message."""

    def prepare(self) -> None:
        """Make the store ready when the middleware is built (e.g. create and check a folder); ConfigError if not."""

    def session_created(self, now: float) -> None:
        """Called after a new session was stored: a chance for housekeeping (the file store's sweep)."""

    # -- the request's session -----------------------------------------------------------------

    def may_have_session(self, environ: dict[str, Any]) -> bool:
        """False when the request cannot carry a session: the hot path's shortcut (no store touched)."""

    def open_session(self, environ: dict[str, Any], cookie: str) -> Optional[Session]:
        """The stored session the request names, read now; None when it names none.

        ``cookie``: the session cookie as ``name=value``, picked out of the request's
        Cookie header ('' when it sent none).  A cookie that names no stored session
        (expired, deleted, tampered) is None, never a session under the id the client
        chose; an unreadable record is None too.
        """

    def new_session(self, previous: Optional[Session], environ: dict[str, Any], keep_data: bool) -> Session:
        """A session to store a sign-in in, under an id nobody has seen (session fixation defence).

        ``previous`` (the request's session, if any) is ended where it is stored; ``keep_data``:
        it held no other user's sign-in, so data of the application sharing the session may stay.
        """

    def save_session(self, session: Session, existing: bool = False) -> bool:
        """Write a session; for an ``existing`` one only if its record still exists (False if it is gone).

        An update must never bring back a session deleted meanwhile (a sign-out elsewhere).
        Raises :class:`~.errors.SessionTooLarge` when it does not fit.
        """

    def session_cookie(self, session: Session, created: bool) -> Optional[str]:
        """The ``Set-Cookie`` value to send after :meth:`save_session`, or None for none."""

    def deletion_cookie(self) -> Optional[str]:
        """The ``Set-Cookie`` value that expires the session cookie; None when an outer middleware owns the cookie.

        Sent when a session ends and when a cookie names no stored session: never a freshly
        signed id, which someone able to write to the store could plant a forged record under.
        """

    def delete_session(self, session: Session) -> None:
        """End a session where it is stored (its side records are the caller's)."""

    # -- side records (``keeps_records``) -------------------------------------------------------

    def read_record(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        """A record's text as written, after its seal for ``kind`` and its key verified; None when there is none."""

    def write_record(self, record_id: str, text: str, ttl: int, existing: bool = False, kind: str = "tokens") -> bool:
        """Seal and write a record expiring after ``ttl`` seconds; with ``existing``, only if it still exists.

        Returns False (writing nothing) when an ``existing`` record is gone: atomically,
        so a record deleted meanwhile is never recreated.
        """

    def delete_record(self, record_id: str) -> None:
        """Delete a record (idempotent)."""

    # -- the sid/sub index (``keeps_records``; see :mod:`.index`) ---------------------------------

    def index_add(self, index_id: str, session_id: str, ttl: int) -> None:
        """Add a session id to an index record (a set: concurrent adds are all kept), refreshing its TTL."""

    def index_members(self, index_id: str) -> list[str]:
        """The session ids of an index record, read only; [] when there is none."""

    def index_remove(self, index_id: str, session_ids: list[str]) -> None:
        """Remove session ids from an index record; ids added meanwhile stay."""

    # -- a lock (single-flight token refresh; see :mod:`sso_middleware._session.locks`) --------------------------------

    def acquire(self, name: str, ttl: float) -> Optional[Any]:
        """Take the lock ``name`` for at most ``ttl`` seconds without waiting: a handle, or None when it is held."""

    def release(self, name: str, handle: Any) -> None:
        """Release a lock taken by :meth:`acquire`, only if it is still this holder's."""


@runtime_checkable
class Migratable(Protocol):
    """A back end whose store needs a schema (a table): ``sso-middleware migrate`` creates it.

    Optional, beside :class:`SessionBackend`: a store without one has nothing to migrate.
    """

    def migrate(self) -> str:
        """Create what the store needs unless it exists (idempotent): what was done, as one line without secrets.

        Raises :class:`~.errors.StoreUnavailable` when the store cannot be reached or may not be changed.
        """


def protocol_members() -> list[str]:
    """The names a back end must have: :class:`SessionBackend`'s methods and flags."""
    methods = [name for name, value in vars(SessionBackend).items() if not name.startswith("_") and callable(value)]
    methods += [name for name, value in vars(SessionBackend).items() if isinstance(value, classmethod)]
    return sorted({*methods, *SessionBackend.__annotations__})


def stamp_interval(idle_timeout: float) -> float:
    """Seconds between two writes of a live session's idle stamp (so an older record is an abandoned one)."""
    return min(60.0, idle_timeout / 10)


def lock_key(name: str) -> str:
    """The store key of the lock ``name`` (Redis as is; memcached hashes its keys)."""
    return f"sso_middleware:lock:{name}"


def one_line(text: str) -> str:
    """A library's error message as one short printable line, for a finding."""
    return " ".join("".join(char if char.isprintable() else " " for char in text).split())[:300]
