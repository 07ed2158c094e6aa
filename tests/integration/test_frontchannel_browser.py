"""Front-channel logout in a real headless Chromium (Debian's), against the real dev provider.

The provider is at ``http://127.0.0.1:P``.  Two wrapped applications at ``http://localhost:A``
and ``http://localhost:B`` are **another site** (sites differ by host, not port), so the
provider's logout page frames them cross-site, as in a real deployment with the provider on
its own domain: Chromium sends no ``SameSite=Lax`` cookie with those frames.  Alice signs in
at A, reaches B silently, signs out at A (RP-initiated logout, "Yes, sign me out" at the
provider), the provider's page frames A's and B's front-channel logout URLs, Chromium loads
them, and B's session ends through the ``sid`` the provider put into B's URL.

Two controls show why the ``sid`` form matters: the same flow for clients registered without
``frontchannel_logout_session_required`` leaves B signed in (the frame carries no cookie, so
nothing names B's session); and with the applications on ``127.0.0.1`` -- the provider's own
site -- the frame carries B's cookie, and the cookie form ends B's session.

Screenshots go to ``test-artifacts/browser/frontchannel-*.png`` (or ``$TEST_ARTIFACTS_DIR``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, Route

from sso_middleware.testing import DevProvider

from ..servers import free_port, stop_waitress
from .test_demo_browser import ARTIFACTS, chromium_browser
from .test_frontchannel_integration import FrontApp

PATH = "/auth/frontchannel-logout"
CONNECTION = "Username-Password-Authentication"


class BrowserApp(FrontApp):
    """A wrapped application on ``host`` whose client registered its front-channel logout URI (no query of its own)."""

    def __init__(self, provider: DevProvider, tmp: Path, name: str, host: str, with_sid: bool) -> None:
        super().__init__(provider, tmp, name, with_sid, host=host, tagged=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium_browser() as launched:
        yield launched


@pytest.fixture(scope="module")
def apps(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BrowserApp]]:
    tmp = tmp_path_factory.mktemp("frontchannel-browser")
    specs = {"a": ("localhost", True), "b": ("localhost", True), "plain_a": ("localhost", False),
             "plain_b": ("localhost", False), "same_a": ("127.0.0.1", False), "same_b": ("127.0.0.1", False)}
    started = {key: BrowserApp(oidc_provider, tmp, f"fcb{key.replace('_', '')}", host, with_sid)
               for key, (host, with_sid) in specs.items()}
    yield started
    for app in started.values():
        stop_waitress(app.server)


class Shots:
    """Numbered screenshots ``frontchannel-NN-<name>.png`` under the artifacts' browser folder."""

    def __init__(self) -> None:
        self.folder = ARTIFACTS / "browser"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.step = 0

    def take(self, page: Page, name: str) -> None:
        self.step += 1
        page.screenshot(path=str(self.folder / f"frontchannel-{self.step:02d}-{name}.png"))


def who(page: Page, app: BrowserApp) -> Any:
    page.goto(app.url("/public"))
    return json.loads(page.inner_text("body"))["remote_user"]


def frame_answers(context: BrowserContext) -> list[tuple[str, int]]:
    """(URL, status) of every answer to a front-channel logout frame (a request of a child frame)."""
    seen: list[tuple[str, int]] = []

    def on_response(response: Response) -> None:
        frame = response.request.frame
        if PATH in response.url and frame.parent_frame is not None:
            seen.append((response.url, response.status))

    context.on("response", on_response)
    return seen


def sign_in_at_both(page: Page, provider: DevProvider, first: BrowserApp, second: BrowserApp) -> None:
    page.goto(first.url("/auth/login?target_url=/public"))
    page.wait_for_selector("#login-form")
    page.fill("#login", "alice")
    page.fill("#password", "alice-password")
    page.click("#submit")
    page.wait_for_url(first.url("/public"))
    assert json.loads(page.inner_text("body"))["remote_user"] == "alice"
    page.goto(second.url(f"/auth/sso?connection={CONNECTION}&target_url=/public"))
    page.wait_for_url(second.url("/public"))  # silently: the provider session of the first sign-in
    assert json.loads(page.inner_text("body"))["remote_user"] == "alice"


def sign_out_at(page: Page, app: BrowserApp, provider: DevProvider, shots: Shots | None = None,
                hold: str | None = None) -> None:
    """RP-initiated logout at ``app``, "Yes" at the provider, until the provider's page has gone on to ``app``.

    ``hold``: a frame URL prefix whose request is held back (not changed) until the provider's page of
    frames has been photographed; then it goes through to the application.
    """
    held: list[Route] = []

    def hold_back(route: Route) -> None:
        held.append(route)

    if hold is not None:
        page.context.route(hold + "**", hold_back)
    page.goto(app.url("/auth/logout?target_url=/"))
    page.wait_for_selector("#logout-yes")
    if shots is not None:
        shots.take(page, "provider-asks-to-sign-out")
    page.click("#logout-yes")
    if hold is not None:
        page.wait_for_selector("#frontchannel-pending")
        while not held:
            page.wait_for_timeout(50)
        if shots is not None:
            shots.take(page, "provider-page-frames-the-apps")
        for route in held:
            route.continue_()
        page.context.unroute(hold + "**", hold_back)
    page.wait_for_url(app.url("/"), timeout=15_000)


def test_a_cross_site_frame_ends_the_other_apps_session_by_sid(browser: Browser, apps: dict[str, BrowserApp],
                                                              oidc_provider: DevProvider) -> None:
    a, b = apps["a"], apps["b"]
    shots = Shots()
    context = browser.new_context()
    page = context.new_page()
    answers = frame_answers(context)
    sign_in_at_both(page, oidc_provider, a, b)
    shots.take(page, "signed-in-at-b-silently")
    oidc_provider.clear_events()

    sign_out_at(page, a, oidc_provider, shots, hold=b.url(PATH))
    shots.take(page, "back-at-a-after-sign-out")

    # Chromium loaded both frames of the provider's page; B's carried iss and B's sid, and got 200.
    by_app = {urlsplit(url).netloc: (url, status) for url, status in answers}
    assert set(by_app) == {urlsplit(a.base_url).netloc, urlsplit(b.base_url).netloc}, answers
    url, status = by_app[urlsplit(b.base_url).netloc]
    query = parse_qs(urlsplit(url).query)
    assert status == 200 and query["iss"] == [oidc_provider.issuer]
    (event,) = [event for event in oidc_provider.events("frontchannel_logout")
                if event["client_id"] == b.client.client_id]
    assert query["sid"] == [event["sid"]]
    # B's session is over (and no B cookie went with the cross-site frame: the sid did it).
    assert who(page, b) is None
    shots.take(page, "b-is-signed-out")
    assert who(page, a) is None
    context.close()


def test_without_sid_a_cross_site_frame_cannot_end_the_session(browser: Browser, apps: dict[str, BrowserApp],
                                                               oidc_provider: DevProvider) -> None:
    """The control: the frame loads (200) but carries no cookie of B's, and names no sid."""
    a, b = apps["plain_a"], apps["plain_b"]
    context = browser.new_context()
    page = context.new_page()
    answers = frame_answers(context)
    sent_cookies: list[str] = []
    context.on("request", lambda request: sent_cookies.append(request.headers.get("cookie", ""))
               if b.url(PATH) in request.url else None)
    sign_in_at_both(page, oidc_provider, a, b)
    sign_out_at(page, a, oidc_provider)
    assert (b.url(PATH), 200) in answers, answers
    assert sent_cookies and all(f"{b.middleware.config.session_cookie_name}=" not in c for c in sent_cookies)
    assert who(page, b) == "alice"  # still signed in: what the README warns about
    context.close()


def test_on_the_providers_own_site_the_cookie_form_ends_the_session(browser: Browser, apps: dict[str, BrowserApp],
                                                                    oidc_provider: DevProvider) -> None:
    """Applications on 127.0.0.1 (the provider's site): the same-site frame carries B's Lax cookie."""
    a, b = apps["same_a"], apps["same_b"]
    context = browser.new_context()
    page = context.new_page()
    answers = frame_answers(context)
    sign_in_at_both(page, oidc_provider, a, b)
    sign_out_at(page, a, oidc_provider)
    assert (b.url(PATH), 200) in answers, answers
    assert who(page, b) is None
    context.close()


def test_another_sites_page_cannot_display_the_route_in_a_frame(browser: Browser, apps: dict[str, BrowserApp],
                                                                oidc_provider: DevProvider) -> None:
    """``frame-ancestors``: Chromium renders the route inside the provider's page (above), not inside another's.

    The request itself still goes out (CSP limits who may display an answer, not who may cause a GET):
    SECURITY.md says what that means.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    target = apps["a"].url(PATH)

    class Framer(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(f'<iframe id="f" src="{target}"></iframe>'.encode())

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Framer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        context = browser.new_context()
        page = context.new_page()
        answers = frame_answers(context)
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")  # not the provider's origin (another port)
        page.wait_for_timeout(500)
        assert (target, 200) in answers  # answered ...
        (child,) = page.main_frame.child_frames
        assert child.url == "chrome-error://chromewebdata/"  # ... but refused display (the provider's page shows it)
        assert "signed out" not in child.content()
        context.close()
    finally:
        server.shutdown()
        server.server_close()
