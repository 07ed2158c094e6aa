"""Token revocation at sign-out (RFC 7009, :mod:`sso_middleware._oidc.revocation`), through ``webtest``.

The FakeProvider's revocation endpoint records every request and kills a revoked refresh
token, so each test signs in with ``keep_access_token`` and ``offline_access``, signs out,
and reads back what the provider received, in which order, authenticated how, and whether
the refresh token still refreshes.  Failures (network, 5xx, 4xx, timeouts) must never keep
the user signed in or keep sign-out from reaching the provider's logout.
"""

from __future__ import annotations

import base64
import logging
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import webtest

from sso_middleware import SSOConfig
from sso_middleware.errors import ConfigError

from ..fakes import CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider, rsa_key
from .test_backchannel import logout_token, post_logout
from .test_handlers import sign_in

Browser = webtest.TestApp
SCOPE = "openid profile email offline_access"
END_SESSION = ISSUER.rstrip("/") + "/oidc/logout"
REVOKE = "/oauth/revoke"


def form(call: requests.PreparedRequest) -> dict[str, str]:
    body = call.body.decode() if isinstance(call.body, bytes) else str(call.body or "")
    return {name: values[0] for name, values in parse_qs(body).items()}


def signed_in(make_browser: Callable[..., Browser], provider: FakeProvider, **settings: Any) -> Browser:
    browser = make_browser(**{"keep_access_token": True, "scope": SCOPE, **settings})
    sign_in(browser, provider)
    assert provider.live_refresh_tokens("alice")
    return browser


def sign_out(browser: Browser) -> webtest.TestResponse:
    response: webtest.TestResponse = browser.get("/auth/logout", {"target_url": "/bye"})
    assert response.status_int == 303 and response.location.startswith(END_SESSION + "?"), response
    assert browser.get("/dashboard").json["userinfo"] is None
    return response


def refreshes(provider: FakeProvider, refresh_token: str) -> bool:
    """Whether the provider still redeems ``refresh_token`` (a direct call, as an attacker holding it would)."""
    status, _ = provider._refresh(CLIENT_ID, {"refresh_token": refresh_token})
    return status == 200


def test_sign_out_revokes_the_refresh_token_then_the_access_token(make_browser: Callable[..., Browser],
                                                                  provider: FakeProvider) -> None:
    provider.revocation = True
    browser = signed_in(make_browser, provider)
    [refresh_token] = provider.live_refresh_tokens("alice")
    sign_out(browser)
    assert provider.revocations == [("refresh_token", "refresh_token"), ("access_token", "access_token")]
    calls = provider.requests_to(REVOKE)
    assert [form(call)["token_type_hint"] for call in calls] == ["refresh_token", "access_token"]
    assert form(calls[0])["token"] == refresh_token
    assert calls[0].headers["Authorization"] == "Basic " + base64.b64encode(
        f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert not refreshes(provider, refresh_token)
    # before the redirect to the provider's logout: the last calls are the revocations
    assert urlsplit(str(provider.calls[-1].url)).path == REVOKE


def test_without_revocation_the_refresh_token_outlives_sign_out(make_browser: Callable[..., Browser],
                                                                provider: FakeProvider) -> None:
    """The attack the feature stops: a refresh token copied from the session keeps working after sign-out."""
    provider.revocation = True
    browser = signed_in(make_browser, provider, revoke_tokens_on_logout="off")
    [refresh_token] = provider.live_refresh_tokens("alice")
    sign_out(browser)
    assert provider.requests_to(REVOKE) == [] and refreshes(provider, refresh_token)


def test_client_secret_post_puts_the_credentials_in_the_body(make_browser: Callable[..., Browser],
                                                             provider: FakeProvider) -> None:
    provider.revocation = True
    sign_out(signed_in(make_browser, provider, token_endpoint_auth_method="client_secret_post"))
    for call in provider.requests_to(REVOKE):
        assert "Authorization" not in call.headers
        assert (form(call)["client_id"], form(call)["client_secret"]) == (CLIENT_ID, CLIENT_SECRET)
    assert len(provider.revocations) == 2


def test_private_key_jwt_sends_a_fresh_assertion_for_each_call(make_browser: Callable[..., Browser],
                                                               provider: FakeProvider, tmp_path: Any) -> None:
    from ..unit.test_client_auth import write_pem

    key = rsa_key("assertion")
    provider.revocation, provider.assertion_key = True, key.public_key()
    browser = signed_in(make_browser, provider, token_endpoint_auth_method="private_key_jwt", client_secret="",
                        client_assertion_key=write_pem(tmp_path / "k.pem", key), client_assertion_kid="k1")
    sign_out(browser)
    calls = provider.requests_to(REVOKE)
    jtis = {jwt.decode(form(call)["client_assertion"], key.public_key(), algorithms=["RS256"],
                       audience=ISSUER)["jti"] for call in calls}
    assert len(calls) == 2 and len(jtis) == 2 and all("Authorization" not in call.headers for call in calls)
    assert [kind for _, kind in provider.revocations] == ["refresh_token", "access_token"]


def test_only_the_access_token_without_offline_access(make_browser: Callable[..., Browser],
                                                      provider: FakeProvider) -> None:
    provider.revocation = True
    browser = make_browser(keep_access_token=True)
    sign_in(browser, provider)
    sign_out(browser)
    assert provider.revocations == [("access_token", "access_token")]


def test_the_token_revoked_is_the_current_one_after_a_refresh(make_browser: Callable[..., Browser],
                                                              provider: FakeProvider) -> None:
    from sso_middleware.testing import Clock

    clock = Clock()
    provider.revocation, provider.clock, provider.expires_in = True, clock, 120
    browser = signed_in(make_browser, provider, clock=clock)
    [first] = provider.live_refresh_tokens("alice")
    clock.advance(100)
    browser.get("/dashboard")  # due: refreshed, the refresh token rotated
    [second] = provider.live_refresh_tokens("alice")
    assert second != first
    sign_out(browser)
    assert form(provider.requests_to(REVOKE)[0])["token"] == second and not refreshes(provider, second)


@pytest.mark.parametrize("extra", [
    pytest.param({"keep_access_token": False}, id="no-tokens-kept"),
    pytest.param({"revoke_tokens_on_logout": "off"}, id="off"),
])
def test_nothing_is_revoked_when_off_or_no_tokens_are_kept(make_browser: Callable[..., Browser],
                                                           provider: FakeProvider, extra: dict[str, Any]) -> None:
    provider.revocation = True
    browser = make_browser(**{"keep_access_token": True, "scope": SCOPE, **extra})
    sign_in(browser, provider)
    sign_out(browser)
    assert provider.requests_to(REVOKE) == []


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_no_endpoint_advertised_means_no_call(make_browser: Callable[..., Browser], provider: FakeProvider,
                                              mode: str, caplog: pytest.LogCaptureFixture) -> None:
    browser = signed_in(make_browser, provider, revoke_tokens_on_logout=mode)
    with caplog.at_level(logging.WARNING, logger="sso_middleware"):
        sign_out(browser)
    assert provider.requests_to(REVOKE) == []
    warned = [r for r in caplog.records if "revocation_endpoint" in r.getMessage()]
    assert len(warned) == (1 if mode == "on" else 0)


@pytest.mark.parametrize("fault", [
    pytest.param(requests.ConnectionError("down"), id="down"),
    pytest.param(requests.Timeout("slow"), id="slow"),
    pytest.param(503, id="5xx"),
    pytest.param(401, id="4xx"),
])
def test_a_failed_revocation_never_blocks_sign_out_and_is_logged_once(
        make_browser: Callable[..., Browser], provider: FakeProvider, caplog: pytest.LogCaptureFixture,
        fault: Any) -> None:
    provider.revocation = True
    browser = signed_in(make_browser, provider)
    provider.fail[REVOKE] = fault
    with caplog.at_level(logging.WARNING, logger="sso_middleware"):
        sign_out(browser)
    assert len(provider.requests_to(REVOKE)) == 1  # the access token is not sent to a failing provider
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "revoking the refresh_token" in warned[0].getMessage()


@pytest.mark.parametrize("status", [400, 503])
def test_a_refusing_endpoint_is_logged_and_sign_out_goes_on(make_browser: Callable[..., Browser],
                                                            provider: FakeProvider, status: int,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    provider.revocation = True
    browser = signed_in(make_browser, provider)
    provider.revocation_status = status
    with caplog.at_level(logging.WARNING, logger="sso_middleware"):
        sign_out(browser)
    assert f"HTTP {status}" in caplog.records[-1].getMessage()


def test_access_tokens_a_provider_cannot_revoke_are_no_failure(make_browser: Callable[..., Browser],
                                                               provider: FakeProvider,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    provider.revocation = True
    browser = signed_in(make_browser, provider)

    def refuse_access_tokens(request: requests.PreparedRequest) -> requests.Response:
        from ..fakes import make_response
        if form(request)["token_type_hint"] == "access_token":
            return make_response(request, 400, b'{"error": "unsupported_token_type"}')
        return make_response(request, 200, b"")

    provider.fail[REVOKE] = refuse_access_tokens
    with caplog.at_level(logging.WARNING, logger="sso_middleware"):
        sign_out(browser)
    assert len(provider.requests_to(REVOKE)) == 2
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_revocation_endpoint_must_be_https(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    provider.revocation = True
    provider.discovery_overrides["revocation_endpoint"] = "http://op.example/oauth/revoke"
    browser = make_browser(keep_access_token=True, scope=SCOPE)
    response = browser.get("/auth/sso", {"connection": "c", "target_url": "/"})
    assert "provider_bad_response" in response.location


def test_back_channel_logout_revokes_nothing(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    """The provider ended the session itself and owns its tokens' fate (see the README's reasons)."""
    provider.revocation = True
    browser = signed_in(make_browser, provider)
    post_logout(browser, logout_token())
    assert browser.get("/dashboard").json["userinfo"] is None
    assert provider.requests_to(REVOKE) == []


@pytest.mark.parametrize(("extra", "problem"), [
    ({"revoke_tokens_on_logout": "yes"}, "must be one of auto, on, off"),
    ({"revoke_tokens_on_logout": "on"}, "needs keep_access_token"),
])
def test_bad_settings_fail_the_build(extra: dict[str, Any], problem: str) -> None:
    base = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "base_url": "https://app2.example", "session_secret": "s" * 40}
    with pytest.raises(ConfigError, match=problem) as caught:
        SSOConfig(**base, **extra)
    assert caught.value.setting == "revoke_tokens_on_logout"
