"""Sessions shared by several processes on two "hosts", against real Redis, memcached and the real provider.

A load balancer in front of two machines, each running gunicorn with several
workers: here two independent ``gunicorn --workers 2 --threads 2`` processes
("host A" and "host B") on two loopback ports serve the same application
(``examples/gunicorn_env/app.py``, configured by ``SSO_*`` variables) with the
same client, session secret, cookie name and session store.  Cookies ignore
ports, so the test "browser" (a cookie-keeping ``requests.Session``) sends the
session cookie to both hosts, as a browser behind the load balancer would.

The stores are real: ``redis-server`` and ``memcached`` started here on free
loopback ports (``ext:redis``, ``ext:memcached``), and the ``file`` store in
one folder both hosts use (one machine, several processes).  The provider is
the bundled ``oidc-provider`` (``oidc_provider`` fixture); it knows both
hosts' callback and post-logout URLs and sends back-channel logouts to host A.

What is proven, per store: a sign-in through A holds on every worker of A and
B; a sign-out through B ends the session on A (even for a replayed cookie);
idle and absolute timeouts hold across hosts; a store outage answers a clean
503 page and service resumes when the store is back, without restarting
gunicorn; a back-channel logout from the provider, started by another
application, ends the session on both hosts.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
import requests
import waitress

from sso_middleware import SSOMiddleware
from sso_middleware.testing import ClientCredentials, DevProvider

from ..conftest import legacy_app
from ..servers import Service, free_port, gunicorn_service, running_stores, stop_all, stop_waitress

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "gunicorn_env"
CONNECTION = "Username-Password-Authentication"
ALICE = "alice"

#: Session lifetimes of the hosts of the timeout test (seconds) and the pace of its "busy" browser.
IDLE = 3
ABSOLUTE = 8
STEP = 0.7
#: The longest a request may take while the store is down (it is refused at once; the store timeout is 2 s).
OUTAGE_ANSWER_WITHIN = 3.0

REDIS = pytest.param("ext:redis", id="redis")
MEMCACHED = pytest.param("ext:memcached", id="memcached")
FILE = pytest.param("file", id="file")
TIMEOUT_STORES = ("ext:redis", "ext:memcached", "file")


# -- the hosts -------------------------------------------------------------------------


@dataclass
class Host:
    """One gunicorn "machine": its public URL and its master process (whose children are the workers)."""

    name: str
    base_url: str
    service: Service

    def url(self, path: str, **query: str) -> str:
        return self.base_url + path + ("?" + urlencode(query) if query else "")

    def workers(self) -> set[int]:
        return self.service.children()


@dataclass
class Hosts:
    """Two hosts behind an imaginary load balancer, sharing one client, secret, cookie and store."""

    store: str
    a: Host
    b: Host
    client: ClientCredentials
    cookie_name: str

    @property
    def both(self) -> tuple[Host, Host]:
        return (self.a, self.b)

    def logs(self, tail: Optional[int] = 4000) -> str:
        return "\n".join(f"--- {host.name} ---\n{host.service.output(tail)}" for host in self.both)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    """A real redis-server and a real memcached on free loopback ports (a missing binary fails, never skips)."""
    with running_stores(tmp_path_factory.mktemp("stores")) as services:
        yield services


@pytest.fixture(autouse=True)
def stores_running(stores: dict[str, Service]) -> None:
    """A test that stopped a store and failed before restarting it must not break the tests after it."""
    for service in stores.values():
        if not service.running:
            service.start()


def store_url(store: str, stores: dict[str, Service]) -> str:
    if store == "ext:redis":
        return f"redis://127.0.0.1:{stores[store].port}/0"
    if store == "ext:memcached":
        return f"127.0.0.1:{stores[store].port}"
    return ""


@contextlib.contextmanager
def host_pair(
    provider: DevProvider, stores: dict[str, Service], tmp: Path, store: str, **settings: str
) -> Iterator[Hosts]:
    """Start hosts A and B for ``store`` (both at once); both are always stopped."""
    slug = store.replace("ext:", "") + ("_short" if settings else "")
    ports = {"A": free_port(), "B": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    client = provider.register_client(
        [url + "/auth/callback" for url in urls.values()],
        post_logout_redirect_uris=[url + "/" for url in urls.values()],
        backchannel_logout_uri=urls["A"] + "/auth/backchannel-logout",
        client_name=f"shared-{slug}",
    )
    cookie_name = f"shared_{slug}"
    common = {
        "SSO_ISSUER": provider.issuer,
        "SSO_CLIENT_ID": client.client_id,
        "SSO_CLIENT_SECRET": client.client_secret,
        "SSO_SESSION_SECRET": secrets.token_urlsafe(32),
        "SSO_ALLOW_INSECURE_HTTP": "true",
        "SSO_COOKIE_NAME": cookie_name,
        "SSO_SESSION_TYPE": store,
        **settings,
    }
    if store == "file":
        common["SSO_SESSION_DATA_DIR"] = str(tmp / "sessions")  # one folder, both hosts: one machine
    else:
        common["SSO_SESSION_URL"] = store_url(store, stores)
    hosts: list[Host] = []
    try:
        for name, port in ports.items():
            env = {key: value for key, value in os.environ.items() if not key.startswith("SSO_")}
            env.update(common, SSO_BASE_URL=urls[name])
            service = gunicorn_service(f"host {name} ({store})", port, tmp / f"host-{name}.log", "app:app", APP_DIR,
                                       env)
            hosts.append(Host(f"host {name}", urls[name], service))
            service.launch()
        for host in hosts:
            host.service.wait_ready()
        yield Hosts(store, hosts[0], hosts[1], client, cookie_name)
    finally:
        stop_all(host.service for host in hosts)


@pytest.fixture(scope="module")
def hosts(
    request: pytest.FixtureRequest, oidc_provider: DevProvider, stores: dict[str, Service],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Hosts]:
    """Hosts A and B on the store named by the test's parameter, with the default session lifetimes."""
    with host_pair(oidc_provider, stores, tmp_path_factory.mktemp("hosts"), request.param) as pair:
        yield pair


@dataclass
class SecondApp:
    """Another application (its own client and back-channel URI), served in this process by waitress."""

    base_url: str
    client: ClientCredentials

    def url(self, path: str, **query: str) -> str:
        return self.base_url + path + ("?" + urlencode(query) if query else "")


@pytest.fixture(scope="module")
def second_app(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondApp]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    client = oidc_provider.register_client(
        [base_url + "/auth/callback"],
        post_logout_redirect_uris=[base_url + "/"],
        backchannel_logout_uri=base_url + "/auth/backchannel-logout",
        client_name="second-app",
    )
    middleware = SSOMiddleware(
        legacy_app, issuer=oidc_provider.issuer, client_id=client.client_id, client_secret=client.client_secret,
        base_url=base_url, session_secret=secrets.token_urlsafe(32), allow_insecure_http=True,
        session_data_dir=str(tmp_path_factory.mktemp("second-app")), cookie_name="second_app_session",
    )
    server = waitress.create_server(middleware, host="127.0.0.1", port=port, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield SecondApp(base_url, client)
    finally:
        stop_waitress(server)


# -- the browser -----------------------------------------------------------------------


@dataclass
class Visit:
    urls: list[str]
    response: requests.Response


def browse(http: requests.Session, url: str, max_hops: int = 20) -> Visit:
    """GET ``url`` and follow redirects one by one like a browser, recording each URL."""
    urls = [url]
    response = http.get(url, allow_redirects=False, timeout=10)
    while response.status_code in (301, 302, 303, 307, 308):
        assert len(urls) <= max_hops, f"redirect loop: {urls}"
        url = urljoin(response.url, response.headers["Location"])
        urls.append(url)
        response = http.get(url, allow_redirects=False, timeout=10)
    return Visit(urls, response)


@dataclass
class Browser:
    """A signed-in browser and when the sign-in was recorded (between ``signed_in_after`` and ``_before``)."""

    http: requests.Session
    signed_in_after: float
    signed_in_before: float


def sign_in(provider: DevProvider, host: Host, user: str = ALICE) -> Browser:
    """Interactive sign-in through ``host`` in a fresh browser, landing on its /whoami."""
    http = requests.Session()
    redirect = provider.login(http, user, host.url("/auth/login", target_url="/whoami"))
    assert redirect.status_code == 303, (redirect.url, redirect.text[:500])
    location = urljoin(redirect.url, redirect.headers["Location"])
    assert location.startswith(host.url("/auth/callback?")), location
    after = time.time()
    visit = browse(http, location)  # the callback records the sign-in, then /whoami
    before = time.time()
    assert visit.response.url == host.url("/whoami"), visit.urls
    assert whoami(visit.response, host)["remote_user"] == user
    return Browser(http, after, before)


def whoami(response: requests.Response, host: Host) -> dict[str, Any]:
    assert response.status_code == 200, (host.name, response.status_code, response.text[:500], host.service.output())
    shown: dict[str, Any] = json.loads(response.text)
    return shown


def get(host: Host, cookies: Any = None) -> requests.Response:
    """GET /whoami on a new connection (so that any worker may take it), with these cookies."""
    return requests.get(host.url("/whoami"), cookies=cookies, headers={"Connection": "close"}, timeout=10,
                        allow_redirects=False)


def ask(host: Host, cookies: Any = None) -> dict[str, Any]:
    """What /whoami shows with these cookies."""
    return whoami(get(host, cookies), host)


def cookie_expired(response: requests.Response, name: str) -> bool:
    """True when the response tells the browser to drop cookie ``name`` (an expiry date in the past)."""
    cookie = SimpleCookie(response.headers.get("Set-Cookie", ""))
    expires = cookie[name]["expires"] if name in cookie else ""
    return bool(expires) and parsedate_to_datetime(expires).timestamp() < time.time()


def burst(hosts: Hosts, cookies: Any, count: int) -> list[tuple[Host, requests.Response]]:
    """``count`` GET /whoami alternating A and B, six at a time, each on its own connection."""
    turns = [hosts.both[i % 2] for i in range(count)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(zip(turns, pool.map(lambda host: get(host, cookies), turns)))


# -- 1. one sign-in, every worker of both hosts ----------------------------------------


@pytest.mark.parametrize("hosts", [REDIS, MEMCACHED, FILE], indirect=True)
def test_sign_in_on_a_holds_on_every_worker_of_both_hosts(oidc_provider: DevProvider, hosts: Hosts) -> None:
    assert ask(hosts.b)["remote_user"] is None  # the control: without the cookie, B knows nobody
    browser = sign_in(oidc_provider, hosts.a)
    cookies = browser.http.cookies
    seen: dict[str, set[int]] = {host.name: set() for host in hosts.both}
    answers = 0

    def check(host: Host, shown: dict[str, Any]) -> None:
        nonlocal answers
        assert shown["remote_user"] == ALICE, (host.name, shown)
        assert shown["userinfo"]["email"] == "alice@example.com", (host.name, shown)
        seen[host.name].add(shown["worker_pid"])
        answers += 1

    for host in [hosts.a, hosts.b] * 5:  # one after the other, alternating
        check(host, ask(host, cookies))
    # Then six at a time, until every worker of both hosts has answered: on a loaded machine one
    # sync worker can win every accept() for a while, so the bound is time, not a number of bursts.
    deadline = time.monotonic() + 60
    while True:
        for host, response in burst(hosts, cookies, 30):
            check(host, whoami(response, host))
        if all(len(pids) == 2 for pids in seen.values()) or time.monotonic() > deadline:
            break
    assert answers >= 40
    for host in hosts.both:
        assert seen[host.name] == host.workers(), f"{host.name}: workers {host.workers()}, answered {seen[host.name]}"
    assert seen[hosts.a.name].isdisjoint(seen[hosts.b.name])  # four distinct processes


# -- 2. sign out through B -----------------------------------------------------------


@pytest.mark.parametrize("hosts", [REDIS, MEMCACHED, FILE], indirect=True)
def test_sign_out_through_b_signs_out_on_both_hosts(oidc_provider: DevProvider, hosts: Hosts) -> None:
    browser = sign_in(oidc_provider, hosts.a)
    old_cookie = browser.http.cookies[hosts.cookie_name]
    assert ask(hosts.b, browser.http.cookies)["remote_user"] == ALICE

    oidc_provider.clear_events()
    response = browser.http.get(hosts.b.url("/auth/logout", target_url="/"), allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text[:300]
    assert oidc_provider.is_provider_url(response.headers["Location"])  # provider logout: RP-initiated
    back = oidc_provider.logout_confirm(browser.http, response)
    assert back.status_code == 303
    assert urlsplit(back.headers["Location"])[:3] == urlsplit(hosts.b.url("/"))[:3]
    assert [event["logout"] for event in oidc_provider.events("end_session_confirm")] == [True]

    assert hosts.cookie_name not in browser.http.cookies  # B expired the cookie...
    for host in hosts.both:
        assert ask(host, browser.http.cookies)["remote_user"] is None
        # ...and the record is gone from the shared store: the old cookie, replayed, names nobody.
        assert ask(host, {hosts.cookie_name: old_cookie})["remote_user"] is None, host.name


# -- 3. idle and absolute timeouts across hosts --------------------------------------


@dataclass
class Seen:
    """One request of a browser: to which host, when it was sent and answered, and who was signed in."""

    host: str
    start: float
    end: float
    user: Optional[str]


def observe(host: Host, cookies: Any) -> Seen:
    start = time.time()
    user = ask(host, cookies)["remote_user"]
    return Seen(host.name, start, time.time(), user)


def idle_scenario(provider: DevProvider, hosts: Hosts) -> None:
    """Activity on A keeps the session alive on B past IDLE; then IDLE seconds without a request end it on B."""
    browser = sign_in(provider, hosts.a)
    cookies = browser.http.cookies
    seen = [observe(hosts.a, cookies)]
    while seen[-1].end - browser.signed_in_before < IDLE + 0.5:
        time.sleep(STEP)
        seen.append(observe(hosts.a, cookies))
    busy = observe(hosts.b, cookies)  # B reads the idle stamp A wrote; the sign-in alone is older than IDLE
    assert [s.user for s in seen] == [ALICE] * len(seen), seen
    assert busy.start - browser.signed_in_before > IDLE and busy.user == ALICE, busy

    time.sleep(max(0.0, busy.end + IDLE + 0.5 - time.time()))
    after_idle = [observe(hosts.b, cookies), observe(hosts.a, cookies)]  # B judges first, then A agrees
    assert [s.user for s in after_idle] == [None, None], after_idle
    # the guard: it was the idle timeout that ended the session, not the absolute one
    assert after_idle[-1].end - browser.signed_in_after < ABSOLUTE, (browser, after_idle)


def absolute_scenario(provider: DevProvider, hosts: Hosts) -> None:
    """A session kept busy on A and B ends ABSOLUTE seconds after the sign-in, on both."""
    browser = sign_in(provider, hosts.a)
    cookies = browser.http.cookies
    seen: list[Seen] = []
    turn = 0
    while not seen or seen[-1].start - browser.signed_in_before <= ABSOLUTE + 1 or turn % 2:
        seen.append(observe(hosts.b if turn % 2 == 0 else hosts.a, cookies))
        turn += 1
        time.sleep(STEP)
    for s in seen:
        if s.end - browser.signed_in_after < ABSOLUTE:  # necessarily within the lifetime
            assert s.user == ALICE, (s, browser, seen)
        if s.start - browser.signed_in_before > ABSOLUTE:  # necessarily past it
            assert s.user is None, (s, browser, seen)
    users = [s.user for s in seen]
    assert users == sorted(users, key=lambda user: user is None), f"signed in again after the end: {seen}"
    past_idle = [s for s in seen if s.start - browser.signed_in_before > IDLE + 1 and s.user == ALICE]
    assert {s.host for s in past_idle} == {hosts.a.name, hosts.b.name}, seen  # busy: outlived the idle timeout
    assert {s.host for s in seen[-2:]} == {hosts.a.name, hosts.b.name} and users[-2:] == [None, None]


@pytest.fixture(scope="module")
def timeout_runs(
    oidc_provider: DevProvider, stores: dict[str, Service], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[Future[None], Future[None]]]]:
    """Both scenarios, on hosts whose sessions last IDLE/ABSOLUTE seconds, for every store at once.

    They mostly wait, so they run side by side (the tests take ABSOLUTE seconds, not six times
    that); each test below collects, and so fails with, its own store's results.
    """
    with contextlib.ExitStack() as stack:
        pairs = {
            store: stack.enter_context(host_pair(
                oidc_provider, stores, tmp_path_factory.mktemp("short-hosts"), store,
                SSO_SESSION_IDLE_TIMEOUT=str(IDLE), SSO_SESSION_ABSOLUTE_TIMEOUT=str(ABSOLUTE),
            ))
            for store in TIMEOUT_STORES
        }
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=2 * len(pairs)))  # done before the hosts stop
        runs = {
            store: (pool.submit(idle_scenario, oidc_provider, pair),
                    pool.submit(absolute_scenario, oidc_provider, pair))
            for store, pair in pairs.items()
        }
        yield runs


@pytest.mark.parametrize("store", [REDIS, MEMCACHED, FILE])
def test_idle_and_absolute_timeouts_hold_across_hosts(
    timeout_runs: dict[str, tuple[Future[None], Future[None]]], store: str
) -> None:
    idle, absolute = timeout_runs[store]
    idle.result(timeout=60)
    absolute.result(timeout=60)


# -- 4. back-channel logout from the provider ------------------------------------------


@pytest.mark.parametrize("hosts", [REDIS, MEMCACHED, FILE], indirect=True)
def test_back_channel_logout_from_another_app_ends_the_session_on_both_hosts(
    oidc_provider: DevProvider, hosts: Hosts, second_app: SecondApp
) -> None:
    browser = sign_in(oidc_provider, hosts.a)  # signs in at the provider too
    for host in hosts.both:
        assert ask(host, browser.http.cookies)["remote_user"] == ALICE

    logins = len(oidc_provider.events("login"))
    visit = browse(browser.http, second_app.url("/auth/sso", connection=CONNECTION, target_url="/"))
    assert json.loads(visit.response.text)["remote_user"] == ALICE, visit.urls
    assert len(oidc_provider.events("login")) == logins  # silent: no login form for the second application

    oidc_provider.clear_events()
    response = browser.http.get(second_app.url("/auth/logout", target_url="/"), allow_redirects=False, timeout=10)
    assert response.status_code == 303 and oidc_provider.is_provider_url(response.headers["Location"])
    back = oidc_provider.logout_confirm(browser.http, response)  # "Yes, sign me out" at the provider
    assert back.status_code == 303 and back.headers["Location"].startswith(second_app.url("/"))

    expected = {hosts.client.client_id, second_app.client.client_id}
    deadline = time.monotonic() + 10
    while {event["client_id"] for event in oidc_provider.events("backchannel_logout")} != expected:
        assert time.monotonic() < deadline, oidc_provider.events("backchannel_logout")
        time.sleep(0.1)
    for event in oidc_provider.events("backchannel_logout"):
        assert (event["ok"], event["error"], event["sub"]) == (True, None, ALICE), event

    # Nobody touched the hosts' cookie: the browser still sends it, and it names no session on either host.
    assert hosts.cookie_name in browser.http.cookies
    for host in hosts.both:
        assert ask(host, browser.http.cookies)["remote_user"] is None, host.name


# -- 5. the store goes away and comes back (last for each store: it empties it) ---------


def assert_store_unavailable_page(response: requests.Response, elapsed: float, host: Host) -> None:
    assert response.status_code == 503, (host.name, response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("text/html"), response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert "<code>session_store_unavailable</code>" in response.text, response.text[:1000]
    assert "Traceback" not in response.text and "Error:" not in response.text, response.text
    assert elapsed < OUTAGE_ANSWER_WITHIN, f"{host.name} took {elapsed:.2f} s to answer"


@pytest.mark.parametrize("hosts", [REDIS, MEMCACHED], indirect=True)
def test_store_outage_is_a_clean_503_and_service_resumes_without_restart(
    oidc_provider: DevProvider, hosts: Hosts, stores: dict[str, Service]
) -> None:
    store = stores[hosts.store]
    browser = sign_in(oidc_provider, hosts.a)
    for host, response in burst(hosts, browser.http.cookies, 24):  # every worker thread talks to the store
        assert whoami(response, host)["remote_user"] == ALICE
    workers = {host.name: host.workers() for host in hosts.both}

    store.stop()
    for host in [*hosts.both, *hosts.both]:  # twice each: a client that already knows the store is down too
        start = time.monotonic()
        response = get(host, browser.http.cookies)
        assert_store_unavailable_page(response, time.monotonic() - start, host)
    for host in hosts.both:
        assert ask(host)["remote_user"] is None  # no cookie: passed through untouched, the store is not asked
        # Starting a sign-in needs no store (the sign-in in flight is in its own cookie)...
        http = requests.Session()
        redirect = oidc_provider.login(http, ALICE, host.url("/auth/login", target_url="/whoami"))
        callback = urljoin(redirect.url, redirect.headers.get("Location", ""))
        assert redirect.status_code == 303 and callback.startswith(host.url("/auth/callback?")), redirect.url
        ours = [cookie.name for cookie in http.cookies if cookie.name.startswith(hosts.cookie_name)]
        assert len(ours) == 1 and ours[0].startswith(hosts.cookie_name + "_tx_"), ours  # no session cookie
        # ...completing it does: the same clean 503, no session cookie, and the sign-in in flight is used up.
        start = time.monotonic()
        refused = browse(http, callback)
        assert refused.urls[1] == host.url("/auth/failure", error="session_store_unavailable"), refused.urls
        assert_store_unavailable_page(refused.response, time.monotonic() - start, host)
        assert [cookie.name for cookie in http.cookies if cookie.name.startswith(hosts.cookie_name)] == []
    outage_ended = time.monotonic()

    store.start()  # same port, and empty: the old session is gone
    restarted = time.monotonic()
    # A client that met the outage may wait up to 1 s before it tries again (python-memcached's dead_retry);
    # after that, every request must be served -- also by worker threads that did not meet the outage.
    time.sleep(max(0.0, outage_ended + 1.2 - time.monotonic()))
    answers = burst(hosts, browser.http.cookies, 24)
    failed = [(host.name, response.status_code) for host, response in answers if response.status_code != 200]
    assert not failed, (
        f"{len(failed)} of {len(answers)} requests failed {time.monotonic() - restarted:.1f} s after "
        f"{store.name} was back: {failed}\n{hosts.logs()}"
    )
    for host, response in answers:
        assert whoami(response, host)["remote_user"] is None  # the record was lost with the store's memory
        assert cookie_expired(response, hosts.cookie_name)  # and the stale cookie is cleared
    again = sign_in(oidc_provider, hosts.a)
    answers = burst(hosts, again.http.cookies, 24)
    for host, response in answers:
        assert whoami(response, host)["remote_user"] == ALICE
    assert {host.name for host, _ in answers} == {hosts.a.name, hosts.b.name}
    assert {host.name: host.workers() for host in hosts.both} == workers  # the very same gunicorn workers
    assert "Traceback" not in hosts.logs(tail=None), hosts.logs(tail=None)
