"""Extra authorization parameters and Auth0 Organizations (:mod:`sso_middleware._policy.authorize_params`).

Unit tests of the rules, then the routes in process (``webtest`` around the
middleware, the provider faked by :mod:`tests.fakes`).
"""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import webtest
from webob.multidict import MultiDict

from sso_middleware import SSOConfig, get_organization
from sso_middleware._policy.authorize_params import (
    MAX_REQUEST_BYTES,
    MAX_VALUE,
    PROTOCOL_PARAMS,
    RequestParams,
    check_param,
    checked_organization,
    for_attempt,
    from_request,
    merged_scope,
    organization_matches,
    parse_fixed,
)
from sso_middleware.errors import AuthFailure, ConfigError, describe

from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider

CONNECTION = "Username-Password-Authentication"
AUTHORIZE = ISSUER.rstrip("/") + "/authorize"
BASE = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "base_url": BASE_URL,
        "session_secret": "s" * 40}


def config(**settings: Any) -> SSOConfig:
    return SSOConfig(**{**BASE, **settings})


def hook_raising(environ: dict[str, Any]) -> dict[str, str]:
    raise RuntimeError("tenant database down")


def hook_by_host(environ: dict[str, Any]) -> dict[str, str]:
    """A per-request hook: the tenant's organization and language from the request."""
    return {"organization": "org_acme", "ui_locales": "de"} if environ.get("HTTP_X_TENANT") == "acme" else {}


# -- the rules -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PROTOCOL_PARAMS - {"scope"}))
def test_protocol_parameters_are_refused_everywhere_at_build(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(forward_params=("login_hint", name))
    assert caught.value.setting == "forward_params"
    with pytest.raises(ConfigError) as caught:
        config(authorize_params={name: "x"})
    assert caught.value.setting == "authorize_params"


@pytest.mark.parametrize("name", ["connection", "audience", "max_age", "acr_values", "organization", "invitation"])
def test_parameters_the_middleware_sets_from_settings_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="use "):
        config(forward_params=(name,))
    with pytest.raises(ConfigError, match="use "):
        config(authorize_params={name: "x"})


def test_scope_is_forwardable_only_when_listed_and_never_fixed() -> None:
    assert "scope" in config(forward_params=("scope",)).forward_params
    with pytest.raises(ConfigError, match="protocol parameter"):
        config(authorize_params={"scope": "offline_access"})
    assert merged_scope("openid profile", "offline_access openid") == "openid profile offline_access"
    assert merged_scope("openid profile", None) == "openid profile"


@pytest.mark.parametrize("value", ["", "a\nb", "a\x00", "a\u200b", " padded", "x" * (MAX_VALUE + 1), "\x7f"])
def test_values_must_be_printable_and_bounded(value: str) -> None:
    assert check_param("login_hint", value) is not None


@pytest.mark.parametrize("prompt", ["none", "login none", "bogus", "LOGIN"])
def test_prompt_only_from_the_safe_set(prompt: str) -> None:
    assert check_param("prompt", prompt) is not None
    with pytest.raises(ConfigError):
        config(authorize_params={"prompt": prompt})


def test_safe_prompts_and_unicode_values_pass() -> None:
    assert check_param("prompt", "login consent") is None
    assert check_param("login_hint", "zoë@exämple.com") is None
    assert check_param("ui_locales", "fr-CA en") is None


def test_fixed_params_parse_from_text_and_keep_order() -> None:
    parsed = parse_fixed("ui_locales=fr%20en\n ext-tenant = blue & screen_hint=signup")
    assert parsed == (("ui_locales", "fr en"), ("ext-tenant", "blue"), ("screen_hint", "signup"))
    assert config(authorize_params={"ext-a": "1"}).authorize_params == (("ext-a", "1"),)
    with pytest.raises(ConfigError, match="name=value"):
        parse_fixed("justaname")
    with pytest.raises(ConfigError, match="twice"):
        parse_fixed("a=1&a=2")
    with pytest.raises(ConfigError, match="printable"):
        parse_fixed("a=%0Ainjected")


def test_hook_setting_imports_module_function_or_refuses_at_build() -> None:
    built = SSOConfig.from_settings({**BASE, "authorize_params_hook": "tests.wsgi.test_authorize_params:hook_by_host"})
    assert built.authorize_params_hook is hook_by_host
    for bad in ("tests.wsgi.test_authorize_params:missing", "no_such_module_xyz:f", "not a path", "json:__doc__"):
        with pytest.raises(ConfigError) as caught:
            SSOConfig.from_settings({**BASE, "authorize_params_hook": bad})
        assert caught.value.setting == "authorize_params_hook"


def test_organization_setting_is_checked() -> None:
    assert config(organization="org_abc123").organization == "org_abc123"
    with pytest.raises(ConfigError) as caught:
        config(organization="two words")
    assert caught.value.setting == "organization"


def q(**values: Any) -> MultiDict:
    query = MultiDict()
    for name, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            query.add(name, item)
    return query


def test_from_request_forwards_only_the_allow_list() -> None:
    asked = from_request(q(login_hint="a@example.com", utm_source="mail", prompt="login", state="evil"), {},
                         ("login_hint",), None, "")
    assert asked == RequestParams(params={"login_hint": "a@example.com"})


@pytest.mark.parametrize("query", [
    {"login_hint": "a\r\nb"}, {"login_hint": ["a", "b"]}, {"prompt": "none"}, {"login_hint": "x" * 300},
    {"organization": "has space"}, {"invitation": "inv_1"}, {"organization": ["org_a", "org_b"]},
])
def test_from_request_refuses_bad_values_with_a_400(query: dict[str, Any]) -> None:
    with pytest.raises(AuthFailure) as caught:
        from_request(q(**query), {}, ("login_hint", "prompt"), None, "")
    assert caught.value.code == "invalid_authorize_param"
    assert describe(caught.value.code)[0] == 400


def test_from_request_bounds_the_total_kept_in_the_cookie() -> None:
    names = tuple(f"ext-{n}" for n in range(6))
    with pytest.raises(AuthFailure, match=str(MAX_REQUEST_BYTES)):
        from_request(q(**{name: "y" * 250 for name in names}), {}, names, None, "")


def test_fixed_organization_refuses_another_one_of_the_same_kind() -> None:
    assert from_request(q(organization="org_acme"), {}, (), None, "org_acme").organization == "org_acme"
    assert from_request(q(), {}, (), None, "acme").organization == "acme"
    # An invitation link carries the id; the setting names the organization: the setting is sent and checked.
    assert from_request(q(organization="org_acme", invitation="inv1"), {}, (), None, "acme") == RequestParams(
        params={}, organization="acme", invitation="inv1")
    with pytest.raises(AuthFailure) as caught:
        from_request(q(organization="org_other"), {}, (), None, "org_acme")
    assert caught.value.code == "organization_not_allowed"


def test_hook_output_meets_the_same_rules() -> None:
    asked = from_request(q(), {"HTTP_X_TENANT": "acme"}, (), hook_by_host, "")
    assert asked == RequestParams(params={"ui_locales": "de"}, organization="org_acme")
    for output in ({"state": "x"}, {"prompt": "none"}, {"login_hint": "a\nb"}, {"scope": "admin"}, ["x"],
                   {"organization": 5}):
        with pytest.raises(AuthFailure) as caught:
            from_request(q(), {}, (), lambda environ, out=output: out, "")  # type: ignore[misc]
        assert caught.value.code == "authorize_hook_failed"
    with pytest.raises(AuthFailure) as caught:
        from_request(q(), {}, (), hook_raising, "")
    assert caught.value.code == "authorize_hook_failed"
    assert describe("authorize_hook_failed")[0] == 503


def test_a_silent_attempt_keeps_prompt_none() -> None:
    asked = RequestParams(params={"prompt": "login", "login_hint": "a"}, organization="org_x", invitation="i")
    extra, prompt = for_attempt((("prompt", "consent"), ("ui_locales", "fr")), asked, "none")
    assert prompt == "none"
    assert extra == {"ui_locales": "fr", "login_hint": "a", "organization": "org_x", "invitation": "i"}
    assert for_attempt((("prompt", "consent"),), asked, None)[1] == "login"  # the link's choice wins
    assert for_attempt((("prompt", "consent"),), RequestParams(params={}), None)[1] == "consent"


def test_organization_check_follows_auth0() -> None:
    assert checked_organization("org_Ab1", {"org_id": "org_Ab1"}) == {"id": "org_Ab1", "name": None}
    assert checked_organization("Acme", {"org_id": "org_1", "org_name": "acme"}) == {"id": "org_1", "name": "acme"}
    assert checked_organization(None, {"org_id": "org_1"}) == {"id": "org_1", "name": None}
    assert checked_organization(None, {"sub": "a"}) is None
    for expected, claims in [("org_Ab1", {"org_id": "org_ab1"}), ("org_Ab1", {}), ("org_Ab1", {"org_name": "org_Ab1"}),
                             ("acme", {"org_id": "org_1"}), ("acme", {"org_name": "acme2"}),
                             ("acme", {"org_name": ["acme"]})]:
        with pytest.raises(AuthFailure) as caught:
            checked_organization(expected, claims)
        assert caught.value.code == "invalid_organization"
    assert describe("invalid_organization")[0] == 403
    assert organization_matches("ACME", {"name": "acme"}) and not organization_matches("acme", None)


# -- the routes, in process -------------------------------------------------------


def org_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = json.dumps({"user": environ.get("REMOTE_USER"), "organization": get_organization(environ),
                       "raw": repr(environ.get("sso.organization"))}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def failure(response: webtest.TestResponse) -> str:
    assert response.status_int == 303 and "/auth/failure?" in response.location, response
    return query(response.location)["error"]


Browser = Callable[..., webtest.TestApp]


def test_login_forwards_allowed_params_and_the_fixed_ones(make_browser: Browser) -> None:
    browser = make_browser(authorize_params={"ext-tenant": "blue", "ui_locales": "en"},
                           forward_params=("login_hint", "ui_locales", "prompt"))
    response = browser.get("/auth/login", {"login_hint": "alice@example.com", "ui_locales": "fr",
                                           "prompt": "login", "utm_source": "x", "redirect_uri": "https://evil/"})
    sent = query(response.location)
    assert response.location.startswith(AUTHORIZE + "?")
    assert sent["login_hint"] == "alice@example.com" and sent["ui_locales"] == "fr" and sent["prompt"] == "login"
    assert sent["ext-tenant"] == "blue"
    assert sent["redirect_uri"] == BASE_URL + "/auth/callback" and "utm_source" not in sent


def test_a_bad_forwarded_value_is_a_clear_400(make_browser: Browser) -> None:
    browser = make_browser(forward_params=("login_hint", "prompt"))
    assert failure(browser.get("/auth/login", {"prompt": "none"})) == "invalid_authorize_param"
    assert failure(browser.get("/auth/login", {"login_hint": "a\x01"})) == "invalid_authorize_param"
    page = browser.get("/auth/failure", {"error": "invalid_authorize_param"}, status=400)
    assert "sign-in option" in page.text


def test_a_raising_hook_is_a_failure_page_not_a_500(make_browser: Browser) -> None:
    browser = make_browser(authorize_params_hook=hook_raising)
    assert failure(browser.get("/auth/login")) == "authorize_hook_failed"
    browser.get("/auth/failure", {"error": "authorize_hook_failed"}, status=503)


def test_forwarded_params_survive_the_silent_retry(make_browser: Browser, provider: FakeProvider) -> None:
    browser = make_browser(forward_params=("login_hint", "prompt"), authorize_params_hook=hook_by_host)
    first = browser.get("/auth/sso", {"target_url": "/x", "connection": CONNECTION, "login_hint": "bob@example.com",
                                      "prompt": "login"}, headers={"X-Tenant": "acme"})
    sent = query(first.location)
    assert sent["prompt"] == "none"  # the silent first attempt is never overridden
    assert (sent["login_hint"], sent["ui_locales"], sent["organization"]) == ("bob@example.com", "de", "org_acme")
    retry = browser.get(provider.authorize(first.location, error="login_required"))
    again = query(retry.location)
    assert again["prompt"] == "login" and again["login_hint"] == "bob@example.com"
    assert (again["ui_locales"], again["organization"]) == ("de", "org_acme")
    provider.id_token_overrides = {"org_id": "org_acme"}
    done = browser.get(provider.authorize(retry.location))
    assert done.status_int == 303 and done.location == BASE_URL + "/x"


def test_invitation_link_signs_in_a_member_and_reaches_the_environ(make_browser: Browser,
                                                                  provider: FakeProvider) -> None:
    browser = make_browser(app=org_app)
    start = browser.get("/auth/login", {"invitation": "inv_123", "organization": "org_acme",
                                        "organization_name": "Acme"})
    sent = query(start.location)
    assert (sent["invitation"], sent["organization"]) == ("inv_123", "org_acme")
    assert "organization_name" not in sent  # display text only
    provider.id_token_overrides = {"org_id": "org_acme", "org_name": "acme"}
    browser.get(provider.authorize(start.location))
    seen = browser.get("/page").json
    assert seen["organization"] == {"id": "org_acme", "name": "acme"}


def test_token_without_the_requested_org_is_invalid_organization(make_browser: Browser,
                                                                 provider: FakeProvider) -> None:
    browser = make_browser(app=org_app)
    start = browser.get("/auth/login", {"organization": "org_acme"})
    provider.id_token_overrides = {"org_id": "org_other"}
    assert failure(browser.get(provider.authorize(start.location))) == "invalid_organization"
    assert browser.get("/page").json["user"] is None  # not signed in
    start = browser.get("/auth/login", {"organization": "org_acme"})
    provider.id_token_overrides = {}
    assert failure(browser.get(provider.authorize(start.location))) == "invalid_organization"


def test_fixed_organization_name_is_sent_and_compared_case_insensitively(make_browser: Browser,
                                                                         provider: FakeProvider) -> None:
    browser = make_browser(app=org_app, organization="Acme")
    start = browser.get("/auth/login")
    assert query(start.location)["organization"] == "Acme"
    provider.id_token_overrides = {"org_id": "org_1", "org_name": "acme"}
    browser.get(provider.authorize(start.location))
    assert browser.get("/page").json["organization"] == {"id": "org_1", "name": "acme"}
    assert failure(browser.get("/auth/login", {"organization": "beta"})) == "organization_not_allowed"


def test_an_org_in_the_token_is_kept_when_none_was_asked(make_browser: Browser, provider: FakeProvider) -> None:
    browser = make_browser(app=org_app)
    start = browser.get("/auth/login")
    assert "organization" not in query(start.location)
    provider.id_token_overrides = {"org_id": "org_z"}
    browser.get(provider.authorize(start.location))
    assert browser.get("/page").json["organization"] == {"id": "org_z", "name": None}


def test_sso_with_another_organization_signs_in_again(make_browser: Browser, provider: FakeProvider) -> None:
    browser = make_browser(app=org_app)
    start = browser.get("/auth/sso", {"target_url": "/x", "connection": CONNECTION, "organization": "org_a"})
    provider.id_token_overrides = {"org_id": "org_a"}
    browser.get(provider.authorize(start.location))
    same = browser.get("/auth/sso", {"target_url": "/x", "connection": CONNECTION, "organization": "org_a"})
    assert same.location == BASE_URL + "/x"
    other = browser.get("/auth/sso", {"target_url": "/x", "connection": CONNECTION, "organization": "org_b"})
    assert other.location.startswith(AUTHORIZE + "?")


def test_incoming_sso_organization_is_stripped(make_browser: Browser) -> None:
    browser = make_browser(app=org_app)
    seen = browser.get("/page", extra_environ={"sso.organization": {"id": "org_forged"}}).json
    assert seen["organization"] is None and seen["raw"] == "None"  # removed, not passed on


def test_no_organization_key_for_a_user_without_one(make_browser: Browser, provider: FakeProvider) -> None:
    browser = make_browser(app=org_app)
    start = browser.get("/auth/login")
    browser.get(provider.authorize(start.location))
    seen = browser.get("/page", extra_environ={"sso.organization": {"id": "org_forged"}}).json
    assert seen["user"] == "alice" and seen["raw"] == "None"


def test_sign_in_options_that_overflow_the_cookie_budget_are_a_400(make_browser: Browser) -> None:
    """A target near its longest plus the largest options: refused cleanly, naming the options."""
    browser = make_browser(forward_params=("login_hint", "ui_locales", "screen_hint"))
    target = "/" + '"' * 1300
    ok = browser.get("/auth/login", {"target_url": target})
    assert ok.location.startswith(AUTHORIZE + "?")  # the target alone fits
    big = {"login_hint": "a" * 256, "ui_locales": "b" * 256, "screen_hint": "c" * 256}
    assert failure(browser.get("/auth/login", {"target_url": target, **big})) == "invalid_authorize_param"
    plain = browser.get("/auth/login", {"target_url": "/x", **big})  # the options alone fit
    assert plain.location.startswith(AUTHORIZE + "?")


def test_extra_params_never_replace_the_protocols_own(make_middleware: Callable[..., Any]) -> None:
    """Defence in depth below the rules: the client itself keeps its parameters."""
    client = make_middleware().client
    login = client.new_login_request()
    url = client.authorization_url(login, prompt="none", connection="c1", extra_params={
        "state": "evil", "redirect_uri": "https://evil.example/", "client_id": "other", "prompt": "login",
        "connection": "c2", "scope": "offline_access openid", "ext-a": "1"})
    sent = query(url)
    assert (sent["state"], sent["redirect_uri"], sent["client_id"]) == (login.state, BASE_URL + "/auth/callback",
                                                                        CLIENT_ID)
    assert (sent["prompt"], sent["connection"], sent["ext-a"]) == ("none", "c1", "1")
    assert sent["scope"] == "openid profile email offline_access"


# -- review 14: names that differ only in case -----------------------------------------


@pytest.mark.parametrize("name", ["Prompt", "PROMPT", "State", "Redirect_URI", "Response_Mode", "SCOPE", "Nonce",
                                  "Connection", "Organization", "Max_Age"])
def test_protocol_names_in_another_case_are_refused_too(name: str) -> None:
    """Providers built on ASP.NET (IdentityServer, Entra ID) read query names case-insensitively:
    ``Prompt=none`` or ``Redirect_URI=`` would there be the protocol's own parameters."""
    value = "none" if name.lower() == "prompt" else "x"
    assert check_param(name, value, scope_allowed=True) is not None
    with pytest.raises(ConfigError) as caught:
        config(forward_params=("login_hint", name))
    assert caught.value.setting == "forward_params"
    with pytest.raises(ConfigError) as caught:
        config(authorize_params={name: value})
    assert caught.value.setting == "authorize_params"
    with pytest.raises(AuthFailure) as failed:
        from_request(q(), {}, (), lambda environ: {name: value}, "")
    assert failed.value.code == "authorize_hook_failed"
