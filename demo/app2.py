"""App 2 of the demo: the "regular web app" (Pyramid), wrapped by ``SSOMiddleware``.

Its ``/dashboard`` needs a signed-in user (``protected_paths``), ``/admin`` the admin role
(``access_rules``), ``/api`` calls an API on the user's behalf with the access token the
middleware keeps, and ``/api/me`` is a JSON API for the single-page App 1: a bearer path,
where the middleware validates the SPA's access token and the view only reads the claims.

Security caveat: the views trust ``environ["sso.userinfo"]`` because the middleware in front
of them sets it (and removes a forged ``REMOTE_USER``); served without it they would trust
nothing, which is why each view checks for a user again.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable

import requests
from pyramid.config import Configurator
from pyramid.request import Request as PyramidRequest
from pyramid.response import Response as PyramidResponse

from sso_middleware import NoAccessToken, api_session, get_userinfo
from sso_middleware.testing import ROLES_CLAIM  # the namespaced roles claim (an Auth0 Action would add one too)

from .pages import page, user_table

TITLE, SUBTITLE = "App 2", "the regular web app (Pyramid, server-side sessions)"
#: The seed sentence App 2 shows.
SEED = (
    "<b>The seed, step 2:</b> the user follows a link to App 2 "
    "<code>/auth/sso?connection=…&amp;target_url=/dashboard</code> and is signed in silently."
)
#: The JSON API's path: a bearer path of App 2's middleware (``bearer_paths``).
API_PATH = "/api/me"
#: The scope App 2's API defines and ``/api/me`` requires (the SPA asks for it).
API_SCOPE = "read:profile"


@dataclass(frozen=True)
class Links:
    """Where App 2's pages link to: the SPA and App 3's silent sign-in entry."""

    spa_url: str
    app3_sso_url: str


def _page(body: str) -> PyramidResponse:
    return PyramidResponse(page("app2", TITLE, SUBTITLE, SEED, body))


def app2_home(request: PyramidRequest) -> PyramidResponse:
    user = get_userinfo(request.environ)
    state = "signed in" if user else "not signed in"
    after_sign_out = "" if user else (
        '<p class="note" id="after-sign-out">Just signed out? Then App 2 deleted its session and sent you to '
        "the provider's logout page, which ended the provider session. The provider then told every app of that "
        "session that has a back-channel logout URI (App 3) with a signed logout token, and App 3's middleware "
        "deleted its session: App 3 asks for a login again. The SPA keeps its tokens in the browser, so it finds "
        "out at its next silent renewal, when the provider answers <code>login_required</code>.</p>"
    )
    return _page(
        f'<h2>Welcome to App 2</h2><p>This page is public; you are <b id="app2-state">{state}</b> here.</p>'
        f"{after_sign_out}"
        '<p><a class="button" id="dashboard" href="/dashboard">Go to the dashboard</a></p>'
    )


def make_app2_dashboard(links: Links) -> Callable[[PyramidRequest], PyramidResponse]:
    def app2_dashboard(request: PyramidRequest) -> PyramidResponse:
        user = get_userinfo(request.environ)
        if user is None:  # the middleware protects /dashboard; this is defence in depth
            return PyramidResponse(status=401)
        return _page(
            "<h2>Dashboard</h2>"
            f"{user_table(user)}"
            f'<p class="note">REMOTE_USER is <code id="remote-user">{html.escape(request.environ["REMOTE_USER"])}'
            "</code>. If you came from the SPA, App 2's middleware sent you to the provider with "
            "<code>prompt=none</code>; the provider already had your session, so you came back signed in: "
            "no login screen, no password. App 2 has its own server-side session now.</p>"
            '<p><a href="/admin" id="to-admin">Admin area</a> (the <code>admin</code> role only: alice yes, bob no) '
            '&middot; <a href="/api" id="to-api">Call an API with your access token</a></p>'
            f'<p><a class="button" id="to-app3" href="{html.escape(links.app3_sso_url)}">Open App 3, the legacy '
            f'intranet app</a> <a class="button secondary" id="to-spa" href="{html.escape(links.spa_url)}">'
            "Back to the SPA</a></p>"
            '<form method="post" action="/auth/logout?target_url=/">'
            '<button id="sign-out" type="submit">Sign out everywhere</button></form>'
            '<p class="note">Signing out here ends App 2\'s session and, through the provider\'s logout page, '
            "the provider's session: the provider then tells App 3 over the back channel, and the SPA finds "
            "out at its next silent renewal.</p>"
        )

    return app2_dashboard


def app2_admin(request: PyramidRequest) -> PyramidResponse:
    """Reached only by users the middleware's access rule lets through (roles include admin)."""
    user = get_userinfo(request.environ) or {}
    return _page(
        "<h2>Admin area</h2>"
        f'<p id="admin-ok">Welcome, {html.escape(str(user.get("name", user.get("sub", ""))))}: your roles '
        f"<code>{html.escape(', '.join(map(str, user.get(ROLES_CLAIM, []))))}</code> include <code>admin</code>. "
        "No code in this app checked that: the middleware's <code>access_rules</code> did.</p>"
        '<p><a href="/dashboard">Back to the dashboard</a></p>'
    )


def make_app2_api(api_url: str) -> Callable[[PyramidRequest], PyramidResponse]:
    """The page that calls an API on the user's behalf, with the access token the middleware keeps fresh."""

    def app2_api(request: PyramidRequest) -> PyramidResponse:
        try:
            # api_session: the user's token, the middleware's timeout, proxy and CA bundle
            with api_session(request.environ) as api:
                answer = api.get(api_url)
            result = f"HTTP {answer.status_code}: <code>{html.escape(answer.text[:400])}</code>"
        except NoAccessToken as exc:
            result = f"no access token ({html.escape(str(exc))})"
        except requests.RequestException as exc:
            result = f"the API did not answer ({html.escape(type(exc).__name__)})"
        expires = request.environ.get("sso.access_token_expires_at")
        return _page(
            "<h2>An API call with your access token</h2>"
            f"<p>GET <code>{html.escape(api_url)}</code> through <code>api_session(environ)</code> "
            f'(<code>Authorization: Bearer …</code>) answered:</p><p id="api-result">{result}</p>'
            f'<p class="note">The token expires at {html.escape(str(expires))} (Unix time); the middleware '
            "refreshes it with the refresh token before it runs out, once per expiry across all workers.</p>"
            '<p><a href="/dashboard">Back to the dashboard</a></p>'
        )

    return app2_api


def api_me(request: PyramidRequest) -> PyramidResponse:
    """``GET /api/me``: the caller's access-token claims and scopes, as JSON.

    The middleware validated the bearer token before this view runs (a missing or bad token
    never gets here: it is answered ``401`` with ``WWW-Authenticate: Bearer``).
    """
    claims = get_userinfo(request.environ)
    if claims is None:  # defence in depth, as on the dashboard
        return PyramidResponse(status=401, json_body={"error": "invalid_token"})
    body = {
        "remote_user": request.environ.get("REMOTE_USER"),
        "scopes": sorted(request.environ.get("sso.scopes") or ()),
        "claims": claims,
    }
    response = PyramidResponse(json.dumps(body, indent=2, sort_keys=True), content_type="application/json",
                               charset="utf-8")
    response.cache_control = "no-store"
    return response


def make_app2(api_url: str, links: Links) -> Callable[..., Iterable[bytes]]:
    """App 2's WSGI app (to be wrapped by ``SSOMiddleware``)."""
    with Configurator() as config:
        for name, path, view in (
            ("home", "/", app2_home),
            ("dashboard", "/dashboard", make_app2_dashboard(links)),
            ("admin", "/admin", app2_admin),
            ("api", "/api", make_app2_api(api_url)),
            ("api_me", API_PATH, api_me),
        ):
            config.add_route(name, path)
            config.add_view(view, route_name=name)
        wsgi: Callable[..., Iterable[bytes]] = config.make_wsgi_app()
    return wsgi
