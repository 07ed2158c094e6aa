"""Authorization parameters and Auth0 Organizations against the real dev provider.

The bundled ``oidc-provider`` emulates Auth0 Organizations (see its header):
``org_acme`` ("acme", member alice) and ``org_globex`` ("globex", member bob),
invitations ``inv_acme_bob`` and ``inv_globex_alice``; members get ``org_id``
and ``org_name`` in the ID token, the login form refuses non-members, and an
invitation makes its user a member.  The applications are real waitress
servers (:func:`tests.integration.test_integration.start_app`), the browser a
``requests.Session``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Callable
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from sso_middleware import get_organization
from sso_middleware.testing import DevProvider

from ..servers import stop_waitress
from .test_integration import CONNECTION, App, authorize_events, browse, start_app


def org_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Shows the user and the organization the middleware handed over."""
    body = json.dumps({"remote_user": environ.get("REMOTE_USER"), "organization": get_organization(environ),
                       "userinfo": environ.get("sso.userinfo")}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@pytest.fixture(scope="module")
def org_apps(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, App]]:
    tmp = tmp_path_factory.mktemp("org-sessions")
    started = {
        "open": start_app(oidc_provider, "orgopen", tmp, "client_secret_basic",
                          forward_params=("login_hint", "ui_locales", "screen_hint", "prompt")),
        "acme": start_app(oidc_provider, "orgacme", tmp, "client_secret_basic", organization="ACME"),
    }
    for app in started.values():
        app.middleware.app = org_app  # show sso.organization
    yield started
    for app in started.values():
        stop_waitress(app.server)


@pytest.fixture
def provider(oidc_provider: DevProvider) -> DevProvider:
    oidc_provider.clear_events()
    return oidc_provider


def shown(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text[:500]
    result: dict[str, Any] = json.loads(response.text)
    return result


def land(provider: DevProvider, http: requests.Session, user: str, url: str) -> requests.Response:
    redirect = provider.login(http, user, url)
    assert redirect.status_code == 303, redirect.text[:500]
    return browse(http, urljoin(redirect.url, redirect.headers["Location"])).response


def test_invitation_link_signs_the_invited_user_in_with_the_organization(
    provider: DevProvider, org_apps: dict[str, App]
) -> None:
    app = org_apps["open"]
    link = app.url("/auth/login", invitation="inv_globex_alice", organization="org_globex",
                   organization_name="Globex", target_url="/welcome")
    http = requests.Session()
    final = land(provider, http, "alice", link)
    assert final.url == app.url("/welcome")
    seen = shown(final)
    assert seen["remote_user"] == "alice"
    assert seen["organization"] == {"id": "org_globex", "name": "globex"}
    sent = authorize_events(provider, app)[0]["params"]
    assert (sent["invitation"], sent["organization"]) == ("inv_globex_alice", "org_globex")
    assert "organization_name" not in sent  # display text, never sent
    assert shown(http.get(app.url("/page"), timeout=10))["organization"] == {"id": "org_globex", "name": "globex"}


def test_a_non_member_is_refused_at_the_provider_login(provider: DevProvider, org_apps: dict[str, App]) -> None:
    http = requests.Session()
    form = provider.login(http, "bob", org_apps["open"].url("/auth/login", organization="org_acme"))
    assert form.status_code == 200 and "bob is not a member of Acme" in form.text


def test_a_silent_sign_in_without_the_org_claim_is_invalid_organization(
    provider: DevProvider, org_apps: dict[str, App]
) -> None:
    """bob has a provider session; a silent SSO for org_acme gets a token without org claims: refused."""
    app = org_apps["open"]
    http = requests.Session()
    assert shown(land(provider, http, "bob", app.url("/auth/login", target_url="/page")))["organization"] is None
    visit = browse(http, app.url("/auth/sso", connection=CONNECTION, target_url="/page", organization="org_acme"))
    assert visit.urls[-1].startswith(app.url("/auth/failure"))
    assert parse_qs(urlsplit(visit.urls[-1]).query)["error"] == ["invalid_organization"]
    assert visit.response.status_code == 403
    attempts = authorize_events(provider, app)
    assert [event["params"].get("prompt") for event in attempts] == [None, "none"]
    assert attempts[-1]["params"]["organization"] == "org_acme"


def test_fixed_organization_name_member_signs_in(provider: DevProvider, org_apps: dict[str, App]) -> None:
    app = org_apps["acme"]
    final = land(provider, requests.Session(), "alice", app.url("/auth/login", target_url="/page"))
    assert shown(final)["organization"] == {"id": "org_acme", "name": "acme"}  # "ACME": case-insensitive
    assert authorize_events(provider, app)[0]["params"]["organization"] == "ACME"
    form = provider.login(requests.Session(), "bob", app.url("/auth/login"))
    assert "bob is not a member of Acme" in form.text


def test_an_unknown_organization_is_the_providers_refusal(provider: DevProvider, org_apps: dict[str, App]) -> None:
    app = org_apps["open"]
    visit = browse(requests.Session(), app.url("/auth/login", organization="org_nope"))
    # The request is pushed (PAR, the dev provider offers it): the provider refuses the push itself,
    # and the browser gets the same 4xx code as a refusal at /authorize (not a 502 for the operator).
    assert parse_qs(urlsplit(visit.urls[-1]).query)["error"] == ["provider_error:invalid_request"]
    assert not any("/authorize" in url for url in visit.urls)  # the browser never went to the provider


def test_forwarded_params_reach_the_provider_and_survive_the_silent_retry(
    provider: DevProvider, org_apps: dict[str, App]
) -> None:
    app = org_apps["open"]
    http = requests.Session()
    visit = browse(http, app.url("/auth/sso", connection=CONNECTION, target_url="/page", login_hint="alice",
                                 ui_locales="fr", screen_hint="signup", prompt="login", state="forged"))
    assert "/interaction/" in visit.urls[-1]
    assert 'value="alice"' in visit.response.text  # the login_hint prefilled the form
    attempts = [event["params"] for event in authorize_events(provider, app)]
    assert [params.get("prompt") for params in attempts] == ["none", "login"]
    for params in attempts:
        assert (params["login_hint"], params["ui_locales"], params["screen_hint"]) == ("alice", "fr", "signup")
        assert params["state"] != "forged"
    redirect = provider.login(http, "alice", response=visit.response)
    final = browse(http, urljoin(redirect.url, redirect.headers["Location"])).response
    assert shown(final)["remote_user"] == "alice"


def test_a_forbidden_forwarded_value_is_a_400(provider: DevProvider, org_apps: dict[str, App]) -> None:
    visit = browse(requests.Session(), org_apps["open"].url("/auth/login", prompt="none"))
    assert visit.response.status_code == 400
    assert parse_qs(urlsplit(visit.urls[-1]).query)["error"] == ["invalid_authorize_param"]
    assert authorize_events(provider, org_apps["open"]) == []


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from .test_demo_browser import chromium_browser

    with chromium_browser() as launched:
        yield launched


def test_the_invitation_link_in_chromium(provider: DevProvider, org_apps: dict[str, App], chromium: Any) -> None:
    """The e-mail's link, clicked in a real browser: the organization's login form, then the app with the org."""
    app = org_apps["open"]
    context = chromium.new_context()
    page = context.new_page()
    page.goto(app.url("/auth/login", invitation="inv_globex_alice", organization="org_globex",
                      organization_name="Globex", target_url="/welcome"))
    page.wait_for_selector("#login-form")
    assert page.url.startswith(provider.issuer.rstrip("/"))
    assert page.locator("#organization").inner_text() == "Globex"
    page.fill("#login", "alice")
    page.fill("#password", "alice-password")
    page.click("#submit")
    page.wait_for_url(app.url("/welcome"))
    seen = json.loads(page.locator("body").inner_text())
    assert seen["remote_user"] == "alice"
    assert seen["organization"] == {"id": "org_globex", "name": "globex"}
    context.close()
