"""``response_mode = form_post`` and two hostnames in a real Chromium (Debian's), against the real provider.

The app is served once on a loopback port and listed twice in ``base_url``:
``http://localhost:P`` (first) and ``http://127.0.0.1:P``; the provider is at
``http://127.0.0.1:Q``.  Signing in from ``localhost`` makes the provider's
auto-submitted form a **cross-site** POST (sites differ by host, not port), so only
a ``SameSite=None; Secure`` transaction cookie reaches the callback; Chromium keeps
and sends such cookies on http loopback (potentially trustworthy origins).  A control
app whose transaction cookies are ``SameSite=Lax`` loses the sign-in
(``invalid_state``): the attribute is what makes form_post work.  The same user then
signs in on the ``127.0.0.1`` name, whose redirect URI is the second registered one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import waitress
from playwright.sync_api import Browser, Page, Request

from sso_middleware import SSOMiddleware
from sso_middleware.testing import DevProvider

from ..conftest import SESSION_SECRET, legacy_app
from ..servers import free_port, stop_waitress
from .test_demo_browser import chromium_browser


class FormPostApp:
    """The middleware (form_post, two hostnames) around the legacy app, on one loopback port."""

    def __init__(self, provider: DevProvider, tmp: Path, name: str, lax_control: bool = False) -> None:
        self.port = free_port()
        self.names = (f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}")
        self.client = provider.register_client([url + "/auth/callback" for url in self.names],
                                               post_logout_redirect_uris=[url + "/" for url in self.names],
                                               client_name=name)
        self.middleware = SSOMiddleware(
            legacy_app, issuer=provider.issuer, client_id=self.client.client_id,
            client_secret=self.client.client_secret, base_url=" ".join(self.names), response_mode="form_post",
            session_secret=SESSION_SECRET, session_data_dir=str(tmp / name), allow_insecure_http=True,
            protected_paths=("/dashboard",), cookie_name=f"{name}_session",
        )
        if lax_control:  # what the transaction cookies were before form_post: SameSite=Lax, not Secure on http
            transactions = self.middleware.handlers.transactions
            transactions._cross_site = False
            transactions._secure = False
        self.server = waitress.create_server(self.middleware, host="127.0.0.1", port=self.port, threads=4)
        threading.Thread(target=self.server.run, daemon=True).start()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium_browser() as launched:
        yield launched


@pytest.fixture(scope="module")
def apps(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FormPostApp]]:
    tmp = tmp_path_factory.mktemp("form-post-sessions")
    started = {"form_post": FormPostApp(oidc_provider, tmp, "fp"),
               "lax_control": FormPostApp(oidc_provider, tmp, "laxfp", lax_control=True)}
    yield started
    for app in started.values():
        stop_waitress(app.server)


def record_callbacks(page: Page, port: int) -> list[tuple[str, str]]:
    """(method, URL) of every request to the app's callback."""
    seen: list[tuple[str, str]] = []

    def on_request(request: Request) -> None:
        if f":{port}/auth/callback" in request.url:
            seen.append((request.method, request.url))

    page.on("request", on_request)
    return seen


def log_in(page: Page, provider: DevProvider, user: str = "alice") -> None:
    page.wait_for_selector("#login-form")
    assert page.url.startswith(provider.issuer)
    page.fill("#login", user)
    page.fill("#password", f"{user}-password")
    page.click("#submit")


def shown(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(page.inner_text("body"))
    return result


def test_form_post_sign_in_survives_the_cross_site_post(browser: Browser, apps: dict[str, FormPostApp],
                                                        oidc_provider: DevProvider) -> None:
    app = apps["form_post"]
    localhost, loopback_ip = app.names
    context = browser.new_context()
    page = context.new_page()
    callbacks = record_callbacks(page, app.port)
    oidc_provider.clear_events()

    page.goto(localhost + "/dashboard?x=1")
    tx_cookies = [cookie for cookie in context.cookies() if "_tx_" in cookie["name"]]
    assert len(tx_cookies) == 1 and tx_cookies[0]["sameSite"] == "None" and tx_cookies[0]["secure"], tx_cookies
    authorize = [event for event in oidc_provider.events("authorize")
                 if event.get("client_id") == app.client.client_id]
    assert authorize[-1]["params"]["response_mode"] == "form_post"
    assert authorize[-1]["params"]["redirect_uri"] == localhost + "/auth/callback"
    log_in(page, oidc_provider)
    page.wait_for_url(localhost + "/dashboard?x=1")
    assert shown(page)["remote_user"] == "alice"
    # the provider answered with a POST (no code in any URL), and the session cookie stayed Lax
    assert [method for method, _url in callbacks] == ["POST"], callbacks
    assert all("code=" not in url for _method, url in callbacks)
    session = [cookie for cookie in context.cookies() if cookie["name"] == "fp_session"]
    assert len(session) == 1 and session[0]["sameSite"] == "Lax" and session[0]["domain"] == "localhost"
    assert not [cookie for cookie in context.cookies() if "_tx_" in cookie["name"]]  # spent

    # the second hostname: its own redirect URI, its own (host-only) session
    callbacks.clear()
    page.goto(loopback_ip + "/dashboard")
    if page.locator("#login-form").count():
        log_in(page, oidc_provider)
    page.wait_for_url(loopback_ip + "/dashboard")
    assert shown(page)["remote_user"] == "alice"
    authorize = [event for event in oidc_provider.events("authorize")
                 if event.get("client_id") == app.client.client_id]
    assert authorize[-1]["params"]["redirect_uri"] == loopback_ip + "/auth/callback"
    assert [method for method, _url in callbacks] == ["POST"]
    context.close()


def test_a_lax_transaction_cookie_is_lost_on_the_cross_site_post(browser: Browser, apps: dict[str, FormPostApp],
                                                                 oidc_provider: DevProvider) -> None:
    """The control: the same flow with SameSite=Lax transaction cookies ends on the failure page."""
    app = apps["lax_control"]
    localhost = app.names[0]
    context = browser.new_context()
    page = context.new_page()
    page.goto(localhost + "/dashboard")
    log_in(page, oidc_provider)
    page.wait_for_url(localhost + "/auth/failure?error=invalid_state")
    assert "fp_session" not in {cookie["name"] for cookie in context.cookies()}
    context.close()


def test_chromium_cookie_rules_on_http_loopback(browser: Browser) -> None:
    """The README's table: which cookies Chromium stores on http loopback and sends with a cross-site POST."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    variants = {"lax": "SameSite=Lax", "none_plain": "SameSite=None", "none_secure": "SameSite=None; Secure"}
    app_port, other_port = free_port(), free_port()
    target = f"http://127.0.0.1:{app_port}/echo"

    class AppSide(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            for name, attributes in variants.items():
                self.send_header("Set-Cookie", f"{name}=1; Path=/; HttpOnly; {attributes}")
            self.end_headers()
            self.wfile.write(b"set")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.end_headers()
            self.wfile.write((self.headers.get("Cookie") or "").encode())

    class OtherSite(BaseHTTPRequestHandler):  # what the provider's form_post page does
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(f'<form method="post" action="{target}"><input name="code" value="x"></form>'
                             "<script>document.forms[0].submit()</script>".encode())

    servers = [ThreadingHTTPServer(("127.0.0.1", port), handler)
               for port, handler in ((app_port, AppSide), (other_port, OtherSite))]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{app_port}/set")
        assert sorted(cookie["name"] for cookie in context.cookies()) == ["lax", "none_secure"]  # no Secure: refused
        page.goto(f"http://localhost:{other_port}/")  # another site (sites differ by host, not port)
        page.wait_for_url(target)
        assert page.inner_text("body") == "none_secure=1"  # Lax stays behind on the cross-site POST
        context.close()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
