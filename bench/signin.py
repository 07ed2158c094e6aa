"""Section 3: what a sign-in costs.

* The callback handler's CPU time with warm discovery and JWKS caches, in-process,
  the provider behind a fake ``requests`` transport (the test kit's
  :class:`~sso_middleware.testing.FakeProvider`, through the middleware's
  ``http_transport`` seam; it signs each ID token when the browser is sent back,
  so the provider's RSA signing is not part of the callback timed), split into
  phases.  Phases are timed exclusively (a phase's time excludes the phases it
  calls); the fake provider's own time is its own phase and left out of the total.
* The full ``/auth/sso`` round trip against the bundled provider (real HTTP, the
  middleware served by a server in this process), hop by hop.
* How often discovery and the JWKS were fetched over all those sign-ins, per process.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from webob import Request

from sso_middleware.testing import FakeProvider

from . import apps
from .common import CONNECTION, REDIRECTS, Deadline, Jar, Summary, browse
from .servers import HOST, BenchError, free_port

BASE_URL = "https://app.example"
#: The claims of the user signed in, in the ID token and at userinfo.
CLAIMS = {
    "sub": "alice",
    "name": "Alice Example",
    "given_name": "Alice",
    "family_name": "Example",
    "nickname": "alice",
    "preferred_username": "alice",
    "email": "alice@example.com",
    "email_verified": True,
}

PROVIDER_PHASE = "provider (fake transport; excluded)"
#: Functions timed as phases of the callback (module:qualified name); those the code no longer has are skipped.
PHASES = [
    ("sso_middleware._oidc.client:validate_id_token", "ID token validation (RS256 signature, claims)"),
    ("sso_middleware._wsgi.transactions:TransactionCookies.redeem", "state: read + decrypt the sign-in's cookie"),
    ("sso_middleware._session.state:SSOSession.sign_in", "sign_in: new session (old one deleted), store the user"),
    ("sso_middleware._session.state:SSOSession.commit", "write the session (+ sid/sub index when server-side)"),
]
REST_PHASE = "routing, WebOb request, redirect response"


class Phases:
    """Exclusive CPU time per phase of one request (a stack of phases; thread CPU clock)."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.mark = 0
        self.current: Counter[str] = Counter()

    def start(self) -> None:
        self.stack = [REST_PHASE]
        self.current = Counter()
        self.mark = time.thread_time_ns()

    def enter(self, name: str) -> None:
        now = time.thread_time_ns()
        if self.stack:
            self.current[self.stack[-1]] += now - self.mark
        self.stack.append(name)
        self.mark = now

    def exit(self) -> None:
        now = time.thread_time_ns()
        if self.stack:
            self.current[self.stack.pop()] += now - self.mark
        self.mark = now

    def stop(self) -> Counter[str]:
        while self.stack:
            self.exit()
        return self.current


def _timed(phases: Phases, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not phases.stack:
            return function(*args, **kwargs)
        phases.enter(name)
        try:
            return function(*args, **kwargs)
        finally:
            phases.exit()

    return wrapper


@contextlib.contextmanager
def _patched(target: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield
    finally:
        setattr(target, name, original)


@dataclass
class CallbackResult:
    store: str
    logins: int
    cpu_us: Summary  # callback CPU without the fake provider
    wall_us: Summary  # callback wall time, fake provider included
    phases: list[tuple[str, float, float]]  # (phase, median µs, mean µs)
    discovery_fetches: int
    jwks_fetches: int


def callback_cpu(ctx: Any, kind: str, logins: int) -> CallbackResult:
    """Sign in ``logins`` times in-process with one session store; time the callbacks after a warm-up."""
    op = FakeProvider(client_id="bench-client", client_secret="bench-client-secret-0123456789abcdef",
                      kid="bench-" + secrets.token_hex(4), users={"alice": dict(CLAIMS)}, sign_at_authorize=True)
    transport = op.transport()
    settings: dict[str, Any] = {"session_type": kind}
    if kind == "file":
        settings["session_data_dir"] = str(ctx.tmp / "sessions-signin")
    elif kind == "ext:redis":
        settings["session_url"] = ctx.redis_url(2)
    middleware = apps.make_sso(
        apps.bare_app, issuer=op.issuer, client_id=op.client_id, client_secret=op.client_secret, base_url=BASE_URL,
        session_secret=ctx.session_secret, http_transport=transport, **settings,
    )
    phases = Phases()
    client = middleware.client  # type: ignore[attr-defined]
    transport.send = _timed(phases, PROVIDER_PHASE, transport.send)  # type: ignore[method-assign]
    for owner, name, label in ((client, "_token_request", "code exchange: token request, response parsing"),
                               (client, "_userinfo", "userinfo request, sub check"),
                               (client.keys, "key_for", "JWKS key lookup + JWK -> public key object")):
        if hasattr(owner, name):
            setattr(owner, name, _timed(phases, label, getattr(owner, name)))
    patches = []
    for where, label in PHASES:
        module_name, _, attribute = where.partition(":")
        owner, _, name = attribute.rpartition(".")
        with contextlib.suppress(ImportError, AttributeError):
            target = importlib.import_module(module_name)
            for part in filter(None, owner.split(".")):
                target = getattr(target, part)
            patches.append((target, name, _timed(phases, label, getattr(target, name))))
    warmup = min(20, logins // 5)
    per_phase: dict[str, list[float]] = defaultdict(list)
    cpu: list[float] = []
    wall: list[float] = []
    logger = logging.getLogger("sso_middleware")
    level = logger.level
    logger.setLevel(logging.WARNING)  # one INFO line per sign-in is not what is measured here
    deadline = Deadline(60.0)
    try:
        with contextlib.ExitStack() as stack:
            for target, name, replacement in patches:
                stack.enter_context(_patched(target, name, replacement))
            for index in range(logins):
                jar = Jar()
                start = jar.get(middleware, "/auth/login?target_url=/", BASE_URL)
                if start.status_int != 303:
                    raise BenchError(f"/auth/login answered {start.status}")
                # a provider session of its own per sign-in, as a real provider gives (one sid for all
                # would grow one back-channel index record with every sign-in)
                callback = urlsplit(op.authorize(start.location, claims={"sid": "op-session-" + secrets.token_hex(4)}))
                request = Request.blank(f"{callback.path}?{callback.query}", base_url=BASE_URL)
                request.headers["Cookie"] = jar.header()
                environ = request.environ
                statuses: list[str] = []

                def start_response(status: str, headers: Any, exc_info: Any = None,
                                   statuses: list[str] = statuses) -> Callable[[bytes], None]:
                    statuses.append(status)
                    return lambda data: None

                t0 = time.perf_counter_ns()
                phases.start()
                result = middleware(environ, start_response)
                for _chunk in result:
                    pass
                spent = phases.stop()
                elapsed = time.perf_counter_ns() - t0
                if not statuses or not statuses[0].startswith("303"):
                    raise BenchError(f"callback answered {statuses}")
                if index < warmup:
                    continue
                for name, ns in spent.items():
                    per_phase[name].append(ns / 1000.0)
                cpu.append(sum(ns for name, ns in spent.items() if name != PROVIDER_PHASE) / 1000.0)
                wall.append(elapsed / 1000.0)
                if deadline.passed():
                    break
    finally:
        logger.setLevel(level)
    order = sorted(per_phase, key=lambda name: -Summary.of(per_phase[name]).mean)
    return CallbackResult(
        store=kind,
        logins=len(cpu) + warmup,
        cpu_us=Summary.of(cpu),
        wall_us=Summary.of(wall),
        phases=[(name, Summary.of(per_phase[name]).median, Summary.of(per_phase[name]).mean) for name in order],
        discovery_fetches=len(op.requests_to("/.well-known/openid-configuration")),
        jwks_fetches=len(op.requests_to("/.well-known/jwks.json")),
    )


# -- the real round trip -------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class RoundTripResult:
    trips: int
    total_ms: Summary
    hops: list[tuple[str, float]]  # (hop, median ms)
    discovery_fetches: int
    jwks_fetches: int
    failures: int
    notes: list[str] = field(default_factory=list)


def round_trips(ctx: Any) -> RoundTripResult:
    """``/auth/sso`` round trips against the bundled provider; counts the provider fetches of this process."""
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    client = ctx.register(base_url)
    settings = ctx.sso_settings("file", base_url, client)
    settings["cookie_name"] = "bench_roundtrip"
    settings["session_data_dir"] = str(ctx.tmp / "sessions-roundtrip")
    middleware = apps.make_sso(apps.bare_app, **settings)
    fetches: Counter[str] = Counter()
    http_client = middleware.client.http  # type: ignore[attr-defined]
    original_get_json = http_client.get_json

    def counting_get_json(url: str, what: str, *args: Any, **kwargs: Any) -> Any:
        fetches[what] += 1
        return original_get_json(url, what, *args, **kwargs)

    http_client.get_json = counting_get_json
    server: WSGIServer = make_server(HOST, port, middleware, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    logger = logging.getLogger("sso_middleware")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        browser = requests.Session()
        # The user signs in once interactively: from then on the provider has a session and
        # /auth/sso signs in silently (prompt=none), which is the single sign-on being measured.
        first = ctx.provider.login(browser, "alice", base_url + "/auth/login?target_url=/")
        if first.status_code not in REDIRECTS:
            raise BenchError(f"interactive sign-in failed: HTTP {first.status_code}")
        landing = browse(browser, urljoin(first.url, first.headers["Location"]))
        if landing.text != "hello alice":
            raise BenchError(f"interactive sign-in did not land signed in: {landing.status_code}")
        url = f"{base_url}/auth/sso?connection={CONNECTION}&target_url=/"
        totals: list[float] = []
        hop_times: dict[str, list[float]] = defaultdict(list)
        failures = 0
        deadline = Deadline(ctx.options.round_trip_budget)
        for _ in range(ctx.options.round_trips):
            browser.cookies.set(settings["cookie_name"], None)  # a fresh app session, the provider's kept
            t0 = time.perf_counter()
            response = browser.get(url, allow_redirects=False, timeout=10)
            hops = [(_hop_name(response, base_url), response.elapsed.total_seconds() * 1000)]
            for _hop in range(10):
                if response.status_code not in REDIRECTS:
                    break
                response = browser.get(urljoin(response.url, response.headers["Location"]), allow_redirects=False,
                                       timeout=10)
                hops.append((_hop_name(response, base_url), response.elapsed.total_seconds() * 1000))
            total = (time.perf_counter() - t0) * 1000
            if response.status_code != 200 or response.text != "hello alice":
                failures += 1
            else:
                totals.append(total)
                for name, ms in hops:
                    hop_times[name].append(ms)
            if deadline.passed():
                break
        if not totals:
            raise BenchError("no /auth/sso round trip succeeded")
    finally:
        http_client.get_json = original_get_json
        logger.setLevel(level)
        server.shutdown()
        server.server_close()
        thread.join(5)
    return RoundTripResult(
        trips=len(totals) + failures,
        total_ms=Summary.of(totals),
        hops=[(name, Summary.of(values).median) for name, values in hop_times.items()],
        discovery_fetches=fetches["discovery"],
        jwks_fetches=fetches["jwks"],
        failures=failures,
    )


def _hop_name(response: requests.Response, base_url: str) -> str:
    path = urlsplit(response.url).path
    where = "app" if response.url.startswith(base_url) else "provider"
    return f"{where} {path}"
