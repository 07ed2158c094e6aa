"""Access tokens for downstream APIs, end to end: kept, used, refreshed once per expiry, revoked.

The provider is the bundled ``oidc-provider`` started here with short-lived
access tokens (``access_token_ttl=4``; refresh tokens rotate, and reusing a
rotated one is refused and revokes the grant).  The application
(:mod:`tests.token_apps`) calls the provider's userinfo endpoint with
``authorization_header(environ)`` -- a real resource server that must accept
the token -- and shows a fingerprint of the token, never the token.

With ``refresh_margin=1`` a token is due one second before it expires, so a
session in continuous use refreshes every ``TTL - MARGIN = 3`` seconds.  The
headline proof is :func:`test_single_flight_refresh_across_two_hosts`: two
gunicorn "hosts" of two gthread workers each share a Redis, memcached or file
store, and sixteen clients with one session hammer both hosts for
about 13 seconds: every answer is alice's, no refresh token is ever used
twice (the provider records no refused grant), and the provider saw exactly
one refresh per expiry.  Its figures are printed (``-s``) and written to
``test-artifacts/refresh-concurrency.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
import requests
import waitress
from waitress.server import BaseWSGIServer

from sso_middleware import SSOMiddleware
from sso_middleware._session.state import TOKENS_PREFIX
from sso_middleware.testing import DEFAULT_API, ClientCredentials, DevProvider

from ..servers import Service, free_port, gunicorn_service, running_stores, stop_all, stop_waitress
from ..token_apps import WSGIApp, token_app

TTL = 4  # seconds an access token lives
MARGIN = 1  # refresh_margin: refreshed this long before it expires
PERIOD = TTL - MARGIN  # a session in continuous use refreshes this often
SCOPE = "openid profile email offline_access"
AUDIENCE = DEFAULT_API  # an API the provider knows (an unknown one is invalid_target, as at Auth0)
#: The hammering lasts until the middle of the period after this many expiries (about 13 s): exactly
#: ``int(HAMMER_PERIODS + 1)`` refreshes are due in it, none of them close to its end.
HAMMER_PERIODS = 3.5
CLIENTS = 16
ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "test-artifacts" / "refresh-concurrency.json"


# -- the provider, the stores, the applications ------------------------------------------


@pytest.fixture(scope="module")
def provider() -> Iterator[DevProvider]:
    """A provider of its own, whose access tokens live ``TTL`` seconds."""
    started = DevProvider(access_token_ttl=TTL)
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    """A real redis-server and a real memcached on free loopback ports (a missing binary fails, never skips)."""
    with running_stores(tmp_path_factory.mktemp("token-stores")) as services:
        yield services


@dataclass
class App:
    """The token app in this process behind waitress."""

    name: str
    base_url: str
    client: ClientCredentials
    middleware: SSOMiddleware
    server: BaseWSGIServer

    @property
    def cookie_name(self) -> str:
        return f"{self.name}_session"

    def url(self, path: str, **query: str) -> str:
        return self.base_url + path + ("?" + urlencode(query) if query else "")


def token_settings(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"scope": SCOPE, "keep_access_token": True, "refresh_margin": MARGIN,
                                "protected_paths": ("/private",)}
    settings.update(overrides)
    return settings


def start_app(provider: DevProvider, name: str, tmp: Path, threads: int = 4, app: Optional[WSGIApp] = None,
              **settings: Any) -> App:
    """``app`` behind a middleware of its own (default: the token app calling the provider's userinfo)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    client = provider.register_client([base_url + "/auth/callback"], post_logout_redirect_uris=[base_url + "/"],
                                      client_name=name)
    middleware = SSOMiddleware(
        app or token_app(provider.endpoint("userinfo")), issuer=provider.issuer, client_id=client.client_id,
        client_secret=client.client_secret, base_url=base_url, session_secret=secrets.token_urlsafe(32),
        session_data_dir=str(tmp / name), allow_insecure_http=True, cookie_name=f"{name}_session", **settings,
    )
    server = waitress.create_server(middleware, host="127.0.0.1", port=port, threads=threads)
    threading.Thread(target=server.run, daemon=True).start()
    return App(name, base_url, client, middleware, server)


@pytest.fixture(scope="module")
def apps(provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, App]]:
    tmp = tmp_path_factory.mktemp("token-apps")
    started = {
        "tokens": start_app(provider, "tokens", tmp, **token_settings(audience=AUDIENCE)),
        "plain": start_app(provider, "plain", tmp, scope=SCOPE, protected_paths=("/private",)),
        "keep": start_app(provider, "keep", tmp, **token_settings(refresh_failure="keep_session")),
        "cookie": start_app(provider, "cookie", tmp, threads=8, **token_settings(session_type="cookie")),
    }
    try:
        yield started
    finally:
        for app in started.values():
            stop_waitress(app.server)


# -- the browser ---------------------------------------------------------------------------


def browse(http: requests.Session, url: str, max_hops: int = 20) -> list[requests.Response]:
    """GET ``url`` following redirects like a browser; every response (a loop fails the test)."""
    responses = [http.get(url, allow_redirects=False, timeout=10)]
    while responses[-1].status_code in (301, 302, 303, 307, 308):
        assert len(responses) <= max_hops, f"redirect loop: {[r.url for r in responses]}"
        responses.append(http.get(urljoin(responses[-1].url, responses[-1].headers["Location"]),
                                  allow_redirects=False, timeout=10))
    return responses


def sign_in(provider: DevProvider, base_url: str, user: str = "alice", target: str = "/whoami") -> requests.Session:
    """A fresh browser signs ``user`` in interactively; it lands on ``target`` (checked)."""
    http = requests.Session()
    redirect = provider.login(http, user, f"{base_url}/auth/login?{urlencode({'target_url': target})}")
    assert redirect.status_code == 303, (redirect.url, redirect.status_code, redirect.text[:300])
    landing = browse(http, urljoin(redirect.url, redirect.headers["Location"]))[-1]
    assert landing.url == base_url + target, landing.url
    assert landing.status_code == 200 and landing.json()["user"] == user, landing.text[:300]
    return http


def get(http: requests.Session, url: str, **headers: str) -> dict[str, Any]:
    """GET a JSON page of the token app (no redirects); its body with the HTTP status as ``http``."""
    response = http.get(url, headers=headers, allow_redirects=False, timeout=10)
    assert response.headers.get("Content-Type", "").startswith("application/json"), (
        response.status_code, response.headers, response.text[:300])
    shown: dict[str, Any] = response.json()
    shown["http"] = response.status_code
    return shown


def api_ok(shown: dict[str, Any], user: str = "alice") -> dict[str, Any]:
    """An /api answer where the resource server accepted the token and named ``user``."""
    assert shown["http"] == 200 and shown["status"] == 200, shown
    assert shown["sub"] == user and shown["user"] == user, shown
    assert shown["token"] and shown["expires_at"], shown
    return shown


def session_id(http: requests.Session, app: App) -> str:
    """The id in our signed session cookie (40 hex digits of HMAC, then the id)."""
    value = http.cookies.get(app.cookie_name)
    assert value and len(value) > 40, value
    return value[40:]


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


# -- the provider's records ----------------------------------------------------------------


def token_events(provider: DevProvider, client: ClientCredentials) -> list[dict[str, Any]]:
    return [event for event in provider.events("token") if event.get("client_id") == client.client_id]


def refreshes(provider: DevProvider, client: ClientCredentials) -> list[dict[str, Any]]:
    return [event for event in token_events(provider, client) if event.get("grant_type") == "refresh_token"]


def refused(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event.get("error") or event.get("status") != 200]


# -- 1./2. the token reaches the app and a real resource server accepts it -----------------


def test_signed_in_api_call_is_accepted_by_the_provider(provider: DevProvider, apps: dict[str, App]) -> None:
    app = apps["tokens"]
    provider.clear_events()
    http = sign_in(provider, app.base_url)

    before = time.time()
    shown = api_ok(get(http, app.url("/api")))
    assert shown["keys"] == ["sso.access_token", "sso.access_token_expires_at"]  # no sso.token_error
    assert shown["token_error"] is None
    assert before - 1 < shown["expires_at"] <= before + TTL + 0.5
    userinfo_calls = provider.events("userinfo")  # the middleware's own at sign-in, then the app's
    assert (userinfo_calls[-1]["status"], userinfo_calls[-1]["auth"]) == (200, "header")  # Authorization: Bearer

    # On the wire: Auth0's audience and offline_access asked for; a refresh token came back.
    (authorize,) = [e for e in provider.events("authorize") if e["client_id"] == app.client.client_id]
    assert authorize["params"]["audience"] == AUDIENCE
    assert "offline_access" in authorize["params"]["scope"].split()
    (code_grant,) = token_events(provider, app.client)
    assert code_grant["grant_type"] == "authorization_code"
    assert set(code_grant["issued"]) == {"access_token", "id_token", "refresh_token"}

    # Anonymous: no token keys at all, and the API call has no header to send.
    anonymous = requests.Session()
    assert get(anonymous, app.url("/whoami"))["keys"] == []
    refused_call = get(anonymous, app.url("/api"))
    assert refused_call["http"] == 401 and refused_call["user"] is None and refused_call["keys"] == []
    assert refused_call["detail"] == "no access token"

    # Without keep_access_token: signed in, but no token and no token error.
    plain = apps["plain"]
    http = sign_in(provider, plain.base_url)
    shown = get(http, plain.url("/whoami"))
    assert shown["user"] == "alice" and shown["keys"] == [] and shown["token"] is None
    assert get(http, plain.url("/api"))["http"] == 401


# -- 3. one refresh per expiry -------------------------------------------------------------


def test_one_refresh_per_expiry_and_the_new_token_works(provider: DevProvider, apps: dict[str, App]) -> None:
    app = apps["tokens"]
    http = sign_in(provider, app.base_url)
    shown = api_ok(get(http, app.url("/api")))
    tokens = [shown["token"]]
    assert refreshes(provider, app.client) == []

    for expiry in range(1, 4):
        due = shown["expires_at"] - MARGIN
        # Shortly before it is due: the same token, no refresh.
        sleep_until(due - 0.6)
        early = api_ok(get(http, app.url("/api")))
        assert early["token"] == tokens[-1]
        assert len(refreshes(provider, app.client)) == expiry - 1
        # Once due: the next request refreshes, exactly once, and the new token is accepted.
        sleep_until(due + 0.3)
        shown = api_ok(get(http, app.url("/api")))
        assert shown["token"] not in tokens
        tokens.append(shown["token"])
        assert shown["expires_at"] > time.time() + MARGIN
        events = refreshes(provider, app.client)
        assert len(events) == expiry, events
        assert refused(events) == []
        assert {"access_token", "refresh_token"} <= set(events[-1]["issued"])
        # The following requests use it without refreshing again.
        assert api_ok(get(http, app.url("/api")))["token"] == shown["token"]
        assert len(refreshes(provider, app.client)) == expiry
    assert refused(token_events(provider, app.client)) == []
    assert app.middleware.refresher.refreshes >= 3


# -- 4. single flight across threads, processes and hosts ----------------------------------


@dataclass
class Hosts:
    store: str
    urls: tuple[str, str]
    services: tuple[Service, Service]
    client: ClientCredentials
    cookie_name: str

    def logs(self, tail: Optional[int] = 4000) -> str:
        return "\n".join(f"--- {service.name} ---\n{service.output(tail)}" for service in self.services)


@contextlib.contextmanager
def token_hosts(provider: DevProvider, stores: dict[str, Service], tmp: Path, store: str) -> Iterator[Hosts]:
    """Hosts A and B (gunicorn, 2 workers x 4 threads each) of the token app on one shared ``store``."""
    slug = store.replace("ext:", "")
    ports = (free_port(), free_port())
    urls = (f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")
    client = provider.register_client([url + "/auth/callback" for url in urls], client_name=f"hosts-{slug}")
    cookie_name = f"tokens_{slug}"
    common = {
        "SSO_ISSUER": provider.issuer,
        "SSO_CLIENT_ID": client.client_id,
        "SSO_CLIENT_SECRET": client.client_secret,
        "SSO_SESSION_SECRET": secrets.token_urlsafe(32),
        "SSO_ALLOW_INSECURE_HTTP": "true",
        "SSO_COOKIE_NAME": cookie_name,
        "SSO_SESSION_TYPE": store,
        "SSO_SCOPE": SCOPE,
        "SSO_KEEP_ACCESS_TOKEN": "true",
        "SSO_REFRESH_MARGIN": str(MARGIN),
        # The idle stamp is rewritten every 3 s: session writes race with token writes all along.
        "SSO_SESSION_IDLE_TIMEOUT": "30",
        "TOKEN_APP_USERINFO_URL": provider.endpoint("userinfo"),
    }
    if store == "file":
        common["SSO_SESSION_DATA_DIR"] = str(tmp / "sessions")  # one folder, both hosts: one machine
    elif store == "ext:redis":
        common["SSO_SESSION_URL"] = f"redis://127.0.0.1:{stores[store].port}/0"
    else:
        common["SSO_SESSION_URL"] = f"127.0.0.1:{stores[store].port}"
    services: list[Service] = []
    try:
        for name, port, url in zip("AB", ports, urls):
            env = {key: value for key, value in os.environ.items() if not key.startswith("SSO_")}
            env.update(common, SSO_BASE_URL=url)
            service = gunicorn_service(f"host {name} ({store})", port, tmp / f"host-{name}.log",
                                       "tests.token_apps:make_app()", ROOT, env, workers=2, threads=4)
            services.append(service)
            service.launch()
        for service in services:
            service.wait_ready()
        yield Hosts(store, urls, (services[0], services[1]), client, cookie_name)
    finally:
        stop_all(services)


@dataclass
class Answer:
    at: float
    host: int
    http: int
    body: dict[str, Any]


def hammer(urls: tuple[str, ...], cookie: str, until: float, clients: int) -> list[Answer]:
    """``clients`` threads GET ``/api`` until the time ``until``, alternating between ``urls``, one session cookie."""
    barrier = threading.Barrier(clients)

    def client(index: int) -> list[Answer]:
        answers: list[Answer] = []
        turn = index
        with requests.Session() as http:
            barrier.wait(timeout=10)
            while time.time() < until:
                host = turn % len(urls)
                turn += 1
                try:
                    # A new connection each time, so that any worker of the host may take it.
                    response = http.get(urls[host] + "/api", headers={"Cookie": cookie, "Connection": "close"},
                                        allow_redirects=False, timeout=20)
                    body = response.json() if response.headers.get("Content-Type", "").startswith(
                        "application/json") else {"text": response.text[:200]}
                    answers.append(Answer(time.time(), host, response.status_code, body))
                except requests.RequestException as exc:
                    answers.append(Answer(time.time(), host, 0, {"exception": repr(exc)}))
        return answers

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return [answer for answers in pool.map(client, range(clients)) for answer in answers]


def record_figures(store: str, figures: dict[str, Any]) -> None:
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    try:
        recorded = json.loads(ARTIFACT.read_text())
    except (OSError, ValueError):
        recorded = {}
    recorded[store] = figures
    ARTIFACT.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("store", [pytest.param("ext:redis", id="redis"), pytest.param("ext:memcached",
                                   id="memcached"), pytest.param("file", id="file")])
def test_single_flight_refresh_across_two_hosts(provider: DevProvider, stores: dict[str, Service],
                                                tmp_path: Path, store: str) -> None:
    with token_hosts(provider, stores, tmp_path, store) as hosts:
        http = sign_in(provider, hosts.urls[0])
        cookie = f"{hosts.cookie_name}={http.cookies[hosts.cookie_name]}"
        first = api_ok(get(requests.Session(), hosts.urls[1] + "/api", Cookie=cookie))  # host B knows it too
        first_due = first["expires_at"] - MARGIN

        started = time.time()
        answers = hammer(hosts.urls, cookie, first_due + HAMMER_PERIODS * PERIOD, CLIENTS)
        ended = time.time()
        events = token_events(provider, hosts.client)
        after = get(requests.Session(), hosts.urls[0] + "/whoami", Cookie=cookie)
    logs = hosts.logs(tail=None)

    bad = [answer for answer in answers if not (answer.http == 200 and answer.body.get("status") == 200
                                                and answer.body.get("sub") == "alice"
                                                and answer.body.get("user") == "alice")]
    grants = [event for event in events if event["grant_type"] == "refresh_token"]
    moments = [event["at"] / 1000 for event in grants]
    gaps = [later - earlier for earlier, later in zip(moments, moments[1:])]
    tokens = {answer.body.get("token") for answer in answers} | {first["token"]}
    expected = math.floor((ended - first_due) / PERIOD) + 1  # the expiries in the window
    workers = {(answer.host, answer.body.get("pid")) for answer in answers if answer.http == 200}
    figures = {
        "store": store,
        "hosts": 2,
        "workers_per_host": 2,
        "threads_per_worker": 4,
        "clients": CLIENTS,
        "seconds": round(ended - started, 2),
        "access_token_ttl": TTL,
        "refresh_margin": MARGIN,
        "requests": len(answers),
        "requests_per_second": round(len(answers) / (ended - started), 1),
        "requests_per_host": dict(Counter(("A", "B")[answer.host] for answer in answers)),
        "workers_answering": len(workers),
        "failed_requests": len(bad),
        "refreshes": len(grants),
        "expected_refreshes": expected,
        "distinct_access_tokens": len(tokens),
        "refused_token_requests": len(refused(events)),
        "min_seconds_between_refreshes": round(min(gaps), 3) if gaps else None,
        "max_seconds_between_refreshes": round(max(gaps), 3) if gaps else None,
    }
    print(f"\nrefresh concurrency ({store}): " + json.dumps(figures))
    record_figures(store, figures)

    context = (figures, bad[:5], logs[-8000:])
    # Nobody was refused, nobody was signed out, nobody used a rotated refresh token.
    assert bad == [], context
    assert refused(events) == [], (refused(events), context)
    assert after["user"] == "alice" and after["token"] in tokens, (after, context)
    # Exactly one refresh per expiry, and each produced the one token everybody then used.
    assert len(grants) == len(tokens) - 1, context
    assert len(grants) == expected == math.floor(HAMMER_PERIODS) + 1, context
    assert len(grants) >= 3, context
    assert all(gap >= PERIOD - 1 for gap in gaps), (gaps, context)
    assert all(gap <= PERIOD + 1 for gap in gaps), (gaps, context)  # under constant use, none was skipped
    # No worker gave up waiting for another's refresh, and none failed.
    assert "still running elsewhere" not in logs and "Traceback" not in logs, context
    # The work really was spread: both hosts, and more than one worker process.
    assert set(figures["requests_per_host"]) == {"A", "B"}, context
    assert len(workers) >= 3, context


# -- 5. a refused refresh ------------------------------------------------------------------


def revoke_refresh_token(provider: DevProvider, app: App, http: requests.Session) -> None:
    """Revoke the session's refresh token at the provider (RFC 7009): oidc-provider then drops the grant."""
    record = app.middleware.store.backend.read_record(TOKENS_PREFIX + session_id(http, app))
    assert record is not None, "no token record for the session"
    refresh_token = json.loads(record)["refresh_token"]
    assert refresh_token
    answer = requests.post(provider.endpoint("revocation"),
                           data={"token": refresh_token, "token_type_hint": "refresh_token"},
                           auth=(app.client.client_id, app.client.client_secret), timeout=10)
    assert answer.status_code == 200, answer.text[:300]


def test_revoked_refresh_token_signs_out_without_a_loop(provider: DevProvider, apps: dict[str, App]) -> None:
    app = apps["tokens"]
    http = sign_in(provider, app.base_url)
    shown = api_ok(get(http, app.url("/api")))
    revoke_refresh_token(provider, app, http)
    before = len(refreshes(provider, app.client))

    sleep_until(shown["expires_at"] - MARGIN + 0.3)
    response = http.get(app.url("/whoami"), allow_redirects=False, timeout=10)
    assert response.status_code == 200
    after = response.json()
    assert after["user"] is None and after["keys"] == [], after  # signed out: no user, no token keys
    assert app.cookie_name not in http.cookies  # the session cookie was expired
    events = refreshes(provider, app.client)[before:]
    assert [(event["status"], event["error"]) for event in events] == [(400, "invalid_grant")]

    # A protected path sends the anonymous browser to sign in; the provider session still lives,
    # so it comes straight back signed in with a new grant -- one round trip, no loop.
    first = http.get(app.url("/private"), headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert first.status_code == 303 and urlsplit(first.headers["Location"]).path == "/auth/login"
    http.headers["Accept"] = "text/html"
    visit = browse(http, app.url("/private"))
    assert sum(1 for r in visit if urlsplit(r.url).path == "/auth/callback") == 1
    assert visit[-1].url == app.url("/private") and visit[-1].json()["user"] == "alice"
    assert len(refreshes(provider, app.client)) == before + 1  # the failed refresh was not retried
    api_ok(get(http, app.url("/api")))


def test_revoked_refresh_token_with_keep_session_drops_the_token(provider: DevProvider,
                                                                 apps: dict[str, App]) -> None:
    app = apps["keep"]
    http = sign_in(provider, app.base_url)
    shown = api_ok(get(http, app.url("/api")))
    revoke_refresh_token(provider, app, http)
    before = len(refreshes(provider, app.client))

    sleep_until(shown["expires_at"] - MARGIN + 0.3)
    failed = get(http, app.url("/api"))
    assert failed["http"] == 401 and failed["error"] == "no_token", failed
    assert failed["user"] == "alice" and failed["token"] is None
    assert failed["keys"] == ["sso.token_error"] and failed["token_error"] == "refresh_failed"
    assert failed["detail"] == "no access token for this request (refresh_failed)"
    events = refreshes(provider, app.client)[before:]
    assert [(event["status"], event["error"]) for event in events] == [(400, "invalid_grant")]

    # Still signed in, without a token; the refused refresh token is not tried again.
    later = get(http, app.url("/private"))
    assert later["http"] == 200 and later["user"] == "alice" and later["token"] is None
    assert later["token_error"], later
    assert len(refreshes(provider, app.client)) == before + 1


# -- 6. cookie store, one process ----------------------------------------------------------


def test_cookie_store_refreshes_once_for_concurrent_requests_in_one_process(provider: DevProvider,
                                                                           apps: dict[str, App]) -> None:
    app = apps["cookie"]
    http = sign_in(provider, app.base_url)
    stale_cookie = f"{app.cookie_name}={http.cookies[app.cookie_name]}"
    shown = api_ok(get(http, app.url("/api")))
    before = len(refreshes(provider, app.client))

    sleep_until(shown["expires_at"] - MARGIN + 0.3)
    threads = 8
    barrier = threading.Barrier(threads)

    def call(_: int) -> tuple[dict[str, Any], Optional[str]]:
        with requests.Session() as client:
            barrier.wait(timeout=10)
            response = client.get(app.url("/api"), headers={"Cookie": stale_cookie}, timeout=20)
            body = response.json()
            body["http"] = response.status_code
            return body, response.cookies.get(app.cookie_name)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(call, range(threads)))
    for body, _ in results:
        api_ok(body)
    new_tokens = {body["token"] for body, _ in results}
    assert len(new_tokens) == 1 and shown["token"] not in new_tokens, new_tokens
    events = refreshes(provider, app.client)[before:]
    assert len(events) == 1 and refused(events) == [], events
    assert all(cookie for _, cookie in results)  # every response rewrote the cookie with the new tokens

    # A request still carrying the replaced token adopts the new one (same process) -- no second refresh.
    again = api_ok(get(requests.Session(), app.url("/api"), Cookie=stale_cookie))
    assert again["token"] in new_tokens
    assert len(refreshes(provider, app.client)) == before + 1
    assert refused(token_events(provider, app.client)) == []
