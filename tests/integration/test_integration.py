"""Every flow against a real OpenID Provider, through real HTTP servers.

The provider is the bundled ``oidc-provider`` (npm) started by the
``oidc_provider`` fixture of :mod:`sso_middleware.testing`; the applications
are the middleware around a tiny legacy app, each served by waitress on its
own loopback port with its own client registration; the "browser" is a
cookie-keeping ``requests.Session`` that follows redirects one by one and
records every URL it visits.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
import waitress
from waitress.server import BaseWSGIServer

from sso_middleware import SSOMiddleware
from sso_middleware._oidc.id_token import TokenRules, validate_id_token
from sso_middleware.errors import AuthFailure
from sso_middleware.testing import ClientCredentials, DevProvider, RecordingTransport

from ..conftest import SESSION_SECRET, legacy_app
from ..servers import free_port, stop_waitress

CONNECTION = "Username-Password-Authentication"




@dataclass
class App:
    """One application: the middleware, its client registration, and its waitress server."""

    name: str
    base_url: str
    client: ClientCredentials
    middleware: SSOMiddleware
    server: BaseWSGIServer
    transport: RecordingTransport  # what the middleware sent to the provider
    jwks_path: str

    @property
    def jwks_fetches(self) -> int:
        return len(self.transport.requests_to(self.jwks_path))

    def url(self, path: str, **query: str) -> str:
        return self.base_url + path + ("?" + urlencode(query) if query else "")


@dataclass
class Visit:
    """Where a browser went: every URL requested, in order, and the final response."""

    urls: list[str]
    response: requests.Response

    def count(self, predicate: Callable[[str], bool]) -> int:
        return sum(1 for url in self.urls if predicate(url))


def browse(http: requests.Session, url: str, max_hops: int = 20) -> Visit:
    """GET ``url`` and follow redirects like a browser, recording each hop."""
    urls = [url]
    response = http.get(url, allow_redirects=False, timeout=10)
    while response.status_code in (301, 302, 303, 307, 308):
        if len(urls) > max_hops:
            raise AssertionError(f"redirect loop: {urls}")
        url = urljoin(response.url, response.headers["Location"])
        urls.append(url)
        response = http.get(url, allow_redirects=False, timeout=10)
    return Visit(urls, response)


def start_app(provider: DevProvider, name: str, tmp: Any, auth_method: str, *, backchannel_logout: bool = False,
              registration: Optional[dict[str, Any]] = None, **settings: Any) -> App:
    """``backchannel_logout``: register the app's back-channel logout URI; ``registration``: more client metadata."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    client = provider.register_client(
        [base_url + "/auth/callback"],
        post_logout_redirect_uris=[base_url + "/"],
        token_endpoint_auth_method=auth_method,
        client_name=name,
        backchannel_logout_uri=base_url + "/auth/backchannel-logout" if backchannel_logout else None,
        **(registration or {}),
    )
    transport = RecordingTransport()
    middleware = SSOMiddleware(
        legacy_app,
        http_transport=transport,
        issuer=provider.issuer,
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method=auth_method,
        base_url=base_url,
        session_secret=SESSION_SECRET,
        session_data_dir=str(tmp / name),
        allow_insecure_http=True,
        protected_paths=("/dashboard",),
        cookie_name=f"{name}_session",  # cookies are per host, not per port: one name per app
        **settings,
    )
    server = waitress.create_server(middleware, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    return App(name, base_url, client, middleware, server, transport, urlsplit(provider.endpoint("jwks_uri")).path)


@pytest.fixture(scope="module")
def apps(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, App]]:
    tmp = tmp_path_factory.mktemp("sessions")
    started = {
        "app1": start_app(oidc_provider, "app1", tmp, "client_secret_basic"),
        "app2": start_app(oidc_provider, "app2", tmp, "client_secret_post"),
        "quiet": start_app(oidc_provider, "quiet", tmp, "client_secret_basic", silent_sso_fallback="anonymous"),
    }
    yield started
    for app in started.values():
        stop_waitress(app.server)


@pytest.fixture
def provider(oidc_provider: DevProvider) -> DevProvider:
    oidc_provider.clear_events()
    return oidc_provider


def page(visit: Visit) -> dict[str, Any]:
    assert visit.response.status_code == 200, (visit.urls, visit.response.text[:500])
    result: dict[str, Any] = json.loads(visit.response.text)
    return result


def sign_in(provider: DevProvider, app: App, user: str = "alice", target: str = "/profile") -> tuple[
    requests.Session, Visit
]:
    """Interactive sign-in at ``app`` in a fresh browser; returns the browser and the landing page."""
    http = requests.Session()
    redirect = provider.login(http, user, app.url("/auth/login", target_url=target))
    assert redirect.status_code == 303, redirect.text[:500]
    return http, browse(http, urljoin(redirect.url, redirect.headers["Location"]))


def authorize_events(provider: DevProvider, app: App) -> list[dict[str, Any]]:
    return [event for event in provider.events("authorize") if event.get("client_id") == app.client.client_id]


def test_interactive_login_lands_on_target_with_claims(provider: DevProvider, apps: dict[str, App]) -> None:
    _, landing = sign_in(provider, apps["app1"], "alice", "/profile?tab=1")
    assert landing.urls[-1] == apps["app1"].url("/profile?tab=1")
    shown = page(landing)
    assert shown["remote_user"] == "alice"
    assert shown["userinfo"]["email"] == "alice@example.com"
    assert shown["userinfo"]["name"] == "Alice Example"
    assert "nonce" not in shown["userinfo"]


def test_seed_scenario_silent_sso_to_second_app(provider: DevProvider, apps: dict[str, App]) -> None:
    http, _ = sign_in(provider, apps["app1"], "bob")
    interactions_before = len(provider.events("interaction"))

    visit = browse(http, apps["app2"].url("/auth/sso", connection=CONNECTION, target_url="/dashboard"))

    assert visit.urls[-1] == apps["app2"].url("/dashboard")
    shown = page(visit)
    assert shown["remote_user"] == "bob"
    assert shown["userinfo"]["email"] == "bob@example.com"
    assert shown["connection"] == CONNECTION
    # The provider's login/interaction page was never shown on the way.
    assert len(provider.events("interaction")) == interactions_before
    assert visit.count(lambda url: "/interaction/" in url) == 0
    attempts = authorize_events(provider, apps["app2"])
    assert [event["params"].get("prompt") for event in attempts] == ["none"]
    assert attempts[0]["params"]["connection"] == CONNECTION


def test_sso_again_when_signed_in_makes_no_provider_round_trip(provider: DevProvider, apps: dict[str, App]) -> None:
    http, _ = sign_in(provider, apps["app1"])
    browse(http, apps["app2"].url("/auth/sso", connection=CONNECTION, target_url="/dashboard"))
    provider.clear_events()
    visit = browse(http, apps["app2"].url("/auth/sso", connection=CONNECTION, target_url="/dashboard"))
    assert visit.urls == [apps["app2"].url("/auth/sso", connection=CONNECTION, target_url="/dashboard"),
                          apps["app2"].url("/dashboard")]
    assert provider.events("authorize") == []


def test_sso_without_provider_session_tries_silent_once_then_interactive(
    provider: DevProvider, apps: dict[str, App]
) -> None:
    http = requests.Session()
    app = apps["app2"]
    start = app.url("/auth/sso", connection=CONNECTION, target_url="/dashboard")
    visit = browse(http, start)
    # Silent attempt answered login_required, then exactly one interactive attempt: the login form.
    assert "/interaction/" in visit.urls[-1]
    assert [event["params"].get("prompt") for event in authorize_events(provider, app)] == ["none", None]
    assert visit.count(lambda url: url.startswith(app.url("/auth/callback"))) == 1

    redirect = provider.login(http, "alice", response=visit.response)
    landing = browse(http, urljoin(redirect.url, redirect.headers["Location"]))
    assert landing.urls[-1] == app.url("/dashboard")
    assert page(landing)["remote_user"] == "alice"
    assert len(authorize_events(provider, app)) == 2


def test_sso_anonymous_fallback_goes_to_target_without_user(provider: DevProvider, apps: dict[str, App]) -> None:
    app = apps["quiet"]
    visit = browse(requests.Session(), app.url("/auth/sso", connection=CONNECTION, target_url="/public"))
    assert visit.urls[-1] == app.url("/public")
    shown = page(visit)
    assert shown["remote_user"] is None and shown["userinfo"] is None
    assert len(authorize_events(provider, app)) == 1
    assert provider.events("interaction") == []


def test_protected_page_sends_anonymous_browser_to_sign_in(provider: DevProvider, apps: dict[str, App]) -> None:
    http = requests.Session()
    http.headers["Accept"] = "text/html"
    visit = browse(http, apps["app1"].url("/dashboard", view="week"))
    assert "/interaction/" in visit.urls[-1]
    redirect = provider.login(http, "alice", response=visit.response)
    landing = browse(http, urljoin(redirect.url, redirect.headers["Location"]))
    assert landing.urls[-1] == apps["app1"].url("/dashboard", view="week")
    api = requests.get(apps["app1"].url("/dashboard"), headers={"Accept": "application/json"}, timeout=10)
    assert api.status_code == 401
    assert api.json()["error"] == "login_required"


def test_logout_ends_local_and_provider_sessions(provider: DevProvider, apps: dict[str, App]) -> None:
    app1, app2 = apps["app1"], apps["app2"]
    http, _ = sign_in(provider, app1)
    assert page(browse(http, app2.url("/auth/sso", connection=CONNECTION, target_url="/dashboard")))["remote_user"]

    logout = http.get(app2.url("/auth/logout", target_url="/"), allow_redirects=False, timeout=10)
    assert logout.status_code == 303
    end_session = logout.headers["Location"]
    assert end_session.startswith(provider.endpoint("end_session_endpoint"))
    query = parse_qs(urlsplit(end_session).query)
    assert query["post_logout_redirect_uri"] == [app2.url("/")]
    assert query["client_id"] == [app2.client.client_id]
    assert "id_token_hint" in query
    back = provider.logout_confirm(http, logout)
    assert urljoin(back.url, back.headers["Location"]).startswith(app2.url("/"))

    # The local session is gone...
    shown = page(browse(http, app2.url("/public")))
    assert shown["remote_user"] is None
    # ...and so is the provider session: app2's SSO needs interaction again.
    provider.clear_events()
    visit = browse(http, app2.url("/auth/sso", connection=CONNECTION, target_url="/dashboard"))
    assert "/interaction/" in visit.urls[-1]
    assert [event["params"].get("prompt") for event in authorize_events(provider, app2)] == ["none", None]


def test_client_authentication_method_on_the_wire(provider: DevProvider, apps: dict[str, App]) -> None:
    sign_in(provider, apps["app1"])
    sign_in(provider, apps["app2"])
    methods = {event["client_id"]: event["auth_method"] for event in provider.events("token")}
    assert methods[apps["app1"].client.client_id] == "client_secret_basic"
    assert methods[apps["app2"].client.client_id] == "client_secret_post"


def test_token_issued_to_app1_is_refused_by_app2(provider: DevProvider, apps: dict[str, App]) -> None:
    app1, app2 = apps["app1"], apps["app2"]
    login = app1.middleware.client.new_login_request()
    authorize = app1.middleware.client.authorization_url(login, prompt=None, connection=None)
    redirect = provider.login(requests.Session(), "alice", authorize)
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    app1_token = app1.middleware.client.sign_in(code, login.nonce, login.code_verifier).id_token

    with pytest.raises(AuthFailure) as refused:
        validate_id_token(
            app1_token,
            TokenRules(keys=app2.middleware.client.keys, issuer=provider.issuer, client_id=app2.client.client_id,
                       client_secret=app2.client.client_secret, algorithms=("RS256",), leeway=60),
            nonce=login.nonce, now=app2.middleware.clock(),
        )
    assert refused.value.code == "invalid_id_token"
    assert "audience" in refused.value.detail.lower()

    # And app1's code presented at app2's callback (code injection) does not sign anyone in.
    http = requests.Session()
    start = http.get(app2.url("/auth/login", target_url="/dashboard"), allow_redirects=False, timeout=10)
    # app2 pushes its authorization requests (PAR): the state is in what it pushed, not in the URL
    assert set(parse_qs(urlsplit(start.headers["Location"]).query)) == {"client_id", "request_uri"}
    state = provider.events("pushed_authorization")[-1]["params"]["state"]
    login = app1.middleware.client.new_login_request()
    redirect = provider.login(requests.Session(), "alice",
                              app1.middleware.client.authorization_url(login, prompt=None, connection=None))
    stolen = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    visit = browse(http, app2.url("/auth/callback", code=stolen, state=state, iss=provider.issuer))
    assert "/auth/failure" in visit.urls[-1]
    assert visit.response.status_code == 401
    assert page(browse(http, app2.url("/public")))["remote_user"] is None


def test_signing_key_rotation_is_picked_up_with_one_jwks_refetch(provider: DevProvider, apps: dict[str, App]) -> None:
    app = apps["app1"]
    sign_in(provider, app)  # keys cached
    old_kid = provider.signing_kid
    fetches_before = app.jwks_fetches
    assert fetches_before >= 1

    provider.rotate_keys()
    assert provider.signing_kid != old_kid

    _, landing = sign_in(provider, app, "bob")
    assert page(landing)["remote_user"] == "bob"
    assert app.jwks_fetches == fetches_before + 1


@pytest.mark.parametrize("session_type", ["file", "cookie"])
def test_backchannel_logout_ends_a_session_whose_id_token_had_no_sid(
    provider: DevProvider, tmp_path_factory: pytest.TempPathFactory, session_type: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 13 item 19 against the real provider: ID tokens without ``sid``, a logout token with ``sid`` and ``sub``.

    The dev provider's ``devprovider_id_token_sid: false`` client metadata makes it such a
    provider (oidc-provider alone puts ``sid`` in both or in neither).
    """
    app = start_app(provider, f"nosid-{session_type}", tmp_path_factory.mktemp("nosid"), "client_secret_basic",
                    backchannel_logout=True, registration={"devprovider_id_token_sid": False},
                    session_type=session_type)
    try:
        http, landing = sign_in(provider, app, "alice", "/profile")
        assert page(landing)["remote_user"] == "alice"
        cookie = http.cookies.get(app.middleware.config.session_cookie_name)
        user = app.middleware.store.open({"HTTP_COOKIE": f"{app.middleware.config.session_cookie_name}={cookie}"}
                                         ).stored_user()
        assert user is not None and user.sid is None  # the ID token had no sid
        provider.clear_events()

        # The user signs out at the provider ("Yes, sign me out"): it posts a logout token to the app.
        provider.logout_confirm(http, provider.endpoint("end_session_endpoint"))
        (event,) = [event for event in provider.events("backchannel_logout")
                    if event["client_id"] == app.client.client_id]
        assert event["ok"] is True and event["sid"] and event["sub"] == "alice"
        assert "back-channel logout for sid" in caplog.text  # the logout token named the sid (and the sub)
        assert page(browse(http, app.url("/profile")))["remote_user"] is None
    finally:
        stop_waitress(app.server)
