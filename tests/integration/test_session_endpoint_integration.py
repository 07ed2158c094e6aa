"""The session endpoint and the branded failure pages end to end: the bundled ``oidc-provider``, waitress, requests.

A user signs in at the real provider; the page's script (here ``requests`` sending what a
browser's ``fetch`` sends) reads ``/auth/session``, then POSTs to it: the provider records
one ``refresh_token`` grant, the store holds a new access token, the provider's userinfo
endpoint (a real resource server) accepts the new token, and the JSON's
``access_token_expires_at`` moved on.  A POST from another origin is refused before anything
is asked of the provider.  Then a real sign-in's callback, replayed, ends on the operator's
branded failure page in German.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import pytest
import requests

from sso_middleware._session.refresh import FORCED_REFRESH_MIN_AGE
from sso_middleware._session.state import TOKENS_PREFIX, Tokens
from sso_middleware._translations import GERMAN
from sso_middleware.testing import DevProvider

from ..servers import stop_waitress
from .test_doctor import check, settings_for, write_settings
from .test_tokens_integration import App, browse, get, refreshes, session_id, sign_in, start_app, token_settings

TTL = 120  # long: nothing refreshes by itself during these tests, only the POST does
PATH = "/auth/session"
BRAND = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head>
<body><header>ACME</header><h1>{title}</h1><p id="message">{message}</p><code id="code">{code}</code></body></html>
"""


@pytest.fixture(scope="module")
def provider() -> Iterator[DevProvider]:
    with DevProvider(access_token_ttl=TTL) as started:
        yield started


@pytest.fixture(scope="module")
def app(provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    tmp = tmp_path_factory.mktemp("session-endpoint")
    template = Path(tmp) / "failure.html"
    template.write_text(BRAND, encoding="utf-8")
    started = start_app(provider, "sessionep", tmp, **token_settings(session_endpoint_path=PATH,
                                                                     failure_page_template=str(template)))
    try:
        yield started
    finally:
        stop_waitress(started.server)


def stored_tokens(http: requests.Session, app: App) -> Tokens:
    """The tokens the session store holds for this browser's session, read past the middleware."""
    record = app.middleware.store.backend.read_record(TOKENS_PREFIX + session_id(http, app))
    tokens = Tokens.from_record(record)
    assert tokens is not None, record
    return tokens


def session_state(http: requests.Session, app: App, method: str = "GET", **headers: str) -> requests.Response:
    response = http.request(method, app.url(PATH), headers=headers, allow_redirects=False, timeout=15)
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:300]
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Vary"] == "Cookie"
    return response


def same_origin(app: App) -> dict[str, str]:
    """What a fetch() from the app's own page sends: its Origin, and the CSRF header the page adds."""
    return {"Origin": app.base_url, "X-SSO-CSRF": "1", "Sec-Fetch-Site": "same-origin"}


def test_get_then_post_refreshes_at_the_real_provider(provider: DevProvider, app: App) -> None:
    http = sign_in(provider, app.base_url)
    first = session_state(http, app)
    assert first.status_code == 200
    state: dict[str, Any] = first.json()
    assert (state["signed_in"], state["sub"], state["claims"]["email"]) == (True, "alice", "alice@example.com")
    assert abs(state["access_token_expires_at"] - (time.time() + TTL)) < 5
    before = stored_tokens(http, app)
    assert before.access_token not in first.text and (before.refresh_token or "-") not in first.text
    api_before = get(http, app.url("/api"))
    assert (api_before["http"], api_before["status"], api_before["sub"]) == (200, 200, "alice")
    grants = len(refreshes(provider, app.client))

    time.sleep(FORCED_REFRESH_MIN_AGE + 0.1)  # a younger token is answered as it is (and its expiry moves on)
    posted = session_state(http, app, "POST", **same_origin(app))
    assert posted.status_code == 200, posted.text
    after_state = posted.json()
    assert after_state["access_token_expires_at"] > state["access_token_expires_at"]
    assert after_state["idle_expires_at"] >= state["idle_expires_at"]
    assert len(refreshes(provider, app.client)) == grants + 1  # one refresh_token grant at the provider
    after = stored_tokens(http, app)
    assert after.access_token != before.access_token and after.refresh_token != before.refresh_token
    assert after.access_token not in posted.text and (after.refresh_token or "-") not in posted.text
    api_after = get(http, app.url("/api"))  # the app's token is the new one, and the resource server takes it
    assert (api_after["http"], api_after["status"], api_after["sub"]) == (200, 200, "alice")
    assert api_after["token"] != api_before["token"]
    assert session_state(http, app).json()["access_token_expires_at"] == after_state["access_token_expires_at"]


@pytest.mark.parametrize("headers", [
    pytest.param({"Origin": "http://evil.example", "X-SSO-CSRF": "1", "Sec-Fetch-Site": "cross-site"}, id="foreign"),
    pytest.param({"Origin": "null", "X-SSO-CSRF": "1"}, id="opaque"),
    pytest.param({"Sec-Fetch-Site": "same-origin"}, id="no-csrf-header"),
])
def test_a_cross_origin_post_is_refused_before_the_provider_is_asked(provider: DevProvider, app: App,
                                                                     headers: dict[str, str]) -> None:
    http = sign_in(provider, app.base_url)
    before = stored_tokens(http, app)
    grants = len(refreshes(provider, app.client))
    refused = session_state(http, app, "POST", **headers)
    assert refused.status_code == 403 and refused.json()["error"] == "cross_origin_refused"
    assert len(refreshes(provider, app.client)) == grants
    assert stored_tokens(http, app) == before


def test_anonymous_get_and_post(app: App) -> None:
    http = requests.Session()
    assert session_state(http, app).json() == {"signed_in": False}
    posted = session_state(http, app, "POST", **same_origin(app))
    assert posted.status_code == 401 and posted.json()["error"] == "login_required"


def test_a_replayed_callback_ends_on_the_branded_page_in_german(provider: DevProvider, app: App) -> None:
    http = requests.Session()
    redirect = provider.login(http, "alice", f"{app.base_url}/auth/login?{urlencode({'target_url': '/whoami'})}")
    callback = urljoin(redirect.url, redirect.headers["Location"])
    assert browse(http, callback)[-1].json()["user"] == "alice"  # the real sign-in
    replay = browse(requests.Session(), callback)  # its state is spent: another browser replaying it fails
    page = http.get(replay[-1].url, headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}, timeout=10)
    assert page.status_code == 400
    assert "<header>ACME</header>" in page.text and '<html lang="de">' in page.text
    assert f'<p id="message">{GERMAN["invalid_state"]}</p>' in page.text
    assert '<code id="code">invalid_state</code>' in page.text
    assert page.headers["Content-Language"] == "de" and "Accept-Language" in page.headers["Vary"]


def test_the_doctor_reports_both_against_the_provider(capsys: pytest.CaptureFixture[str], provider: DevProvider,
                                                      tmp_path: Path) -> None:
    template = tmp_path / "failure.html"
    template.write_text(BRAND, encoding="utf-8")
    settings = settings_for(provider, tmp_path, session_endpoint_path=PATH, failure_page_template=str(template),
                            keep_access_token="true", scope="openid profile email offline_access")
    outcome = check(capsys, "--settings", write_settings(tmp_path, settings))
    assert outcome.code == 0, outcome.out
    assert "{title}, {message}, {code}, {lang}" in outcome.line("OK", "failure pages")
    assert f"{PATH}: GET the session's state" in outcome.line("OK", "session endpoint")
    template.write_text("<p>{title}</p>", encoding="utf-8")  # broken after the fact: the doctor says so
    broken = check(capsys, "--settings", write_settings(tmp_path, settings))
    assert broken.code == 1 and "lacks the placeholders {message}, {code}" in broken.out, broken.out
