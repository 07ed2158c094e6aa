"""The demo's three-app scenario in a real headless Chromium (Debian's), driven by Playwright.

The seed's story, step by step, against the real dev provider: the user signs in on the SPA
(App 1) at the provider's login form; the SPA calls App 2's bearer API with its access
token (200 with the user's claims) and without it (401); the SPA's link to App 2's
``/auth/sso`` signs in silently, then App 3 (the legacy intranet app) is reached signed in
through the same provider session, with no login form on either way (every top-level
navigation request is recorded); signing out at App 2 ends the provider session, the
provider's back-channel logout ends App 3's session, and the SPA, in a tab left open, shows
"signed out" after its next silent renewal.  A screenshot of each step is saved under
``test-artifacts/browser/`` (or ``$TEST_ARTIFACTS_DIR``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Request, sync_playwright

import demo_app

from ..servers import free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", Path(__file__).resolve().parents[2] / "test-artifacts"))
CHROMIUM_FLAGS = [
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: How often the SPA renews silently in this test (the demo's default is 30 s).
SPA_CHECK_SECONDS = 2.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[demo_app.Demo]:
    running = demo_app.start_demo(
        app1_port=free_port(),
        app2_port=free_port(),
        app3_port=free_port(),
        provider_port=free_port(),
        environ={},
        session_dir=str(tmp_path_factory.mktemp("demo-sessions")),
        spa_check_seconds=SPA_CHECK_SECONDS,
    )
    yield running
    running.stop()


@contextlib.contextmanager
def chromium_browser() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright (every browser test launches it this way)."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, chromium_sandbox=False, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium_browser() as launched:
        yield launched


class Recorder:
    """Every top-level navigation request (redirect hops included) of every tab, and numbered screenshots."""

    def __init__(self, context: BrowserContext, folder: Path) -> None:
        self.folder = folder
        self.navigations: dict[Page, list[str]] = {}
        self.step = 0
        folder.mkdir(parents=True, exist_ok=True)
        context.on("request", self._on_request)

    def _on_request(self, request: Request) -> None:
        if request.is_navigation_request() and request.frame == request.frame.page.main_frame:
            self.navigations.setdefault(request.frame.page, []).append(request.url)

    def hops(self, page: Page) -> list[str]:
        return self.navigations.setdefault(page, [])

    def shot(self, page: Page, name: str) -> Path:
        self.step += 1
        path = self.folder / f"{self.step:02d}-{name}.png"
        page.screenshot(path=str(path))
        return path


def wait_for_text(page: Page, selector: str, text: str, timeout: float = 15_000) -> str:
    """Wait until ``selector``'s text contains ``text`` (the SPA fills its page from scripts)."""
    page.wait_for_function(
        "([selector, text]) => (document.querySelector(selector)?.textContent ?? '').includes(text)",
        arg=[selector, text],
        timeout=timeout,
    )
    return page.locator(selector).inner_text()


def wait_for_event(demo: demo_app.Demo, kind: str, client_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [event for event in demo.provider.events(kind) if event.get("client_id") == client_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def assert_no_login_form_on_the_way(hops: list[str], demo: demo_app.Demo) -> None:
    assert not any(url.startswith(demo.provider_url + "/interaction/") for url in hops), f"a login page: {hops}"


def test_the_seed_scenario_spa_sign_in_silent_sso_and_single_logout(demo: demo_app.Demo, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 900, "height": 720})
    record = Recorder(context, ARTIFACTS / "browser")
    spa_client, app2_client, app3_client = (demo.client_ids[name] for name in ("app1", "app2", "app3"))
    spa = context.new_page()

    # 1. The SPA, anonymous; sign in through the provider's login form (a public client with PKCE).
    spa.goto(demo.app1_url + "/")
    wait_for_text(spa, "#state", "Signed out")
    assert "the user signs in on the SPA" in spa.locator("#seed").inner_text()
    record.shot(spa, "spa-signed-out")
    spa.click("#sign-in")
    spa.wait_for_selector("#login-form")
    assert spa.url.startswith(demo.provider_url + "/interaction/")
    spa.fill("#login", "alice")
    spa.fill("#password", "alice-password")
    record.shot(spa, "provider-login-form-for-the-spa")
    spa.click("#submit")
    spa.wait_for_url(demo.app1_url + "/")
    wait_for_text(spa, "#state", "Signed in as Alice Example")
    assert spa.locator("#user-email").inner_text() == "alice@example.com"
    assert spa.locator("#token-audience").inner_text() == demo.api_audience
    spa_authorize = [event for event in demo.provider.events("authorize") if event["client_id"] == spa_client]
    assert spa_authorize[0]["params"]["code_challenge_method"] == "S256"
    assert spa_authorize[0]["params"]["audience"] == demo.api_audience
    spa_tokens = [event for event in demo.provider.events("token") if event["client_id"] == spa_client]
    assert spa_tokens and all(event["auth_method"] == "none" for event in spa_tokens), spa_tokens
    record.shot(spa, "spa-signed-in")

    # 2. The SPA calls App 2's API with its access token (bearer mode), then without it.
    spa.click("#call-api")
    assert wait_for_text(spa, "#api-status", "HTTP ").startswith("HTTP 200 with the token")
    answer = json.loads(spa.locator("#api-result").inner_text())
    assert answer["remote_user"] == "alice"
    assert answer["claims"]["sub"] == "alice"
    audience = answer["claims"]["aud"]
    assert demo.api_audience in ([audience] if isinstance(audience, str) else audience), answer
    assert answer["claims"]["client_id"] == spa_client
    assert answer["scopes"] == ["read:profile"]  # what bearer_rules require on /api/me
    record.shot(spa, "spa-api-call-200-with-the-access-token")
    spa.click("#call-api-no-token")
    status = wait_for_text(spa, "#api-status", "without")
    assert status.startswith("HTTP 401 without the token"), status
    assert 'WWW-Authenticate: Bearer' in status
    record.shot(spa, "spa-api-call-401-without-a-token")
    # The same from outside the browser: no token, a forged token, and CORS for App 1's origin only.
    assert requests.get(demo.api_url, timeout=10).status_code == 401
    forged = requests.get(demo.api_url, headers={"Authorization": "Bearer not.a.token"}, timeout=10)
    assert forged.status_code == 401
    assert forged.headers["WWW-Authenticate"].startswith("Bearer")
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    allowed = requests.options(demo.api_url, headers={"Origin": demo.app1_url, **preflight}, timeout=10)
    assert allowed.headers["Access-Control-Allow-Origin"] == demo.app1_url
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    other = requests.options(demo.api_url, headers={"Origin": "http://127.0.0.1:1", **preflight}, timeout=10)
    assert "Access-Control-Allow-Origin" not in other.headers

    # 3. In a second tab (the SPA's sign-in is in localStorage, shared by the origin's tabs), the SPA's link
    #    to App 2's /auth/sso: the dashboard, signed in, no login form on the way.  The first tab stays open.
    tab = context.new_page()
    tab.goto(demo.app1_url + "/")
    wait_for_text(tab, "#state", "Signed in as Alice Example")
    wait_for_text(tab, "#renewal", "the provider session is alive")  # the renewal on load
    record.hops(tab).clear()
    tab.click("#to-app2")
    tab.wait_for_url(demo.app2_url + "/dashboard")
    assert tab.locator("#user-name").inner_text() == "Alice Example"
    assert tab.locator("#user-email").inner_text() == "alice@example.com"
    assert tab.locator("#remote-user").inner_text() == "alice"
    assert "is signed in silently" in tab.locator("#seed").inner_text()
    hops = record.hops(tab)
    assert hops[0].startswith(demo.app2_url + "/auth/sso?connection=")
    assert parse_qs(urlsplit(hops[0]).query)["target_url"] == ["/dashboard"]
    # App 2 pushed its authorization request (PAR, which the provider offers): the browser carried only
    # client_id and request_uri, and the silent prompt=none travelled in the push.
    authorize_hops = [url for url in hops if url.startswith(demo.provider_url + "/authorize?")]
    assert authorize_hops, hops
    assert all(set(parse_qs(urlsplit(url).query)) == {"client_id", "request_uri"} for url in authorize_hops), hops
    assert any(event["client_id"] == app2_client and event["pushed"] and event["params"].get("prompt") == "none"
               for event in demo.provider.events("authorize")), demo.provider.events("authorize")
    assert_no_login_form_on_the_way(hops, demo)
    assert tab.locator("#login-form").count() == 0
    record.shot(tab, "app2-dashboard-signed-in-silently")

    # App 2's own pages: the admin area (an access rule on the roles claim), an API call with its access token.
    tab.click("#to-admin")
    tab.wait_for_url(demo.app2_url + "/admin")
    assert "admin" in tab.locator("#admin-ok").inner_text()
    record.shot(tab, "app2-admin-area")
    tab.goto(demo.app2_url + "/api")
    assert tab.locator("#api-result").inner_text().startswith("HTTP 200"), tab.locator("main").inner_text()
    assert '"sub":"alice"' in tab.locator("#api-result").inner_text().replace(" ", "")
    record.shot(tab, "app2-api-page-with-its-access-token")

    # 4. App 3, the legacy intranet app, through its /auth/sso: the same provider session, no login form.
    tab.goto(demo.app2_url + "/dashboard")
    record.hops(tab).clear()
    tab.click("#to-app3")
    tab.wait_for_url(demo.app3_url + "/")
    assert tab.locator("#app3-state").inner_text() == "Signed in to the intranet"
    assert tab.locator("#user-sub").inner_text() == "alice"
    assert "single logout" in tab.locator("#seed").inner_text()
    hops = record.hops(tab)
    assert hops[0].startswith(demo.app3_url + "/auth/sso?connection="), hops
    assert_no_login_form_on_the_way(hops, demo)
    assert wait_for_event(demo, "authorization_response", app3_client)[-1]["error"] is None
    record.shot(tab, "app3-signed-in-through-the-same-provider-session")

    # 5. Sign out at App 2: RP-initiated logout with the provider's confirmation ends the provider session.
    demo.provider.clear_events()
    tab.goto(demo.app2_url + "/dashboard")
    tab.click("#sign-out")
    tab.wait_for_selector("#logout-yes")
    record.shot(tab, "provider-logout-confirmation")
    tab.click("#logout-yes")
    tab.wait_for_url(demo.app2_url + "/")
    assert tab.locator("#app2-state").inner_text() == "not signed in"
    assert demo.provider.events("end_session_confirm")[-1]["logout"] is True
    record.shot(tab, "app2-signed-out")

    # 6. The provider's back-channel logout reached App 3: its session is gone, though the browser still
    #    holds its cookie, so App 3 asks for a login again (and the provider has no session to offer).
    backchannel = wait_for_event(demo, "backchannel_logout", app3_client)
    assert backchannel and backchannel[-1]["ok"] is True and backchannel[-1]["sub"] == "alice", backchannel
    assert "app3_session" in {cookie["name"] for cookie in context.cookies(demo.app3_url)}
    tab.goto(demo.app3_url + "/")
    tab.wait_for_selector("#login-form")
    assert tab.url.startswith(demo.provider_url + "/interaction/")
    record.shot(tab, "app3-signed-out-by-back-channel-logout")

    # 7. The first tab, never reloaded: its next silent renewal (prompt=none in a hidden iframe) gets
    #    login_required, and the SPA shows "signed out".
    record.hops(spa).clear()
    spa.bring_to_front()
    wait_for_text(spa, "#state", "Signed out", timeout=4_000 + 3_000 * SPA_CHECK_SECONDS)
    assert "login_required" in spa.locator("#signed-out-why").inner_text()
    assert record.hops(spa) == [], "the SPA tab was reloaded"
    silent = [event for event in demo.provider.events("authorize")
              if event["client_id"] == spa_client and event["params"].get("prompt") == "none"]
    assert silent and silent[-1]["error"] == "login_required", silent
    record.shot(spa, "spa-signed-out-after-its-silent-renewal")
    context.close()


def test_the_spa_signs_out_through_the_providers_logout_page(demo: demo_app.Demo, browser: Browser) -> None:
    context = browser.new_context()
    spa = context.new_page()
    spa.goto(demo.app1_url + "/")
    wait_for_text(spa, "#state", "Signed out")
    spa.click("#sign-in")
    spa.wait_for_selector("#login-form")
    spa.fill("#login", "bob")
    spa.fill("#password", "bob-password")
    spa.click("#submit")
    wait_for_text(spa, "#state", "Signed in as Bob")
    demo.provider.clear_events()
    spa.click("#sign-out")
    spa.wait_for_selector("#logout-yes")
    spa.click("#logout-yes")
    spa.wait_for_url(demo.app1_url + "/")
    wait_for_text(spa, "#state", "Signed out")
    [end_session] = demo.provider.events("end_session")
    assert end_session["client_id"] == demo.client_ids["app1"], end_session
    assert end_session["params"]["post_logout_redirect_uri"] == demo.app1_url + "/"
    assert "id_token_hint" in end_session["params"]
    assert demo.provider.events("end_session_confirm")[-1]["logout"] is True
    spa.reload()  # the tokens are gone from the browser too
    wait_for_text(spa, "#state", "Signed out")
    context.close()
