"""Where sessions live: one :class:`SessionBackend` protocol, one module per back end, and a registry.

``session_type`` selects the back end (:mod:`.registry`):

* ``file`` (default, :mod:`.file`): one machine, any number of processes (file locks).
* ``ext:redis`` (:mod:`.redis`): ``session_url = redis://host:port/db``; many hosts.
  Also Redis Sentinel (``redis+sentinel://``), Redis Cluster (``redis+cluster://``) and
  TLS (``rediss...``): :mod:`.redis_connect` builds the client.
* ``ext:memcached`` (:mod:`.memcached`): ``session_url = host:port;host:port``; many
  hosts (needs the ``python-memcached`` client).
* ``postgresql`` (:mod:`.postgresql`): ``session_url = postgresql://user:pw@host/db``;
  many hosts, one table (needs the ``postgresql`` extra: psycopg and psycopg_pool).
* ``cookie`` (:mod:`.cookie`): the whole session, encrypted and signed, in the cookie
  itself (about 4 KB at most); no server-side state.
* ``environ`` (:mod:`.environ`): an existing Beaker session from an outer
  ``SessionMiddleware`` (``environ[session_environ_key]``); that middleware owns the
  cookie and the store.
* ``"mypkg.module:Backend"``, or a class or object given in Python: your own
  (:class:`BeakerBackend` is the class to subclass; see the README).

Each back end owns its records, its sid/sub index records, its lock, the checks of
its settings (``validate``), the doctor's probe and its housekeeping; nobody else
asks which store it is.  Beaker stays the storage layer (:mod:`.beaker`).

Security caveats.  Beaker's own Redis back end pickles what it stores, and
python-memcached unpickles whatever a value's flags ask for: anyone able to write
to a shared cache could then run code in every process.  The back ends here store
text, refuse pickled or compressed values, and never unpickle anything (the file
store too: its records are sealed JSON, not Beaker's pickles).  Every record they
write -- session, token and index records -- is sealed (:mod:`sso_middleware._sealing`: an HMAC
bound to the record's kind, its full key and this application) and verified, size
first, before anything decodes it: a record planted by someone able to write to
the store (or copied from another key, or written by another application sharing
the secret) reads as no record.  Keys live under an application-bound prefix
(:func:`~sso_middleware._sealing.record_prefix`).  Server-side records get a TTL a little longer
than the idle timeout.  Connection failures become :class:`StoreUnavailable`,
answered 503 by the middleware, and every call is bounded by
``session_store_timeout``.
"""

from __future__ import annotations

from .backend import TOKENS_PREFIX, Finding, SessionBackend
from .beaker import BeakerBackend, NamespaceRecords, RecordNamespace
from .cookie import CookieBackend, LazyCookieSession
from .environ import EnvironBackend
from .errors import RecordGone, SessionTooLarge, StoreUnavailable
from .file import FileBackend, prepare_data_dir, sweep_file_store
from .file_records import FileIndex, PrivateFileNamespace, open_locked
from .index import INDEX_PREFIX
from .memcached import MEMCACHED_MAX_RELATIVE_TTL, JsonMemcachedNamespace, MemcachedBackend
from .postgresql import PostgresBackend
from .redis import JsonRedisNamespace, RedisBackend
from .registry import SESSION_TYPES, backend_for
from .text_records import TextRecords

__all__ = [
    "INDEX_PREFIX",
    "MEMCACHED_MAX_RELATIVE_TTL",
    "SESSION_TYPES",
    "TOKENS_PREFIX",
    "BeakerBackend",
    "CookieBackend",
    "EnvironBackend",
    "FileBackend",
    "FileIndex",
    "Finding",
    "JsonMemcachedNamespace",
    "JsonRedisNamespace",
    "LazyCookieSession",
    "MemcachedBackend",
    "NamespaceRecords",
    "PostgresBackend",
    "PrivateFileNamespace",
    "RecordGone",
    "RecordNamespace",
    "RedisBackend",
    "SessionBackend",
    "SessionTooLarge",
    "StoreUnavailable",
    "TextRecords",
    "backend_for",
    "open_locked",
    "prepare_data_dir",
    "sweep_file_store",
]
