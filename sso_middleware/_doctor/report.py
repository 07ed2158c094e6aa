"""The doctor's report: run the checklist, then print it as lines or as one JSON object.

:func:`check_configuration` builds the configuration from its source (the first line of
every report); :func:`run_checks` runs the checks in order, reporting the ones that need
discovery as one skipped line when it failed, and a check that raises as one failed line
(a doctor reports; it never ends in a traceback).  :func:`shown` is the one place output is
made printable, :func:`write_lines` and :func:`write_json` print it.

Security caveat: only results that went through :func:`shown` (that is,
:meth:`~sso_middleware._redaction.Redactor.show`: configured secrets masked, control characters escaped)
may be printed; the writers do not filter again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, TextIO

from .._config.settings import SSOConfig
from .._redaction import Redactor
from ..errors import ConfigError
from .checks import CHECKS
from .checks.context import FAIL, INFO, OK, SKIP, WARN, Check, Context, Status
from .sources import Source, SourceError
from .wording import one_line

_MARKERS: dict[Status, str] = {OK: "[ OK ]", WARN: "[WARN]", FAIL: "[FAIL]", INFO: "[INFO]", SKIP: "[SKIP]"}


@dataclass(frozen=True)
class Result:
    """One printed line."""

    status: Status
    check: str
    message: str

    def line(self) -> str:
        return f"{_MARKERS[self.status]} {self.check}: {self.message}"


def run_checks(config: SSOConfig, checks: Sequence[Check] = CHECKS) -> list[Result]:
    """Run ``checks`` in order; the ones needing discovery are skipped (one line) when it failed."""
    ctx = Context.for_config(config)
    results: list[Result] = []
    skipped: list[str] = []
    skip_at = 0
    try:
        for check in checks:
            if check.needs_discovery and ctx.metadata is None:
                if not skipped:
                    skip_at = len(results)
                skipped.append(check.name)
                continue
            try:
                results.extend(Result(status, check.name, message) for status, message in check.run(ctx))
            except Exception as exc:  # a doctor reports; it never ends in a traceback
                results.append(Result(FAIL, check.name, f"the check itself failed: {type(exc).__name__}: "
                                                        f"{one_line(str(exc))}"))
    finally:
        ctx.close()
    if skipped:
        results.insert(skip_at, Result(SKIP, "provider checks", f"{', '.join(skipped)} (discovery failed)"))
    return results


def check_configuration(source: Source) -> tuple[Optional[SSOConfig], Result]:
    """Build the configuration from its source: the config and an OK line, or None and a FAIL line."""
    try:
        config = source.load()
    except ConfigError as exc:
        return None, Result(FAIL, "configuration", f"{exc} (from {source.description})")
    except SourceError as exc:
        return None, Result(FAIL, "configuration", str(exc))
    return config, Result(OK, "configuration", (
        f"valid (from {source.description}); issuer {config.issuer_url}, client_id {config.client_id}, "
        f"base_url {config.base_url}"
    ))


def shown(results: Sequence[Result], redact: Redactor) -> list[Result]:
    """The results as they may be printed: every check name and message through ``redact.show``."""
    return [Result(result.status, redact.show(result.check), redact.show(result.message)) for result in results]


def failed(results: Sequence[Result]) -> bool:
    """Whether any check failed (warnings do not count)."""
    return any(result.status == FAIL for result in results)


def write_lines(results: Sequence[Result], out: TextIO) -> None:
    """One line per result, then the verdict with the counts of OK, WARN and FAIL lines."""
    for result in results:
        print(result.line(), file=out)
    counts = {name: sum(1 for result in results if result.status == name) for name in (OK, WARN, FAIL)}
    verdict = "some checks FAILED" if failed(results) else "no check failed"
    print(f"{verdict}: {counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failure(s)", file=out)


def write_json(source: str, exit_status: int, results: Sequence[Result], out: TextIO) -> None:
    """One JSON object: the source's description (already shown), the exit status and the results."""
    json.dump({"source": source, "exit_status": exit_status,
               "results": [{"status": r.status, "check": r.check, "message": r.message} for r in results]},
              out, indent=2)
    out.write("\n")
