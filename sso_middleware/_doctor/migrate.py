"""The ``migrate`` command: ``sso-middleware migrate`` creates the session store's schema ahead of time.

For a store with a schema (:class:`~sso_middleware.stores.backend.Migratable`: the
``postgresql`` store's table and its index) it creates what is missing and says what it
did; run again, it changes nothing.  Other stores have nothing to create.  The
configuration comes from the same sources as ``check`` (:mod:`.sources`).  Exit status: 0
when the schema is there (created now or before, or none is needed), 1 when the
configuration is invalid or the store cannot be reached or changed (the role may not
create the table), 2 for usage errors.

Use it when the role the application connects as may not create tables (run it once as
one that may, e.g. with ``--set session_url=postgresql://owner:...@host/db``), or to
create the table before the first request instead of on it.

Security caveat: nothing printed holds a secret: the store URL is shown with its password
masked, and every line goes through the same :class:`~sso_middleware._redaction.Redactor` as
the doctor's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, TextIO

from ..errors import ConfigError, StoreUnavailable
from ..stores import backend_for
from ..stores.backend import Migratable
from ..stores.registry import type_name
from .cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_source_arguments, redact_config, source_of
from .sources import SourceError

DESCRIPTION = """\
Create the session store's schema (the postgresql store's table) unless it exists, as the
configured session_url's role; stores without a schema have nothing to create.
Idempotent.  Exit status: 0 the schema is there, 1 it could not be created, 2 usage error."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``migrate`` subcommand's options: where the configuration comes from."""
    add_source_arguments(parser)


def run(args: argparse.Namespace, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """Create the configured store's schema; returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    found = source_of(args, "migrate", err)
    if found is None:
        return EXIT_USAGE
    source, redact = found
    try:
        config = source.load()
        redact_config(redact, config)
        backend = backend_for(config)
        if not isinstance(backend, Migratable):
            print(redact.show(f"session_type {type_name(config.session_type)} has no schema to create: nothing "
                              "to do"), file=out)
            return EXIT_OK
        done = backend.migrate()
    except (ConfigError, SourceError) as exc:
        print(redact.show(f"sso-middleware migrate: {exc} (from {source.description})"), file=err)
        return EXIT_FAILED
    except StoreUnavailable as exc:
        print(redact.show(f"sso-middleware migrate: the session store cannot be changed: {exc}"), file=err)
        return EXIT_FAILED
    print(redact.show(done), file=out)
    return EXIT_OK
