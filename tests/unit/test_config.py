"""SSOConfig: validation (one ConfigError naming the setting), conversions, derived values."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any, Optional

import pytest

from sso_middleware import SSOConfig, SSOMiddleware
from sso_middleware._config.urls import insecure_transport, is_loopback_host, origin_of
from sso_middleware._policy.rules import AccessRule, Condition
from sso_middleware.errors import ConfigError

from ..conftest import legacy_app
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER

SECRET = "s" * 40

VALID: dict[str, Any] = {
    "issuer": ISSUER,
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "base_url": BASE_URL,
    "session_secret": SECRET,
}


def build(**changes: Any) -> SSOConfig:
    settings = {**VALID, **changes}
    return SSOConfig(**{key: value for key, value in settings.items() if value is not None})


def refused(setting: str, **changes: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        build(**changes)
    assert caught.value.setting == setting, caught.value
    assert repr(setting) in str(caught.value)
    return caught.value


def test_valid_minimal_config_has_the_documented_defaults() -> None:
    config = build()
    assert config.issuer_url == ISSUER
    assert (config.sso_path, config.login_path, config.callback_path, config.logout_path, config.failure_path) == (
        "/auth/sso", "/auth/login", "/auth/callback", "/auth/logout", "/auth/failure"
    )
    assert config.scope == "openid profile email"
    assert config.remote_user_claim == "sub"
    assert config.token_endpoint_auth_method == "client_secret_basic"
    assert config.silent_sso is True
    assert config.silent_sso_fallback == "interactive"
    assert config.provider_logout is True
    assert config.allow_insecure_http is False
    assert "none" not in config.id_token_algorithms
    assert 0 < config.http_timeout <= 10
    assert config.session_type == "file"


def test_config_is_frozen() -> None:
    config = build()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.client_id = "other"  # type: ignore[misc]


def test_secrets_are_not_in_the_repr() -> None:
    text = repr(build(client_secret="very-secret-client-value", session_secret="x" * 31 + "session-secret"))
    assert "very-secret-client-value" not in text
    assert "session-secret" not in text
    assert CLIENT_ID in text


@pytest.mark.parametrize("url", ["redis://:MARK-password@127.0.0.1:6379/0",
                                 "redis://user:MARK-password@127.0.0.1:6379/0",
                                 "redis://127.0.0.1:6379/0?password=MARK-password"])
def test_the_session_url_password_is_not_in_the_repr(url: str) -> None:
    config = build(session_type="ext:redis", session_url=url)
    for text in (repr(config), str(config)):
        assert "MARK-password" not in text
        assert CLIENT_ID in text


# -- required settings ------------------------------------------------------------


@pytest.mark.parametrize(
    "setting",
    [
        pytest.param("issuer", id="issuer"),
        pytest.param("client_id", id="client_id"),
        pytest.param("client_secret", id="client_secret"),
        pytest.param("base_url", id="base_url"),
        pytest.param("session_secret", id="session_secret"),
    ],
)
@pytest.mark.parametrize("how", [pytest.param(None, id="absent"), pytest.param("", id="empty")])
def test_every_required_setting_missing_is_named(setting: str, how: Any) -> None:
    error = refused(setting, **{setting: how})
    assert "required" in error.message


def test_nothing_given_names_the_first_required_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        SSOConfig()
    assert caught.value.setting == "issuer"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        pytest.param("client_id", None, id="client_id-None"),
        pytest.param("client_id", 123, id="client_id-int"),
        pytest.param("silent_sso", "yes", id="bool-as-string-kwarg"),
        pytest.param("silent_sso", 1, id="bool-as-int"),
        pytest.param("clock_skew", 1.5, id="int-as-float"),
        pytest.param("clock_skew", True, id="int-as-bool"),
        pytest.param("clock_skew", "60", id="int-as-string-kwarg"),
        pytest.param("http_timeout", "5", id="float-as-string-kwarg"),
        pytest.param("http_timeout", False, id="float-as-bool"),
        pytest.param("allowed_connections", ["a", 1], id="list-with-non-string"),
        pytest.param("allowed_connections", {"a": 1}, id="dict-for-list"),
    ],
)
def test_wrong_python_types_are_refused_by_name(setting: str, value: Any) -> None:
    refused(setting, **{setting: value})


# -- issuer and domain ------------------------------------------------------------


def test_domain_means_an_https_issuer_with_trailing_slash() -> None:
    config = build(issuer="", domain="tenant.eu.auth0.com")
    assert config.issuer_url == "https://tenant.eu.auth0.com/"
    assert config.discovery_url == "https://tenant.eu.auth0.com/.well-known/openid-configuration"
    assert config.is_auth0


def test_issuer_and_domain_together_are_refused() -> None:
    refused("domain", domain="tenant.eu.auth0.com")


@pytest.mark.parametrize(
    "domain",
    [
        pytest.param("https://tenant.auth0.com", id="scheme"),
        pytest.param("tenant.auth0.com/", id="trailing-slash"),
        pytest.param("tenant.auth0.com/path", id="path"),
        pytest.param("user@tenant.auth0.com", id="userinfo"),
        pytest.param("tenant auth0.com", id="space"),
        pytest.param("tenant.auth0.com?x=1", id="query"),
    ],
)
def test_domain_must_be_a_bare_host(domain: str) -> None:
    refused("domain", issuer="", domain=domain)


@pytest.mark.parametrize(
    ("issuer", "discovery"),
    [
        pytest.param("https://op.example/", "https://op.example/.well-known/openid-configuration", id="slash"),
        pytest.param("https://op.example", "https://op.example/.well-known/openid-configuration", id="no-slash"),
        pytest.param(
            "https://op.example/tenant/", "https://op.example/tenant/.well-known/openid-configuration", id="path"
        ),
        pytest.param(
            "https://op.example:8443/", "https://op.example:8443/.well-known/openid-configuration", id="port"
        ),
    ],
)
def test_discovery_url_follows_the_issuer(issuer: str, discovery: str) -> None:
    config = build(issuer=issuer)
    assert config.discovery_url == discovery
    assert config.issuer_url == issuer  # kept exactly: discovery must announce this very string


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param("op.example", id="no-scheme"),
        pytest.param("/relative", id="relative"),
        pytest.param("ftp://op.example/", id="ftp"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("https://", id="no-host"),
        pytest.param("https://op.example:99999/", id="bad-port"),
        pytest.param("https://user:pw@op.example/", id="credentials"),
        pytest.param("https://op.example/?tenant=1", id="query"),
        pytest.param("https://op.example/#frag", id="fragment"),
    ],
)
def test_malformed_issuers_are_refused(issuer: str) -> None:
    refused("issuer", issuer=issuer)


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param("http://op.example/", id="remote"),
        pytest.param("http://127.0.0.1:8080/", id="loopback-without-flag"),
        pytest.param("http://localhost/", id="localhost-without-flag"),
    ],
)
def test_http_issuer_refused_without_allow_insecure_http(issuer: str) -> None:
    error = refused("issuer", issuer=issuer, base_url="http://127.0.0.1:5000")
    assert "http" in error.message


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param("http://localhost:3000/", id="localhost"),
        pytest.param("http://LOCALHOST:3000/", id="localhost-upper"),
        pytest.param("http://127.0.0.1:3000/", id="127.0.0.1"),
        pytest.param("http://127.1.2.3/", id="127.x"),
        pytest.param("http://[::1]:3000/", id="ipv6-loopback"),
    ],
)
def test_http_issuer_allowed_on_loopback_with_the_flag(issuer: str) -> None:
    config = build(issuer=issuer, base_url="http://127.0.0.1:5000", allow_insecure_http=True)
    assert config.issuer_url == issuer
    assert config.discovery_url.startswith(issuer.rstrip("/"))


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param("http://example.com/", id="example.com"),
        pytest.param("http://op.example/", id="op.example"),
        pytest.param("http://10.0.0.1/", id="private-ip"),
        pytest.param("http://0.0.0.0/", id="unspecified"),
        pytest.param("http://[::]/", id="ipv6-unspecified"),
        pytest.param("http://localhost.evil.com/", id="localhost-prefix"),
        pytest.param("http://127.0.0.1.nip.io/", id="loopback-lookalike"),
        pytest.param("http://evil.com#@127.0.0.1/", id="fragment-trick"),
    ],
)
def test_http_issuer_refused_for_other_hosts_even_with_the_flag(issuer: str) -> None:
    refused("issuer", issuer=issuer, base_url="http://127.0.0.1:5000", allow_insecure_http=True)


def test_allow_insecure_http_changes_no_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    before = dict(os.environ)
    build(issuer="http://127.0.0.1:3000/", base_url="http://127.0.0.1:5000", allow_insecure_http=True)
    assert dict(os.environ) == before


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        pytest.param("localhost", True, id="localhost"),
        pytest.param("127.0.0.1", True, id="127.0.0.1"),
        pytest.param("127.255.255.254", True, id="127/8"),
        pytest.param("::1", True, id="::1"),
        pytest.param("[::1]", True, id="[::1]"),
        pytest.param("128.0.0.1", False, id="128"),
        pytest.param("example.com", False, id="name"),
        pytest.param("localhost.example", False, id="localhost-suffix"),
        pytest.param("", False, id="empty"),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("scheme", "host", "allow", "problem"),
    [
        pytest.param("https", "op.example", False, None, id="https"),
        pytest.param("http", "127.0.0.1", True, None, id="http-loopback-allowed"),
        pytest.param("http", "127.0.0.1", False, "use https://", id="http-loopback-not-allowed"),
        pytest.param("http", "op.example", True, "allowed only on a loopback host", id="http-elsewhere"),
        pytest.param("ftp", "127.0.0.1", True, "must be an absolute https:// URL", id="other-scheme"),
    ],
)
def test_insecure_transport_is_the_one_plain_http_rule(scheme: str, host: str, allow: bool,
                                                       problem: Optional[str]) -> None:
    found = insecure_transport(scheme, host, allow)
    assert found is None if problem is None else (found is not None and problem in found)


# -- base_url -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "extra"),
    [
        pytest.param("https://app2.example/", {}, id="trailing-slash"),
        pytest.param("https://app2.example/prefix/", {}, id="prefix-trailing-slash"),
        pytest.param("https://app2.example?x=1", {}, id="query"),
        pytest.param("https://app2.example#top", {}, id="fragment"),
        pytest.param("app2.example", {}, id="no-scheme"),
        pytest.param("/app", {}, id="relative"),
        pytest.param("https://user:pw@app2.example", {}, id="credentials"),
        pytest.param("http://app2.example", {}, id="http"),
        pytest.param("http://app2.example", {"allow_insecure_http": True}, id="http-remote-with-flag"),
        pytest.param("http://127.0.0.1:5000", {}, id="http-loopback-without-flag"),
    ],
)
def test_bad_base_urls_are_refused(base_url: str, extra: dict[str, Any]) -> None:
    refused("base_url", base_url=base_url, **extra)


def test_base_url_may_carry_a_path_prefix() -> None:
    config = build(base_url="https://app2.example/prefix")
    assert config.redirect_uri == "https://app2.example/prefix/auth/callback"
    assert config.origin == "https://app2.example"


def test_http_loopback_base_url_with_the_flag() -> None:
    config = build(issuer="http://127.0.0.1:3000/", base_url="http://localhost:5000", allow_insecure_http=True)
    assert config.redirect_uri == "http://localhost:5000/auth/callback"
    assert config.secure_cookies is False


# -- secrets, scope, audience -----------------------------------------------------


@pytest.mark.parametrize("length", [pytest.param(1, id="1"), pytest.param(31, id="31")])
def test_short_session_secret_is_refused(length: int) -> None:
    refused("session_secret", session_secret="x" * length)


def test_session_secret_of_32_characters_is_enough() -> None:
    assert build(session_secret="x" * 32).session_secret == "x" * 32


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("profile email", id="no-openid"),
        pytest.param("openidprofile", id="glued"),
        pytest.param("OPENID profile", id="upper-case"),
        pytest.param("", id="empty"),
    ],
)
def test_scope_must_include_openid(scope: str) -> None:
    refused("scope", scope=scope)


@pytest.mark.parametrize(
    "scope", [pytest.param("openid", id="only"), pytest.param("profile openid offline_access", id="middle")]
)
def test_scope_with_openid_is_accepted(scope: str) -> None:
    assert build(scope=scope).scope == scope


def test_scope_with_control_characters_is_refused() -> None:
    refused("scope", scope="openid\nprofile")


def test_audience_with_control_characters_is_refused_by_name() -> None:
    refused("audience", audience="https://api.example\r\nX: y")


# -- routes -------------------------------------------------------------------------


ROUTES = ["sso_path", "login_path", "callback_path", "logout_path", "failure_path"]


@pytest.mark.parametrize("setting", [pytest.param(name, id=name) for name in ROUTES])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("auth/x", id="relative"),
        pytest.param("//evil.example/x", id="protocol-relative"),
        pytest.param("/auth//x", id="double-slash"),
        pytest.param("/auth/x y", id="space"),
        pytest.param("/auth/x?y=1", id="query"),
        pytest.param("/auth/x#y", id="fragment"),
        pytest.param("https://app2.example/auth/x", id="absolute"),
        pytest.param("/auth/\\x", id="backslash"),
        pytest.param("/auth/caf\u00e9", id="non-ascii"),
    ],
)
def test_route_paths_must_be_absolute_paths(setting: str, value: str) -> None:
    refused(setting, **{setting: value})


def test_routes_can_be_moved() -> None:
    config = build(sso_path="/sso", login_path="/login", callback_path="/oidc/cb", logout_path="/bye",
                   failure_path="/oops")
    assert config.redirect_uri == BASE_URL + "/oidc/cb"


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        pytest.param({"login_path": "/auth/sso"}, "login_path", id="login=sso"),
        pytest.param({"failure_path": "/auth/callback"}, "failure_path", id="failure=callback"),
        pytest.param({"logout_path": "/auth/login"}, "logout_path", id="logout=login"),
        pytest.param({"sso_path": "/x", "callback_path": "/x"}, "callback_path", id="both-moved"),
    ],
)
def test_duplicate_route_paths_are_refused(changes: dict[str, str], setting: str) -> None:
    error = refused(setting, **changes)
    assert "same path" in error.message


# -- connections, origins, protected paths, claims -----------------------------


def test_connections() -> None:
    config = build(default_connection="db", allowed_connections="db, google-oauth2")
    assert config.allowed_connections == ("db", "google-oauth2")
    refused("default_connection", default_connection="other", allowed_connections=["db"])
    refused("default_connection", default_connection="has space")
    refused("allowed_connections", allowed_connections=["ok", "caf\u00e9"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("https://app3.example", ("https://app3.example",), id="one"),
        pytest.param("https://app3.example:8443", ("https://app3.example:8443",), id="port"),
        pytest.param("http://localhost:3000", ("http://localhost:3000",), id="http-localhost"),
        pytest.param(["https://a.example", "https://b.example"], ("https://a.example", "https://b.example"),
                     id="list"),
        pytest.param("https://a.example, https://b.example", ("https://a.example", "https://b.example"),
                     id="comma-string"),
        pytest.param("https://App3.Example", ("https://app3.example",), id="upper-case-normalized"),
        pytest.param("https://app3.example/", ("https://app3.example",), id="trailing-slash-normalized"),
        pytest.param("https://[::1]:8443", ("https://[::1]:8443",), id="ipv6"),
    ],
)
def test_allowed_redirect_origins_accepted(value: Any, expected: tuple[str, ...]) -> None:
    assert build(allowed_redirect_origins=value).allowed_redirect_origins == expected


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("app3.example", id="bare-host"),
        pytest.param("https://app3.example/path", id="path"),
        pytest.param("https://app3.example?x=1", id="query"),
        pytest.param("https://app3.example#x", id="fragment"),
        pytest.param("https://user@app3.example", id="userinfo"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("ftp://app3.example", id="ftp"),
        pytest.param("*", id="star"),
        pytest.param("//app3.example", id="protocol-relative"),
        pytest.param("https://app3.example:99999", id="bad-port"),
    ],
)
def test_allowed_redirect_origins_refused(origin: str) -> None:
    refused("allowed_redirect_origins", allowed_redirect_origins=[origin])


def test_protected_paths() -> None:
    assert build(protected_paths="/admin /reports").protected_paths == ("/admin", "/reports")
    refused("protected_paths", protected_paths=["admin"])


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        pytest.param("remote_user_claim", "", id="claim-empty"),
        pytest.param("remote_user_claim", "user name", id="claim-space"),
        pytest.param("cookie_name", "a b", id="cookie-space"),
        pytest.param("cookie_name", "a;b", id="cookie-semicolon"),
        pytest.param("cookie_domain", "evil com", id="cookie-domain-space"),
        pytest.param("session_type", "memory", id="session-type"),
    ],
)
def test_other_malformed_settings(setting: str, value: str) -> None:
    refused(setting, **{setting: value})


# -- algorithms, auth method, fallback, numbers -----------------------------------


@pytest.mark.parametrize(
    "algorithms",
    [
        pytest.param(("NONE",), id="NONE"),
        pytest.param(("rs256",), id="lower-case"),
        pytest.param(("HS512",), id="HS512"),
        pytest.param(("RS1",), id="unknown"),
        pytest.param((), id="empty"),
        pytest.param("", id="empty-string"),
        pytest.param(("None",), id="None-capitalised"),
        pytest.param(("RS256", "NONE"), id="NONE-beside-rs256"),
        pytest.param(("RS256", "RS256"), id="twice"),
    ],
)
def test_bad_id_token_algorithms_are_refused(algorithms: Any) -> None:
    refused("id_token_algorithms", id_token_algorithms=algorithms)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(["RS256"], ("RS256",), id="list"),
        pytest.param("RS256 ES256", ("RS256", "ES256"), id="string"),
        pytest.param(("PS256", "EdDSA"), ("PS256", "EdDSA"), id="tuple"),
        # Unsigned ID tokens from the token endpoint (rp-id_token-sig-none): only when named, exactly.
        pytest.param("none", ("none",), id="none-alone"),
        pytest.param("RS256 none", ("RS256", "none"), id="none-beside-rs256"),
    ],
)
def test_id_token_algorithms_accepted(value: Any, expected: tuple[str, ...]) -> None:
    assert build(id_token_algorithms=value).id_token_algorithms == expected


def test_hs256_needs_a_client_secret_of_at_least_256_bits() -> None:
    # RFC 7518 section 3.2: the HMAC key (the client secret) must be as long as the hash.
    refused("client_secret", id_token_algorithms=("RS256", "HS256"), client_secret="short-secret")
    config = build(id_token_algorithms=("RS256", "HS256"), client_secret="c" * 32)
    assert "HS256" in config.id_token_algorithms


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_token_endpoint_auth_methods(method: str) -> None:
    assert build(token_endpoint_auth_method=method).token_endpoint_auth_method == method


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("none", id="none"),
        pytest.param("tls_client_auth", id="mtls"),
        pytest.param("", id="empty"),
        pytest.param("CLIENT_SECRET_BASIC", id="upper"),
    ],
)
def test_bad_token_endpoint_auth_method(method: str) -> None:
    refused("token_endpoint_auth_method", token_endpoint_auth_method=method)


@pytest.mark.parametrize("value", ["interactive", "anonymous"])
def test_silent_sso_fallback_values(value: str) -> None:
    assert build(silent_sso_fallback=value).silent_sso_fallback == value


@pytest.mark.parametrize("value", ["", "none", "Anonymous", "login"])
def test_bad_silent_sso_fallback(value: str) -> None:
    refused("silent_sso_fallback", silent_sso_fallback=value)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        pytest.param("http_timeout", 0, id="http_timeout-0"),
        pytest.param("http_timeout", -1.0, id="http_timeout-negative"),
        pytest.param("http_timeout", float("nan"), id="http_timeout-nan"),
        pytest.param("http_timeout", float("inf"), id="http_timeout-inf"),
        pytest.param("http_timeout", 121, id="http_timeout-too-long"),
        pytest.param("clock_skew", -1, id="clock_skew-negative"),
        pytest.param("clock_skew", 601, id="clock_skew-too-large"),
        pytest.param("discovery_ttl", 0, id="discovery_ttl-0"),
        pytest.param("transaction_ttl", 0, id="transaction_ttl-0"),
        pytest.param("transaction_ttl", -5, id="transaction_ttl-negative"),
        pytest.param("session_idle_timeout", 0, id="idle-0"),
        pytest.param("session_absolute_timeout", -1, id="absolute-negative"),
    ],
)
def test_timeouts_must_be_positive_and_sane(setting: str, value: float) -> None:
    refused(setting, **{setting: value})


def test_numbers_in_range_are_accepted() -> None:
    config = build(http_timeout=0.5, clock_skew=0, discovery_ttl=1, transaction_ttl=30,
                   session_idle_timeout=60, session_absolute_timeout=3600)
    assert (config.http_timeout, config.clock_skew) == (0.5, 0)
    assert build(http_timeout=3).http_timeout == 3


# -- unknown settings ---------------------------------------------------------------


def test_unknown_keyword_via_middleware_is_named(tmp_path: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        SSOMiddleware(legacy_app, **VALID, session_data_dir=str(tmp_path), client_secrett="typo")
    assert caught.value.setting == "client_secrett"


def test_unknown_keyword_next_to_a_config_is_named(tmp_path: Any) -> None:
    config = build(session_data_dir=str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        SSOMiddleware(legacy_app, config, bogus="1")
    assert caught.value.setting == "bogus"


def test_middleware_keywords_override_a_config(tmp_path: Any) -> None:
    config = build(session_data_dir=str(tmp_path))
    middleware = SSOMiddleware(legacy_app, config, login_path="/signin")
    assert middleware.config.login_path == "/signin"
    assert config.login_path == "/auth/login"


def test_invalid_keyword_via_middleware_fails_at_construction(tmp_path: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        SSOMiddleware(legacy_app, **{**VALID, "scope": "profile"}, session_data_dir=str(tmp_path))
    assert caught.value.setting == "scope"


def test_unknown_setting_in_from_settings() -> None:
    with pytest.raises(ConfigError) as caught:
        SSOConfig.from_settings({**VALID, "use": "egg:sso_middleware#main"})
    assert caught.value.setting == "use"


def test_unknown_setting_in_from_env() -> None:
    with pytest.raises(ConfigError) as caught:
        SSOConfig.from_env(env(SSO_CLIENTID="x"))
    assert caught.value.setting == "clientid"


def test_unknown_setting_in_replace() -> None:
    with pytest.raises(ConfigError) as caught:
        build().replace(nope=1)
    assert caught.value.setting == "nope"


# -- from_settings (PasteDeploy strings) -------------------------------------------


STRINGS = {key: str(value) for key, value in VALID.items()}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("true", True, id="true"),
        pytest.param("True", True, id="True"),
        pytest.param(" yes ", True, id="yes-padded"),
        pytest.param("on", True, id="on"),
        pytest.param("1", True, id="1"),
        pytest.param("false", False, id="false"),
        pytest.param("FALSE", False, id="FALSE"),
        pytest.param("no", False, id="no"),
        pytest.param("off", False, id="off"),
        pytest.param("0", False, id="0"),
    ],
)
def test_from_settings_booleans(text: str, expected: bool) -> None:
    config = SSOConfig.from_settings({**STRINGS, "silent_sso": text, "provider_logout": text})
    assert config.silent_sso is expected
    assert config.provider_logout is expected


@pytest.mark.parametrize(
    ("setting", "text"),
    [
        pytest.param("silent_sso", "maybe", id="bool-maybe"),
        pytest.param("silent_sso", "2", id="bool-2"),
        pytest.param("allow_insecure_http", "enabled", id="bool-enabled"),
        pytest.param("clock_skew", "1.5", id="int-float"),
        pytest.param("clock_skew", "sixty", id="int-word"),
        pytest.param("transaction_ttl", "", id="int-empty"),
        pytest.param("http_timeout", "fast", id="float-word"),
        pytest.param("http_timeout", "nan", id="float-nan"),
        pytest.param("http_timeout", "0", id="float-zero"),
        pytest.param("discovery_ttl", "-1", id="int-negative"),
    ],
)
def test_from_settings_bad_values_name_the_setting(setting: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SSOConfig.from_settings({**STRINGS, setting: text})
    assert caught.value.setting == setting


def test_from_settings_numbers() -> None:
    config = SSOConfig.from_settings({**STRINGS, "clock_skew": " 30 ", "http_timeout": "2.5", "discovery_ttl": "60"})
    assert (config.clock_skew, config.http_timeout, config.discovery_ttl) == (30, 2.5, 60)
    assert isinstance(config.clock_skew, int)
    assert SSOConfig.from_settings({**STRINGS, "http_timeout": "3"}).http_timeout == 3.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("db", ("db",), id="one"),
        pytest.param("db google", ("db", "google"), id="spaces"),
        pytest.param("db,google", ("db", "google"), id="commas"),
        pytest.param("db, google ,  github", ("db", "google", "github"), id="commas-and-spaces"),
        pytest.param("\n    db\n    google\n", ("db", "google"), id="newlines"),
        pytest.param("db\tgoogle", ("db", "google"), id="tab"),
        pytest.param("", (), id="empty"),
    ],
)
def test_from_settings_lists(text: str, expected: tuple[str, ...]) -> None:
    assert SSOConfig.from_settings({**STRINGS, "allowed_connections": text}).allowed_connections == expected


def test_from_settings_strips_strings_and_accepts_python_values() -> None:
    config = SSOConfig.from_settings({**STRINGS, "client_id": "  app2-client \n", "clock_skew": 5,
                                      "silent_sso": False, "protected_paths": ["/admin"]})
    assert config.client_id == "app2-client"
    assert (config.clock_skew, config.silent_sso, config.protected_paths) == (5, False, ("/admin",))


def test_from_settings_invalid_value_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        SSOConfig.from_settings({**STRINGS, "id_token_algorithms": "RS256 None"})
    assert caught.value.setting == "id_token_algorithms"


# -- from_env -------------------------------------------------------------------------


def env(**extra: str) -> dict[str, str]:
    base = {"SSO_" + key.upper(): value for key, value in STRINGS.items()}
    return {**base, "PATH": "/usr/bin", "HOME": "/root", "SSOX_IGNORED": "1", **extra}


def test_from_env_reads_prefixed_variables() -> None:
    config = SSOConfig.from_env(env(SSO_ALLOWED_CONNECTIONS="db,google", SSO_SILENT_SSO="off",
                                    SSO_HTTP_TIMEOUT="2"))
    assert config.issuer_url == ISSUER
    assert config.client_id == CLIENT_ID
    assert config.allowed_connections == ("db", "google")
    assert config.silent_sso is False
    assert config.http_timeout == 2.0


def test_from_env_bad_value_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        SSOConfig.from_env(env(SSO_CLOCK_SKEW="soon"))
    assert caught.value.setting == "clock_skew"


def test_from_env_missing_required_is_named() -> None:
    variables = env()
    del variables["SSO_SESSION_SECRET"]
    with pytest.raises(ConfigError) as caught:
        SSOConfig.from_env(variables)
    assert caught.value.setting == "session_secret"


def test_from_env_with_another_prefix() -> None:
    variables = {"APP2_" + key.upper(): value for key, value in STRINGS.items()}
    assert SSOConfig.from_env(variables, prefix="APP2_").client_id == CLIENT_ID


def test_from_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("SSO_"):
            monkeypatch.delenv(key)
    for key, value in env().items():
        if key.startswith("SSO_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("SSO_DEFAULT_CONNECTION", "db")
    assert SSOConfig.from_env().default_connection == "db"


# -- Python lists, replace() -----------------------------------------------------------


def test_python_lists_become_tuples() -> None:
    config = build(allowed_connections=["db", "google"], protected_paths=["/admin"],
                   id_token_algorithms=["RS256", "ES256"])
    assert config.allowed_connections == ("db", "google")
    assert config.protected_paths == ("/admin",)
    assert config.id_token_algorithms == ("RS256", "ES256")
    assert hash(config.allowed_connections)  # immutable, hashable


def test_replace_returns_a_validated_copy() -> None:
    config = build()
    changed = config.replace(login_path="/signin", allowed_connections=["db"])
    assert changed.login_path == "/signin"
    assert changed.allowed_connections == ("db",)
    assert config.login_path == "/auth/login"
    with pytest.raises(ConfigError) as caught:
        config.replace(session_secret="short")
    assert caught.value.setting == "session_secret"
    with pytest.raises(ConfigError) as caught:
        config.replace(login_path="/auth/callback")
    assert caught.value.setting in ("login_path", "callback_path")
    assert "login_path" in str(caught.value)


# -- derived values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "origin"),
    [
        pytest.param("https://app2.example", "https://app2.example", id="plain"),
        pytest.param("https://APP2.example", "https://app2.example", id="upper-case"),
        pytest.param("https://app2.example:443", "https://app2.example", id="default-port"),
        pytest.param("https://app2.example:8443/prefix", "https://app2.example:8443", id="port-and-prefix"),
    ],
)
def test_origin(base_url: str, origin: str) -> None:
    assert build(base_url=base_url).origin == origin


def test_redirect_uri_and_secure_cookies() -> None:
    config = build()
    assert config.redirect_uri == "https://app2.example/auth/callback"
    assert config.secure_cookies is True


@pytest.mark.parametrize(
    ("changes", "auth0"),
    [
        pytest.param({"issuer": "", "domain": "tenant.eu.auth0.com"}, True, id="domain"),
        pytest.param({"issuer": "https://tenant.eu.auth0.com/"}, True, id="auth0-issuer"),
        pytest.param({"issuer": "https://op.example/"}, False, id="generic"),
        pytest.param({"issuer": "https://auth0.com.evil.example/"}, False, id="lookalike"),
    ],
)
def test_is_auth0(changes: dict[str, str], auth0: bool) -> None:
    assert build(**changes).is_auth0 is auth0


def test_data_dir_default_is_private_per_application() -> None:
    one = build()
    assert one.data_dir == build().data_dir  # stable across restarts and workers
    assert os.path.dirname(one.data_dir) == os.path.join(tempfile.gettempdir(), f"sso_middleware-{os.getuid()}")
    others = {
        build(client_id="other-client").data_dir,
        build(base_url="https://app3.example").data_dir,
        build(issuer="https://op2.example/").data_dir,
    }
    assert one.data_dir not in others
    assert len(others) == 3


def test_explicit_session_data_dir_wins(tmp_path: Any) -> None:
    assert build(session_data_dir=str(tmp_path)).data_dir == str(tmp_path)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        pytest.param("https://a.example/x?y#z", "https://a.example", id="path"),
        pytest.param("HTTPS://A.EXAMPLE:443", "https://a.example", id="case-and-port"),
        pytest.param("http://a.example:80/", "http://a.example", id="http-default-port"),
        pytest.param("http://a.example:443/", "http://a.example:443", id="http-on-443"),
        pytest.param("https://[::1]:8443/", "https://[::1]:8443", id="ipv6"),
        pytest.param("ftp://a.example/", None, id="ftp"),
        pytest.param("//a.example/", None, id="protocol-relative"),
        pytest.param("https://a.example:x/", None, id="bad-port"),
        pytest.param("/path", None, id="path-only"),
    ],
)
def test_origin_of(url: str, origin: Any) -> None:
    assert origin_of(url) == origin



@pytest.mark.parametrize("url", ["https://op.example/authorize#frag", "https://op.example/a b",
                                 "https://op.example/a\r\nX: y", "https://op.example/\x7f"])
def test_endpoint_urls_with_fragments_or_control_characters_are_refused(url: str) -> None:
    from sso_middleware._config.urls import check_endpoint_url

    with pytest.raises(ConfigError):
        check_endpoint_url("authorization_endpoint", url, allow_insecure_http=False)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, "__Host-sso_session", id="https-host-only"),
        pytest.param({"cookie_domain": "example.com"}, "sso_session", id="domain-cookie"),
        pytest.param({"cookie_name": "mine"}, "mine", id="explicit"),
    ],
)
def test_session_cookie_name_defaults_to_a_host_prefixed_cookie(overrides: dict[str, Any], expected: str) -> None:
    config = SSOConfig(issuer="https://op.example/", client_id="c", client_secret="s", base_url="https://app.example",
                       session_secret="x" * 32, **overrides)
    assert config.session_cookie_name == expected


def test_host_prefixed_cookie_names_need_https_and_no_domain() -> None:
    base = {"issuer": "https://op.example/", "client_id": "c", "client_secret": "s", "session_secret": "x" * 32}
    with pytest.raises(ConfigError, match="cookie_name"):
        SSOConfig(**base, base_url="https://app.example", cookie_name="__Host-x", cookie_domain="app.example")
    with pytest.raises(ConfigError, match="cookie_name"):
        SSOConfig(**{**base, "issuer": "http://127.0.0.1:1/"}, base_url="http://127.0.0.1:2",
                  allow_insecure_http=True, cookie_name="__Host-x")
    assert SSOConfig(**{**base, "issuer": "http://127.0.0.1:1/"}, base_url="http://127.0.0.1:2",
                     allow_insecure_http=True).session_cookie_name == "sso_session"


# -- session stores and back-channel logout -------------------------------------------


def middleware_refused(setting: str, **changes: Any) -> ConfigError:
    """Refused when the middleware is built (the store's client parses the URL), naming the setting."""
    with pytest.raises(ConfigError) as caught:
        SSOMiddleware(legacy_app, **{**VALID, **changes})
    assert caught.value.setting == setting, caught.value
    return caught.value


def test_store_settings_defaults() -> None:
    config = build()
    assert config.session_type == "file"
    assert config.session_url == ""
    assert config.session_environ_key == "beaker.session"
    assert config.session_store_timeout == 2.0
    assert config.backchannel_logout_path == "/auth/backchannel-logout"


@pytest.mark.parametrize(
    ("session_type", "session_url"),
    [
        pytest.param("file", "", id="file"),
        pytest.param("cookie", "", id="cookie"),
        pytest.param("environ", "", id="environ"),
        pytest.param("ext:redis", "redis://127.0.0.1:6379/0", id="redis"),
        pytest.param("ext:redis", "redis://:password@cache.example:6380/2", id="redis-password"),
        pytest.param("ext:redis", "rediss://cache.example:6380/0", id="rediss"),
        pytest.param("ext:redis", "unix:///run/redis/redis.sock", id="redis-unix"),
        pytest.param("ext:memcached", "127.0.0.1:11211", id="memcached"),
        pytest.param("ext:memcached", "127.0.0.1:11211;10.0.0.2:11211", id="memcached-two"),
        pytest.param("ext:memcached", "cache.example", id="memcached-default-port"),
        pytest.param("ext:memcached", "inet6:[::1]:11211", id="memcached-ipv6"),
    ],
)
def test_session_stores_accepted(session_type: str, session_url: str, tmp_path: Any) -> None:
    config = build(session_type=session_type, session_url=session_url)
    assert (config.session_type, config.session_url) == (session_type, session_url)
    # The middleware builds too (clients are created without connecting anywhere).
    SSOMiddleware(legacy_app, config, session_data_dir=str(tmp_path / "sessions"))


@pytest.mark.parametrize(
    "session_type",
    ["memory", "redis", "memcached", "ext:database", "ext:mongodb", "FILE", "Cookie", "", "cookie "],
)
def test_unknown_session_types_are_refused(session_type: str) -> None:
    error = refused("session_type", session_type=session_type)
    assert "ext:redis" in str(error)  # the message lists the choices


@pytest.mark.parametrize(
    "session_url",
    [
        pytest.param("", id="empty"),
        pytest.param("127.0.0.1:6379", id="no-scheme"),
        pytest.param("http://127.0.0.1:6379", id="http"),
        pytest.param("redis:/127.0.0.1", id="one-slash"),
        pytest.param("memcached://127.0.0.1:11211", id="other-scheme"),
    ],
)
def test_bad_redis_urls_are_refused(session_url: str) -> None:
    refused("session_url", session_type="ext:redis", session_url=session_url)


@pytest.mark.parametrize(
    "session_url",
    [
        pytest.param("", id="empty"),
        pytest.param("127.0.0.1:11211,10.0.0.2:11211", id="comma"),
        pytest.param("127.0.0.1:11211;", id="trailing-separator"),
        pytest.param("127.0.0.1 11211", id="space"),
        pytest.param("redis://127.0.0.1:6379", id="redis-url"),
        pytest.param("memcached://127.0.0.1:11211", id="scheme"),
        pytest.param("unix:/tmp/memcached.sock", id="unix-path"),
    ],
)
def test_bad_memcached_server_lists_are_refused(session_url: str) -> None:
    refused("session_url", session_type="ext:memcached", session_url=session_url)


@pytest.mark.parametrize(
    ("session_type", "session_url"),
    [
        pytest.param("ext:redis", "redis://127.0.0.1:notaport/0", id="redis-port-not-a-number"),
        pytest.param("ext:redis", "redis://127.0.0.1:99999/0", id="redis-port-out-of-range"),
        pytest.param("ext:redis", "redis://127.0.0.1:6379/0?socket_timeout=soon", id="redis-bad-option"),
        pytest.param("ext:memcached", "127.0.0.1:abc", id="memcached-port-not-a-number"),
        pytest.param("ext:memcached", "127.0.0.1:99999", id="memcached-port-out-of-range"),
        pytest.param("ext:memcached", "127.0.0.1:1:2", id="memcached-two-ports"),
        pytest.param("ext:memcached", "[::1]:11211", id="memcached-ipv6-without-inet6"),
    ],
)
def test_urls_the_client_cannot_use_are_refused_when_the_middleware_is_built(session_type: str,
                                                                             session_url: str) -> None:
    middleware_refused("session_url", session_type=session_type, session_url=session_url)


def test_a_refused_redis_url_is_not_echoed_with_its_password() -> None:
    error = middleware_refused("session_url", session_type="ext:redis",
                               session_url="redis://:hunter2-password@127.0.0.1:notaport/0")
    assert "hunter2" not in str(error)


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), 60.5, 3600])
def test_session_store_timeout_bounds(value: float) -> None:
    refused("session_store_timeout", session_store_timeout=value)


@pytest.mark.parametrize("value", [0.05, 0.5, 2, 60])
def test_session_store_timeout_accepted(value: float) -> None:
    assert build(session_store_timeout=value).session_store_timeout == value


def test_session_store_timeout_type_and_strings() -> None:
    refused("session_store_timeout", session_store_timeout="2")
    refused("session_store_timeout", session_store_timeout=True)
    assert SSOConfig.from_settings({**VALID, "session_store_timeout": " 0.25 "}).session_store_timeout == 0.25
    with pytest.raises(ConfigError) as caught:
        SSOConfig.from_settings({**VALID, "session_store_timeout": "soon"})
    assert caught.value.setting == "session_store_timeout"


def test_environ_store_needs_an_environ_key() -> None:
    refused("session_environ_key", session_type="environ", session_environ_key="")
    assert build(session_type="environ", session_environ_key="myapp.session").session_environ_key == "myapp.session"
    assert build(session_type="file", session_environ_key="").session_type == "file"  # only environ needs it


def test_memcached_idle_timeout_is_at_most_30_days() -> None:
    memcached = {"session_type": "ext:memcached", "session_url": "127.0.0.1:11211"}
    refused("session_idle_timeout", **memcached, session_idle_timeout=30 * 86400 + 1)
    assert build(**memcached, session_idle_timeout=30 * 86400).session_idle_timeout == 30 * 86400
    assert build(session_idle_timeout=60 * 86400).session_idle_timeout == 60 * 86400  # other stores: no limit


def test_backchannel_logout_path_may_be_empty_to_disable_the_route(tmp_path: Any) -> None:
    config = build(backchannel_logout_path="")
    assert config.backchannel_logout_path == ""
    middleware = SSOMiddleware(legacy_app, config, session_data_dir=str(tmp_path / "sessions"))
    assert "" not in middleware.routes
    assert "/auth/backchannel-logout" not in middleware.routes
    assert SSOConfig.from_settings({**VALID, "backchannel_logout_path": ""}).backchannel_logout_path == ""
    assert SSOConfig.from_env({f"SSO_{key.upper()}": value for key, value in VALID.items()}
                              | {"SSO_BACKCHANNEL_LOGOUT_PATH": ""}).backchannel_logout_path == ""


def test_backchannel_logout_path_is_routed(tmp_path: Any) -> None:
    middleware = SSOMiddleware(legacy_app, build(backchannel_logout_path="/oidc/bc"),
                               session_data_dir=str(tmp_path / "sessions"))
    assert middleware.routes["/oidc/bc"] == middleware.handlers.backchannel_logout


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"backchannel_logout_path": "/auth/logout"}, id="same-as-logout"),
        pytest.param({"backchannel_logout_path": "/auth/callback"}, id="same-as-callback"),
        pytest.param({"backchannel_logout_path": "/auth/failure"}, id="same-as-failure"),
        pytest.param({"backchannel_logout_path": "/bc", "sso_path": "/bc"}, id="same-as-sso"),
    ],
)
def test_backchannel_logout_path_duplicating_another_route_is_refused(changes: dict[str, str]) -> None:
    error = refused("backchannel_logout_path", **changes)
    assert "same path as" in str(error)


@pytest.mark.parametrize("path", ["auth/backchannel", "//evil.example/bc", "/a b", "/bc?x=1", "/bc#x", " "])
def test_malformed_backchannel_logout_paths_are_refused(path: str) -> None:
    refused("backchannel_logout_path", backchannel_logout_path=path)


def test_store_settings_from_the_environment() -> None:
    environ = {f"SSO_{key.upper()}": value for key, value in VALID.items()}
    environ.update({"SSO_SESSION_TYPE": "ext:redis", "SSO_SESSION_URL": "redis://127.0.0.1:6379/1",
                    "SSO_SESSION_STORE_TIMEOUT": "1.5", "SSO_BACKCHANNEL_LOGOUT_PATH": "/oidc/backchannel"})
    config = SSOConfig.from_env(environ)
    assert (config.session_type, config.session_url, config.session_store_timeout, config.backchannel_logout_path) == (
        "ext:redis", "redis://127.0.0.1:6379/1", 1.5, "/oidc/backchannel")


# -- access_rules ---------------------------------------------------------------------


RULES_TEXT = """
/admin    claim https://example.com/roles includes admin,owner
/reports  claim email_verified equals true
/beta     claim org_id present
/billing  max_age 300
/vault    acr_values urn:dev:loa:mfa,urn:dev:loa:hwk
"""

#: RULES_TEXT parsed: longest path first, then by path.
RULES = (
    AccessRule(path="/billing", max_age=300),
    AccessRule(path="/reports", conditions=(Condition("email_verified", "equals", ("true",)),)),
    AccessRule(path="/admin", conditions=(Condition("https://example.com/roles", "includes", ("admin", "owner")),)),
    AccessRule(path="/vault", acr_values=("urn:dev:loa:mfa", "urn:dev:loa:hwk")),
    AccessRule(path="/beta", conditions=(Condition("org_id", "present"),)),
)

RULE_LINES = [line.strip() for line in RULES_TEXT.strip().splitlines()]

RULE_MAPPINGS = [
    {"path": "/admin", "claim": "https://example.com/roles", "includes": ["admin", "owner"]},
    {"path": "/reports", "claim": "email_verified", "equals": True},
    {"path": "/beta", "claim": "org_id", "present": True},
    {"path": "/billing", "max_age": 300},
    {"path": "/vault", "acr_values": ["urn:dev:loa:mfa", "urn:dev:loa:hwk"]},
]


def test_access_rules_default_to_none() -> None:
    assert build().access_rules == ()


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(RULES_TEXT, id="text"),
        pytest.param("; ".join(RULE_LINES), id="semicolons"),
        pytest.param("# who may do what\n" + RULES_TEXT + "\n# the end", id="text-with-comments"),
        pytest.param(RULE_LINES, id="list-of-lines"),
        pytest.param(tuple(RULE_LINES), id="tuple-of-lines"),
        pytest.param(RULE_MAPPINGS, id="mappings"),
        pytest.param(list(RULES), id="access-rule-objects"),
        pytest.param(RULES, id="parsed-tuple"),
        pytest.param([RULE_LINES[0], RULE_MAPPINGS[1], RULES[4], "; ".join(RULE_LINES[3:])], id="mixed"),
    ],
)
def test_access_rules_from_every_python_form(source: Any) -> None:
    config = build(access_rules=source)
    assert config.access_rules == RULES
    assert isinstance(config.access_rules, tuple)
    assert hash(config.access_rules)  # immutable all the way down


def test_access_rules_from_settings_ini_style() -> None:
    """A PasteDeploy ``[filter:sso]`` value: indented continuation lines, comments, blank lines."""
    value = "\n    # admins only\n    /admin    claim https://example.com/roles includes admin,owner\n\n" \
            "    /reports  claim email_verified equals true\n    /beta claim org_id present ; /billing max_age 300\n" \
            "    /vault    acr_values urn:dev:loa:mfa,urn:dev:loa:hwk\n"
    assert SSOConfig.from_settings({**STRINGS, "access_rules": value}).access_rules == RULES
    assert SSOConfig.from_settings({**STRINGS, "access_rules": RULE_MAPPINGS}).access_rules == RULES  # Python values
    assert SSOConfig.from_settings({**STRINGS, "access_rules": ""}).access_rules == ()


def test_access_rules_from_env() -> None:
    assert SSOConfig.from_env(env(SSO_ACCESS_RULES="; ".join(RULE_LINES))).access_rules == RULES
    assert SSOConfig.from_env(env(SSO_ACCESS_RULES=RULES_TEXT)).access_rules == RULES  # new lines work too
    assert SSOConfig.from_env(env(SSO_ACCESS_RULES="")).access_rules == ()


def test_access_rules_through_the_middleware_and_replace(tmp_path: Any) -> None:
    middleware = SSOMiddleware(legacy_app, **VALID, access_rules=RULES_TEXT, session_data_dir=str(tmp_path))
    assert middleware.config.access_rules == RULES
    config = build(access_rules=RULES_TEXT)
    assert config.replace(clock_skew=5).access_rules == RULES  # parsed rules survive a replace
    assert config.replace(access_rules="/x max_age 1").access_rules == (AccessRule(path="/x", max_age=1),)
    assert config.replace(access_rules=()).access_rules == ()


def test_access_rules_for_one_path_merge() -> None:
    config = build(access_rules="/a/ claim x present; /a max_age 600; //a/./ max_age 60; /a claim x present")
    assert config.access_rules == (AccessRule(path="/a", conditions=(Condition("x", "present"),), max_age=60),)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("/admin claim roles includes admin\n/x frobnicate", ["line 2", "'/x frobnicate'", "frobnicate"],
                     id="text-unknown-keyword"),
        pytest.param("/a max_age 3; /b max_age soon", ["line 1", "'/b max_age soon'", "whole number"],
                     id="semicolon-bad-seconds"),
        pytest.param("/a max_age 3\n\n# c\n/b claim roles", ["line 4", "'/b claim roles'", "operator"],
                     id="line-numbers-count-blank-and-comment-lines"),
        pytest.param("admin claim x present", ["line 1", "bad path"], id="relative-path"),
        pytest.param("/a claim x equals", ["line 1", "missing value"], id="equals-without-value"),
        pytest.param("/a claim x equals a b", ["line 1", "'b'"], id="equals-two-values"),
        pytest.param("/a claim x present yes", ["line 1", "present takes no value"], id="present-with-value"),
        pytest.param("/a claim x matches y", ["line 1", "unknown operator 'matches'"], id="unknown-operator"),
        pytest.param("/a", ["line 1", "nothing required"], id="path-alone"),
        pytest.param("/a max_age -5", ["line 1", "negative"], id="negative-max-age"),
        pytest.param("/a acr_values x; /a acr_values y", ["line 1", "already given"], id="acr-twice"),
        pytest.param("/v acr_values a; /v/x acr_values b", ["'/v/x acr_values b'", "no value in common"],
                     id="acr-nothing-in-common"),
        pytest.param(["/a max_age 3", "/b max_age -1"], ["item 2", "'/b max_age -1'", "negative"],
                     id="list-item"),
        pytest.param([{"path": "/a", "claim": "roles"}], ["item 1", "exactly one of"], id="mapping-no-operator"),
        pytest.param([{"path": "/a", "max_age": "300"}], ["item 1", "whole number"], id="mapping-max-age-text"),
        pytest.param([{"path": "/a", "roles": ["x"]}], ["item 1", "unknown key"], id="mapping-unknown-key"),
        pytest.param([AccessRule(path="admin", max_age=3)], ["item 1", "bad path"], id="rule-object-bad-path"),
        pytest.param([AccessRule(path="/a")], ["item 1", "nothing required"], id="rule-object-empty"),
        pytest.param([42], ["item 1", "int"], id="list-of-int"),
        pytest.param(42, ["text or a list", "int"], id="int"),
        pytest.param(b"/a max_age 3", ["text or a list", "bytes"], id="bytes"),
        pytest.param(None, ["text or a list"], id="none"),
    ],
)
def test_bad_access_rules_name_the_setting_and_the_line(source: Any, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        SSOConfig(**VALID, access_rules=source)
    assert caught.value.setting == "access_rules"
    message = str(caught.value)
    assert message.startswith("sso_middleware setting 'access_rules': ")
    for part in expected:
        assert part in message, (part, message)


def test_bad_access_rules_from_settings_and_env_name_the_setting_and_line(tmp_path: Any) -> None:
    value = "\n    /a max_age 1\n    /b max_age 2\n    /c bogus\n"
    with pytest.raises(ConfigError) as caught:
        SSOConfig.from_settings({**STRINGS, "access_rules": value})
    assert caught.value.setting == "access_rules"
    assert "line 3 '/c bogus'" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        SSOConfig.from_env(env(SSO_ACCESS_RULES="/a max_age 1; /b max_age x"))
    assert caught.value.setting == "access_rules"
    assert "'/b max_age x'" in str(caught.value)
    with pytest.raises(ConfigError) as caught:  # at construction, never on the first request
        SSOMiddleware(legacy_app, **VALID, access_rules="/x nope", session_data_dir=str(tmp_path))
    assert caught.value.setting == "access_rules"


# -- keep_access_token, refresh_margin, refresh_failure -----------------------------------


def test_token_settings_defaults() -> None:
    config = build()
    assert (config.keep_access_token, config.refresh_margin, config.refresh_failure) == (False, 60, "sign_out")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"keep_access_token": True}, ("keep_access_token", True), id="keep-true"),
        pytest.param({"keep_access_token": False}, ("keep_access_token", False), id="keep-false"),
        pytest.param({"refresh_margin": 0}, ("refresh_margin", 0), id="margin-zero"),
        pytest.param({"refresh_margin": 3600}, ("refresh_margin", 3600), id="margin-hour"),
        pytest.param({"refresh_failure": "sign_out"}, ("refresh_failure", "sign_out"), id="sign-out"),
        pytest.param({"refresh_failure": "keep_session"}, ("refresh_failure", "keep_session"), id="keep-session"),
    ],
)
def test_token_settings_accepted(changes: dict[str, Any], expected: tuple[str, Any]) -> None:
    name, value = expected
    assert getattr(build(**changes), name) == value
    text = {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in changes.items()}
    assert getattr(SSOConfig.from_settings({**STRINGS, **text}), name) == value
    assert getattr(SSOConfig.from_env(env(**{f"SSO_{key.upper()}": value for key, value in text.items()})),
                   name) == value


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        pytest.param("keep_access_token", "yes", id="keep-text"),
        pytest.param("keep_access_token", 1, id="keep-int"),
        pytest.param("refresh_margin", -1, id="margin-negative"),
        pytest.param("refresh_margin", 1.5, id="margin-float"),
        pytest.param("refresh_margin", True, id="margin-bool"),
        pytest.param("refresh_margin", "60", id="margin-text"),
        pytest.param("refresh_failure", "logout", id="failure-unknown"),
        pytest.param("refresh_failure", "sign-out", id="failure-dash"),
        pytest.param("refresh_failure", "SIGN_OUT", id="failure-upper-case"),
        pytest.param("refresh_failure", "", id="failure-empty"),
        pytest.param("refresh_failure", None, id="failure-none"),
    ],
)
def test_bad_token_settings_are_refused_by_name(setting: str, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        SSOConfig(**VALID, **{setting: value})
    assert caught.value.setting == setting


@pytest.mark.parametrize(
    ("setting", "text"),
    [
        pytest.param("keep_access_token", "maybe", id="keep-maybe"),
        pytest.param("keep_access_token", "2", id="keep-2"),
        pytest.param("refresh_margin", "-5", id="margin-negative"),
        pytest.param("refresh_margin", "1.5", id="margin-float"),
        pytest.param("refresh_margin", "soon", id="margin-word"),
        pytest.param("refresh_margin", "", id="margin-empty"),
        pytest.param("refresh_failure", "keep", id="failure-unknown"),
        pytest.param("refresh_failure", "", id="failure-empty"),
    ],
)
def test_bad_token_settings_from_settings_and_env_are_named(setting: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SSOConfig.from_settings({**STRINGS, setting: text})
    assert caught.value.setting == setting
    with pytest.raises(ConfigError) as caught:
        SSOConfig.from_env(env(**{f"SSO_{setting.upper()}": text}))
    assert caught.value.setting == setting


def test_token_settings_strings_are_stripped() -> None:
    config = SSOConfig.from_settings({**STRINGS, "keep_access_token": " on ", "refresh_margin": " 30 ",
                                      "refresh_failure": " keep_session\n"})
    assert (config.keep_access_token, config.refresh_margin, config.refresh_failure) == (True, 30, "keep_session")


# -- issue 13 item 14: protected_paths in canonical form; item 3: max_request_body ------------------------


@pytest.mark.parametrize(("given", "stored"), [
    pytest.param("/caf%C3%A9", "/caf%C3%A9", id="encoded"),
    pytest.param("/caf%c3%a9/", "/caf%C3%A9", id="lower-case-trailing-slash"),
    pytest.param("/café", "/caf%C3%A9", id="non-ascii-literal"),
    pytest.param("//admin/./x/..", "/admin", id="dots-and-slashes"),
])
def test_protected_paths_are_kept_in_one_canonical_form(given: str, stored: str) -> None:
    config = build(protected_paths=[given, "/admin"])
    assert config.protected_paths[0] == stored
    again = config.replace(clock_skew=5)  # validated again: a canonical prefix stays as it is
    assert again.protected_paths == config.protected_paths
    assert SSOConfig.from_env({**{f"SSO_{k.upper()}": v for k, v in VALID.items()},
                               "SSO_PROTECTED_PATHS": f"{given} /admin"}).protected_paths == config.protected_paths


@pytest.mark.parametrize(("given", "problem"), [
    pytest.param("/a%2Fb", "encoded '/'", id="encoded-slash"),
    pytest.param("/a/%2E%2e", "dot segment", id="encoded-dot-dot"),
    pytest.param("/a%", "malformed", id="lone-percent"),
    pytest.param("/a%C", "malformed", id="short-escape"),
    pytest.param("/a%1F", "control", id="encoded-control"),
    pytest.param("admin", "must start with '/'", id="relative"),
])
def test_protected_paths_that_could_guard_nothing_are_refused(given: str, problem: str) -> None:
    assert problem in str(refused("protected_paths", protected_paths=[given]))


def test_access_rules_survive_being_validated_again() -> None:
    config = build(access_rules="/café claim roles present")
    again = config.replace(clock_skew=5)
    assert again.access_rules == config.access_rules
    assert [rule.path_info for rule in again.access_rules] == ["/caf\xc3\xa9"]


def test_max_request_body_defaults_to_64_kib() -> None:
    assert build().max_request_body == 65536
    assert build(max_request_body=1024).max_request_body == 1024
    assert SSOConfig.from_settings({**VALID, "max_request_body": " 200000 "}).max_request_body == 200000


@pytest.mark.parametrize("value", [0, -1, 1023, 16 * 1024 * 1024 + 1, True, 1.5, "64k"])
def test_max_request_body_must_be_a_sensible_size(value: Any) -> None:
    refused("max_request_body", max_request_body=value)
    if isinstance(value, str):
        with pytest.raises(ConfigError) as caught:
            SSOConfig.from_settings({**VALID, "max_request_body": value})
        assert caught.value.setting == "max_request_body"


@pytest.mark.parametrize("setting", ["sso_path", "login_path", "callback_path", "logout_path", "failure_path",
                                     "backchannel_logout_path", "frontchannel_logout_path", "session_endpoint_path",
                                     "metrics_path", "health_path"])
def test_route_paths_with_percent_escapes_are_refused(setting: str) -> None:
    """Routes are looked up by PATH_INFO, which servers decode: /auth/log%69n could never be reached."""
    assert "percent-escapes" in str(refused(setting, **{setting: "/auth/log%69n"}))


# -- outgoing HTTP: http_proxy, ca_bundle, tls_client_cert/key -------------------------


@pytest.fixture(scope="module")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from ..pki import CertificateAuthority

    folder = tmp_path_factory.mktemp("config-pki")
    ca = CertificateAuthority(folder / "ca")
    return ca, ca.issue("client", client=True), CertificateAuthority(folder / "other", "other CA")


@pytest.mark.parametrize("proxy", ["http://proxy.example:3128", "https://proxy.example:8443/",
                                   "http://user:p%40ss@10.0.0.1:8080", "http://[::1]:3128"])
def test_http_proxy_accepts_http_and_https_proxy_urls(proxy: str) -> None:
    assert build(http_proxy=proxy).http_proxy == proxy


@pytest.mark.parametrize("proxy", ["proxy.example:3128", "socks5://proxy.example:1080", "http://proxy.example",
                                   "http://proxy.example:3128/path", "http://proxy.example:3128?x=1",
                                   "http://proxy.example:99999", "http://pro xy:3128", "http://:3128"])
def test_http_proxy_refuses_what_is_not_a_proxy_url(proxy: str) -> None:
    refused("http_proxy", http_proxy=proxy)


def test_the_proxy_password_is_not_in_the_repr_nor_in_errors() -> None:
    config = build(http_proxy="http://user:hunter2-proxy@proxy.example:3128")
    assert "hunter2-proxy" not in repr(config)
    assert "hunter2-proxy" not in str(refused("http_proxy", http_proxy="http://user:hunter2-proxy@proxy.example"))


def test_http_trust_env_is_a_boolean_setting() -> None:
    assert SSOConfig.from_settings({**VALID, "http_trust_env": "true"}).http_trust_env is True
    assert build().http_trust_env is False


def test_ca_bundle_pem_file_and_hashed_folder(test_pki: Any, tmp_path: Any) -> None:
    ca, _, _ = test_pki
    assert build(ca_bundle=str(ca.cert)).ca_bundle == str(ca.cert)
    folder = ca.hashed_folder(tmp_path / "hashed")
    assert build(ca_bundle=str(folder)).ca_bundle == str(folder)


def test_ca_bundle_is_checked_when_the_config_is_built(test_pki: Any, tmp_path: Any) -> None:
    ca, client, _ = test_pki
    assert "cannot be read" in refused("ca_bundle", ca_bundle=str(tmp_path / "missing.pem")).message
    not_pem = tmp_path / "bundle.der"
    not_pem.write_bytes(b"\x30\x82\x01\x00garbage")
    assert "not a PEM file" in refused("ca_bundle", ca_bundle=str(not_pem)).message
    assert "no PEM certificate" in refused("ca_bundle", ca_bundle=str(client.key)).message  # a key, no certificate
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    refused("ca_bundle", ca_bundle=str(broken))
    unhashed = tmp_path / "unhashed"
    unhashed.mkdir()
    (unhashed / "ca.pem").write_bytes(ca.cert.read_bytes())
    assert "c_rehash" in refused("ca_bundle", ca_bundle=str(unhashed)).message


def test_tls_client_cert_and_key_go_together_and_must_match(test_pki: Any, tmp_path: Any) -> None:
    _, client, other = test_pki
    config = build(tls_client_cert=str(client.cert), tls_client_key=str(client.key))
    assert config.tls_client_cert == str(client.cert)
    refused("tls_client_key", tls_client_cert=str(client.cert))
    refused("tls_client_cert", tls_client_key=str(client.key))
    stranger = other.issue("stranger", client=True)
    assert "does not match" in refused("tls_client_key", tls_client_cert=str(client.cert),
                                       tls_client_key=str(stranger.key)).message
    refused("tls_client_cert", tls_client_cert=str(client.key), tls_client_key=str(client.key))
    refused("tls_client_cert", tls_client_cert=str(tmp_path / "missing.crt"), tls_client_key=str(client.key))
    encrypted = tmp_path / "encrypted.key"
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(client.key.read_bytes(), None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"passphrase")))
    assert "encrypted" in refused("tls_client_key", tls_client_cert=str(client.cert),
                                    tls_client_key=str(encrypted)).message


# -- response_mode; several base_url origins (issue 14 parts 6 and 7) ---------------------------


def test_response_mode_is_query_or_form_post() -> None:
    assert build().response_mode == "query"
    assert build(response_mode="form_post").response_mode == "form_post"
    assert SSOConfig.from_settings({**VALID, "response_mode": "form_post"}).response_mode == "form_post"
    for value in ("fragment", "FORM_POST", "form_post.jwt", ""):
        assert "query, form_post" in str(refused("response_mode", response_mode=value))


def test_several_base_urls_are_parsed_in_order() -> None:
    config = SSOConfig.from_settings({**VALID, "base_url": "https://App.Example/app,\n https://intranet.corp/app"})
    assert config.base_urls == ("https://App.Example/app", "https://intranet.corp/app")
    assert config.primary_url == "https://App.Example/app"
    assert config.redirect_uri == "https://App.Example/app/auth/callback"
    assert config.redirect_uris == ("https://App.Example/app/auth/callback", "https://intranet.corp/app/auth/callback")
    assert config.origins == ("https://app.example", "https://intranet.corp")
    assert config.cookie_path == "/app" and config.secure_cookies
    assert config.replace(clock_skew=5).base_urls == config.base_urls  # kept through replace()
    single = build()
    assert single.base_urls == (BASE_URL,) and single.base_url == BASE_URL


@pytest.mark.parametrize(("base_url", "fragment"), [
    ("https://a.example/app https://b.example", "share one path prefix"),
    ("https://a.example https://b.example/app", "share one path prefix"),
    ("https://a.example http://127.0.0.1:5000", "must be https, or all http"),
    ("https://a.example https://A.example:443", "the same origin twice"),
    ("https://a.example https://b.example/", "without a trailing slash"),
    ("https://a.example http://evil.example", "only on a loopback host"),
    ("https://a.example https://b.example?x=1", "without a trailing slash"),
    (" , ", "required"),
])
def test_bad_base_url_lists_are_refused(base_url: str, fragment: str) -> None:
    error = refused("base_url", base_url=base_url, allow_insecure_http=True)
    assert fragment in str(error)


@pytest.mark.parametrize(("environ", "chosen"), [
    ({"wsgi.url_scheme": "https", "HTTP_HOST": "b.example"}, "https://b.example/app"),
    ({"wsgi.url_scheme": "https", "HTTP_HOST": "B.EXAMPLE:443"}, "https://b.example/app"),
    ({"wsgi.url_scheme": "https", "HTTP_HOST": "a.example"}, "https://a.example/app"),
    ({"wsgi.url_scheme": "https", "SERVER_NAME": "b.example", "SERVER_PORT": "443"}, "https://b.example/app"),
    # unlisted, forged or malformed: the first, never the Host itself
    ({"wsgi.url_scheme": "https", "HTTP_HOST": "evil.example"}, "https://a.example/app"),
    ({"wsgi.url_scheme": "http", "HTTP_HOST": "b.example"}, "https://a.example/app"),
    ({"wsgi.url_scheme": "https", "HTTP_HOST": "b.example:8443"}, "https://a.example/app"),
    ({"wsgi.url_scheme": "https", "HTTP_HOST": "evil.example/b.example"}, "https://a.example/app"),
    ({"wsgi.url_scheme": "https", "HTTP_HOST": "evil@b.example"}, "https://a.example/app"),
    ({"wsgi.url_scheme": "https", "HTTP_HOST": "b.example\r\nX: y"}, "https://a.example/app"),
    ({"wsgi.url_scheme": "https", "HTTP_HOST": "b.example:99999"}, "https://a.example/app"),
    ({"wsgi.url_scheme": "https", "HTTP_HOST": "evil.example", "HTTP_X_FORWARDED_HOST": "b.example"},
     "https://a.example/app"),
    ({}, "https://a.example/app"),
])
def test_the_base_url_is_chosen_by_the_request_host(environ: dict[str, str], chosen: str) -> None:
    config = build(base_url="https://a.example/app https://b.example/app")
    assert config.base_url_for(environ) == chosen
    assert config.redirect_uri_for(environ) == chosen + "/auth/callback"


# -- bearer paths: the userinfo audience, step-up rules -----------------------------


def test_bearer_audience_may_not_be_the_providers_userinfo_audience() -> None:
    """Auth0 puts ``<issuer>userinfo`` into the aud of every access token, for any API and any application.

    The doctor already calls this a FAIL; the middleware itself starts with it and would then
    accept another API's tokens.  It should be a ConfigError like ``bearer_audience == client_id``.
    """
    refused("bearer_audience", bearer_paths="/api", bearer_audience=ISSUER.rstrip("/") + "/userinfo")
    refused("bearer_audience", bearer_paths="/api", bearer_audience=ISSUER.rstrip("/") + "/userinfo/")
    assert build(bearer_paths="/api", bearer_audience=ISSUER.rstrip("/") + "/userinfo-api").bearer_paths


@pytest.mark.parametrize("rule", ["/api/admin max_age 300", "/ max_age 3600", "/api acr_values urn:mfa",
                                  "/api/admin/x acr_values urn:mfa"])
def test_step_up_access_rules_on_bearer_paths_are_refused(rule: str) -> None:
    """A token has no sign-in to repeat: max_age/acr_values covering bearer_paths could never be met by one."""
    error = refused("access_rules", bearer_paths="/api", bearer_audience="https://api.example", access_rules=rule)
    assert "bearer_rules" in str(error)


def test_claim_access_rules_and_step_up_elsewhere_go_with_bearer_paths() -> None:
    config = build(bearer_paths="/api", bearer_audience="https://api.example",
                   access_rules="/api/admin claim roles includes admin; /billing max_age 300; /apiary max_age 60")
    assert [rule.path for rule in config.access_rules] == ["/api/admin", "/billing", "/apiary"]
