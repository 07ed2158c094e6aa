"""The shared Beaker adapter: Beaker's sessions (signed cookie, JSON payload) over any back end's records.

:class:`BeakerBackend` implements the session half of :class:`~.backend.SessionBackend`
with Beaker: the cookie carries a random session id signed with a key derived from
``session_secret`` (bound to this application), and the session's dict is Beaker's
JSON text, stored as the record ``<session id>`` of kind "session".  A back end of one's
own subclasses :class:`~.text_records.TextRecords` (which seals for it) or, storing
differently, this class with its own sealed record and index methods: Beaker reaches
them through :class:`RecordNamespace`.  The built-in server-side back
ends plug their own Beaker namespace managers in instead (:class:`NamespaceRecords`),
and the cookie back end Beaker's encrypted cookie session.

Security caveats: the session cookie is HttpOnly, SameSite=Lax, Secure whenever
``base_url`` is https, and signed with a key bound to this application (for the cookie
store also encrypted); a session is ended with a pure deletion cookie, never a freshly
signed id.  Beaker never decides whether a record is trustworthy -- the back end's read
verifies the seal first; the payload is then decompressed with a bound
(:class:`~sso_middleware._sealing.BoundedJsonSerializer`) and never unpickled.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from beaker.container import NamespaceManager
from beaker.exceptions import BeakerException
from beaker.session import Session

from .. import _cookies as cookies
from .._sealing import BoundedJsonSerializer, RecordSeal, app_key_text, record_prefix
from ..errors import ConfigError
from .backend import Finding
from .backend import Session as Container
from .errors import RecordGone, SessionTooLarge, StoreUnavailable

if TYPE_CHECKING:
    from .._config.settings import SSOConfig

#: The key of a record's value inside its Beaker namespace: the one Beaker's session records use, so
#: :meth:`NamespaceRecords.delete_record` deletes either kind of record.
_VALUE_KEY = "session"


def _unavailable(exc: OSError) -> StoreUnavailable:
    return StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}")


class BeakerBackend(abc.ABC):
    """A :class:`~.backend.SessionBackend` whose sessions are Beaker's: subclass it and store records.

    Implement :meth:`read_record`, :meth:`write_record`, :meth:`delete_record`,
    :meth:`index_add`, :meth:`index_members` and :meth:`index_remove`; optionally a
    lock shared between processes (:meth:`acquire`/:meth:`release`, with
    ``shared_lock = True``), :meth:`validate`, :meth:`probe`, :meth:`prepare` and
    :meth:`session_created`.  ``self.seal`` (a :class:`~sso_middleware._sealing.RecordSeal`) seals
    and opens records; ``self.prefix`` is this application's key prefix; ``self.ttl``
    the sessions' TTL (the idle timeout plus three minutes).
    """

    keeps_records: ClassVar[bool] = True
    shared_lock: ClassVar[bool] = False
    #: What Beaker builds sessions with: :class:`Session` over :attr:`namespace_class`, or a cookie session.
    session_class: ClassVar[Any] = Session
    #: The Beaker namespace manager of one record (default: :class:`RecordNamespace`, over the record methods).
    namespace_class: ClassVar[Any] = None
    #: Beaker's ``type`` option (informative: Beaker uses the namespace class given).
    beaker_type: ClassVar[str] = "ext:sso"

    def __init__(self, config: SSOConfig) -> None:
        self.config = config
        self.cookie_name = config.session_cookie_name
        self.ttl = int(config.session_idle_timeout + 180)
        # Every key is bound to this application (issuer and client id), not only to the secret.
        self.seal = RecordSeal.for_config(config)
        self.prefix = record_prefix(config)
        self.options: dict[str, Any] = {
            "key": self.cookie_name,
            "httponly": True,
            "secure": config.secure_cookies,
            "samesite": "Lax",
            "cookie_domain": config.cookie_domain or None,
            "cookie_path": config.cookie_path,
            "data_serializer": BoundedJsonSerializer(),  # Beaker's "json", its decompression bounded
            "invalidate_corrupt": False,  # corruption and outages are told apart in session()
            "cookie_expires": True,
            **self.beaker_options(),
        }

    def beaker_options(self) -> dict[str, Any]:
        """Beaker's options for this back end's sessions (beyond the cookie's): by default, server-side records."""
        return {"type": self.beaker_type, "secret": app_key_text(self.config, "session id signature"),
                "namespace_class": self.namespace_class or RecordNamespace, **self.namespace_args()}

    def namespace_args(self) -> dict[str, Any]:
        """What Beaker passes to the namespace manager of a record."""
        return {"backend": self, "ttl": self.ttl}

    # -- checks and housekeeping (nothing by default) --------------------------------------------

    @classmethod  # noqa: B027 - optional: nothing by default
    def validate(cls, config: SSOConfig) -> None:
        """Nothing to check beyond the common settings."""

    def probe(self) -> Iterator[Finding]:
        yield "INFO", f"session store {type(self).__name__}: it has no probe"

    def prepare(self) -> None:  # noqa: B027 - optional: nothing by default
        """Nothing to prepare."""

    def session_created(self, now: float) -> None:  # noqa: B027 - optional: nothing by default
        """No housekeeping: records expire by their TTL."""

    # -- the request's session ---------------------------------------------------------------------

    def may_have_session(self, environ: dict[str, Any]) -> bool:
        return self.cookie_name in environ.get("HTTP_COOKIE", "")

    def session(self, cookie: str) -> Container:
        """The Beaker session a cookie (``name=value``) names, loaded, or a new one for ``""``.

        Raises :class:`StoreUnavailable` when the store cannot be read, and
        ``ValueError`` when the record (or cookie) is unreadable.
        """
        try:
            return self.session_class({"cookie": cookie}, **self.options)
        except StoreUnavailable:
            raise
        except OSError as exc:
            raise _unavailable(exc) from None
        except Exception as exc:  # undecodable cookie, corrupt record (bad JSON, base64...)
            raise ValueError(f"unreadable session: {type(exc).__name__}") from None

    def open_session(self, environ: dict[str, Any], cookie: str) -> Optional[Container]:
        if not cookie:
            return None
        try:
            session = self.session(cookie)
        except ValueError:  # unreadable record or cookie: no session
            return None
        return None if session.is_new else session

    def new_session(self, previous: Optional[Container], environ: dict[str, Any], keep_data: bool) -> Container:
        """A new, empty session: ours hold nothing but the sign-in, so nothing is kept; the previous one ends."""
        if previous is not None:
            self.delete_session(previous)
        return self.session("")

    def save_session(self, session: Container, existing: bool = False) -> bool:
        namespace = getattr(session, "namespace", None)
        if namespace is not None and hasattr(namespace, "only_if_exists"):
            namespace.only_if_exists = existing
        try:
            session.save()
        except RecordGone:
            return False
        except StoreUnavailable:
            raise
        except OSError as exc:
            raise _unavailable(exc) from None
        except BeakerException as exc:
            if "too long" in str(exc):
                raise SessionTooLarge(str(exc)) from None
            raise
        return True

    def session_cookie(self, session: Container, created: bool) -> Optional[str]:
        """A new session's signed id (an existing one's cookie does not change)."""
        return str(session.request["cookie_out"]) if created else None

    def delete_session(self, session: Container) -> None:
        if self.keeps_records and not session.is_new:
            self.delete_record(session.id)
        session.delete()

    def deletion_cookie(self) -> str:
        """An empty, expired session cookie of the same name and scope (never a signed id)."""
        config = self.config
        # (a __Host- name always has Path=/: SSOConfig refuses one under a base_url path)
        return cookies.deletion_cookie(self.cookie_name, path=config.cookie_path, domain=config.cookie_domain,
                                       secure=config.secure_cookies)

    # -- records, the index and the lock: the back end's own -------------------------------------

    @abc.abstractmethod
    def read_record(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        """See :meth:`~sso_middleware.stores.backend.SessionBackend.read_record`."""

    @abc.abstractmethod
    def write_record(self, record_id: str, text: str, ttl: int, existing: bool = False, kind: str = "tokens") -> bool:
        """See :meth:`~sso_middleware.stores.backend.SessionBackend.write_record`."""

    @abc.abstractmethod
    def delete_record(self, record_id: str) -> None:
        """See :meth:`~sso_middleware.stores.backend.SessionBackend.delete_record`."""

    @abc.abstractmethod
    def index_add(self, index_id: str, session_id: str, ttl: int) -> None:
        """See :meth:`~sso_middleware.stores.backend.SessionBackend.index_add`."""

    @abc.abstractmethod
    def index_members(self, index_id: str) -> list[str]:
        """See :meth:`~sso_middleware.stores.backend.SessionBackend.index_members`."""

    @abc.abstractmethod
    def index_remove(self, index_id: str, session_ids: list[str]) -> None:
        """See :meth:`~sso_middleware.stores.backend.SessionBackend.index_remove`."""

    def acquire(self, name: str, ttl: float) -> Optional[Any]:
        """No lock beyond this process (``shared_lock`` is False): always granted."""
        return True

    def release(self, name: str, handle: Any) -> None:  # noqa: B027 - optional: nothing by default
        """Nothing to release."""


class RecordNamespace(NamespaceManager):  # type: ignore[misc]
    """Beaker's namespace manager of one session record, over a :class:`BeakerBackend`'s record methods."""

    #: Set by :meth:`BeakerBackend.save_session` for an update: never recreate a record deleted meanwhile.
    only_if_exists = False

    def __init__(self, namespace: str, backend: BeakerBackend, ttl: Optional[int] = None, kind: str = "session",
                 **kw: Any) -> None:
        super().__init__(namespace)
        self.backend, self.ttl, self.kind = backend, ttl, kind

    def __getitem__(self, key: str) -> Any:
        value = self.backend.read_record(self.namespace, self.kind) if key == _VALUE_KEY else None
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: str) -> bool:
        return key == _VALUE_KEY and self.backend.read_record(self.namespace, self.kind) is not None

    def set_value(self, key: str, value: Any, expiretime: Optional[int] = None) -> None:
        text = value.decode("ascii") if isinstance(value, bytes) else value  # Beaker's base64 text
        if not self.backend.write_record(self.namespace, text, int(expiretime or self.ttl or 0),
                                         existing=self.only_if_exists, kind=self.kind):
            raise RecordGone(self.namespace)

    def __setitem__(self, key: str, value: Any) -> None:
        self.set_value(key, value)

    def __delitem__(self, key: str) -> None:
        self.backend.delete_record(self.namespace)

    def do_remove(self) -> None:
        self.backend.delete_record(self.namespace)

    def keys(self) -> list[str]:
        return [_VALUE_KEY] if _VALUE_KEY in self else []


class NamespaceRecords(BeakerBackend):
    """Records, index and all, through the back end's own Beaker namespace manager (the built-in stores).

    A record is the namespace ``<record id>`` holding one value; an index record is the
    namespace ``<index id>`` (the namespace manager's ``index_add``/``index_members``/
    ``index_remove``), unless :meth:`_index` says otherwise.
    """

    def namespace(self, record_id: str, ttl: Optional[int] = None, kind: str = "session") -> NamespaceManager:
        """The Beaker namespace manager of one record (``ttl`` overrides the sessions' TTL; ``kind``: see sealing)."""
        args = self.namespace_args()
        if ttl is not None and "ttl" in args:
            args["ttl"] = ttl
        return self.namespace_class(record_id, digest_filenames=False, kind=kind, **args)

    def read_record(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        namespace = self.namespace(record_id, kind=kind)
        try:
            namespace.acquire_read_lock()
            try:
                value = namespace[_VALUE_KEY]
            finally:
                namespace.release_read_lock()
        except (KeyError, ValueError):  # ValueError: bytes we would not have written (not UTF-8...)
            return None
        except OSError as exc:
            raise _unavailable(exc) from None
        return value if isinstance(value, str) else None

    def write_record(self, record_id: str, text: str, ttl: int, existing: bool = False, kind: str = "tokens") -> bool:
        namespace = self.namespace(record_id, ttl=ttl, kind=kind)
        namespace.only_if_exists = existing
        try:
            namespace.acquire_write_lock()
            try:
                namespace[_VALUE_KEY] = text
            finally:
                namespace.release_write_lock()  # a file record is written (or refused: RecordGone) here
        except RecordGone:
            return False
        except OSError as exc:
            raise _unavailable(exc) from None
        return True

    def delete_record(self, record_id: str) -> None:
        try:
            self.namespace(record_id).remove()
        except OSError as exc:
            raise _unavailable(exc) from None

    def _index(self, index_id: str, ttl: Optional[int] = None) -> Any:
        """The index record (an object with ``index_add``, ``index_members``, ``index_remove``)."""
        return self.namespace(index_id, ttl=ttl)

    def index_add(self, index_id: str, session_id: str, ttl: int) -> None:
        self._index(index_id, ttl).index_add(session_id)

    def index_members(self, index_id: str) -> list[str]:
        return list(self._index(index_id).index_members())

    def index_remove(self, index_id: str, session_ids: list[str]) -> None:
        self._index(index_id).index_remove(session_ids)


class ServerRecords(NamespaceRecords):
    """A built-in store on servers named by ``session_url`` (Redis, memcached), through one shared client.

    :meth:`make_client` builds the client without connecting, so a URL it cannot use fails
    when the middleware is built, not on the first request.  The servers are shared by
    every process and host, and so is the lock.
    """

    shared_lock = True

    def __init__(self, config: SSOConfig) -> None:
        try:  # first: the Beaker options built next hand the client to the namespace managers
            self.client = self.make_client(config)
        except ValueError as exc:
            raise ConfigError("session_url", str(exc)) from None  # not the URL: it may hold a password
        except StoreUnavailable as exc:  # its client library is not installed
            raise ConfigError("session_type", str(exc)) from None
        super().__init__(config)

    def make_client(self, config: SSOConfig) -> Any:
        """The shared client of ``session_url`` (by default ``namespace_class.client_for(url, timeout)``)."""
        return self.namespace_class.client_for(config.session_url, config.session_store_timeout)

    def namespace_args(self) -> dict[str, Any]:
        config = self.config
        return {"url": config.session_url, "ttl": self.ttl, "socket_timeout": config.session_store_timeout,
                "seal": self.seal, "prefix": self.prefix}
