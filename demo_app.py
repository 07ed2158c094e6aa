"""Single sign-on between two applications, on your machine, in one command.

``make demo`` (or ``python demo_app.py``) starts:

* the bundled development OpenID Provider (the ``oidc-provider`` npm package) on
  http://127.0.0.1:5000, standing in for an Auth0 tenant;
* **App 1**, a Bottle app on http://127.0.0.1:5001 -- sign in here;
* **App 2**, a Pyramid app on http://127.0.0.1:5002 -- its ``/dashboard`` is
  protected; App 1 links to ``/auth/sso?connection=...&target_url=/dashboard``.
  Its ``/admin`` is open only to users whose roles claim includes ``admin``
  (``access_rules``: alice may, bob gets a 403 page), and ``/api`` calls the
  provider's userinfo endpoint -- standing in for your API -- with the user's
  access token (``keep_access_token``, refreshed automatically).

Each app is an ordinary WSGI app wrapped by ``SSOMiddleware`` with its own
client id.  Sign in on App 1 (``alice`` / ``alice-password``), follow the link,
and App 2 signs you in silently through the provider's session.

To run the same two apps against a real Auth0 tenant instead, put the settings
in the environment or in a ``.env`` file beside this script::

    SSO_DOMAIN=your-tenant.eu.auth0.com
    APP1_CLIENT_ID=...      APP1_CLIENT_SECRET=...
    APP2_CLIENT_ID=...      APP2_CLIENT_SECRET=...
    DEMO_CONNECTION=Username-Password-Authentication

Any other ``SSO_*`` variable is a middleware setting shared by both apps.
"""

from __future__ import annotations

import html
import os
import secrets
import signal
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import bottle
import requests
import waitress
from pyramid.config import Configurator
from pyramid.request import Request as PyramidRequest
from pyramid.response import Response as PyramidResponse
from waitress.server import BaseWSGIServer

from sso_middleware import NoAccessToken, SSOConfig, SSOMiddleware, authorization_header, get_userinfo
from sso_middleware.testing import ROLES_CLAIM  # the namespaced roles claim (an Auth0 Action would add one too)

DEFAULT_CONNECTION = "Username-Password-Authentication"
HERE = Path(__file__).resolve().parent

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f6fa;color:#1d2330;margin:0}
header{padding:1rem 2rem;color:#fff} header b{font-size:1.2rem}
.app1 header{background:#2454c5} .app2 header{background:#127a5b}
main{max-width:40rem;margin:2rem auto;background:#fff;border-radius:10px;padding:1.5rem 2rem;
box-shadow:0 2px 12px rgba(0,0,0,.07)}
a.button,button{display:inline-block;background:#1d2330;color:#fff;border:0;border-radius:6px;
padding:.55rem 1rem;text-decoration:none;font-size:1rem;cursor:pointer}
table{border-collapse:collapse} td{padding:.25rem 1rem .25rem 0} td:first-child{color:#667}
.note{color:#556;font-size:.95rem;background:#f0f3f8;border-radius:6px;padding:.6rem .8rem}
"""


def page(app_class: str, title: str, body: str) -> str:
    """A small, styled HTML page."""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body class=\"{app_class}\"><header><b>{html.escape(title)}</b></header>"
        f"<main>{body}</main></body></html>"
    )


def user_table(user: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td id=\"user-{key}\">{html.escape(str(user.get(key, '')))}</td></tr>"
        for key, label in (("name", "Name"), ("email", "Email"), ("sub", "Subject (sub)"))
    )
    return f"<table>{rows}</table>"


# -- App 1: Bottle ------------------------------------------------------------


def make_app1(app2_sso_url: str) -> bottle.Bottle:
    """App 1: where the user signs in; links to App 2 through its SSO entry point."""
    app = bottle.Bottle()

    @app.get("/")  # type: ignore[untyped-decorator]
    def home() -> str:
        user = get_userinfo(bottle.request.environ)
        if user is None:
            body = (
                "<h2>You are not signed in</h2>"
                "<p>Sign in at the provider first; then App 2 will not need to ask again.</p>"
                '<p><a class="button" id="sign-in" href="/auth/login?target_url=/">Sign in</a></p>'
            )
        else:
            body = (
                "<h2>You are signed in</h2>"
                f"{user_table(user)}"
                "<p>Now open App 2. Its middleware sends you to the provider with "
                "<code>prompt=none</code>; the provider already knows you, so you come back signed in "
                "without a login screen.</p>"
                f'<p><a class="button" id="to-app2" href="{html.escape(app2_sso_url)}">Open App 2\'s dashboard</a> '
                '<a href="/auth/logout?target_url=/">Sign out of App 1</a></p>'
            )
        return page("app1", "App 1 (Bottle)", body)

    return app


# -- App 2: Pyramid -----------------------------------------------------------


def app2_home(request: PyramidRequest) -> PyramidResponse:
    user = get_userinfo(request.environ)
    state = "signed in" if user else "not signed in"
    body = (
        f"<h2>Welcome to App 2</h2><p>This page is public; you are {state}.</p>"
        '<p><a class="button" id="dashboard" href="/dashboard">Go to the dashboard</a></p>'
    )
    return PyramidResponse(page("app2", "App 2 (Pyramid)", body))


def app2_dashboard(request: PyramidRequest) -> PyramidResponse:
    user = get_userinfo(request.environ)
    if user is None:  # the middleware protects /dashboard; this is defence in depth
        return PyramidResponse(status=401)
    body = (
        "<h2>Dashboard</h2>"
        f"{user_table(user)}"
        f'<p class="note">REMOTE_USER is <code id="remote-user">{html.escape(request.environ["REMOTE_USER"])}</code>. '
        "If you came from App 1, you were signed in silently through the provider's session: "
        "no login screen, no password.</p>"
        '<p><a href="/admin" id="to-admin">Admin area</a> (only for the <code>admin</code> role: alice yes, bob no) '
        '&middot; <a href="/api" id="to-api">Call an API with your access token</a></p>'
        '<form method="post" action="/auth/logout?target_url=/">'
        '<button id="sign-out" type="submit">Sign out</button></form>'
    )
    return PyramidResponse(page("app2", "App 2 (Pyramid)", body))


def app2_admin(request: PyramidRequest) -> PyramidResponse:
    """Reached only by users the middleware's access rule lets through (roles include admin)."""
    user = get_userinfo(request.environ) or {}
    body = (
        "<h2>Admin area</h2>"
        f'<p id="admin-ok">Welcome, {html.escape(str(user.get("name", user.get("sub", ""))))}: your roles '
        f"<code>{html.escape(', '.join(map(str, user.get(ROLES_CLAIM, []))))}</code> include <code>admin</code>. "
        "No code in this app checked that: the middleware's <code>access_rules</code> did.</p>"
        '<p><a href="/dashboard">Back to the dashboard</a></p>'
    )
    return PyramidResponse(page("app2", "App 2 (Pyramid)", body))


def make_app2_api(api_url: str) -> Callable[[PyramidRequest], PyramidResponse]:
    """The page that calls an API on the user's behalf, with the access token the middleware keeps fresh."""

    def app2_api(request: PyramidRequest) -> PyramidResponse:
        try:
            answer = requests.get(api_url, headers=authorization_header(request.environ), timeout=5)
            result = f"HTTP {answer.status_code}: <code>{html.escape(answer.text[:400])}</code>"
        except NoAccessToken as exc:
            result = f"no access token ({html.escape(str(exc))})"
        except requests.RequestException as exc:
            result = f"the API did not answer ({html.escape(type(exc).__name__)})"
        expires = request.environ.get("sso.access_token_expires_at")
        body = (
            "<h2>An API call with your access token</h2>"
            f"<p>GET <code>{html.escape(api_url)}</code> with <code>Authorization: Bearer …</code> "
            f'answered:</p><p id="api-result">{result}</p>'
            f'<p class="note">The token expires at {html.escape(str(expires))} (Unix time); the middleware '
            "refreshes it with the refresh token before it runs out, once per expiry across all workers.</p>"
            '<p><a href="/dashboard">Back to the dashboard</a></p>'
        )
        return PyramidResponse(page("app2", "App 2 (Pyramid)", body))

    return app2_api


def make_app2(api_url: str = "") -> Callable[..., Iterable[bytes]]:
    """App 2: a "regular web app" whose /dashboard needs a user, /admin the admin role; /api calls an API."""
    with Configurator() as config:
        config.add_route("home", "/")
        config.add_route("dashboard", "/dashboard")
        config.add_route("admin", "/admin")
        config.add_route("api", "/api")
        config.add_view(app2_home, route_name="home")
        config.add_view(app2_dashboard, route_name="dashboard")
        config.add_view(app2_admin, route_name="admin")
        config.add_view(make_app2_api(api_url), route_name="api")
        wsgi: Callable[..., Iterable[bytes]] = config.make_wsgi_app()
    return wsgi


# -- running it ---------------------------------------------------------------


@dataclass
class Demo:
    """The running demo: its URLs and what to stop."""

    app1_url: str
    app2_url: str
    provider_url: str
    connection: str
    servers: list[BaseWSGIServer] = field(default_factory=list)
    provider: Any = None

    def stop(self) -> None:
        for server in self.servers:
            server.close()
        if self.provider is not None:
            self.provider.stop()


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file (comments and blank lines ignored)."""
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip("'\"")
    return values


def start_demo(
    app1_port: int = 5001,
    app2_port: int = 5002,
    provider_port: int = 5000,
    environ: Optional[Mapping[str, str]] = None,
    session_dir: Optional[str] = None,
) -> Demo:
    """Start the provider (unless an external one is configured) and both apps."""
    env = dict(read_dotenv(HERE / ".env"))
    env.update(os.environ if environ is None else environ)
    app1_base, app2_base = f"http://127.0.0.1:{app1_port}", f"http://127.0.0.1:{app2_port}"
    connection = env.get("DEMO_CONNECTION", DEFAULT_CONNECTION)
    shared = {key: value for key, value in env.items() if key.startswith("SSO_")}
    demo = Demo(app1_base, app2_base, "", connection)

    if "SSO_DOMAIN" in shared or "SSO_ISSUER" in shared:
        credentials = {
            name: (env[f"{name.upper()}_CLIENT_ID"], env[f"{name.upper()}_CLIENT_SECRET"]) for name in ("app1", "app2")
        }
        demo.provider_url = shared.get("SSO_ISSUER") or f"https://{shared['SSO_DOMAIN']}/"
    else:
        from sso_middleware.testing import DevProvider

        provider = DevProvider(port=provider_port).start()
        demo.provider, demo.provider_url = provider, provider.issuer
        credentials = {}
        for name, base, method in (("app1", app1_base, "client_secret_basic"),
                                   ("app2", app2_base, "client_secret_post")):
            client = provider.register_client([base + "/auth/callback"], post_logout_redirect_uris=[base + "/"],
                                              token_endpoint_auth_method=method, client_name=f"Demo {name}")
            credentials[name] = (client.client_id, client.client_secret)
        shared.update({"SSO_ISSUER": provider.issuer, "SSO_ALLOW_INSECURE_HTTP": "true"})

    session_secret = shared.pop("SSO_SESSION_SECRET", None) or secrets.token_urlsafe(32)
    app2_sso = app2_base + "/auth/sso?" + urlencode({"connection": connection, "target_url": "/dashboard"})
    # The API App 2 calls: the provider's userinfo endpoint accepts the user's access token, like your API would.
    api_url = (demo.provider.endpoint("userinfo") if demo.provider is not None
               else demo.provider_url.rstrip("/") + "/userinfo")
    apps = (
        ("app1", app1_port, app1_base, make_app1(app2_sso), "client_secret_basic", ()),
        ("app2", app2_port, app2_base, make_app2(api_url), "client_secret_post", ("/dashboard", "/api")),
    )
    try:
        for name, port, base, wsgi_app, method, protected in apps:
            settings = {key[4:].lower(): value for key, value in shared.items()}
            settings.update(
                client_id=credentials[name][0],
                client_secret=credentials[name][1],
                base_url=base,
                session_secret=session_secret,
                cookie_name=f"{name}_session",  # both apps share the host 127.0.0.1
                protected_paths=" ".join(protected),
                default_connection=connection,
            )
            if name == "app2":
                settings.setdefault("scope", "openid profile email offline_access")
                settings.update(keep_access_token="true", access_rules=f"/admin claim {ROLES_CLAIM} includes admin")
            if demo.provider is not None:
                settings["token_endpoint_auth_method"] = method
            if session_dir is not None:
                settings["session_data_dir"] = os.path.join(session_dir, name)
            middleware = SSOMiddleware(wsgi_app, SSOConfig.from_settings(settings))
            server = waitress.create_server(middleware, host="127.0.0.1", port=port, threads=8)
            threading.Thread(target=server.run, name=f"demo-{name}", daemon=True).start()
            demo.servers.append(server)
    except BaseException:
        demo.stop()
        raise
    return demo


def main() -> None:
    demo = start_demo(
        app1_port=int(os.environ.get("DEMO_APP1_PORT", "5001")),
        app2_port=int(os.environ.get("DEMO_APP2_PORT", "5002")),
        provider_port=int(os.environ.get("DEMO_PROVIDER_PORT", "5000")),
    )
    print(
        "\nsso_middleware demo: single sign-on between two apps\n"
        f"  provider : {demo.provider_url}  (users: alice / alice-password, bob / bob-password)\n"
        f"  App 1    : {demo.app1_url}/   <- open this, sign in, then follow the link to App 2\n"
        f"  App 2    : {demo.app2_url}/dashboard  (protected), /admin (admin role only), /api (calls an API)\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a service manager's stop
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):  # a timeout keeps the main thread responsive to signals
        pass
    print("stopping...", flush=True)
    demo.stop()


if __name__ == "__main__":
    main()
