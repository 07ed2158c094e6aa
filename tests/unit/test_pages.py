"""The failure and 403 pages (:mod:`sso_middleware._wsgi.pages`): languages, templates, escaping.

The attack tests put markup and placeholders where a crafted link or a provider could
try to put them (the code, the message, the start page's URL) and check that the page
carries them only as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sso_middleware import ConfigError
from sso_middleware._config.page_template import MAX_TEMPLATE_BYTES, load, parse
from sso_middleware._translations import GERMAN
from sso_middleware._wsgi.pages import failure_page, forbidden, page_language, render
from sso_middleware.errors import ERRORS, InvalidState

TEMPLATE = """<!doctype html><html lang="{lang}"><head><title>{title} | ACME</title>
<style>body{color:#123} .x{margin:0}</style></head>
<body class="acme"><h1>{title}</h1><p class="m">{message}</p><small data-code="{code}">{code}</small>
<a href="{home}">home</a> {{not a placeholder}}</body></html>"""


def environ(accept_language: str = "") -> dict[str, Any]:
    return {"HTTP_ACCEPT_LANGUAGE": accept_language} if accept_language else {}


@pytest.mark.parametrize(("header", "lang"), [
    pytest.param("", "en", id="none"),
    pytest.param("de", "de", id="de"),
    pytest.param("DE", "de", id="case"),
    pytest.param("de-DE,de;q=0.9,en;q=0.8", "de", id="browser-german"),
    pytest.param("de-CH", "de", id="region-falls-back-to-language"),
    pytest.param("de-AT-x-foo", "de", id="longer-tag"),
    pytest.param("en-GB,de;q=0.5", "en", id="english-first"),
    pytest.param("en;q=0.9,de", "de", id="q-values-beat-order"),
    pytest.param("fr;q=1,de;q=0.2,en;q=0.1", "de", id="unavailable-first-then-best"),
    pytest.param("de;q=0", "en", id="q0-refuses-german"),
    pytest.param("fr", "en", id="only-unavailable"),
    pytest.param("*", "en", id="wildcard"),
    pytest.param("garbage;;q=x", "en", id="unparsable"),
    pytest.param("de;q=2", "en", id="q-out-of-range-is-invalid"),
    pytest.param("\x7f\xff", "en", id="binary"),
])
def test_the_language_is_negotiated_with_q_values(header: str, lang: str) -> None:
    assert page_language(environ(header)) == lang


def test_a_failure_page_in_german() -> None:
    response = failure_page("invalid_state", "https://app2.example/", environ("de-DE,de;q=0.9"))
    assert response.status_int == InvalidState.status
    assert response.headers["Content-Language"] == "de" and response.headers["Vary"] == "Accept-Language"
    text = response.text
    assert '<html lang="de">' in text
    assert "Die Anmeldung hat nicht funktioniert" in text and GERMAN["invalid_state"] in text
    assert "Fehlercode: <code>invalid_state</code>" in text and "Zurück zur Startseite" in text
    assert InvalidState.message not in text


def test_english_by_default_with_the_same_headers() -> None:
    response = failure_page("invalid_state", "https://app2.example/")
    assert response.headers["Content-Language"] == "en" and response.headers["Vary"] == "Accept-Language"
    assert InvalidState.message in response.text and '<html lang="en">' in response.text
    german = failure_page("invalid_state", "https://app2.example/", environ("de"))
    assert sorted(response.headers.keys()) == sorted(german.headers.keys())


def test_a_provider_error_in_german_names_the_oauth_error() -> None:
    text = failure_page("provider_error:access_denied", "/", environ("de")).text
    assert "Der Anmeldedienst hat Sie nicht angemeldet (access denied)." in text
    other = failure_page("provider_error:made_up", "/", environ("de")).text
    assert "(anderer Grund)" in other and "made_up" not in other


def test_a_503_has_the_unavailable_title() -> None:
    assert "Anmeldedienst nicht verfügbar" in failure_page("provider_unreachable", "/", environ("de")).text
    assert "Sign-in service unavailable" in failure_page("provider_unreachable", "/").text


def test_a_code_without_german_is_shown_in_english_whole() -> None:
    response = failure_page("bearer_token_missing", "/", environ("de"))  # a JSON-only code in a crafted link
    assert response.headers["Content-Language"] == "en"
    assert ERRORS["bearer_token_missing"].message in response.text and "Fehlercode" not in response.text


def test_the_403_page_in_german_and_as_json() -> None:
    page = forbidden("/", as_json=False, environ=environ("de"))
    assert page.status_int == 403 and page.headers["Content-Language"] == "de"
    assert "Zugriff verweigert" in page.text and GERMAN["forbidden"] in page.text
    api = forbidden("/", as_json=True, environ=environ("de"))
    assert api.json == {"error": "forbidden"}  # API answers stay English


def test_a_template_brands_the_page_and_keeps_the_headers() -> None:
    template = parse(TEMPLATE)
    branded = failure_page("invalid_state", "https://app2.example/", environ("de"), template)
    built_in = failure_page("invalid_state", "https://app2.example/", environ("de"))
    assert branded.text.startswith("<!doctype html><html lang=\"de\"><head><title>Die Anmeldung")
    assert f'<p class="m">{GERMAN["invalid_state"]}</p>' in branded.text
    assert 'data-code="invalid_state"' in branded.text and '<a href="https://app2.example/">' in branded.text
    assert "body{color:#123} .x{margin:0}" in branded.text and "{{not a placeholder}}" in branded.text
    def headers(response: Any) -> list[tuple[str, str]]:
        return [(name, value) for name, value in response.headerlist if name != "Content-Length"]

    assert headers(branded) == headers(built_in) and branded.status == built_in.status


# -- attacks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [
    "<script>alert(1)</script>", '"><script>alert(1)</script>', "provider_error:<img src=x onerror=alert(1)>",
    "provider_error:access_denied<script>", "{message}", "invalid_state\r\nSet-Cookie: x=1", "&lt;b&gt;",
])
@pytest.mark.parametrize("template", [None, parse(TEMPLATE)], ids=["built-in", "template"])
def test_a_crafted_code_never_puts_markup_or_text_on_the_page(code: str, template: Any) -> None:
    for accept in ("", "de"):
        text = failure_page(code, "/", environ(accept), template).text
        assert "<script" not in text and "<img" not in text and "onerror" not in text
        assert "unknown_error" in text or "provider_error" in text


@pytest.mark.parametrize("template", [None, parse(TEMPLATE)], ids=["built-in", "template"])
def test_every_value_is_escaped_and_filled_in_once(template: Any) -> None:
    text = render(template, "de", '<script>alert("t")</script>', "{code} & <b>bold</b>", '"><svg onload=x>',
                  'https://app2.example/"><script>x</script>')
    assert "<script>" not in text and "<svg" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;" in text
    assert "{code} &amp; &lt;b&gt;bold&lt;/b&gt;" in text  # a placeholder inside a value stays text
    assert "&quot;&gt;&lt;svg onload=x&gt;" in text
    assert 'href="https://app2.example/&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in text


# -- the template file -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "named"), [
    pytest.param("<p>{title}{message}</p>", "{code}", id="missing-code"),
    pytest.param("<p>{message}</p>", "{title}, {code}", id="missing-two"),
    pytest.param("{title}{message}{code}{mesage}", "{mesage}", id="typo"),
    pytest.param("{title}{message}{code}{code_label}", "{code_label}", id="built-in-only-label"),
    pytest.param("{title}{message}{code}{__class__}", "{__class__}", id="dunder"),
])
def test_a_template_missing_or_inventing_a_placeholder_is_refused(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert caught.value.setting == "failure_page_template" and named in str(caught.value)


def test_attribute_access_and_format_specs_are_no_placeholders() -> None:
    template = parse("{title}{message}{code}{code.__class__}{code!r}{code:>9}")
    assert render(template, "en", "t", "m", "c", "/").endswith("{code.__class__}{code!r}{code:>9}")


def test_the_template_file_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "page.html"
    good.write_text(TEMPLATE, encoding="utf-8")
    assert load(str(good)).placeholders == ("title", "message", "code", "lang", "home")
    for name, data in (("latin1.html", "{title}{message}{code} \xe9".encode("latin-1")),
                       ("big.html", b"{title}{message}{code}" + b" " * MAX_TEMPLATE_BYTES),
                       ("nul.html", b"{title}{message}{code}\x00")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConfigError) as caught:
            load(str(tmp_path / name))
        assert caught.value.setting == "failure_page_template", name
    with pytest.raises(ConfigError) as missing:
        load(str(tmp_path / "missing.html"))
    assert missing.value.setting == "failure_page_template" and "cannot be read" in str(missing.value)
