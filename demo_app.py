"""Single sign-on and single logout between three applications, on your machine, in one command.

``make demo`` (or ``python demo_app.py``) starts:

* the bundled development OpenID Provider (the ``oidc-provider`` npm package) on
  http://127.0.0.1:5000, standing in for an Auth0 tenant;
* **App 1**, a single-page app on http://127.0.0.1:5001 (``demo/spa/``): it signs in in the
  browser with ``oidc-client-ts`` (a public client with PKCE), calls App 2's JSON API with its
  access token, and links to App 2 and App 3 -- *the user signs in on the SPA*;
* **App 2**, a Pyramid app on http://127.0.0.1:5002: the SPA's link to
  ``/auth/sso?connection=...&target_url=/dashboard`` signs the user in silently through the
  provider's session; ``/admin`` is open only to the admin role (``access_rules``), ``/api``
  calls the provider's userinfo endpoint -- standing in for your API -- with the user's access
  token (``keep_access_token``), and ``/api/me`` is a bearer-token JSON API for the SPA
  (``bearer_paths``; CORS for App 1's origin only);
* **App 3**, the legacy intranet app (Bottle) on http://127.0.0.1:5003, reached signed in
  through the same provider session and registered for back-channel logout: signing out at
  App 2 signs the user out here too, and the SPA shows "signed out" at its next silent renewal.

App 2 and App 3 are ordinary WSGI apps wrapped by ``SSOMiddleware``, each with its own client id.

To run the same apps against a real Auth0 tenant instead, put the settings in the
environment or in a ``.env`` file beside this script::

    SSO_DOMAIN=your-tenant.eu.auth0.com
    APP1_CLIENT_ID=...                               # the Single Page Application
    APP2_CLIENT_ID=...      APP2_CLIENT_SECRET=...   # Regular Web Applications
    APP3_CLIENT_ID=...      APP3_CLIENT_SECRET=...
    APP2_API_AUDIENCE=http://127.0.0.1:5002/api      # the Auth0 API's identifier
    DEMO_CONNECTION=Username-Password-Authentication

Any other ``SSO_*`` variable is a middleware setting shared by App 2 and App 3 (App 2's bearer
settings come from the variables above; ``SSO_BEARER_TOKEN_TYPE=JWT`` if the Auth0 API keeps
Auth0's own token profile).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import waitress
from waitress.server import BaseWSGIServer

from demo.app2 import API_PATH, API_SCOPE, Links, make_app2
from demo.app3 import make_app3
from demo.cors import CORSForOrigin
from demo.spa import SPAServer, install_spa_dependencies
from sso_middleware import SSOConfig, SSOMiddleware
from sso_middleware.testing import ROLES_CLAIM

DEFAULT_CONNECTION = "Username-Password-Authentication"
HERE = Path(__file__).resolve().parent
#: The Auth0-mode variables without a default (``APP2_API_AUDIENCE`` and ``DEMO_CONNECTION`` have one).
AUTH0_VARIABLES = ("APP1_CLIENT_ID", "APP2_CLIENT_ID", "APP2_CLIENT_SECRET", "APP3_CLIENT_ID", "APP3_CLIENT_SECRET")


@dataclass
class Demo:
    """The running demo: its URLs, the client ids of its apps, and what to stop."""

    app1_url: str
    app2_url: str
    app3_url: str
    provider_url: str
    connection: str
    api_url: str = ""  # App 2's bearer-token JSON API
    api_audience: str = ""  # its identifier: the access token's aud, App 2's bearer_audience
    client_ids: dict[str, str] = field(default_factory=dict)  # "app1" / "app2" / "app3" -> client_id
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
                values[key.strip()] = value.strip().strip("\'\"")
    return values


def _default(name: str) -> str:
    return str({f.name: f.default for f in dataclasses.fields(SSOConfig)}[name])


def _sso_link(base: str, connection: str, target: str) -> str:
    return base + "/auth/sso?" + urlencode({"connection": connection, "target_url": target})


def start_demo(
    app1_port: int = 5001,
    app2_port: int = 5002,
    provider_port: int = 5000,
    environ: Optional[Mapping[str, str]] = None,
    session_dir: Optional[str] = None,
    *,
    app3_port: int = 5003,
    spa_check_seconds: float = 30.0,
) -> Demo:
    """Start the provider (unless an external one is configured) and the three apps.

    ``spa_check_seconds``: how often the SPA renews silently (it also does on load and on focus).
    """
    env = dict(read_dotenv(HERE / ".env"))
    env.update(os.environ if environ is None else environ)
    bases = {name: f"http://127.0.0.1:{port}" for name, port in (("app1", app1_port), ("app2", app2_port),
                                                                   ("app3", app3_port))}
    connection = env.get("DEMO_CONNECTION", DEFAULT_CONNECTION)
    shared = {key: value for key, value in env.items() if key.startswith("SSO_")}
    audience = env.get("APP2_API_AUDIENCE") or bases["app2"] + "/api"
    demo = Demo(bases["app1"], bases["app2"], bases["app3"], "", connection, bases["app2"] + API_PATH, audience)
    backchannel_path = shared.get("SSO_BACKCHANNEL_LOGOUT_PATH", _default("backchannel_logout_path"))

    tenant = "SSO_DOMAIN" in shared or "SSO_ISSUER" in shared
    if tenant:
        credentials = _tenant_credentials(env)
        demo.provider_url = shared.get("SSO_ISSUER") or f"https://{shared['SSO_DOMAIN']}/"
    installer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-npm")
    spa_library = installer.submit(install_spa_dependencies)  # the SPA's npm ci runs while the provider starts
    installer.shutdown(wait=False)
    if not tenant:
        from sso_middleware.testing import DevProvider

        # App 2's API, as an Auth0 API would be: its identifier and the scopes it defines.
        provider = DevProvider(port=provider_port, resources={audience: {"scopes": [API_SCOPE]}}).start()
        demo.provider, demo.provider_url = provider, provider.issuer
        credentials = _register_clients(provider, bases, backchannel_path)
        shared.update({"SSO_ISSUER": provider.issuer, "SSO_ALLOW_INSECURE_HTTP": "true"})
    demo.client_ids = {name: client_id for name, (client_id, _) in credentials.items()}

    # One secret per app unless the operator gives one (each app derives its own keys from it: _sealing.py).
    session_secret = shared.pop("SSO_SESSION_SECRET", None)
    links = Links(spa_url=bases["app1"] + "/", app3_sso_url=_sso_link(bases["app3"], connection, "/"))
    # The API App 2's /api page calls: the provider's userinfo endpoint accepts the user's access token.
    userinfo = (demo.provider.endpoint("userinfo") if demo.provider is not None
                else demo.provider_url.rstrip("/") + "/userinfo")
    try:
        wrapped = {}
        for name, wsgi_app, extra in (
            ("app2", make_app2(userinfo, links), {
                "protected_paths": "/dashboard /api",
                "scope": shared.get("SSO_SCOPE", "openid profile email offline_access"),
                "keep_access_token": "true",
                "access_rules": f"/admin claim {ROLES_CLAIM} includes admin",
                "bearer_paths": API_PATH,
                "bearer_audience": audience,
                "bearer_only": "true",  # the SPA's API: its token, never App 2's session cookie
                "bearer_rules": f"{API_PATH} scope {API_SCOPE}",
            }),
            ("app3", make_app3(bases["app1"] + "/", bases["app2"] + "/dashboard"), {"protected_paths": "/"}),
        ):
            settings = {key[4:].lower(): value for key, value in shared.items()}
            settings.update(
                client_id=credentials[name][0],
                client_secret=credentials[name][1],
                base_url=bases[name],
                session_secret=session_secret or secrets.token_urlsafe(32),
                cookie_name=f"{name}_session",  # the apps share the host 127.0.0.1
                default_connection=connection,
                **extra,
            )
            if demo.provider is not None:  # as registered; an Auth0 application says its own
                client = demo.provider.client(credentials[name][0])
                settings["token_endpoint_auth_method"] = client.token_endpoint_auth_method
            if session_dir is not None:
                settings["session_data_dir"] = os.path.join(session_dir, name)
            wrapped[name] = SSOMiddleware(wsgi_app, SSOConfig.from_settings(settings))
        spa = SPAServer({
            "authority": demo.provider_url,
            "client_id": credentials["app1"][0],
            "redirect_uri": bases["app1"] + "/callback",
            "silent_redirect_uri": bases["app1"] + "/silent-renew.html",
            "post_logout_redirect_uri": bases["app1"] + "/",
            "scope": f"openid profile email {API_SCOPE}",
            "audience": audience,
            "api_url": demo.api_url,
            "app2_sso_url": _sso_link(bases["app2"], connection, "/dashboard"),
            "app3_sso_url": links.app3_sso_url,
            "check_seconds": spa_check_seconds,
        }, spa_library.result())
        apps: tuple[tuple[str, int, Callable[..., Any]], ...] = (
            ("app1", app1_port, spa),
            ("app2", app2_port, CORSForOrigin(wrapped["app2"], bases["app1"], API_PATH)),
            ("app3", app3_port, wrapped["app3"]),
        )
        for name, port, wsgi in apps:
            server = waitress.create_server(wsgi, host="127.0.0.1", port=port, threads=8)
            threading.Thread(target=server.run, name=f"demo-{name}", daemon=True).start()
            demo.servers.append(server)
    except BaseException:
        demo.stop()
        raise
    return demo


def _tenant_credentials(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The Auth0 applications of the three apps from ``APPn_CLIENT_ID`` / ``_SECRET``: name -> (id, secret)."""
    missing = [name for name in AUTH0_VARIABLES if not env.get(name)]
    if missing:
        raise ValueError(f"the demo against a tenant of your own needs {', '.join(missing)} as well "
                         "(see the README's demo section)")
    return {name: (env[f"{name.upper()}_CLIENT_ID"], env.get(f"{name.upper()}_CLIENT_SECRET", ""))
            for name in ("app1", "app2", "app3")}


def _register_clients(provider: Any, bases: Mapping[str, str], backchannel_path: str) -> dict[str, tuple[str, str]]:
    """Register the three apps at the dev provider; return name -> (client_id, client_secret)."""
    spa = provider.register_client(
        [bases["app1"] + "/callback", bases["app1"] + "/silent-renew.html"],
        post_logout_redirect_uris=[bases["app1"] + "/"],
        token_endpoint_auth_method="none",  # a public client: PKCE, no secret
        grant_types=("authorization_code",),
        client_name="Demo App 1 (SPA)",
    )
    app2 = provider.register_client([bases["app2"] + "/auth/callback"], post_logout_redirect_uris=[bases["app2"] + "/"],
                                    token_endpoint_auth_method="client_secret_post", client_name="Demo App 2")
    app3 = provider.register_client([bases["app3"] + "/auth/callback"], post_logout_redirect_uris=[bases["app3"] + "/"],
                                    token_endpoint_auth_method="client_secret_basic",
                                    backchannel_logout_uri=bases["app3"] + backchannel_path,
                                    client_name="Demo App 3 (legacy intranet)")
    return {name: (client.client_id, client.client_secret) for name, client in
            (("app1", spa), ("app2", app2), ("app3", app3))}


def main() -> None:
    try:
        demo = start_demo(
            app1_port=int(os.environ.get("DEMO_APP1_PORT", "5001")),
            app2_port=int(os.environ.get("DEMO_APP2_PORT", "5002")),
            app3_port=int(os.environ.get("DEMO_APP3_PORT", "5003")),
            provider_port=int(os.environ.get("DEMO_PROVIDER_PORT", "5000")),
        )
    except ValueError as exc:
        raise SystemExit(f"demo: {exc}") from None
    print(
        "\nsso_middleware demo: single sign-on and single logout between three apps\n"
        f"  provider : {demo.provider_url}  (users: alice / alice-password, bob / bob-password)\n"
        f"  App 1    : {demo.app1_url}/   <- open this: the SPA; sign in, call App 2's API, follow the links\n"
        f"  App 2    : {demo.app2_url}/dashboard  (silent SSO), /admin (admin role only), /api, /api/me (bearer)\n"
        f"  App 3    : {demo.app3_url}/   (the legacy intranet app; signed out with App 2 by back-channel logout)\n"
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
