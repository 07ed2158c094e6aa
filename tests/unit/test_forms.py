"""The test kit's HTML form reader (``sso_middleware.testing.forms``): what a submit of a provider page sends."""

from __future__ import annotations

import requests

from sso_middleware.testing.forms import auto_submit_form, form_by_id, forms
from sso_middleware.testing.transport import make_response

LOGIN_PAGE = b"""<html><body>
<form id="login-form" action="/interaction/abc/login" method="post">
  <input type="hidden" name="xsrf" value="t&amp;k">
  <input name="login"><input type="password" name="password" value="">
  <input type="checkbox" name="remember" value="yes">
  <input type="submit" name="go" value="Sign in">
</form>
<form id="abort-form" action="/interaction/abc/abort" method="post"></form>
</body></html>"""

FORM_POST = b"""<html><body onload="document.forms[0].submit()">
<form method="post" action="https://rp.example/auth/callback">
<input type="hidden" name="code" value="c1"><input type="hidden" name="state" value="s1">
</form><script>document.forms[0].submit()</script></body></html>"""


def page(body: bytes, content_type: str = "text/html; charset=utf-8") -> requests.Response:
    return make_response(requests.Request("GET", "https://op.example/page").prepare(), 200, body, content_type)


def test_the_forms_and_the_fields_a_submit_sends() -> None:
    found = forms(page(LOGIN_PAGE))
    assert [form.attrs.get("id") for form in found] == ["login-form", "abort-form"]
    # buttons and unticked boxes send nothing; character references are decoded
    assert found[0].fields == {"xsrf": "t&k", "login": "", "password": ""}
    assert found[0].attrs["action"] == "/interaction/abc/login"


def test_a_form_by_its_id() -> None:
    response = page(LOGIN_PAGE)
    abort = form_by_id(response, "abort-form")
    assert abort is not None and abort.attrs["action"].endswith("/abort")
    assert form_by_id(response, "op.logoutForm") is None


def test_a_page_that_is_not_html_has_no_forms() -> None:
    assert forms(page(LOGIN_PAGE, "application/json")) == []


def test_the_self_submitting_page_is_recognised() -> None:
    form = auto_submit_form(page(FORM_POST))
    assert form is not None and form.fields == {"code": "c1", "state": "s1"}
    assert auto_submit_form(page(LOGIN_PAGE)) is None  # a form, but nothing submits it by itself
