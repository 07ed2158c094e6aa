"""The doctor's checks of the failure page template and the session endpoint (:mod:`sso_middleware._doctor.checks`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sso_middleware import SSOConfig
from sso_middleware._doctor.checks import CHECKS
from sso_middleware._doctor.checks.pages import check_failure_pages, check_session_endpoint

from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER

FULL = "<html lang=\"{lang}\"><title>{title}</title><p>{message}</p><code>{code}</code><a href=\"{home}\">x</a></html>"


class Ctx:
    def __init__(self, **settings: Any) -> None:
        self.config = SSOConfig(issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=BASE_URL,
                                session_secret="s" * 40, **settings)


def findings(check: Any, **settings: Any) -> list[tuple[str, str]]:
    return list(check(Ctx(**settings)))


@pytest.fixture
def template(tmp_path: Path) -> Path:
    path = tmp_path / "page.html"
    path.write_text(FULL, encoding="utf-8")
    return path


def test_both_checks_are_on_the_list() -> None:
    assert {"failure pages", "session endpoint"} <= {check.name for check in CHECKS}


def test_built_in_pages() -> None:
    assert findings(check_failure_pages) == [("OK", "built-in failure pages, in the browser's language (en, de; "
                                                    "Accept-Language)")]
    assert findings(check_failure_pages, serve_failure_page=False) == []


def test_a_template_is_reported_with_its_placeholders(template: Path) -> None:
    ((status, message),) = findings(check_failure_pages, failure_page_template=str(template))
    assert status == "OK" and "{title}, {message}, {code}, {lang}, {home}" in message and str(template) in message


def test_a_template_without_lang_and_an_unserved_page_warn(template: Path) -> None:
    template.write_text("{title}{message}{code}", encoding="utf-8")
    found = findings(check_failure_pages, failure_page_template=str(template), serve_failure_page=False)
    assert [status for status, _ in found] == ["OK", "WARN", "WARN"]
    assert "{lang}" in found[1][1] and "serve_failure_page" in found[2][1]


def test_a_template_broken_since_the_build_fails(template: Path) -> None:
    ctx = Ctx(failure_page_template=str(template))
    template.write_text("{title}", encoding="utf-8")
    ((status, message),) = list(check_failure_pages(ctx))  # type: ignore[arg-type]
    assert status == "FAIL" and "{message}, {code}" in message
    template.unlink()
    ((status, message),) = list(check_failure_pages(ctx))  # type: ignore[arg-type]
    assert status == "FAIL" and "cannot be read" in message


def test_the_session_endpoint() -> None:
    assert findings(check_session_endpoint) == []
    found = findings(check_session_endpoint, session_endpoint_path="/auth/session")
    assert [status for status, _ in found] == ["OK", "INFO"] and f"{BASE_URL}/auth/session" in found[0][1]
    found = findings(check_session_endpoint, session_endpoint_path="/auth/session", keep_access_token=True)
    assert [status for status, _ in found] == ["OK", "WARN"] and "no_refresh_token" in found[1][1]
    found = findings(check_session_endpoint, session_endpoint_path="/auth/session", keep_access_token=True,
                     scope="openid offline_access")
    assert [status for status, _ in found] == ["OK"]
