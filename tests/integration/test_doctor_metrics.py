"""``sso-middleware check`` with metrics and health on, against the real dev provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from sso_middleware.testing import DevProvider

from .test_doctor import check, settings_for, write_settings

TOKEN = "doctor-metrics-token-" + "q" * 20


def test_the_doctor_reports_metrics_and_health_and_never_prints_the_token(
    capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = settings_for(oidc_provider, tmp_path, metrics_path="/auth/metrics", metrics_token=TOKEN,
                            health_path="/health")
    outcome = check(capsys, "--settings", write_settings(tmp_path, settings), secrets=(TOKEN,))
    assert outcome.code == 0, outcome.out
    lines = outcome.line("OK", "metrics and health")
    assert "prometheus_client" in lines and "/auth/metrics answers clients in 127.0.0.0/8, ::1/128, with " \
        "metrics_token" in lines
    warning = outcome.line("WARN", "metrics and health")
    assert "health_path /health is outside /auth/" in warning
    assert "PROMETHEUS_MULTIPROC_DIR is not set here" in outcome.line("INFO", "metrics and health")


def test_a_bad_metrics_setting_is_one_failure_naming_it(
    capsys: pytest.CaptureFixture[str], oidc_provider: DevProvider, tmp_path: Path
) -> None:
    settings = settings_for(oidc_provider, tmp_path, metrics_path="/auth/metrics",
                            metrics_allowed_networks="10.0.0.0/33")
    outcome = check(capsys, "--settings", write_settings(tmp_path, settings))
    assert outcome.code == 1
    assert "metrics_allowed_networks" in outcome.out
