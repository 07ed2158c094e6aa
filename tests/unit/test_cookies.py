"""sso_middleware._cookies: reading the Cookie header and writing Set-Cookie values.

(``tests/cookies.py`` is the tests' own, independent Set-Cookie reader; it parses what is written here.)
"""

from __future__ import annotations

from typing import Any, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sso_middleware._cookies import deletion_cookie, request_cookie, request_cookies, set_cookie

from ..cookies import SetCookie

# -- reading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "unquote", "expected"),
    [
        pytest.param("", False, None, id="no-header"),
        pytest.param("sid=abc", False, "abc", id="alone"),
        pytest.param('a={"x": 1}; sid=abc; b=c d', False, "abc", id="among-odd-cookies"),
        pytest.param("sid=abc; sid=def", False, "abc", id="first-wins"),
        pytest.param("sid; sid=def", False, "def", id="a-part-without-equals-is-skipped"),
        pytest.param(" sid = abc ", False, "abc", id="spaces"),
        pytest.param("xsid=abc; sid_old=def", False, None, id="similar-names"),
        pytest.param("sid=; sid=def", False, "", id="an-empty-first-one-still-wins"),
        pytest.param('sid="abc"', False, '"abc"', id="quotes-kept"),
        pytest.param('sid="abc"', True, "abc", id="quotes-stripped"),
        pytest.param("sid=a=b", False, "a=b", id="equals-in-the-value"),
    ],
)
def test_request_cookie(header: str, unquote: bool, expected: Optional[str]) -> None:
    assert request_cookie(header, "sid", unquote=unquote) == expected


def test_request_cookies_keeps_the_first_of_each_name_and_skips_malformed_parts() -> None:
    header = 'a=1; b="2"; a=3; =4; c; ; d = 5 ;e='
    assert request_cookies(header, unquote=True) == {"a": "1", "b": "2", "d": "5", "e": ""}
    assert request_cookies(header, unquote=False)["b"] == '"2"'


_PART = st.one_of(
    st.sampled_from(["sid", " sid ", "sid2", "x", "=", ";", "", '"', " "]),
    st.text(alphabet='abcsid=" ;,\t', max_size=8),
)


@given(st.lists(_PART, max_size=8).map("".join), st.booleans())
def test_one_cookie_and_all_cookies_agree(header: str, unquote: bool) -> None:
    """The two readers are one rule: what request_cookie finds is what request_cookies maps the name to."""
    assert request_cookie(header, "sid", unquote=unquote) == request_cookies(header, unquote=unquote).get("sid")


# -- writing ---------------------------------------------------------------------------------------


def test_set_cookie_writes_every_attribute() -> None:
    header = set_cookie("tx_1", "tok-en=", path="/", max_age=600, secure=True)
    assert header == "tx_1=tok-en=; Path=/; Max-Age=600; HttpOnly; Secure; SameSite=Lax"
    parsed = SetCookie.parse(header)
    assert (parsed.name, parsed.value) == ("tx_1", "tok-en=")
    assert parsed.attributes == {"path": "/", "max-age": "600", "httponly": "", "secure": "", "samesite": "Lax"}


def test_set_cookie_on_http_is_not_secure_and_may_name_a_domain() -> None:
    parsed = SetCookie.parse(set_cookie("s", "v", path="/app", max_age=0, secure=False, domain=".example.com"))
    assert parsed.attributes == {"path": "/app", "domain": ".example.com", "max-age": "0", "httponly": "",
                                 "samesite": "Lax"}
    assert parsed.expires_it


def test_deletion_cookie_expires_it_in_both_ways() -> None:
    header = deletion_cookie("__Host-sso_session", path="/", secure=True)
    assert header == ("__Host-sso_session=; Path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; "
                      "Secure; SameSite=Lax")
    parsed = SetCookie.parse(header)
    assert parsed.value == "" and parsed.expires_it
    assert SetCookie.parse(deletion_cookie("s", path="/", secure=False, domain="example.com")).attributes[
        "domain"] == "example.com"


def test_same_site_none_is_written_only_with_secure() -> None:
    assert "SameSite=None" in set_cookie("s", "v", path="/", max_age=1, secure=True, same_site="None")
    with pytest.raises(ValueError, match="SameSite=None needs Secure"):
        set_cookie("s", "v", path="/", max_age=1, secure=False, same_site="None")
    with pytest.raises(ValueError, match="SameSite"):
        set_cookie("s", "v", path="/", max_age=1, secure=True, same_site="lax")


@pytest.mark.parametrize(
    ("name", "value", "where"),
    [
        pytest.param("a b", "v", {}, id="space-in-name"),
        pytest.param("a;b", "v", {}, id="semicolon-in-name"),
        pytest.param("", "v", {}, id="empty-name"),
        pytest.param("a=", "v", {}, id="equals-in-name"),
        pytest.param("s", "v; Domain=evil.example", {}, id="attribute-in-value"),
        pytest.param("s", "v\r\nSet-Cookie: x=1", {}, id="header-in-value"),
        pytest.param("s", "a b", {}, id="space-in-value"),
        pytest.param("s", '"v"', {}, id="quote-in-value"),
        pytest.param("s", "a,b", {}, id="comma-in-value"),
        pytest.param("s", "a\\b", {}, id="backslash-in-value"),
        pytest.param("s", "caf\u00e9", {}, id="non-ascii-value"),
        pytest.param("s", "v", {"path": "/; Domain=evil.example"}, id="attribute-in-path"),
        pytest.param("s", "v", {"path": "relative"}, id="relative-path"),
        pytest.param("s", "v", {"domain": "example.com\r\nX: y"}, id="header-in-domain"),
    ],
)
def test_nothing_written_can_add_an_attribute_or_a_header(name: str, value: str, where: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        set_cookie(name, value, **{"path": "/", "max_age": 1, "secure": True, **where})


@pytest.mark.parametrize(
    "where",
    [
        pytest.param({"name": "a;b"}, id="name"),
        pytest.param({"path": "/; Domain=evil.example"}, id="path"),
        pytest.param({"domain": "example.com\r\nX: y"}, id="domain"),
    ],
)
def test_a_deletion_cookie_is_checked_alike(where: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        deletion_cookie(**{"name": "s", "path": "/", "secure": True, **where})
