"""The doctor's client-authentication and PAR checks, against the bundled oidc-provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sso_middleware.testing import DevProvider

from ..servers import free_port
from .test_client_auth_integration import key_pair
from .test_doctor import assert_only_failure, check, settings_for, write_settings


def pkjwt_settings(provider: DevProvider, tmp_path: Path, registered: str, used: str,
                   **overrides: str) -> dict[str, str]:
    """A client registered with the key ``registered`` (private_key_jwt), configured with the key ``used``."""
    public, _ = key_pair("rsa", registered, tmp_path)
    base_url = f"http://127.0.0.1:{free_port()}"
    client = provider.register_client([base_url + "/auth/callback"], post_logout_redirect_uris=[base_url + "/"],
                                      token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public]})
    _, path = key_pair("rsa", used, tmp_path) if used != registered else (None, str(tmp_path / f"{used}.pem"))
    settings = settings_for(provider, tmp_path, client_id=client.client_id, client_secret="", base_url=base_url,
                            token_endpoint_auth_method="private_key_jwt", client_assertion_key=path,
                            client_assertion_kid=registered, **overrides)
    return {key: value for key, value in settings.items() if value != ""}


def test_private_key_jwt_and_par_pass(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                      tmp_path: Path) -> None:
    settings = pkjwt_settings(oidc_provider, tmp_path, "k1", "k1")
    outcome = check(capsys, "--settings", write_settings(tmp_path, settings))
    assert outcome.code == 0, outcome.out
    assert "client credentials accepted (private_key_jwt" in outcome.line("OK", "client credentials")
    auth = outcome.line("OK", "client authentication")
    assert "RSA private key (2048 bits), kid 'k1', signs RS256" in auth
    assert "among the provider's token_endpoint_auth_signing_alg_values_supported" in auth
    assert "aud = issuer" in auth
    assert "token_endpoint_auth_method private_key_jwt supported" in outcome.line("OK", "provider capabilities")
    assert "a test push to" in outcome.line("OK", "pushed authorization")


def test_a_key_the_provider_does_not_know_fails(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                                tmp_path: Path) -> None:
    settings = pkjwt_settings(oidc_provider, tmp_path, "registered", "other")
    outcome = check(capsys, "--settings", write_settings(tmp_path, settings))
    assert outcome.code == 1
    assert "client_assertion_key/kid" in outcome.line("FAIL", "client credentials")
    assert "refused a test push" in outcome.line("WARN", "pushed authorization")


def test_a_key_readable_by_others_is_warned_about(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                                  tmp_path: Path) -> None:
    settings = pkjwt_settings(oidc_provider, tmp_path, "k2", "k2", pushed_authorization="off")
    Path(settings["client_assertion_key"]).chmod(0o644)
    outcome = check(capsys, "--settings", write_settings(tmp_path, settings))
    assert "chmod 600" in outcome.line("WARN", "client authentication")
    assert "pushed_authorization off" in outcome.line("OK", "pushed authorization")


def test_a_bad_key_file_fails_the_configuration(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                                tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("nope")
    settings = settings_for(oidc_provider, tmp_path, token_endpoint_auth_method="private_key_jwt",
                            client_assertion_key=str(tmp_path / "bad.pem"), client_assertion_kid="k",
                            client_secret=None)
    outcome = check(capsys, "--settings", write_settings(tmp_path, settings))
    assert outcome.code != 0
    assert "client_assertion_key" in outcome.out and "not a PEM private key" in outcome.out


@pytest.fixture(scope="module")
def par_provider() -> Iterator[DevProvider]:
    provider = DevProvider(require_pushed_authorization=True)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


def test_pushed_authorization_off_with_a_provider_requiring_it_fails(capsys: pytest.CaptureFixture[str],
                                                                     par_provider: DevProvider,
                                                                     tmp_path: Path) -> None:
    settings = settings_for(par_provider, tmp_path, pushed_authorization="off")
    outcome = check(capsys, "--settings", write_settings(tmp_path, settings))
    assert_only_failure(outcome, "pushed authorization", "require_pushed_authorization_requests",
                        "pushed_authorization is off", "par_required")
    settings = settings_for(par_provider, tmp_path)
    outcome = check(capsys, "--settings", write_settings(tmp_path, settings))
    assert outcome.code == 0, outcome.out
    assert "required by the provider" in outcome.line("OK", "pushed authorization")
