"""The command line: ``python -m sso_middleware COMMAND`` (also installed as ``sso-middleware``).

Commands:

* ``check``: the configuration doctor (:mod:`sso_middleware._doctor`) -- loads the
  configuration from a PasteDeploy ini file, a settings file or the ``SSO_*``
  environment variables and checks it against the provider and the session store.
  Exit status 0 when nothing failed, 1 when a check failed, 2 for usage errors.
* ``migrate``: create the session store's schema (the ``postgresql`` store's table)
  unless it exists (:mod:`sso_middleware._doctor.migrate`); idempotent.

Security caveat: nothing here prints a secret; see :mod:`sso_middleware._doctor`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Optional

from . import __version__
from ._doctor import cli as doctor
from ._doctor import migrate


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "sso-middleware"
    if program in ("__main__.py", "-c", ""):
        program = "python -m sso_middleware"
    parser = argparse.ArgumentParser(prog=program, description="Tools for sso_middleware deployments.")
    parser.add_argument("--version", action="version", version=f"sso_middleware {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="check a configuration against the provider and the session store",
        description=doctor.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_arguments(check)
    schema = commands.add_parser(
        "migrate",
        help="create the session store's table (postgresql) unless it exists",
        description=migrate.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    migrate.add_arguments(schema)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a command; returns the exit status (2 for usage errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's usage error
        return exc.code if isinstance(exc.code, int) else doctor.EXIT_USAGE
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: a command is required (check, migrate)", file=sys.stderr)
        return doctor.EXIT_USAGE
    if args.command == "migrate":
        return migrate.run(args)
    return doctor.run(args)


if __name__ == "__main__":
    sys.exit(main())
