"""Metrics and health under gunicorn with 2 workers, against the real dev provider and a real Redis.

The application is ``examples/gunicorn_env`` (configured by ``SSO_*`` variables) under
``gunicorn --workers 2 --threads 2`` with the README's own gunicorn config file (the
``child_exit`` hook) and ``PROMETHEUS_MULTIPROC_DIR`` set in its environment. A short load:
interactive sign-ins through the real provider's login form, silent sign-ins riding on
those provider sessions, and signed-in requests on fresh connections until both workers
have served them. Then one scrape -- answered by whichever worker -- must hold exactly the
numbers the test made, added up across both workers: every sign-in, every session, every
session read. Health is 200; then the Redis the test started is killed by its PID, and the
health check answers 503 within a bound (and says nothing more).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from sso_middleware._wsgi.observability import HEALTH_CACHE_SECONDS
from sso_middleware.testing import DevProvider

from ..servers import Service, free_port, gunicorn_service
from ..store_servers import StoreServer

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "examples" / "gunicorn_env"
CONNECTION = "Username-Password-Authentication"
COOKIE = "metrics_session"
INTERACTIVE = 4  # sign-ins through the login form, each in a browser of its own
STORE_TIMEOUT = 1.0
#: The longest a health check may take once Redis is gone (refused connections answer at once).
HEALTH_WITHIN = STORE_TIMEOUT + 1.5


def readme_gunicorn_config() -> str:
    """The gunicorn config file of the README's "Metrics and health" section, as a user would copy it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### gunicorn: one count for all workers", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


@dataclass
class Served:
    base_url: str
    service: Service
    redis: StoreServer
    multiproc_dir: Path

    def url(self, path: str, **query: str) -> str:
        return self.base_url + path + ("?" + urlencode(query) if query else "")


@pytest.fixture
def served(oidc_provider: DevProvider, tmp_path: Path) -> Iterator[Served]:
    redis = StoreServer("redis").start()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    client = oidc_provider.register_client([base_url + "/auth/callback"], post_logout_redirect_uris=[base_url + "/"],
                                           client_name="metrics-gunicorn")
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    (multiproc_dir / "counter_1.db").write_bytes(b"left by an earlier run")  # on_starting must clear it
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(readme_gunicorn_config())
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SSO_", "PROMETHEUS_"))}
    env.update({
        "SSO_ISSUER": oidc_provider.issuer, "SSO_CLIENT_ID": client.client_id,
        "SSO_CLIENT_SECRET": client.client_secret, "SSO_BASE_URL": base_url,
        "SSO_SESSION_SECRET": secrets.token_urlsafe(32), "SSO_ALLOW_INSECURE_HTTP": "true",
        "SSO_COOKIE_NAME": COOKIE, "SSO_SESSION_TYPE": "ext:redis", "SSO_SESSION_URL": redis.url,
        "SSO_SESSION_STORE_TIMEOUT": str(STORE_TIMEOUT),
        "SSO_METRICS_PATH": "/auth/metrics", "SSO_HEALTH_PATH": "/auth/health",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
    })
    service = gunicorn_service("gunicorn (metrics)", port, tmp_path / "gunicorn.log", "app:app", APP_DIR, env)
    service.argv[-1:-1] = ["--config", str(config)]  # before the app: the README's hooks
    service.launch()
    try:
        service.wait_ready()
        yield Served(base_url, service, redis, multiproc_dir)
    finally:
        service.stop()
        redis.stop()


def browse(http: requests.Session, url: str) -> requests.Response:
    """GET ``url`` and follow redirects one by one, like a browser (the provider too: it shares the host)."""
    response = http.get(url, allow_redirects=False, timeout=10)
    for _ in range(20):
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        response = http.get(urljoin(response.url, response.headers["Location"]), allow_redirects=False, timeout=10)
    pytest.fail("redirect loop")


def browser() -> requests.Session:
    http = requests.Session()
    http.headers["Connection"] = "close"  # every request on a new connection: any worker may take it
    return http


def whoami(served: Served, http: requests.Session) -> dict[str, Any]:
    response = http.get(served.url("/whoami"), allow_redirects=False, timeout=10)
    assert response.status_code == 200, (response.status_code, response.text[:300], served.service.output())
    shown: dict[str, Any] = response.json()
    return shown


def scrape(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(served.url("/auth/metrics"), headers={"Connection": "close"}, timeout=10)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counts_add_up_across_two_gunicorn_workers_and_health_follows_the_store(
    oidc_provider: DevProvider, served: Served
) -> None:
    assert not (served.multiproc_dir / "counter_1.db").exists()  # the README's on_starting cleared the folder
    workers = served.service.children()
    assert len(workers) == 2

    # -- the load: interactive sign-ins, silent sign-ins on their provider sessions, signed-in requests --
    browsers = []
    for number in range(INTERACTIVE):
        http = browser()
        user = "alice" if number % 2 == 0 else "bob"
        redirect = oidc_provider.login(http, user, served.url("/auth/login", target_url="/whoami"))
        assert redirect.status_code == 303 and "/auth/callback?" in redirect.headers["Location"], redirect.text[:300]
        landed = browse(http, urljoin(redirect.url, redirect.headers["Location"]))
        assert landed.json()["remote_user"] == user
        browsers.append(http)
    session_reads = INTERACTIVE  # each landing on /whoami read its new session once
    for http in browsers:  # the app forgets the browser; the provider still knows it: a silent sign-in
        http.cookies.clear(domain="127.0.0.1", path="/", name=COOKIE)
        landed = browse(http, served.url("/auth/sso", connection=CONNECTION, target_url="/whoami"))
        assert landed.json()["remote_user"] in ("alice", "bob"), landed.text[:300]
        session_reads += 1
    signed_in_requests = 0
    seen: set[int] = set()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(10):
            shown = list(pool.map(lambda http: whoami(served, http), browsers * 4))
            signed_in_requests += len(shown)
            assert all(answer["remote_user"] in ("alice", "bob") for answer in shown)
            seen.update(answer["worker_pid"] for answer in shown)
            if seen == workers:
                break
    assert seen == workers, f"answered by {seen}, workers {workers}"
    # ... and each callback looked for one (its sign-in cookie's name starts with the session cookie's)
    session_reads += signed_in_requests + 2 * INTERACTIVE

    # -- one scrape, whichever worker answers: the sums of both --
    samples = scrape(served)
    sign_ins = 2 * INTERACTIVE
    assert value(samples, "sso_sign_ins_total", outcome="success") == sign_ins
    assert value(samples, "sso_sessions_created_total") == sign_ins
    assert value(samples, "sso_silent_sign_ins_total", outcome="signed_in") == INTERACTIVE
    assert value(samples, "sso_silent_sign_ins_total", outcome="login_required") == 0
    assert value(samples, "sso_provider_request_duration_seconds_count", endpoint="token") == sign_ins
    assert value(samples, "sso_provider_request_duration_seconds_count", endpoint="userinfo") == sign_ins
    assert value(samples, "sso_store_request_duration_seconds_count", operation="open_session") == session_reads
    assert value(samples, "sso_store_request_duration_seconds_count", operation="new_session") == sign_ins
    assert value(samples, "sso_store_failures_total", operation="open_session") == 0
    for pid in workers:  # both workers wrote counts of their own into the folder
        assert (served.multiproc_dir / f"histogram_{pid}.db").exists(), sorted(os.listdir(served.multiproc_dir))
    assert scrape(served) == samples  # a scrape counts nothing itself

    # -- health: ok, then the store dies --
    health = requests.get(served.url("/auth/health"), headers={"Connection": "close"}, timeout=10)
    assert (health.status_code, health.text) == (200, "ok\n")
    assert health.headers["Cache-Control"] == "no-store"
    assert served.redis.service.process is not None
    os.kill(served.redis.service.pid, signal.SIGKILL)
    served.redis.service.process.wait(5)
    killed_at = time.monotonic()
    answers = []
    for _ in range(4):  # both workers, whichever takes each probe
        time.sleep(HEALTH_CACHE_SECONDS)  # past the answer a worker keeps (a flood shares one store read a second)
        started = time.monotonic()
        answer = requests.get(served.url("/auth/health"), headers={"Connection": "close"}, timeout=10)
        answers.append((answer.status_code, answer.text, time.monotonic() - started))
    assert all(status == 503 and text == "unavailable\n" for status, text, _ in answers), answers
    assert max(took for _, _, took in answers) < HEALTH_WITHIN, answers
    assert time.monotonic() - killed_at < 4 * (HEALTH_WITHIN + HEALTH_CACHE_SECONDS)
    assert value(scrape(served), "sso_store_failures_total", operation="read_record") == 4
    assert "health check failing: session store" in served.service.output()  # the reason is in the log only
