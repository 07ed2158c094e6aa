"""The checks of the metrics and health settings, when the configuration is built.

``metrics_registry``, ``metrics_allowed_networks`` and ``metrics_token`` (``metrics_path``
and ``health_path`` are route paths: :mod:`sso_middleware._config.validation` checks them with
the other routes): each bad value is one :class:`~sso_middleware.errors.ConfigError` naming
the setting.  With metrics on, ``prometheus_client`` must be importable (the ``metrics``
extra), and a ``PROMETHEUS_MULTIPROC_DIR`` must be a writable folder that was set before
prometheus_client was first imported (its multiprocess mode is decided at that import; set
later, each worker would count alone while the scrape reads the folder), owned by this user and
writable by no one else (prometheus_client writes ``<type>_<pid>.db`` files there: a folder others
can write lets them plant links or counts).

Security caveat: ``metrics_registry = module:attr`` imports and runs that module; settings
come from the operator, never from a request.
"""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING, Optional, Union

from .._config.setting_files import imported_object
from ..errors import ConfigError
from .recorder import metrics_on

if TYPE_CHECKING:
    from .._config.settings import SSOConfig

#: Where prometheus_client's multiprocess mode keeps its files (read here, by the instruments and the doctor).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
#: The fewest characters of a ``metrics_token`` (a random secret, as long as ``session_secret``'s minimum).
MIN_TOKEN_LENGTH = 32


def validate(config: SSOConfig) -> None:
    networks(config)  # raises for a bad network
    token = config.metrics_token
    if token and (len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token):
        raise ConfigError("metrics_token", f"must be at least {MIN_TOKEN_LENGTH} printable characters without "
                                           "spaces (random data)")
    if token and not config.metrics_path:
        raise ConfigError("metrics_token", "needs metrics_path (the route it guards)")
    if config.metrics_path and not config.metrics_allowed_networks and not token:
        raise ConfigError("metrics_allowed_networks", "is empty and there is no metrics_token: nobody could read "
                                                      "metrics_path (list networks, or set a token)")
    if not metrics_on(config):
        return
    try:
        import prometheus_client  # noqa: F401 - only to know it is there
    except ImportError:
        setting = "metrics_path" if config.metrics_path else "metrics_registry"
        raise ConfigError(setting, "needs the prometheus_client package: pip install 'sso_middleware[metrics]'"
                          ) from None
    _resolve_registry(config)
    _check_multiprocess_dir()


def networks(config: SSOConfig) -> tuple[Network, ...]:
    """``metrics_allowed_networks`` as networks (a bare address is a network of one)."""
    found = []
    for text in config.metrics_allowed_networks:
        try:
            found.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError("metrics_allowed_networks", f"{text!r} is not an address or network "
                                                          "(like 127.0.0.0/8 or 10.1.2.3)") from None
    return tuple(found)


def _resolve_registry(config: SSOConfig) -> None:
    """``metrics_registry`` as the ``CollectorRegistry`` object (``module:attr`` imported now)."""
    from .instruments import is_registry

    value = config.metrics_registry
    if value is None:
        return
    if isinstance(value, str):
        if not value.strip():
            object.__setattr__(config, "metrics_registry", None)
            return
        if ":" not in value:
            raise ConfigError("metrics_registry", f"{value!r} is not module:attribute naming a CollectorRegistry")
        value = imported_object("metrics_registry", value)
    if not is_registry(value):
        raise ConfigError("metrics_registry", f"must be a prometheus_client CollectorRegistry, not "
                                              f"{type(value).__name__}")
    object.__setattr__(config, "metrics_registry", value)


def multiprocess_folder_problem(folder: str) -> Optional[str]:
    """What is wrong with ``folder`` as ``PROMETHEUS_MULTIPROC_DIR`` (None: nothing); the doctor says the same.

    prometheus_client writes ``<type>_<pid>.db`` files there (pids are predictable) and every
    scrape parses every ``*.db`` in it: a folder another user can write lets them plant a link
    to clobber a file of ours through, or made-up counts.
    """
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        return "must be an existing folder this process can write to (create it, empty, before the server starts)"
    info = os.stat(folder)
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return ("must be a folder of this user that no other user can write to (not group- or world-writable: "
                "chmod 0700 or 0755)")
    return None


def _check_multiprocess_dir() -> None:
    from .instruments import multiprocess_mode

    folder = os.environ.get(MULTIPROC_ENV)
    if folder is None:
        return
    problem = multiprocess_folder_problem(folder)
    if problem is not None:
        raise ConfigError("metrics_path", f"{MULTIPROC_ENV}={folder!r} {problem}")
    if not multiprocess_mode():
        raise ConfigError("metrics_path", f"{MULTIPROC_ENV} was set after prometheus_client was imported: set it "
                                          "in the environment before the server starts (or at the top of the "
                                          "gunicorn config file)")
