"""ProviderMetadata.parse on documents given directly (the client's fetching and caching: test_oidc.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sso_middleware._config.settings import SSOConfig
from sso_middleware._oidc.discovery import ProviderMetadata
from sso_middleware.errors import ProviderError

from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER

CONFIG = SSOConfig(issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=BASE_URL,
                   session_secret="s" * 40)
ROOT = ISSUER.rstrip("/")


def document(**changes: Any) -> dict[str, Any]:
    """A minimal valid discovery document for :data:`CONFIG`; a change of None removes the member."""
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ROOT}/authorize",
        "token_endpoint": f"{ROOT}/oauth/token",
        "jwks_uri": f"{ROOT}/.well-known/jwks.json",
        **changes,
    }
    return {key: value for key, value in values.items() if value is not None}


def refused(raw: Any) -> str:
    with pytest.raises(ProviderError) as caught:
        ProviderMetadata.parse(raw, CONFIG)
    assert caught.value.code == "provider_bad_response"
    return caught.value.detail


def test_a_minimal_document_leaves_the_optional_members_unset() -> None:
    metadata = ProviderMetadata.parse(document(), CONFIG)
    assert (metadata.issuer, metadata.token_endpoint) == (ISSUER, f"{ROOT}/oauth/token")
    assert metadata.userinfo_endpoint is None and metadata.end_session_endpoint is None
    assert metadata.pushed_authorization_request_endpoint is None
    assert metadata.iss_parameter_supported is False and metadata.require_pushed_authorization_requests is False
    assert metadata.id_token_signing_algs is None


@pytest.mark.parametrize("raw", [pytest.param([], id="list"), pytest.param("{}", id="text"),
                                 pytest.param(None, id="null")])
def test_a_document_that_is_no_object_is_refused(raw: Any) -> None:
    assert "not a JSON object" in refused(raw)


def test_the_issuer_is_compared_exactly() -> None:
    assert "differs from the configured" in refused(document(issuer=ROOT))  # without its trailing slash


@pytest.mark.parametrize(
    ("advertised", "kept"),
    [
        pytest.param(["RS256", 7, None, "ES256"], ("RS256", "ES256"), id="strings-only"),
        pytest.param([], None, id="empty-is-not-said"),
        pytest.param([1, 2], None, id="no-strings-is-not-said"),
        pytest.param("RS256", None, id="not-a-list"),
    ],
)
def test_only_the_advertised_algorithm_strings_are_kept(advertised: Any, kept: Any) -> None:
    parsed = ProviderMetadata.parse(document(id_token_signing_alg_values_supported=advertised), CONFIG)
    assert parsed.id_token_signing_algs == kept


@pytest.mark.parametrize("value", [pytest.param("true", id="text"), pytest.param(1, id="one")])
def test_flags_are_set_only_by_a_json_true(value: Any) -> None:
    parsed = ProviderMetadata.parse(document(require_pushed_authorization_requests=value,
                                             authorization_response_iss_parameter_supported=value), CONFIG)
    assert parsed.require_pushed_authorization_requests is False and parsed.iss_parameter_supported is False
    flagged = ProviderMetadata.parse(document(require_pushed_authorization_requests=True,
                                              authorization_response_iss_parameter_supported=True), CONFIG)
    assert flagged.require_pushed_authorization_requests is True and flagged.iss_parameter_supported is True


def test_an_endpoint_on_another_scheme_is_refused_with_its_name() -> None:
    detail = refused(document(pushed_authorization_request_endpoint="http://op.example/par"))
    assert "pushed_authorization_request_endpoint" in detail


def test_pkce_without_s256_is_only_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sso_middleware"):
        ProviderMetadata.parse(document(code_challenge_methods_supported=["plain"]), CONFIG)
    assert "PKCE S256" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sso_middleware"):
        ProviderMetadata.parse(document(code_challenge_methods_supported=["S256", "plain"]), CONFIG)
    assert caplog.text == ""
