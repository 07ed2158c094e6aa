"""The ``Cookie`` request header read, and ``Set-Cookie`` values written, for the middleware's own cookies.

Two kinds of cookie are ours: the session cookie (Beaker writes it when it carries
a session id; :mod:`sso_middleware._session.state` expires it) and the sign-in transaction cookies
(:mod:`sso_middleware._wsgi.transactions`).  Both read the request's ``Cookie`` header with
:func:`request_cookie` / :func:`request_cookies` and build their ``Set-Cookie``
values with :func:`set_cookie` / :func:`deletion_cookie`.

The header is split on ``;`` here rather than by :mod:`http.cookies`, whose parser
gives up on a whole header when any cookie in it is malformed by its rules (a JSON
value, a space, a stray quote): a sibling application's odd cookie on the parent
domain must not sign our users out or lose their sign-ins.  A part without ``=``
or without a name is skipped; names and values are trimmed of white space.

Security caveats:

* Of several cookies of one name the first one sent counts.  Browsers send the one
  with the longest ``Path`` first (RFC 6265 section 5.4), but a sibling subdomain
  can set a same-named cookie for the parent domain; only the ``__Host-`` names
  (:mod:`sso_middleware._config.settings`) keep it out.
* Nothing here says a value is authentic: every caller verifies what it reads
  (Beaker's signature or encryption, the transactions' Fernet token).
* What is written is checked: a name must be an RFC 6265 token and a value
  cookie-octets (no ``;``, ``,``, space, quote, backslash or control character),
  and ``Path``/``Domain`` hold no ``;`` or control character, so that no value can
  add an attribute or a header; :class:`ValueError` otherwise.  Every cookie is
  HttpOnly, and ``SameSite=None`` only goes with ``Secure``.
"""

from __future__ import annotations

import re
from typing import Optional

#: RFC 6265 section 4.1.1: a cookie name is a token, a value cookie-octets (optionally in double quotes).
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_ATTRIBUTE = re.compile(r"[\x20-\x3a\x3c-\x7e]*")
_SAME_SITE = frozenset({"Lax", "Strict", "None"})
#: The ``Expires`` of a deletion, for clients that know ``Expires`` but not ``Max-Age``.
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


def request_cookie(cookie_header: str, name: str, *, unquote: bool) -> Optional[str]:
    """The value of the first cookie called ``name`` in a ``Cookie`` header, or None when none is.

    ``unquote``: also strip the double quotes around the value.  The transaction
    cookies are read so (their Fernet tokens never hold a quote); the session cookie
    is not, because Beaker parses the ``name=value`` it is handed once more itself.
    """
    for part in cookie_header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            return value.strip().strip('"') if unquote else value.strip()
    return None


def request_cookies(cookie_header: str, *, unquote: bool) -> dict[str, str]:
    """Name -> value of every cookie in a ``Cookie`` header, the first of each name (see :func:`request_cookie`)."""
    found: dict[str, str] = {}
    for part in cookie_header.split(";"):
        key, sep, value = part.partition("=")
        key = key.strip()
        if sep and key and key not in found:
            found[key] = value.strip().strip('"') if unquote else value.strip()
    return found


def set_cookie(
    name: str, value: str, *, path: str, max_age: int, secure: bool, same_site: str = "Lax", domain: str = ""
) -> str:
    """A ``Set-Cookie`` value: ``name=value``, ``Path``, ``Domain`` (if any), ``Max-Age``, HttpOnly, Secure, SameSite.

    ``max_age`` 0 makes the browser drop the cookie at once (the transactions expire
    theirs so); :func:`deletion_cookie` adds an ``Expires`` in the past as well.
    """
    return _set_cookie(name, value, path, domain, None, max_age, secure, same_site)


def deletion_cookie(name: str, *, path: str, secure: bool, same_site: str = "Lax", domain: str = "") -> str:
    """A ``Set-Cookie`` value that deletes the cookie ``name`` of this ``path`` and ``domain``.

    Empty value, ``Expires`` in 1970 and ``Max-Age=0``: nothing a client could send
    back as an id.  ``path`` and ``domain`` must be those the cookie was set with, or
    the browser keeps it.
    """
    return _set_cookie(name, "", path, domain, _EPOCH, 0, secure, same_site)


def _set_cookie(
    name: str, value: str, path: str, domain: str, expires: Optional[str], max_age: int, secure: bool, same_site: str
) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"cookie name {name!r} is not an RFC 6265 token")
    if not _VALUE.fullmatch(value):
        raise ValueError(f"the value of cookie {name!r} holds characters a cookie value cannot")
    if not (path.startswith("/") and _ATTRIBUTE.fullmatch(path)) or not _ATTRIBUTE.fullmatch(domain):
        raise ValueError(f"cookie {name!r}: Path or Domain holds ';' or a control character")
    if same_site not in _SAME_SITE or (same_site == "None" and not secure):
        raise ValueError(f"cookie {name!r}: SameSite={same_site} (SameSite=None needs Secure)")
    parts = [f"{name}={value}", f"Path={path}"]
    if domain:
        parts.append(f"Domain={domain}")
    if expires is not None:
        parts.append(f"expires={expires}")
    parts += [f"Max-Age={int(max_age)}", "HttpOnly"]
    if secure:
        parts.append("Secure")
    parts.append(f"SameSite={same_site}")
    return "; ".join(parts)
