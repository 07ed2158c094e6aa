"""``session_url`` to a redis-py client (:mod:`sso_middleware.stores.redis_connect`), and where the keys go.

No server: URLs are parsed and refused when the configuration is built, clients are built
without connecting, errors are classified, and every operation of the Redis back end is
recorded by an in-memory stand-in for the client to check that each stays on one Cluster
slot and that the key layout is the one deployments already have.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
import redis
from redis.cluster import key_slot
from redis.connection import SSLConnection
from redis.sentinel import MasterNotFoundError, SentinelConnectionPool, SentinelManagedSSLConnection

from sso_middleware import SSOConfig, SSOMiddleware
from sso_middleware._sealing import record_prefix
from sso_middleware.errors import ConfigError
from sso_middleware.stores import StoreUnavailable
from sso_middleware.stores import redis as redis_store
from sso_middleware.stores.backend import TOKENS_PREFIX, lock_key
from sso_middleware.stores.index import end_sessions, index_key, remember
from sso_middleware.stores.redis import RedisBackend
from sso_middleware.stores.redis_connect import OnFirstUse, Target, build, is_wrong_type, parse, store_errors

from ..conftest import legacy_app
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER
from ..pki import CertificateAuthority

VALID: dict[str, Any] = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                         "base_url": BASE_URL, "session_secret": "s" * 40, "session_type": "ext:redis"}


def config(**changes: Any) -> SSOConfig:
    return SSOConfig(**{**VALID, **changes})


def refused(setting: str, **changes: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        config(**changes)
    assert caught.value.setting == setting, caught.value
    return caught.value


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the URL forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("redis://127.0.0.1:6379/0", {"mode": "single", "tls": False}, id="redis"),
        pytest.param("rediss://cache.example:6380/2", {"mode": "single", "tls": True}, id="rediss"),
        pytest.param("unix:///run/redis.sock?db=1", {"mode": "single", "tls": False}, id="unix"),
        pytest.param("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster/3",
                     {"mode": "sentinel", "tls": False, "nodes": (("10.0.0.1", 26379), ("10.0.0.2", 26380)),
                      "service": "mymaster", "db": 3}, id="sentinel"),
        pytest.param("redis+sentinel://s1,s2:5000/cache", {"nodes": (("s1", 26379), ("s2", 5000)), "db": 0},
                     id="sentinel-default-port-and-db"),
        pytest.param("rediss+sentinel://:p%40ss@[::1]:26379/mymaster?sentinel_password=sp&sentinel_username=su",
                     {"mode": "sentinel", "tls": True, "nodes": (("::1", 26379),), "password": "p@ss",
                      "username": None, "sentinel_password": "sp", "sentinel_username": "su"},
                     id="sentinel-tls-passwords-ipv6"),
        pytest.param("redis+cluster://10.0.0.1:7000,10.0.0.2:7001",
                     {"mode": "cluster", "tls": False, "nodes": (("10.0.0.1", 7000), ("10.0.0.2", 7001))},
                     id="cluster"),
        pytest.param("rediss+cluster://app:pw@node.example/0",
                     {"mode": "cluster", "tls": True, "nodes": (("node.example", 6379),), "username": "app",
                      "password": "pw"}, id="cluster-tls-user"),
        pytest.param("REDIS+CLUSTER://h:1", {"mode": "cluster"}, id="scheme-case"),
    ],
)
def test_the_forms_of_session_url(url: str, expected: dict[str, Any]) -> None:
    target = parse(url)
    assert {name: getattr(target, name) for name in expected} == expected
    config(session_url=url)  # and the configuration accepts it


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis+sentinel://127.0.0.1:26379", id="sentinel-no-service"),
        pytest.param("redis+sentinel://127.0.0.1:26379/", id="sentinel-empty-service"),
        pytest.param("redis+sentinel://127.0.0.1:26379/my master", id="sentinel-space"),
        pytest.param("redis+sentinel://127.0.0.1:26379/mymaster/zero", id="sentinel-db-not-a-number"),
        pytest.param("redis+sentinel://127.0.0.1:26379/mymaster/0/extra", id="sentinel-extra-path"),
        pytest.param("redis+sentinel://127.0.0.1:26379/mymaster?password=x", id="sentinel-unknown-query"),
        pytest.param("redis+sentinel://127.0.0.1:99999/mymaster", id="port-out-of-range"),
        pytest.param("redis+sentinel://127.0.0.1:port/mymaster", id="port-not-a-number"),
        pytest.param("redis+sentinel://a:1,,b:2/mymaster", id="empty-node"),
        pytest.param("redis+sentinel:///mymaster", id="no-node"),
        pytest.param("redis+sentinel://127.0.0.1:26379/mymaster#x", id="fragment"),
        pytest.param("redis+cluster://127.0.0.1:7000/1", id="cluster-db"),
        pytest.param("redis+cluster://127.0.0.1:7000?read_from_replicas=yes", id="cluster-query"),
        pytest.param("redis+cluster://[::1:7000", id="cluster-broken-ipv6"),
        pytest.param("redis+memcached://127.0.0.1:7000", id="unknown-mode"),
        pytest.param("sentinel://127.0.0.1:26379/mymaster", id="other-scheme"),
    ],
)
def test_a_bad_session_url_is_one_config_error_naming_it(url: str) -> None:
    error = refused("session_url", session_url=url)
    assert "redis" in error.message


@pytest.mark.parametrize("query", ["ssl_cert_reqs=none", "ssl_cert_reqs=optional", "SSL_CERT_REQS=None",
                                   "ssl_check_hostname=false", "ssl_check_hostname=0"])
def test_certificate_checks_cannot_be_turned_off_in_the_url(query: str) -> None:
    """redis-py reads ``ssl_*`` options from the query: none may weaken what TLS verifies."""
    error = refused("session_url", session_url=f"rediss://cache.example:6380/0?{query}")
    assert "session_tls_ca_file" in error.message


def test_tls_options_that_keep_checks_are_still_read_from_the_url() -> None:
    config(session_url="rediss://cache.example:6380/0?ssl_cert_reqs=required&ssl_check_hostname=true")


def test_a_refused_url_is_not_echoed_with_its_passwords() -> None:
    error = refused("session_url", session_url="redis+sentinel://:hunter2-secret@h:1/m?sentinel_password=s3cr3t-pw&x=1")
    assert "hunter2" not in str(error) and "s3cr3t" not in str(error)


def test_the_target_repr_shows_no_password() -> None:
    target = parse("redis+sentinel://:hunter2@h:1/m?sentinel_password=s3cr3t")
    assert "hunter2" not in repr(target) and "s3cr3t" not in repr(target)
    assert target.where == "sentinels h:1 (service m, db 0)"


# -- the TLS settings --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateAuthority, Any]:
    ca = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    return ca, ca.issue("sso client", client=True)


def test_tls_files_are_accepted_with_a_tls_url(pki: tuple[CertificateAuthority, Any]) -> None:
    ca, client = pki
    built = config(session_url="rediss://127.0.0.1:6380/0", session_tls_ca_file=str(ca.cert),
                   session_tls_cert_file=str(client.cert), session_tls_key_file=str(client.key))
    assert built.session_tls_ca_file == str(ca.cert)
    for url in ("rediss+sentinel://127.0.0.1:26379/m", "rediss+cluster://127.0.0.1:7000"):
        config(session_url=url, session_tls_ca_file=str(ca.cert))


def test_a_hashed_ca_folder_is_accepted(pki: tuple[CertificateAuthority, Any], tmp_path: Path) -> None:
    ca, _ = pki
    config(session_url="rediss://127.0.0.1:6380/0", session_tls_ca_file=str(ca.hashed_folder(tmp_path / "cas")))


@pytest.mark.parametrize("setting", ["session_tls_ca_file", "session_tls_cert_file", "session_tls_key_file"])
def test_tls_files_without_a_tls_url_are_refused(pki: tuple[CertificateAuthority, Any], setting: str) -> None:
    """Someone setting a CA file believes the connection is TLS: a plain redis:// URL is a mistake to say."""
    ca, _ = pki
    error = refused(setting, session_url="redis://127.0.0.1:6379/0", **{setting: str(ca.cert)})
    assert "rediss://" in error.message


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        pytest.param({"session_tls_ca_file": "/nonexistent/ca.pem"}, "session_tls_ca_file", id="ca-missing"),
        pytest.param({"session_tls_ca_file": "KEY"}, "session_tls_ca_file", id="ca-is-a-key"),
        pytest.param({"session_tls_cert_file": "CERT"}, "session_tls_key_file", id="cert-without-key"),
        pytest.param({"session_tls_key_file": "KEY"}, "session_tls_cert_file", id="key-without-cert"),
        pytest.param({"session_tls_cert_file": "CERT", "session_tls_key_file": "OTHER_KEY"},
                     "session_tls_key_file", id="key-of-another-certificate"),
        pytest.param({"session_tls_cert_file": "KEY", "session_tls_key_file": "KEY"},
                     "session_tls_cert_file", id="cert-is-a-key"),
    ],
)
def test_bad_tls_files_are_refused_naming_the_setting(pki: tuple[CertificateAuthority, Any], changes: dict[str, str],
                                                      setting: str) -> None:
    ca, client = pki
    other = ca.issue("another client", client=True)
    files = {"CERT": str(client.cert), "KEY": str(client.key), "OTHER_KEY": str(other.key)}
    resolved = {name: files.get(value, value) for name, value in changes.items()}
    refused(setting, session_url="rediss://127.0.0.1:6380/0", **resolved)


# -- building clients: nothing connects, nothing retries ---------------------------------------


def test_a_sentinel_url_builds_a_sentinel_managed_master_client() -> None:
    client = build(parse("redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster/4"), 0.5)
    assert isinstance(client, redis.Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.is_master and pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 4 and pool.connection_kwargs["socket_timeout"] == 0.5
    sentinels = pool.sentinel_manager.sentinels
    assert [sentinel.connection_pool.connection_kwargs["port"] for sentinel in sentinels] == [1, 2]
    # Discovery asks every sentinel within the one timeout.
    assert all(s.connection_pool.connection_kwargs["socket_timeout"] == 0.25 for s in sentinels)


def test_tls_and_passwords_reach_the_sentinels_and_the_master(pki: tuple[CertificateAuthority, Any]) -> None:
    ca, client = pki
    target = parse("rediss+sentinel://:data-pw@127.0.0.1:1/mymaster?sentinel_password=sentinel-pw")
    pool = build(target, 0.5, str(ca.cert), str(client.cert), str(client.key)).connection_pool
    assert pool.connection_class is SentinelManagedSSLConnection
    tls = {"ssl_ca_certs": str(ca.cert), "ssl_certfile": str(client.cert), "ssl_keyfile": str(client.key),
           "ssl_cert_reqs": "required", "ssl_check_hostname": True}
    assert {name: pool.connection_kwargs[name] for name in [*tls, "password"]} == {**tls, "password": "data-pw"}
    (sentinel,) = pool.sentinel_manager.sentinels
    assert sentinel.connection_pool.connection_class is SSLConnection
    assert {name: sentinel.connection_pool.connection_kwargs[name] for name in [*tls, "password"]} == {
        **tls, "password": "sentinel-pw"}


def test_a_cluster_url_builds_nothing_until_first_used() -> None:
    """RedisCluster connects when built: the middleware must start while the cluster is down."""
    client = build(parse(f"redis+cluster://127.0.0.1:{closed_port()}"), 0.5)
    assert isinstance(client, OnFirstUse)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        client.get("key")
    with pytest.raises(StoreUnavailable):  # tried again, not remembered as broken
        client.get("key")
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("url", [
    pytest.param("redis://127.0.0.1:{port}/0", id="redis"),
    pytest.param("redis+sentinel://127.0.0.1:{port},127.0.0.1:{port}/mymaster", id="sentinel"),
    pytest.param("redis+cluster://127.0.0.1:{port}", id="cluster"),
])
def test_a_store_that_is_down_fails_at_once_without_retries(url: str) -> None:
    """redis-py retries up to ten times with back-off by default (seconds per request): here one try, a 503."""
    port = closed_port()
    client = build(parse(url.format(port=port)), 0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable), store_errors():
        client.getrange("key", 0, 10)
    assert time.monotonic() - started < 0.5


def test_the_middleware_starts_while_every_store_kind_is_down(tmp_path: Path) -> None:
    port = closed_port()
    for url in (f"redis+sentinel://127.0.0.1:{port}/mymaster", f"redis+cluster://127.0.0.1:{port}"):
        SSOMiddleware(legacy_app, **VALID, session_url=url)


# -- which errors are outages --------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(redis.ConnectionError("refused"), id="connection"),
        pytest.param(redis.TimeoutError("timed out"), id="timeout"),
        pytest.param(redis.exceptions.ReadOnlyError("You can't write against a read only replica."), id="readonly"),
        pytest.param(MasterNotFoundError("No master found for 'mymaster'"), id="master-not-found"),
        pytest.param(redis.exceptions.ClusterDownError("The cluster is down"), id="clusterdown"),
        pytest.param(redis.exceptions.TryAgainError("Multiple keys request during rehashing"), id="tryagain"),
        pytest.param(redis.exceptions.MasterDownError("Link with MASTER is down"), id="masterdown"),
        pytest.param(redis.exceptions.BusyLoadingError("Redis is loading the dataset"), id="loading"),
        pytest.param(redis.exceptions.SlotNotCoveredError("slot 12 not covered"), id="slot-not-covered"),
        pytest.param(redis.exceptions.RedisClusterException("Redis Cluster cannot be connected"), id="cluster"),
        pytest.param(redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"),
                     id="oom"),
        pytest.param(redis.exceptions.NoPermissionError("this user has no permissions"), id="noperm"),
        pytest.param(redis.ResponseError("ERR unknown command"), id="other-answer"),
    ],
)
def test_an_outage_or_failover_is_store_unavailable_never_no_record(error: Exception) -> None:
    """Read as "no record", a failover would sign users out (the cookie is deleted); it must be a 503."""
    with pytest.raises(StoreUnavailable) as caught, store_errors():
        raise error
    assert str(caught.value) == f"redis: {type(error).__name__}"  # the class only: no key, no value, no URL


@pytest.mark.parametrize(
    "message",
    [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "WRONGTYPE Operation against a key holding the wrong kind of value script: caa306e9, on @user_script:1.",
    ],
)
def test_wrongtype_is_left_to_the_caller(message: str) -> None:
    """Something else planted under our key: the caller reads it as no record (or replaces it)."""
    error = redis.ResponseError(message)
    assert is_wrong_type(error)
    with pytest.raises(redis.ResponseError), store_errors():
        raise error


def test_a_value_mentioning_wrongtype_is_not_taken_for_it() -> None:
    assert not is_wrong_type(redis.ResponseError("Command # 1 (SET k WRONGTYPE) of pipeline caused error: OOM"))
    assert not is_wrong_type(redis.ResponseError())


# -- the key layout: the plain one everywhere, each operation on one slot ------------------------


class RecordingRedis:
    """An in-memory stand-in for a redis-py client that records the keys of each command it is sent.

    It knows only the commands the Redis back end uses today: any other (a pipeline, MGET...)
    fails the test, so a new command (and its keys) has to be added here -- and checked for
    one slot.
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.operations: list[tuple[str, tuple[str, ...]]] = []

    def _record(self, name: str, *keys: str) -> None:
        self.operations.append((name, keys))

    def getrange(self, key: str, start: int, end: int) -> bytes:
        self._record("GETRANGE", key)
        value = self.data.get(key, b"")
        if isinstance(value, set):
            raise redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
        return bytes(value[start:end + 1])

    def set(self, key: str, value: Any, ex: Optional[int] = None, px: Optional[int] = None, nx: bool = False,
            xx: bool = False) -> Optional[bool]:
        self._record("SET", key)
        if (nx and key in self.data) or (xx and key not in self.data):
            return None
        self.data[key] = value.encode() if isinstance(value, str) else value
        return True

    def exists(self, key: str) -> int:
        self._record("EXISTS", key)
        return int(key in self.data)

    def delete(self, *keys: str) -> int:
        self._record("DEL", *keys)
        return sum(self.data.pop(key, None) is not None for key in keys)

    def smembers(self, key: str) -> set[bytes]:
        self._record("SMEMBERS", key)
        return set(self.data.get(key, set()))

    def srem(self, key: str, *members: str) -> int:
        self._record("SREM", key)
        found = self.data.get(key, set())
        gone = {member.encode() for member in members} & found
        found -= gone
        return len(gone)

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        keys, args = keys_and_args[:numkeys], keys_and_args[numkeys:]
        self._record("EVAL", *keys)
        if "redis.call('get', KEYS[1]) == ARGV[1]" in script:  # the compare-and-delete of a lock
            if self.data.get(keys[0]) == str(args[0]).encode():
                del self.data[keys[0]]
                return 1
            return 0
        assert "redis.call('sadd', KEYS[1], ARGV[1])" in script, script  # an index entry, with its TTL
        self.data.setdefault(keys[0], set()).add(args[0].encode())
        return 1

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the Redis back end sent {name!r}: teach RecordingRedis its keys")


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RedisBackend, RecordingRedis]]:
    client = RecordingRedis()
    monkeypatch.setattr(redis_store, "client_for", lambda config: client)
    yield RedisBackend(config(session_url="redis+cluster://127.0.0.1:7000")), client


def exercise(backend: RedisBackend) -> tuple[str, str]:
    """What the middleware does with a store: a session, its tokens, the sid/sub index, a lock, the ends.

    Returns the ids of the two sessions it made.
    """
    session = backend.new_session(None, {}, keep_data=False)
    session["sso_middleware.user"] = {"sub": "alice"}
    assert backend.save_session(session)
    session_id = session.id
    set_cookie = backend.session_cookie(session, created=True)
    assert set_cookie is not None
    reopened = backend.session(set_cookie.split(";")[0])
    assert reopened.id == session_id and reopened["sso_middleware.user"] == {"sub": "alice"}
    reopened["sso_middleware.stamp"] = 1
    assert backend.save_session(reopened, existing=True)
    assert backend.write_record(TOKENS_PREFIX + session_id, '{"refresh_token": "rt"}', 600)
    assert backend.read_record(TOKENS_PREFIX + session_id) == '{"refresh_token": "rt"}'
    remember(backend, "sid-1", "alice", session_id, 600)
    handle = backend.acquire("refresh-lock", 5)
    assert handle is not None and backend.acquire("refresh-lock", 5) is None
    backend.release("refresh-lock", "someone else's handle")
    assert backend.acquire("refresh-lock", 5) is None  # still held: only its holder releases it
    backend.release("refresh-lock", handle)
    assert backend.acquire("refresh-lock", 5) is not None
    assert end_sessions(backend, "sid-1", "alice", companions=(TOKENS_PREFIX,)) == 1
    assert backend.read_record(TOKENS_PREFIX + session_id) is None
    second = backend.new_session(None, {}, keep_data=False)
    second["x"] = 1
    backend.save_session(second)
    backend.delete_session(second)
    return session_id, second.id


def test_every_operation_of_the_redis_store_stays_on_one_cluster_slot(
        recorded: tuple[RedisBackend, RecordingRedis]) -> None:
    backend, client = recorded
    exercise(backend)
    kinds = {name for name, _ in client.operations}
    assert {"GETRANGE", "SET", "SMEMBERS", "SREM", "EVAL", "DEL"} <= kinds  # the whole protocol ran
    for name, keys in client.operations:
        assert keys, name
        assert len({key_slot(key.encode()) for key in keys}) == 1, (name, keys)


def test_the_key_layout_is_the_one_existing_deployments_have(recorded: tuple[RedisBackend, RecordingRedis]) -> None:
    """No hash tags needed (no operation spans two keys): sessions written by a plain Redis stay readable."""
    backend, client = recorded
    first, second = exercise(backend)
    prefix = record_prefix(backend.config)
    keys = {key for _, found in client.operations for key in found}
    assert keys == {
        f"{prefix}:{first}:session", f"{prefix}:{second}:session", f"{prefix}:{TOKENS_PREFIX}{first}:session",
        *(f"{prefix}:{index_key(name)}:index" for name in ("sid:sid-1", "sub:alice", "nosid:alice")),
        lock_key("refresh-lock"),
    }
    assert prefix.startswith("sso_middleware:") and not any("{" in key or "}" in key for key in keys)


def test_the_target_of_a_plain_url_is_handed_to_redis_py_as_is() -> None:
    url = "redis://:pw@127.0.0.1:6379/2?health_check_interval=5"
    assert parse(url) == Target("single", False, url)
    client = build(parse(url), 0.5)
    assert client.connection_pool.connection_kwargs["db"] == 2
    assert client.connection_pool.connection_kwargs["health_check_interval"] == 5
