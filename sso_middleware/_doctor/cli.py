"""The ``check`` command: ``python -m sso_middleware check`` (or ``sso-middleware check``).

:func:`add_arguments` declares its options (the configuration source, ``--set``,
``--json``) on the parser :mod:`sso_middleware.__main__` builds; :func:`run` picks the
source (:mod:`.sources`), runs the checks (:mod:`.checks`) and prints the report
(:mod:`.report`).  Exit status: :data:`EXIT_OK` (0) when no check failed, warnings allowed;
:data:`EXIT_FAILED` (1) when one did; :data:`EXIT_USAGE` (2) for bad arguments or a file
or section that does not exist.

Security caveat: :func:`run` gives the report's :class:`~sso_middleware._redaction.Redactor` every
secret the source and the configuration know of (``client_secret``, ``session_secret``,
the passwords of ``session_url`` and ``http_proxy``) before anything is printed, and
marks the client id, issuer and base URLs as public so that pieces of them are not
masked.  A usage error's text is escaped too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, TextIO

from .._config.settings import SSOConfig
from .._redaction import Redactor, escape_text, url_passwords
from . import report
from .sources import Source, UsageError, source_from_args

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


DESCRIPTION = """\
Check a deployment's configuration: load it as the middleware would, then ask the
provider and the session store whether it will work.  Prints one line per finding:
[ OK ], [WARN], [FAIL], [INFO] (and [SKIP] for checks that need discovery when it failed).
Exit status: 0 nothing failed, 1 something failed, 2 usage error.  Secrets are never printed."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``check`` subcommand's options."""
    add_source_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the configuration comes from (``--ini``, ``--settings``, ``--env``, ``--section``, ``--set``)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--ini", metavar="FILE", help="a PasteDeploy ini file (its sso filter section)")
    source.add_argument("--settings", metavar="FILE", help="a file of 'name = value' lines, or a .json object")
    source.add_argument("--env", action="store_true", help="the SSO_* environment variables (the default)")
    parser.add_argument("--section", metavar="NAME",
                        help="with --ini: the section (filter:sso or sso); default: the first with "
                             "use = egg:sso_middleware#main")
    parser.add_argument("--set", metavar="NAME=VALUE", action="append",
                        help="with --ini: a PasteDeploy global variable (read by 'get NAME = NAME'); otherwise a "
                             "setting; repeatable")


def source_of(args: argparse.Namespace, command: str, err: TextIO) -> Optional[tuple[Source, Redactor]]:
    """The configuration source the arguments name, and a Redactor of its secrets; None after a usage error."""
    try:
        source = source_from_args(args)
    except UsageError as exc:
        print(f"sso-middleware {command}: error: {escape_text(str(exc))}", file=err)
        return None
    return source, Redactor(source.secrets)


def redact_config(redact: Redactor, config: SSOConfig) -> None:
    """Tell ``redact`` the configuration's secrets (and the public values that are no secret)."""
    redact.add([config.client_secret, config.session_secret, config.metrics_token, *url_passwords(config.session_url),
                *url_passwords(config.http_proxy)])
    redact.add_public([config.client_id, config.issuer_url, *config.base_urls])


def run(args: argparse.Namespace, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """Run the doctor for parsed arguments; returns the exit status."""
    out = stdout or sys.stdout
    found = source_of(args, "check", stderr or sys.stderr)
    if found is None:
        return EXIT_USAGE
    source, redact = found
    config, first = report.check_configuration(source)
    results = [first]
    if config is not None:
        redact_config(redact, config)
        results += report.run_checks(config)
    # The one place output is made printable: every check's message, whatever it quotes.
    results = report.shown(results, redact)
    status = EXIT_FAILED if report.failed(results) else EXIT_OK
    if args.json:
        report.write_json(redact.show(source.description), status, results, out)
    else:
        report.write_lines(results, out)
    return status
