"""Highly available Redis on loopback for the tests: Sentinel (master, replica, three sentinels), Cluster, TLS.

Every process is a :class:`~tests.servers.Service` (own process group, stopped by PID, also
when the test fails; a missing binary fails the test, never skips it), in memory only,
on free loopback ports, with its files in a temporary folder.  Timeouts are small so a
failover takes seconds: sentinels declare a master down after ``DOWN_AFTER_MS``, cluster
nodes after ``NODE_TIMEOUT_MS``.  Administration (replication offsets, who is master,
slot moves) goes through ``redis-cli`` and plain redis-py clients, never through the code
under test.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import ssl
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import pytest
import redis

from .pki import CertificateAuthority, Issued
from .servers import Service, free_port, redis_service, require_binary

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000
NODE_TIMEOUT_MS = 1000
#: How long a topology change may take before the test fails (a failover takes about 2-4 s here).
SETTLE_WITHIN = 30.0


def _wait_until(condition: Any, what: str, within: float = SETTLE_WITHIN, logs: str = "") -> Any:
    """Poll ``condition()`` until it returns something true; fail the test with ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            found = condition()
            if found:
                return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {within:g} s\n{logs}", pytrace=False)
        time.sleep(0.05)


def admin(port: int, **options: Any) -> redis.Redis:
    """A plain redis-py client for one node (no retries: a dead node fails at once)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2,
                       retry=Retry(NoBackoff(), 0), decode_responses=True, **options)


class Admins:
    """One :func:`admin` client per port, kept for the life of a server group and closed with it.

    (A client made per call and left to the garbage collector may have its TLS socket
    finalized before the connection closes it: a ResourceWarning in some later test.)
    """

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._clients: dict[int, redis.Redis] = {}

    def __call__(self, port: int, **options: Any) -> redis.Redis:
        if port not in self._clients:
            self._clients[port] = admin(port, **{**self.options, **options})
        return self._clients[port]

    def close(self) -> None:
        """Close the clients, then collect what the group's tests left (see :func:`collect_quietly`)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        collect_quietly()


def collect_quietly() -> None:
    """Collect garbage now, ignoring ResourceWarnings: redis-py connections to servers just killed.

    A redis-py connection left in a reference cycle may have its (TLS) socket finalized
    before the connection's own ``__del__`` closes it; collected in some later test, that
    warning would fail an unrelated test.  Here it is the group's own clean-up.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def kill(service: Service) -> None:
    """SIGKILL the process (a crash: no shutdown, no last words to the replicas), then reap it."""
    os.kill(service.pid, signal.SIGKILL)
    service.stop()  # reaps it (and anything left in its process group)


# -- Sentinel ------------------------------------------------------------------------------------


class SentinelGroup:
    """One master, one replica and three sentinels (quorum 2) watching ``SERVICE``.

    With ``ca``: every server, sentinels included, listens with TLS only (a certificate of
    that CA for 127.0.0.1) and replicates over TLS.  With ``password``: the data nodes ask
    for it (and the replica gives it to its master); ``sentinel_password``: so do the
    sentinels, among themselves too.
    """

    def __init__(self, folder: Path, ca: Optional[CertificateAuthority] = None, password: str = "",
                 sentinel_password: str = "") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca, self.password, self.sentinel_password = ca, password, sentinel_password
        self._admins = Admins(**({"ssl": True, "ssl_ca_certs": str(ca.cert)} if ca else {}))
        self.server_cert = ca.issue("redis sentinel group", hosts=("127.0.0.1",)) if ca else None
        master, replica = free_port(), free_port()
        auth = ["--requirepass", password, "--masterauth", password] if password else []
        self.data = {  # (--dir: a replica writes the master's snapshot to disk when it syncs)
            master: self._redis(master, "master", ["--dir", str(folder), *auth]),
            replica: self._redis(replica, "replica",
                                 ["--dir", str(folder), *auth, "--replicaof", "127.0.0.1", str(master)]),
        }
        self.first_master = master
        self.sentinels = [self._sentinel(free_port(), master, index) for index in range(3)]

    def _tls_lines(self) -> list[str]:
        """The TLS configuration of every server of the group (as ``name value`` lines)."""
        if self.server_cert is None or self.ca is None:
            return []
        return [f"tls-cert-file {self.server_cert.cert}", f"tls-key-file {self.server_cert.key}",
                f"tls-ca-cert-file {self.ca.cert}", "tls-auth-clients no", "tls-replication yes"]

    def _redis(self, port: int, name: str, args: list[str]) -> Service:
        if self.ca is None:
            return redis_service(port, self.folder / f"{name}.log", args)
        binary = require_binary("redis-server", "redis-server")
        tls = [part for line in self._tls_lines() for part in (f"--{line.split()[0]}", line.split()[1])]
        argv = [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", *tls, *args]
        return Service(f"redis-server-{name}", argv, port, self.folder / f"{name}.log", self._ready)

    def _sentinel(self, port: int, master: int, index: int) -> Service:
        binary = require_binary("redis-sentinel", "redis-sentinel")
        conf = self.folder / f"sentinel-{index}.conf"  # sentinels rewrite their file: one each
        lines = ["bind 127.0.0.1", "daemonize no", f"dir {self.folder}",
                 *([f"tls-port {port}", "port 0", *self._tls_lines()] if self.ca else [f"port {port}"]),
                 f"sentinel monitor {SERVICE} 127.0.0.1 {master} 2",
                 f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                 f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
                 f"sentinel parallel-syncs {SERVICE} 1"]
        if self.password:
            lines.append(f"sentinel auth-pass {SERVICE} {self.password}")
        if self.sentinel_password:
            lines += [f"requirepass {self.sentinel_password}", f"sentinel sentinel-pass {self.sentinel_password}"]
        conf.write_text("\n".join(lines) + "\n")
        return Service(f"redis-sentinel-{index}", [binary, str(conf)], port, self.folder / f"sentinel-{index}.log",
                       self._ready)

    def _ready(self, service: Service) -> bool:
        return _pong(service.port, ca=str(self.ca.cert)) if self.ca else _pong(service.port)

    def admin(self, port: int) -> redis.Redis:
        """A client of our own for a data node or a sentinel (with the group's TLS and passwords)."""
        sentinel = port in {s.port for s in self.sentinels}
        password = self.sentinel_password if sentinel else self.password
        return self._admins(port, password=password or None)

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        scheme = "rediss+sentinel" if self.ca else "redis+sentinel"
        credentials = f":{self.password}@" if self.password else ""
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"{scheme}://{credentials}{nodes}/{SERVICE}/0{query}"

    def start(self) -> SentinelGroup:
        services = [*self.data.values(), *self.sentinels]
        try:
            for service in services:
                service.launch()
            for service in services:
                service.wait_ready()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        """Until the replica is in sync and every sentinel knows it and both other sentinels (a failover can run)."""
        replica = next(port for port in self.data if port != self.first_master)
        _wait_until(lambda: self.admin(replica).info("replication")["master_link_status"] == "up",
                    "the replica did not sync with the master", logs=self.logs())
        for sentinel in self.sentinels:
            client = self.admin(sentinel.port)
            _wait_until(lambda client=client: len(client.sentinel_slaves(SERVICE)) == 1
                        and len(client.sentinel_sentinels(SERVICE)) == 2,
                        "the sentinels did not discover the replica and each other", logs=self.logs())

    def master_port(self) -> int:
        """The master's port as a majority of the sentinels name it now."""
        named = [int(self.admin(s.port).sentinel_get_master_addr_by_name(SERVICE)[1]) for s in self.sentinels
                 if s.running]
        return max(set(named), key=named.count)

    def replicated(self, within: float = 5.0) -> None:
        """Until the replica has acknowledged every write the master has taken (``WAIT 1``)."""
        acknowledged = self.admin(self.master_port()).execute_command("WAIT", 1, int(within * 1000))
        assert acknowledged == 1, "the replica did not acknowledge the writes"

    def wait_new_master(self, old: int) -> int:
        """Until the sentinels name another master, and it answers as one; its port."""
        def promoted() -> Optional[int]:
            port = self.master_port()
            return port if port != old and self.admin(port).info("replication")["role"] == "master" else None

        found: int = _wait_until(promoted, "the sentinels did not promote the replica", logs=self.logs())
        return found

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.output(1500)}" for s in [*self.data.values(), *self.sentinels])

    def stop(self) -> None:
        self._admins.close()
        for service in [*self.sentinels, *self.data.values()]:
            service.signal_stop()
        for service in [*self.sentinels, *self.data.values()]:
            service.stop()


def _pong(port: int, ca: str = "", client: Optional[Issued] = None) -> bool:
    """True when a Redis-protocol server on ``port`` answers PING (or asks for its password); TLS with ``ca``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
            if not ca:
                raw.sendall(b"PING\r\n")
                return raw.recv(64).startswith((b"+PONG", b"-NOAUTH"))
            context = ssl.create_default_context(cafile=ca)
            if client is not None:
                context.load_cert_chain(client.cert, client.key)
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


# -- Cluster -------------------------------------------------------------------------------------


class Cluster:
    """Six ``redis-server --cluster-enabled yes`` nodes made into three masters with a replica each."""

    def __init__(self, folder: Path, size: int = 6) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.nodes: dict[int, Service] = {}
        self.admin = Admins()
        for _ in range(size):
            port = free_port()
            node_dir = folder / str(port)
            node_dir.mkdir()
            self.nodes[port] = redis_service(port, node_dir / "redis.log", (
                "--cluster-enabled", "yes", "--cluster-port", str(free_port()),  # (else port + 10000)
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(node_dir)))

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in list(self.nodes)[:3])

    def start(self) -> Cluster:
        try:
            for service in self.nodes.values():
                service.launch()
            for service in self.nodes.values():
                service.wait_ready()
            cli = require_binary("redis-cli", "redis-tools")
            created = subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.nodes),
                 "--cluster-replicas", "1", "--cluster-yes"],
                capture_output=True, text=True, timeout=60, check=False)
            assert created.returncode == 0, created.stdout + created.stderr
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def live_ports(self) -> list[int]:
        return [port for port, service in self.nodes.items() if service.running]

    def topology(self) -> list[dict[str, Any]]:
        """``CLUSTER NODES`` as a live node sees it: id, port, role, master id, flags, slot count, per node."""
        port = self.live_ports()[0]
        found = []
        for line in self.admin(port).execute_command("CLUSTER", "NODES").splitlines():
            fields = line.split()
            ranges = []
            for part in fields[8:]:
                if part.startswith("["):
                    continue  # a slot being migrated or imported
                low, _, high = part.partition("-")
                ranges.append((int(low), int(high or low)))
            flags = fields[2].split(",")
            found.append({"id": fields[0], "port": int(fields[1].split("@")[0].rsplit(":", 1)[1]),
                          "master": "master" in flags, "of": fields[3], "failed": "fail" in flags,
                          "ranges": ranges, "slots": sum(high - low + 1 for low, high in ranges)})
        return found

    def master_of(self, slot: int) -> dict[str, Any]:
        """The live master serving ``slot`` now."""
        return next(node for node in self.masters() if any(low <= slot <= high for low, high in node["ranges"]))

    def masters(self) -> list[dict[str, Any]]:
        return [node for node in self.topology() if node["master"] and not node["failed"] and node["slots"]]

    def wait_healthy(self) -> None:
        """Until every live node says ``cluster_state:ok`` and 3 masters serve all 16384 slots, replicas in sync."""
        def healthy() -> bool:
            if any(self.admin(port).cluster("info")["cluster_state"] != "ok" for port in self.live_ports()):
                return False
            masters = self.masters()
            if len(masters) != 3 or sum(node["slots"] for node in masters) != 16384:
                return False
            replicas = [node for node in self.topology() if not node["master"] and not node["failed"]]
            return all(self.admin(node["port"]).info("replication")["master_link_status"] == "up" for node in replicas)

        _wait_until(healthy, "the cluster did not become healthy", logs=self.logs())

    def replicated(self) -> None:
        """Until every master's replica has acknowledged its writes (``WAIT 1`` on each master)."""
        for node in self.masters():
            assert self.admin(node["port"]).execute_command("WAIT", 1, 5000) == 1, f"no replica acked {node['port']}"

    def kill(self, node: dict[str, Any]) -> None:
        """SIGKILL a node (a crash)."""
        kill(self.nodes[node["port"]])

    def wait_failed_over(self, victim: dict[str, Any]) -> None:
        """Until the victim's replica serves its slots (three masters again, all slots served)."""
        def done() -> bool:
            masters = self.masters()
            return (victim["port"] not in [node["port"] for node in masters] and len(masters) == 3
                    and sum(node["slots"] for node in masters) == 16384
                    and all(self.admin(port).cluster("info")["cluster_state"] == "ok" for port in self.live_ports()))

        _wait_until(done, "the cluster did not fail over", logs=self.logs())

    def reshard(self, source: str, target: str, slots: int) -> subprocess.CompletedProcess[str]:
        """``redis-cli --cluster reshard``: move ``slots`` slots (with their keys) from ``source`` to ``target``."""
        cli = require_binary("redis-cli", "redis-tools")
        moved = subprocess.run(
            [cli, "--cluster", "reshard", f"127.0.0.1:{self.live_ports()[0]}", "--cluster-from", source,
             "--cluster-to", target, "--cluster-slots", str(slots), "--cluster-yes"],
            capture_output=True, text=True, timeout=120, check=False)
        assert moved.returncode == 0, moved.stdout[-3000:] + moved.stderr
        return moved

    def logs(self) -> str:
        return "\n".join(f"--- {port} ---\n{s.output(800)}" for port, s in self.nodes.items())

    def stop(self) -> None:
        self.admin.close()
        for service in self.nodes.values():
            service.signal_stop()
        for service in self.nodes.values():
            service.stop()


# -- TLS -----------------------------------------------------------------------------------------


class TlsRedis:
    """``redis-server --port 0 --tls-port P`` with a server certificate from a CA made for the test.

    ``clients_need_certificates``: ``--tls-auth-clients yes``; the CA also issues ``client``.
    """

    def __init__(self, folder: Path, clients_need_certificates: bool = False) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.ca = CertificateAuthority(folder / "pki", name="redis test CA")
        self.server_cert = self.ca.issue("redis server", hosts=("127.0.0.1", "localhost"))
        self.client: Issued = self.ca.issue("sso client", client=True)
        self._admins = Admins(ssl=True, ssl_ca_certs=str(self.ca.cert), ssl_certfile=str(self.client.cert),
                              ssl_keyfile=str(self.client.key))
        self.port = free_port()
        binary = require_binary("redis-server", "redis-server")
        argv = [binary, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", str(folder),
                "--tls-cert-file", str(self.server_cert.cert), "--tls-key-file", str(self.server_cert.key),
                "--tls-ca-cert-file", str(self.ca.cert),
                "--tls-auth-clients", "yes" if clients_need_certificates else "no"]
        self.service = Service("redis-server-tls", argv, self.port, folder / "redis.log",
                               lambda s: _pong(s.port, ca=str(self.ca.cert), client=self.client))

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def admin(self) -> redis.Redis:
        return self._admins(self.port)

    def start(self) -> TlsRedis:
        self.service.start()
        return self

    def stop(self) -> None:
        self._admins.close()
        self.service.stop()
