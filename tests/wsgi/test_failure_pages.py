"""Failure pages the operator brands (``failure_page_template``) in the browser's language, through the middleware.

The template is a file read when the middleware is built; the pages it brands are the
failure page (``/auth/failure?error=``, also the one a failed sign-in is sent to), the
403 page of the access rules and the store-outage page of the pass-through path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sso_middleware import ConfigError, SSOMiddleware
from sso_middleware._translations import GERMAN
from sso_middleware.errors import InvalidState

from ..conftest import browser_for
from ..fakes import FakeProvider
from .test_handlers import sign_in

BRAND = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{title} - ACME</title>
<style>main{max-width:40rem} h1{color:#a00}</style></head>
<body><header>ACME intranet</header><main><h1>{title}</h1><p id="message">{message}</p>
<p>Code <code id="code">{code}</code></p><a id="home" href="{home}">ACME</a></main></body></html>
"""


@pytest.fixture
def template(tmp_path: Path) -> str:
    path = tmp_path / "failure.html"
    path.write_text(BRAND, encoding="utf-8")
    return str(path)


def test_the_failure_page_is_branded_and_german(make_browser: Callable[..., webtest.TestApp], template: str) -> None:
    browser = make_browser(failure_page_template=template)
    response = browser.get("/auth/failure", {"error": "invalid_state"}, headers={"Accept-Language": "de-DE,de;q=0.9"},
                           status=400)
    assert "<header>ACME intranet</header>" in response.text and '<html lang="de">' in response.text
    assert f'<p id="message">{GERMAN["invalid_state"]}</p>' in response.text
    assert '<code id="code">invalid_state</code>' in response.text
    assert '<a id="home" href="https://app2.example/">' in response.text
    assert response.headers["Content-Language"] == "de" and response.headers["Vary"] == "Accept-Language"
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Content-Type-Options"] == "nosniff"
    english = browser.get("/auth/failure", {"error": "invalid_state"}, headers={"Accept-Language": "en-US"},
                          status=400)
    assert f'<p id="message">{InvalidState.message}</p>' in english.text
    assert english.headers["Content-Language"] == "en"


@pytest.mark.parametrize("error", [
    "<script>alert(document.cookie)</script>", '"><script>alert(1)</script>', "provider_error:<script>x</script>",
    "{message}{title}", "invalid_state<script>",
])
def test_a_crafted_error_in_the_link_is_no_markup_on_the_branded_page(
        make_browser: Callable[..., webtest.TestApp], template: str, error: str) -> None:
    browser = make_browser(failure_page_template=template)
    for language in ("de", "en"):
        response = browser.get("/auth/failure", {"error": error}, headers={"Accept-Language": language}, status="*")
        assert response.status_int in (400, 401)
        assert "<script" not in response.text
        assert '<code id="code">unknown_error</code>' in response.text or (
            '<code id="code">provider_error</code>' in response.text)


def test_a_failed_sign_in_lands_on_the_branded_page(make_browser: Callable[..., webtest.TestApp],
                                                    provider: FakeProvider, template: str) -> None:
    browser = make_browser(failure_page_template=template)
    response = browser.get("/auth/callback", {"state": "x" * 43, "code": "c"})
    page = browser.get(response.location, headers={"Accept-Language": "de"}, status=400)
    assert '<code id="code">invalid_state</code>' in page.text and GERMAN["invalid_state"] in page.text


def test_the_403_page_of_the_access_rules_is_branded(make_browser: Callable[..., webtest.TestApp],
                                                     provider: FakeProvider, template: str) -> None:
    browser = make_browser(failure_page_template=template, access_rules="/admin claim roles includes admin")
    sign_in(browser, provider)
    page = browser.get("/admin", headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate",
                                          "Accept-Language": "de"}, status=403)
    assert "<header>ACME intranet</header>" in page.text and "Zugriff verweigert" in page.text
    assert '<code id="code">forbidden</code>' in page.text


@pytest.mark.parametrize(("content", "named"), [
    pytest.param(None, "cannot be read", id="missing-file"),
    pytest.param("<p>{title} {message}</p>", "{code}", id="missing-placeholder"),
    pytest.param("{title}{message}{code}{user}", "{user}", id="unknown-placeholder"),
])
def test_a_bad_template_stops_the_build_naming_the_setting(make_middleware: Callable[..., SSOMiddleware],
                                                           tmp_path: Path, content: Any, named: str) -> None:
    path = tmp_path / "page.html"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        make_middleware(failure_page_template=str(path))
    assert caught.value.setting == "failure_page_template" and named in str(caught.value)


def test_the_template_is_read_once_at_build(make_middleware: Callable[..., SSOMiddleware], template: str) -> None:
    middleware = make_middleware(failure_page_template=template)
    Path(template).write_text("changed", encoding="utf-8")  # the running middleware keeps what it checked
    page = browser_for(middleware).get("/auth/failure", {"error": "invalid_state"}, status=400)
    assert "<header>ACME intranet</header>" in page.text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(accept=st.one_of(st.text(max_size=60), st.sampled_from(["de", "de;q=0", "*;q=0", "de-DE,en;q=0.1"]),
                        st.binary(max_size=40).map(lambda data: data.decode("latin-1"))),
       error=st.one_of(st.sampled_from(sorted(GERMAN)), st.text(max_size=40)))
def test_any_language_header_and_error_get_a_clean_page(make_browser: Callable[..., webtest.TestApp], template: str,
                                                        accept: str, error: str) -> None:
    browser = make_browser(failure_page_template=template)
    environ = {"HTTP_ACCEPT_LANGUAGE": accept}
    response = browser.get("/auth/failure", {"error": error}, extra_environ=environ, status="*")
    assert 400 <= response.status_int < 600 and response.status_int not in (500, 501)
    assert response.headers["Content-Language"] in ("en", "de")
    assert f'<html lang="{response.headers["Content-Language"]}">' in response.text
    assert "<script" not in response.text.lower() and "Traceback" not in response.text
