"""The PasteDeploy filter: ``[filter:sso]`` with ``use = egg:sso_middleware#main`` in a pipeline."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
import webtest
from paste.deploy import loadapp, loadfilter

from sso_middleware import ConfigError, SSOMiddleware

from ..conftest import SESSION_SECRET, legacy_app
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider

CONNECTION = "Username-Password-Authentication"


def app_factory(global_conf: dict[str, Any], **local_conf: str) -> Callable[..., Any]:
    """PasteDeploy app factory for the legacy test app (``use = call:tests.wsgi.test_paste:app_factory``)."""
    return legacy_app


REQUIRED = f"""
    issuer = {ISSUER}
    client_id = {CLIENT_ID}
    client_secret = {CLIENT_SECRET}
    base_url = {BASE_URL}
    session_secret = {SESSION_SECRET}
    session_data_dir = %(here)s/sessions
"""


def write_ini(tmp_path: Path, filter_settings: str, required: str = REQUIRED) -> str:
    text = textwrap.dedent(
        """
        [DEFAULT]
        debug = false

        [pipeline:main]
        pipeline = sso legacy

        [filter:sso]
        use = egg:sso_middleware#main
        """
    )
    text += textwrap.dedent(required) + textwrap.dedent(filter_settings)
    text += textwrap.dedent(
        """
        [app:legacy]
        use = call:tests.wsgi.test_paste:app_factory
        """
    )
    path = tmp_path / "deploy.ini"
    path.write_text(text)
    return f"config:{path}"


def test_the_filter_wraps_the_app_with_converted_settings(tmp_path: Path) -> None:
    uri = write_ini(
        tmp_path,
        """
        allowed_connections = Username-Password-Authentication, google-oauth2
            github
        protected_paths = /admin /private
        allowed_redirect_origins = https://app1.example
        silent_sso = false
        provider_logout = off
        serve_failure_page = yes
        silent_sso_fallback = anonymous
        clock_skew = 30
        http_timeout = 2.5
        session_idle_timeout = 3600
        remote_user_claim = email
        """,
    )
    app = loadapp(uri)
    assert isinstance(app, SSOMiddleware)
    assert app.app is legacy_app
    config = app.config
    assert config.allowed_connections == (CONNECTION, "google-oauth2", "github")
    assert config.protected_paths == ("/admin", "/private")
    assert config.allowed_redirect_origins == ("https://app1.example",)
    assert config.silent_sso is False
    assert config.provider_logout is False
    assert config.serve_failure_page is True
    assert config.silent_sso_fallback == "anonymous"
    assert config.clock_skew == 30
    assert config.http_timeout == 2.5
    assert config.session_idle_timeout == 3600
    assert config.remote_user_claim == "email"
    assert config.session_data_dir == str(tmp_path / "sessions")
    assert config.issuer == ISSUER


def test_defaults_apply_to_settings_not_given(tmp_path: Path) -> None:
    config = loadapp(write_ini(tmp_path, "")).config
    assert config.silent_sso is True
    assert config.provider_logout is True
    assert config.protected_paths == ()
    assert config.sso_path == "/auth/sso"
    assert config.token_endpoint_auth_method == "client_secret_basic"


def test_a_paste_deployed_app_signs_users_in(tmp_path: Path) -> None:
    """The pipeline's middleware, rebuilt from what PasteDeploy made (its app, its config) on the fake's transport."""
    loaded = loadapp(write_ini(tmp_path, "protected_paths = /admin\nremote_user_claim = email\n"))
    assert isinstance(loaded, SSOMiddleware) and loaded.app is legacy_app
    provider = FakeProvider()
    app = SSOMiddleware(loaded.app, loaded.config, http_transport=provider.transport())
    browser = webtest.TestApp(app, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"})
    browser.get("/admin", status=401)
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/admin"})
    response = browser.get(provider.authorize(response.location))
    assert response.location == "https://app2.example/admin"
    assert browser.get("/admin").json["remote_user"] == "alice@example.com"


@pytest.mark.parametrize(
    ("line", "setting"),
    [
        pytest.param("protected_path = /admin", "protected_path", id="unknown-key"),
        pytest.param("silent_sso_fallbak = anonymous", "silent_sso_fallbak", id="typo"),
        pytest.param("silent_sso = maybe", "silent_sso", id="bad-bool"),
        pytest.param("clock_skew = soon", "clock_skew", id="bad-int"),
        pytest.param("http_timeout = fast", "http_timeout", id="bad-float"),
        pytest.param("token_endpoint_auth_method = tls_client_auth", "token_endpoint_auth_method", id="bad-choice"),
        pytest.param("allowed_redirect_origins = https://app1.example/path", "allowed_redirect_origins",
                     id="bad-origin"),
    ],
)
def test_bad_settings_fail_at_load_naming_the_setting(tmp_path: Path, line: str, setting: str) -> None:
    with pytest.raises(ConfigError, match=setting) as caught:
        loadapp(write_ini(tmp_path, line + "\n"))
    assert caught.value.setting == setting


def test_a_missing_required_setting_fails_at_load(tmp_path: Path) -> None:
    required = REQUIRED.replace(f"client_secret = {CLIENT_SECRET}\n", "")
    with pytest.raises(ConfigError) as caught:
        loadapp(write_ini(tmp_path, "", required=required))
    assert caught.value.setting == "client_secret"


def test_loading_makes_no_provider_call(tmp_path: Path) -> None:
    """Discovery is lazy: neither building the pipeline's middleware nor a plain request calls the provider."""
    loaded = loadapp(write_ini(tmp_path, ""))
    provider = FakeProvider()
    app = SSOMiddleware(loaded.app, loaded.config, http_transport=provider.transport())
    assert provider.calls == []
    webtest.TestApp(app).get("/page")
    assert provider.calls == []


def test_the_filter_factory_validates_before_any_app_is_wrapped(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        loadfilter(write_ini(tmp_path, "bogus_setting = 1\n"), name="sso")
    assert caught.value.setting == "bogus_setting"
    wrap = loadfilter(write_ini(tmp_path, ""), name="sso")
    assert isinstance(wrap(legacy_app), SSOMiddleware)
