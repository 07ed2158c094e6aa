"""Reason-carrying failure codes: the middleware's own links show their reason, typed or altered ones do not."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from sso_middleware import SSOConfig
from sso_middleware._wsgi.failure_codes import SIG_PARAM, failure_query, shown_code

from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER

SETTINGS = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "base_url": BASE_URL,
            "session_secret": "s" * 40}


@pytest.mark.parametrize("code", ["invalid_state", "provider_error:access_denied", "sign_in_denied", "unknown"])
def test_codes_without_the_applications_text_are_unsigned_and_shown_as_they_are(code: str) -> None:
    config = SSOConfig(**SETTINGS)
    assert failure_query(config, code) == {"error": code}
    assert shown_code(config, code, None) == code


def test_a_reason_is_shown_only_with_its_own_signature() -> None:
    config = SSOConfig(**SETTINGS)
    query = failure_query(config, "sign_in_denied:not_provisioned")
    assert shown_code(config, query["error"], query[SIG_PARAM]) == "sign_in_denied:not_provisioned"
    assert shown_code(config, "sign_in_denied:evil.example", query[SIG_PARAM]) == "sign_in_denied"
    assert shown_code(config, query["error"], None) == "sign_in_denied"
    assert shown_code(config, query["error"], "") == "sign_in_denied"
    assert shown_code(config, query["error"], query[SIG_PARAM][:-1]) == "sign_in_denied"
    assert shown_code(config, query["error"], "é" * 22) == "sign_in_denied"  # non-ASCII: no TypeError
    other = SSOConfig(**{**SETTINGS, "session_secret": "t" * 40})  # another application's key
    assert shown_code(other, query["error"], query[SIG_PARAM]) == "sign_in_denied"
    assert "=" not in urlencode(query).split(SIG_PARAM + "=")[1]  # unpadded: nothing to escape
