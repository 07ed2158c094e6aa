"""Several ``base_url`` hostnames against the real provider, through a real HTTP server.

One app on one loopback port, listed as ``http://127.0.0.1:P`` (first) and
``http://localhost:P``, with both callback URIs (and logout URLs) registered at the
bundled oidc-provider.  Each name signs in with its own redirect URI (the provider
refuses a code redeemed with another one, so the exchange proves the transaction kept
it); a forged ``Host`` gets the first name.  form_post in a browser:
``tests/integration/test_form_post_browser.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
import waitress

from sso_middleware import SSOMiddleware
from sso_middleware.testing import ClientCredentials, DevProvider

from ..conftest import SESSION_SECRET, legacy_app
from ..servers import free_port, stop_waitress
from .test_integration import browse, page


class TwoNames:
    def __init__(self, provider: DevProvider, tmp: Path) -> None:
        self.port = free_port()
        self.names = (f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}")
        self.client: ClientCredentials = provider.register_client(
            [url + "/auth/callback" for url in self.names], post_logout_redirect_uris=[url + "/" for url in self.names],
            client_name="two-names")
        self.middleware = SSOMiddleware(
            legacy_app, issuer=provider.issuer, client_id=self.client.client_id,
            client_secret=self.client.client_secret, base_url=", ".join(self.names), session_secret=SESSION_SECRET,
            session_data_dir=str(tmp / "two-names"), allow_insecure_http=True, protected_paths=("/dashboard",),
            cookie_name="two_names_session",
        )
        self.server = waitress.create_server(self.middleware, host="127.0.0.1", port=self.port, threads=4)
        threading.Thread(target=self.server.run, daemon=True).start()


@pytest.fixture(scope="module")
def app(oidc_provider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNames]:
    started = TwoNames(oidc_provider, tmp_path_factory.mktemp("two-names"))
    yield started
    stop_waitress(started.server)


def authorize_params(provider: DevProvider, app: TwoNames) -> list[dict[str, Any]]:
    return [event["params"] for event in provider.events("authorize") if event.get("client_id") == app.client.client_id]


@pytest.mark.parametrize("index", [0, 1])
def test_each_name_signs_in_and_out_with_its_own_urls(oidc_provider: DevProvider, app: TwoNames, index: int) -> None:
    name = app.names[index]
    oidc_provider.clear_events()
    http = requests.Session()
    redirect = oidc_provider.login(http, "alice", name + "/auth/login?target_url=/dashboard")
    assert redirect.headers["Location"].startswith(name + "/auth/callback?"), redirect.headers["Location"]
    landing = browse(http, urljoin(redirect.url, redirect.headers["Location"]))
    assert landing.urls[-1] == name + "/dashboard"
    assert page(landing)["remote_user"] == "alice"
    assert authorize_params(oidc_provider, app)[-1]["redirect_uri"] == name + "/auth/callback"
    out = http.get(name + "/auth/logout?target_url=/", allow_redirects=False, timeout=10)
    location = out.headers["Location"]
    assert location.startswith(oidc_provider.issuer)
    assert parse_qs(urlsplit(location).query)["post_logout_redirect_uri"] == [name + "/"]


def test_a_forged_host_gets_the_first_name(oidc_provider: DevProvider, app: TwoNames) -> None:
    direct = f"http://127.0.0.1:{app.port}"
    for path in ("/auth/login?target_url=/dashboard", "/dashboard"):
        response = requests.get(direct + path, headers={"Host": "evil.example", "Accept": "text/html",
                                                        "X-Forwarded-Host": f"localhost:{app.port}"},
                                allow_redirects=False, timeout=10)
        assert response.status_code == 303
        location = response.headers["Location"]
        assert "evil.example" not in location and f"localhost%3A{app.port}" not in location, location
        if path == "/dashboard":
            assert location.startswith(app.names[0] + "/auth/login?")
        else:  # pushed (PAR): the provider's authorize event shows the parameters it was sent
            oidc_provider.clear_events()
            requests.get(location, allow_redirects=False, timeout=10)
            assert authorize_params(oidc_provider, app)[-1]["redirect_uri"] == app.names[0] + "/auth/callback"
