"""Every deployment recipe in ``examples/``, started as documented and signed into.

Each test registers a client at the bundled provider (``oidc_provider``), starts the
example's server as a subprocess (gunicorn, pserve/waitress, waitress-serve) with the
settings its README names, waits until it answers, signs alice in through a
cookie-keeping ``requests.Session`` and checks that the application sees her.  The
server runs in its own process group, which is always killed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from sso_middleware.testing import DevProvider

from ..servers import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BIN = Path(sys.executable).parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0




def console_script(name: str) -> str:
    """A console script installed next to the running Python; missing is a failure, not a skip."""
    path = BIN / name
    assert path.is_file(), f"{name} is not installed next to {sys.executable}: pip install -e '.[test]'"
    return str(path)


@dataclass
class Server:
    """A running example: its public URL, its process and where its output goes."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class Deployment:
    """What an example is started with: its address and the settings for its client."""

    name: str
    port: int
    base_url: str
    settings: dict[str, str]  # SSO_* environment variables

    def env(self) -> dict[str, str]:
        """The environment of the server: ours without any SSO_* variable, plus its settings."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("SSO_")}
        env.update(self.settings)
        return env


@pytest.fixture
def deployment(
    oidc_provider: DevProvider, tmp_path: Path, request: pytest.FixtureRequest
) -> Deployment:
    """A free port, a client registered for it, and the SSO_* settings of the app to start there."""
    name = request.node.callspec.id if hasattr(request.node, "callspec") else request.node.name
    name = "".join(c if c.isalnum() else "_" for c in name)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    client = oidc_provider.register_client(
        [base_url + "/auth/callback"], post_logout_redirect_uris=[base_url + "/"], client_name=name
    )
    settings = {
        "SSO_ISSUER": oidc_provider.issuer,
        "SSO_CLIENT_ID": client.client_id,
        "SSO_CLIENT_SECRET": client.client_secret,
        "SSO_BASE_URL": base_url,
        "SSO_SESSION_SECRET": secrets.token_urlsafe(32),
        "SSO_ALLOW_INSECURE_HTTP": "true",
        "SSO_SESSION_DATA_DIR": str(tmp_path / "sessions"),
        "SSO_COOKIE_NAME": f"{name}_session",  # cookies are per host, not per port: one name per app
    }
    return Deployment(name, port, base_url, settings)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start an example as a subprocess in its own process group; every one is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(deployment: Deployment, argv: list[str], cwd: Path, extra_env: Optional[dict[str, str]] = None) -> Server:
        log = tmp_path / f"{deployment.name}.log"
        env = deployment.env()
        env.update(extra_env or {})
        with open(log, "wb") as out:
            process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)
        server = Server(deployment.name, deployment.base_url, process, log)
        wait_until_up(server)
        return server

    try:
        yield start
    finally:
        for process in started:
            stop(process)


def wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer yet"
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            pytest.fail(f"{server.name} exited with code {code}:\n{server.output()}")
        try:
            requests.get(server.url("/"), timeout=1, allow_redirects=False)
            return
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.1)
    pytest.fail(f"{server.name} did not answer within {START_TIMEOUT} s ({last}):\n{server.output()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole process group (gunicorn's workers too), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError):  # whatever is left of the group, the leader included
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(STOP_TIMEOUT)


def browse(http: requests.Session, url: str, max_hops: int = 20) -> requests.Response:
    """GET ``url`` following redirects one by one like a browser (cookies kept by ``http``)."""
    response = http.get(url, allow_redirects=False, timeout=10)
    for _ in range(max_hops):
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        response = http.get(urljoin(response.url, response.headers["Location"]), allow_redirects=False, timeout=10)
    raise AssertionError(f"more than {max_hops} redirects, at {response.url}")


def sign_in_alice(provider: DevProvider, server: Server) -> tuple[requests.Session, dict[str, Any]]:
    """Interactive sign-in at the provider, then back to the app's /whoami; returns the browser and the page."""
    http = requests.Session()
    redirect = provider.login(http, "alice", server.url("/auth/login?target_url=/whoami"))
    assert redirect.status_code == 303, (redirect.url, redirect.text[:500], server.output())
    assert urlsplit(redirect.headers["Location"]).path == "/auth/callback"
    landing = browse(http, urljoin(redirect.url, redirect.headers["Location"]))
    assert landing.url == server.url("/whoami"), (landing.url, landing.text[:500])
    shown = whoami(landing, server)
    return http, shown


def whoami(response: requests.Response, server: Server) -> dict[str, Any]:
    assert response.status_code == 200, (response.url, response.status_code, response.text[:500], server.output())
    shown: dict[str, Any] = json.loads(response.text)
    return shown


def assert_alice(shown: dict[str, Any]) -> None:
    assert shown["remote_user"] == "alice"
    assert shown["userinfo"]["sub"] == "alice"
    assert shown["userinfo"]["email"] == "alice@example.com"
    assert shown["userinfo"]["name"] == "Alice Example"


def assert_anonymous_sent_to_login(server: Server) -> None:
    """A fresh browser asking for /whoami is sent to sign in."""
    response = requests.get(server.url("/whoami"), headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert response.status_code == 303, (response.status_code, response.text[:300])
    location = urlsplit(urljoin(response.url, response.headers["Location"]))
    assert location.path == "/auth/login"
    assert parse_qs(location.query) == {"target_url": ["/whoami"]}


# -- examples/paste ---------------------------------------------------------------------

PASTE = EXAMPLES / "paste"


def paste_globals(deployment: Deployment) -> list[str]:
    """The settings as PasteDeploy global variables (``name=value``), the names of app.ini's [DEFAULT]."""
    variables = [f"{key[len('SSO_'):].lower()}={value}" for key, value in deployment.settings.items()]
    return [*variables, f"http_port={deployment.port}"]


def test_paste_served_by_pserve(
    oidc_provider: DevProvider, deployment: Deployment, serve: Callable[..., Server]
) -> None:
    # README: cd examples/paste && PYTHONPATH=. pserve app.ini NAME=VALUE ...
    argv = [console_script("pserve"), "app.ini", *paste_globals(deployment)]
    no_sso_env = Deployment(deployment.name, deployment.port, deployment.base_url, {})  # only the command line
    server = serve(no_sso_env, argv, PASTE, extra_env={"PYTHONPATH": "."})
    assert_anonymous_sent_to_login(server)
    http, shown = sign_in_alice(oidc_provider, server)
    assert_alice(shown)
    home = http.get(server.url("/"), timeout=10)
    assert "Alice Example" in home.text


def test_paste_served_by_gunicorn(
    oidc_provider: DevProvider, deployment: Deployment, serve: Callable[..., Server]
) -> None:
    # README: cd examples/paste && gunicorn --paste app.ini  (gunicorn.conf.py maps SSO_* to the ini's variables)
    argv = [sys.executable, "-m", "gunicorn", "--paste", "app.ini", "--bind", f"127.0.0.1:{deployment.port}"]
    server = serve(deployment, argv, PASTE)
    assert_anonymous_sent_to_login(server)
    _, shown = sign_in_alice(oidc_provider, server)
    assert_alice(shown)


def test_paste_refuses_to_start_without_a_secret(deployment: Deployment, tmp_path: Path) -> None:
    """app.ini holds no secret: started without one, the server stops at once and names the setting."""
    del deployment.settings["SSO_CLIENT_SECRET"]
    argv = [sys.executable, "-m", "gunicorn", "--paste", "app.ini", "--bind", f"127.0.0.1:{deployment.port}"]
    log = tmp_path / "refused.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=PASTE, env=deployment.env(), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        code = process.wait(START_TIMEOUT)
    finally:
        stop(process)
    output = log.read_text(errors="replace")
    assert code != 0, output
    assert "ConfigError: sso_middleware setting 'client_secret': required" in output, output[-3000:]


# -- examples/gunicorn_env ------------------------------------------------------------


def test_gunicorn_env_two_workers_share_the_session(
    oidc_provider: DevProvider, deployment: Deployment, serve: Callable[..., Server]
) -> None:
    # README: SSO_...=... gunicorn --workers 2 --bind 127.0.0.1:8000 app:app
    deployment.settings["SSO_PROTECTED_PATHS"] = "/whoami"
    argv = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{deployment.port}", "app:app"]
    server = serve(deployment, argv, EXAMPLES / "gunicorn_env")
    assert_anonymous_sent_to_login(server)
    http, shown = sign_in_alice(oidc_provider, server)
    assert_alice(shown)

    # Many requests, several at a time so that both workers answer: every one sees alice.
    cookies = http.cookies

    def ask(_: int) -> dict[str, Any]:
        return whoami(requests.get(server.url("/whoami"), cookies=cookies, timeout=10, allow_redirects=False), server)

    pids: set[int] = set()
    answers = 0
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(5):  # bounded: stop once both workers have answered
            for shown in pool.map(ask, range(30)):
                assert_alice(shown)
                pids.add(shown["worker_pid"])
                answers += 1
            if len(pids) >= 2:
                break
    assert answers >= 30
    assert len(pids) == 2, f"only worker(s) {pids} answered {answers} requests"


# -- examples/pyramid_app, bottle_app, flask_app --------------------------------------


@pytest.mark.parametrize(
    ("folder", "command"),
    [
        pytest.param("pyramid_app", ["waitress"], id="pyramid"),
        pytest.param("bottle_app", ["waitress"], id="bottle"),
        pytest.param("flask_app", ["gunicorn"], id="flask"),
    ],
)
def test_framework_app(
    oidc_provider: DevProvider,
    deployment: Deployment,
    serve: Callable[..., Server],
    folder: str,
    command: list[str],
) -> None:
    address = f"127.0.0.1:{deployment.port}"
    if command == ["waitress"]:  # README: waitress-serve --listen=127.0.0.1:PORT app:app
        argv = [console_script("waitress-serve"), f"--listen={address}", "app:app"]
    else:  # README: gunicorn --bind 127.0.0.1:PORT app:app
        argv = [sys.executable, "-m", "gunicorn", "--bind", address, "app:app"]
    server = serve(deployment, argv, EXAMPLES / folder)
    # the app itself (Pyramid: its forbidden view; Bottle, Flask: the view) sends anonymous users to sign in
    assert_anonymous_sent_to_login(server)
    http, shown = sign_in_alice(oidc_provider, server)
    assert_alice(shown)
    home = http.get(server.url("/"), timeout=10)
    assert home.status_code == 200
    assert "alice" in home.text.lower()
