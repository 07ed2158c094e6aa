"""preserve_post in a real Chromium (Debian's), against the real dev provider: the form typed survives a re-login.

The wrapped app serves a form page (a title, a multi-line text area, checkboxes sharing a
name, the app's own CSRF token, a submit button named ``submit``) and records every POST.
The app is served on ``http://localhost:P`` and the provider on ``http://127.0.0.1:Q``, so
the provider's cookies can be dropped alone.  The user signs in at the provider's form,
opens the form page and fills it in; then the session ends (its record is deleted from the
file store) and the provider's session too (its cookies are dropped: a login is needed
again).  Submitting sends the browser to the provider's login form; after signing in there,
the middleware's page re-posts the form by itself (its script allowed by the CSP hash: no
CSP violation is reported) and the app receives the original fields exactly once.  Going
back, or opening the callback URL again, sends nothing again.  With JavaScript off, the page's button does it.
Screenshots: ``test-artifacts/browser/preserve-post-*.png`` (or ``$TEST_ARTIFACTS_DIR``).
"""

from __future__ import annotations

import html
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import waitress
from playwright.sync_api import Browser, ConsoleMessage, Page

from sso_middleware import SSOMiddleware
from sso_middleware.testing import DevProvider

from ..conftest import SESSION_SECRET
from ..servers import free_port, stop_waitress
from ..wsgi.test_preserve_post import FormApp
from .test_demo_browser import ARTIFACTS, chromium_browser

SHOTS = ARTIFACTS / "browser"
TEXT = "First line of a long report\nsecond line: ünïcödé ✓ & <b>not bold</b>\n\nlast \"quoted\" line"
EXPECTED = [("csrf_token", "app-csrf-7f3a"), ("title", "Q4 report, draft 2"), ("body", TEXT.replace("\n", "\r\n")),
            ("tag", "finance"), ("tag", "urgent"), ("submit", "Save")]


class FormPageApp(FormApp):
    """GET: the form page; POST: recorded, answered with what arrived (JSON)."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["REQUEST_METHOD"] != "GET":
            return super().__call__(environ, start_response)
        page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Report</title></head><body>
<h1>Write a report</h1><p>Signed in as <b id="user">{html.escape(environ.get("REMOTE_USER", ""))}</b></p>
<form method="post" action="/app/forms/report?draft=2">
<input type="hidden" name="csrf_token" value="app-csrf-7f3a">
<p><label>Title <input id="title" name="title"></label></p>
<p><textarea id="body" name="body" rows="6" cols="60"></textarea></p>
<p><label><input type="checkbox" name="tag" value="finance" id="t1"> finance</label>
<label><input type="checkbox" name="tag" value="urgent" id="t2"> urgent</label></p>
<p><button type="submit" name="submit" value="Save" id="save">Save</button></p>
</form></body></html>""".encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))])
        return [page]


class Served:
    def __init__(self, provider: DevProvider, tmp: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://localhost:{self.port}"
        self.client = provider.register_client([self.base_url + "/auth/callback"], client_name="ppbrowser")
        self.app = FormPageApp()
        self.data_dir = tmp / "sessions"
        self.middleware = SSOMiddleware(
            self.app, issuer=provider.issuer, client_id=self.client.client_id,
            client_secret=self.client.client_secret, base_url=self.base_url, session_secret=SESSION_SECRET,
            session_data_dir=str(self.data_dir), allow_insecure_http=True, protected_paths="/app",
            preserve_post="/app/forms", cookie_name="pp_session",
        )
        self.server = waitress.create_server(self.middleware, host="127.0.0.1", port=self.port, threads=4)
        threading.Thread(target=self.server.run, daemon=True).start()

    def end_sessions(self) -> int:
        """Delete every session record of the file store (what an idle timeout or a store flush does)."""
        gone = 0
        for folder, _dirs, files in os.walk(self.data_dir / "container_file"):
            for name in files:
                if not name.startswith("sso-post-"):
                    os.unlink(os.path.join(folder, name))
                    gone += 1
        return gone

    def kept_records(self) -> int:
        return sum(name.startswith("sso-post-") for _d, _ds, files in os.walk(self.data_dir) for name in files)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium_browser() as launched:
        yield launched


@pytest.fixture(scope="module")
def served(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    app = Served(oidc_provider, tmp_path_factory.mktemp("preserve-post-browser"))
    yield app
    stop_waitress(app.server)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"preserve-post-{name}.png"), full_page=True)


def log_in(page: Page, provider: DevProvider) -> None:
    page.wait_for_selector("#login-form")
    assert page.url.startswith(provider.issuer)
    page.fill("#login", "alice")
    page.fill("#password", "alice-password")
    page.click("#submit")


def fill_form(page: Page) -> None:
    page.fill("#title", "Q4 report, draft 2")
    page.fill("#body", TEXT)
    page.check("#t1")
    page.check("#t2")


def open_form_signed_in(page: Page, served: Served, provider: DevProvider) -> None:
    page.goto(served.base_url + "/app/forms/report")
    log_in(page, provider)
    page.wait_for_url(served.base_url + "/app/forms/report")
    assert page.inner_text("#user") == "alice"


def csp_violations(page: Page) -> list[str]:
    found: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            found.append(message.text)

    page.on("console", on_console)
    return found


def test_the_form_survives_the_re_login_and_arrives_once(browser: Browser, served: Served,
                                                         oidc_provider: DevProvider) -> None:
    context = browser.new_context()
    page = context.new_page()
    violations = csp_violations(page)
    served.app.posts.clear()
    open_form_signed_in(page, served, oidc_provider)
    fill_form(page)
    shot(page, "01-form-filled")

    assert served.end_sessions() >= 1  # the session ends while the user types ...
    context.clear_cookies(domain="127.0.0.1")  # ... and the provider's session too: a real login is needed
    hops: list[tuple[str, str]] = []
    page.on("request", lambda request: hops.append((request.method, request.url))
            if request.is_navigation_request() else None)
    page.click("#save")
    page.wait_for_selector("#login-form")
    assert served.kept_records() == 1 and not served.app.posts  # kept, nothing reached the app yet
    shot(page, "02-provider-login")
    log_in(page, oidc_provider)
    page.wait_for_url(served.base_url + "/app/forms/report?draft=2")
    page.wait_for_load_state()
    shot(page, "03-app-received-the-form")

    assert len(served.app.posts) == 1
    received = served.app.posts[0]
    assert received["fields"] == EXPECTED
    assert received["remote_user"] == "alice" and received["query"] == "draft=2"
    assert received["origin"] == served.base_url  # a same-origin POST, made by the middleware's page
    assert not violations, violations
    callback = [url for method, url in hops if "/auth/callback" in url]
    assert len(callback) == 1 and served.kept_records() == 0
    # exactly the POSTs a browser made: the form to the app (kept), then the page's re-post
    posts = [url for method, url in hops if method == "POST" and url.startswith(served.base_url + "/app/")]
    assert posts == [served.base_url + "/app/forms/report?draft=2"] * 2

    # Back: the re-posting page replaced its own history entry (submitted while loading), so back leads
    # to the provider's spent login page; and opening the callback URL again shows invalid_state.
    page.go_back()
    page.wait_for_load_state()
    assert len(served.app.posts) == 1
    page.goto(callback[0])
    shot(page, "04-callback-again-does-not-resend")
    assert "invalid_state" in page.content()
    assert len(served.app.posts) == 1
    context.close()


def test_without_javascript_the_button_sends_it(browser: Browser, served: Served,
                                                oidc_provider: DevProvider) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    served.app.posts.clear()
    open_form_signed_in(page, served, oidc_provider)
    page.fill("#title", "no script")
    page.check("#t2")
    assert served.end_sessions() >= 1  # the provider session stays: the sign-in is silent this time
    page.click("#save")
    page.wait_for_selector("text=Send the form")
    assert page.url.startswith(served.base_url + "/auth/callback")
    assert not served.app.posts
    shot(page, "05-no-script-button")
    page.click("text=Send the form")
    page.wait_for_url(served.base_url + "/app/forms/report?draft=2")
    assert [post["fields"] for post in served.app.posts] == [
        [("csrf_token", "app-csrf-7f3a"), ("title", "no script"), ("body", ""), ("tag", "urgent"),
         ("submit", "Save")]]
    context.close()


def test_a_file_upload_form_gets_a_page_saying_it_was_not_kept(browser: Browser, served: Served,
                                                              oidc_provider: DevProvider) -> None:
    context = browser.new_context()
    page = context.new_page()
    open_form_signed_in(page, served, oidc_provider)
    served.end_sessions()
    page.evaluate("""() => { const form = document.forms[0]; form.enctype = 'multipart/form-data'; }""")
    page.fill("#title", "with a file")
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.click("#save")
    assert answer.value.status == 415
    assert "cannot be kept" in page.content() and "preserve_post_unsupported" in page.content()
    shot(page, "06-multipart-not-kept")
    context.close()
