"""Section 2: throughput under gunicorn (same workers for everyone), loaded by wrk on loopback.

Every contestant is its own gunicorn server with the same worker count, class and
threads; Apache httpd + mod_auth_openidc reverse-proxies to the bare app's server.
Each signs alice in for real against the bundled provider (a browser-like
``requests`` session driving the provider's login form), and wrk then sends only
that session cookie.  Before and after every run the server must answer
``200 hello alice`` (or ``hello anonymous``) to exactly what wrk sends.  Runs go in
passes (forward, then backward order) so slow phases of the shared machine
spread over all contestants.  Besides requests per second, the CPU time the
server's processes used per request is read from ``/proc`` (Apache's and its
backend's together): it depends much less on the load generator sharing the cores.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from . import profiling
from .common import check_served, sign_in_http
from .servers import HOST, Server, apache, free_port, gunicorn, worker_pids, wrk

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Entry:
    key: str
    label: str
    servers: list[Server]  # the servers whose CPU counts (Apache: httpd and its backend)
    url: str
    cookie: str
    expect: str
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    errors: int = 0
    redis_port: Optional[int] = None  # the Redis server this contestant's sessions are in (its CPU is read too)
    redis_cpu_us: list[float] = field(default_factory=list)  # Redis's CPU time per request, per pass

    @property
    def mean_rps(self) -> float:
        """The median over the passes (robust to one pass hit by a busy phase of the machine)."""
        return statistics.median(self.rps) if self.rps else float("nan")

    @property
    def mean_cpu_us(self) -> float:
        return statistics.median(self.cpu_us) if self.cpu_us else float("nan")

    @property
    def redis_cpu_per_request_us(self) -> float:
        return statistics.median(self.redis_cpu_us) if self.redis_cpu_us else float("nan")


@dataclass
class ThroughputResult:
    entries: list[Entry]
    settings: str
    spy: Optional[profiling.SpyProfile] = None  # the file store's workers
    notes: list[str] = field(default_factory=list)
    more_spies: list[profiling.SpyProfile] = field(default_factory=list)  # the cookie and Redis stores' workers

    def by_key(self) -> dict[str, Entry]:
        return {entry.key: entry for entry in self.entries}


def group_cpu_seconds(pgids: list[int]) -> float:
    """utime + stime of every process in these process groups (seconds)."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) in pgids:  # fields[0] is the state; pgrp is the 5th field of stat
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def redis_cpu_seconds(port: int) -> float:
    """Redis's own CPU time so far (``INFO cpu``: system + user), in seconds."""
    import redis

    client = redis.Redis(host=HOST, port=port, socket_timeout=5)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _run_wrk(entry: Entry, ctx: Any, seconds: float, record: bool) -> None:
    options = ctx.options
    pgids = [server.process.pid for server in entry.servers]
    redis0 = redis_cpu_seconds(entry.redis_port) if entry.redis_port else 0.0
    cpu0 = group_cpu_seconds(pgids)
    result = wrk(entry.url, seconds=seconds, connections=options.connections, cookie=entry.cookie)
    cpu1 = group_cpu_seconds(pgids)
    redis1 = redis_cpu_seconds(entry.redis_port) if entry.redis_port else 0.0
    if not record:
        return
    if entry.redis_port:
        entry.redis_cpu_us.append((redis1 - redis0) / max(result.requests, 1) * 1e6)
    entry.errors += result.non_2xx + result.socket_errors
    entry.rps.append(result.requests_per_second)
    entry.p50.append(result.latency_ms.get("50", float("nan")))
    entry.p99.append(result.latency_ms.get("99", float("nan")))
    entry.cpu_us.append((cpu1 - cpu0) / max(result.requests, 1) * 1e6)


def start_servers(ctx: Any, stack: contextlib.ExitStack) -> list[Entry]:
    """Every contestant's server, signed in."""
    options = ctx.options
    provider = ctx.provider
    common = {"workers": options.workers, "worker_class": options.worker_class, "threads": options.threads,
              "repo": ctx.repo}
    logdir = ctx.logdir

    def serve(name: str, target: str, env: Optional[dict[str, str]] = None, port: Optional[int] = None) -> Server:
        return gunicorn(stack, name, target, logdir, env=env, port=port, **common)

    entries: list[Entry] = []
    bare = serve("bare", "bench.apps:make_bare()")
    check_served(bare.base_url + "/", "", "hello anonymous")
    entries.append(Entry("bare", "bare WSGI app", [bare], bare.base_url + "/", "", "hello anonymous"))

    def sso_server(name: str, kind: str, target: str = "bench.apps:make_sso()") -> tuple[Server, str]:
        port = free_port()
        base_url = f"http://{HOST}:{port}"
        settings = ctx.sso_settings(kind, base_url, ctx.register(base_url))
        server = serve(name, target, env=ctx.sso_env(settings), port=port)
        cookie = sign_in_http(provider, base_url + "/auth/login?target_url=/", base_url + "/",
                              settings["cookie_name"])
        return server, cookie

    sso_file, file_cookie = sso_server("sso-file", "file")
    entries.append(Entry("sso_anon", "SSOMiddleware (file), anonymous, no cookie", [sso_file],
                         sso_file.base_url + "/", "", "hello anonymous"))
    entries.append(Entry("sso_file", "SSOMiddleware, file, signed in", [sso_file], sso_file.base_url + "/",
                         file_cookie, "hello alice"))
    sso_redis, redis_cookie = sso_server("sso-redis", "ext:redis")
    entries.append(Entry("sso_redis", "SSOMiddleware, Redis, signed in", [sso_redis], sso_redis.base_url + "/",
                         redis_cookie, "hello alice", redis_port=ctx.redis.port))
    sso_cookie, cookie_cookie = sso_server("sso-cookie", "cookie")
    entries.append(Entry("sso_cookie", "SSOMiddleware, encrypted cookie, signed in", [sso_cookie],
                         sso_cookie.base_url + "/", cookie_cookie, "hello alice"))

    apache_port = free_port()
    apache_base = f"http://{HOST}:{apache_port}"
    client = provider.register_client([apache_base + "/redirect_uri"], post_logout_redirect_uris=[apache_base + "/"])
    httpd = apache(stack, logdir, backend_port=bare.port, issuer=provider.issuer, client_id=client.client_id,
                   client_secret=client.client_secret, passphrase=secrets.token_urlsafe(24), port=apache_port,
                   processes=options.workers)
    apache_cookie = sign_in_http(provider, apache_base + "/", apache_base + "/", "mod_auth_openidc_session")
    entries.append(Entry("apache", "Apache httpd + mod_auth_openidc -> bare app (gunicorn)", [httpd, bare],
                         apache_base + "/", apache_cookie, "hello alice"))

    flask_plain = serve("flask-plain", "bench.apps:make_flask_plain()")
    entries.append(Entry("flask_plain", "Flask app, no session", [flask_plain], flask_plain.base_url + "/", "",
                         "hello anonymous"))
    flask_sso, flask_sso_cookie = sso_server("flask-sso", "file", "bench.apps:make_flask_sso()")
    entries.append(Entry("flask_sso", "Flask app + SSOMiddleware (file), signed in", [flask_sso],
                         flask_sso.base_url + "/", flask_sso_cookie, "hello alice"))
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    client = ctx.register(base_url, "/auth")
    env = {"BENCH_ISSUER": provider.issuer, "BENCH_BASE_URL": base_url, "BENCH_SECRET_KEY": ctx.flask_secret,
           "BENCH_CLIENT_ID": client.client_id, "BENCH_CLIENT_SECRET": client.client_secret}
    flask_authlib = serve("flask-authlib", "bench.apps:make_flask_authlib()", env=env, port=port)
    authlib_cookie = sign_in_http(provider, base_url + "/login", base_url + "/", "session")
    entries.append(Entry("flask_authlib", "Flask + Authlib (signed-cookie session), signed in", [flask_authlib],
                         base_url + "/", authlib_cookie, "hello alice"))
    return entries


def run(ctx: Any) -> ThroughputResult:
    options = ctx.options
    settings = (f"gunicorn {options.workers} workers, worker class {options.worker_class}"
                + (f" with {options.threads} threads" if options.worker_class == "gthread" else "")
                + f"; Apache event MPM with {options.workers} processes; wrk -t1 -c{options.connections}, "
                f"{options.wrk_passes} pass(es) of {options.wrk_seconds:g} s per contestant after "
                f"{options.wrk_warmup:g} s of warm-up (passes alternate forward and backward order; req/s, latency "
                "and CPU are the medians of the passes)")
    with contextlib.ExitStack() as stack:
        entries = start_servers(ctx, stack)
        for index in range(options.wrk_passes):
            order = entries if index % 2 == 0 else list(reversed(entries))
            for entry in order:
                entry.cookie = check_served(entry.url, entry.cookie, entry.expect)  # as a browser would keep it
                if index == 0:
                    _run_wrk(entry, ctx, options.wrk_warmup, record=False)
                _run_wrk(entry, ctx, options.wrk_seconds, record=True)
                entry.cookie = check_served(entry.url, entry.cookie, entry.expect)
        result = ThroughputResult(entries, settings)
        by_key = result.by_key()
        result.spy = spy_on(by_key["sso_file"], ctx)
        if result.spy is None:
            result.notes.append("py-spy could not attach to the gunicorn workers; no worker profile")
        else:
            for key in ("sso_cookie", "sso_redis"):
                found = spy_on(by_key[key], ctx)
                if found is not None:
                    result.more_spies.append(found)
    return result


def spy_on(entry: Entry, ctx: Any) -> Optional[profiling.SpyProfile]:
    """py-spy every worker of one server while wrk loads it; merged collapsed stacks."""
    server = entry.servers[0]
    pids = worker_pids(server)
    if not pids or profiling.pyspy_binary() is None:
        return None
    seconds = ctx.options.profile_seconds
    load = subprocess.Popen(  # noqa: S603 - argv built here
        [shutil.which("wrk") or "/usr/bin/wrk", "-t1", f"-c{ctx.options.connections}", f"-d{int(seconds) + 3}s",
         "-H", f"Cookie: {entry.cookie}", entry.url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        time.sleep(0.5)
        outputs = []
        with contextlib.ExitStack() as spies:
            from concurrent.futures import ThreadPoolExecutor

            pool = spies.enter_context(ThreadPoolExecutor(len(pids)))
            futures = [pool.submit(profiling.pyspy_record, pid, seconds, ctx.logdir / f"pyspy-{pid}.txt")
                       for pid in pids]
            outputs = [future.result() for future in futures]
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            load.wait(seconds + 10)
        if load.poll() is None:
            load.kill()
            load.wait(5)
    found = [path for path in outputs if path is not None]
    if not found:
        return None
    merged = ctx.logdir / "pyspy-merged.txt"
    merged.write_text("".join(path.read_text() for path in found))
    return profiling.summarize_pyspy(entry.label + " (gunicorn workers under wrk)", merged)
