"""checked_target: open-redirect probes, accepted and refused."""

from __future__ import annotations

from typing import Optional
from urllib.parse import quote

import pytest

from sso_middleware._policy.redirects import MAX_TARGET_LENGTH, absolute_target, app_path, checked_target

OWN = "https://app2.example"
ALLOWED = ("https://app3.example", "https://api.example:8443")


def encoded(text: str, times: int) -> str:
    for _ in range(times):
        text = quote(text, safe="")
    return text


def check(value: Optional[str]) -> Optional[str]:
    return checked_target(value, OWN, ALLOWED)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/", id="root"),
        pytest.param("/dashboard", id="path"),
        pytest.param("/a?b=c#d", id="query-and-fragment"),
        pytest.param("/a/b/c.html", id="nested"),
        pytest.param("/caf%C3%A9", id="encoded-utf8"),
        pytest.param("/search?q=a%20b&next=%2Fhome", id="encoded-query"),
        pytest.param("/a?next=https://evil.com", id="url-in-query"),
        pytest.param("/a#//evil.com", id="slashes-in-fragment"),
        pytest.param("/a//b", id="double-slash-inside"),
        pytest.param("/~user/x;p=1", id="tilde-and-params"),
        pytest.param("/100%25", id="encoded-percent"),
        pytest.param("/files/a%252Fb", id="encoded-slash-in-the-middle"),
        pytest.param("/.%2F%2Fevil.com", id="dot-segment-stays-on-own-host"),
        pytest.param("https://app2.example", id="own-origin-no-path"),
        pytest.param("https://app2.example/dashboard?x=1", id="own-origin"),
        pytest.param("https://APP2.example/dashboard", id="own-origin-upper-case-host"),
        pytest.param("HTTPS://app2.example/x", id="own-origin-upper-case-scheme"),
        pytest.param("https://app2.example:443/x", id="own-origin-explicit-default-port"),
        pytest.param("https://app3.example/welcome", id="allowed-origin"),
        pytest.param("https://app3.example:443/welcome", id="allowed-origin-explicit-default-port"),
        pytest.param("https://api.example:8443/x", id="allowed-origin-with-port"),
    ],
)
def test_accepted_targets(target: str) -> None:
    assert check(target) == target


@pytest.mark.parametrize(
    "target",
    [
        # protocol-relative and backslash tricks
        pytest.param("//evil.com", id="protocol-relative"),
        pytest.param("//evil.com/dashboard", id="protocol-relative-path"),
        pytest.param("///evil.com", id="triple-slash"),
        pytest.param("////evil.com", id="quadruple-slash"),
        pytest.param("/\\evil.com", id="slash-backslash"),
        pytest.param("\\\\evil.com", id="double-backslash"),
        pytest.param("\\/evil.com", id="backslash-slash"),
        pytest.param("/dashboard\\..\\..\\", id="backslash-inside"),
        pytest.param("https://app2.example\\@evil.com", id="backslash-userinfo"),
        # other origins and schemes
        pytest.param("https://evil.com", id="other-origin"),
        pytest.param("https://evil.com/dashboard", id="other-origin-path"),
        pytest.param("http://app2.example/dashboard", id="http-downgrade-of-own"),
        pytest.param("https://app2.example:8443/", id="own-host-other-port"),
        pytest.param("https://app3.example:8443/", id="allowed-host-other-port"),
        pytest.param("http://app3.example/", id="allowed-host-http"),
        pytest.param("https://api.example/x", id="allowed-port-missing"),
        pytest.param("https://app2.example.evil.com/", id="own-host-as-prefix"),
        pytest.param("https://evilapp2.example/", id="own-host-as-suffix"),
        pytest.param("https://app2.example./", id="trailing-dot-host"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("JavaScript:alert(1)", id="javascript-mixed-case"),
        pytest.param("javascript://app2.example/%0aalert(1)", id="javascript-with-authority"),
        pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
        pytest.param("data:text/html;base64,PHNjcmlwdD4=", id="data-base64"),
        pytest.param("vbscript:msgbox", id="vbscript"),
        pytest.param("ftp://app2.example/", id="ftp-own-host"),
        pytest.param("file:///etc/passwd", id="file"),
        pytest.param("https:evil.com", id="scheme-without-slashes"),
        pytest.param("https:/evil.com", id="scheme-one-slash"),
        pytest.param("https:///evil.com", id="scheme-three-slashes"),
        pytest.param("https:app2.example/x", id="scheme-without-slashes-own-host"),
        pytest.param("evil.com", id="bare-host"),
        pytest.param("evil.com/dashboard", id="bare-host-path"),
        pytest.param("dashboard", id="relative-path"),
        pytest.param("./dashboard", id="dot-relative"),
        pytest.param("../dashboard", id="dot-dot-relative"),
        pytest.param("?next=x", id="query-only"),
        pytest.param("#top", id="fragment-only"),
        # user-info
        pytest.param("https://app2.example@evil.com", id="own-host-as-userinfo"),
        pytest.param("https://app2.example:443@evil.com/", id="own-host-port-as-userinfo"),
        pytest.param("https://evil.com@app2.example", id="userinfo-on-own-host"),
        pytest.param("https://user:pw@app2.example/x", id="credentials-on-own-host"),
        pytest.param("https://@app2.example/x", id="empty-userinfo"),
        pytest.param("https://app3.example@evil.com/", id="allowed-host-as-userinfo"),
        # control characters and whitespace
        pytest.param("/x\r\nSet-Cookie:a=b", id="crlf-header-injection"),
        pytest.param("/x\nLocation: https://evil.com", id="lf"),
        pytest.param("/x\rfoo", id="cr"),
        pytest.param("/\t/evil.com", id="tab-between-slashes"),
        pytest.param("/\n/evil.com", id="newline-between-slashes"),
        pytest.param("/\r/evil.com", id="cr-between-slashes"),
        pytest.param("\t//evil.com", id="leading-tab"),
        pytest.param(" //evil.com", id="leading-space"),
        pytest.param("/ /evil.com", id="space-between-slashes"),
        pytest.param("/dash board", id="space-in-path"),
        pytest.param("/x\x00y", id="nul"),
        pytest.param("/x\x7f", id="del"),
        pytest.param("java\tscript:alert(1)", id="tab-in-scheme"),
        pytest.param("https://app2.example/x\r\nSet-Cookie:a=b", id="crlf-in-absolute"),
        # percent-encoded tricks
        pytest.param("%2F%2Fevil.com", id="encoded-slashes"),
        pytest.param("%2f%2fevil.com", id="encoded-slashes-lower"),
        pytest.param("/%2Fevil.com", id="slash-then-encoded-slash"),
        pytest.param("/%2fevil.com", id="slash-then-encoded-slash-lower"),
        pytest.param("/%2F%2Fevil.com", id="slash-then-two-encoded-slashes"),
        pytest.param("%252F%252Fevil.com", id="double-encoded"),
        pytest.param("/%252F%252Fevil.com", id="slash-then-double-encoded"),
        pytest.param("/%252Fevil.com", id="slash-then-double-encoded-one"),
        pytest.param("/%25252F%25252Fevil.com", id="slash-then-triple-encoded"),
        pytest.param("/%2525252F%2525252Fevil.com", id="slash-then-quadruple-encoded"),
        pytest.param("/%25%32%46%25%32%46evil.com", id="encoded-percent-then-encoded-digits"),
        pytest.param("/%5Cevil.com", id="encoded-backslash"),
        pytest.param("/%25255Cevil.com", id="triple-encoded-backslash"),
        pytest.param("/%2525250D%2525250A", id="quadruple-encoded-crlf"),
        pytest.param("/" + encoded("/evil.com", times=12), id="encoded-twelve-times"),
        pytest.param("/%5cevil.com", id="encoded-backslash-lower"),
        pytest.param("/%255Cevil.com", id="double-encoded-backslash"),
        pytest.param("/x/%5C..%5C..%5Cevil", id="encoded-backslash-inside"),
        pytest.param("/%09/evil.com", id="encoded-tab"),
        pytest.param("/%0D%0ASet-Cookie:a=b", id="encoded-crlf"),
        pytest.param("/%250D%250ASet-Cookie:a=b", id="double-encoded-crlf"),
        pytest.param("/%00", id="encoded-nul"),
        pytest.param("/%7F", id="encoded-del"),
        pytest.param("https%3A%2F%2Fevil.com", id="encoded-absolute-url"),
        pytest.param("javascript%3Aalert(1)", id="encoded-javascript"),
        # non-ASCII
        pytest.param("https://app2.example\u3002evil.com/", id="ideographic-full-stop"),
        pytest.param("https://evil.com\uff0fapp2.example", id="fullwidth-solidus"),
        pytest.param("/\uff0fevil.com", id="fullwidth-solidus-path"),
        pytest.param("https://\u0430pp2.example/", id="cyrillic-a-homoglyph"),
        pytest.param("/caf\u00e9", id="raw-non-ascii-path"),
        pytest.param("/\u2028/evil.com", id="line-separator"),
        pytest.param("/\u00a0/evil.com", id="nbsp"),
        pytest.param("https://xn--pp2-8cd.example/", id="punycode-other-host"),
        # empty and overlong
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
        pytest.param("/" + "a" * MAX_TARGET_LENGTH, id="overlong-path"),
        pytest.param("https://app2.example/" + "a" * MAX_TARGET_LENGTH, id="overlong-absolute"),
        # malformed
        pytest.param("https://app2.example:99999/", id="bad-port"),
        pytest.param("https://app2.example:port/", id="non-numeric-port"),
        pytest.param("https://[app2.example/", id="unbalanced-bracket"),
        pytest.param("https://", id="scheme-only"),
    ],
)
def test_refused_targets(target: Optional[str]) -> None:
    assert check(target) is None


def test_longest_accepted_target() -> None:
    target = "/" + "a" * (MAX_TARGET_LENGTH - 1)
    assert check(target) == target
    assert check(target + "a") is None


def test_no_allowed_origins_means_own_origin_only() -> None:
    assert checked_target("https://app3.example/", OWN, ()) is None
    assert checked_target("https://app2.example/x", OWN, ()) == "https://app2.example/x"


def test_own_origin_with_port() -> None:
    own = "http://127.0.0.1:5000"
    assert checked_target("http://127.0.0.1:5000/x", own, ()) == "http://127.0.0.1:5000/x"
    assert checked_target("http://127.0.0.1:5001/x", own, ()) is None
    assert checked_target("http://localhost:5000/x", own, ()) is None


@pytest.mark.parametrize(
    ("target", "base_url", "expected"),
    [
        pytest.param("/dashboard", "https://app2.example", "https://app2.example/dashboard", id="relative"),
        pytest.param("/x?y=1", "https://app2.example/prefix", "https://app2.example/prefix/x?y=1", id="prefix"),
        pytest.param("https://app3.example/w", "https://app2.example", "https://app3.example/w", id="absolute"),
    ],
)
def test_absolute_target(target: str, base_url: str, expected: str) -> None:
    assert absolute_target(target, base_url) == expected


# -- app_path: which application path a checked target leads to ---------------------------


@pytest.mark.parametrize(
    ("target", "base_url", "expected"),
    [
        # relative targets are paths of this application, whatever base_url's prefix
        pytest.param("/", OWN, "/", id="root"),
        pytest.param("/billing", OWN, "/billing", id="relative"),
        pytest.param("/billing/x?y=1", OWN, "/billing/x", id="query-stripped"),
        pytest.param("/billing#top", OWN, "/billing", id="fragment-stripped"),
        pytest.param("/billing?next=/admin#/vault", OWN, "/billing", id="paths-in-query-and-fragment-ignored"),
        pytest.param("/?x=1", OWN, "/", id="root-with-query"),
        pytest.param("/b%69lling", OWN, "/billing", id="percent-decoded"),
        # The form PATH_INFO has (PEP 3333: the bytes as latin-1 text), which access rules compare with.
        pytest.param("/caf%C3%A9", OWN, "/caf\xc3\xa9", id="percent-decoded-as-path-info"),
        pytest.param("/a%2Fb", OWN, "/a/b", id="encoded-slash-decoded"),
        pytest.param("/a%252Fb", OWN, "/a%2Fb", id="decoded-once"),
        pytest.param("/x/../billing", OWN, "/x/../billing", id="dot-segments-left-to-the-rules"),
        pytest.param("/billing", OWN + "/app", "/billing", id="relative-with-prefix"),
        # absolute targets on the application's own origin
        pytest.param("https://app2.example", OWN, "/", id="absolute-no-path"),
        pytest.param("https://app2.example/", OWN, "/", id="absolute-root"),
        pytest.param("https://app2.example/billing?x=1#f", OWN, "/billing", id="absolute"),
        pytest.param("https://APP2.example:443/billing", OWN, "/billing", id="absolute-spelled-otherwise"),
        pytest.param("https://app2.example/b%69lling", OWN, "/billing", id="absolute-percent-decoded"),
        pytest.param("https://app2.example/app/billing", OWN + "/app", "/billing", id="absolute-below-prefix"),
        pytest.param("https://app2.example/app", OWN + "/app", "/", id="absolute-prefix-itself"),
        pytest.param("https://app2.example/app/", OWN + "/app", "/", id="absolute-prefix-slash"),
        pytest.param("https://app2.example/app?x=1", OWN + "/app", "/", id="absolute-prefix-query"),
        pytest.param("https://app2.example/application", OWN + "/app", None, id="prefix-boundary"),
        pytest.param("https://app2.example/app-x/billing", OWN + "/app", None, id="prefix-boundary-dash"),
        pytest.param("https://app2.example/billing", OWN + "/app", None, id="absolute-beside-prefix"),
        pytest.param("https://app2.example/", OWN + "/app", None, id="absolute-root-beside-prefix"),
        pytest.param("https://app2.example/a/b/c", OWN + "/a/b", "/c", id="two-segment-prefix"),
        pytest.param("https://app2.example:8443/x", "https://app2.example:8443/app", None,
                     id="port-origin-beside-prefix"),
        pytest.param("https://app2.example:8443/app/x", "https://app2.example:8443/app", "/x", id="port-origin"),
        # other origins are not this application
        pytest.param("https://app3.example/billing", OWN, None, id="other-origin"),
        pytest.param("https://api.example:8443/billing", OWN, None, id="other-origin-port"),
        pytest.param("https://app2.example:8443/billing", OWN, None, id="own-host-other-port"),
        pytest.param("http://app2.example/billing", OWN, None, id="own-host-http"),
        pytest.param("https://app3.example/app/billing", OWN + "/app", None, id="other-origin-same-prefix"),
    ],
)
def test_app_path(target: str, base_url: str, expected: Optional[str]) -> None:
    assert app_path(target, base_url) == expected


def test_app_path_of_every_accepted_own_target_is_a_path() -> None:
    """Whatever checked_target lets through for this origin maps to a path starting with one slash."""
    for target in ("/", "/a?b=c#d", "/a//b", "/~user/x;p=1", "/100%25", "https://app2.example",
                   "https://app2.example/dashboard?x=1", "HTTPS://app2.example/x"):
        assert check(target) == target
        path = app_path(target, OWN)
        assert path is not None and path.startswith("/"), target
