"""Where sessions live: Beaker's back ends, configured safely for sharing between processes.

``session_type`` selects one Beaker back end:

* ``file`` (default): one machine, any number of processes (file locks).
* ``ext:redis``: ``session_url = redis://host:port/db``; many hosts.
* ``ext:memcached``: ``session_url = host:port;host:port``; many hosts (needs the
  ``python-memcached`` client).
* ``cookie``: the whole session, encrypted and signed, in the cookie itself (about
  4 KB at most); no server-side state.
* ``environ``: an existing Beaker session from an outer ``SessionMiddleware``
  (``environ[session_environ_key]``); that middleware owns the cookie and the store.

Security caveats.  Beaker's own Redis back end pickles what it stores, and
python-memcached unpickles whatever a value's flags ask for: anyone able to
write to a shared cache could then run code in every process.  The namespace
managers here store text, refuse pickled or compressed values, and never
unpickle anything (the file store too: its records are sealed JSON, not
Beaker's pickles).  Every record they write -- session, token and index
records -- is sealed (:mod:`.sealing`: an HMAC bound to the record's kind, its
full key and this application) and verified, size first, before anything
decodes it: a record planted by someone able to write to the store (or copied
from another key, or written by another application sharing the secret) reads
as no record.  Keys live under an application-bound prefix
(:func:`.sealing.record_prefix`).  Server-side records get a TTL a little longer than the idle
timeout.  Removing a record deletes that one key (Beaker's memcached ``remove``
would flush the whole server).  Connection failures become
:class:`StoreUnavailable`, answered 503 by the middleware, and every call is
bounded by ``session_store_timeout``.
"""

from __future__ import annotations

from .beaker import BeakerStore
from .cookie import LazyCookieSession
from .errors import RecordGone, SessionTooLarge, StoreUnavailable
from .file import FileIndex, PrivateFileNamespace, open_locked
from .memcached import MEMCACHED_MAX_RELATIVE_TTL, JsonMemcachedNamespace
from .redis import JsonRedisNamespace

__all__ = [
    "MEMCACHED_MAX_RELATIVE_TTL",
    "BeakerStore",
    "FileIndex",
    "JsonMemcachedNamespace",
    "JsonRedisNamespace",
    "LazyCookieSession",
    "PrivateFileNamespace",
    "RecordGone",
    "SessionTooLarge",
    "StoreUnavailable",
    "open_locked",
]
