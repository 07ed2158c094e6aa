"""Files and Python objects that settings name (keys, certificates, trust bundles; ``module:name``), loaded once.

Security caveat: such a file is read with a size limit, so a setting pointing at a huge
file (or a device) costs a bounded read, and its errors name the setting and the path,
never the file's content (a key).  A ``module:name`` setting imports and runs that module:
settings come from the operator, never from a request.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from ..errors import ConfigError


def read_setting_file(name: str, path: str, limit: int) -> bytes:
    """The bytes of the file a setting names, read when the middleware is built; at most ``limit``.

    One ``ConfigError`` naming the setting when it cannot be read or is larger (a key or a
    trust bundle is small: a huge file is a mistake, and is never read whole).
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(name, f"{path!r} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > limit:
        raise ConfigError(name, f"{path!r} is larger than {limit} bytes")
    return data


def imported_object(name: str, path: str) -> Any:
    """The object a ``module:attribute`` setting names, imported when the middleware is built.

    One ``ConfigError`` naming the setting when the module or the attribute cannot be had.
    """
    module_name, _, attribute = path.strip().partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as exc:
        raise ConfigError(name, f"cannot import {path!r}: {type(exc).__name__}: {exc}") from None
    return found


def imported_callable(name: str, value: Any) -> Any:
    """A hook setting as a callable: given one, or imported from ``module:function`` text; None when unset.

    The one resolution of every hook setting (``authorize_params_hook``, ``on_sign_in``):
    one ``ConfigError`` naming the setting for anything else, at build time.
    """
    if value is None or value == "":
        return None
    if callable(value):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"[\w.]+:[\w.]+", value.strip()):
        raise ConfigError(name, "must be a callable, or 'module:function' text")
    found = imported_object(name, value)
    if not callable(found):
        raise ConfigError(name, f"{value!r} is not callable")
    return found
