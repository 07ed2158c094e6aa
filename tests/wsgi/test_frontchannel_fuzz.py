"""Property-based fuzzing of the front-channel logout route (hypothesis), as raw WSGI environs.

Random methods, query strings (``iss``/``sid`` right, wrong, repeated, missing, garbage,
undecodable bytes, huge), cookies (the signed-in user's real one, tampered, garbage) and
headers.  Whatever arrives:

* the answer is 200, 400, 405 or 414 -- never a 5xx, never a redirect, no traceback;
* every answer carries ``Cache-Control: no-cache, no-store``, ``Pragma: no-cache`` and the
  ``frame-ancestors`` of the provider's origin only, and no ``X-Frame-Options``; no header
  holds CR/LF;
* the page names only a code of the catalogue (or ``signed_out``), escaped;
* the signed-in user's session ends exactly when the request was a valid ``iss``/``sid``
  pair naming its ``sid``, or named neither and carried its real cookie -- never otherwise;
* nothing is stored: no request creates a session.
"""

from __future__ import annotations

import html
import io
import re
from typing import Any, Callable
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from webob.compat import parse_qsl_text

from sso_middleware import SSOMiddleware
from sso_middleware.errors import ERRORS

from ..conftest import SESSION_SECRET, browser_for, legacy_app
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider
from .test_backchannel import sign_in

PATH = "/auth/frontchannel-logout"
SID = "provider-session-1"
ISSUERS = st.sampled_from([ISSUER, ISSUER, ISSUER, ISSUER.rstrip("/"), "https://evil.example/", "",
                           "https://op.example/x", ISSUER + "\x00", "HTTPS://OP.EXAMPLE/"])
SIDS = st.one_of(st.sampled_from([SID, SID, SID, "provider-session-2", "", "a" * 255, "a" * 256, SID + " ", "%00",
                                  SID.upper()]),
                 st.text(max_size=40))
OTHER = st.tuples(st.sampled_from(["x", "logout", "state", "ISS", "Sid", "iss[]"]), st.text(max_size=30))


def encoded(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)


@st.composite
def queries(draw: Any) -> str:
    kind = draw(st.sampled_from(["pair", "pair", "iss", "sid", "none", "repeat", "raw", "huge"]))
    pairs: list[tuple[str, str]] = []
    if kind in ("pair", "iss", "repeat"):
        pairs.append(("iss", draw(ISSUERS)))
    if kind in ("pair", "sid", "repeat"):
        pairs.append(("sid", draw(SIDS)))
    if kind == "repeat":
        pairs.append((draw(st.sampled_from(["iss", "sid"])), draw(st.one_of(ISSUERS, SIDS))))
    pairs.extend(draw(st.lists(OTHER, max_size=2)))
    pairs = draw(st.permutations(pairs))
    if kind == "raw":
        return draw(st.binary(max_size=80)).decode("latin-1")
    if kind == "huge":
        pairs.append(("x", "y" * draw(st.integers(4000, 20000))))
    return encoded(pairs)


def environ_for(method: str, query: str, cookie: str, headers: dict[str, str]) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": PATH, "QUERY_STRING": query, "SCRIPT_NAME": "",
        "SERVER_NAME": "app2.example", "SERVER_PORT": "443", "HTTP_HOST": "app2.example",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0), "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def call(app: Callable[..., Any], environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    body = b"".join(app(environ, start_response))
    return int(captured["status"].split()[0]), captured["headers"], body


class Target:
    """A middleware with the route on, and alice signed in with ``sid`` ``provider-session-1``."""

    def __init__(self, directory: str) -> None:
        self.provider = FakeProvider()
        self.middleware = SSOMiddleware(
            legacy_app, issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=BASE_URL,
            session_secret=SESSION_SECRET, session_data_dir=directory, frontchannel_logout_path=PATH,
            http_transport=self.provider.transport(),
        )
        self.name = self.middleware.config.session_cookie_name
        self.cookie = ""

    def signed_in(self) -> bool:
        return b'"remote_user": "alice"' in call(self.middleware, {
            **environ_for("GET", "", self.cookie, {}), "PATH_INFO": "/page"})[2]

    def signed_in_cookie(self) -> str:
        """``name=value`` of alice's session, signing in again when a request ended it."""
        if not self.cookie or not self.signed_in():
            browser = browser_for(self.middleware)
            sign_in(browser, self.provider)
            self.cookie = f"{self.name}={browser.cookies[self.name]}"
        return self.cookie


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    return Target(str(tmp_path_factory.mktemp("frontchannel-fuzz")))


def cookies(real: str) -> st.SearchStrategy[str]:
    name, _, value = real.partition("=")
    return st.one_of(
        st.just(""), st.just(real), st.just(real), st.just(real + "; other=1"),
        st.text(max_size=40).map(lambda text: f"{name}={text}"),
        st.integers(0, max(0, len(value) - 1)).map(lambda cut: f"{name}={value[:cut]}"),
        st.just(f"{name}={value[::-1]}"), st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=60),
    )


def expected_end(method: str, query: str, cookie: str, real: str) -> bool:
    """Whether a correct route ends alice's session for this request."""
    if method != "GET" or len(query) > 4096:
        return False
    try:
        pairs = list(parse_qsl_text(query))  # WebOb's parser (``&`` and ``;``), as every route reads queries
    except (UnicodeDecodeError, ValueError):
        return False  # unreadable: refused, whatever it holds
    issuers = [value for name, value in pairs if name == "iss"]
    sids = [value for name, value in pairs if name == "sid"]
    if not issuers and not sids:
        return cookie in (real, real + "; other=1")  # the cookie form: only alice's real cookie
    return issuers == [ISSUER] and sids == [SID]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_any_request_gets_a_clean_answer_and_ends_only_what_it_names(target: Target, data: Any) -> None:
    real = target.signed_in_cookie()
    method = data.draw(st.sampled_from(["GET"] * 8 + ["POST", "HEAD", "PUT", "OPTIONS"]))
    query = data.draw(queries())
    cookie = data.draw(cookies(real))
    headers = data.draw(st.dictionaries(
        st.sampled_from(["Accept", "Sec-Fetch-Dest", "Sec-Fetch-Site", "Referer", "Origin", "Accept-Language"]),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40), max_size=3))
    target.cookie = real
    status, response_headers, body = call(target.middleware, environ_for(method, query, cookie, headers))

    assert status in (200, 400, 405, 414), (status, method, query)
    named = {name.lower(): value for name, value in response_headers}
    for name, value in response_headers:
        assert "\r" not in name + value and "\n" not in name + value
        value.encode("latin-1")
    assert named["cache-control"] == "no-cache, no-store" and named["pragma"] == "no-cache"
    assert named["content-security-policy"] == "default-src 'none'; frame-ancestors https://op.example"
    assert "x-frame-options" not in named and "location" not in named
    text = body.decode()
    assert "Traceback" not in text
    if method != "HEAD":
        shown = re.search(r'data-code="([^"]*)">([^<]*)</p>', text)
        assert shown is not None, text
        code = html.unescape(shown.group(1))
        assert code == "signed_out" or code in ERRORS, code
    ended = not target.signed_in()
    event(f"{status} {'ended' if ended else 'kept'}")  # --hypothesis-show-statistics: both kinds happen
    assert ended == expected_end(method, query, cookie, real), (method, query, cookie == real, status)
    if ended:
        target.cookie = ""
