"""Real server processes for multi-process tests: redis-server, memcached, tinyproxy and gunicorn.

Every process is started in its own process group (``start_new_session``) and
stopped by signalling the whole group -- SIGTERM (gunicorn: SIGINT, its quick
shutdown), then SIGKILL if anything lingers -- so gunicorn's workers never
outlive a test.  Stopping is idempotent, and an
``atexit`` hook stops whatever a crashed test run left behind.  A missing
binary is a test failure with the command that installs it, never a skip.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import pytest
import requests
from waitress import wasyncore

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

_live: set[Service] = set()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(name: str, package: str) -> str:
    """The path of ``name``; a missing binary fails the test (CI must install it), it never skips it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install -y {package} (.ci/run installs it)", pytrace=False)
    return path


class Service:
    """One server process (and its children) that can be stopped and started again on the same port."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        log: Path,
        ready: Callable[[Service], bool],
        cwd: Optional[Path] = None,
        env: Optional[dict[str, str]] = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.log = log
        self.ready = ready
        self.cwd = cwd
        self.env = env
        self.stop_signal = stop_signal
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self, tail: Optional[int] = 4000) -> str:
        """What the process wrote (stdout and stderr): the last ``tail`` characters, or all of it."""
        try:
            text = self.log.read_text(errors="replace")
            return text[-tail:] if tail else text
        except OSError:
            return ""

    def start(self) -> Service:
        """Start the process and wait until it answers; a failure to start fails the test."""
        return self.launch().wait_ready()

    def launch(self) -> Service:
        """Start the process without waiting (to start several at once); then :meth:`wait_ready`."""
        assert not self.running, f"{self.name} is already running"
        if _listening(self.port):  # else a start "on the same port" could be answered by someone else
            pytest.fail(f"cannot start {self.name}: something already listens on 127.0.0.1:{self.port}", pytrace=False)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        _live.add(self)
        return self

    def wait_ready(self) -> Service:
        """Wait until the launched process answers; if it exits or stays silent, stop it and fail the test."""
        assert self.process is not None, f"{self.name} is not launched"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.stop()
                pytest.fail(f"{self.name} exited with code {code} at start:\n{self.output()}", pytrace=False)
            if self.ready(self):
                return self
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"{self.name} did not answer within {START_TIMEOUT} s:\n{self.output()}", pytrace=False)

    def signal_stop(self) -> None:
        """Ask the whole process group to stop, without waiting (see :func:`stop_all`)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, self.stop_signal)

    def stop(self) -> None:
        """``stop_signal`` to the whole process group, SIGKILL to whatever is left; idempotent."""
        process = self.process
        if process is None:
            return
        self.signal_stop()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):  # workers that outlived their master, or the master itself
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)
        _live.discard(self)

    def children(self) -> set[int]:
        """The pids of the process's direct children (gunicorn: its workers)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return {int(pid) for pid in path.read_text().split()}


def stop_all(services: Iterable[Service]) -> None:
    """Stop several services at once (each takes about a second to shut down)."""
    services = list(services)
    for service in services:
        service.signal_stop()
    for service in services:
        service.stop()


@atexit.register
def _stop_all() -> None:  # pragma: no cover - only when a fixture's own cleanup did not run
    for service in list(_live):
        with contextlib.suppress(Exception):
            service.stop()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _answers(port: int, command: bytes, expected: Union[bytes, tuple[bytes, ...]]) -> bool:
    """True when a line-protocol server on ``port`` answers ``command`` with (one of) ``expected``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(command)
            return sock.recv(64).startswith(expected)
    except OSError:
        return False


def redis_service(port: int, log: Path, extra_args: Sequence[str] = ()) -> Service:
    """``redis-server`` in memory only (no RDB, no AOF) on a loopback port (``extra_args``: e.g. a password)."""
    binary = require_binary("redis-server", "redis-server")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", *extra_args]
    # -NOAUTH: up, and asking for the password it was started with
    return Service("redis-server", argv, port, log, lambda s: _answers(s.port, b"PING\r\n", (b"+PONG", b"-NOAUTH")))


@contextlib.contextmanager
def running_stores(logs: Path) -> Iterator[dict[str, Service]]:
    """A real redis-server and memcached on free loopback ports, by ``session_type`` (memory only)."""
    services = {
        "ext:redis": redis_service(free_port(), logs / "redis.log"),
        "ext:memcached": memcached_service(free_port(), logs / "memcached.log"),
    }
    try:
        for service in services.values():
            service.launch()
        for service in services.values():
            service.wait_ready()
        yield services
    finally:
        stop_all(services.values())


def memcached_service(port: int, log: Path) -> Service:
    """``memcached`` on a loopback port (as the ``memcache`` user when we are root: it refuses root)."""
    binary = require_binary("memcached", "memcached")
    argv = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0"]
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("memcache").pw_name
        except KeyError:
            user = "nobody"
        argv += ["-u", user]
    return Service("memcached", argv, port, log, lambda s: _answers(s.port, b"version\r\n", b"VERSION"))


def tinyproxy_service(
    port: int, folder: Path, connect_ports: Sequence[int], bind: str = "", basic_auth: tuple[str, str] = ("", "")
) -> Service:
    """Debian's ``tinyproxy`` in the foreground on a loopback port, from a config written into ``folder``.

    Only 127.0.0.1 may use it; CONNECT is allowed to ``connect_ports`` only; ``bind`` is the
    source address of its outgoing connections (so a server can accept the proxy alone);
    ``basic_auth`` = (user, password) makes it ask for proxy credentials.  Its log
    (``output()``, level Connect) lists every CONNECT it was asked for.
    """
    binary = require_binary("tinyproxy", "tinyproxy")
    folder.mkdir(parents=True, exist_ok=True)
    # No LogFile: in the foreground it logs to stdout, i.e. the Service's log (opened before it drops root).
    lines = [f"Port {port}", "Listen 127.0.0.1", "Timeout 30", "MaxClients 20", "Allow 127.0.0.1",
             "LogLevel Connect", "DisableViaHeader Yes"]
    if os.geteuid() == 0:
        lines += ["User nobody", "Group nogroup"]
    lines += [f"ConnectPort {connect_port}" for connect_port in connect_ports]
    if bind:
        lines.append(f"Bind {bind}")
    if basic_auth[0]:
        lines.append(f"BasicAuth {basic_auth[0]} {basic_auth[1]}")
    conf = folder / "tinyproxy.conf"
    conf.write_text("\n".join(lines) + "\n")
    argv = [binary, "-d", "-c", str(conf)]
    return Service("tinyproxy", argv, port, folder / "tinyproxy.log", lambda s: _listening(s.port))


def connect_requests(proxy: Service, target_port: int) -> int:
    """How many CONNECTs to 127.0.0.1:``target_port`` the tinyproxy ``proxy`` was asked for (its log)."""
    return proxy.output(tail=None).count(f"CONNECT 127.0.0.1:{target_port} ")


def _gunicorn_has_setting(name: str) -> bool:
    from gunicorn.config import KNOWN_SETTINGS

    return any(setting.name == name for setting in KNOWN_SETTINGS)


def gunicorn_service(
    name: str, port: int, log: Path, app: str, cwd: Path, env: dict[str, str], workers: int = 2, threads: int = 2
) -> Service:
    """``python -m gunicorn`` with ``workers`` processes of ``threads`` threads each, ready when every worker runs."""
    argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", str(threads),
            "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "1"]
    if _gunicorn_has_setting("control_socket_disable"):  # gunicorn 27+: else every master shares ~/.gunicorn/
        argv.append("--no-control-socket")
    argv.append(app)

    def ready(service: Service) -> bool:
        if len(service.children()) < workers:
            return False
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1, allow_redirects=False)
        except requests.RequestException:
            return False
        return True

    # SIGINT: gunicorn's quick shutdown (SIGTERM would wait for idle keep-alive connections to close).
    return Service(name, argv, port, log, ready, cwd=cwd, env=env, stop_signal=signal.SIGINT)


def stop_waitress(server: Any) -> None:
    """Close a waitress server started on a thread of its own, from its own loop thread.

    Closing it from another thread races its ``select`` (EBADF in the server's thread,
    reported by pytest as an error of whichever test runs then).
    """
    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    server.task_dispatcher.shutdown(timeout=5)
