"""Section 1: in-process cost per request, every contestant measured in the same interleaved rounds.

Each request is timed on its own (``perf_counter_ns`` around the WSGI call and the
iteration of its body; building the environ is outside); the timer's own cost,
measured first, is subtracted.  Contestants run in short batches, round after
round in a shuffled order, so that noise from the machine spreads over all of them
instead of hitting one.  Every contestant is checked first: its answer must be
``200 hello alice`` (signed in) or ``200 hello anonymous`` -- never a redirect.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import apps, ideal
from .common import Deadline, Summary, base_environ, call_once, refreshed, sign_in_wsgi
from .servers import BenchError

SIGNED_IN = b"hello alice"
ANONYMOUS = b"hello anonymous"
OTHER_COOKIES = "_ga=GA1.1.1234567890.1700000000; theme=dark; consent=necessary%2Canalytics"


@dataclass
class Contestant:
    key: str
    label: str
    app: Callable[..., Any]
    cookie: str
    expect: bytes
    reference: Optional[str] = None  # key of the contestant this one is compared with
    target: Optional[float] = None  # allowed relative overhead over the reference (0.10 = 10 %)
    samples: list[int] = field(default_factory=list)
    summary: Optional[Summary] = None
    cpu_batches: list[float] = field(default_factory=list)  # mean thread CPU µs per request, one per batch
    #: This thread's CPU time per request, the median of the batches' means (timer included): the wall time
    #: less the waiting (for Redis's answer, for the other processes sharing the cores).
    cpu_us: float = float("nan")


def _noop_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., None]:
    return _noop_write


def _noop_write(data: bytes) -> None:
    pass


def timer_overhead_ns(repeat: int = 20000) -> float:
    """Median cost of one ``perf_counter_ns`` pair, subtracted from every sample."""
    pc = time.perf_counter_ns
    values = []
    for _ in range(repeat):
        t0 = pc()
        values.append(pc() - t0)
    values.sort()
    return float(values[len(values) // 2])


def sample(contestant: Contestant, n: int) -> None:
    """Time ``n`` requests of one contestant, one by one.

    A ``Set-Cookie`` the answers carry is kept for the next batch, as a browser keeps it (the cookie
    store sends a new cookie whenever it writes the idle stamp: resent unchanged, every request would).
    """
    app = contestant.app
    template = base_environ(contestant.cookie)
    out = contestant.samples
    pc = time.perf_counter_ns
    set_cookies: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., None]:
        for name, value in headers:
            if name == "Set-Cookie":
                set_cookies.append(value)
        return _noop_write

    cpu0 = time.thread_time_ns()
    for _ in range(n):
        environ = template.copy()
        t0 = pc()
        result = app(environ, start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
        out.append(pc() - t0)
    contestant.cpu_batches.append((time.thread_time_ns() - cpu0) / 1000.0 / max(n, 1))
    if set_cookies and contestant.cookie:
        contestant.cookie = refreshed(contestant.cookie, set_cookies)


def check(contestant: Contestant) -> None:
    status, body = call_once(contestant.app, base_environ(contestant.cookie))
    if not status.startswith("200") or body != contestant.expect:
        raise BenchError(f"{contestant.label}: answered {status} {body[:80]!r}, expected {contestant.expect!r}")


def measure(contestants: list[Contestant], *, rounds: int, batch_seconds: float, budget_seconds: float,
            seed: int = 7, notes: Optional[list[str]] = None) -> float:
    """Warm up, then interleaved rounds; fills each contestant's ``samples`` and ``summary``.

    A contestant that does not answer what it should is dropped (with a note), not measured.
    """
    for contestant in list(contestants):
        try:
            check(contestant)
        except Exception as exc:
            contestants.remove(contestant)
            if notes is not None:
                notes.append(f"in-process: `{contestant.key}` left out: {type(exc).__name__}: {exc}")
            continue
        sample(contestant, 200)  # warm-up (caches, lazily built objects, page cache)
        contestant.samples.clear()
        contestant.cpu_batches.clear()
    # Calibrate the batch size of each contestant to about ``batch_seconds``.
    sizes = {}
    for contestant in contestants:
        t0 = time.perf_counter()
        sample(contestant, 50)
        per_call = (time.perf_counter() - t0) / 50
        sizes[contestant.key] = max(20, min(20000, int(batch_seconds / max(per_call, 1e-7))))
        contestant.samples.clear()
        contestant.cpu_batches.clear()
    overhead = timer_overhead_ns()
    order = list(contestants)
    rng = random.Random(seed)  # noqa: S311 - shuffling the order, not security
    deadline = Deadline(budget_seconds)
    for _ in range(rounds):
        rng.shuffle(order)
        for contestant in order:
            sample(contestant, sizes[contestant.key])
        if deadline.passed():
            break
    for contestant in contestants:
        contestant.summary = Summary.of((ns / 1000.0 for ns in contestant.samples), offset=overhead / 1000.0)
        contestant.cpu_us = Summary.of(contestant.cpu_batches).median
        try:
            check(contestant)  # still answering the same way after the run
        except BenchError as exc:
            if notes is not None:
                notes.append(f"in-process: `{contestant.key}` changed its answer during the run: {exc}")
    return overhead


def build(ctx: Any) -> list[Contestant]:
    """The contestants, signed in for real against the bundled provider (in-process app, real provider)."""
    base_url = ctx.inprocess_base_url
    client = ctx.register(base_url)
    sso = {kind: apps.make_sso(apps.bare_app, **ctx.sso_settings(kind, base_url, client))
           for kind in ("file", "ext:redis", "cookie")}
    cookies = {}
    for kind, app in sso.items():
        name = ctx.cookie_name(kind)
        cookies[kind] = sign_in_wsgi(app, ctx.provider, "/auth/login?target_url=/", name, base_url)
    flask_client = ctx.register(base_url, "/auth")
    flask_authlib = apps.make_flask_authlib(ctx.provider.issuer, flask_client.client_id, flask_client.client_secret,
                                            ctx.flask_secret, base_url)
    flask_cookie = sign_in_wsgi(flask_authlib, ctx.provider, "/login", "session", base_url)
    flask_sso = apps.make_flask_sso(**ctx.sso_settings("file", base_url, client))
    options = {kind: app.store.backend.options for kind, app in sso.items()}  # type: ignore[attr-defined]
    idle = float(sso["file"].config.session_idle_timeout)  # type: ignore[attr-defined]

    c = Contestant
    return [
        c("bare", "bare WSGI app", apps.bare_app, "", ANONYMOUS),
        c("anon", "SSOMiddleware, anonymous, no cookie", sso["file"], "", ANONYMOUS, "bare", 0.05),
        c("anon_other", "SSOMiddleware, anonymous, other cookies only", sso["file"], OTHER_COOKIES, ANONYMOUS,
          "bare", 0.05),
        c("floor_file", "Beaker SessionMiddleware alone, file (floor)", apps.make_floor(options["file"]),
          cookies["file"], SIGNED_IN),
        c("beaker_default_file", "Beaker SessionMiddleware, file, default save_accessed_time (writes every request)",
          apps.make_floor(options["file"], save_accessed_time=True), cookies["file"], SIGNED_IN, "floor_file"),
        c("sso_file", "SSOMiddleware, file, signed in", sso["file"], cookies["file"], SIGNED_IN, "floor_file", 0.10),
        c("floor_redis", "Beaker SessionMiddleware alone, Redis (floor)", apps.make_floor(options["ext:redis"]),
          cookies["ext:redis"], SIGNED_IN),
        c("sso_redis", "SSOMiddleware, Redis, signed in", sso["ext:redis"], cookies["ext:redis"], SIGNED_IN,
          "floor_redis", 0.10),
        c("floor_cookie", "Beaker SessionMiddleware alone, encrypted cookie (floor)",
          apps.make_floor(options["cookie"]), cookies["cookie"], SIGNED_IN),
        c("sso_cookie", "SSOMiddleware, encrypted cookie, signed in", sso["cookie"], cookies["cookie"], SIGNED_IN,
          "floor_cookie", 0.10),
        c("ideal_anon", "reference: minimal pass-through (drop 3 keys, look for the cookie), anonymous",
          ideal.minimal_pass_through(ctx.cookie_name("file")), "", ANONYMOUS, "bare"),
        c("direct_file", "reference: the same record read directly, no Beaker objects, no lock (file)",
          ideal.direct_reader(options["file"], idle), cookies["file"], SIGNED_IN, "floor_file"),
        c("direct_redis", "reference: the same record read directly, no Beaker objects (Redis)",
          ideal.direct_reader(options["ext:redis"], idle), cookies["ext:redis"], SIGNED_IN, "floor_redis"),
        c("flask_plain", "Flask app, no session", apps.make_flask_plain(), "", ANONYMOUS),
        c("flask_sso", "Flask app + SSOMiddleware (file), signed in", flask_sso, cookies["file"], SIGNED_IN,
          "flask_plain"),
        c("flask_authlib", "Flask + Authlib (signed-cookie session), signed in", flask_authlib, flask_cookie,
          SIGNED_IN, "flask_plain"),
    ]


def session_sizes(contestants: list[Contestant]) -> dict[str, int]:
    """Bytes of each signed-in contestant's cookie (the cookie stores carry the whole session)."""
    return {c.key: len(c.cookie) for c in contestants if c.cookie and c.expect == SIGNED_IN}


def record_sizes(contestants: list[Contestant]) -> dict[str, int]:
    """Bytes of the file store's session record (sealed JSON) behind the signed-in file contestant."""
    found = {}
    for contestant in contestants:
        backend = getattr(getattr(contestant.app, "store", None), "backend", None)
        if contestant.key == "sso_file" and backend is not None:
            session_id = contestant.cookie.split("=", 1)[1].strip('"')[40:]
            with contextlib.suppress(OSError):  # where Beaker's file namespace keeps it
                found["file session record (sealed)"] = os.path.getsize(backend.namespace(session_id).file)
    return found
