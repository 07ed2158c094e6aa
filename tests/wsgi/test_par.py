"""Pushed authorization requests (:mod:`sso_middleware._oidc.par`, RFC 9126) against the fake provider.

The browser's authorization URL must carry only ``client_id`` and ``request_uri``; the
pushed request carries the parameters and the client authentication; every failure of
the push is the failure page, never a loop.
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import parse_qs

import pytest
import requests
import webtest

from ..fakes import CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider
from .test_handlers import AUTHORIZE, CONNECTION, failure_code, query, start_sso

Browser = webtest.TestApp


def pushed_form(provider: FakeProvider) -> dict[str, str]:
    (call,) = provider.requests_to("/oauth/par")
    body = call.body.decode() if isinstance(call.body, bytes) else str(call.body)
    return {key: values[0] for key, values in parse_qs(body).items()}


def test_auto_pushes_and_the_browser_carries_only_client_id_and_request_uri(
    make_browser: Callable[..., Browser], provider: FakeProvider
) -> None:
    provider.par = True
    browser = make_browser(token_endpoint_auth_method="client_secret_post")
    response = start_sso(browser)
    assert response.status_int == 303 and response.location.startswith(AUTHORIZE + "?")
    params = query(response.location)
    assert set(params) == {"client_id", "request_uri"} and params["client_id"] == CLIENT_ID
    pushed = pushed_form(provider)
    for name in ("response_type", "redirect_uri", "scope", "state", "nonce", "code_challenge", "connection"):
        assert pushed[name], name
    assert pushed["connection"] == CONNECTION and pushed["prompt"] == "none"
    assert pushed["client_secret"] == CLIENT_SECRET  # client authentication on the push, per the method
    final = browser.get(provider.authorize(response.location))
    assert final.status_int == 303 and final.location == "https://app2.example/dashboard"
    assert browser.get("/dashboard").json["remote_user"] == "alice"


def test_par_with_basic_authentication_uses_the_header(make_browser: Callable[..., Browser],
                                                       provider: FakeProvider) -> None:
    provider.par = True
    start_sso(make_browser())
    (call,) = provider.requests_to("/oauth/par")
    assert call.headers["Authorization"].startswith("Basic ")
    assert "client_secret" not in pushed_form(provider)


def test_off_sends_the_parameters_in_the_url(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    provider.par = True
    response = start_sso(make_browser(pushed_authorization="off"))
    assert "state" in query(response.location) and "request_uri" not in query(response.location)
    assert provider.requests_to("/oauth/par") == []


def test_off_with_a_provider_requiring_par_is_refused(make_browser: Callable[..., Browser],
                                                      provider: FakeProvider) -> None:
    provider.par = True
    provider.discovery_overrides["require_pushed_authorization_requests"] = True
    browser = make_browser(pushed_authorization="off")
    assert failure_code(start_sso(browser)) == "par_required"
    assert browser.get("/auth/failure?error=par_required", status=502)


def test_a_provider_requiring_par_without_an_endpoint_is_refused(make_browser: Callable[..., Browser],
                                                                 provider: FakeProvider) -> None:
    provider.discovery_overrides["require_pushed_authorization_requests"] = True
    assert failure_code(start_sso(make_browser())) == "par_required"


def test_required_without_an_endpoint_is_refused(make_browser: Callable[..., Browser],
                                                 provider: FakeProvider) -> None:
    browser = make_browser(pushed_authorization="required")
    assert failure_code(start_sso(browser)) == "par_unavailable"
    assert browser.get("/auth/failure?error=par_unavailable", status=502)


def test_auto_without_an_endpoint_uses_the_query(make_browser: Callable[..., Browser],
                                                 provider: FakeProvider) -> None:
    response = start_sso(make_browser())
    assert "code_challenge" in query(response.location)


def test_par_endpoint_must_be_https(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    provider.discovery_overrides["pushed_authorization_request_endpoint"] = "http://op.example/oauth/par"
    assert failure_code(start_sso(make_browser())) == "provider_bad_response"


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        pytest.param(500, "par_failed", id="http-500"),
        pytest.param(requests.ConnectionError("refused"), "provider_unreachable", id="down"),
        pytest.param(requests.Timeout("slow"), "provider_timeout", id="timeout"),
    ],
)
def test_par_endpoint_failures_are_a_clean_page(make_browser: Callable[..., Browser], provider: FakeProvider,
                                                fault: Any, code: str) -> None:
    provider.par = True
    provider.fail["/oauth/par"] = fault
    browser = make_browser()
    assert failure_code(start_sso(browser)) == code
    assert failure_code(browser.get("/auth/login")) == code  # again a page, never a redirect loop
    assert browser.get(f"/auth/failure?error={code}", status="*").status_int in (502, 503, 504)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"expires_in": 60}, id="no-request_uri"),
        pytest.param({"request_uri": "urn:x"}, id="no-expires_in"),
        pytest.param({"request_uri": "urn:x", "expires_in": 0}, id="expires_in-0"),
        pytest.param({"request_uri": "urn:x", "expires_in": True}, id="expires_in-bool"),
        pytest.param({"request_uri": "urn:x", "expires_in": "60"}, id="expires_in-string"),
        pytest.param({"request_uri": "a b", "expires_in": 60}, id="request_uri-space"),
        pytest.param({"request_uri": "urn:x\n", "expires_in": 60}, id="request_uri-trailing-newline"),
        pytest.param({"request_uri": "u" * 3000, "expires_in": 60}, id="request_uri-long"),
        pytest.param({"request_uri": 7, "expires_in": 60}, id="request_uri-number"),
        pytest.param({"error": "invalid_request", "request_uri": "urn:x", "expires_in": 60}, id="error"),
    ],
)
def test_malformed_par_answers_are_par_failed(make_browser: Callable[..., Browser], provider: FakeProvider,
                                              answer: dict[str, Any]) -> None:
    provider.par = True
    provider.par_response = answer
    assert failure_code(start_sso(make_browser())) == "par_failed"


def test_refused_client_authentication_at_par_is_par_failed(make_browser: Callable[..., Browser],
                                                            provider: FakeProvider) -> None:
    provider.par = True
    provider.client_secret = "another-secret"
    assert failure_code(start_sso(make_browser())) == "par_failed"


@pytest.mark.parametrize(("error", "code", "status"), [
    pytest.param("invalid_request", "provider_error:invalid_request", 401, id="the-request-refused"),
    pytest.param("invalid_scope", "provider_error:invalid_scope", 401, id="a-scope-refused"),
    pytest.param("invalid_client", "par_failed", 502, id="our-credentials-refused"),
    pytest.param("unauthorized_client", "par_failed", 502, id="our-registration"),
    pytest.param("server_error", "par_failed", 502, id="provider-trouble"),
])
def test_a_refused_push_is_a_4xx_only_when_the_request_was_at_fault(make_browser: Callable[..., Browser],
                                                                    provider: FakeProvider, error: str, code: str,
                                                                    status: int) -> None:
    """A link anyone can craft (an unknown organization, say) must not produce 5xx pages and operator warnings."""
    import json as json_module

    from ..fakes import make_response

    provider.par = True
    provider.fail["/oauth/par"] = lambda request: make_response(
        request, 400, json_module.dumps({"error": error}).encode(), "application/json")
    browser = make_browser()
    assert failure_code(start_sso(browser)) == code
    assert browser.get(f"/auth/failure?error={code}", status="*").status_int == status


def test_par_answer_that_is_not_json_is_a_clean_page(make_browser: Callable[..., Browser],
                                                     provider: FakeProvider) -> None:
    from ..fakes import make_response

    provider.par = True
    provider.fail["/oauth/par"] = lambda request: make_response(request, 201, b"<html>", "text/html")
    assert failure_code(start_sso(make_browser())) == "provider_bad_response"


def test_discovery_parses_the_par_endpoint(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    provider.par = True
    provider.discovery_overrides["require_pushed_authorization_requests"] = True
    metadata = make_browser().app.client.metadata()
    assert metadata.pushed_authorization_request_endpoint == ISSUER.rstrip("/") + "/oauth/par"
    assert metadata.require_pushed_authorization_requests is True


@pytest.mark.parametrize(("audience", "expected"),
                         [("issuer", ISSUER), ("endpoint", ISSUER.rstrip("/") + "/oauth/par")])
def test_par_with_private_key_jwt_sends_a_fresh_assertion(make_browser: Callable[..., Browser],
                                                          provider: FakeProvider, tmp_path: Any, audience: str,
                                                          expected: str) -> None:
    import jwt

    from ..fakes import rsa_key
    from ..unit.test_client_auth import write_pem

    key = rsa_key("assertion")
    provider.par = True
    browser = make_browser(token_endpoint_auth_method="private_key_jwt", client_secret="",
                           client_assertion_key=write_pem(tmp_path / "k.pem", key), client_assertion_kid="k1",
                           client_assertion_audience=audience)
    start_sso(browser)
    start_sso(browser)
    calls = provider.requests_to("/oauth/par")
    assert len(calls) == 2
    jtis = set()
    for call in calls:
        body = call.body.decode() if isinstance(call.body, bytes) else str(call.body)
        sent = {name: values[0] for name, values in parse_qs(body).items()}
        assert "Authorization" not in call.headers and "client_secret" not in sent
        assert sent["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        claims = jwt.decode(sent["client_assertion"], key.public_key(), algorithms=["RS256"], audience=expected)
        assert claims["iss"] == claims["sub"] == CLIENT_ID
        jtis.add(claims["jti"])
    assert len(jtis) == 2
