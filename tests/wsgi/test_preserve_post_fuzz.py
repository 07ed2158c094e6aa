"""Fuzzing preserve_post (hypothesis): random bodies, content types, lengths and Fetch metadata to a kept path.

Raw WSGI environs POST to ``/forms/...`` (``protected_paths`` and ``preserve_post``) without a
session.  Whatever arrives, these hold:

* the answer is 303 (kept, to the provider), 401 (not a form submission), 400, 403, 411,
  413 or 415 (a page saying the form was not kept) -- never a 5xx, never a traceback;
* no header carries CR or LF;
* exactly one record is stored and one transaction cookie set with a 303, and none otherwise;
* a body over ``preserve_post_max_body`` or unsized is never read;
* a same-origin form built from random (name, value) pairs is kept whenever a browser form
  could send every pair back unchanged, and after the sign-in the page re-posts exactly
  those pairs, in order, to the same path and query.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sso_middleware import SSOMiddleware
from sso_middleware._wsgi.preserved_post import MAX_FIELDS, sendable

from ..conftest import SESSION_SECRET, legacy_app
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider
from .test_fuzz import Untouchable, call, environ_for
from .test_preserve_post import parse_page

LIMIT = 4096
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ALLOWED = {303, 400, 401, 403, 411, 413, 415}
FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = st.sampled_from([FORM, FORM + "; charset=UTF-8", FORM + '; charset="utf8"', FORM + "; charset=latin1",
                                 "APPLICATION/X-WWW-FORM-URLENCODED", "multipart/form-data; boundary=XX",
                                 "application/json", "text/plain", "", "application/x-www-form-urlencodedx"])
SITES = st.sampled_from(["same-origin", "same-site", "cross-site", "none", None])
ORIGINS = st.sampled_from([BASE_URL, "https://evil.example", "null", "https://APP2.example", BASE_URL + ":443", None])
MODES = st.sampled_from(["navigate", "cors", "no-cors", None])
TEXT = st.text(max_size=30)
#: Mostly text a browser form can send back (line breaks as CRLF, no NUL), some of any kind.
SAFE = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=30)
FIELD_TEXT = st.one_of(SAFE, st.tuples(SAFE, SAFE).map("\r\n".join), TEXT)
PAIRS = st.lists(st.tuples(st.one_of(SAFE.filter(bool), TEXT), FIELD_TEXT), max_size=8)
PATHS = st.sampled_from(["/forms", "/forms/a", "/forms/a/b", "//forms/x", "/forms/%C3%A9", "/forms/\xc3\xa9 x"])
QUERIES = st.sampled_from(["", "x=1", "a=%20b&c", "q='\"<>", "é=1"])


class Target:
    def __init__(self, directory: str) -> None:
        self.provider = FakeProvider()
        self.directory = directory
        self.middleware = SSOMiddleware(
            legacy_app, issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=BASE_URL,
            session_secret=SESSION_SECRET, session_data_dir=directory, protected_paths="/forms",
            preserve_post="/forms", preserve_post_max_body=LIMIT, http_transport=self.provider.transport(),
        )

    def records(self) -> int:
        return sum(name.startswith("sso-post-") for _dir, _dirs, files in os.walk(self.directory) for name in files)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield Target(str(tmp_path_factory.mktemp("fuzz-preserve") / "sessions"))


def headers_for(site: Any, origin: Any, mode: Any, content_type: str) -> dict[str, str]:
    headers = {"Content-Type": content_type, "Accept": "text/html"}
    for name, value in (("Sec-Fetch-Site", site), ("Origin", origin), ("Sec-Fetch-Mode", mode)):
        if value is not None:
            headers[name] = value
    return headers


def check_answer(target: Target, status: int, headers: list[tuple[str, str]], body: bytes, before: int) -> None:
    assert status in ALLOWED, (status, body[:300])
    assert b"Traceback" not in body
    for name, value in headers:
        assert "\r" not in name + value and "\n" not in name + value
    tx = [value for name, value in headers if name == "Set-Cookie" and "_tx_" in value]
    if status == 303:
        location = dict(headers)["Location"]
        assert location.startswith(target.provider.discovery()["authorization_endpoint"] + "?")
        assert target.records() == before + 1 and len(tx) == 1
    else:
        assert target.records() == before and not tx


@FUZZ
@given(site=SITES, origin=ORIGINS, mode=MODES, content_type=CONTENT_TYPES, path=PATHS, query=QUERIES,
       body=st.one_of(st.binary(max_size=200), PAIRS.map(lambda pairs: urlencode(pairs).encode())),
       length=st.sampled_from(["exact", "short", "long", "none", "garbage", "chunked"]))
def test_any_post_gets_a_clean_answer(target: Target, site: Any, origin: Any, mode: Any, content_type: str,
                                      path: str, query: str, body: bytes, length: str) -> None:
    environ = environ_for("POST", path, query, body, headers_for(site, origin, mode, content_type))
    if length == "short":
        environ["CONTENT_LENGTH"] = str(max(0, len(body) - 1))
    elif length == "long":
        environ["CONTENT_LENGTH"] = str(len(body) + 5)
    elif length == "none":
        del environ["CONTENT_LENGTH"]
    elif length == "garbage":
        environ["CONTENT_LENGTH"] = "12abc"
    elif length == "chunked":
        del environ["CONTENT_LENGTH"]
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    before = target.records()
    status, headers, answer = call(target.middleware, environ)
    check_answer(target, status, headers, answer, before)


@FUZZ
@given(content_type=CONTENT_TYPES, length=st.one_of(st.integers(LIMIT + 1, 2**70).map(str), st.just("chunked")),
       site=SITES)
def test_a_body_over_the_bound_or_unsized_is_never_read(target: Target, content_type: str, length: str,
                                                        site: Any) -> None:
    environ = environ_for("POST", "/forms/x", "", b"", headers_for(site, BASE_URL, "navigate", content_type))
    untouchable = Untouchable()
    environ["wsgi.input"] = untouchable
    if length == "chunked":
        del environ["CONTENT_LENGTH"]
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        environ["CONTENT_LENGTH"] = length
    before = target.records()
    status, headers, answer = call(target.middleware, environ)
    check_answer(target, status, headers, answer, before)
    assert untouchable.touched == 0 and status in (403, 411, 413, 415)


@FUZZ
@given(pairs=PAIRS, path=PATHS, query=QUERIES)
def test_a_same_origin_form_comes_back_exactly(target: Target, pairs: list[tuple[str, str]], path: str,
                                              query: str) -> None:
    body = urlencode(pairs).encode()
    environ = environ_for("POST", path, query, body,
                          headers_for("same-origin", BASE_URL, "navigate", FORM))
    keepable = len(body) <= LIMIT and len(pairs) <= MAX_FIELDS and all(
        name and sendable(name) and sendable(value) and (name.lower() != "_charset_" or value == "UTF-8")
        for name, value in pairs)
    event("kept" if keepable else "refused")
    before = target.records()
    status, headers, answer = call(target.middleware, environ)
    check_answer(target, status, headers, answer, before)
    if not keepable:
        assert status == 400, answer[:300]
        return
    assert status == 303, answer[:300]
    location = dict(headers)["Location"]
    jar = SimpleCookie()
    for name, value in headers:
        if name == "Set-Cookie":
            jar.load(value)
    callback = urlsplit(target.provider.authorize(location))
    cookie = "; ".join(f"{morsel.key}={morsel.coded_value}" for morsel in jar.values())
    environ = environ_for("GET", callback.path, callback.query, b"", {"Cookie": cookie})
    status, headers, answer = call(target.middleware, environ)
    assert status == 200, answer[:300]
    page = parse_page(answer.decode("utf-8"))
    assert page.fields == pairs
    assert page.form is not None
    action = urlsplit(page.form["action"] or "")
    assert (action.scheme, action.netloc) == ("https", "app2.example")
    assert unquote(action.path, encoding="latin-1") == path.replace("//", "/")  # PATH_INFO is decoded text
    assert unquote(action.query, encoding="latin-1") == unquote(query, encoding="latin-1")
    assert target.records() == before

