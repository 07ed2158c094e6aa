"""Where the doctor's configuration comes from: exactly one :class:`Source`.

* ``--ini FILE [--section filter:NAME]`` (:func:`ini_source`): a PasteDeploy ini file,
  read by PasteDeploy itself (``%(here)s``, ``[DEFAULT]``, ``get NAME = VAR`` and
  ``set NAME = VALUE``); the section is the one named, else the first whose ``use`` is
  ``egg:sso_middleware#main``.  ``--set NAME=VALUE`` sets a global variable, like
  ``pserve app.ini NAME=VALUE`` does.
* ``--settings FILE`` (:func:`settings_source`): ``name = value`` lines (``#`` comments)
  or a ``.json`` object; ``--set NAME=VALUE`` overrides a setting.
* ``--env``, the default (:func:`env_source`): the ``SSO_*`` environment variables;
  ``--set NAME=VALUE`` overrides a setting.

A source does not build the configuration when it is made: :attr:`Source.load` does, so
that a bad setting becomes the first failed check instead of a usage error.

Security caveat: each source gathers, before anything is loaded, the values that must
never be printed (:attr:`Source.secrets`: ``client_secret``, ``session_secret`` and the
passwords in ``session_url`` and ``http_proxy``), for the report's :class:`~sso_middleware._redaction.Redactor`.
The errors of configparser and PasteDeploy quote raw lines and values (a secret, often):
they are reported by their type, line number or option name only.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .._config.settings import SSOConfig
from .._redaction import url_passwords
from .wording import one_line

#: ``use`` values that mark the middleware's section in an ini file.
USE_VALUES = frozenset({"egg:sso_middleware#main", "egg:sso_middleware", "egg:sso-middleware#main",
                        "egg:sso-middleware"})
_SECRET_SETTINGS = ("client_secret", "session_secret", "metrics_token")


class UsageError(Exception):
    """Bad arguments, or a file or section that does not exist: exit status 2."""


class SourceError(Exception):
    """The configuration file exists but cannot be read as settings: a failed check."""


@dataclass(frozen=True)
class Source:
    """A configuration source: how to build the config, and which values must never be printed."""

    description: str
    load: Callable[[], SSOConfig]
    secrets: tuple[str, ...] = field(default=(), repr=False)


def source_from_args(args: argparse.Namespace) -> Source:
    """The source the arguments name (``UsageError`` for a missing file or section)."""
    overrides = _parse_overrides(args.set or [])
    if args.section is not None and args.ini is None:
        raise UsageError("--section needs --ini")
    if args.ini is not None:
        return ini_source(args.ini, args.section, overrides)
    if args.settings is not None:
        return settings_source(args.settings, overrides)
    return env_source(os.environ, overrides)


def _parse_overrides(items: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"--set expects NAME=VALUE, not {item.split('=')[0]!r}...")
        overrides[name.strip()] = value
    return overrides


def env_source(environ: Mapping[str, str], overrides: Mapping[str, str]) -> Source:
    """``SSOConfig.from_env()``: the ``SSO_*`` variables (``overrides`` are setting names)."""
    merged = dict(environ)
    merged.update({f"SSO_{name.upper()}": value for name, value in overrides.items()})
    values = {name[4:].lower(): value for name, value in merged.items() if name.startswith("SSO_")}
    return Source("environment SSO_*", lambda: SSOConfig.from_env(merged), _secret_values(values))


def settings_source(path: str, overrides: Mapping[str, str]) -> Source:
    """A keyword file (``name = value`` lines) or a ``.json`` object of settings."""
    if not os.path.isfile(path):
        raise UsageError(f"settings file not found: {path}")
    try:
        settings = read_settings_file(path)
    except SourceError as exc:
        error = exc

        def fail() -> SSOConfig:
            raise error

        return Source(f"settings file {path}", fail)
    settings.update(overrides)
    return Source(f"settings file {path}", lambda: SSOConfig.from_settings(settings), _secret_values(settings))


def read_settings_file(path: str) -> dict[str, Any]:
    """The settings of a ``.json`` object or of ``name = value`` lines (``SourceError`` otherwise)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    if path.lower().endswith(".json"):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise SourceError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise SourceError(f"{path} must hold a JSON object of settings")
        return dict(document)
    settings: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        name = name.strip()
        if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SourceError(f"{path} line {number}: expected 'name = value'")
        if name in settings:
            raise SourceError(f"{path} line {number}: {name} is set twice")
        settings[name] = value.strip()
    return settings


def ini_source(path: str, section: Optional[str], global_overrides: Mapping[str, str]) -> Source:
    """A PasteDeploy ini file's middleware section, loaded by PasteDeploy (imported lazily)."""
    if not os.path.isfile(path):
        raise UsageError(f"ini file not found: {path}")
    try:
        from paste.deploy.loadwsgi import FILTER, loadcontext
    except ImportError:
        raise UsageError("reading an ini file needs PasteDeploy: pip install pastedeploy") from None
    path = os.path.abspath(path)
    raw = configparser.RawConfigParser(strict=False, interpolation=None)
    raw.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        raw.read(path, encoding="utf-8")
    except configparser.ParsingError as exc:  # its message quotes the lines, which may hold a secret
        # MissingSectionHeaderError (a line before any section) is one too, with a lineno but no errors list.
        lines = ", ".join(str(number) for number, _ in getattr(exc, "errors", ())) or str(getattr(exc, "lineno", "?"))
        raise UsageError(f"{path} is not an ini file: {type(exc).__name__} at line {lines}") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not an ini file: {one_line(str(exc))}") from None
    section = _find_section(raw, path, section)
    name = section.split(":", 1)[1].strip()
    candidates: list[str] = []
    for key, value in _raw_options(raw):
        setting = key.split(" ", 1)[-1].strip()
        if key.startswith("get "):
            continue
        if setting in _SECRET_SETTINGS:
            candidates.append(value)
        elif setting == "session_url":
            candidates += url_passwords(value)

    def load() -> SSOConfig:
        try:
            context = loadcontext(FILTER, f"config:{path}", name=name, global_conf=dict(global_overrides) or None)
            local_conf = dict(context.local_conf)
        except KeyError as exc:
            raise SourceError(f"[{section}] reads the global variable {exc} (get ...), which is not set "
                              "in [DEFAULT] nor given with --set") from None
        except configparser.InterpolationError as exc:
            # Its message quotes the raw value (a secret, often): the error type and option only.
            raise SourceError(f"PasteDeploy cannot load [{section}]: {type(exc).__name__} in option "
                              f"{exc.option!r}: a literal '%' in a value must be written '%%'") from None
        except (LookupError, ImportError, ValueError, configparser.Error) as exc:
            raise SourceError(f"PasteDeploy cannot load [{section}]: {one_line(str(exc))}") from None
        return SSOConfig.from_settings(local_conf)

    return Source(f"ini {path} [{section}]", load, tuple(candidates) + _secret_values(global_overrides))


def _raw_options(raw: configparser.RawConfigParser) -> Iterator[tuple[str, str]]:
    yield from raw.defaults().items()
    for section in raw.sections():
        for key in raw.options(section):
            yield key, raw.get(section, key)


def _find_section(raw: configparser.RawConfigParser, path: str, wanted: Optional[str]) -> str:
    if wanted is not None:
        section = wanted if ":" in wanted else f"filter:{wanted}"
        if not raw.has_section(section):
            raise UsageError(f"{path} has no section [{section}]")
        if not section.startswith("filter:"):
            raise UsageError(f"[{section}] is not a [filter:NAME] section (the middleware is a PasteDeploy filter)")
        return section
    for section in raw.sections():
        if section.startswith("filter:") and raw.get(section, "use", fallback="").strip() in USE_VALUES:
            return section
    raise UsageError(f"{path} has no [filter:NAME] section with use = egg:sso_middleware#main; name one with --section")


def _secret_values(settings: Mapping[str, Any]) -> tuple[str, ...]:
    values = [settings.get(name) for name in _SECRET_SETTINGS]
    for name in ("session_url", "http_proxy"):
        url = settings.get(name)
        if isinstance(url, str):
            values += url_passwords(url)
    return tuple(value for value in values if isinstance(value, str) and value)
