"""Real ``redis-server`` and ``memcached`` processes on free loopback ports, for the store tests.

A missing binary fails the test (never a skip): CI installs both Debian packages.
Every server started here is stopped by its fixture, also when the test fails;
``stop()``/``start()`` in the middle of a test simulate an outage and a recovery
on the same port.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from typing import Optional

import pytest

from .servers import free_port


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if path is None:
        pytest.fail(f"{name} is not installed (apt-get install -y redis-server memcached)", pytrace=False)
    return path


class StoreServer:
    """One redis-server or memcached process; ``url`` is what ``session_url`` takes."""

    def __init__(self, kind: str, port: Optional[int] = None) -> None:
        assert kind in ("redis", "memcached")
        self.kind = kind
        self.port = port or free_port()
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def session_type(self) -> str:
        return "ext:redis" if self.kind == "redis" else "ext:memcached"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0" if self.kind == "redis" else f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.kind == "redis":
            return [_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--daemonize", "no"]
        command = [_binary("memcached"), "-l", "127.0.0.1", "-p", str(self.port), "-U", "0"]
        if os.geteuid() == 0:  # memcached refuses to run as root without -u
            try:
                pwd.getpwnam("memcache")
                command += ["-u", "memcache"]
            except KeyError:
                command += ["-u", "root"]
        return command

    def start(self) -> StoreServer:
        assert self.process is None, "already running"
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                pytest.fail(f"{self.kind} exited at start on port {self.port}", pytrace=False)
            if self._answers():
                return self
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"{self.kind} did not answer on port {self.port}", pytrace=False)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n" if self.kind == "redis" else b"version\r\n")
                reply = conn.recv(64)
        except OSError:
            return False
        return reply.startswith(b"+PONG" if self.kind == "redis" else b"VERSION")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server could not handle SIGTERM
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the server hangs (connections accepted by the kernel, never answered); waits until stopped."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self._wait_for_state(stopped=True)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
        self._wait_for_state(stopped=False)

    def _wait_for_state(self, stopped: bool) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(f"/proc/{self.process.pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
            if (state in ("T", "t")) == stopped:
                return
            time.sleep(0.01)
        pytest.fail(f"{self.kind} did not {'stop' if stopped else 'continue'}", pytrace=False)

    # -- raw access (no python-memcached / Beaker in between) -------------------

    def memcached(self, command: bytes) -> bytes:
        """One raw memcached text-protocol command; the whole reply."""
        assert self.kind == "memcached"
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(command + b"\r\n")
            reply = b""
            # "get" ends with END; the other commands used here answer one line.
            while not (reply.endswith(b"END\r\n") if command.startswith(b"get ") else reply.endswith(b"\r\n")):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply

    def memcached_stats(self) -> dict[str, str]:
        """memcached's ``stats`` (read to the closing END)."""
        assert self.kind == "memcached"
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(b"stats\r\n")
            reply = b""
            while not reply.endswith(b"END\r\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return {parts[1]: parts[2] for parts in (line.split(" ", 2) for line in reply.decode().splitlines())
                if len(parts) == 3 and parts[0] == "STAT"}

    def memcached_get(self, key: str) -> Optional[tuple[int, bytes]]:
        """(flags, raw bytes) of a memcached key, or None."""
        reply = self.memcached(b"get " + key.encode())
        if reply == b"END\r\n":
            return None
        header, _, rest = reply.partition(b"\r\n")
        _value, _key, flags, length = header.split()
        return int(flags), rest[: int(length)]

    def memcached_ttl(self, key: str) -> Optional[int]:
        """Seconds left of a memcached key (meta get), or None when there is no such key; -1: no expiry."""
        reply = self.memcached(b"mg " + key.encode() + b" t")
        if reply.startswith(b"EN"):
            return None
        flags = reply.split(b"\r\n", 1)[0].split()[1:]
        return int(next(flag[1:] for flag in flags if flag.startswith(b"t")))
