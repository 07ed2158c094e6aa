"""The doctor's report (:mod:`sso_middleware._doctor.report`): running a checklist, printing it.

The checklists here are made up, so that the skipping, the containment of a failing check
and the printing can be seen without a provider; tests/test_doctor.py runs the real one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, cast

import pytest

from sso_middleware._config.settings import SSOConfig
from sso_middleware._doctor.checks.context import FAIL, INFO, OK, SKIP, WARN, Check, Context, Finding
from sso_middleware._doctor.report import (
    Result,
    check_configuration,
    failed,
    run_checks,
    shown,
    write_json,
    write_lines,
)
from sso_middleware._doctor.sources import Source, SourceError
from sso_middleware._redaction import Redactor
from sso_middleware.errors import ConfigError

SECRET = "client-secret-0123456789"
SETTINGS = {
    "issuer": "https://op.example/",
    "client_id": "app1",
    "client_secret": SECRET,
    "base_url": "https://app.example",
    "session_secret": "session-secret-0123456789abcdef-0123",
}


@pytest.fixture
def config() -> SSOConfig:
    return SSOConfig.from_settings(SETTINGS)


def says(*findings: Finding) -> Any:
    def run(ctx: Context) -> Iterator[Finding]:
        yield from findings
    return run


def discovers(ctx: Context) -> Iterator[Finding]:
    ctx.metadata = cast(Any, "metadata")  # what the checks marked needs_discovery look at
    yield OK, "found"


def raises(ctx: Context) -> Iterator[Finding]:
    yield INFO, "before"
    raise RuntimeError("went\nwrong")


def test_checks_needing_discovery_are_one_skipped_line_where_the_first_would_be(config: SSOConfig) -> None:
    results = run_checks(config, [
        Check("first", says((OK, "one"), (INFO, "two"))),
        Check("clock", says((OK, "never")), needs_discovery=True),
        Check("cookies", says((WARN, "three"))),
        Check("keys", says((OK, "never")), needs_discovery=True),
    ])
    assert results == [
        Result(OK, "first", "one"),
        Result(INFO, "first", "two"),
        Result(SKIP, "provider checks", "clock, keys (discovery failed)"),
        Result(WARN, "cookies", "three"),
    ]


def test_checks_needing_discovery_run_once_it_succeeded(config: SSOConfig) -> None:
    results = run_checks(config, [Check("discovery", discovers), Check("clock", says((OK, "ran")), True)])
    assert results == [Result(OK, "discovery", "found"), Result(OK, "clock", "ran")]


def test_a_check_that_raises_is_one_failed_line_and_the_others_still_run(config: SSOConfig) -> None:
    results = run_checks(config, [Check("broken", raises), Check("after", says((OK, "ran")))])
    assert results == [
        Result(INFO, "broken", "before"),
        Result(FAIL, "broken", "the check itself failed: RuntimeError: went wrong"),
        Result(OK, "after", "ran"),
    ]


def test_the_configuration_line(config: SSOConfig) -> None:
    built, line = check_configuration(Source("settings file sso.conf", lambda: config))
    assert built is config
    assert line == Result(OK, "configuration", "valid (from settings file sso.conf); issuer https://op.example/, "
                                                "client_id app1, base_url https://app.example")

    def bad_setting() -> SSOConfig:
        raise ConfigError("clock_skew", "must be a positive number")

    built, line = check_configuration(Source("environment SSO_*", bad_setting))
    assert built is None
    assert line == Result(FAIL, "configuration", "sso_middleware setting 'clock_skew': must be a positive number "
                                                  "(from environment SSO_*)")

    def unreadable() -> SSOConfig:
        raise SourceError("sso.conf line 3: expected 'name = value'")

    assert check_configuration(Source("settings file sso.conf", unreadable)) == (
        None, Result(FAIL, "configuration", "sso.conf line 3: expected 'name = value'"))


def test_shown_results_are_masked_and_escaped_and_failed_counts_only_failures() -> None:
    results = [Result(OK, "configuration", f"secret {SECRET}, a piece {SECRET[3:15]}"),
               Result(WARN, "kid \x1b[2J", "provider says \x1b]0;title\x07")]
    printed = shown(results, Redactor([SECRET]))
    assert printed == [Result(OK, "configuration", "secret ***, a piece ***"),
                       Result(WARN, "kid \\x1b[2J", "provider says \\x1b]0;title\\x07")]
    assert not failed(printed)
    assert failed([*printed, Result(FAIL, "cookies", "x")])


def test_the_lines_and_the_json() -> None:
    results = [Result(OK, "discovery", "fine"), Result(WARN, "cookies", "not Secure"),
               Result(FAIL, "session store", "no answer"), Result(SKIP, "provider checks", "clock"),
               Result(INFO, "register at the provider", "a URL")]
    out = io.StringIO()
    write_lines(results, out)
    assert out.getvalue().splitlines() == [
        "[ OK ] discovery: fine",
        "[WARN] cookies: not Secure",
        "[FAIL] session store: no answer",
        "[SKIP] provider checks: clock",
        "[INFO] register at the provider: a URL",
        "some checks FAILED: 1 ok, 1 warning(s), 1 failure(s)",
    ]
    out = io.StringIO()
    write_lines(results[:2], out)
    assert out.getvalue().splitlines()[-1] == "no check failed: 1 ok, 1 warning(s), 0 failure(s)"

    out = io.StringIO()
    write_json("settings file sso.conf", 1, results[:2], out)
    assert out.getvalue().endswith("}\n")
    assert json.loads(out.getvalue()) == {
        "source": "settings file sso.conf", "exit_status": 1,
        "results": [{"status": "OK", "check": "discovery", "message": "fine"},
                    {"status": "WARN", "check": "cookies", "message": "not Secure"}],
    }
