"""Exceptions, and the catalogue of failure codes built from them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

import sso_middleware
from sso_middleware import errors, stores
from sso_middleware._oidc.id_token import IdentityMismatch
from sso_middleware._wsgi.bodies import BodyError
from sso_middleware._wsgi.environ import NoAccessToken
from sso_middleware.errors import (
    ERRORS,
    AuthFailure,
    ConfigError,
    InvalidGrant,
    InvalidIdToken,
    InvalidState,
    ProviderError,
    ProviderRefused,
    ProviderTimeout,
    SessionTooLarge,
    SSOError,
    SSOFailure,
    StoreUnavailable,
    describe,
    provider_error_code,
)
from sso_middleware.stores.errors import RecordGone


def every_subclass(base: type[SSOFailure]) -> Iterator[type[SSOFailure]]:
    for kind in base.__subclasses__():
        yield kind
        yield from every_subclass(kind)


#: Every failure class of the package (a test module's own classes would be refused anyway).
FAILURE_CLASSES = sorted(set(every_subclass(SSOFailure)), key=lambda kind: kind.__name__)
#: The classes that declare a code of their own (the others show their parent's page).
CODE_CLASSES = [kind for kind in FAILURE_CLASSES if "code" in vars(kind)]


def test_config_error_names_the_setting() -> None:
    error = ConfigError("client_id", "required")
    assert isinstance(error, ValueError) and isinstance(error, SSOError)
    assert (error.setting, error.message) == ("client_id", "required")
    assert str(error) == "sso_middleware setting 'client_id': required"


def test_auth_failure_carries_code_and_detail() -> None:
    error = InvalidState("no transaction for this state")
    assert isinstance(error, AuthFailure)
    assert (error.code, error.detail) == ("invalid_state", "no transaction for this state")
    assert str(error) == "invalid_state: no transaction for this state"
    assert str(InvalidState()) == "invalid_state"


def test_provider_error_is_an_auth_failure() -> None:
    error = ProviderTimeout("discovery")
    assert isinstance(error, ProviderError) and isinstance(error, AuthFailure)
    assert (error.code, error.status, error.detail) == ("provider_timeout", 504, "discovery")


@pytest.mark.parametrize("kind", FAILURE_CLASSES, ids=lambda kind: kind.__name__)
def test_every_failure_class_has_a_code_a_status_and_a_page_text(kind: type[SSOFailure]) -> None:
    assert isinstance(kind.code, str) and re.fullmatch(r"[a-z][a-z_]*[a-z]", kind.code), kind.code
    assert isinstance(kind.status, int) and 400 <= kind.status <= 599, kind.status
    assert isinstance(kind.message, str) and kind.message.strip() and kind.message.endswith("."), kind.message
    if "code" in vars(kind):  # a class with its own code says its own status and page text: none inherited
        assert "status" in vars(kind) and "message" in vars(kind), kind
    assert kind.__doc__ and kind.__doc__.strip(), "every failure class says what it is for"


def test_failure_codes_are_unique() -> None:
    codes = [kind.code for kind in CODE_CLASSES]
    assert len(codes) == len(set(codes)), sorted(code for code in codes if codes.count(code) > 1)
    assert len(CODE_CLASSES) >= 30  # the whole catalogue, not an empty walk


def test_the_catalogue_is_built_from_the_classes() -> None:
    expected = {kind.code: kind for kind in CODE_CLASSES if not issubclass(kind, ProviderRefused)}
    assert dict(ERRORS) == expected
    for code, kind in expected.items():
        assert describe(code) == (kind.status, kind.message, code)
    with pytest.raises(TypeError):
        ERRORS["made_up"] = AuthFailure  # type: ignore[index]  # read-only: the page table is the classes


def test_a_failure_code_declared_outside_errors_is_refused() -> None:
    """The catalogue is built when the errors package is imported: a code declared elsewhere would have no page."""
    with pytest.raises(TypeError, match=r"declared in sso_middleware\.errors"):
        class Elsewhere(AuthFailure):
            code = "elsewhere"
            status = 400
            message = "Nowhere."
    assert "elsewhere" not in ERRORS


def test_a_kind_without_a_code_of_its_own_shows_its_parents_page() -> None:
    error = IdentityMismatch("refreshed ID token: sub differs from the original")
    assert isinstance(error, InvalidIdToken)
    assert (error.code, error.status, error.message) == ("invalid_id_token", 401, InvalidIdToken.message)
    assert "invalid_id_token" in ERRORS and ERRORS["invalid_id_token"] is InvalidIdToken


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        pytest.param("invalid_grant", InvalidGrant, id="invalid-grant"),
        pytest.param("invalid_client", ProviderRefused, id="invalid-client"),
        pytest.param("invalid_grant<>", InvalidGrant, id="invalid-grant-once-made-safe"),
        pytest.param("invalid_grant_x", ProviderRefused, id="not-invalid-grant"),
    ],
)
def test_a_provider_refusal_is_typed_by_its_error(error: str, kind: type[ProviderRefused]) -> None:
    refused = ProviderRefused.from_error(error, "token endpoint refused the code")
    assert type(refused) is kind
    assert not isinstance(refused, ProviderError)  # the provider answered: not its trouble, its verdict
    assert refused.code == provider_error_code(error)
    assert refused.detail == "token endpoint refused the code"
    assert str(refused) == f"{refused.code}: token endpoint refused the code"


def test_invalid_grant_raised_directly_has_its_code() -> None:
    error = InvalidGrant("refresh token revoked")
    assert (error.error, error.code, error.status) == ("invalid_grant", "provider_error:invalid_grant", 401)


def test_store_failures_are_failure_pages() -> None:
    """The middleware answers them with their class's page; a back end raises them with its own message."""
    assert (StoreUnavailable.code, StoreUnavailable.status) == ("session_store_unavailable", 503)
    assert (SessionTooLarge.code, SessionTooLarge.status) == ("session_too_large", 503)
    error = StoreUnavailable("redis: ConnectionError")
    assert (str(error), error.detail) == ("redis: ConnectionError", "redis: ConnectionError")
    assert not isinstance(error, AuthFailure)  # not a sign-in failure: answered 503 without the sign-in's clean-up


def test_every_exception_of_the_package_is_an_sso_error() -> None:
    for kind in (ConfigError, AuthFailure, StoreUnavailable, SessionTooLarge, RecordGone, NoAccessToken,
                 IdentityMismatch, BodyError):
        assert issubclass(kind, SSOError), kind
    assert issubclass(NoAccessToken, LookupError)


def test_the_exceptions_are_importable_where_they_were() -> None:
    from sso_middleware._session import state as session
    assert stores.StoreUnavailable is errors.StoreUnavailable is session.StoreUnavailable
    assert stores.SessionTooLarge is errors.SessionTooLarge is session.SessionTooLarge
    assert stores.RecordGone is RecordGone
    assert sso_middleware.AuthFailure is AuthFailure and sso_middleware.NoAccessToken is NoAccessToken


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


def test_the_unknown_code_page_is_the_bare_auth_failure() -> None:
    assert describe("something_else") == (400, AuthFailure.message, "unknown_error") == describe("unknown_error")


#: Failures where the user did authenticate, just not well enough: 403, like the access rules' refusals.
FORBIDDEN_CODES = ("step_up_failed", "invalid_organization", "insufficient_scope", "sign_in_denied",
                   "cross_origin_refused")
#: Requests refused for their length before they are parsed: 414 (URI Too Long).
TOO_LONG_CODES = ("logout_request_too_long",)
#: preserve_post's pages, answered where the form was sent: the HTTP status that says why it was not kept.
PRESERVE_POST_STATUSES = {"preserve_post_cross_site": 403, "preserve_post_unsupported": 415,
                          "preserve_post_length_required": 411, "preserve_post_too_large": 413,
                          "preserve_post_unreadable": 400, "preserve_post_refused": 400, "preserve_post_lost": 410,
                          "preserve_post_other_user": 409}
#: The session endpoint's JSON answers that are neither 400 nor 401: a wrong method, nothing to refresh with.
OTHER_4XX = {"method_not_allowed": 405, "no_refresh_token": 409}


def test_statuses_are_4xx_except_provider_trouble() -> None:
    for code, info in ERRORS.items():
        if info.status >= 500:
            assert info.status in (502, 503, 504), code
            assert code in ("provider_bad_response", "provider_unreachable", "provider_timeout",
                            "invalid_token_response", "session_store_unavailable", "session_too_large",
                            "signing_algorithm_mismatch", "provider_proxy_error", "provider_tls_error",
                            "par_failed", "par_required", "par_unavailable", "authorize_hook_failed",
                            "sign_in_hook_failed", "refresh_unavailable", "preserve_post_busy"), code
        elif code in FORBIDDEN_CODES:
            assert info.status == 403, code
        elif code in TOO_LONG_CODES:
            assert info.status == 414, code
        elif code in PRESERVE_POST_STATUSES:
            assert info.status == PRESERVE_POST_STATUSES[code], code
        elif code in OTHER_4XX:
            assert info.status == OTHER_4XX[code], code
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
