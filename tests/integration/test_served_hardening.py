"""Issue 13 items 2, 3 and 14 over a real gunicorn, which hands the application what a client sent.

The application is ``examples/gunicorn_env`` (configured by ``SSO_*`` variables) under
``gunicorn --workers 1 --threads 2`` on a loopback port, with the ``cookie`` session store.
A signed-in user is made in this process by a middleware with the very same settings
(and the fake provider), whose session cookie the gunicorn worker then accepts: no
provider is needed at request time.  Requests are written byte for byte on a socket
(``http.client`` and raw ``socket``) so that no client library normalizes the path.

What is proven:

* item 2: with ``serve_failure_page=false``, ``/admin/%2e%2e/auth/failure`` (which gunicorn
  decodes to ``/admin/../auth/failure`` in ``PATH_INFO``) is still guarded by
  ``protected_paths`` and ``access_rules``; the exact failure path stays open;
* item 14: ``protected_paths = /caf%C3%A9 /thé`` guard ``/caf%C3%A9/menu`` and ``/th%C3%A9``;
* item 3: a 64 MiB POST (announced by ``Content-Length``, or chunked) to
  ``/auth/backchannel-logout`` and ``/auth/login`` is answered 413 before a single byte of
  the body is sent, and sending the whole 64 MiB anyway leaves the worker's peak memory
  (``VmHWM``) where it was.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import webtest

from sso_middleware import SSOMiddleware

from ..conftest import SESSION_SECRET, legacy_app
from ..fakes import CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider
from ..servers import Service, free_port, gunicorn_service

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "gunicorn_env"
CONNECTION = "Username-Password-Authentication"
MIB_64 = 64 * 1024 * 1024
#: The most a refused request may take to be answered (it must not wait for the body).
ANSWER_WITHIN = 5.0
#: How much the worker's peak memory may grow while a refused 64 MiB body is sent at it.
PEAK_GROWTH_LIMIT_KIB = 16 * 1024
JSON = {"Accept": "application/json"}


@dataclass
class Served:
    port: int
    service: Service
    settings: dict[str, Any]

    @property
    def worker(self) -> int:
        (pid,) = self.service.children()
        return pid


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("served")
    port = free_port()
    settings: dict[str, Any] = {
        "issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "base_url": f"http://127.0.0.1:{port}", "session_secret": SESSION_SECRET, "allow_insecure_http": True,
        "session_type": "cookie", "serve_failure_page": False,
        "protected_paths": ["/admin", "/caf%C3%A9", "/thé"],
        "access_rules": "/staff claim roles includes admin",
    }
    env = {key: value for key, value in os.environ.items() if not key.startswith("SSO_")}
    for name, value in settings.items():
        text = " ".join(value) if isinstance(value, list) else str(value).lower() if isinstance(value, bool) else value
        env["SSO_" + name.upper()] = str(text)
    service = gunicorn_service("gunicorn (hardening)", port, tmp / "gunicorn.log", "app:app", APP_DIR, env,
                               workers=1, threads=2)
    service.start()
    try:
        yield Served(port, service, settings)
    finally:
        service.stop()


@pytest.fixture(scope="module")
def staff_cookie(served: Served) -> str:
    """The session cookie (``name=value``) of alice, signed in with the role ``user`` (not ``admin``)."""
    provider = FakeProvider()
    provider.users["alice"].update(roles=["user"])
    middleware = SSOMiddleware(legacy_app, **served.settings, http_transport=provider.transport())
    browser = webtest.TestApp(middleware, extra_environ={"HTTP_HOST": f"127.0.0.1:{served.port}"})
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/"})
    response = browser.get(provider.authorize(response.location))
    assert response.status_int == 303 and "/auth/failure" not in response.location, response.location
    name = middleware.store.cookie_name
    return f"{name}={browser.cookies[name]}"


def get(served: Served, path: str, headers: dict[str, str]) -> int:
    """GET ``path`` exactly as written (http.client sends it verbatim); the status."""
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=ANSWER_WITHIN)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


# -- item 2 ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/%2e%2e/auth/failure", "/admin/../auth/failure", "/admin/%2E%2E/auth/failure"])
def test_a_path_resolving_to_the_apps_failure_page_stays_guarded(served: Served, path: str) -> None:
    assert get(served, path, JSON) == 401
    assert get(served, path.replace("/admin/", "/staff/"), JSON) == 401


@pytest.mark.parametrize("path", ["/staff/%2e%2e/auth/failure", "/staff/../auth/failure"])
def test_a_path_resolving_to_the_apps_failure_page_stays_ruled(served: Served, staff_cookie: str, path: str) -> None:
    signed_in = {**JSON, "Cookie": staff_cookie}
    assert get(served, "/staff/x", signed_in) == 403  # the rule holds for this user
    assert get(served, path, signed_in) == 403


def test_the_apps_own_failure_page_stays_open(served: Served, staff_cookie: str) -> None:
    assert get(served, "/auth/failure?error=invalid_state", JSON) == 200
    assert get(served, "/auth/failure?error=invalid_state", {**JSON, "Cookie": staff_cookie}) == 200


# -- item 14 ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/caf%C3%A9", "/caf%C3%A9/menu", "/caf%c3%a9/menu", "/th%C3%A9", "/th%C3%A9/pot"])
def test_a_percent_encoded_or_non_ascii_prefix_guards_what_gunicorn_decodes(served: Served, path: str) -> None:
    assert get(served, path, JSON) == 401


@pytest.mark.parametrize("path", ["/cafe/menu", "/caf%C3%A9s", "/the"])
def test_other_paths_stay_open(served: Served, path: str) -> None:
    assert get(served, path, JSON) == 200


# -- item 3 ----------------------------------------------------------------------------


def head_of(path: str, port: int, framing: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n").encode()


def read_status(sock: socket.socket) -> int:
    """The status of the answer on ``sock`` (its header block must arrive within ANSWER_WITHIN)."""
    sock.settimeout(ANSWER_WITHIN)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", data)
    assert match, data[:200]
    return int(match.group(1))


def reset_peak(pid: int) -> None:
    """Reset the process's ``VmHWM`` to its current resident size (Linux 4.0+: ``5`` to ``clear_refs``)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_kib(pid: int) -> int:
    """The process's peak resident memory (``VmHWM``) in KiB."""
    match = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    assert match
    return int(match.group(1))


@pytest.mark.parametrize("path", ["/auth/backchannel-logout", "/auth/login"])
@pytest.mark.parametrize("framing", [
    pytest.param(f"Content-Length: {MIB_64}\r\n", id="content-length"),
    pytest.param("Transfer-Encoding: chunked\r\n", id="chunked"),
])
def test_a_64_mib_body_is_refused_before_it_is_sent(served: Served, path: str, framing: str) -> None:
    """Only the header block is sent: an answer proves the worker did not wait to read the body."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(head_of(path, served.port, framing) + (b"8\r\nabcdefgh\r\n" if "chunked" in framing else b""))
        started = time.monotonic()
        assert read_status(sock) == 413
        assert time.monotonic() - started < ANSWER_WITHIN


@pytest.mark.parametrize("path", ["/auth/backchannel-logout", "/auth/login"])
def test_sending_the_whole_64_mib_leaves_the_workers_peak_memory_alone(served: Served, path: str) -> None:
    worker = served.worker
    reset_peak(worker)
    before = peak_kib(worker)
    body = b"logout_token=" + b"a" * (MIB_64 - 13)
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(head_of(path, served.port, f"Content-Length: {len(body)}\r\n"))

        def send_body() -> None:
            with contextlib.suppress(OSError):  # the server answered and closed: fine
                sock.sendall(body)

        sender = threading.Thread(target=send_body)
        sender.start()
        status = read_status(sock)
        with contextlib.suppress(OSError):  # (the server may have closed the connection already)
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(30)
    time.sleep(0.3)  # let the worker finish whatever it does with the rest
    after = peak_kib(worker)
    print(f"\n{path}: worker VmHWM {before} KiB -> {after} KiB (answer {status})")
    assert status == 413
    assert after - before < PEAK_GROWTH_LIMIT_KIB, (before, after)
