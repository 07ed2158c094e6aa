"""Servers on loopback for the benchmarks: gunicorn, Redis, Apache httpd; and the wrk load generator.

Every server runs in its own process group, is registered with the caller's
``ExitStack`` the moment it starts, and is stopped (SIGTERM, then SIGKILL) when
the stack closes -- also on an error or Ctrl-C.  Every wait is bounded in time.
Only loopback addresses are ever listened on or sent traffic to.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import requests

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
APACHE_MODULES = Path("/usr/lib/apache2/modules")


class BenchError(RuntimeError):
    """A server did not start or answered wrongly: the benchmark cannot go on."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server process (group leader) and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_group(self.process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole process group (gunicorn's workers too), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT)


def _die_with_parent() -> None:
    """In the child before exec: receive SIGTERM if the benchmark process dies (Linux), so no server outlives it."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(stack: contextlib.ExitStack, name: str, argv: list[str], logdir: Path, port: int,
          env: Optional[dict[str, str]] = None, cwd: Optional[Path] = None) -> Server:
    """Start ``argv`` in its own process group; stopped when ``stack`` closes."""
    log = logdir / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(  # noqa: S603 - argv built by this package, no shell
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    server = Server(name, process, log, port)
    stack.callback(server.stop)
    return server


def wait_for_port(server: Server, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise BenchError(f"{server.name} exited with code {code}:\n{server.output()}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((HOST, server.port)) == 0:
                return
        time.sleep(0.05)
    raise BenchError(f"{server.name} did not listen on {server.port} within {timeout} s:\n{server.output()}")


def wait_for_http(server: Server, path: str = "/", timeout: float = START_TIMEOUT) -> None:
    wait_for_port(server, timeout)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            requests.get(server.base_url + path, timeout=2, allow_redirects=False)
            return
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(f"{server.name} did not answer HTTP within {timeout} s ({last}):\n{server.output()}")


# -- gunicorn ---------------------------------------------------------------------------


def gunicorn(stack: contextlib.ExitStack, name: str, target: str, logdir: Path, *, workers: int,
             worker_class: str, threads: int, env: Optional[dict[str, str]] = None,
             repo: Path, port: Optional[int] = None) -> Server:
    """``gunicorn target`` with ``workers`` workers on a (free) loopback port."""
    port = port or free_port()
    argv = [
        sys.executable, "-m", "gunicorn", target,
        "--bind", f"{HOST}:{port}", "--workers", str(workers), "--worker-class", worker_class,
        # gunicorn turns "sync" into "gthread" when threads > 1: pass them for gthread only
        "--threads", str(threads if worker_class == "gthread" else 1), "--log-level", "warning",
        "--backlog", "2048", "--graceful-timeout", "3",
    ]
    merged = {key: value for key, value in os.environ.items() if not key.startswith(("SSO_", "BENCH_"))}
    merged.update(env or {})
    merged["PYTHONPATH"] = str(repo)
    server = spawn(stack, name, argv, logdir, port, env=merged, cwd=repo)
    wait_for_http(server)
    return server


def worker_pids(server: Server) -> list[int]:
    """The pids of a gunicorn master's workers."""
    try:
        children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    except OSError:
        return []
    return [int(pid) for pid in children]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- Redis ------------------------------------------------------------------------------


def redis_server(stack: contextlib.ExitStack, logdir: Path, name: str = "redis") -> Server:
    """A private, non-persistent Redis on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(logdir)]
    server = spawn(stack, name, argv, logdir, port)
    wait_for_port(server)
    return server


# -- Apache httpd + mod_auth_openidc -------------------------------------------------------

APACHE_CONF = """\
ServerRoot "{root}"
ServerName 127.0.0.1
Listen {host}:{port}
PidFile "{root}/httpd.pid"
ErrorLog "{root}/error.log"
LogLevel warn
Mutex file:{root} default
DefaultRuntimeDir "{root}"
User {user}
Group {group}

LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule proxy_module {modules}/mod_proxy.so
LoadModule proxy_http_module {modules}/mod_proxy_http.so
LoadModule auth_openidc_module {modules}/mod_auth_openidc.so

# The same number of processes as gunicorn has workers; threads as the event MPM likes them.
StartServers {processes}
ServerLimit {processes}
MinSpareThreads 25
MaxSpareThreads 75
ThreadsPerChild 32
MaxRequestWorkers {max_workers}
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0

OIDCProviderMetadataURL {issuer_stripped}/.well-known/openid-configuration
OIDCClientID {client_id}
OIDCClientSecret {client_secret}
OIDCRedirectURI http://{host}:{port}/redirect_uri
OIDCCryptoPassphrase {passphrase}
OIDCScope "openid profile email"
OIDCPKCEMethod S256
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCSSLValidateServer Off
OIDCClaimPrefix OIDC-Claim-
OIDCSessionInactivityTimeout 86400
OIDCSessionMaxDuration 604800

<Location />
    AuthType openid-connect
    Require valid-user
</Location>

ProxyPass /redirect_uri !
ProxyPass / http://{host}:{backend_port}/
ProxyPassReverse / http://{host}:{backend_port}/
"""


def apache(stack: contextlib.ExitStack, logdir: Path, *, backend_port: int, issuer: str, client_id: str,
           client_secret: str, passphrase: str, port: int, processes: int) -> Server:
    """Apache httpd (event MPM) with mod_auth_openidc, reverse-proxying to ``backend_port``."""
    binary = shutil.which("apache2") or "/usr/sbin/apache2"
    if not Path(binary).exists() or not (APACHE_MODULES / "mod_auth_openidc.so").exists():
        raise BenchError("apache2 / libapache2-mod-auth-openidc are not installed")
    root = logdir / "apache"
    root.mkdir(parents=True, exist_ok=True)
    user, group = ("www-data", "www-data") if os.getuid() == 0 else (f"#{os.getuid()}", f"#{os.getgid()}")
    if os.getuid() == 0:
        shutil.chown(root, user, group)
    conf = root / "httpd.conf"
    conf.write_text(APACHE_CONF.format(
        root=root, host=HOST, port=port, modules=APACHE_MODULES, processes=processes,
        max_workers=32 * processes, issuer_stripped=issuer.rstrip("/"), client_id=client_id,
        client_secret=client_secret, passphrase=passphrase, backend_port=backend_port, user=user, group=group,
    ))
    argv = [binary, "-d", str(root), "-f", str(conf), "-DFOREGROUND"]
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/bin"), "LANG": "C"}
    server = spawn(stack, "apache", argv, logdir, port, env=env)
    server.extra["error_log"] = root / "error.log"
    wait_for_port(server)
    return server


# -- wrk ----------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests_per_second: float
    latency_ms: dict[str, float]  # "50", "90", "99"
    requests: int
    non_2xx: int
    socket_errors: int
    output: str


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, *, seconds: float, connections: int, threads: int = 1, cookie: str = "",
        script: Optional[Path] = None) -> WrkResult:
    """Run wrk against a loopback ``url`` for ``seconds``; parse its summary."""
    if not url.startswith(f"http://{HOST}:"):
        raise BenchError(f"refusing to load-test a non-loopback address: {url}")
    argv = [shutil.which("wrk") or "/usr/bin/wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, int(seconds))}s",
            "--latency", "--timeout", "5s"]
    if cookie:
        argv += ["-H", f"Cookie: {cookie}"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)  # noqa: S603
    out = result.stdout + result.stderr
    if result.returncode != 0:
        raise BenchError(f"wrk failed ({result.returncode}): {out[-2000:]}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None:
        raise BenchError(f"cannot parse wrk output:\n{out}")
    latency = {}
    for pct in ("50", "90", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if match:
            latency[pct] = float(match.group(1)) * _UNITS[match.group(2)]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        latency_ms=latency,
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        output=out,
    )


WRK_RANDOM_COOKIE = """\
-- One cookie per request, drawn at random from a file of Cookie header values.
local cookies = {{}}
for line in io.lines("{path}") do cookies[#cookies + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/", {{["Cookie"] = cookies[math.random(#cookies)]}})
end
"""


def random_cookie_script(path: Path, cookies: list[str]) -> Path:
    """A wrk script sending one of ``cookies`` (Cookie header values) at random with each request."""
    data = path.with_suffix(".txt")
    data.write_text("\n".join(cookies) + "\n")
    path.write_text(WRK_RANDOM_COOKIE.format(path=data))
    return path
