"""The doctor's "sign-in hook" and "token revocation" checks, against the bundled provider.

``sso-middleware check`` in-process (the helpers of :mod:`.test_doctor`): the hook is
imported and its parameters read; the revocation endpoint is asked, with the client's real
authentication and a made-up token, whether it accepts this client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sso_middleware.testing import DevProvider

from .test_doctor import WRONG_SECRET, run_settings

TOKENS = {"keep_access_token": "true", "scope": "openid profile email offline_access"}


def one_argument(claims: dict[str, Any]) -> None:
    """A hook written for another library: it takes the claims only."""


def test_a_good_hook_is_reported(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                 tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, on_sign_in="tests.wsgi.test_sign_in_hook:provision",
                           userinfo_claims="email app_user_id")
    assert outcome.code == 0, outcome.out
    assert "tests.wsgi.test_sign_in_hook:provision is imported and takes (claims, tokens, environ)" in outcome.line(
        "OK", "sign-in hook")
    info = outcome.line("INFO", "sign-in hook")
    assert "sessions keep only sub, email, app_user_id" in info and "kept only when userinfo_claims lists them" in info


def test_a_hook_with_the_wrong_parameters_fails(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                                tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path,
                           on_sign_in="tests.integration.test_doctor_sign_in:one_argument")
    assert outcome.code == 1
    assert "cannot be called as hook(claims, tokens, environ)" in outcome.line("FAIL", "sign-in hook")


@pytest.mark.parametrize("value", ["no_such_module_here:hook", "tests.integration.test_doctor_sign_in:TOKENS"])
def test_a_hook_that_cannot_be_had_fails_the_configuration(capsys: pytest.CaptureFixture[str],
                                                           oidc_provider: DevProvider, tmp_path: Path,
                                                           value: str) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, on_sign_in=value)
    assert outcome.code != 0 and "'on_sign_in'" in outcome.out + outcome.err


def test_revocation_is_checked_with_the_clients_authentication(capsys: pytest.CaptureFixture[str],
                                                               oidc_provider: DevProvider, tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, **TOKENS)
    assert outcome.code == 0, outcome.out
    ok = outcome.line("OK", "token revocation")
    assert "sign-out revokes the refresh token, then the access token" in ok
    assert oidc_provider.endpoint("revocation") in ok and "client_secret_basic accepted" in ok
    hints = [event["token_type_hint"] for event in oidc_provider.events("revocation")]
    assert hints and hints[-1] == "refresh_token"


def test_a_refused_client_at_the_revocation_endpoint_fails(capsys: pytest.CaptureFixture[str],
                                                           oidc_provider: DevProvider, tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, client_secret=WRONG_SECRET, **TOKENS)
    assert outcome.code == 1
    assert "refused this client" in outcome.line("FAIL", "token revocation")


def test_revocation_off_with_refresh_tokens_is_warned_about(capsys: pytest.CaptureFixture[str],
                                                            oidc_provider: DevProvider, tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, revoke_tokens_on_logout="off", **TOKENS)
    assert outcome.code == 0
    assert "refresh tokens stay valid at the provider after sign-out" in outcome.line("WARN", "token revocation")


def test_without_kept_tokens_there_is_nothing_to_revoke(capsys: pytest.CaptureFixture[str],
                                                        oidc_provider: DevProvider, tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path)
    assert "nothing to revoke" in outcome.line("INFO", "token revocation")
