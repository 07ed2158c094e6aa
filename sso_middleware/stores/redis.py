"""The Redis store (``session_type = ext:redis``): sealed text records (never pickles) with a TTL; many hosts.

``session_url = redis://host:port/db`` (``rediss://``, ``unix://``), or Sentinel
(``redis+sentinel://``) or Cluster (``redis+cluster://``): :mod:`.redis_connect` builds
the client.  Records are strings, index records sets of sealed members, and the lock
``SET key token NX PX ttl``, released by a compare-and-delete script, so a holder whose
lock expired never releases the next holder's.  Every command touches one key (a
script only the one key it names), so each is on one Cluster slot and the key layout is
the same on one server, Sentinel and Cluster.  Every call is bounded by
``session_store_timeout``; an outage (a failover in progress included) is
:class:`~.errors.StoreUnavailable` (:func:`~.redis_connect.store_errors`).

Security caveat: Beaker's own Redis back end pickles what it stores: anyone able to
write to Redis could then run code in every process.  This one stores sealed text and
verifies the seal, size first, before anything decodes a record; ``session_url`` may
hold a password and is never printed (nor put in the config's repr).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from beaker.container import NamespaceManager
from beaker.util import SyncDict

from .._redaction import redact_url
from .._sealing import MAX_RECORD_BYTES, RecordSeal
from .backend import Finding, lock_key, one_line
from .beaker import ServerRecords
from .errors import RecordGone, StoreUnavailable
from .redis_connect import (
    client_errors,
    client_for,
    failure_hint,
    outage,
    parse,
    shared_client,
    store_errors,
    tls_findings,
    topology,
)
from .redis_connect import validate as validate_url
from .sealed import _SealedRecords

if TYPE_CHECKING:
    from .._config.settings import SSOConfig

try:  # optional back end
    import redis
except ImportError:  # pragma: no cover - exercised only without the extra
    redis = None  # type: ignore[assignment]

if TYPE_CHECKING:
    pass

log = logging.getLogger("sso_middleware")


_INDEX_ADD_SCRIPT = """
redis.call('sadd', KEYS[1], ARGV[1])
return redis.call('expire', KEYS[1], ARGV[2])
"""


class JsonRedisNamespace(_SealedRecords, NamespaceManager):  # type: ignore[misc]
    """A Beaker namespace over Redis that stores sealed text (no pickle), with a TTL.

    An index record is a Redis set whose members are each sealed (so ``SADD``/``SREM``
    stay atomic); a member that is not sealed for this index is ignored.
    """

    clients = SyncDict()

    def __init__(self, namespace: str, url: str, ttl: Optional[int] = None,
                 socket_timeout: float = 2.0, seal: Optional[RecordSeal] = None,
                 prefix: str = "sso_middleware", kind: str = "session", client: Any = None, **kw: Any) -> None:
        super().__init__(namespace)
        self.ttl = ttl
        self.seal, self.prefix, self.kind = seal, prefix, kind
        self.client = client if client is not None else self.client_for(url, socket_timeout)

    @classmethod
    def client_for(cls, url: str, socket_timeout: float) -> Any:
        """The (shared) client of a URL without TLS files; ``ValueError`` for a URL it cannot use.  Does not connect."""
        return shared_client(url, socket_timeout)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{self.namespace}:{key}"

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One command; only WRONGTYPE (a wrong type under our key, the caller's) is left a ``redis.ResponseError``."""
        try:  # (not store_errors(): this is every request's path, a context manager costs a microsecond)
            return getattr(self.client, method)(*args, **kwargs)
        except client_errors() as exc:
            failure = outage(exc)
            if failure is None:
                raise
            raise failure from None

    def __getitem__(self, key: str) -> Any:
        try:
            # At most one byte over the size limit is ever read: a planted value of hundreds of MiB is
            # refused by its size without crossing the network (GETRANGE answers "" for no record).
            value = self._call("getrange", self._key(key), 0, MAX_RECORD_BYTES) or None
        except redis.ResponseError:  # WRONGTYPE: a set, list or hash planted under our key is no record
            raise KeyError(key) from None
        opened = None if value is None else self._opened(self._key(key), key, value)
        if opened is None:  # missing, or not sealed for this key: no record
            raise KeyError(key)
        return opened  # Beaker stores (and expects back) the session as base64 text

    def __contains__(self, key: str) -> bool:
        return bool(self._call("exists", self._key(key)))

    def has_key(self, key: str) -> bool:
        return key in self

    #: Set by the store for an update of an existing session: never recreate a deleted record.
    only_if_exists = False

    def set_value(self, key: str, value: Any, expiretime: Optional[int] = None) -> None:
        ttl = expiretime or self.ttl
        sealed = self._sealed(self._key(key), key, value)
        stored = self._call("set", self._key(key), sealed, ex=int(ttl) if ttl else None, xx=self.only_if_exists)
        if not stored:
            raise RecordGone(self.namespace)

    def index_add(self, member: str) -> None:
        """Add a session id to this index record (a Redis set; atomic, refreshed TTL)."""
        sealed = self._sealed(self._key("index"), "index", member)
        for _attempt in range(2):
            try:
                # A script, not MULTI: as atomic, and a Cluster client follows its MOVED/ASK during a resharding.
                self._call("eval", _INDEX_ADD_SCRIPT, 1, self._key("index"), sealed, int(self.ttl or 0) or 86400)
                return
            except redis.ResponseError:  # something else was planted under our key: replace it
                self._call("delete", self._key("index"))
        raise StoreUnavailable("redis: the index record cannot be written")

    def index_members(self) -> list[str]:
        """The session ids of this index record (read only: a timed-out call changes nothing)."""
        try:
            members = self._call("smembers", self._key("index"))
        except redis.ResponseError:  # not a set: nothing we wrote
            return []
        return sorted(self._open_members(self._key("index"), list(members)))

    def index_remove(self, members: list[str]) -> None:
        """Remove session ids (already deleted) from this index record."""
        if members:
            self._call("srem", self._key("index"), *(self._sealed(self._key("index"), "index", m) for m in members))

    def __setitem__(self, key: str, value: Any) -> None:
        self.set_value(key, value)

    def __delitem__(self, key: str) -> None:
        self._call("delete", self._key(key))

    def do_remove(self) -> None:
        self._call("delete", self._key("session"))

    def keys(self) -> list[str]:
        return ["session"] if "session" in self else []


_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisBackend(ServerRecords):
    """Sessions, token and index records in Redis (:class:`JsonRedisNamespace`); a lock shared by every host."""

    namespace_class = JsonRedisNamespace
    beaker_type = "ext:redis"

    @classmethod
    def validate(cls, config: SSOConfig) -> None:
        validate_url(config)

    def make_client(self, config: SSOConfig) -> Any:
        return client_for(config)

    def namespace_args(self) -> dict[str, Any]:
        return {**super().namespace_args(), "client": self.client}

    def acquire(self, name: str, ttl: float) -> Optional[str]:
        token = secrets.token_hex(16)
        with store_errors():  # (SET NX PX never answers WRONGTYPE: it overwrites nothing)
            taken = self.client.set(lock_key(name), token, nx=True, px=max(1, int(ttl * 1000)))
        return token if taken else None

    def release(self, name: str, handle: Any) -> None:
        # EVAL, not EVALSHA: nothing to reload on a new master after a failover.  A failure leaves the
        # lock to expire by itself.
        with contextlib.suppress(StoreUnavailable, redis.ResponseError), store_errors():
            self.client.eval(_RELEASE_SCRIPT, 1, lock_key(name), handle)

    def probe(self) -> Iterator[Finding]:
        """The TLS files, then Redis answers PING; where Sentinel says the master is, how many masters a cluster has.

        The URL's passwords are masked in every message.
        """
        config = self.config
        target = parse(config.session_url)
        where = redact_url(config.session_url)
        yield from tls_findings(config)
        try:
            self.client.ping()
            found = topology(target, self.client)
        except Exception as exc:  # any client error is the finding; the URL's password is not in it
            yield "FAIL", (f"redis at {where} does not answer PING: {type(exc).__name__}: {one_line(str(exc))}"
                           f"{failure_hint(exc)}")
            return
        yield "OK", (f"redis at {where} answers PING{found} "
                     f"(session_store_timeout {config.session_store_timeout:g} s)")
