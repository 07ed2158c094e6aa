"""The front-channel logout route's parts alone: its setting, its parameter checks, its frame-ancestors."""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import urlencode

import pytest
from webob import Request

from sso_middleware import SSOConfig
from sso_middleware._oidc.discovery import ProviderMetadata
from sso_middleware._wsgi.frontchannel import MAX_QUERY, FrontchannelLogout
from sso_middleware.errors import (
    ERRORS,
    AuthFailure,
    InvalidLogoutRequest,
    LogoutIssuerMismatch,
    LogoutRequestTooLong,
    ProviderUnreachable,
)

from .test_config import VALID, build, refused


class Client:
    """What the route asks of the client: the (cached) discovery document's end-session endpoint."""

    def __init__(self, end_session: Optional[str] = None, down: bool = False) -> None:
        self.end_session, self.down = end_session, down

    def metadata(self) -> ProviderMetadata:
        if self.down:
            raise ProviderUnreachable("discovery")
        return ProviderMetadata(issuer=VALID["issuer"], authorization_endpoint="", token_endpoint="", jwks_uri="",
                                userinfo_endpoint=None, end_session_endpoint=self.end_session,
                                iss_parameter_supported=True)


def route(client: Any = None, **changes: Any) -> FrontchannelLogout:
    return FrontchannelLogout(build(**changes), client or Client(), store=None, clock=lambda: 0.0)  # type: ignore[arg-type]


def sid_of(query: str) -> Optional[str]:
    return route()._sid(Request.blank("/auth/frontchannel-logout?" + query))


# -- the setting -------------------------------------------------------------------------------


def test_off_by_default_and_on_at_any_path() -> None:
    assert SSOConfig(**VALID).frontchannel_logout_path == ""
    assert build(frontchannel_logout_path="/oidc/fc").frontchannel_logout_path == "/oidc/fc"
    assert SSOConfig.from_settings({**VALID, "frontchannel_logout_path": "/fc"}).frontchannel_logout_path == "/fc"
    environ = {f"SSO_{key.upper()}": value for key, value in VALID.items()} | {"SSO_FRONTCHANNEL_LOGOUT_PATH": "/fc"}
    assert SSOConfig.from_env(environ).frontchannel_logout_path == "/fc"


@pytest.mark.parametrize("path", ["auth/fc", "//evil.example/fc", "/a b", "/fc?x=1", "/fc#x", " ", "/f%63"])
def test_malformed_paths_are_refused_naming_the_setting(path: str) -> None:
    refused("frontchannel_logout_path", frontchannel_logout_path=path)


@pytest.mark.parametrize("other", ["/auth/logout", "/auth/callback", "/auth/backchannel-logout", "/auth/sso"])
def test_a_path_of_another_route_is_refused(other: str) -> None:
    error = refused("frontchannel_logout_path", frontchannel_logout_path=other)
    assert "same path as" in error.message


# -- iss and sid ------------------------------------------------------------------------------


def test_neither_iss_nor_sid_is_the_cookie_form() -> None:
    assert sid_of("") is None
    assert sid_of("x=1&ISS=x&Sid=y") is None  # names are case-sensitive; other parameters are ignored


def test_the_exact_issuer_and_a_printable_sid() -> None:
    assert sid_of(urlencode({"iss": VALID["issuer"], "sid": "08a5019c-17e1-4977-8f42-65a12843ea02"})) == (
        "08a5019c-17e1-4977-8f42-65a12843ea02")
    assert sid_of(urlencode({"sid": "x" * 255, "iss": VALID["issuer"], "other": "kept"})) == "x" * 255


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        pytest.param({"iss": "https://evil.example/", "sid": "s"}, LogoutIssuerMismatch, id="foreign"),
        pytest.param({"iss": VALID["issuer"] + "/", "sid": "s"}, LogoutIssuerMismatch, id="extra-slash"),
        pytest.param({"iss": "", "sid": "s"}, LogoutIssuerMismatch, id="empty-iss"),
        pytest.param({"sid": "s"}, InvalidLogoutRequest, id="no-iss"),
        pytest.param({"iss": VALID["issuer"]}, InvalidLogoutRequest, id="no-sid"),
        pytest.param({"iss": VALID["issuer"], "sid": "a\tb"}, InvalidLogoutRequest, id="tab"),
        pytest.param({"iss": VALID["issuer"], "sid": "\x7f"}, InvalidLogoutRequest, id="del"),
    ],
)
def test_refusals(query: dict[str, str], kind: type[AuthFailure]) -> None:
    with pytest.raises(kind):
        sid_of(urlencode(query))


def test_the_length_is_checked_before_anything_is_parsed() -> None:
    with pytest.raises(LogoutRequestTooLong):
        sid_of("%ff" * (MAX_QUERY // 3 + 1))  # unreadable too, but refused for its length first
    assert sid_of("x=" + "y" * (MAX_QUERY - 2)) is None


def test_each_new_code_is_in_the_catalogue_with_its_status() -> None:
    assert {code: ERRORS[code].status for code in
            ("invalid_logout_request", "logout_issuer_mismatch", "logout_request_too_long")} == {
        "invalid_logout_request": 400, "logout_issuer_mismatch": 400, "logout_request_too_long": 414}


# -- frame-ancestors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "end_session", "expected"),
    [
        pytest.param("https://op.example/", "https://op.example/oidc/logout", ["https://op.example"], id="same"),
        pytest.param("https://op.example/", "https://logout.op.example/x",
                     ["https://op.example", "https://logout.op.example"], id="other-host"),
        pytest.param("https://op.example:8443/realms/a", None, ["https://op.example:8443"], id="no-endpoint"),
        pytest.param("https://OP.example:443/", "https://op.example:443/end", ["https://op.example"],
                     id="normalised"),
    ],
)
def test_frame_ancestors_are_the_issuers_origin_and_the_end_session_endpoints(
    issuer: str, end_session: Optional[str], expected: list[str]
) -> None:
    assert route(Client(end_session), issuer=issuer).frame_ancestors() == expected


def test_frame_ancestors_without_discovery_are_the_issuers_origin() -> None:
    assert route(Client(down=True)).frame_ancestors() == ["https://op.example"]
