"""Reading ``Set-Cookie`` headers and naming sign-in transaction cookies, written out independently of the code.

A sign-in in flight lives in its own cookie (:mod:`sso_middleware._wsgi.transactions`):
``__Host-<session cookie name without __Host-/__Secure->_tx_<8 hex of sha256(base_url)>_<16 hex of sha256(state)>``
on https, the same without ``__Host-`` on http.  These helpers compute that name from the specification, not by
calling the implementation, so a test using them also checks the naming.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .fakes import BASE_URL


def tx_prefix(session_cookie: str, base_url: str = BASE_URL) -> str:
    """What the names of the transaction cookies of the app at ``base_url`` start with."""
    base = re.sub(r"^(__Host-|__Secure-)", "", session_cookie)
    host = "__Host-" if base_url.startswith("https://") else ""
    return f"{host}{base}_tx_{hashlib.sha256(base_url.encode()).hexdigest()[:8]}_"


def tx_name(session_cookie: str, state: str, base_url: str = BASE_URL) -> str:
    """The name of the transaction cookie of ``state``."""
    return tx_prefix(session_cookie, base_url) + hashlib.sha256(state.encode()).hexdigest()[:16]


def is_tx_name(session_cookie: str, name: str, base_url: str = BASE_URL) -> bool:
    prefix = tx_prefix(session_cookie, base_url)
    suffix = name[len(prefix):]
    return name.startswith(prefix) and len(suffix) == 16 and all(char in "0123456789abcdef" for char in suffix)


@dataclass(frozen=True)
class SetCookie:
    """One ``Set-Cookie`` header, parsed: attribute names lower-cased, flags mapped to ""."""

    name: str
    value: str
    attributes: dict[str, str]

    @classmethod
    def parse(cls, header: str) -> SetCookie:
        name_value, *parts = (part.strip() for part in header.split(";"))
        name, sep, value = name_value.partition("=")
        assert sep, header
        attributes = {}
        for part in parts:
            key, _, attribute = part.partition("=")
            attributes[key.strip().lower()] = attribute.strip()
        return cls(name.strip(), value.strip(), attributes)

    @property
    def expires_it(self) -> bool:
        """True when this header tells the browser to drop the cookie (Max-Age=0, or an expiry in the past)."""
        if "max-age" in self.attributes:
            return int(self.attributes["max-age"]) <= 0
        expires = self.attributes.get("expires")
        return expires is not None and parsedate_to_datetime(expires.replace("-", " ")).timestamp() < time.time()


def parse_all(headers: Iterable[str]) -> list[SetCookie]:
    return [SetCookie.parse(header) for header in headers]


def summary(headers: Iterable[str], session_cookie: str) -> list[tuple[str, str]]:
    """``(kind, action)`` per header: kind ``session``, ``tx:<name>`` or the name; action ``set`` or ``expired``."""
    result = []
    for cookie in parse_all(headers):
        if cookie.name == session_cookie:
            kind = "session"
        elif is_tx_name(session_cookie, cookie.name):
            kind = "tx:" + cookie.name
        else:
            kind = cookie.name
        result.append((kind, "expired" if cookie.expires_it else "set"))
    return result
