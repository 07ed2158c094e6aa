"""The facade the session layer uses: builds, loads, saves and removes records for one configuration."""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

from beaker.container import FileNamespaceManager, NamespaceManager
from beaker.exceptions import BeakerException
from beaker.session import Session

from ..config import SSOConfig
from ..errors import ConfigError
from ..sealing import BoundedJsonSerializer, RecordSeal, app_key_text, record_prefix
from .cookie import LazyCookieSession
from .errors import RecordGone, SessionTooLarge, StoreUnavailable
from .file import FileIndex, PrivateFileNamespace
from .memcached import JsonMemcachedNamespace
from .redis import JsonRedisNamespace

log = logging.getLogger("sso_middleware")


#: The key of a small record's value: the one Beaker's session records use, so :meth:`BeakerStore.remove_id`
#: deletes either kind of record.
_VALUE_KEY = "session"

_NAMESPACES: dict[str, Any] = {"ext:redis": JsonRedisNamespace, "ext:memcached": JsonMemcachedNamespace}


class BeakerStore:
    """Builds, loads and removes Beaker session objects for one configuration."""

    def __init__(self, config: SSOConfig, cookie_name: str, data_dir: Optional[str]) -> None:
        self.kind = config.session_type
        self.ttl = int(config.session_idle_timeout + 180)
        options: dict[str, Any] = {
            "key": cookie_name,
            "httponly": True,
            "secure": config.secure_cookies,
            "samesite": "Lax",
            "cookie_domain": config.cookie_domain or None,
            "cookie_path": config.cookie_path,
            "data_serializer": BoundedJsonSerializer(),  # Beaker's "json", its decompression bounded
            "invalidate_corrupt": False,  # corruption and outages are told apart in load()
            "cookie_expires": True,
        }
        # Every key is bound to this application (issuer and client id), not only to the secret.
        self.seal = RecordSeal.for_config(config)
        if self.kind == "cookie":
            options["encrypt_key"] = app_key_text(config, "cookie encryption")
            options["validate_key"] = app_key_text(config, "cookie signature")
        elif self.kind == "file":
            options.update(type="file", secret=app_key_text(config, "session id signature"), data_dir=data_dir,
                           lock_dir=f"{data_dir}/locks", namespace_class=PrivateFileNamespace, seal=self.seal)
            self.index_dir = os.path.join(str(data_dir), "index")
        else:  # Beaker hands the extra keywords to the namespace manager of each record
            try:  # a URL the client cannot use fails here, at construction, not on the first request
                _NAMESPACES[self.kind].client_for(config.session_url, config.session_store_timeout)
            except ValueError as exc:
                raise ConfigError("session_url", str(exc)) from None  # not the URL: it may hold a password
            except StoreUnavailable as exc:
                raise ConfigError("session_type", str(exc)) from None
            options.update(type=self.kind, secret=app_key_text(config, "session id signature"),
                           namespace_class=_NAMESPACES[self.kind], url=config.session_url, ttl=self.ttl,
                           socket_timeout=config.session_store_timeout, seal=self.seal, prefix=record_prefix(config))
        self.options = options
        self.server_side = self.kind != "cookie"

    def namespace_args(self) -> dict[str, Any]:
        """What Beaker passes to the namespace manager of a record."""
        names = ("data_dir", "lock_dir", "seal") if self.kind == "file" else ("url", "ttl", "socket_timeout", "seal",
                                                                             "prefix")
        return {name: self.options[name] for name in names}

    def session(self, cookie_header: str) -> Session:
        """The session a cookie header names (loaded), or a new one for ``""``.

        Raises :class:`StoreUnavailable` when the store cannot be read, and
        ``ValueError`` when the record (or cookie) is unreadable.
        """
        request = {"cookie": cookie_header}
        try:
            if self.kind == "cookie":
                return LazyCookieSession(request, **self.options)
            return Session(request, **self.options)
        except StoreUnavailable:
            raise
        except OSError as exc:
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None
        except Exception as exc:  # undecodable cookie, corrupt record (bad pickle, JSON, base64...)
            raise ValueError(f"unreadable session: {type(exc).__name__}") from None

    def save(self, session: Session, existing: bool = False) -> bool:
        """Write a session; for an ``existing`` one, only if its record is still there.

        Returns False when the record was deleted meanwhile (a sign-out or a back-channel
        logout on another request): an update must not bring a signed-out session back.
        """
        if self.kind == "file" and session.is_new and getattr(session, "namespace", None) is None:
            # A new session id, known to nobody yet: created in place (see PrivateFileNamespace).
            session.namespace = self.namespace(session.id)
            session.namespace.mark_fresh()
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
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None
        except BeakerException as exc:
            if "too long" in str(exc):
                raise SessionTooLarge(str(exc)) from None
            raise
        return True

    def index_add(self, index_id: str, session_id: str, ttl: int) -> None:
        """Record that ``session_id`` belongs to an index (a provider ``sid`` or ``sub``)."""
        self._index(index_id, ttl).index_add(session_id)

    def end_index(self, index_id: str, companions: tuple[str, ...] = ()) -> list[str]:
        """Delete every session of an index, then those ids from the index; the ids ended.

        ``companions``: prefixes of records that belong to a session and go with it
        (``<prefix><session id>``, e.g. its tokens).

        Idempotent, so a provider retrying after a store outage completes the job: the
        index is only read before the sessions are deleted, and trimmed after.
        """
        index = self._index(index_id)
        members = list(index.index_members())
        for session_id in members:
            for prefix in companions:
                self.remove_id(prefix + session_id)
            self.remove_id(session_id)
        index.index_remove(members)
        return members

    def _index(self, index_id: str, ttl: Optional[int] = None) -> Any:
        """The index record: a Redis set, a memcached JSON list, or a :class:`FileIndex`."""
        if self.kind == "file":
            return FileIndex(self.index_dir, index_id, self.seal)
        return self.namespace(index_id, ttl=ttl)

    def read_value(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        """The text of a small record of our own (``None`` when there is none, or none sealed), e.g. a session's tokens.

        ``kind`` is part of the record's seal (:mod:`.sealing`): a record written as one kind never reads as another.
        """
        namespace = self.namespace(record_id, kind=kind)
        try:
            if self.kind == "file":
                namespace.acquire_read_lock()
                try:
                    value = namespace[_VALUE_KEY]
                finally:
                    namespace.release_read_lock()
            else:
                value = namespace[_VALUE_KEY]
        except (KeyError, ValueError):  # ValueError: bytes we would not have written (not UTF-8...)
            return None
        except OSError as exc:
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None
        return value if isinstance(value, str) else None

    def write_value(self, record_id: str, value: str, ttl: int, existing: bool = False, kind: str = "tokens") -> bool:
        """Write a small sealed record; for an ``existing`` one only if it is still there (False when it is gone)."""
        namespace = self.namespace(record_id, ttl=ttl, kind=kind)
        namespace.only_if_exists = existing
        try:
            if self.kind == "file":
                namespace.acquire_write_lock()
                try:
                    namespace[_VALUE_KEY] = value
                finally:
                    namespace.release_write_lock()  # writes (or refuses: RecordGone) here
            else:
                namespace.set_value(_VALUE_KEY, value)
        except RecordGone:
            return False
        except OSError as exc:
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None
        return True

    def remove(self, session: Session) -> None:
        """Delete a stored record (server-side stores); the cookie is expired by the caller."""
        if self.server_side and not session.is_new:
            self.remove_id(session.id)

    def remove_id(self, session_id: str) -> None:
        """Delete the record of a session id (back-channel logout)."""
        try:
            self.namespace(session_id).remove()
        except OSError as exc:
            raise StoreUnavailable(f"session store: {exc.strerror or type(exc).__name__}") from None

    def namespace(self, record_id: str, ttl: Optional[int] = None, kind: str = "session") -> NamespaceManager:
        """The Beaker namespace manager of one record (``ttl`` overrides the sessions' TTL; ``kind``: see sealing)."""
        args = self.namespace_args()
        if ttl is not None and "ttl" in args:
            args["ttl"] = ttl
        namespace_class = self.options.get("namespace_class") or FileNamespaceManager
        return namespace_class(record_id, digest_filenames=False, kind=kind, **args)
