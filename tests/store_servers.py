"""Real ``redis-server`` and ``memcached`` processes on free loopback ports, for the store tests.

A missing binary fails the test (never a skip): CI installs both Debian packages.
Every server started here is stopped by its fixture, also when the test fails;
``stop()``/``start()`` in the middle of a test simulate an outage and a recovery
on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Optional

import pytest

from .servers import Service, free_port, memcached_service, redis_service


class StoreServer:
    """One redis-server or memcached process; ``url`` is what ``session_url`` takes.

    The process itself is a :class:`~tests.servers.Service` (the same start, readiness
    and stop as every other server of the tests); this class adds what the store tests
    need on top: the settings to point the middleware at it, a hang (``pause``), and
    raw protocol access that bypasses the clients under test.
    """

    def __init__(self, kind: str, port: Optional[int] = None, redis_args: tuple[str, ...] = ()) -> None:
        assert kind in ("redis", "memcached")
        self.kind = kind
        self.port = port or free_port()
        log = Path(tempfile.mkdtemp(prefix=f"sso-{kind}-")) / f"{kind}.log"
        self.service: Service = (
            redis_service(self.port, log, redis_args) if kind == "redis" else memcached_service(self.port, log)
        )

    @property
    def process(self) -> Optional[object]:
        return self.service.process

    @property
    def session_type(self) -> str:
        return "ext:redis" if self.kind == "redis" else "ext:memcached"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0" if self.kind == "redis" else f"127.0.0.1:{self.port}"

    def start(self) -> StoreServer:
        self.service.start()
        return self

    def stop(self) -> None:
        if self.service.running:
            os.kill(self.service.pid, signal.SIGCONT)  # a paused server could not handle SIGTERM
        self.service.stop()

    def close(self) -> None:
        """The end of a test: stop the server (its log folder stays, for a failure's post-mortem)."""
        self.stop()

    def pause(self) -> None:
        """SIGSTOP: the server hangs (connections accepted by the kernel, never answered); waits until stopped."""
        os.kill(self.service.pid, signal.SIGSTOP)
        self._wait_for_state(stopped=True)

    def resume(self) -> None:
        os.kill(self.service.pid, signal.SIGCONT)
        self._wait_for_state(stopped=False)

    def _wait_for_state(self, stopped: bool) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(f"/proc/{self.service.pid}/stat") as stat:
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
