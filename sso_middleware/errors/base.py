"""The roots of every exception: :class:`SSOError`, :class:`ConfigError`, :class:`SSOFailure`, :class:`AuthFailure`.

Security caveat: :class:`SSOFailure` subclasses declaring a ``code`` are refused outside this
package, so the catalogue (:mod:`.catalogue`) built from them is complete.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

_PACKAGE = __name__.rpartition(".")[0]  # sso_middleware.errors
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


class SSOError(Exception):
    """Base of every exception sso_middleware raises on purpose: ``except SSOError`` catches them all."""


class ConfigError(SSOError, ValueError):
    """A setting is missing or invalid; raised when the middleware is built.

    ``setting`` names the offending setting so one message tells the operator
    what to fix.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"sso_middleware setting {setting!r}: {message}")
        self.setting = setting
        self.message = message


class SSOFailure(SSOError):
    """A request that cannot go on, answered with the failure page its class describes.

    Each subclass that declares its own ``code`` also declares its ``status``
    (400-599) and page ``message``, and is the only class with that code; a
    subclass without a ``code`` of its own is a kind of its parent and gets its
    parent's page.  Such codes are declared in this module only, so the
    catalogue built here is complete.
    """

    code: str
    status: ClassVar[int]
    message: ClassVar[str]

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in vars(cls) and cls.__module__.rpartition(".")[0] != _PACKAGE:
            raise TypeError(f"{cls.__qualname__}: failure codes are declared in {_PACKAGE}, "
                            "where the catalogue is built")


class AuthFailure(SSOFailure):
    """A sign-in, sign-out or SSO request that cannot go on: the user is redirected to the failure page.

    Raised bare it is the generic page (``unknown_error``), also shown for any
    code the catalogue does not know.
    """
    code = "unknown_error"
    status = 400
    message = "Signing in did not succeed. Please try again."

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


