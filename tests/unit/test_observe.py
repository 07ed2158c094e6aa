"""The metrics module (:mod:`sso_middleware._observe`): recorder, labels, seams, settings.

Each test counts into a ``CollectorRegistry`` of its own (``metrics_registry``), so the
numbers are this test's alone; values are read back with ``get_sample_value``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
from prometheus_client import CollectorRegistry

from sso_middleware import SSOConfig
from sso_middleware._observe import NO_METRICS, Metrics, metrics_for, observed_backend
from sso_middleware._observe import labels as metric_labels
from sso_middleware._observe.seams import ObservedBackend, observed_provider_call
from sso_middleware.errors import ConfigError, ProviderTimeout, StoreUnavailable

from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER

ROOT = Path(__file__).resolve().parents[2]


def config(**settings: Any) -> SSOConfig:
    return SSOConfig(issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=BASE_URL,
                     session_secret="s" * 40, **settings)


def live(registry: CollectorRegistry) -> Metrics:
    recorder = metrics_for(config(metrics_registry=registry))
    assert isinstance(recorder, Metrics)
    return recorder


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found: Optional[float] = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


# -- on and off -----------------------------------------------------------------------


def test_metrics_are_off_by_default_and_the_silent_recorder_does_nothing() -> None:
    recorder = metrics_for(config())
    assert recorder is NO_METRICS and not recorder.enabled
    environ: dict[str, Any] = {}
    recorder.attempt(environ, "none")
    recorder.signed_in(environ)
    recorder.route_failed(environ, "invalid_state")
    assert environ == {}  # not even a note in the environ
    backend = object()
    assert observed_backend(backend, recorder) is backend  # the store is not wrapped: the hot path pays nothing


def test_with_metrics_off_prometheus_client_is_never_imported() -> None:
    code = (
        "import sys, tempfile\n"
        "from sso_middleware import SSOMiddleware\n"
        "SSOMiddleware(lambda e, s: [], issuer='http://127.0.0.1:1/', client_id='c', client_secret='x',"
        " base_url='http://127.0.0.1:2', session_secret='s' * 40, allow_insecure_http=True,"
        " session_data_dir=tempfile.mkdtemp(), health_path='/auth/health')\n"
        "assert 'prometheus_client' not in sys.modules, 'imported'\n"
        "print('not imported')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "not imported"


# -- the counts ---------------------------------------------------------------------------


def test_a_silent_sign_in_counts_success_session_and_silent_outcome() -> None:
    registry = CollectorRegistry()
    recorder = live(registry)
    environ: dict[str, Any] = {"PATH_INFO": "/auth/callback"}
    recorder.attempt(environ, "none")
    recorder.signed_in(environ)
    assert value(registry, "sso_sign_ins_total", outcome="success") == 1
    assert value(registry, "sso_sessions_created_total") == 1
    assert value(registry, "sso_silent_sign_ins_total", outcome="signed_in") == 1


def test_an_interactive_sign_in_is_no_silent_one() -> None:
    registry = CollectorRegistry()
    recorder = live(registry)
    environ: dict[str, Any] = {"PATH_INFO": "/auth/callback"}
    recorder.attempt(environ, None)
    recorder.signed_in(environ)
    assert value(registry, "sso_sign_ins_total", outcome="success") == 1
    assert value(registry, "sso_silent_sign_ins_total", outcome="signed_in") == 0


def test_a_failed_silent_sign_in_counts_its_code_and_a_silent_error() -> None:
    registry = CollectorRegistry()
    recorder = live(registry)
    environ: dict[str, Any] = {"PATH_INFO": "/auth/callback"}
    recorder.attempt(environ, "none")
    recorder.route_failed(environ, "invalid_id_token")
    assert value(registry, "sso_sign_ins_total", outcome="invalid_id_token") == 1
    assert value(registry, "sso_silent_sign_ins_total", outcome="error") == 1


def test_the_silent_fallback_is_counted_and_its_retry_is_an_interactive_sign_in() -> None:
    registry = CollectorRegistry()
    recorder = live(registry)
    environ: dict[str, Any] = {"PATH_INFO": "/auth/callback"}
    recorder.attempt(environ, "none")
    recorder.silent_fallback(environ)
    recorder.route_failed(environ, "provider_unreachable")  # the retry's own start failed
    assert value(registry, "sso_silent_sign_ins_total", outcome="login_required") == 1
    assert value(registry, "sso_silent_sign_ins_total", outcome="error") == 0


@pytest.mark.parametrize(("path", "counted"), [
    pytest.param("/auth/callback", True, id="callback"),
    pytest.param("/auth/sso", True, id="sso"),
    pytest.param("/auth/login", True, id="login"),
    pytest.param("/auth/logout", False, id="logout-is-no-sign-in"),
    pytest.param("/auth/backchannel-logout", False, id="backchannel"),
])
def test_route_failures_count_for_the_sign_in_routes_only(path: str, counted: bool) -> None:
    registry = CollectorRegistry()
    live(registry).route_failed({"PATH_INFO": path}, "invalid_target_url")
    assert value(registry, "sso_sign_ins_total", outcome="invalid_target_url") == (1 if counted else 0)


@pytest.mark.parametrize(("code", "label"), [
    pytest.param("invalid_state", "invalid_state", id="catalogue-code"),
    pytest.param("provider_error:access_denied", "provider_error:access_denied", id="oauth-error"),
    pytest.param("provider_error:evil-1234", "provider_error", id="other-provider-error"),
    pytest.param("made_up_code", "unknown_error", id="unknown"),
    pytest.param("a" * 500, "unknown_error", id="long"),
])
def test_failure_codes_become_a_bounded_label(code: str, label: str) -> None:
    assert metric_labels.outcome_code(code) == label


def test_a_flood_of_made_up_provider_errors_adds_no_series() -> None:
    """The attack: a client sends the callback error=<random> again and again; the series stay few."""
    registry = CollectorRegistry()
    recorder = live(registry)
    for number in range(200):
        recorder.route_failed({"PATH_INFO": "/auth/callback"}, f"provider_error:random{number}")
    outcomes = {sample.labels["outcome"] for metric in registry.collect() if metric.name == "sso_sign_ins"
                for sample in metric.samples if sample.name == "sso_sign_ins_total"}
    assert outcomes == {"success", "provider_error"}
    assert value(registry, "sso_sign_ins_total", outcome="provider_error") == 200


def test_refreshes_sessions_ended_and_logouts() -> None:
    registry = CollectorRegistry()
    recorder = live(registry)
    recorder.refresh("success")
    recorder.refresh("refused")
    recorder.refresh("something else")
    recorder.session_ended("backchannel", 3)
    recorder.session_ended("expired")
    recorder.session_ended("logout", 0)
    recorder.logout_notification("backchannel", 200)
    recorder.logout_notification("backchannel", 400)
    recorder.logout_notification("frontchannel", 503)
    assert value(registry, "sso_token_refreshes_total", outcome="success") == 1
    assert value(registry, "sso_token_refreshes_total", outcome="refused") == 1
    assert value(registry, "sso_token_refreshes_total", outcome="other") == 1
    assert value(registry, "sso_sessions_ended_total", reason="backchannel") == 3
    assert value(registry, "sso_sessions_ended_total", reason="expired") == 1
    assert value(registry, "sso_sessions_ended_total", reason="logout") == 0
    assert value(registry, "sso_provider_logouts_total", channel="backchannel", outcome="success") == 1
    assert value(registry, "sso_provider_logouts_total", channel="backchannel", outcome="refused") == 1
    assert value(registry, "sso_provider_logouts_total", channel="frontchannel", outcome="unavailable") == 1


# -- the seams ------------------------------------------------------------------------


class FakeHTTP:
    """Stands for ProviderHTTP: a ``metrics`` attribute and the decorated request method."""

    def __init__(self, recorder: Any, answer: Any) -> None:
        self.metrics = recorder
        self.answer = answer

    @observed_provider_call
    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> tuple[int, Any]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer, {}


def test_provider_calls_are_timed_by_endpoint_and_failures_counted() -> None:
    registry = CollectorRegistry()
    recorder = live(registry)
    assert FakeHTTP(recorder, 200)._request("GET", "https://op/x", "discovery") == (200, {})
    FakeHTTP(recorder, 503)._request("POST", "https://op/t", "token")
    with pytest.raises(ProviderTimeout):
        FakeHTTP(recorder, ProviderTimeout("slow"))._request("POST", "https://op/par", "pushed authorization request")
    FakeHTTP(recorder, 200)._request("GET", "https://op/?", "something new")
    assert value(registry, "sso_provider_request_duration_seconds_count", endpoint="discovery") == 1
    assert value(registry, "sso_provider_request_failures_total", endpoint="discovery", reason="http_5xx") == 0
    assert value(registry, "sso_provider_request_failures_total", endpoint="token", reason="http_5xx") == 1
    assert value(registry, "sso_provider_request_failures_total", endpoint="par", reason="provider_timeout") == 1
    assert value(registry, "sso_provider_request_duration_seconds_count", endpoint="par") == 1
    assert value(registry, "sso_provider_request_duration_seconds_count", endpoint="other") == 1


def test_with_metrics_off_the_provider_seam_only_calls_through() -> None:
    assert FakeHTTP(NO_METRICS, 201)._request("GET", "https://op/x", "jwks") == (201, {})


class Backend:
    """A stand-in back end: two flags, every I/O method, and one attribute of its own."""

    keeps_records = True
    shared_lock = False
    own_attribute = "mine"

    def __init__(self) -> None:
        self.down = False
        for operation in metric_labels.STORE_OPERATIONS:
            setattr(self, operation, self._call)

    def may_have_session(self, environ: dict[str, Any]) -> bool:
        return True

    def session_cookie(self, session: Any, created: bool) -> Optional[str]:
        return None

    def deletion_cookie(self) -> Optional[str]:
        return None

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise StoreUnavailable("store: down")
        return args


def test_the_store_is_wrapped_once_and_every_operation_is_timed() -> None:
    registry = CollectorRegistry()
    backend = Backend()
    observed = observed_backend(backend, live(registry))
    assert isinstance(observed, ObservedBackend)
    assert observed.keeps_records is True and observed.shared_lock is False
    assert observed.own_attribute == "mine"  # everything else is the back end's own
    assert observed.may_have_session({}) is True and observed.deletion_cookie() is None
    assert observed.read_record("r", kind="tokens") == ("r",)
    backend.down = True
    with pytest.raises(StoreUnavailable):
        observed.save_session({}, existing=True)
    assert value(registry, "sso_store_request_duration_seconds_count", operation="read_record") == 1
    assert value(registry, "sso_store_request_duration_seconds_count", operation="save_session") == 1
    assert value(registry, "sso_store_failures_total", operation="save_session") == 1
    assert value(registry, "sso_store_failures_total", operation="read_record") == 0


# -- the settings -----------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "setting"), [
    pytest.param({"metrics_path": "metrics"}, "metrics_path", id="relative-path"),
    pytest.param({"metrics_path": "/auth/callback"}, "metrics_path", id="same-as-callback"),
    pytest.param({"health_path": "/auth/%68ealth"}, "health_path", id="percent-escape"),
    pytest.param({"health_path": "/auth/x", "metrics_path": "/auth/x"}, "health_path", id="same-as-metrics"),
    pytest.param({"metrics_path": "/m", "metrics_allowed_networks": "10.0.0.0/33"}, "metrics_allowed_networks",
                 id="bad-network"),
    pytest.param({"metrics_path": "/m", "metrics_allowed_networks": ""}, "metrics_allowed_networks",
                 id="nobody-could-read"),
    pytest.param({"metrics_path": "/m", "metrics_token": "short"}, "metrics_token", id="short-token"),
    pytest.param({"metrics_token": "t" * 40}, "metrics_token", id="token-without-path"),
    pytest.param({"metrics_registry": "no_colon"}, "metrics_registry", id="registry-not-module-attr"),
    pytest.param({"metrics_registry": "os:sep"}, "metrics_registry", id="registry-not-a-registry"),
    pytest.param({"metrics_registry": "no_such_module_x:r"}, "metrics_registry", id="registry-not-importable"),
])
def test_bad_settings_fail_at_build_naming_the_setting(settings: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as failure:
        SSOConfig.from_settings({"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                 "base_url": BASE_URL, "session_secret": "s" * 40, **settings})
    assert failure.value.setting == setting


def test_a_registry_named_as_module_attr_is_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_metrics_mod.py").write_text("from prometheus_client import CollectorRegistry\n"
                                                "REGISTRY = CollectorRegistry()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    built = SSOConfig.from_settings({"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                     "base_url": BASE_URL, "session_secret": "s" * 40,
                                     "metrics_registry": "my_metrics_mod:REGISTRY"})
    import my_metrics_mod  # type: ignore[import-not-found]

    assert built.metrics_registry is my_metrics_mod.REGISTRY
    metrics_for(built).refresh("success")
    assert value(my_metrics_mod.REGISTRY, "sso_token_refreshes_total", outcome="success") == 1


def test_two_middlewares_sharing_a_registry_share_the_metric_objects() -> None:
    """Registering the same names twice in one registry would be refused: both get the same objects."""
    registry = CollectorRegistry()
    live(registry).refresh("success")
    live(registry).refresh("success")
    assert value(registry, "sso_token_refreshes_total", outcome="success") == 2


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


BUILD = ("from sso_middleware import SSOConfig\n"
         "SSOConfig(issuer='http://127.0.0.1:1/', client_id='c', client_secret='x', base_url='http://127.0.0.1:2',"
         " session_secret='s' * 40, allow_insecure_http=True, metrics_path='/auth/metrics')\n"
         "print('built')\n")


def test_a_multiprocess_folder_set_after_prometheus_client_was_imported_is_refused(tmp_path: Path) -> None:
    """Set too late, each worker would count alone while every scrape reads the (empty) folder."""
    late = f"import os, prometheus_client\nos.environ['PROMETHEUS_MULTIPROC_DIR'] = {str(tmp_path)!r}\n" + BUILD
    result = _run(late, {})
    assert result.returncode != 0
    assert "'metrics_path'" in result.stderr and "set after prometheus_client was imported" in result.stderr
    assert _run(BUILD, {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}).stdout.strip() == "built"


def test_a_multiprocess_folder_that_is_missing_is_refused(tmp_path: Path) -> None:
    result = _run(BUILD, {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")})
    assert result.returncode != 0 and "must be an existing folder" in result.stderr


def test_without_prometheus_client_metrics_off_works_and_metrics_on_is_one_clear_error() -> None:
    """``sys.modules[name] = None`` makes any import of it fail, as if the package were not installed."""
    code = ("import sys\nsys.modules['prometheus_client'] = None\n"
            "from sso_middleware import SSOConfig\nfrom sso_middleware.errors import ConfigError\n"
            "common = dict(issuer='http://127.0.0.1:1/', client_id='c', client_secret='x',"
            " base_url='http://127.0.0.1:2', session_secret='s' * 40, allow_insecure_http=True)\n"
            "SSOConfig(**common, health_path='/auth/health')\n"
            "try:\n    SSOConfig(**common, metrics_path='/auth/metrics')\n"
            "except ConfigError as exc:\n    print(exc.setting, '|', exc.message)\n")
    result = _run(code, {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("metrics_path | needs the prometheus_client package: "
                                     "pip install 'sso_middleware[metrics]'")


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770], ids=["world-writable", "sticky-like-tmp", "group-writable"])
def test_a_multiprocess_folder_others_can_write_to_is_refused(tmp_path: Path, mode: int) -> None:
    """prometheus_client opens ``counter_<pid>.db`` there for writing (pids are predictable) and every scrape
    parses every ``*.db`` in it: another local user who can write the folder plants a link to a file of ours
    (clobbered through it) or files of made-up counts."""
    folder = tmp_path / "multiproc"
    folder.mkdir()
    folder.chmod(mode)
    result = _run(BUILD, {"PROMETHEUS_MULTIPROC_DIR": str(folder)})
    assert result.returncode != 0, result.stdout
    assert "'metrics_path'" in result.stderr and "no other user can write to" in result.stderr
    folder.chmod(0o755)  # ours, others may read the counts: fine
    assert _run(BUILD, {"PROMETHEUS_MULTIPROC_DIR": str(folder)}).stdout.strip() == "built"
