"""Metrics and health through the WSGI stack (FakeProvider): the counts move as the requests say.

Every test counts into a ``CollectorRegistry`` of its own (``metrics_registry``), exposed
at ``metrics_path`` too, and reads the counts back from the scrape itself (the text a
Prometheus server would get), so the route and the numbers are checked together.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import webtest
from prometheus_client import CollectorRegistry
from prometheus_client import values as prometheus_values
from prometheus_client.parser import text_string_to_metric_families

from sso_middleware import SSOMiddleware
from sso_middleware._observe import instruments
from sso_middleware._wsgi.observability import HEALTH_CACHE_SECONDS
from sso_middleware.errors import StoreUnavailable
from sso_middleware.stores import FileBackend
from sso_middleware.testing import Clock

from ..fakes import ISSUER, FakeProvider
from .test_backchannel import PATH as BACKCHANNEL
from .test_backchannel import logout_token, post_logout
from .test_frontchannel import PATH as FRONTCHANNEL
from .test_frontchannel import frame

CONNECTION = "Username-Password-Authentication"
METRICS = "/auth/metrics"
HEALTH = "/auth/health"
TOKEN = "m" * 40
LOCAL = {"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example", "REMOTE_ADDR": "127.0.0.1"}


class App:
    """The application: records every path it is asked for (the metrics and health paths must never reach it)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.paths.append(environ.get("PATH_INFO", ""))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app: " + (environ.get("REMOTE_USER") or "-").encode()]


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def build(make_middleware: Callable[..., SSOMiddleware], app: App) -> Callable[..., SSOMiddleware]:
    def make(**settings: Any) -> SSOMiddleware:
        settings.setdefault("metrics_registry", CollectorRegistry())
        settings.setdefault("metrics_path", METRICS)
        return make_middleware(app, **settings)

    return make


def browser_of(middleware: SSOMiddleware, **environ: str) -> webtest.TestApp:
    return webtest.TestApp(middleware, extra_environ={**LOCAL, **environ})


def scrape(middleware: SSOMiddleware, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape of ``metrics_path``, by (name, sorted labels)."""
    response = browser_of(middleware).get(METRICS, headers=headers)
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def count(middleware: SSOMiddleware, name: str, **labels: str) -> float:
    return scrape(middleware).get((name, tuple(sorted(labels.items()))), 0.0)


def sso(browser: webtest.TestApp, provider: FakeProvider, **answer: Optional[str]) -> webtest.TestResponse:
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/page"})
    return browser.get(provider.authorize(response.location, **answer))


# -- sign-ins ------------------------------------------------------------------------------


def test_a_silent_sign_in_counts_success_a_session_and_each_provider_call(
    build: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    middleware = build()
    browser = browser_of(middleware)
    sso(browser, provider)
    assert browser.get("/page").text == "app: alice"
    assert count(middleware, "sso_sign_ins_total", outcome="success") == 1
    assert count(middleware, "sso_sessions_created_total") == 1
    assert count(middleware, "sso_silent_sign_ins_total", outcome="signed_in") == 1
    for endpoint in ("discovery", "jwks", "token", "userinfo"):
        assert count(middleware, "sso_provider_request_duration_seconds_count", endpoint=endpoint) == 1, endpoint
    assert count(middleware, "sso_store_request_duration_seconds_count", operation="new_session") == 1
    assert count(middleware, "sso_store_request_duration_seconds_count", operation="save_session") == 1


def test_a_failed_sign_in_increments_its_code(build: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    middleware = build(silent_sso=False)
    browser = browser_of(middleware)
    response = sso(browser, provider, error="access_denied")
    assert "error=provider_error%3Aaccess_denied" in response.location
    browser.get("/auth/callback", {"state": "made-up", "code": "x"})
    assert count(middleware, "sso_sign_ins_total", outcome="provider_error:access_denied") == 1
    assert count(middleware, "sso_sign_ins_total", outcome="invalid_state") == 1
    assert count(middleware, "sso_sign_ins_total", outcome="success") == 0
    assert count(middleware, "sso_sessions_created_total") == 0


def test_the_silent_fallback_and_a_failed_silent_sign_in(
    build: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    middleware = build()
    browser = browser_of(middleware)
    retry = sso(browser, provider, error="login_required")  # no provider session: one interactive retry
    browser.get(provider.authorize(retry.location))
    assert count(middleware, "sso_silent_sign_ins_total", outcome="login_required") == 1
    assert count(middleware, "sso_silent_sign_ins_total", outcome="signed_in") == 0  # the retry was interactive
    assert count(middleware, "sso_sign_ins_total", outcome="success") == 1
    provider.id_token_overrides["aud"] = "someone-else"
    sso(browser_of(middleware), provider)
    assert count(middleware, "sso_sign_ins_total", outcome="invalid_id_token") == 1
    assert count(middleware, "sso_silent_sign_ins_total", outcome="error") == 1


def test_an_unreachable_provider_counts_the_sign_in_and_the_provider_failure(
    build: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    middleware = build()
    provider.fail["/.well-known/openid-configuration"] = 500
    response = browser_of(middleware).get("/auth/login", {"target_url": "/page"})
    assert "error=provider_unreachable" in response.location
    assert count(middleware, "sso_sign_ins_total", outcome="provider_unreachable") == 1
    assert count(middleware, "sso_provider_request_failures_total", endpoint="discovery", reason="http_5xx") == 1


def test_random_provider_errors_at_the_callback_add_no_series(
    build: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    """The attack: a client starts sign-ins and answers each callback with an error of its own invention."""
    middleware = build(silent_sso=False)
    for number in range(20):
        sso(browser_of(middleware), provider, error=f"made-up-{number}")
    outcomes = {dict(labels).get("outcome") for name, labels in scrape(middleware) if name == "sso_sign_ins_total"}
    assert outcomes == {"success", "provider_error"}
    assert count(middleware, "sso_sign_ins_total", outcome="provider_error") == 20


# -- sessions, refreshes, logouts ------------------------------------------------------------


def test_sign_out_and_expiry_end_sessions_by_reason(
    make_middleware: Callable[..., SSOMiddleware], app: App, provider: FakeProvider
) -> None:
    clock = Clock(int(time.time()))
    provider.clock = clock
    middleware = make_middleware(app, clock=clock, metrics_path=METRICS, metrics_registry=CollectorRegistry(),
                                 session_idle_timeout=600)
    browser = browser_of(middleware)
    sso(browser, provider)
    browser.get("/auth/logout")
    assert count(middleware, "sso_sessions_ended_total", reason="logout") == 1
    sso(browser, provider)
    clock.advance(601)
    assert browser.get("/page").text == "app: -"
    assert count(middleware, "sso_sessions_ended_total", reason="expired") == 1
    assert count(middleware, "sso_sessions_created_total") == 2


def test_back_channel_logouts_by_outcome_and_the_sessions_they_end(
    build: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    middleware = build()
    browser = browser_of(middleware)
    sso(browser, provider)
    post_logout(browser, logout_token())
    post_logout(browser, "not-a-token", status=400)
    assert browser.get("/page").text == "app: -"
    assert count(middleware, "sso_provider_logouts_total", channel="backchannel", outcome="success") == 1
    assert count(middleware, "sso_provider_logouts_total", channel="backchannel", outcome="refused") == 1
    assert count(middleware, "sso_sessions_ended_total", reason="backchannel") == 1
    assert BACKCHANNEL not in middleware.app.paths  # type: ignore[attr-defined]


def test_front_channel_logouts_by_outcome_and_the_sessions_they_end(
    build: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    middleware = build(frontchannel_logout_path=FRONTCHANNEL)
    browser = browser_of(middleware)
    sso(browser, provider)
    frame(middleware, iss=ISSUER, sid="provider-session-1")
    frame(middleware, 400, iss="https://elsewhere.example/", sid="provider-session-1")
    assert browser.get("/page").text == "app: -"
    assert count(middleware, "sso_provider_logouts_total", channel="frontchannel", outcome="success") == 1
    assert count(middleware, "sso_provider_logouts_total", channel="frontchannel", outcome="refused") == 1
    assert count(middleware, "sso_sessions_ended_total", reason="frontchannel") == 1
    assert FRONTCHANNEL not in middleware.app.paths  # type: ignore[attr-defined]


def test_refreshes_by_outcome(make_middleware: Callable[..., SSOMiddleware], app: App) -> None:
    clock = Clock(int(time.time()))
    provider = FakeProvider(clock=clock, expires_in=120)
    middleware = make_middleware(app, clock=clock, http_transport=provider.transport(), keep_access_token=True,
                                 scope="openid profile email offline_access", metrics_path=METRICS,
                                 metrics_registry=CollectorRegistry())
    browser = browser_of(middleware)
    sso(browser, provider)
    clock.advance(70)  # within refresh_margin of expiry: refreshed
    assert browser.get("/page").text == "app: alice"
    assert count(middleware, "sso_token_refreshes_total", outcome="success") == 1
    provider.revoke(sub="alice")
    clock.advance(70)
    assert browser.get("/page").text == "app: -"  # refused: signed out
    assert count(middleware, "sso_token_refreshes_total", outcome="refused") == 1
    assert count(middleware, "sso_sessions_ended_total", reason="refresh_refused") == 1
    assert count(middleware, "sso_provider_request_duration_seconds_count", endpoint="token") == 3



def test_revocations_at_sign_out_are_timed_by_endpoint(
    build: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    """The revoker's client has its own (shorter) timeout: it must keep the middleware's recorder too."""
    provider.revocation = True
    middleware = build(keep_access_token=True, scope="openid profile email offline_access")
    browser = browser_of(middleware)
    sso(browser, provider)
    browser.get("/auth/logout")
    assert len(provider.revocations) == 2
    assert count(middleware, "sso_provider_request_duration_seconds_count", endpoint="revocation") == 2

# -- the metrics route -----------------------------------------------------------------------


def test_the_scrape_is_prometheus_text_never_cached_and_never_the_apps(
    build: Callable[..., SSOMiddleware], app: App
) -> None:
    middleware = build()
    response = browser_of(middleware).get(METRICS)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert response.headers["Cache-Control"] == "no-store"
    assert "# TYPE sso_sign_ins_total counter" in response.text
    openmetrics = browser_of(middleware).get(METRICS, headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")
    assert browser_of(middleware).head(METRICS).status_int == 200
    assert app.paths == []


@pytest.mark.parametrize(("address", "status"), [
    pytest.param("127.0.0.1", 200, id="loopback"),
    pytest.param("127.8.9.10", 200, id="loopback-net"),
    pytest.param("::1", 200, id="ipv6-loopback"),
    pytest.param("::ffff:127.0.0.1", 200, id="ipv4-mapped"),
    pytest.param("10.1.2.3", 403, id="lan"),
    pytest.param("203.0.113.9", 403, id="internet"),
    pytest.param("", 403, id="none"),
    pytest.param("not-an-address", 403, id="garbage"),
])
def test_by_default_only_loopback_clients_may_scrape(
    build: Callable[..., SSOMiddleware], app: App, address: str, status: int
) -> None:
    response = browser_of(build(), REMOTE_ADDR=address).get(METRICS, status=status)
    if status == 403:
        assert response.text == "forbidden\n" and "sso_" not in response.text
    assert app.paths == []


def test_a_listed_network_and_the_token(build: Callable[..., SSOMiddleware]) -> None:
    middleware = build(metrics_allowed_networks="10.0.0.0/8", metrics_token=TOKEN)
    lan = browser_of(middleware, REMOTE_ADDR="10.1.2.3")
    missing = lan.get(METRICS, status=401)
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    lan.get(METRICS, headers={"Authorization": "Bearer " + "x" * 40}, status=401)
    lan.get(METRICS, headers={"Authorization": "Basic " + TOKEN}, status=401)
    lan.get(METRICS, headers={"Authorization": "Bearer " + TOKEN[:-1]}, status=401)
    assert "sso_sign_ins_total" in lan.get(METRICS, headers={"Authorization": "Bearer " + TOKEN}).text
    loopback = browser_of(middleware)  # not listed
    loopback.get(METRICS, headers={"Authorization": "Bearer " + TOKEN}, status=403)


def test_with_a_token_and_no_networks_any_client_with_the_token(build: Callable[..., SSOMiddleware]) -> None:
    middleware = build(metrics_allowed_networks="", metrics_token=TOKEN)
    internet = browser_of(middleware, REMOTE_ADDR="203.0.113.9")
    internet.get(METRICS, status=401)
    internet.get(METRICS, headers={"Authorization": "bearer " + TOKEN}, status=200)


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_a_request_relayed_by_a_proxy_is_not_a_loopback_client(build: Callable[..., SSOMiddleware],
                                                                 header: str) -> None:
    """nginx on the same host relays an internet client: REMOTE_ADDR is 127.0.0.1 (the proxy), the default
    networks let it in, and the metrics were public.  A relayed request proves nothing about its client."""
    value = "for=203.0.113.9" if header == "Forwarded" else "203.0.113.9"
    relayed = browser_of(build())  # REMOTE_ADDR 127.0.0.1, as from a proxy on this host
    response = relayed.get(METRICS, headers={header: value}, status=403)
    assert "sso_" not in response.text
    with_token = browser_of(build(metrics_token=TOKEN))  # the token proves it: the proxy may relay a scraper
    with_token.get(METRICS, headers={header: value, "Authorization": "Bearer " + TOKEN}, status=200)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head(build: Callable[..., SSOMiddleware], method: str) -> None:
    middleware = build(health_path=HEALTH)
    for path in (METRICS, HEALTH):
        response = browser_of(middleware).request(path, method=method, status=405)
        assert response.headers["Allow"] == "GET, HEAD"


def test_a_registry_alone_routes_nothing(build: Callable[..., SSOMiddleware], app: App) -> None:
    middleware = build(metrics_path="")
    assert browser_of(middleware).get(METRICS).text == "app: -"
    assert app.paths == [METRICS]


# -- health ------------------------------------------------------------------------------------


class FlakyFileStore(FileBackend):
    """The file store, made unreachable on demand (``down``)."""

    down = False

    def read_record(self, record_id: str, kind: str = "tokens") -> Optional[str]:
        if self.down:
            raise StoreUnavailable("file: down (test)")
        return super().read_record(record_id, kind)


def test_health_is_ok_when_the_store_and_discovery_answer(
    make_middleware: Callable[..., SSOMiddleware], app: App, provider: FakeProvider
) -> None:
    middleware = make_middleware(app, health_path=HEALTH)
    response = browser_of(middleware, REMOTE_ADDR="203.0.113.9").get(HEALTH)
    assert (response.status_int, response.text, response.headers["Cache-Control"]) == (200, "ok\n", "no-store")
    assert len(provider.requests_to("/.well-known/openid-configuration")) == 1  # fetched once, then cached
    browser_of(middleware).get(HEALTH)
    assert len(provider.requests_to("/.well-known/openid-configuration")) == 1
    assert app.paths == []


def test_health_is_503_without_details_when_discovery_fails(
    make_middleware: Callable[..., SSOMiddleware], app: App, provider: FakeProvider
) -> None:
    provider.fail["/.well-known/openid-configuration"] = 500
    response = browser_of(make_middleware(app, health_path=HEALTH)).get(HEALTH, status=503)
    assert response.text == "unavailable\n"  # nothing about why: that is in the log


def test_health_is_503_when_the_store_does_not_answer(
    make_middleware: Callable[..., SSOMiddleware], app: App, settings: dict[str, Any]
) -> None:
    clock = Clock(int(time.time()))
    middleware = make_middleware(app, health_path=HEALTH, session_type=FlakyFileStore, clock=clock)
    browser = browser_of(middleware)
    assert browser.get(HEALTH).text == "ok\n"
    middleware.store.backend.down = True  # type: ignore[attr-defined]
    clock.advance(HEALTH_CACHE_SECONDS)
    assert browser.get(HEALTH, status=503).text == "unavailable\n"
    middleware.store.backend.down = False  # type: ignore[attr-defined]
    clock.advance(HEALTH_CACHE_SECONDS)
    assert browser.get(HEALTH).text == "ok\n"


def test_health_logs_each_change_once_and_nothing_while_healthy(
    make_middleware: Callable[..., SSOMiddleware], app: App, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(int(time.time()))
    middleware = make_middleware(app, health_path=HEALTH, session_type=FlakyFileStore, clock=clock)
    browser = browser_of(middleware)

    def health_lines() -> list[str]:
        return [record.getMessage() for record in caplog.records if "health check" in record.getMessage()]

    with caplog.at_level(logging.INFO, logger="sso_middleware"):
        browser.get(HEALTH)
        assert health_lines() == []  # healthy from the start: nothing changed
        for down in (True, True, False, False):
            middleware.store.backend.down = down  # type: ignore[attr-defined]
            clock.advance(HEALTH_CACHE_SECONDS)
            browser.get(HEALTH, status=503 if down else 200)
    assert health_lines() == ["sso: health check failing: session store: file: down (test)",
                              "sso: health check passing"]


def test_a_flood_of_health_probes_reads_the_store_once_a_second(
    make_middleware: Callable[..., SSOMiddleware], app: App
) -> None:
    """The health route is public and each probe read the session store (during an outage: each one
    waiting ``session_store_timeout``, holding a worker): the one unauthenticated route that costs a
    store call.  Its answer is kept a second, and probes arriving meanwhile share it."""
    clock = Clock(int(time.time()))
    middleware = make_middleware(app, health_path=HEALTH, session_type=FlakyFileStore, clock=clock)
    reads = []
    read_record = middleware.store.backend.read_record
    middleware.store.backend.read_record = lambda *a, **k: reads.append(1) or read_record(*a, **k)  # type: ignore
    internet = browser_of(middleware, REMOTE_ADDR="203.0.113.9")
    for _ in range(100):
        assert internet.get(HEALTH).text == "ok\n"
    assert len(reads) == 1
    clock.advance(HEALTH_CACHE_SECONDS)
    internet.get(HEALTH)
    assert len(reads) == 2


def test_health_of_a_cookie_store_reads_no_store(
    make_middleware: Callable[..., SSOMiddleware], app: App
) -> None:
    middleware = make_middleware(app, health_path=HEALTH, session_type="cookie", metrics_path=METRICS,
                                 metrics_registry=CollectorRegistry())
    assert browser_of(middleware).get(HEALTH).text == "ok\n"
    assert count(middleware, "sso_store_request_duration_seconds_count", operation="read_record") == 0


def test_health_counts_its_store_read(build: Callable[..., SSOMiddleware]) -> None:
    middleware = build(health_path=HEALTH)
    browser_of(middleware).get(HEALTH)
    assert count(middleware, "sso_store_request_duration_seconds_count", operation="read_record") == 1


# -- a metric that cannot be written -------------------------------------------------------------


def test_a_broken_multiprocess_folder_never_fails_a_request(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, app: App, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker forked after the folder went (a tmp cleaner, a worker recycled by max_requests, a worker
    that dropped privileges): prometheus_client opens its files at the first write after the fork, and
    that write raises.  The store and provider seams are on every request: a metric must never be the
    request's failure (it was: every signed-in request a 500, every sign-in failed)."""
    folder = tmp_path / "multiproc"
    folder.mkdir()
    pid = [4000]
    monkeypatch.setenv(instruments.MULTIPROC_ENV, str(folder))
    monkeypatch.setattr(prometheus_values, "ValueClass", prometheus_values.MultiProcessValue(lambda: pid[0]))
    monkeypatch.setattr(instruments, "_multiprocess", None)  # this test's own metric objects, in its folder
    middleware = make_middleware(app, metrics_path=METRICS)
    browser = browser_of(middleware)
    assert sso(browser, provider).status_int == 303
    assert browser.get("/page").text == "app: alice"
    pid[0] += 1  # a fork ...
    shutil.rmtree(folder)  # ... after the folder went
    assert browser.get("/page").text == "app: alice"  # the session read (a timed store call)
    other = browser_of(middleware)
    assert sso(other, provider).location == "https://app2.example/page"  # a sign-in: provider calls, counts
    assert other.get("/page").text == "app: alice"
    browser.get("/auth/logout", status=303)
    assert browser.get("/page").text == "app: -"
    assert "sso: a metric could not be written" in caplog.text
