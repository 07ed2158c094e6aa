"""Section 4: growth -- per-request latency and worker memory with many active sessions in Redis.

alice signs in for real (Redis store); her record -- written by the middleware's own
store code, its idle stamp refreshed the same way just before -- is copied under
random session ids into one Redis server per size (1,000 and 1,000,000 sessions),
each copy sealed for its own key, with the store's TTL and, like a real sign-in, its
two back-channel logout index entries (a set for its provider ``sid`` and one for its
user's ``sub``, each copy its own).  The copies are streamed to ``redis-cli --pipe``
(RESP built here, key names taken from the store's own namespace manager).  The sizes
are then measured side by side, interleaved, so a busy phase of the machine hits both:
in-process latency over random sessions, and one gunicorn server per size loaded by wrk
with a random session cookie per request (a Lua script), with the workers' resident
memory before and after, and Redis's own CPU time per request (``INFO cpu``).  The sampled
sessions are stamped afresh just before (and while) they are measured, so that both sizes
time reads: a million copies take longer to write than the idle stamp's minute.  Redis's
``used_memory`` before and after the copies gives the memory a session takes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import shutil
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from sso_middleware.stores.index import index_key, session_keys

from . import apps
from .common import Summary, base_environ, call_once, check_served, sign_in_wsgi
from .inprocess import _noop_start_response
from .servers import BenchError, Server, gunicorn, random_cookie_script, redis_server, rss_kib, worker_pids, wrk

COOKIE = "bench_growth"
MAX_COOKIES = 20000
#: Sessions per chunk written to ``redis-cli --pipe``.
CHUNK = 20000
#: Stands for a record id in the key names asked of the store's namespace manager.
PLACEHOLDER = "RECORDIDPLACEHOLDER"


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
    bytes_per_session: float = float("nan")  # Redis used_memory added per copied session (record + index entries)
    redis_cpu_us: float = float("nan")  # Redis's CPU time per served request (median of the passes)
    record_bytes: int = 0  # one sealed session record as stored
    index_member_bytes: int = 0  # one sealed index member as stored
    inprocess_cpu_us: float = float("nan")  # this thread's CPU per in-process request (median of the batches)


@dataclass
class _Size:
    sessions: int
    redis: Server
    middleware: Any = None
    cookies: list[str] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    chosen: list[str] = field(default_factory=list)  # the session ids the cookies name
    cpu: list[float] = field(default_factory=list)  # thread CPU µs per request, one per batch
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    errors: int = 0
    fill_seconds: float = 0.0
    memory_mb: float = 0.0
    bytes_per_session: float = float("nan")
    redis_cpu: list[float] = field(default_factory=list)
    rss_start: float = 0.0
    rss_end: float = 0.0


def _resp(*parts: bytes) -> bytes:
    """One Redis command in the protocol (RESP), as ``redis-cli --pipe`` reads it."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)


def _namer(store: Any) -> Callable[[str, str], str]:
    """``name(record_id, part)``: a record's key in Redis, as the store's own namespace manager names it."""
    template = store.namespace(PLACEHOLDER)._key("\0")
    return lambda record_id, part: template.replace(PLACEHOLDER, record_id).replace("\0", part)


def _copies(ids: list[str], record: str, store: Any, index_ttl: int, rng: random.Random) -> Iterator[bytes]:
    """RESP for each id: alice's record sealed for the id's key, and its sid and sub index entries."""
    name, seal, ttl = _namer(store), store.seal, str(store.ttl).encode()
    index_ttl_text = str(index_ttl).encode()
    chunk: list[bytes] = []
    for number, session_id in enumerate(ids):
        key = name(session_id, "session")
        chunk.append(_resp(b"SET", key.encode(), seal.seal("session", key, record).encode(), b"EX", ttl))
        for logout_key in session_keys(f"{rng.getrandbits(64):016x}", f"user-{number}"):
            index = name(index_key(logout_key), "index")
            chunk.append(_resp(b"SADD", index.encode(), seal.seal("index", index, session_id).encode()))
            chunk.append(_resp(b"EXPIRE", index.encode(), index_ttl_text))
        if len(chunk) >= CHUNK * 5:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


def _pipe(port: int, payloads: Iterator[bytes]) -> None:
    """Stream commands to ``redis-cli --pipe``; BenchError unless Redis answered every one without an error."""
    binary = shutil.which("redis-cli")
    if binary is None:
        raise BenchError("redis-cli is not installed (apt-get install -y redis-tools)")
    output: list[bytes] = []
    with subprocess.Popen([binary, "-h", "127.0.0.1", "-p", str(port), "--pipe"],  # noqa: S603 - argv built here
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as pipe:
        assert pipe.stdin is not None and pipe.stdout is not None
        reader = threading.Thread(target=lambda: output.append(pipe.stdout.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        try:
            for payload in payloads:
                pipe.stdin.write(payload)
        finally:
            pipe.stdin.close()
        pipe.wait(600)
        reader.join(60)
    text = b"".join(output).decode(errors="replace")
    if pipe.returncode != 0 or "errors: 0," not in text:
        raise BenchError(f"redis-cli --pipe failed: {text[-500:]}")


def _redis_cpu_seconds(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


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
    session = store.session(cookie)
    session["last_seen"] = time.time()
    store.save_session(session)
    record = store.read_record(alice_id, kind="session")  # its text, its seal verified
    if record is None:
        raise BenchError("alice's session record is not in Redis")
    name = _namer(store)
    source = redis.Redis.from_url(f"redis://127.0.0.1:{sizes[0].redis.port}/0")
    record_bytes = len(source.get(name(alice_id, "session")) or b"")
    index_member = store.seal.seal("index", name(index_key("sub:alice"), "index"), alice_id)
    source.close()
    index_ttl = int(first.store.record_ttl)  # type: ignore[attr-defined]
    for size in sizes:
        db = redis.Redis.from_url(f"redis://127.0.0.1:{size.redis.port}/0")
        # The first server holds alice's own sign-in already; every other one gets her record as a copy.
        ids = ([] if size is sizes[0] else [alice_id]) + [f"{rng.getrandbits(128):032x}" for _ in
                                                          range(size.sessions - 1)]
        keys_before, memory_before = db.dbsize(), float(db.info("memory")["used_memory"])
        t0 = time.perf_counter()
        _pipe(size.redis.port, _copies(ids, record, store, index_ttl, rng))
        size.fill_seconds = time.perf_counter() - t0
        if db.dbsize() != keys_before + 3 * len(ids):
            raise BenchError(f"{size.sessions:,} sessions: Redis holds {db.dbsize():,} keys, not "
                             f"{keys_before + 3 * len(ids):,}")
        memory = float(db.info("memory")["used_memory"])
        size.memory_mb = memory / 2**20
        size.bytes_per_session = (memory - memory_before) / max(len(ids), 1)
        db.close()
        ids = ids if alice_id in ids else [alice_id, *ids]
        size.chosen = rng.sample(ids, min(len(ids), MAX_COOKIES))
        size.cookies = [f"{COOKIE}={signer.value_encode(session_id)[1]}" for session_id in size.chosen]
        size.middleware = apps.make_sso(apps.bare_app, **settings_for(size))
        for value in rng.sample(size.cookies, min(20, len(size.cookies))):
            status, body = call_once(size.middleware, base_environ(value))
            if body != b"hello alice":
                raise BenchError(f"a copied session is not signed in: {status} {body!r}")

    restamp = _Restamp(sizes, record, store)
    restamp()
    _inprocess(sizes, rng, 3000 if not options.quick else 1000)
    _served(ctx, sizes, settings_for, restamp)
    return [
        GrowthStep(size.sessions, size.fill_seconds, size.memory_mb, Summary.of(size.samples),
                   _median(size.rps), _median(size.p50), _median(size.p99), size.rss_start, size.rss_end,
                   len(size.cookies), size.errors, min(size.rps, default=float("nan")),
                   max(size.rps, default=float("nan")), size.bytes_per_session, _median(size.redis_cpu),
                   record_bytes, len(index_member), _median(size.cpu))
        for size in sizes
    ]


def _median(values: list[float]) -> float:
    return Summary.of(values).median if values else float("nan")


class _Restamp:
    """Rewrites the sessions the cookies name with a fresh idle stamp, so the measurements read and never write.

    Filling a million sessions takes longer than the stamp interval (a minute): afterwards every
    first request to a copy would write its idle stamp, and the large size would time writes where
    the small one times reads.  A browser's session is stamped about once a minute whatever the
    number of sessions, so both sizes are measured reading.  Called again when half the interval passed.
    """

    def __init__(self, sizes: list[_Size], record: str, store: Any) -> None:
        self.sizes, self.store, self.done = sizes, store, 0.0
        self.data = json.loads(zlib.decompress(base64.b64decode(record)))  # Beaker's text: base64 of zlib of JSON

    def __call__(self, force: bool = True) -> None:
        if not force and time.monotonic() - self.done < 30:
            return
        self.data["last_seen"] = time.time()
        text = base64.b64encode(zlib.compress(json.dumps(self.data).encode())).decode()
        name, seal, ttl = _namer(self.store), self.store.seal, str(self.store.ttl).encode()
        for size in self.sizes:
            _pipe(size.redis.port, iter([b"".join(
                _resp(b"SET", key.encode(), seal.seal("session", key, text).encode(), b"EX", ttl)
                for key in (name(session_id, "session") for session_id in size.chosen))]))
        self.done = time.monotonic()


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
            cpu0 = time.thread_time_ns()
            for _ in range(batch):
                environ = rng.choice(pool).copy()
                t0 = pc()
                _call(size.middleware, environ)
                size.samples.append((pc() - t0) / 1000.0)
            size.cpu.append((time.thread_time_ns() - cpu0) / 1000.0 / batch)


def _call(app: Any, environ: dict[str, Any]) -> None:
    result = app(environ, _noop_start_response)
    for _chunk in result:
        pass
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _served(ctx: Any, sizes: list[_Size], settings_for: Any, restamp: _Restamp) -> None:
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
        import redis

        monitors = {size.sessions: redis.Redis(port=size.redis.port) for size in sizes}
        stack.callback(lambda: [monitor.close() for monitor in monitors.values()])
        for index in range(options.wrk_passes):
            restamp(force=index == 0)
            order = servers if index % 2 == 0 else list(reversed(servers))
            for size, server, _pids, script in order:
                cpu0 = _redis_cpu_seconds(monitors[size.sessions])
                result = wrk(server.base_url + "/", seconds=options.wrk_seconds, connections=options.connections,
                             script=script)
                size.redis_cpu.append((_redis_cpu_seconds(monitors[size.sessions]) - cpu0)
                                      / max(result.requests, 1) * 1e6)
                size.rps.append(result.requests_per_second)
                size.p50.append(result.latency_ms.get("50", float("nan")))
                size.p99.append(result.latency_ms.get("99", float("nan")))
                size.errors += result.non_2xx + result.socket_errors
        for size, server, pids, _script in servers:
            size.rss_end = sum(rss_kib(pid) for pid in pids) / 1024 / max(len(pids), 1)
            for value in size.cookies[:5]:
                check_served(server.base_url + "/", value, "hello alice")
