"""The sign-in hook against the real dev provider: the README's provisioning example, run as written.

The README's "Sign-in hook" section shows a hook that provisions users into the
application's own SQLite database and refuses the accounts the application disabled.  This
test takes that code block out of the README, runs it against a real SQLite file and a
waitress-served application behind the middleware, and signs alice and bob in at the
bundled ``oidc-provider`` like a browser: interactively (``/auth/login``), then silently
(``/auth/sso``, ``prompt=none``: the provider's session answers, the hook runs again), then
after the application disabled alice (a 403 page ``sign_in_denied:account_disabled``, no
session).  A hook that raises gives the 503 page, never a 500.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
import waitress

from sso_middleware import SSOMiddleware, get_userinfo
from sso_middleware.testing import DevProvider

from ..servers import free_port, stop_waitress

README = Path(__file__).resolve().parents[2] / "README.md"
CONNECTION = "Username-Password-Authentication"


def readme_hook(database: Path) -> Callable[..., Any]:
    """The README's provisioning example (the code block after "A provisioning example"), with its APP_DB."""
    text = README.read_text()
    section = text[text.index("#### A provisioning example"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code.group(1).replace('os.environ["APP_DB"]', repr(str(database))), "README.md", "exec"),
         namespace)
    hook: Callable[..., Any] = namespace["provision"]
    return hook


def claims_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = json.dumps({"userinfo": get_userinfo(environ), "remote_user": environ.get("REMOTE_USER")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def provider(oidc_provider: DevProvider) -> DevProvider:
    """The suite's shared provider: these tests register clients of their own and read only their events."""
    return oidc_provider


@pytest.fixture
def serve(provider: DevProvider, tmp_path: Path) -> Iterator[Callable[..., str]]:
    servers: list[Any] = []

    def start(**settings: Any) -> str:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        client = provider.register_client([base_url + "/auth/callback"], post_logout_redirect_uris=[base_url + "/"])
        middleware = SSOMiddleware(claims_app, issuer=provider.issuer, client_id=client.client_id,
                                   client_secret=client.client_secret, base_url=base_url,
                                   session_secret="hook-integration-secret-0123456789abcdef",
                                   session_data_dir=str(tmp_path / f"sessions-{port}"), allow_insecure_http=True,
                                   **settings)
        server = waitress.create_server(middleware, host="127.0.0.1", port=port, threads=4)
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
        return base_url

    yield start
    for server in servers:
        stop_waitress(server)


def follow(http: requests.Session, response: requests.Response) -> requests.Response:
    while response.status_code in (302, 303):
        response = http.get(urljoin(response.url, response.headers["Location"]), allow_redirects=False, timeout=10)
    return response


def login(provider: DevProvider, http: requests.Session, base_url: str, user: str) -> requests.Response:
    redirect = provider.login(http, user, f"{base_url}/auth/login?{urlencode({'target_url': '/me'})}")
    return follow(http, redirect)


def silent_sso(provider: DevProvider, http: requests.Session, base_url: str) -> requests.Response:
    """``/auth/sso`` with the provider's session: prompt=none, no login form."""
    response = http.get(f"{base_url}/auth/sso?{urlencode({'connection': CONNECTION, 'target_url': '/me'})}",
                        allow_redirects=False, timeout=10)
    assert response.status_code == 303
    authorize = response.headers["Location"]
    assert parse_qs(urlsplit(authorize).query)["prompt"] == ["none"]
    return follow(http, http.get(authorize, allow_redirects=False, timeout=10))


def rows(database: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return {row[0]: row[1:] for row in connection.execute("SELECT sub, id, email, sign_ins, disabled FROM users")}


def test_the_readme_provisioning_hook_provisions_refuses_and_runs_on_silent_sso(
        provider: DevProvider, serve: Callable[..., str], tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    base_url = serve(on_sign_in=readme_hook(database), userinfo_claims="email app_user_id",
                     remote_user_claim="app_user_id", pushed_authorization="off")  # prompt=none in the URL

    alice = requests.Session()
    landing = login(provider, alice, base_url, "alice")
    assert landing.status_code == 200, landing.text[:300]
    shown = landing.json()
    (alice_id, email, sign_ins, disabled) = rows(database)["alice"]
    assert shown["userinfo"] == {"sub": "alice", "email": "alice@example.com", "app_user_id": alice_id}
    assert shown["remote_user"] == str(alice_id) and (email, sign_ins, disabled) == ("alice@example.com", 1, 0)

    bob = requests.Session()
    assert login(provider, bob, base_url, "bob").json()["userinfo"]["app_user_id"] == rows(database)["bob"][0]
    assert rows(database)["bob"][0] != alice_id

    # Silent SSO runs the hook too: the provider's session answers prompt=none, the hook counts it.
    again = silent_sso(provider, alice, base_url)
    assert again.status_code == 200 and again.json()["userinfo"]["app_user_id"] == alice_id
    assert rows(database)["alice"][2] == 2

    # The application disables alice: her next sign-in is refused with the hook's reason, and no session.
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE users SET disabled = 1 WHERE sub = 'alice'")
    fresh = requests.Session()
    refused = login(provider, fresh, base_url, "alice")
    assert refused.status_code == 403 and "sign_in_denied:account_disabled" in refused.text
    assert "Traceback" not in refused.text
    assert fresh.get(base_url + "/me", timeout=10).json()["userinfo"] is None


def test_a_hook_that_raises_is_a_503_page_and_no_session(provider: DevProvider, serve: Callable[..., str]) -> None:
    def broken(claims: dict[str, Any], tokens: Any, environ: dict[str, Any]) -> None:
        raise ConnectionError("the application's database is down")

    base_url = serve(on_sign_in=broken)
    http = requests.Session()
    page = login(provider, http, base_url, "alice")
    assert page.status_code == 503 and "sign_in_hook_failed" in page.text and "Traceback" not in page.text
    assert http.get(base_url + "/me", timeout=10).json()["userinfo"] is None
