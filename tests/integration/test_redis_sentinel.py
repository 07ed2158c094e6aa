"""Redis Sentinel (``session_url = redis+sentinel://...``): a master failover under load, on real servers.

Debian's ``redis-server`` and ``redis-sentinel`` on loopback ports (:mod:`tests.redis_ha_servers`):
one master, one replica, three sentinels (quorum 2, a master is down after 1 s), in the
clear and over TLS with passwords (``rediss+sentinel://:PW@.../service?sentinel_password=SPW``).  Users
sign in through the in-memory provider -- and one through the real dev provider, on a second
application served by waitress -- the replica acknowledges their records, and the master is
killed (SIGKILL).  Requests during the failover are answered 503 ``session_store_unavailable``
(never a 500, never another user); once the sentinels have promoted the replica, every user
is served as themselves again by the same middleware object (no restart), and the refresh
lock, token records and back-channel logout work on the new master.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urljoin

import pytest
import requests
import waitress

from sso_middleware import SSOMiddleware
from sso_middleware.testing import Clock, DevProvider

from ..conftest import browser_for, legacy_app
from ..fakes import FakeProvider
from ..pki import CertificateAuthority
from ..redis_ha_servers import SentinelGroup, kill
from ..servers import free_port, stop_waitress
from ..store_load import (
    LIFETIME,
    Load,
    check_backchannel_logout,
    check_lock,
    check_refresh,
    sign_in_users,
    store_settings,
    who,
)

USERS = 6
#: The failover must be over (every user served) within this many seconds of the kill.
RESUMES_WITHIN = 20.0


@pytest.fixture
def clock() -> Clock:
    return Clock(int(time.time()))


@pytest.fixture
def provider(clock: Clock) -> FakeProvider:
    return FakeProvider(clock=clock, expires_in=LIFETIME)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    started = SentinelGroup(tmp_path / "sentinel").start()
    try:
        yield started
    finally:
        started.stop()


class DevApp:
    """A second application on the same Sentinel store, served over HTTP for the real dev provider."""

    def __init__(self, provider: DevProvider, url: str, data_dir: Path) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        client = provider.register_client([self.base_url + "/auth/callback"], client_name="sentinel-app")
        self.middleware = SSOMiddleware(
            legacy_app, issuer=provider.issuer, client_id=client.client_id, client_secret=client.client_secret,
            base_url=self.base_url, session_secret=secrets.token_urlsafe(32), allow_insecure_http=True,
            session_data_dir=str(data_dir), cookie_name="sentinel_app", session_type="ext:redis",
            session_url=url, session_store_timeout=0.5)
        self.server = waitress.create_server(self.middleware, host="127.0.0.1", port=port, threads=2)
        threading.Thread(target=self.server.run, daemon=True).start()

    def sign_in(self, provider: DevProvider, user: str) -> requests.Session:
        http = requests.Session()
        redirect = provider.login(http, user, self.base_url + "/auth/login?target_url=/")
        assert redirect.status_code == 303, (redirect.url, redirect.text[:300])
        callback = http.get(urljoin(redirect.url, redirect.headers["Location"]), allow_redirects=False, timeout=10)
        assert callback.status_code == 303 and callback.headers["Location"] == self.base_url + "/", callback.text
        assert self.who(http) == user
        return http

    def who(self, http: requests.Session) -> Any:
        response = http.get(self.base_url + "/", timeout=10)
        assert response.status_code == 200, response.text[:300]
        return response.json()["remote_user"]

    def stop(self) -> None:
        stop_waitress(self.server)


def test_a_master_failover_is_503_for_a_few_seconds_then_every_user_is_back_as_themselves(
    group: SentinelGroup, make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, clock: Clock,
    oidc_provider: DevProvider, tmp_path: Path,
) -> None:
    middleware = make_middleware(**store_settings(group.url), clock=clock)
    browsers = sign_in_users(middleware, provider, USERS)
    dev_app = DevApp(oidc_provider, group.url, tmp_path / "dev-app")
    try:
        dev_browser = dev_app.sign_in(oidc_provider, "alice")
        group.replicated()  # the records are on the replica before the master goes
        old = group.master_port()
        with Load(browsers) as load:
            time.sleep(0.3)
            killed_at = time.monotonic()
            kill(group.data[old])
            new = group.wait_new_master(old)
            promoted_at = time.monotonic()
            load.wait_all_served(RESUMES_WITHIN)
        report = load.report(killed_at)
        print(f"\nsentinel failover: promoted {promoted_at - killed_at:.2f} s after the kill; {report.text()}")
        assert report.wrong == [], report.wrong[:5]
        assert report.unavailable > 0  # the failover was seen: 503s, not a lucky gap
        assert report.resumed is not None and report.resumed < RESUMES_WITHIN
        assert new != old
        assert list(middleware.store.backend.probe()) == [("OK", (
            f"redis at {group.url} answers PING, master 127.0.0.1:{new} of service mymaster found through the "
            "sentinels (session_store_timeout 0.5 s)"))]  # what the doctor prints

        # Every user is still signed in, as themselves, on the same middleware object (no restart).
        for user, browser in browsers.items():
            assert who(browser) == user
        assert dev_app.who(dev_browser) == "alice"
        # The new master takes writes: the refresh lock and token records, a fresh sign-in, a back-channel logout.
        check_lock(middleware.store.backend)
        check_backchannel_logout(browsers, "user1")
        check_refresh(browsers["user0"], "user0", provider, clock)  # (moves the clock: logout tokens last 2 min)
        assert who(sign_in_users(middleware, provider, 1)["user0"]) == "user0"
    finally:
        dev_app.stop()


def test_over_tls_with_passwords_sentinels_and_servers_fail_over_the_same(
        tmp_path: Path, make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    ca = CertificateAuthority(tmp_path / "pki", name="sentinel test CA")
    group = SentinelGroup(tmp_path / "tls-sentinel", ca=ca, password="data-pass-4711",
                          sentinel_password="sentinel-pass-0815").start()
    try:
        middleware = make_middleware(**store_settings(group.url), session_tls_ca_file=str(ca.cert))
        browsers = sign_in_users(middleware, provider, 3)
        group.replicated()
        old = group.master_port()
        with Load(browsers) as load:
            killed_at = time.monotonic()
            kill(group.data[old])
            group.wait_new_master(old)
            load.wait_all_served(RESUMES_WITHIN)
        report = load.report(killed_at)
        print(f"\nsentinel failover over TLS: {report.text()}")
        assert report.wrong == [], report.wrong[:5]
        for user, browser in browsers.items():
            assert who(browser) == user
        check_lock(middleware.store.backend)

        # A wrong sentinel password: the master cannot be found, a clean 503 (and the doctor says why).
        wrong = make_middleware(**store_settings(group.url.replace("sentinel-pass-0815", "guess")),
                                session_tls_ca_file=str(ca.cert))
        intruder = browser_for(wrong)
        intruder.set_cookie("__Host-sso_session", browsers["user0"].cookies["__Host-sso_session"])
        assert "session_store_unavailable" in intruder.get("/page", status=503).text
        findings = list(wrong.store.backend.probe())
        assert findings[0] == ("OK", f"session_tls_ca_file {ca.cert}: 1 CA certificate(s) trusted for Redis")
        status, message = findings[-1]
        assert status == "FAIL" and "MasterNotFoundError" in message
        assert "sentinel-pass" not in message and "data-pass" not in message and "guess" not in message
    finally:
        group.stop()
