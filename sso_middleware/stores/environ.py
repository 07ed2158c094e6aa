"""The environ store (``session_type = environ``): our data inside an outer Beaker ``SessionMiddleware``'s session.

The outer middleware (``environ[session_environ_key]``) owns the cookie, the store
and when to save; our keys live under ``sso_middleware.*`` (:class:`OuterSession`).
Sign-in regenerates its session id where its store supports that (server-side
stores; a cookie store's content is replaced anyway), and sign-out deletes the whole
outer session.  Like the cookie store it keeps no records of ours: sign-out and
back-channel logout are revocations, and the token-refresh lock holds within one
process only.

Security caveat: the application's data in the outer session belongs to the user
signed in.  When another user (another ``sub``) signs in, the whole outer session is
invalidated first -- every key gone, the old record deleted where the outer store
keeps one, a new id -- so the new user never sees the previous user's data.  The same
user signing in again keeps it, and so does an anonymous visitor's first sign-in.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from beaker.session import CookieSession, SessionObject

from ..errors import ConfigError
from .backend import Finding
from .cookie import NoRecords
from .errors import StoreUnavailable

if TYPE_CHECKING:
    from .._config.settings import SSOConfig

log = logging.getLogger("sso_middleware")

#: Key prefix of our data inside the outer application's session.
ENVIRON_PREFIX = "sso_middleware."


class OuterSession:
    """Our keys of an outer Beaker session (a ``SessionObject`` or a session), seen without their prefix."""

    def __init__(self, outer: Any) -> None:
        self.outer = outer

    @property
    def id(self) -> str:
        return str(self.outer.id)

    @property
    def is_new(self) -> bool:
        return bool(self.outer.is_new)

    def get(self, key: str, default: Any = None) -> Any:
        return self.outer.get(ENVIRON_PREFIX + key, default)

    def __getitem__(self, key: str) -> Any:
        return self.outer[ENVIRON_PREFIX + key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.outer[ENVIRON_PREFIX + key] = value

    def __contains__(self, key: str) -> bool:
        return ENVIRON_PREFIX + key in self.outer

    def pop(self, key: str, default: Any = None) -> Any:
        return self.outer.pop(ENVIRON_PREFIX + key, default)


def _beaker_session(outer: Any) -> Any:
    """The Beaker ``Session``/``CookieSession`` behind an outer ``SessionObject`` (or the session itself)."""
    return outer._session() if isinstance(outer, SessionObject) else outer


class EnvironBackend(NoRecords):
    """Sessions inside the outer Beaker session of each request; nothing of ours stored elsewhere."""

    keeps_records = False
    shared_lock = False

    def __init__(self, config: SSOConfig) -> None:
        self.config = config
        self.environ_key = config.session_environ_key

    @classmethod
    def validate(cls, config: SSOConfig) -> None:
        if not config.session_environ_key:
            raise ConfigError("session_environ_key", "required with session_type = environ")

    def probe(self) -> Iterator[Finding]:
        yield "INFO", (f"session_type environ: an outer Beaker SessionMiddleware must wrap this middleware and put its "
                       f"session at environ[{self.environ_key!r}]; it owns the cookie and the store")

    def prepare(self) -> None:
        """Nothing: the outer middleware owns the store."""

    def session_created(self, now: float) -> None:
        """Nothing: the outer middleware owns the store."""

    def _outer(self, environ: dict[str, Any]) -> OuterSession:
        outer = environ.get(self.environ_key)
        if outer is None:
            raise StoreUnavailable(
                f"no Beaker session at environ[{self.environ_key!r}]: "
                "wrap this middleware in beaker.middleware.SessionMiddleware"
            )
        return OuterSession(outer)

    # -- the request's session ---------------------------------------------------------------------

    def may_have_session(self, environ: dict[str, Any]) -> bool:
        return "HTTP_COOKIE" in environ  # the outer middleware's cookie, whatever its name

    def open_session(self, environ: dict[str, Any], cookie: str) -> Optional[OuterSession]:
        return self._outer(environ) if "HTTP_COOKIE" in environ else None

    def new_session(self, previous: Optional[Any], environ: dict[str, Any], keep_data: bool) -> OuterSession:
        session = previous if isinstance(previous, OuterSession) else self._outer(environ)
        if keep_data:
            with contextlib.suppress(AttributeError):  # a cookie session: replaced whole, nothing to fixate
                session.outer.regenerate_id()
        else:
            _invalidate(session.outer)
        return session

    def save_session(self, session: Any, existing: bool = False) -> bool:
        session.outer.save()  # marks it for the outer middleware to persist
        return True

    def session_cookie(self, session: Any, created: bool) -> Optional[str]:
        return None  # the outer middleware's

    def deletion_cookie(self) -> Optional[str]:
        return None  # the outer middleware's

    def delete_session(self, session: Any) -> None:
        """Delete the whole outer session, when it holds a sign-in of ours (an anonymous visitor's stays)."""
        if "user" in session:
            session.outer.delete()
            beaker = _beaker_session(session.outer)
            if isinstance(beaker, CookieSession):  # delete() drops its _id: the app would fail reading .id
                beaker.invalidate()

    # -- the lock: this process only ---------------------------------------------------------------

    def acquire(self, name: str, ttl: float) -> Optional[Any]:
        return True

    def release(self, name: str, handle: Any) -> None:
        """Nothing to release."""


def _invalidate(outer: Any) -> None:
    """Empty the outer session under a new id, deleting its old record where the outer store has one."""
    session = _beaker_session(outer)
    namespace = getattr(session, "namespace", None)
    if not isinstance(session, CookieSession) and namespace is not None and not session.is_new:
        try:
            namespace.remove()  # Beaker's invalidate() leaves the old record (and its data) behind
        except OSError as exc:
            raise StoreUnavailable(f"outer session store: {exc.strerror or type(exc).__name__}") from None
    session.invalidate()  # Session: cleared, new id; CookieSession: cleared, new _id
    outer.save()  # for a SessionObject: persist it (under the new id) at the end of the request
    log.info("sso: another user signs in; the previous user's session data was discarded")
