"""The session endpoint in a real Chromium (Debian's), against the real provider: what a browser really sends.

The user signs in at the bundled provider; the app's own page then calls ``fetch`` on
``/auth/session`` -- Chromium adds ``Origin`` and ``Sec-Fetch-Site: same-origin`` by
itself, the page adds ``X-SSO-CSRF: 1`` -- and the POST refreshes at the provider.  A page
of another origin (``localhost`` against the app's ``127.0.0.1``) then tries the three
ways a browser lets it: ``fetch`` with the CSRF header is stopped by the CORS preflight
(405), so its POST never leaves the browser; a ``no-cors`` fetch without the header, and an
auto-submitted HTML form, are sent but refused 403.  None of them reaches the provider.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import waitress
from playwright.sync_api import Browser

from sso_middleware import SSOMiddleware
from sso_middleware._session.refresh import FORCED_REFRESH_MIN_AGE
from sso_middleware.testing import DevProvider

from ..servers import free_port, stop_waitress
from ..token_apps import token_app
from .test_demo_browser import chromium_browser
from .test_form_post_browser import log_in
from .test_tokens_integration import refreshes

PATH = "/auth/session"


class Seen:
    """The WSGI app in front of the middleware: every request to the session endpoint (method, Origin)."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner
        self.requests: list[tuple[str, str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == PATH:
            self.requests.append((environ["REQUEST_METHOD"], environ.get("HTTP_ORIGIN", ""),
                                  environ.get("HTTP_SEC_FETCH_SITE", "")))
        return self.inner(environ, start_response)


def other_site(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """A page of another origin: blank HTML (the test scripts it)."""
    start_response("200 OK", [("Content-Type", "text/html")])
    return [b"<!doctype html><title>elsewhere</title><body>elsewhere</body>"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium_browser() as launched:
        yield launched


@pytest.fixture(scope="module")
def servers(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    port, other_port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{port}"
    client = oidc_provider.register_client([base_url + "/auth/callback"], client_name="sessionbrowser")
    middleware = SSOMiddleware(
        token_app(oidc_provider.endpoint("userinfo")), issuer=oidc_provider.issuer, client_id=client.client_id,
        client_secret=client.client_secret, base_url=base_url, session_secret=secrets.token_urlsafe(32),
        session_data_dir=str(Path(tmp_path_factory.mktemp("session-browser")) / "sessions"),
        allow_insecure_http=True, keep_access_token=True, scope="openid profile email offline_access",
        session_endpoint_path=PATH,
    )
    seen = Seen(middleware)
    app = waitress.create_server(seen, host="127.0.0.1", port=port, threads=4)
    other = waitress.create_server(other_site, host="127.0.0.1", port=other_port, threads=2)
    for server in (app, other):
        threading.Thread(target=server.run, daemon=True).start()
    yield {"base_url": base_url, "other": f"http://localhost:{other_port}", "client": client, "seen": seen}
    for server in (app, other):
        stop_waitress(server)


FETCH = """async ([url, options]) => {
  try { const r = await fetch(url, options); return [r.status, await r.json()]; }
  catch (e) { return [0, String(e)]; }
}"""


def test_a_page_refreshes_its_session_and_other_origins_cannot(browser: Browser, oidc_provider: DevProvider,
                                                               servers: dict[str, Any]) -> None:
    base_url, seen, client = servers["base_url"], servers["seen"], servers["client"]
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base_url}/auth/login?target_url=/whoami")
    log_in(page, oidc_provider)
    page.wait_for_url(f"{base_url}/whoami")

    status, state = page.evaluate(FETCH, [PATH, {}])
    assert status == 200 and state["signed_in"] is True and state["sub"] == "alice", state
    grants = len(refreshes(oidc_provider, client))
    page.wait_for_timeout((FORCED_REFRESH_MIN_AGE + 0.1) * 1000)  # a younger token is answered as it is
    status, posted = page.evaluate(FETCH, [PATH, {"method": "POST", "headers": {"X-SSO-CSRF": "1"}}])
    assert status == 200 and posted["signed_in"] is True, posted
    assert len(refreshes(oidc_provider, client)) == grants + 1
    assert seen.requests[-1] == ("POST", base_url, "same-origin")  # what Chromium itself sent

    # Another origin, with the user's cookie in the same browser.
    seen.requests.clear()
    page.goto(servers["other"] + "/")
    status, error = page.evaluate(FETCH, [base_url + PATH, {"method": "POST", "credentials": "include",
                                                           "headers": {"X-SSO-CSRF": "1"}}])
    assert status == 0 and "Failed to fetch" in error, (status, error)  # the preflight was refused
    assert [method for method, _origin, _site in seen.requests] == ["OPTIONS"], seen.requests
    status, _opaque = page.evaluate(FETCH, [base_url + PATH, {"method": "POST", "credentials": "include",
                                                             "mode": "no-cors"}])
    assert seen.requests[-1] == ("POST", servers["other"], "cross-site"), seen.requests
    with page.expect_response(base_url + PATH) as answer:
        page.evaluate("""(url) => { const f = document.createElement('form'); f.method = 'POST'; f.action = url;
                                    document.body.appendChild(f); f.submit(); }""", base_url + PATH)
    assert answer.value.status == 403 and answer.value.json()["error"] == "cross_origin_refused"
    assert seen.requests[-1] == ("POST", servers["other"], "cross-site"), seen.requests
    assert len(refreshes(oidc_provider, client)) == grants + 1  # nothing from the other origin reached the provider
    context.close()
