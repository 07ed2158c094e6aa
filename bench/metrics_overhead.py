"""What metrics cost on the hot path: a signed-in GET, in process, metrics off and on.

    .venv/bin/python -m bench.metrics_overhead [--rounds 30] [--batch 500]

Each contestant is a middleware (file store, in-memory ``FakeProvider``) over a bare app,
with one signed-in user; a round times ``--batch`` signed-in GETs of each contestant in a
shuffled order (``perf_counter_ns`` around the WSGI call and its body), and the median per
round is kept.  Contestants: ``off`` (no metrics setting: the store is not even wrapped) and
``on`` (``metrics_path`` set: every store call timed).  Run it once more with
``PROMETHEUS_MULTIPROC_DIR`` set to an empty folder for the multiprocess ``on`` (values
written to mmap'ed files).  Runs with any checkout on ``PYTHONPATH`` (one without metrics
ignores nothing: give it ``--only off``) to compare before and after.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from typing import Any, Callable

import webtest

from sso_middleware import SSOMiddleware
from sso_middleware.testing import FakeProvider

BASE_URL = "https://app2.example"


def bare(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
    return [b"hello alice" if environ.get("REMOTE_USER") else b"hello anyone"]


def contestant(**settings: Any) -> tuple[SSOMiddleware, dict[str, Any]]:
    provider = FakeProvider()
    middleware = SSOMiddleware(bare, issuer=provider.issuer, client_id=provider.client_id,
                               client_secret=provider.client_secret, base_url=BASE_URL, session_secret="s" * 40,
                               session_data_dir=tempfile.mkdtemp(), http_transport=provider.transport(), **settings)
    browser = webtest.TestApp(middleware, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"})
    response = browser.get("/auth/login", {"target_url": "/"})
    browser.get(provider.authorize(response.location))
    cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "", "SERVER_NAME": "app2.example",
               "SERVER_PORT": "443", "HTTP_HOST": "app2.example", "wsgi.url_scheme": "https",
               "HTTP_COOKIE": cookie, "SERVER_PROTOCOL": "HTTP/1.1"}
    assert once(middleware, environ) == b"hello alice"
    return middleware, environ


def once(app: Callable[..., Any], environ: dict[str, Any]) -> bytes:
    return b"".join(app(dict(environ), lambda status, headers, exc_info=None: None))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--only", choices=("off", "on"), default=None)
    args = parser.parse_args()
    built = {}
    if args.only in (None, "off"):
        built["off"] = contestant()
    if args.only in (None, "on"):
        built["on"] = contestant(metrics_path="/auth/metrics")
    medians: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(args.rounds):
        order = list(built)
        random.shuffle(order)
        for name in order:
            app, environ = built[name]
            samples = []
            for _ in range(args.batch):
                start = time.perf_counter_ns()
                once(app, environ)
                samples.append(time.perf_counter_ns() - start)
            medians[name].append(statistics.median(samples) / 1000)
    for name, values in medians.items():
        print(f"{name:>4}: median {statistics.median(values):7.1f} µs per signed-in GET "
              f"(rounds: min {min(values):.1f}, max {max(values):.1f})")


if __name__ == "__main__":
    main()
