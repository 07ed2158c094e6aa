"""Which back end ``session_type`` names: a built-in one by name, your own as ``module:Class``, or an object.

``session_type`` is one of :data:`SESSION_TYPES` (``file``, ``ext:redis``,
``ext:memcached``, ``postgresql``, ``cookie``, ``environ``), or ``"mypkg.module:Backend"`` (imported
when the configuration is built), or -- from Python -- a back-end class or an object
already built.  Whatever it names must implement :class:`~.backend.SessionBackend`;
anything else is one :class:`~..errors.ConfigError` naming ``session_type``.  This is
the only place that knows which back end a name means.

Security caveat: ``module:Class`` imports and runs code named by a setting: settings
come from the operator (ini file, environment), never from a request.
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any, Union, cast

from .._config.setting_files import imported_object
from ..errors import ConfigError
from .backend import SessionBackend, protocol_members
from .cookie import CookieBackend
from .environ import EnvironBackend
from .file import FileBackend
from .memcached import MemcachedBackend
from .postgresql import PostgresBackend
from .redis import RedisBackend

if TYPE_CHECKING:
    from .._config.settings import SSOConfig

#: The built-in back ends, by their ``session_type``.
SESSION_TYPES: dict[str, type[Any]] = {
    "file": FileBackend,
    "ext:redis": RedisBackend,
    "ext:memcached": MemcachedBackend,
    "postgresql": PostgresBackend,
    "cookie": CookieBackend,
    "environ": EnvironBackend,
}

_CHOICES = f"must be one of {', '.join(SESSION_TYPES)}, or 'module:Class' naming a back end of your own"

#: A back end as ``session_type`` may name it: a class to build with the configuration, or a built one.
Found = Union[type[Any], SessionBackend]


def resolve(value: Any) -> Found:
    """The back-end class (or object) ``value`` names; ConfigError("session_type", ...) when it names none."""
    if isinstance(value, str):
        if value in SESSION_TYPES:
            return SESSION_TYPES[value]
        if not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ConfigError("session_type", _CHOICES)
        found = _imported(value)
    else:
        found = value
    missing = [name for name in protocol_members() if not hasattr(found, name)]
    if isinstance(found, type) and inspect.isabstract(found):
        missing += sorted(getattr(found, "__abstractmethods__", ()))
    if missing:
        raise ConfigError("session_type", f"{type_name(value)} does not implement SessionBackend "
                                          f"(missing: {', '.join(missing)})")
    return cast(Found, found)


def _imported(path: str) -> Any:
    try:
        return imported_object("session_type", path)
    except ConfigError as exc:
        raise ConfigError("session_type", f"{_CHOICES}; {exc.message}") from None


def validate(config: SSOConfig) -> None:
    """The back end's own checks of the settings it reads (``session_url``...), when the configuration is built."""
    resolve(config.session_type).validate(config)


def backend_for(config: SSOConfig) -> SessionBackend:
    """The back end of a configuration: built from it, or the object it was given."""
    found = resolve(config.session_type)
    if not isinstance(found, type):
        return found
    backend = found(config)
    if not isinstance(backend, SessionBackend):
        raise ConfigError("session_type", f"{type_name(config.session_type)} built no SessionBackend")
    return backend


def type_name(value: Any) -> str:
    """``session_type`` as a short name for messages: the text given, or the back end's class name."""
    if isinstance(value, str):
        return value
    kind = value if isinstance(value, type) else type(value)
    return f"{kind.__module__}:{kind.__qualname__}"
