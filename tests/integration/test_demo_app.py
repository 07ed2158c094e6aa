"""``demo_app.start_demo`` against a provider of one's own (the Auth0 mode), and what its apps serve.

The "tenant" here is a dev provider started by the test with the three applications
registered by hand, as one would create them in Auth0; the demo gets only their ids,
secrets and the API identifier through the environment variables of the README.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

import demo_app
from sso_middleware.testing import DevProvider

from ..servers import free_port

AUDIENCE = "https://api.demo.example/"


@pytest.fixture(scope="module")
def tenant() -> Iterator[DevProvider]:
    with DevProvider(resources={AUDIENCE: {"scopes": ["read:profile"]}}) as provider:
        yield provider


def test_the_tenant_mode_names_every_missing_application() -> None:
    environ = {"SSO_DOMAIN": "tenant.example", "APP2_CLIENT_ID": "two", "APP2_CLIENT_SECRET": "secret"}
    with pytest.raises(ValueError, match=r"needs APP1_CLIENT_ID, APP3_CLIENT_ID, APP3_CLIENT_SECRET as well"):
        demo_app.start_demo(free_port(), free_port(), free_port(), environ=environ, app3_port=free_port())


def test_the_tenant_mode_uses_the_applications_it_is_given(tenant: DevProvider, tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("app1", "app2", "app3")}
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    spa = tenant.register_client([base["app1"] + "/callback", base["app1"] + "/silent-renew.html"],
                                 token_endpoint_auth_method="none", grant_types=("authorization_code",))
    app2 = tenant.register_client([base["app2"] + "/auth/callback"])
    app3 = tenant.register_client([base["app3"] + "/auth/callback"],
                                  backchannel_logout_uri=base["app3"] + "/auth/backchannel-logout")
    environ = {
        "SSO_ISSUER": tenant.issuer,
        "SSO_ALLOW_INSECURE_HTTP": "true",
        "APP1_CLIENT_ID": spa.client_id,
        "APP2_CLIENT_ID": app2.client_id,
        "APP2_CLIENT_SECRET": app2.client_secret,
        "APP3_CLIENT_ID": app3.client_id,
        "APP3_CLIENT_SECRET": app3.client_secret,
        "APP2_API_AUDIENCE": AUDIENCE,
        "DEMO_CONNECTION": "Corporate-LDAP",
    }
    running = demo_app.start_demo(ports["app1"], ports["app2"], free_port(), environ=environ,
                                  session_dir=str(tmp_path), app3_port=ports["app3"])
    try:
        assert running.provider is None and running.provider_url == tenant.issuer
        config = requests.get(base["app1"] + "/config.json", timeout=10).json()
        assert (config["authority"], config["client_id"], config["audience"]) == (tenant.issuer, spa.client_id,
                                                                                  AUDIENCE)
        assert config["api_url"] == base["app2"] + "/api/me"
        assert parse_qs(urlsplit(config["app2_sso_url"]).query) == {"connection": ["Corporate-LDAP"],
                                                                    "target_url": ["/dashboard"]}
        for name, client in (("app2", app2), ("app3", app3)):
            answer = requests.get(base[name] + "/auth/login", headers={"Accept": "text/html"},
                                  allow_redirects=False, timeout=10)
            assert answer.status_code in (302, 303), answer.text
            location = answer.headers["Location"]
            assert location.startswith(tenant.endpoint("authorization"))
            assert parse_qs(urlsplit(location).query)["client_id"] == [client.client_id]
        refused = requests.get(running.api_url, timeout=10)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer realm=")
    finally:
        running.stop()
