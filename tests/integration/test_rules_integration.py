"""Access rules and step-up authentication end to end, against the real provider.

The provider is the bundled ``oidc-provider`` (``oidc_provider`` fixture): alice
has the roles ``admin`` and ``staff`` in the namespaced claim
``https://example.com/roles``, bob only ``staff``; a password login reaches acr
``urn:dev:loa:pwd``, a login with the one-time code too ``urn:dev:loa:mfa``; it
enforces ``max_age`` and ``acr_values`` by showing its login form again (and
records why).  The application is the middleware around the tiny legacy app,
served by waitress on a loopback port; the browser is a cookie-keeping
``requests.Session`` following redirects one by one and recording every URL.

What is proven: a claim rule lets alice in and answers bob 403 (a page, or JSON
for API calls) without ever sending him to sign in again; anonymous visitors
sign in and land where they wanted to go; ``max_age`` and ``acr_values`` make
the provider authenticate again, and a new sign-in that does not deliver what
was asked ends on the failure page ``step_up_failed`` -- never a loop -- with
the previous session intact; API calls needing a step-up get RFC 9470's 401.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
import waitress
from waitress.server import BaseWSGIServer

from sso_middleware import SSOMiddleware
from sso_middleware.testing import ACR_MFA, ACR_PWD, ACR_UNMET_REASON, DEV_OTP, ClientCredentials, DevProvider

from ..conftest import legacy_app
from ..servers import free_port, stop_waitress
from .test_integration import Visit, browse

ROLES = "https://example.com/roles"
MAX_AGE = 3
#: The leeway of the strict application: max_age 3 is then exceeded after 4 s.
SKEW = 1
RULES = "\n".join([
    f"/admin claim {ROLES} includes admin",
    "/verified claim email_verified equals true ; /org claim org present",
    f"/billing max_age {MAX_AGE}",
    f"/vault acr_values {ACR_MFA}",
])
HTML = {"Accept": "text/html,application/xhtml+xml"}
JSON = {"Accept": "application/json"}


@dataclass
class App:
    name: str
    base_url: str
    client: ClientCredentials
    middleware: SSOMiddleware
    server: BaseWSGIServer

    def url(self, path: str, **query: str) -> str:
        return self.base_url + path + ("?" + urlencode(query) if query else "")


def start_app(provider: DevProvider, name: str, tmp: Any, **settings: Any) -> App:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    client = provider.register_client([base_url + "/auth/callback"], post_logout_redirect_uris=[base_url + "/"],
                                      client_name=name)
    middleware = SSOMiddleware(
        legacy_app, issuer=provider.issuer, client_id=client.client_id, client_secret=client.client_secret,
        base_url=base_url, session_secret=secrets.token_urlsafe(32), session_data_dir=str(tmp / name),
        allow_insecure_http=True, cookie_name=f"{name}_session", access_rules=RULES, **settings,
    )
    server = waitress.create_server(middleware, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    return App(name, base_url, client, middleware, server)


@pytest.fixture(scope="module")
def apps(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, App]]:
    tmp = tmp_path_factory.mktemp("rules")
    started = {
        "strict": start_app(oidc_provider, "rules_strict", tmp, clock_skew=SKEW),
        "default": start_app(oidc_provider, "rules_default", tmp),
    }
    try:
        yield started
    finally:
        for app in started.values():
            stop_waitress(app.server)


@pytest.fixture
def app(apps: dict[str, App]) -> App:
    return apps["strict"]


@pytest.fixture
def provider(oidc_provider: DevProvider) -> DevProvider:
    oidc_provider.clear_events()
    return oidc_provider


# -- the browser -------------------------------------------------------------------------


def new_browser() -> requests.Session:
    http = requests.Session()
    http.headers.update(HTML)  # a browser's page loads
    return http


def follow(http: requests.Session, redirect: requests.Response) -> Visit:
    """Follow the provider's redirect back to the application (what ``DevProvider.login`` returns)."""
    assert redirect.status_code == 303, (redirect.url, redirect.status_code, redirect.text[:300])
    return browse(http, urljoin(redirect.url, redirect.headers["Location"]))


def shown(visit: Visit) -> dict[str, Any]:
    """What the legacy app showed at the end of a visit (which must be a 200 from the app)."""
    assert visit.response.status_code == 200, (visit.urls, visit.response.status_code, visit.response.text[:300])
    assert visit.response.headers["Content-Type"].startswith("application/json"), visit.urls
    result: dict[str, Any] = json.loads(visit.response.text)
    return result


def sign_in(provider: DevProvider, app: App, user: str, target: str = "/", otp: str | None = None) -> tuple[
    requests.Session, Visit
]:
    """A fresh browser signs ``user`` in at ``app`` (password only unless ``otp``); lands on ``target``."""
    http = new_browser()
    visit = follow(http, provider.login(http, user, app.url("/auth/login", target_url=target), otp=otp))
    assert visit.urls[-1] == app.url(target), visit.urls
    assert shown(visit)["remote_user"] == user
    return http, visit


def provider_visits(provider: DevProvider, visit: Visit) -> int:
    return visit.count(provider.is_provider_url)


def client_events(provider: DevProvider, app: App, kind: str) -> list[dict[str, Any]]:
    return [event for event in provider.events(kind) if event.get("client_id") == app.client.client_id]


def login_target(location: str, app: App) -> str:
    """The ``target_url`` of a redirect to the application's login route."""
    parts = urlsplit(location)
    assert app.base_url + parts.path == app.url("/auth/login"), location
    return parse_qs(parts.query)["target_url"][0]


# -- 1. claim rules: 200, 403, never a login loop ----------------------------------------


def test_admin_role_lets_alice_in_and_answers_bob_403_without_a_login_loop(provider: DevProvider, app: App) -> None:
    alice, _ = sign_in(provider, app, "alice")
    visit = browse(alice, app.url("/admin/users"))
    assert visit.urls == [app.url("/admin/users")]
    assert shown(visit)["userinfo"][ROLES] == ["admin", "staff"]

    bob, _ = sign_in(provider, app, "bob")
    authorizations = len(client_events(provider, app, "authorize"))
    visit = browse(bob, app.url("/admin"))
    assert visit.urls == [app.url("/admin")]  # no redirect at all: not to sign in, not anywhere
    assert provider_visits(provider, visit) == 0
    page = visit.response
    assert page.status_code == 403
    assert page.headers["Content-Type"].startswith("text/html")
    assert "forbidden" in page.text and "Access denied" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    for headers in (JSON, {"Sec-Fetch-Mode": "cors", "Accept": "*/*"}, {"X-Requested-With": "XMLHttpRequest"}):
        api = bob.get(app.url("/admin/api/users"), headers=headers, allow_redirects=False, timeout=10)
        assert api.status_code == 403, headers
        assert api.headers["Content-Type"].startswith("application/json")
        assert api.json() == {"error": "forbidden"}
    # A navigation with Sec-Fetch-Mode: navigate is a page load: the page, still no redirect.
    nav = bob.get(app.url("/admin"), headers={"Sec-Fetch-Mode": "navigate"}, allow_redirects=False, timeout=10)
    assert nav.status_code == 403 and nav.headers["Content-Type"].startswith("text/html")
    # Bob is still signed in where no rule stops him, and never went back to the provider.
    assert shown(browse(bob, app.url("/reports")))["remote_user"] == "bob"
    assert len(client_events(provider, app, "authorize")) == authorizations


def test_other_claim_operators_equals_and_present(provider: DevProvider, app: App) -> None:
    alice, _ = sign_in(provider, app, "alice")
    assert shown(browse(alice, app.url("/verified")))["remote_user"] == "alice"  # email_verified: true
    visit = browse(alice, app.url("/org"))  # no "org" claim at this provider
    assert visit.urls == [app.url("/org")]
    assert visit.response.status_code == 403


def test_anonymous_visitor_of_a_rule_path_signs_in_and_lands_there(provider: DevProvider, app: App) -> None:
    http = new_browser()
    first = http.get(app.url("/admin/report", period="q3"), allow_redirects=False, timeout=10)
    assert first.status_code == 303
    assert login_target(first.headers["Location"], app) == "/admin/report?period=q3"
    api = requests.get(app.url("/admin/report"), headers=JSON, allow_redirects=False, timeout=10)
    assert api.status_code == 401 and api.json()["error"] == "login_required"

    visit = browse(http, app.url("/admin/report", period="q3"))
    assert "/interaction/" in visit.urls[-1]  # the provider's login form
    landing = follow(http, provider.login(http, "alice", response=visit.response))
    assert landing.urls[-1] == app.url("/admin/report", period="q3")
    assert shown(landing)["remote_user"] == "alice"
    assert landing.count(lambda url: url.startswith(app.url("/auth/callback"))) == 1


# -- 2. max_age ----------------------------------------------------------------------------


def test_max_age_makes_the_provider_authenticate_again(provider: DevProvider, app: App) -> None:
    http, visit = sign_in(provider, app, "alice", target="/billing")
    signed_in = time.time()
    assert [event["params"].get("max_age") for event in client_events(provider, app, "authorize")] == [
        str(MAX_AGE)
    ]  # the login for /billing asked for it already
    assert shown(browse(http, app.url("/billing")))["remote_user"] == "alice"

    time.sleep(max(0.0, signed_in + MAX_AGE + SKEW + 0.6 - time.time()))
    provider.clear_events()
    first = http.get(app.url("/billing/invoices"), allow_redirects=False, timeout=10)
    assert first.status_code == 303
    assert login_target(first.headers["Location"], app) == "/billing/invoices"

    visit = browse(http, app.url("/billing/invoices"))
    assert "/interaction/" in visit.urls[-1]  # the login form again, although the provider session lives
    interactions = client_events(provider, app, "interaction")
    assert [(event["prompt"], event["reasons"]) for event in interactions] == [("login", ["max_age"])]
    assert [event["params"].get("max_age") for event in client_events(provider, app, "authorize")] == [
        str(MAX_AGE)
    ]

    landing = follow(http, provider.login(http, "alice", response=visit.response))
    assert landing.urls[-1] == app.url("/billing/invoices")
    assert shown(landing)["remote_user"] == "alice"
    assert provider_visits(provider, landing) == 0
    # The new authentication is recent: /billing is open without any further trip.
    again = browse(http, app.url("/billing"))
    assert again.urls == [app.url("/billing")] and shown(again)["remote_user"] == "alice"


def test_max_age_holds_with_the_default_clock_skew(provider: DevProvider, apps: dict[str, App]) -> None:
    """max_age is measured on one clock at a time (iat - auth_time, then time since sign-in), not widened by
    clock_skew (60 s by default, which would let `max_age 3` accept a 63 s old authentication)."""
    app = apps["default"]
    http, _ = sign_in(provider, app, "alice", target="/billing")
    signed_in = time.time()
    time.sleep(max(0.0, signed_in + MAX_AGE + 1.5 - time.time()))
    first = http.get(app.url("/billing"), allow_redirects=False, timeout=10)
    assert first.status_code == 303, (first.status_code, first.text[:200])  # step-up needed: 4.5 s > max_age 3


# -- 3. acr_values -------------------------------------------------------------------------


def test_acr_step_up_with_the_one_time_code_opens_the_vault(provider: DevProvider, app: App) -> None:
    http, landing = sign_in(provider, app, "alice")
    assert shown(landing)["userinfo"]["acr"] == ACR_PWD
    provider.clear_events()

    first = http.get(app.url("/vault"), allow_redirects=False, timeout=10)
    assert first.status_code == 303 and login_target(first.headers["Location"], app) == "/vault"
    visit = browse(http, app.url("/vault"))
    assert "/interaction/" in visit.urls[-1]
    assert [event["params"].get("acr_values") for event in client_events(provider, app, "authorize")] == [ACR_MFA]
    assert [event["reasons"] for event in client_events(provider, app, "interaction")] == [[ACR_UNMET_REASON]]

    vault = follow(http, provider.login(http, "alice", response=visit.response, otp=DEV_OTP))
    assert vault.urls[-1] == app.url("/vault")
    assert shown(vault)["remote_user"] == "alice"
    assert shown(vault)["userinfo"]["acr"] == ACR_MFA
    assert [event["acr"] for event in client_events(provider, app, "login")] == [ACR_MFA]


def test_acr_step_up_without_the_code_ends_on_step_up_failed_keeping_the_session(
    provider: DevProvider, app: App
) -> None:
    http, _ = sign_in(provider, app, "alice")
    session_cookie = http.cookies.get(f"{app.name}_session")
    provider.clear_events()

    visit = browse(http, app.url("/vault"))
    assert "/interaction/" in visit.urls[-1]
    redirect = provider.login(http, "alice", response=visit.response)  # password only: acr stays pwd
    assert [event["acr"] for event in client_events(provider, app, "login")] == [ACR_PWD]
    ending = follow(http, redirect)

    # The callback refuses the new sign-in: the failure page, not /vault and not the provider again.
    assert [urlsplit(url).path for url in ending.urls] == ["/auth/callback", "/auth/failure"]
    assert parse_qs(urlsplit(ending.urls[-1]).query)["error"] == ["step_up_failed"]
    assert ending.response.status_code == 403
    assert "step_up_failed" in ending.response.text
    assert provider_visits(provider, ending) == 0
    assert len(client_events(provider, app, "authorize")) == 1  # no loop: one attempt only
    assert len(client_events(provider, app, "token")) == 1  # the code was redeemed, once

    # Alice is still signed in with her previous session (password level), and the vault stays shut.
    assert http.cookies.get(f"{app.name}_session") == session_cookie
    home = shown(browse(http, app.url("/")))
    assert home["remote_user"] == "alice" and home["userinfo"]["acr"] == ACR_PWD
    again = http.get(app.url("/vault"), allow_redirects=False, timeout=10)
    assert again.status_code == 303 and login_target(again.headers["Location"], app) == "/vault"


# -- 4. API calls needing a step-up --------------------------------------------------------


def test_api_call_needing_step_up_gets_401_insufficient_user_authentication(provider: DevProvider,
                                                                            app: App) -> None:
    http, _ = sign_in(provider, app, "alice")
    provider.clear_events()
    for headers in (JSON, {"Sec-Fetch-Mode": "cors", "Accept": "*/*"}):
        api = http.get(app.url("/vault/secrets"), headers=headers, allow_redirects=False, timeout=10)
        assert api.status_code == 401, headers
        assert api.headers["Content-Type"].startswith("application/json")
        body = api.json()
        assert body["error"] == "insufficient_user_authentication"
        assert login_target(body["login_url"], app) == "/vault/secrets"
        challenge = api.headers["WWW-Authenticate"]
        assert challenge.startswith("OpenIDConnect ")
        assert 'error="insufficient_user_authentication"' in challenge
        assert f'acr_values="{ACR_MFA}"' in challenge
        assert "max_age" not in challenge
    # POST is never a page load, whatever it accepts.
    post = http.post(app.url("/vault/secrets"), headers=HTML, allow_redirects=False, timeout=10)
    assert post.status_code == 401 and post.json()["error"] == "insufficient_user_authentication"
    assert provider.events("authorize") == []  # nothing went to the provider

    time.sleep(MAX_AGE + SKEW + 0.6)
    api = http.get(app.url("/billing"), headers=JSON, allow_redirects=False, timeout=10)
    assert api.status_code == 401 and api.json()["error"] == "insufficient_user_authentication"
    assert f'max_age="{MAX_AGE}"' in api.headers["WWW-Authenticate"]
