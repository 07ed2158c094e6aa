"""The demo's two-app scenario in a real headless Chromium (Debian's), driven by Playwright.

Signs in at App 1 through the provider's login form, follows the link to App
2's ``/auth/sso`` and checks the dashboard shows the user with no login form on
the way (every navigation request is recorded), signs out on App 2 and checks
the dashboard asks for a login again.  A screenshot of each step is saved under
``test-artifacts/browser/`` (or ``$TEST_ARTIFACTS_DIR``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, sync_playwright

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




@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[demo_app.Demo]:
    running = demo_app.start_demo(
        app1_port=free_port(),
        app2_port=free_port(),
        provider_port=free_port(),
        environ={},
        session_dir=str(tmp_path_factory.mktemp("demo-sessions")),
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
    """Every top-level navigation request (redirect hops included) and numbered screenshots."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.navigations: list[str] = []
        self.step = 0
        folder.mkdir(parents=True, exist_ok=True)
        page.on("request", self._on_request)

    def _on_request(self, request: Request) -> None:
        if request.is_navigation_request() and request.frame == self.page.main_frame:
            self.navigations.append(request.url)

    def shot(self, name: str) -> Path:
        self.step += 1
        path = self.folder / f"{self.step:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        return path


def test_two_app_single_sign_on_in_a_real_browser(demo: demo_app.Demo, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 900, "height": 640})
    page = context.new_page()
    record = Recorder(page, ARTIFACTS / "browser")

    # 1. App 1, anonymous; sign in through the provider's login form.
    page.goto(demo.app1_url + "/")
    assert page.locator("h2").inner_text() == "You are not signed in"
    record.shot("app1-anonymous")
    page.click("#sign-in")
    page.wait_for_selector("#login-form")
    assert page.url.startswith(demo.provider_url)
    page.fill("#login", "alice")
    page.fill("#password", "alice-password")
    record.shot("provider-login-form")
    page.click("#submit")
    page.wait_for_url(demo.app1_url + "/")
    assert page.locator("h2").inner_text() == "You are signed in"
    assert page.locator("#user-email").inner_text() == "alice@example.com"
    record.shot("app1-signed-in")

    # 2. The link to App 2's /auth/sso: the dashboard, signed in, no login form on the way.
    record.navigations.clear()
    page.click("#to-app2")
    page.wait_for_url(demo.app2_url + "/dashboard")
    assert page.locator("#user-name").inner_text() == "Alice Example"
    assert page.locator("#user-email").inner_text() == "alice@example.com"
    assert page.locator("#user-sub").inner_text() == "alice"
    assert page.locator("#remote-user").inner_text() == "alice"
    hops = record.navigations
    assert hops[0].startswith(demo.app2_url + "/auth/sso?connection=")
    # App 2 pushed its authorization request (PAR, which the provider offers): the browser carried only
    # client_id and request_uri, and the silent prompt=none travelled in the push.
    authorize_hops = [url for url in hops if url.startswith(demo.provider_url + "/authorize?")]
    assert authorize_hops, hops
    assert all(set(parse_qs(urlsplit(url).query)) == {"client_id", "request_uri"} for url in authorize_hops), hops
    assert any(event["pushed"] and event["params"].get("prompt") == "none"
               for event in demo.provider.events("authorize")), demo.provider.events("authorize")
    assert not any("/interaction/" in url for url in hops), f"a login page was shown: {hops}"
    assert page.locator("#login-form").count() == 0
    record.shot("app2-dashboard-signed-in-silently")

    # 3. The admin area (an access rule on the roles claim) and an API call with alice's access token.
    page.click("#to-admin")
    page.wait_for_url(demo.app2_url + "/admin")
    assert "admin" in page.locator("#admin-ok").inner_text()
    record.shot("app2-admin-area")
    page.goto(demo.app2_url + "/api")
    assert page.locator("#api-result").inner_text().startswith("HTTP 200"), page.locator("main").inner_text()
    assert '"sub":"alice"' in page.locator("#api-result").inner_text().replace(" ", "")
    record.shot("app2-api-call-with-access-token")
    page.goto(demo.app2_url + "/dashboard")

    # 4. Sign out on App 2 (RP-initiated logout at the provider), then the dashboard asks for a login.
    page.click("#sign-out")
    page.wait_for_selector("#logout-yes")
    record.shot("provider-logout-confirmation")
    page.click("#logout-yes")
    page.wait_for_url(demo.app2_url + "/")
    assert "not signed in" in page.locator("main").inner_text()
    record.shot("app2-signed-out")
    page.goto(demo.app2_url + "/dashboard")
    page.wait_for_selector("#login-form")
    assert page.url.startswith(demo.provider_url)
    record.shot("app2-dashboard-asks-login-again")
    context.close()
