"""preserve_post against the real dev provider, through a real waitress server, on the file, Redis, memcached and
PostgreSQL stores.

The "browser" is a cookie-keeping ``requests.Session`` walked through the provider's pages by
:class:`~sso_middleware.testing.DevProvider` (``login``, ``logout_confirm``).  The session
ends by moving the middleware's clock past ``session_idle_timeout`` (the provider keeps its
own time and session); the form is then POSTed with the headers a browser sends with a
same-origin form.  The provider either signs the user in without a form (its session is
alive) or, after a provider logout, shows its login form; either way the app receives the
original fields exactly once, and replaying the callback sends nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
import waitress

from sso_middleware import SSOMiddleware
from sso_middleware.stores.memcached import JsonMemcachedNamespace
from sso_middleware.testing import Clock, DevProvider

from ..conftest import SESSION_SECRET
from ..postgres_server import PostgresServer
from ..redis_ha_servers import collect_quietly
from ..servers import free_port, stop_waitress
from ..store_servers import StoreServer
from ..wsgi.test_preserve_post import FIELDS, FormApp, parse_page

IDLE = 30


class Served:
    """The middleware (preserve_post on /app/forms) around a :class:`FormApp`, served by waitress."""

    def __init__(self, provider: DevProvider, tmp: Path, name: str, **settings: Any) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.client = provider.register_client([self.base_url + "/auth/callback"],
                                               post_logout_redirect_uris=[self.base_url + "/"], client_name=name)
        self.app = FormApp()
        self.clock = Clock()
        self.middleware = SSOMiddleware(
            self.app, issuer=provider.issuer, client_id=self.client.client_id,
            client_secret=self.client.client_secret, base_url=self.base_url, session_secret=SESSION_SECRET,
            session_data_dir=str(tmp / name), allow_insecure_http=True, protected_paths="/app",
            preserve_post="/app/forms", session_idle_timeout=IDLE, cookie_name=f"{name}_session", clock=self.clock,
            **settings,
        )
        self.server = waitress.create_server(self.serve, host="127.0.0.1", port=self.port, threads=4)
        threading.Thread(target=self.server.run, daemon=True).start()

    def serve(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            return list(self.middleware(environ, start_response))
        finally:  # python-memcached keeps a connection per thread: close this one's (else a ResourceWarning later)
            for client in list(JsonMemcachedNamespace.clients.dict.values()):
                client.disconnect_all()

    def browser_headers(self) -> dict[str, str]:
        return {"Origin": self.base_url, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate",
                "Sec-Fetch-Dest": "document", "Accept": "text/html",
                "Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(params=["file", "redis", "memcached", "postgresql"])
def served(request: pytest.FixtureRequest, oidc_provider: DevProvider, tmp_path: Path) -> Iterator[Served]:
    store: Any = None
    settings: dict[str, Any] = {}
    if request.param != "file":
        store = PostgresServer().start() if request.param == "postgresql" else StoreServer(request.param).start()
        settings = {"session_type": store.session_type, "session_url": store.url}
    app = Served(oidc_provider, tmp_path, f"pp{request.param}", **settings)
    try:
        yield app
    finally:
        stop_waitress(app.server)
        if store is not None:
            store.close()
        collect_quietly()  # the store clients' sockets of waitress's threads, closed now rather than in a later test


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def sign_in(http: requests.Session, provider: DevProvider, app: Served) -> None:
    final = provider.login(http, "alice", app.base_url + "/auth/login?target_url=/app/forms/new",
                           follow_to_client=True)
    assert final.status_code == 200 and final.json()["remote_user"] == "alice", final.text[:300]


def post_after_expiry(http: requests.Session, app: Served,
                      path: str = "/app/forms/report?draft=3") -> requests.Response:
    app.clock.advance(IDLE + 1)
    response = http.post(app.base_url + path, data=urlencode(FIELDS), headers=app.browser_headers(),
                         allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text[:300]
    return response


def resubmit(http: requests.Session, app: Served, page: requests.Response) -> requests.Response:
    """What a browser does with the page: POST its fields to its action (same origin)."""
    parsed = parse_page(page.text)
    assert parsed.form is not None and parsed.form["method"] == "post"
    return http.post(parsed.form["action"] or "", data=urlencode(parsed.fields), headers=app.browser_headers(),
                     allow_redirects=False, timeout=10)


def test_a_silent_re_login_re_posts_the_form_once(served: Served, oidc_provider: DevProvider,
                                                              http: requests.Session) -> None:
    sign_in(http, oidc_provider, served)
    kept = post_after_expiry(http, served)
    assert kept.headers["Location"].startswith(oidc_provider.endpoint("authorization_endpoint"))
    callback = oidc_provider.login(http, "alice", response=kept)  # the provider session is alive: no form
    assert urlsplit(callback.headers["Location"]).path == "/auth/callback"
    page = http.get(callback.headers["Location"], allow_redirects=False, timeout=10)
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers
    assert parse_page(page.text).fields == FIELDS
    final = resubmit(http, served, page)
    assert final.status_code == 200 and final.json()["remote_user"] == "alice"
    assert [(post["path"], post["query"], post["fields"]) for post in served.app.posts] == [
        ("/app/forms/report", "draft=3", FIELDS)]
    # the callback again (a reload, a replay): never the form again
    again = http.get(callback.headers["Location"], allow_redirects=False, timeout=10)
    assert again.status_code == 303 and again.headers["Location"].endswith("error=invalid_state")
    assert len(served.app.posts) == 1


def test_after_a_provider_logout_the_login_form_is_shown_and_the_form_still_arrives(
    served: Served, oidc_provider: DevProvider, http: requests.Session,
) -> None:
    sign_in(http, oidc_provider, served)
    signed_out = http.get(served.base_url + "/auth/logout", allow_redirects=False, timeout=10)
    oidc_provider.logout_confirm(http, signed_out, follow_to_client=True)  # the provider session ends too
    kept = post_after_expiry(http, served, "/app/forms/report")
    login_page = http.get(kept.headers["Location"], allow_redirects=False, timeout=10)
    while login_page.status_code in (302, 303):
        login_page = http.get(requests.compat.urljoin(login_page.url, login_page.headers["Location"]),
                              allow_redirects=False, timeout=10)
    assert 'id="login-form"' in login_page.text  # a real login again
    callback = oidc_provider.login(http, "alice", response=login_page)
    page = http.get(callback.headers["Location"], allow_redirects=False, timeout=10)
    assert parse_page(page.text).fields == FIELDS
    assert resubmit(http, served, page).json()["remote_user"] == "alice"
    assert [post["fields"] for post in served.app.posts] == [FIELDS]


def test_another_browser_with_the_callback_url_gets_nothing(served: Served, oidc_provider: DevProvider,
                                                              http: requests.Session) -> None:
    sign_in(http, oidc_provider, served)
    callback = oidc_provider.login(http, "alice", response=post_after_expiry(http, served))
    stranger = requests.get(callback.headers["Location"], allow_redirects=False, timeout=10)
    assert stranger.status_code == 303 and stranger.headers["Location"].endswith("error=invalid_state")
    assert not served.app.posts


def test_a_cross_site_form_is_refused_against_the_real_provider(served: Served, oidc_provider: DevProvider,
                                                              http: requests.Session) -> None:
    headers = {**served.browser_headers(), "Origin": "http://localhost:1", "Sec-Fetch-Site": "cross-site"}
    refused = http.post(served.base_url + "/app/forms/transfer", data="to=attacker&amount=1000", headers=headers,
                        allow_redirects=False, timeout=10)
    assert refused.status_code == 403 and "preserve_post_cross_site" in refused.text
    multipart = http.post(served.base_url + "/app/forms/upload", files={"f": ("a.txt", b"x")},
                          headers={key: value for key, value in served.browser_headers().items()
                                   if key != "Content-Type"}, allow_redirects=False, timeout=10)
    assert multipart.status_code == 415 and "preserve_post_unsupported" in multipart.text
    assert not served.app.posts


def test_the_doctor_reports_what_is_kept(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                         tmp_path: Path) -> None:
    from .test_doctor import run_settings

    outcome = run_settings(capsys, oidc_provider, tmp_path, protected_paths="/", preserve_post="/",
                           preserve_post_max_body="8192")
    assert outcome.code == 0, outcome.out
    kept = outcome.line("OK", "preserve post")
    assert "same-origin form POSTs" in kept and "at most 8192 bytes" in kept and "to / across" in kept
    assert "covers every path" in outcome.line("WARN", "preserve post")
    assert "CSRF token" in outcome.line("INFO", "preserve post")
    refused = run_settings(capsys, oidc_provider, tmp_path, protected_paths="/app", preserve_post="/elsewhere")
    assert refused.code != 0 and "preserve_post" in refused.out + refused.err
