"""The authentication routes' parameters: unreadable, refused and absent values are 4xx failures."""

from __future__ import annotations

from typing import Any

import pytest
from webob import Request

from sso_middleware import SSOConfig
from sso_middleware._wsgi.route_params import callback_params, connection_param, param, query_values, target_param
from sso_middleware.errors import (
    ConnectionNotAllowed,
    InvalidConnection,
    InvalidLogoutRequest,
    InvalidRequest,
    InvalidTargetUrl,
    MissingConnection,
    MissingTargetUrl,
)


def request(query: str = "", method: str = "GET") -> Request:
    return Request.blank("/auth/sso?" + query, method=method)


def test_an_undecodable_query_is_an_invalid_request() -> None:
    broken = Request.blank("/auth/sso")
    broken.environ["QUERY_STRING"] = "target_url=%ff%fe"
    with pytest.raises(InvalidRequest):
        param(broken, "target_url")


def test_query_values_keeps_every_value_and_param_the_last() -> None:
    repeated = request("sid=a&sid=b&other=c")
    assert query_values(repeated, "sid") == ["a", "b"]
    assert query_values(repeated, "absent") == []
    assert param(repeated, "sid") == "b"


def test_an_undecodable_query_is_the_routes_own_failure() -> None:
    broken = Request.blank("/auth/frontchannel-logout")
    broken.environ["QUERY_STRING"] = "sid=%ff%fe"
    with pytest.raises(InvalidLogoutRequest):
        query_values(broken, "sid", InvalidLogoutRequest)


def test_a_target_of_another_origin_is_refused_and_an_absent_one_is_home_or_required(
        settings: dict[str, Any]) -> None:
    config = SSOConfig(**settings)
    assert target_param(config, request("target_url=/dashboard"), required=True) == "/dashboard"
    with pytest.raises(InvalidTargetUrl):
        target_param(config, request("target_url=https://evil.example/"), required=True)
    with pytest.raises(InvalidTargetUrl):
        target_param(config, request("target_url=//evil.example/"), required=True)
    assert target_param(config, request(), required=False) == "/"
    with pytest.raises(MissingTargetUrl):
        target_param(config, request(), required=True)


def test_connections_are_checked_against_the_allowed_ones(settings: dict[str, Any]) -> None:
    config = SSOConfig(**settings, allowed_connections=("corp",), default_connection="corp")
    assert connection_param(config, request(), required=True) == "corp"
    with pytest.raises(ConnectionNotAllowed):
        connection_param(config, request("connection=other"), required=True)
    with pytest.raises(InvalidConnection):
        connection_param(config, request("connection=%0a"), required=True)
    with pytest.raises(MissingConnection):
        connection_param(SSOConfig(**settings), request(), required=True)


def test_the_callback_reads_only_where_response_mode_puts_the_answer(settings: dict[str, Any]) -> None:
    query = SSOConfig(**settings)
    assert callback_params(query, request("state=s&code=c"))["code"] == "c"
    with pytest.raises(InvalidRequest):
        callback_params(query, request("state=s&code=c", method="POST"))
    form_post = SSOConfig(**settings, response_mode="form_post")
    with pytest.raises(InvalidRequest):
        callback_params(form_post, request("state=s&code=c"))
