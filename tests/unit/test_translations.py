"""The failure pages' languages: every code a page shows has its German text (:mod:`sso_middleware._translations`).

The catalogue is the failure classes of :mod:`sso_middleware.errors` (their ``message`` is
the English text); the German texts are one table keyed by code.  These tests read the
codes from the classes, so a failure class added later without a German text fails here,
with the codes named.
"""

from __future__ import annotations

import re

from sso_middleware._translations import CHROME, GERMAN, LANGUAGES, MESSAGES, OTHER_REASON
from sso_middleware._wsgi.pages import failure_text
from sso_middleware.errors import ERRORS, BearerFailure, ProviderRefused, SessionEndpointFailure

#: Families answered where they happen, as JSON, never on a failure page (their texts stay English).
JSON_ONLY = (BearerFailure, SessionEndpointFailure)


def page_codes() -> set[str]:
    """Every code a failure page can show: the catalogue's, less the JSON-only families, plus the 403 page's."""
    codes = {code for code, kind in ERRORS.items() if not issubclass(kind, JSON_ONLY)}
    return codes | {ProviderRefused.code, "forbidden"}


def test_every_code_that_can_reach_a_failure_page_has_a_german_text() -> None:
    missing = sorted(page_codes() - set(GERMAN))
    assert not missing, (f"no German text in sso_middleware/_translations.py GERMAN for: {', '.join(missing)} "
                         "(add one line per code)")


def test_the_german_table_names_no_code_that_does_not_exist() -> None:
    stale = sorted(set(GERMAN) - page_codes())
    assert not stale, f"GERMAN has texts for codes no failure page shows: {', '.join(stale)}"


def test_german_texts_are_plain_text_with_only_the_provider_errors_detail() -> None:
    for code, text in GERMAN.items():
        fields = re.findall(r"\{[^}]*\}", text)
        assert fields == (["{detail}"] if code == ProviderRefused.code else []), (code, fields)
        assert text.strip() == text and text.endswith("."), code
        assert "<" not in text and ">" not in text, code


def test_every_language_has_the_pages_words_and_a_table() -> None:
    assert LANGUAGES[0] == "en"
    for lang in LANGUAGES:
        assert set(CHROME[lang]) == set(CHROME["en"]), lang
        assert lang in OTHER_REASON
        if lang != "en":
            assert lang in MESSAGES
    assert "en" not in MESSAGES  # English lives on the classes: one place for it


def test_a_denial_with_its_reason_is_shown_in_german_with_the_reason_kept() -> None:
    status, lang, _title, message, shown = failure_text("sign_in_denied:account_disabled", "de")
    assert (status, lang, shown) == (403, "de", "sign_in_denied:account_disabled")
    assert message == GERMAN["sign_in_denied"]
