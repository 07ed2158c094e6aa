"""Exceptions and the catalogue of failure codes."""

from __future__ import annotations

import re

import pytest

from sso_middleware.errors import ERRORS, AuthFailure, ConfigError, ProviderError, describe, provider_error_code


def test_config_error_names_the_setting() -> None:
    error = ConfigError("client_id", "required")
    assert isinstance(error, ValueError)
    assert (error.setting, error.message) == ("client_id", "required")
    assert str(error) == "sso_middleware setting 'client_id': required"


def test_auth_failure_carries_code_and_detail() -> None:
    error = AuthFailure("invalid_state", "no transaction for this state")
    assert (error.code, error.detail) == ("invalid_state", "no transaction for this state")
    assert str(error) == "invalid_state: no transaction for this state"
    assert str(AuthFailure("invalid_state")) == "invalid_state"


def test_provider_error_is_an_auth_failure() -> None:
    error = ProviderError("provider_timeout", "discovery")
    assert isinstance(error, AuthFailure)
    assert error.code == "provider_timeout"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        pytest.param("access_denied", "provider_error:access_denied", id="plain"),
        pytest.param("login_required", "provider_error:login_required", id="underscore"),
        pytest.param("a.b-c", "provider_error:a.b-c", id="dot-dash"),
        pytest.param("<script>alert(1)</script>", "provider_error:scriptalert1script", id="markup"),
        pytest.param("bad\r\nSet-Cookie: x=y", "provider_error:badSet-Cookiexy", id="crlf"),
        pytest.param("token=eyJ&x=1", "provider_error:tokeneyJx1", id="query-characters"),
        pytest.param("caf\u00e9", "provider_error:caf", id="non-ascii"),
        pytest.param("", "provider_error:unknown", id="empty"),
        pytest.param("<>!", "provider_error:unknown", id="nothing-left"),
        pytest.param("x" * 500, "provider_error:" + "x" * 64, id="truncated"),
    ],
)
def test_provider_error_code_is_url_safe(error: str, code: str) -> None:
    assert provider_error_code(error) == code
    assert re.fullmatch(r"provider_error:[A-Za-z0-9_.\-]{1,64}", provider_error_code(error))


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_every_known_code_has_a_status_and_message(code: str) -> None:
    status, message, shown = describe(code)
    assert (status, message, shown) == (ERRORS[code].status, ERRORS[code].message, code)
    assert message and "{" not in message


#: Failures where the user did authenticate, just not well enough: 403, like the access rules' refusals.
FORBIDDEN_CODES = ("step_up_failed", "invalid_organization")


def test_statuses_are_4xx_except_provider_trouble() -> None:
    for code, info in ERRORS.items():
        if info.status >= 500:
            assert info.status in (502, 503, 504), code
            assert code in ("provider_bad_response", "provider_unreachable", "provider_timeout",
                            "invalid_token_response", "session_store_unavailable", "session_too_large",
                            "signing_algorithm_mismatch", "provider_proxy_error", "provider_tls_error",
                            "par_failed", "par_required", "par_unavailable", "authorize_hook_failed"), code
        elif code in FORBIDDEN_CODES:
            assert info.status == 403, code
        else:
            assert info.status in (400, 401), code
    assert describe("provider_unreachable")[0] == 503
    assert describe("provider_timeout")[0] == 504
    assert describe("provider_proxy_error")[0] == describe("provider_tls_error")[0] == 502


def test_provider_error_codes_are_described() -> None:
    status, message, shown = describe("provider_error:access_denied")
    assert status == 401
    assert "access denied" in message
    assert shown == "provider_error:access_denied"


@pytest.mark.parametrize("detail", ["Your account is locked. Call +1-555-0100", "x" * 500, "made_up_error"])
def test_provider_errors_outside_the_oauth_vocabulary_show_no_detail(detail: str) -> None:
    status, message, shown = describe("provider_error:" + detail)
    assert status == 401
    assert detail not in message and "555" not in message
    assert shown == "provider_error"


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("provider_error:", id="provider-error-without-detail"),
        pytest.param("something_else", id="unknown"),
        pytest.param("<script>", id="markup"),
        pytest.param("", id="empty"),
    ],
)
def test_unknown_codes_get_a_generic_400(code: str) -> None:
    status, message, shown = describe(code)
    assert status == 400
    assert code not in message or not code
    assert shown == "unknown_error"


def test_step_up_failed_is_in_the_catalogue() -> None:
    assert "step_up_failed" in ERRORS
    status, message, shown = describe("step_up_failed")
    assert (status, shown) == (403, "step_up_failed")
    assert "sign-in" in message
    # The message speaks to the user, not about tokens or claims.
    for jargon in ("auth_time", "acr", "max_age", "token", "claim"):
        assert jargon not in message, jargon


def test_step_up_failed_is_distinct_from_provider_refusals() -> None:
    """A provider answering ``error=step_up_failed`` is a provider error (401), not our 403."""
    assert provider_error_code("step_up_failed") == "provider_error:step_up_failed"
    assert describe("provider_error:step_up_failed")[0] == 401
