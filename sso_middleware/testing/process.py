"""The development provider's ``node`` process: started in its own process group, stopped with it.

A provider's process must never outlive the Python process that started it: the provider
watches its stdin (closed when Python dies), every started :class:`~.devprovider.DevProvider`
is stopped at interpreter exit at the latest (:func:`track`), and stopping signals the whole
process group, so no child of ``node`` lingers either.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Protocol

import requests

from .errors import DevProviderError, DevProviderStartTimeout

__all__ = ["spawn", "terminate", "track", "untrack", "wait_ready"]

_READY_RE = re.compile(r"^devprovider ready issuer=(?P<issuer>\S+) port=(?P<port>\d+)", re.MULTILINE)


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_live: set[_Stoppable] = set()
_live_lock = threading.Lock()


def track(provider: _Stoppable) -> None:
    """Stop ``provider`` at interpreter exit unless it is :func:`untrack`-ed before."""
    with _live_lock:
        _live.add(provider)


def untrack(provider: _Stoppable) -> None:
    """``provider`` was stopped: nothing to do for it at exit."""
    with _live_lock:
        _live.discard(provider)


@atexit.register
def _stop_all() -> None:
    """Safety net: no node process outlives the Python process that started it."""
    with _live_lock:
        providers = list(_live)
    for provider in providers:
        with contextlib.suppress(Exception):
            provider.stop()


def spawn(command: Sequence[str], cwd: Path, stdout_path: Path, stderr_path: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new process group, its output in the two files, its stdin a pipe.

    The ``DEVPROVIDER_*`` variables of this process are not passed on (they configure the
    Python side); ``NODE_ENV`` defaults to ``development``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVPROVIDER_")}
    env.setdefault("NODE_ENV", "development")
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        return subprocess.Popen(  # noqa: S603 - argv built by the caller, no shell
            list(command),
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,
        )


def wait_ready(
    process: subprocess.Popen[bytes],
    stdout_path: Path,
    http: requests.Session,
    startup_timeout: float,
    stderr_text: Callable[[], str],
) -> tuple[str, int, dict[str, Any]]:
    """Wait for the provider's ready line and a discovery answer; its issuer, port and discovery document.

    Raises :class:`DevProviderError` when the process exits first or discovery names another
    issuer, :class:`DevProviderStartTimeout` when it is still not ready after ``startup_timeout``
    seconds (the caller stops it). ``http`` is the session that trusts the provider's TLS.
    """
    deadline = time.monotonic() + startup_timeout
    ready: re.Match[str] | None = None
    last_error = "no ready line yet"
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise DevProviderError(
                f"the devprovider exited early with code {code}; stderr:\n{stderr_text()[-4000:]}"
            )
        if ready is None:
            ready = _READY_RE.search(stdout_path.read_text(errors="replace"))
        if ready is not None:
            issuer, port = ready.group("issuer"), int(ready.group("port"))
            url = issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                answer = http.get(url, timeout=2)
                if answer.status_code == 200:
                    document: dict[str, Any] = answer.json()
                    if document.get("issuer") != issuer:
                        raise DevProviderError(
                            f"discovery says issuer {document.get('issuer')!r}, expected {issuer!r}"
                        )
                    return issuer, port, document
                last_error = f"discovery answered HTTP {answer.status_code}"
            except requests.RequestException as exc:
                last_error = str(exc)
        time.sleep(0.05)
    raise DevProviderStartTimeout(
        f"the devprovider did not become ready within {startup_timeout} s ({last_error}); "
        f"stdout:\n{stdout_path.read_text(errors='replace')[-2000:]}\nstderr:\n{stderr_text()[-4000:]}"
    )


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop ``process`` and its group: close its stdin, SIGTERM, SIGKILL after ``timeout``."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    if process.poll() is None:
        _signal(process, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal(process, getattr(signal, "SIGKILL", signal.SIGTERM))
            process.wait(timeout)
    else:
        # the leader is gone; make sure nothing else of its group lingers
        _signal(process, getattr(signal, "SIGKILL", signal.SIGTERM))


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    if sys.platform != "win32":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
    else:  # pragma: no cover
        with contextlib.suppress(OSError):
            process.send_signal(signum)
