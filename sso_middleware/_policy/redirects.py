"""Deciding whether a ``target_url`` may be redirected to.

Open redirects are the classic hole of sign-in endpoints: ``/auth/sso`` and
``/auth/logout`` take the address to go to afterwards from the query string.
:func:`checked_target` accepts only a same-site relative path (``/dashboard``,
``/a?b=c#d``) or an absolute http(s) URL whose origin is the application's own
or listed in ``allowed_redirect_origins``.  Everything else is refused rather
than repaired: protocol-relative ``//host``, ``/\\host`` (browsers read the
backslash as a slash), schemes such as ``javascript:``, control characters,
whitespace, non-ASCII text, user-info (``https://ok@evil``) and
percent-encoded variants of those tricks.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Optional
from urllib.parse import unquote, urlsplit

from .._config.urls import origin_of

MAX_TARGET_LENGTH = 2048
_MAX_DECODE_ROUNDS = 8


def checked_target(value: Optional[str], own_origin: str, allowed_origins: Collection[str]) -> Optional[str]:
    """``value`` if it is a safe redirect target, else None."""
    if not value or len(value) > MAX_TARGET_LENGTH:
        return None
    if not all("\x21" <= char <= "\x7e" for char in value) or "\\" in value:
        return None
    if value.startswith("/"):
        return value if _is_plain_path(value) else None
    origin = origin_of(value)
    if origin is None:
        return None
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        return None
    if origin != own_origin and origin not in allowed_origins:
        return None
    return value


def absolute_target(target: str, base_url: str) -> str:
    """An absolute URL for a target that :func:`checked_target` accepted."""
    return base_url + target if target.startswith("/") else target


def app_path(target: str, base_url: str) -> Optional[str]:
    """The application path (below ``base_url``) a checked target leads to; None if elsewhere.

    Percent-decoded to the form ``PATH_INFO`` has (PEP 3333: the bytes as latin-1 text), the
    form access rules compare with.
    """
    parts = urlsplit(target)
    if not target.startswith("/"):
        base = urlsplit(base_url)
        if origin_of(target) != origin_of(base_url):
            return None
        prefix = base.path
        if prefix and parts.path != prefix and not parts.path.startswith(prefix + "/"):
            return None
        return unquote(parts.path[len(prefix):], encoding="latin-1") or "/"
    return unquote(parts.path, encoding="latin-1") or "/"


def _is_plain_path(value: str) -> bool:
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return False
    # Refuse encoded tricks that some frameworks would decode into "//host" or "/\host",
    # however many times the path was percent-encoded: decode until nothing changes.
    decoded = parts.path
    for _ in range(_MAX_DECODE_ROUNDS):
        if decoded.startswith("//") or "\\" in decoded or not all("\x1f" < char != "\x7f" for char in decoded):
            return False
        previous, decoded = decoded, unquote(decoded)
        if decoded == previous:
            return True
    return False
