"""Redis Cluster (``session_url = redis+cluster://...``): sign-in, locks, logout, a failover and a resharding.

Six ``redis-server --cluster-enabled yes`` made into three masters with a replica each by
``redis-cli --cluster create`` (:mod:`tests.redis_ha_servers`; a node is failed after 1 s).
The cluster is shared by the tests of this module, in order: everything works on a healthy
cluster; a master holding users' sessions is killed under load (503 for its users for a few
seconds, then everyone as themselves, no session lost); slots holding sessions are moved to
another master by ``redis-cli --cluster reshard`` while users keep asking and new users sign
in (no session lost, no answer for another user).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from redis.cluster import key_slot

from sso_middleware import SSOMiddleware
from sso_middleware._sealing import record_prefix
from sso_middleware.testing import Clock

from ..conftest import browser_for
from ..fakes import FakeProvider
from ..redis_ha_servers import Cluster
from ..store_load import (
    LIFETIME,
    Browser,
    Load,
    check_backchannel_logout,
    check_lock,
    check_refresh,
    sign_in,
    sign_in_users,
    store_settings,
    who,
)

USERS = 8
RESUMES_WITHIN = 20.0
#: Slots ``redis-cli --cluster reshard`` moves (from the lowest of the source master's): about a tenth.
MOVED_SLOTS = 1500


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(Path(tmp_path_factory.mktemp("cluster"))).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock(int(time.time()))


@pytest.fixture
def provider(clock: Clock) -> FakeProvider:
    return FakeProvider(clock=clock, expires_in=LIFETIME)


@pytest.fixture
def middleware(cluster: Cluster, make_middleware: Callable[..., SSOMiddleware], clock: Clock) -> SSOMiddleware:
    cluster.wait_healthy()
    return make_middleware(**store_settings(cluster.url), clock=clock)


def session_slot(middleware: SSOMiddleware, browser: Browser) -> int:
    """The Cluster slot of the session record a browser's cookie names."""
    session_id = browser.cookies["__Host-sso_session"][40:]  # after the id's 40-character signature
    return int(key_slot(f"{record_prefix(middleware.store.backend.config)}:{session_id}:session".encode()))


def test_sign_in_refresh_lock_and_back_channel_logout_work_on_a_cluster(
        cluster: Cluster, middleware: SSOMiddleware, provider: FakeProvider, clock: Clock) -> None:
    assert list(middleware.store.backend.probe()) == [("OK", (  # what the doctor prints
        f"redis at {cluster.url} answers PING, a cluster of 3 master(s) and 3 replica(s) "
        "(session_store_timeout 0.5 s)"))]
    browsers = sign_in_users(middleware, provider, 4)
    check_lock(middleware.store.backend)
    check_backchannel_logout(browsers, "user2")
    check_refresh(browsers["user0"], "user0", provider, clock)
    for user in ("user0", "user1", "user3"):
        assert who(browsers[user]) == user


def test_a_master_failover_is_503_for_its_users_then_no_session_is_lost(
        cluster: Cluster, middleware: SSOMiddleware, provider: FakeProvider) -> None:
    browsers = sign_in_users(middleware, provider, USERS)
    cluster.replicated()
    victim = cluster.master_of(session_slot(middleware, browsers["user0"]))
    on_victim = [user for user, b in browsers.items() if cluster.master_of(session_slot(middleware, b)) == victim]
    with Load(browsers) as load:
        time.sleep(0.3)
        killed_at = time.monotonic()
        cluster.kill(victim)
        cluster.wait_failed_over(victim)
        failed_over_at = time.monotonic()
        load.wait_all_served(RESUMES_WITHIN)
    report = load.report(killed_at)
    print(f"\ncluster failover: {len(on_victim)} of {USERS} sessions on the killed master; replica promoted "
          f"{failed_over_at - killed_at:.2f} s after the kill; {report.text()}")
    assert report.wrong == [], report.wrong[:5]
    assert report.unavailable > 0
    assert report.resumed is not None and report.resumed < RESUMES_WITHIN
    for user, browser in browsers.items():  # none lost, the killed master's included
        assert who(browser) == user
    check_lock(middleware.store.backend)
    check_backchannel_logout(browsers, on_victim[0])


def test_a_resharding_under_load_loses_no_session_and_answers_nobody_as_someone_else(
        cluster: Cluster, middleware: SSOMiddleware, provider: FakeProvider) -> None:
    browsers = sign_in_users(middleware, provider, USERS)
    source, target = sorted(cluster.masters(), key=lambda node: node["slots"], reverse=True)[:2]
    moving = sorted(slot for low, high in source["ranges"] for slot in range(low, high + 1))[:MOVED_SLOTS]
    # Users until several sessions sit in the slots about to move (each lands in a random slot).
    while sum(session_slot(middleware, b) in moving for b in browsers.values()) < 3 and len(browsers) < 200:
        browser = browser_for(middleware)
        user = f"user{len(browsers)}"
        sign_in(browser, provider, user)
        browsers[user] = browser
    movers = [user for user, b in browsers.items() if session_slot(middleware, b) in moving]
    assert len(movers) >= 3
    load_users = dict(list(browsers.items())[:USERS]) | {user: browsers[user] for user in movers}
    signed_in_during: list[str] = []
    failed_during: list[str] = []
    stop = threading.Event()

    def newcomers() -> None:  # sign-ins (records, index sets) while slots move
        while not stop.is_set():
            browser, user = browser_for(middleware), f"new{len(signed_in_during) + len(failed_during)}"
            try:
                sign_in(browser, provider, user)
                assert who(browser) == user
                signed_in_during.append(user)
            except Exception as exc:
                failed_during.append(f"{user}: {type(exc).__name__}: {str(exc)[:200]}")

    with Load(load_users) as load:
        thread = threading.Thread(target=newcomers, daemon=True)
        thread.start()
        started = time.monotonic()
        cluster.reshard(source["id"], target["id"], MOVED_SLOTS)
        took = time.monotonic() - started
        time.sleep(0.5)
        stop.set()
        thread.join(30)
    report = load.report(started)
    print(f"\ncluster resharding: {MOVED_SLOTS} slots ({len(movers)} sessions among them) moved in {took:.2f} s; "
          f"{report.text()}; {len(signed_in_during)} sign-ins during it, {len(failed_during)} failed")
    assert report.wrong == [], report.wrong[:5]
    assert report.unavailable == 0  # MOVED and ASK are followed: a resharding is no outage
    assert failed_during == []
    for user in movers:
        assert cluster.master_of(session_slot(middleware, browsers[user]))["id"] == target["id"]
    for user, browser in browsers.items():
        assert who(browser) == user
