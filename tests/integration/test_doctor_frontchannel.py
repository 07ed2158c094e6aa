"""``sso-middleware check``'s front-channel logout lines, against a scripted provider and the real dev provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from sso_middleware.testing import DevProvider

from .test_doctor import MiniProvider, check, mini_settings, run_settings
from .test_doctor import mini as scripted_provider  # noqa: F401 - a fixture, registered under this name

CHECK = "front-channel logout"
PATH = "/auth/frontchannel-logout"


@pytest.fixture
def mini(scripted_provider: MiniProvider) -> MiniProvider:  # noqa: F811 - the imported fixture, used by name
    """test_doctor's scripted provider (discovery served over real HTTP; ``discovery_changes`` edit it)."""
    return scripted_provider


def test_off_and_not_offered(capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path) -> None:
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path))
    assert outcome.code == 0, outcome.out
    assert "front-channel logout off (frontchannel_logout_path empty)" in outcome.line("INFO", CHECK)


def test_off_but_offered_suggests_the_setting(capsys: pytest.CaptureFixture[str], mini: MiniProvider,
                                              tmp_path: Path) -> None:
    mini.discovery_changes.update(frontchannel_logout_supported=True, frontchannel_logout_session_supported=True)
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path))
    assert "the provider offers front-channel logout" in outcome.line("INFO", CHECK)
    assert f"e.g. {PATH}" in outcome.line("INFO", CHECK)


def test_on_but_not_offered_warns(capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path) -> None:
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path, frontchannel_logout_path=PATH))
    assert outcome.code == 0, outcome.out
    assert f"Front-Channel Logout URI: http://127.0.0.1:5001{PATH}" in outcome.line("INFO", CHECK)
    assert "does not advertise frontchannel_logout_supported" in outcome.line("WARN", CHECK)


def test_on_and_offered_with_sid(capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path) -> None:
    mini.discovery_changes.update(frontchannel_logout_supported=True, frontchannel_logout_session_supported=True,
                                  end_session_endpoint="http://127.0.0.2:9/oidc/logout")
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path, frontchannel_logout_path=PATH))
    found = outcome.line("OK", CHECK)
    assert f"may be framed by {mini.issuer} http://127.0.0.2:9 only" in found
    assert "no cookie needed" in found
    assert not outcome.lines("WARN", CHECK)


@pytest.mark.parametrize(("base_url", "status", "fragment"), [
    pytest.param("http://127.0.0.1:5001", "INFO", "serves both, so the iframe sends it", id="same-host"),
    pytest.param("http://localhost:5001", "WARN", "only when both are the same site", id="other-host"),
])
def test_on_and_offered_without_sid(capsys: pytest.CaptureFixture[str], mini: MiniProvider, tmp_path: Path,
                                    base_url: str, status: str, fragment: str) -> None:
    mini.discovery_changes.update(frontchannel_logout_supported=True)
    outcome = check(capsys, "--settings", mini_settings(mini, tmp_path, frontchannel_logout_path=PATH,
                                                        base_url=base_url))
    assert fragment in outcome.line(status, CHECK)


def test_the_dev_provider_offers_it_with_sid(capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider,
                                            tmp_path: Path) -> None:
    outcome = run_settings(capsys, oidc_provider, tmp_path, frontchannel_logout_path=PATH)
    assert outcome.code == 0, outcome.out
    assert "no cookie needed" in outcome.line("OK", CHECK)
    assert not outcome.lines("WARN", CHECK)
