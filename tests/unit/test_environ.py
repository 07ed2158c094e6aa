"""The environ accessors: get_access_token, authorization_header, NoAccessToken."""

from __future__ import annotations

from typing import Any

import pytest

import sso_middleware
from sso_middleware._wsgi.environ import (
    ACCESS_TOKEN_EXPIRES_KEY,
    ACCESS_TOKEN_KEY,
    API_SETTINGS_KEY,
    CONNECTION_KEY,
    ORGANIZATION_KEY,
    OWN_KEYS,
    SCOPES_KEY,
    TOKEN_ERROR_KEY,
    USERINFO_KEY,
    NoAccessToken,
    authorization_header,
    get_access_token,
    get_organization,
    get_scopes,
    get_userinfo,
)

TOKEN = "at-0123456789abcdef"


def test_the_key_names_are_the_documented_ones() -> None:
    assert (ACCESS_TOKEN_KEY, ACCESS_TOKEN_EXPIRES_KEY, TOKEN_ERROR_KEY) == (
        "sso.access_token", "sso.access_token_expires_at", "sso.token_error")
    assert (ORGANIZATION_KEY, API_SETTINGS_KEY) == ("sso.organization", "sso.api_settings")
    assert SCOPES_KEY == "sso.scopes"
    assert set(OWN_KEYS) == {"REMOTE_USER", USERINFO_KEY, CONNECTION_KEY, ACCESS_TOKEN_KEY, ACCESS_TOKEN_EXPIRES_KEY,
                             TOKEN_ERROR_KEY, ORGANIZATION_KEY, SCOPES_KEY, API_SETTINGS_KEY}


def test_get_scopes_reads_only_a_tuple() -> None:
    assert get_scopes({SCOPES_KEY: ("read:a", "read:b")}) == ("read:a", "read:b")
    assert get_scopes({SCOPES_KEY: ()}) == ()
    assert get_scopes({SCOPES_KEY: "read:a"}) is None
    assert get_scopes({}) is None
    assert sso_middleware.get_scopes is get_scopes


def test_get_organization_reads_only_a_dict() -> None:
    assert get_organization({ORGANIZATION_KEY: {"id": "org_1", "name": "acme"}}) == {"id": "org_1", "name": "acme"}
    assert get_organization({ORGANIZATION_KEY: "org_1"}) is None
    assert get_organization({}) is None
    assert sso_middleware.get_organization is get_organization


def test_the_accessors_are_exported_by_the_package() -> None:
    assert sso_middleware.get_access_token is get_access_token
    assert sso_middleware.authorization_header is authorization_header
    assert sso_middleware.NoAccessToken is NoAccessToken
    assert {"get_access_token", "authorization_header", "NoAccessToken"} <= set(sso_middleware.__all__)


def test_get_access_token_returns_the_token() -> None:
    assert get_access_token({ACCESS_TOKEN_KEY: TOKEN, ACCESS_TOKEN_EXPIRES_KEY: 1.0}) == TOKEN


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="absent"),
        pytest.param({ACCESS_TOKEN_KEY: None}, id="none"),
        pytest.param({ACCESS_TOKEN_KEY: ""}, id="empty"),
        pytest.param({ACCESS_TOKEN_KEY: b"at-bytes"}, id="bytes"),
        pytest.param({ACCESS_TOKEN_KEY: ["at-x"]}, id="list"),
        pytest.param({ACCESS_TOKEN_KEY: 42}, id="number"),
        pytest.param({TOKEN_ERROR_KEY: "refresh_failed"}, id="only-an-error"),
    ],
)
def test_get_access_token_is_none_without_a_usable_token(environ: dict[str, Any]) -> None:
    assert get_access_token(environ) is None


def test_authorization_header_is_a_bearer_header() -> None:
    assert authorization_header({ACCESS_TOKEN_KEY: TOKEN}) == {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param("refresh_failed", "refresh_failed", id="refresh-failed"),
        pytest.param("temporarily_unavailable", "temporarily_unavailable", id="temporarily-unavailable"),
        pytest.param("token_expired", "token_expired", id="token-expired"),
        pytest.param("no_token", "no_token", id="no-token"),
    ],
)
def test_no_access_token_carries_the_token_error(error: str, reason: str) -> None:
    with pytest.raises(NoAccessToken) as caught:
        authorization_header({TOKEN_ERROR_KEY: error})
    assert reason in str(caught.value)
    assert str(caught.value) == f"no access token for this request ({reason})"


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="nobody-signed-in"),
        pytest.param({USERINFO_KEY: {"sub": "alice"}, "REMOTE_USER": "alice"}, id="keep-access-token-off"),
        pytest.param({ACCESS_TOKEN_KEY: "", TOKEN_ERROR_KEY: ""}, id="empty-values"),
    ],
)
def test_no_access_token_without_a_reason(environ: dict[str, Any]) -> None:
    with pytest.raises(NoAccessToken) as caught:
        authorization_header(environ)
    assert str(caught.value) == "no access token"


def test_no_access_token_is_a_lookup_error() -> None:
    """Code catching ``LookupError`` (as for a missing environ key) catches it too."""
    assert issubclass(NoAccessToken, LookupError)
    with pytest.raises(LookupError):
        authorization_header({})


def test_a_token_and_an_error_together_the_token_wins() -> None:
    environ = {ACCESS_TOKEN_KEY: TOKEN, TOKEN_ERROR_KEY: "temporarily_unavailable"}
    assert authorization_header(environ) == {"Authorization": f"Bearer {TOKEN}"}


def test_the_header_never_carries_a_token_from_another_key() -> None:
    environ = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}", USERINFO_KEY: {"sub": "alice"}}
    with pytest.raises(NoAccessToken):
        authorization_header(environ)


def test_get_userinfo_is_unchanged() -> None:
    assert get_userinfo({USERINFO_KEY: {"sub": "alice"}}) == {"sub": "alice"}
    assert get_userinfo({USERINFO_KEY: "alice"}) is None
    assert get_userinfo({}) is None
