"""How ``session_url`` (and the ``session_tls_*`` settings) becomes a redis-py client: one Redis, Sentinel or Cluster.

The forms of ``session_url`` (``[user]:password@`` optional, percent-encoded):

* ``redis://host:port/db``, ``rediss://host:port/db`` (TLS), ``unix:///path?db=N``: one
  server, read by redis-py's own ``Redis.from_url`` (its query parameters too);
* ``redis+sentinel://host:port[,host:port...]/service_name[/db]``: the master of
  ``service_name`` as the sentinels name it (redis-py's ``Sentinel.master_for``), found
  again after a failover; the user-info is the data nodes' credentials, the sentinels'
  own go in ``?sentinel_username=...&sentinel_password=...``;
* ``redis+cluster://host:port[,host:port...]``: a Redis Cluster (``RedisCluster``; the
  nodes listed are where it learns the others from; database 0 only);
* ``rediss+sentinel://`` and ``rediss+cluster://``: the same over TLS (sentinels too).

TLS verifies the servers against ``session_tls_ca_file`` (else the default trust store),
host names included, and presents ``session_tls_cert_file``/``session_tls_key_file`` when
given.  Every network wait is bounded by ``session_store_timeout`` and nothing is
retried inside a call (redis-py would otherwise retry up to ten times with back-off): a
failure is :class:`~.errors.StoreUnavailable` at once, a 503, and the next request tries
again -- after a failover that request finds the new master (Sentinel) or the new slot
map (Cluster).  :func:`store_errors` is the one place that decides which redis-py error
is an outage; a RedisCluster connects when built, so it is built on first use.

Security caveat: the URL may hold passwords (the user-info, ``sentinel_password``): no
error or finding quotes it (:func:`~sso_middleware._redaction.redact_url`), and a
``ConfigError`` names the setting, never the value.  Without ``session_tls_ca_file`` a
``rediss`` URL trusts the system's CAs; certificate checks are never turned off here.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import parse_qsl, unquote

from .._config.certificates import certificate_validity, check_client_certificate, count_ca_certificates
from ..errors import ConfigError
from .backend import Finding
from .errors import StoreUnavailable

if TYPE_CHECKING:
    from .._config.settings import SSOConfig

try:  # optional back end
    import redis
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.exceptions import RedisClusterException
    from redis.retry import Retry
    from redis.sentinel import Sentinel
except ImportError:  # pragma: no cover - exercised only without the extra
    redis = None  # type: ignore[assignment]

#: The schemes of ``session_url`` this back end reads.
SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")
_TLS_SETTINGS = ("session_tls_ca_file", "session_tls_cert_file", "session_tls_key_file")
_DEFAULT_PORT = {"sentinel": 26379, "cluster": 6379}
_NODE = re.compile(r"\[(?P<ip6>[0-9A-Fa-f:.]+)\](?::(?P<port6>\d{1,5}))?"
                   r"|(?P<host>[A-Za-z0-9._-]+)(?::(?P<port>\d{1,5}))?")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SENTINEL_QUERY = ("sentinel_username", "sentinel_password")
_FORMS = ("must be redis://host:port/db (rediss:// for TLS, unix:///path), "
          "redis+sentinel://host:port[,host:port]/service_name[/db] or redis+cluster://host:port[,host:port] "
          "(rediss+sentinel://, rediss+cluster:// for TLS)")


@dataclass(frozen=True)
class Target:
    """What a ``session_url`` names: one server (``url`` as given), the sentinels of a service, or a cluster."""

    mode: str  # "single" | "sentinel" | "cluster"
    tls: bool
    url: str = field(repr=False)
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: Optional[str] = field(default=None, repr=False)
    password: Optional[str] = field(default=None, repr=False)
    sentinel_username: Optional[str] = field(default=None, repr=False)
    sentinel_password: Optional[str] = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """Where it is, for messages: no credentials."""
        nodes = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in self.nodes)
        if self.mode == "sentinel":
            return f"sentinels {nodes} (service {self.service}, db {self.db})"
        if self.mode == "cluster":
            return f"cluster nodes {nodes}"
        return ""


def parse(url: str) -> Target:
    """The :class:`Target` of a ``session_url``; ``ValueError`` saying what is wrong (never quoting the URL)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError(_FORMS)
    scheme = scheme.lower()
    tls = scheme.startswith("rediss")
    if "+" not in scheme:
        return Target("single", tls, url)
    mode = scheme.partition("+")[2]
    if "#" in rest or any(ord(char) < 0x21 or ord(char) == 0x7F for char in rest):
        raise ValueError("must not hold a fragment, spaces or control characters (percent-encode them)")
    location, _, query = rest.partition("?")
    netloc, _, path = location.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) if colon else None
    nodes = tuple(_node(part, _DEFAULT_PORT[mode]) for part in hosts.split(","))
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    if mode == "cluster":
        if path not in ("", "0"):
            raise ValueError("redis+cluster:// has database 0 only: no path but /0")
        if options:
            raise ValueError("redis+cluster:// takes no query parameters")
        return Target(mode, tls, url, nodes, username=username, password=password)
    service, _, db = path.partition("/")
    if not _NAME.fullmatch(service):
        raise ValueError("redis+sentinel:// needs the service (master) name as its path: "
                         "redis+sentinel://host:port[,host:port]/service_name[/db]")
    if db and not db.isdigit():
        raise ValueError("the database after the service name must be a number")
    unknown = sorted(set(options) - set(_SENTINEL_QUERY))
    if unknown:
        raise ValueError(f"unknown query parameter {unknown[0]!r}: redis+sentinel:// takes only "
                         f"{' and '.join(_SENTINEL_QUERY)}")
    return Target(mode, tls, url, nodes, service, int(db or 0), username, password,
                  options.get("sentinel_username") or None, options.get("sentinel_password") or None)


def _weakens_tls(url: str) -> bool:
    """True when a redis-py URL's query turns certificate or host name verification off."""
    options = {name.lower(): value.lower() for name, value in parse_qsl(url.partition("?")[2])}
    return (options.get("ssl_cert_reqs", "required") not in ("required", "cert_required")
            or options.get("ssl_check_hostname", "true") in ("0", "false", "no", "n", "f", "off"))


def _node(text: str, default_port: int) -> tuple[str, int]:
    match = _NODE.fullmatch(text)
    if not match:
        raise ValueError("lists a node that is not host:port (several are separated by ',')")
    host = match.group("ip6") or match.group("host")
    port = int(match.group("port6") or match.group("port") or default_port)
    if not 0 < port < 65536:
        raise ValueError("lists a port out of range")
    return host, port


def validate(config: SSOConfig) -> None:
    """``session_url`` and the ``session_tls_*`` files, when the configuration is built; one ConfigError each."""
    try:
        target = parse(config.session_url)
    except ValueError as exc:
        raise ConfigError("session_url", f"ext:redis: {exc}") from None
    if target.mode == "single" and _weakens_tls(target.url):
        raise ConfigError("session_url", "ext:redis: certificate checks cannot be turned off "
                                         "(ssl_cert_reqs, ssl_check_hostname); trust your CA with session_tls_ca_file")
    given = [name for name in _TLS_SETTINGS if getattr(config, name)]
    if given and not target.tls:
        raise ConfigError(given[0], "applies to a TLS session_url only (rediss://, rediss+sentinel://, "
                                    "rediss+cluster://)")
    if config.session_tls_ca_file:
        count_ca_certificates(config.session_tls_ca_file, "session_tls_ca_file")
    if bool(config.session_tls_cert_file) != bool(config.session_tls_key_file):
        missing = "session_tls_key_file" if config.session_tls_cert_file else "session_tls_cert_file"
        raise ConfigError(missing, "session_tls_cert_file and session_tls_key_file go together: give both or neither")
    if config.session_tls_cert_file:
        check_client_certificate(config.session_tls_cert_file, config.session_tls_key_file,
                                 "session_tls_cert_file", "session_tls_key_file")


# -- building the client ----------------------------------------------------------------------

_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def client_for(config: SSOConfig) -> Any:
    """The (process-wide, shared) client of a configuration's store; ``ValueError`` for a URL it cannot use.

    Does not connect: the first call does.
    """
    return shared_client(config.session_url, config.session_store_timeout, config.session_tls_ca_file,
                         config.session_tls_cert_file, config.session_tls_key_file)


def shared_client(url: str, timeout: float, ca_file: str = "", cert_file: str = "", key_file: str = "") -> Any:
    """The client of these connection settings, built once per process (clients are thread-safe pools)."""
    if redis is None:
        raise StoreUnavailable("the redis package is not installed (pip install redis)")
    key = (url, timeout, ca_file, cert_file, key_file)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = build(parse(url), timeout, ca_file, cert_file, key_file)
        return _clients[key]


def build(target: Target, timeout: float, ca_file: str = "", cert_file: str = "", key_file: str = "") -> Any:
    """A new client of ``target``: a ``redis.Redis`` (one server, or a Sentinel-managed master), or a cluster."""
    bounded: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if target.mode == "single":  # (rediss:// turns TLS on by itself)
        tls = _tls_options(ca_file, cert_file, key_file) if target.tls else {}
        return redis.Redis.from_url(target.url, retry=_no_retry(), **bounded, **tls)
    tls = {"ssl": True, **_tls_options(ca_file, cert_file, key_file)} if target.tls else {}
    if target.mode == "sentinel":
        # Master discovery asks the sentinels one after the other: all of them within the timeout.
        each = max(0.05, timeout / len(target.nodes))
        sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8
            list(target.nodes),
            sentinel_kwargs={"socket_timeout": each, "socket_connect_timeout": each, "retry": _no_retry(),
                             "username": target.sentinel_username, "password": target.sentinel_password, **tls},
        )
        return sentinel.master_for(  # type: ignore[no-untyped-call,unused-ignore]
            target.service, db=target.db, username=target.username, password=target.password, retry=_no_retry(),
            **bounded, **tls,
        )
    nodes = [ClusterNode(host, port) for host, port in target.nodes]  # type: ignore[no-untyped-call]

    def cluster() -> Any:
        return RedisCluster(startup_nodes=nodes, username=target.username, password=target.password,
                            retry=_no_retry(), **bounded, **tls)

    return OnFirstUse(cluster)


def _no_retry() -> Any:
    return Retry(NoBackoff(), 0)


def _tls_options(ca_file: str, cert_file: str, key_file: str) -> dict[str, Any]:
    """redis-py's TLS arguments: certificates and host names verified, against ``ca_file`` when given."""
    options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    if ca_file:
        options["ssl_ca_path" if os.path.isdir(ca_file) else "ssl_ca_certs"] = ca_file
    if cert_file:
        options.update(ssl_certfile=cert_file, ssl_keyfile=key_file)
    return options


class OnFirstUse:
    """A client built when first used, then shared: ``RedisCluster`` connects (to learn the slots) when built.

    So a cluster that is down when the middleware starts is a 503 per request until it is
    back, not a failed start; a failed build is tried again on the next call.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()

    def built(self) -> Any:
        """The client, built now if it was not yet (StoreUnavailable if it cannot be)."""
        client = self._client
        if client is not None:  # the usual case, without taking the lock
            return client
        with self._lock:
            if self._client is None:
                with store_errors():
                    self._client = self._make()
            return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.built(), name)


# -- errors -------------------------------------------------------------------------------------

def is_wrong_type(exc: BaseException) -> bool:
    """True for Redis's WRONGTYPE answer (something else planted under our key; a script's error keeps it)."""
    return bool(exc.args) and str(exc.args[0]).startswith("WRONGTYPE")


def client_errors() -> tuple[type[Exception], ...]:
    """What redis-py raises: its ``RedisError`` and the cluster's ``RedisClusterException`` (not a RedisError)."""
    return (redis.RedisError, RedisClusterException)


def outage(exc: Exception) -> Optional[StoreUnavailable]:
    """The :class:`StoreUnavailable` (a 503) a redis-py error means; None for WRONGTYPE, the caller's "no record".

    A refused or timed-out connection, no master known to the sentinels, a demoted master
    (READONLY), a cluster that is down or migrating (CLUSTERDOWN, TRYAGAIN, MASTERDOWN), a
    slot nobody serves: all are outages, never "no such session" -- which would sign the
    user out.  The message is the error's class name only (no keys, no values, no URL).
    """
    if isinstance(exc, redis.ResponseError) and is_wrong_type(exc):
        return None
    return StoreUnavailable(f"redis: {type(exc).__name__}")


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """A block whose redis-py errors become :func:`outage` (WRONGTYPE passes through as ``redis.ResponseError``)."""
    try:
        yield
    except client_errors() as exc:
        failure = outage(exc)
        if failure is None:
            raise
        raise failure from None


# -- the doctor ---------------------------------------------------------------------------------


def tls_findings(config: SSOConfig) -> Iterator[Finding]:
    """What the ``session_tls_*`` files hold (checked again: they may have changed since the start)."""
    if not parse(config.session_url).tls:
        return
    if config.session_tls_ca_file:
        count = count_ca_certificates(config.session_tls_ca_file, "session_tls_ca_file")
        yield "OK", f"session_tls_ca_file {config.session_tls_ca_file}: {count} CA certificate(s) trusted for Redis"
    else:
        yield "INFO", "TLS to Redis is verified against the system's CAs (no session_tls_ca_file)"
    if config.session_tls_cert_file:
        cert = check_client_certificate(config.session_tls_cert_file, config.session_tls_key_file,
                                        "session_tls_cert_file", "session_tls_key_file")
        yield certificate_validity(cert, "session_tls_cert_file")


def topology(target: Target, client: Any) -> str:
    """What the doctor adds after "answers PING": the master Sentinel names, or the cluster's size."""
    if target.mode == "sentinel":
        host, port = client.connection_pool.get_master_address()
        return f", master {host}:{port} of service {target.service} found through the sentinels"
    if target.mode == "cluster":
        flags = [set(node["flags"].split(",")) for node in client.cluster_nodes().values()]
        live = [node for node in flags if not node & {"fail", "fail?", "noaddr", "handshake"}]
        masters = sum("master" in node for node in live)
        return f", a cluster of {masters} master(s) and {sum('slave' in node for node in live)} replica(s)"
    return ""


def failure_hint(exc: BaseException) -> str:
    """The setting to look at when a connection failed, from the error's text ('' when nothing fits)."""
    text = str(exc).lower()
    if "certificate verify failed" in text:
        return (" (the server's certificate is not issued by a CA trusted here -- session_tls_ca_file, else the "
                "system's CAs -- or not for this host name)")
    if "violation of protocol" in text or "certificate required" in text or "unknown ca" in text:
        return (" (the server ended the TLS handshake: it may ask for a client certificate -- "
                "session_tls_cert_file and session_tls_key_file -- or not trust the one given)")
    if "wrong version number" in text or "record layer failure" in text:
        return " (TLS to a port that does not speak TLS: redis:// rather than rediss://?)"
    if "connection reset" in text:
        return " (a TLS port answering a plain connection? rediss:// rather than redis://)"
    return ""
