"""Section 4: growth -- per-request latency and worker memory with many active sessions in Redis.

alice signs in for real (Redis store); her record -- written by the middleware's own
store code, its idle stamp refreshed the same way just before -- is copied under
random session ids with Redis pipelines into one Redis server per size (1,000 and
100,000 sessions), each copy with the store's TTL.  The sizes are then measured side
by side, interleaved, so a busy phase of the machine hits both: in-process latency
over random sessions, and one gunicorn server per size loaded by wrk with a random
session cookie per request (a Lua script), with the workers' resident memory before
and after.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import apps
from .common import Summary, base_environ, call_once, check_served, sign_in_wsgi
from .inprocess import _noop_start_response
from .servers import BenchError, Server, gunicorn, random_cookie_script, redis_server, rss_kib, worker_pids, wrk

COOKIE = "bench_growth"
MAX_COOKIES = 20000


@dataclass
class GrowthStep:
    sessions: int
    fill_seconds: float
    redis_memory_mb: float
    inprocess_us: Summary
    rps: float
    p50_ms: float
    p99_ms: float
    rss_start_mib: float
    rss_end_mib: float
    distinct: int
    errors: int
    rps_min: float = float("nan")
    rps_max: float = float("nan")


@dataclass
class _Size:
    sessions: int
    redis: Server
    middleware: Any = None
    cookies: list[str] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    errors: int = 0
    fill_seconds: float = 0.0
    memory_mb: float = 0.0
    rss_start: float = 0.0
    rss_end: float = 0.0


def _record_key(prefix: str, session_id: str) -> str:
    return f"{prefix}:{session_id}:session"


def run(ctx: Any) -> list[GrowthStep]:
    import redis
    from beaker.session import SignedCookie

    options = ctx.options
    base_url = ctx.inprocess_base_url
    client = ctx.register(base_url)
    rng = random.Random(11)  # noqa: S311 - sampling sessions, not security
    sizes = [_Size(n, redis_server(ctx.stack, ctx.logdir, name=f"redis-growth-{n}")) for n in options.growth_sizes]

    def settings_for(size: _Size) -> dict[str, Any]:
        settings = ctx.sso_settings("ext:redis", base_url, client)
        settings.update(cookie_name=COOKIE, session_url=f"redis://127.0.0.1:{size.redis.port}/0")
        return settings

    # alice signs in once, into the first server; her record is the template for every copy.
    first = apps.make_sso(apps.bare_app, **settings_for(sizes[0]))
    cookie = sign_in_wsgi(first, ctx.provider, "/auth/login?target_url=/", COOKIE, base_url)
    alice_id = cookie.split("=", 1)[1][40:]
    store = first.store.backend  # type: ignore[attr-defined]
    signer = SignedCookie(store.options["secret"])  # the application-bound key that signs session ids
    prefix, seal = store.options["prefix"], store.seal
    session = store.session(cookie)
    session["last_seen"] = time.time()
    store.save_session(session)
    source = redis.Redis.from_url(f"redis://127.0.0.1:{sizes[0].redis.port}/0")
    sealed = source.get(_record_key(prefix, alice_id))
    source.close()
    # Records are sealed for their own key: each copy is sealed again for the id it is stored under.
    record = None if sealed is None else seal.open("session", _record_key(prefix, alice_id), sealed)
    if record is None:
        raise BenchError("alice's session record is not in Redis")
    for size in sizes:
        db = redis.Redis.from_url(f"redis://127.0.0.1:{size.redis.port}/0")
        ids = [alice_id] + [uuid.uuid4().hex for _ in range(size.sessions - 1)]
        t0 = time.perf_counter()
        pipe = db.pipeline(transaction=False)
        for index, session_id in enumerate(ids):
            key = _record_key(prefix, session_id)
            pipe.set(key, seal.seal("session", key, record), ex=store.ttl)
            if index % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        size.fill_seconds = time.perf_counter() - t0
        size.memory_mb = float(db.info("memory")["used_memory"]) / 2**20
        db.close()
        chosen = rng.sample(ids, min(len(ids), MAX_COOKIES))
        size.cookies = [f"{COOKIE}={signer.value_encode(session_id)[1]}" for session_id in chosen]
        size.middleware = apps.make_sso(apps.bare_app, **settings_for(size))
        for value in rng.sample(size.cookies, min(20, len(size.cookies))):
            status, body = call_once(size.middleware, base_environ(value))
            if body != b"hello alice":
                raise BenchError(f"a copied session is not signed in: {status} {body!r}")

    _inprocess(sizes, rng, 3000 if not options.quick else 1000)
    _served(ctx, sizes, settings_for)
    return [
        GrowthStep(size.sessions, size.fill_seconds, size.memory_mb, Summary.of(size.samples),
                   _median(size.rps), _median(size.p50), _median(size.p99), size.rss_start, size.rss_end,
                   len(size.cookies), size.errors, min(size.rps, default=float("nan")),
                   max(size.rps, default=float("nan")))
        for size in sizes
    ]


def _median(values: list[float]) -> float:
    return Summary.of(values).median if values else float("nan")


def _inprocess(sizes: list[_Size], rng: random.Random, requests: int) -> None:
    """Interleaved batches: each size gets ``requests`` requests over its random sessions."""
    templates = {size.sessions: [base_environ(value) for value in size.cookies] for size in sizes}
    for size in sizes:
        for template in templates[size.sessions][:200]:
            _call(size.middleware, template.copy())
    pc = time.perf_counter_ns
    batch = 100
    for _ in range(max(1, requests // batch)):
        for size in sizes:
            pool = templates[size.sessions]
            for _ in range(batch):
                environ = rng.choice(pool).copy()
                t0 = pc()
                _call(size.middleware, environ)
                size.samples.append((pc() - t0) / 1000.0)


def _call(app: Any, environ: dict[str, Any]) -> None:
    result = app(environ, _noop_start_response)
    for _chunk in result:
        pass
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _served(ctx: Any, sizes: list[_Size], settings_for: Any) -> None:
    """A gunicorn server per size, wrk passes alternating between them."""
    options = ctx.options
    with contextlib.ExitStack() as stack:
        servers = []
        for size in sizes:
            server = gunicorn(stack, f"growth-{size.sessions}", "bench.apps:make_sso()", ctx.logdir,
                              workers=options.workers, worker_class=options.worker_class, threads=options.threads,
                              env=ctx.sso_env(settings_for(size)), repo=ctx.repo)
            pids = worker_pids(server)
            size.rss_start = sum(rss_kib(pid) for pid in pids) / 1024 / max(len(pids), 1)
            script = random_cookie_script(ctx.logdir / f"growth-{size.sessions}.lua", size.cookies)
            wrk(server.base_url + "/", seconds=options.wrk_warmup, connections=options.connections, script=script)
            servers.append((size, server, pids, script))
        for index in range(options.wrk_passes):
            order = servers if index % 2 == 0 else list(reversed(servers))
            for size, server, _pids, script in order:
                result = wrk(server.base_url + "/", seconds=options.wrk_seconds, connections=options.connections,
                             script=script)
                size.rps.append(result.requests_per_second)
                size.p50.append(result.latency_ms.get("50", float("nan")))
                size.p99.append(result.latency_ms.get("99", float("nan")))
                size.errors += result.non_2xx + result.socket_errors
        for size, server, pids, _script in servers:
            size.rss_end = sum(rss_kib(pid) for pid in pids) / 1024 / max(len(pids), 1)
            for value in size.cookies[:5]:
                check_served(server.base_url + "/", value, "hello alice")
