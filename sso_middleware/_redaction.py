"""What the doctor may print: secrets masked, provider-supplied text made harmless.

:class:`Redactor` is the one filter every line of ``sso-middleware check`` goes through
(:meth:`Redactor.show`): it masks the configured secret values, the forms messages quote
them in (percent-encoded, decoded, ``repr``-escaped) and any run of 8 or more characters
of one, then escapes non-printable characters (:func:`escape_text`).  :func:`redact_url`
masks the passwords of a store URL (``redis://:PW@host``, ``?password=PW``, ``?sentinel_password=PW``).

Security caveat: masking pieces is a safety net, not a proof -- a secret shorter than 8
characters is masked only whole, and a value the doctor was never told is secret is not
masked at all; the checks themselves print no secret on purpose.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import Optional
from urllib.parse import quote, unquote, unquote_plus, urlsplit, urlunsplit

#: Secret values shorter than this are not masked (masking them would garble every message).
_MIN_MASKED = 4
#: Runs of at least this many characters of a secret are masked wherever they appear.
_MIN_PIECE = 8
_MASK = "***"
#: ``password=`` in a URL's query (redis-py reads the Redis password from there too; ``sentinel_password=``).
_QUERY_PAIR = re.compile(r"(^|[&;])([^&;=#]*)(=)([^&;#]*)")


def _is_password_key(key: str) -> bool:
    """``password`` (or ``..._password``) as a query key, however written (``%70assword``: clients decode it)."""
    name = unquote_plus(key).lower()
    return name == "password" or name.endswith("_password")


def url_passwords(url: str) -> list[str]:
    """The passwords in a store URL: its user-info and ``password=`` query values, as written and decoded."""
    pairs = _QUERY_PAIR.finditer(url.partition("?")[2])
    found = [match.group(4) for match in pairs if _is_password_key(match.group(2))]
    with contextlib.suppress(ValueError):  # not a URL: nothing more to find
        found.append(urlsplit(url).password or "")
    found += [unquote(value) for value in found]
    return [value for value in found if value]


def redact_url(url: str) -> str:
    """``url`` with any password (user-info or ``password=`` query value) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return _MASK
    redacted = parts
    if password:
        netloc = parts.netloc.rsplit("@", 1)[1]
        redacted = redacted._replace(netloc=f"{parts.username or ''}:{_MASK}@{netloc}")
    def masked(match: re.Match[str]) -> str:
        value = _MASK if _is_password_key(match.group(2)) else match.group(4)
        return f"{match.group(1)}{match.group(2)}={value}"

    query = _QUERY_PAIR.sub(masked, parts.query)
    redacted = redacted._replace(query=query)
    return url if redacted == parts else urlunsplit(redacted)


def escape_text(text: str) -> str:
    """``text`` with every non-printable character shown as its Python escape (ESC as ``\\x1b``).

    Provider-supplied strings (discovery values, key ids and types, error descriptions)
    reach the doctor's output; escaped, they cannot move the cursor, retitle the terminal
    or reorder the line (bidirectional overrides).
    """
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


class Redactor:
    """Masks known secret values, and any run of ``_MIN_PIECE`` or more characters of one, in printed text.

    A safety net, applied to every line the doctor prints (no check prints a secret on
    purpose): error messages of libraries quote values, often only a piece of them (the
    tail after a ``%``, a truncated line).  A run that is also part of a ``public`` value
    (the client id, the issuer) reveals nothing and is left alone, so that a secret that
    happens to contain the client id does not mask the client id everywhere.
    """

    def __init__(self, values: Iterable[Optional[str]] = (), public: Iterable[Optional[str]] = ()) -> None:
        self.values: set[str] = set()
        self.public: set[str] = set()
        self.add(values)
        self.add_public(public)

    def add(self, values: Iterable[Optional[str]]) -> None:
        """More secret values, masked in the forms a message may quote them in."""
        for value in values:
            if value and len(value) >= _MIN_MASKED:
                self.values.update({value, quote(value, safe=""), unquote(value), repr(value)[1:-1]})

    def add_public(self, values: Iterable[Optional[str]]) -> None:
        """Values that are no secret (their runs shared with a secret are printed)."""
        self.public.update(value for value in values if value)

    def __call__(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, _MASK)
        return self._mask_pieces(text)

    def show(self, text: str) -> str:
        """``text`` as it may be printed: secrets masked, then non-printable characters escaped."""
        return escape_text(self(text))

    def _mask_pieces(self, text: str) -> str:
        pieces = [value for value in self.values if len(value) >= _MIN_PIECE]
        if not pieces:
            return text
        out: list[str] = []
        start = 0
        while start < len(text):
            end = start + _MIN_PIECE
            if end <= len(text) and any(text[start:end] in value for value in pieces):
                while end < len(text) and any(text[start:end + 1] in value for value in pieces):
                    end += 1
                run = text[start:end]
                if not any(run in value for value in self.public):
                    out.append(_MASK)
                    start = end
                    continue
            out.append(text[start])
            start += 1
        return "".join(out)
