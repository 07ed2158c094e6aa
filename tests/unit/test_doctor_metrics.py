"""The doctor's check of metrics and health (:mod:`sso_middleware._doctor.checks.metrics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sso_middleware import SSOConfig
from sso_middleware._doctor.checks import CHECKS
from sso_middleware._doctor.checks.context import Context
from sso_middleware._doctor.checks.metrics import check_metrics

from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER

TOKEN = "t" * 40


def findings(monkeypatch: pytest.MonkeyPatch, multiproc: Any = None, **settings: Any) -> list[tuple[str, str]]:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    config = SSOConfig(issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=BASE_URL,
                       session_secret="s" * 40, **settings)
    if multiproc is not None:  # the doctor's shell, not the server's: set after the configuration was built
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(multiproc))
    ctx = Context.for_config(config)
    try:
        return list(check_metrics(ctx))
    finally:
        ctx.close()


def test_it_is_on_the_checklist() -> None:
    assert "metrics and health" in [check.name for check in CHECKS]


def test_nothing_to_say_when_both_are_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert findings(monkeypatch) == []


def test_metrics_on_loopback_only_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    found = findings(monkeypatch, metrics_path="/auth/metrics")
    assert found[0][0] == "OK" and "prometheus_client" in found[0][1] and "importable" in found[0][1]
    assert ("INFO", next(m for s, m in found if "is not set here" in m)) in found
    assert any(s == "OK" and "/auth/metrics answers clients in 127.0.0.0/8, ::1/128, without a token" in m
               for s, m in found)
    assert any(s == "INFO" and "reverse proxy" in m for s, m in found)
    assert not any(s in ("WARN", "FAIL") for s, _ in found)


@pytest.mark.parametrize(("allowed", "hint"), [
    pytest.param("127.0.0.1/32", True, id="one-loopback-address-as-a-network"),
    pytest.param("::1 127.0.0.2", True, id="loopback-addresses"),
    pytest.param("127.0.0.0/8 10.0.0.0/8", False, id="a-lan-too"),
])
def test_the_proxy_hint_whenever_every_listed_network_is_loopback(monkeypatch: pytest.MonkeyPatch, allowed: str,
                                                                  hint: bool) -> None:
    found = findings(monkeypatch, metrics_path="/auth/metrics", metrics_allowed_networks=allowed)
    assert any("reverse proxy" in m for _, m in found) is hint


def test_with_a_token_no_proxy_hint_and_the_token_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    found = findings(monkeypatch, metrics_path="/auth/metrics", metrics_token=TOKEN)
    assert not any("reverse proxy" in m for _, m in found)
    assert any("with metrics_token" in m for _, m in found)
    assert not any(TOKEN in m for _, m in found)


def test_a_writable_multiprocess_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "counter_12.db").write_bytes(b"")
    found = findings(monkeypatch, multiproc=tmp_path, metrics_path="/auth/metrics")
    assert any(s == "OK" and "multiprocess mode" in m and "1 metric file(s)" in m for s, m in found)


def test_a_missing_multiprocess_folder_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    found = findings(monkeypatch, multiproc=tmp_path / "missing", metrics_path="/auth/metrics")
    assert any(s == "FAIL" and "must be an existing folder this process can write to" in m for s, m in found)


def test_a_multiprocess_folder_others_can_write_to_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    found = findings(monkeypatch, multiproc=tmp_path, metrics_path="/auth/metrics")
    assert any(s == "FAIL" and "no other user can write to" in m for s, m in found)


@pytest.mark.parametrize(("settings", "warned"), [
    pytest.param({"health_path": "/auth/health"}, False, id="under-auth"),
    pytest.param({"health_path": "/health"}, True, id="health-outside"),
    pytest.param({"metrics_path": "/metrics"}, True, id="metrics-outside"),
])
def test_a_path_outside_the_routes_folder_shadows_the_app(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any], warned: bool
) -> None:
    found = findings(monkeypatch, **settings)
    shadowing = [m for s, m in found if s == "WARN" and "no longer reachable" in m]
    assert bool(shadowing) == warned, found


def test_a_health_path_under_protected_paths_is_answered_before_them(monkeypatch: pytest.MonkeyPatch) -> None:
    found = findings(monkeypatch, health_path="/auth/health", protected_paths="/auth")
    assert any(s == "INFO" and "answered before them" in m for s, m in found)
