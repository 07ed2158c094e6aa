"""Many sign-ins at once through a multi-process, multi-threaded server and the real provider.

The application is ``examples/gunicorn_env`` (configured from ``SSO_*`` variables,
default ``file`` session store shared by the workers) served by
``gunicorn --workers 2 --threads 4`` in its own process group; the provider is
the bundled ``oidc-provider`` (``oidc_provider`` fixture).  Browsers are
cookie-keeping ``requests.Session`` objects driven from a thread pool.

It knows two users, alice and bob: sign-ins of both, interleaved many times in
parallel, are what can mix identities up -- each browser must end with its own
user and its own landing page, and no sign-in may lose its transaction.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests

from sso_middleware.testing import DevProvider

from .test_examples import EXAMPLES, Server, free_port, stop, wait_until_up

BROWSERS = 20  # per round: half alice, half bob
ROUNDS = 2
TIMEOUT = 15.0


@pytest.fixture(scope="module")
def server(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """examples/gunicorn_env under ``gunicorn --workers 2 --threads 4``, registered at the provider."""
    tmp = tmp_path_factory.mktemp("concurrency")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    client = oidc_provider.register_client(
        [base_url + "/auth/callback"], post_logout_redirect_uris=[base_url + "/"], client_name="concurrency"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("SSO_")}
    env.update({
        "SSO_ISSUER": oidc_provider.issuer,
        "SSO_CLIENT_ID": client.client_id,
        "SSO_CLIENT_SECRET": client.client_secret,
        "SSO_BASE_URL": base_url,
        "SSO_SESSION_SECRET": secrets.token_urlsafe(32),
        "SSO_ALLOW_INSECURE_HTTP": "true",
        "SSO_SESSION_DATA_DIR": str(tmp / "sessions"),
        "SSO_COOKIE_NAME": "concurrency_session",
        "SSO_PROTECTED_PATHS": "/whoami",
    })
    argv = [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "4", "--graceful-timeout", "5",
            "--bind", f"127.0.0.1:{port}", "app:app"]
    log = tmp / "gunicorn.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, cwd=EXAMPLES / "gunicorn_env", env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    started = Server("concurrency", base_url, process, Path(log))
    try:
        wait_until_up(started)
        yield started
    finally:
        stop(process)


def browse(http: requests.Session, url: str, max_hops: int = 10) -> requests.Response:
    """GET ``url`` following redirects one by one like a browser."""
    response = http.get(url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(max_hops):
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        response = http.get(urljoin(response.url, response.headers["Location"]), allow_redirects=False,
                            timeout=TIMEOUT)
    raise AssertionError(f"more than {max_hops} redirects, at {response.url}")


def whoami(response: requests.Response, server: Server) -> dict[str, Any]:
    assert response.status_code == 200, (response.url, response.status_code, response.text[:300], server.output())
    shown: dict[str, Any] = json.loads(response.text)
    return shown


def login_url(server: Server, target: str) -> str:
    return server.url("/auth/login?" + urlencode({"target_url": target}))


def approve(provider: DevProvider, http: requests.Session, authorize_or_app_url: str, user: str) -> str:
    """The user signs in at the provider; returns the callback URL it redirects to (not followed)."""
    redirect = provider.login(http, user, authorize_or_app_url, timeout=TIMEOUT)
    assert redirect.status_code == 303, (redirect.url, redirect.status_code, redirect.text[:300])
    callback = urljoin(redirect.url, redirect.headers["Location"])
    assert urlsplit(callback).path == "/auth/callback" and "code" in parse_qs(urlsplit(callback).query), callback
    return callback


def test_simultaneous_sign_ins_each_end_with_their_own_identity(oidc_provider: DevProvider, server: Server) -> None:
    users = ["alice", "bob"] * (BROWSERS // 2)
    browsers: list[tuple[requests.Session, str, str]] = []
    pids: set[int] = set()

    for round_ in range(ROUNDS):
        barrier = threading.Barrier(len(users))

        def sign_in(index: int, round_: int = round_, barrier: threading.Barrier = barrier) -> tuple[
            requests.Session, str, str, requests.Response
        ]:
            user = users[index]
            target = f"/whoami?browser={round_}-{index}"
            http = requests.Session()
            barrier.wait(timeout=TIMEOUT)  # all start at once
            callback = approve(oidc_provider, http, login_url(server, target), user)
            return http, user, target, browse(http, callback)

        with ThreadPoolExecutor(max_workers=len(users)) as pool:
            for http, user, target, landing in pool.map(sign_in, range(len(users))):
                # No lost transaction: every sign-in came back to its own target, not to the failure page.
                assert landing.url == server.url(target), (landing.url, landing.text[:300], server.output())
                shown = whoami(landing, server)
                assert shown["remote_user"] == user
                assert shown["userinfo"]["sub"] == user
                assert shown["userinfo"]["email"] == f"{user}@example.com"
                pids.add(shown["worker_pid"])
                browsers.append((http, user, target))

    # Every browser has a session of its own...
    cookies = [http.cookies.get("concurrency_session") for http, _, _ in browsers]
    assert all(cookies) and len(set(cookies)) == len(browsers)

    # ...and keeps its own identity while all of them ask at once, again and again.
    def ask(entry: tuple[requests.Session, str, str]) -> tuple[str, dict[str, Any]]:
        http, user, _ = entry
        return user, whoami(http.get(server.url("/whoami"), allow_redirects=False, timeout=TIMEOUT), server)

    def ask_anew(entry: tuple[requests.Session, str, str]) -> tuple[str, dict[str, Any]]:
        http, user, _ = entry  # a new connection, so that either worker may take it
        response = requests.get(server.url("/whoami"), cookies=http.cookies, allow_redirects=False, timeout=TIMEOUT)
        return user, whoami(response, server)

    with ThreadPoolExecutor(max_workers=BROWSERS) as pool:
        for round_ in range(6):  # bounded: three rounds, more only until both workers have answered
            if round_ >= 3 and len(pids) == 2:
                break
            for user, shown in pool.map(ask if round_ < 3 else ask_anew, browsers):
                assert shown["remote_user"] == user and shown["userinfo"]["sub"] == user
                pids.add(shown["worker_pid"])
    assert len(pids) == 2, f"only worker(s) {pids} answered"


@pytest.mark.parametrize(
    "order", [pytest.param((0, 1), id="completed-in-order"), pytest.param((1, 0), id="completed-in-reverse")]
)
@pytest.mark.parametrize(
    "had_session",
    [pytest.param(False, id="fresh-browser"), pytest.param(True, id="browser-with-a-session")],
)
def test_two_tabs_start_signing_in_at_once(
    oidc_provider: DevProvider, server: Server, order: tuple[int, int], had_session: bool
) -> None:
    """Two tabs of one browser (one cookie jar) open the sign-in at the same moment; both must land signed in."""
    http = requests.Session()
    if had_session:  # e.g. an earlier sign-in that was abandoned at the provider
        assert http.get(login_url(server, "/"), allow_redirects=False, timeout=TIMEOUT).status_code == 303
    barrier = threading.Barrier(2)

    def open_tab(tab: int) -> str:
        barrier.wait(timeout=TIMEOUT)
        response = http.get(login_url(server, f"/whoami?tab={tab}"), allow_redirects=False, timeout=TIMEOUT)
        assert response.status_code == 303, (response.status_code, response.text[:300])
        location: str = response.headers["Location"]
        return location

    with ThreadPoolExecutor(max_workers=2) as pool:
        authorize = list(pool.map(open_tab, (0, 1)))
    assert authorize[0] != authorize[1]

    # The user signs in in one tab; the other then finds the provider session and comes straight back.
    callbacks = [approve(oidc_provider, http, url, "alice") for url in authorize]
    for tab in order:
        landing = browse(http, callbacks[tab])
        assert landing.url == server.url(f"/whoami?tab={tab}"), (
            f"tab {tab} did not land signed in", landing.url, landing.status_code, landing.text[:200]
        )
        assert whoami(landing, server)["remote_user"] == "alice"


def test_back_button_replay_of_the_callback_keeps_the_user_signed_in(
    oidc_provider: DevProvider, server: Server
) -> None:
    http = requests.Session()
    callback = approve(oidc_provider, http, login_url(server, "/whoami"), "bob")
    landing = browse(http, callback)
    assert landing.url == server.url("/whoami")
    assert whoami(landing, server)["remote_user"] == "bob"

    # Back button: the browser asks for the old callback URL again.
    replay = http.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert replay.status_code == 303
    failure = browse(http, callback)
    assert urlsplit(failure.url).path == "/auth/failure"
    assert parse_qs(urlsplit(failure.url).query) == {"error": ["invalid_state"]}
    assert failure.status_code == 400
    assert "This sign-in link has expired or was already used. Please start signing in again." in failure.text
    assert "<code>invalid_state</code>" in failure.text

    # The user is still signed in, on every worker.
    for _ in range(6):
        assert whoami(http.get(server.url("/whoami"), allow_redirects=False, timeout=TIMEOUT), server)[
            "remote_user"
        ] == "bob"


def test_many_tabs_at_once_lose_no_sign_in(oidc_provider: DevProvider, server: Server) -> None:
    """Five tabs of one browser start signing in at the same moment, a few times over.

    Each tab's transaction is issued by a different thread or worker at once, in
    its own cookie; none may be lost (a shared read-modify-write would lose some:
    their callbacks would find no transaction).  With the abandoned sign-in each
    round starts with, that is six: the cap of pending sign-ins per browser.
    """
    tabs, rounds = 5, 8
    lost: list[str] = []
    for round_ in range(rounds):
        http = requests.Session()
        assert http.get(login_url(server, "/"), allow_redirects=False, timeout=TIMEOUT).status_code == 303
        barrier = threading.Barrier(tabs)

        def open_tab(tab: int, http: requests.Session = http, barrier: threading.Barrier = barrier) -> str:
            barrier.wait(timeout=TIMEOUT)
            response = http.get(login_url(server, f"/whoami?tab={tab}"), allow_redirects=False, timeout=TIMEOUT)
            assert response.status_code == 303, (response.status_code, response.text[:300])
            location: str = response.headers["Location"]
            return location

        with ThreadPoolExecutor(max_workers=tabs) as pool:
            authorize = list(pool.map(open_tab, range(tabs)))
        callbacks = [approve(oidc_provider, http, url, "alice") for url in authorize]
        for tab, callback in enumerate(callbacks):
            landing = browse(http, callback)
            if landing.url != server.url(f"/whoami?tab={tab}"):
                lost.append(f"round {round_} tab {tab}: {urlsplit(landing.url).path}?{urlsplit(landing.url).query}")
    assert not lost, f"{len(lost)} of {tabs * rounds} sign-ins lost their transaction: {lost}"
