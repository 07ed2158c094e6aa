"""Request bodies of the authentication routes: size-checked before anything reads them.

Only routes that need a body read one -- the back-channel logout route
(a form carrying the provider's ``logout_token``) and, with ``response_mode =
form_post``, the callback (the provider's authorization response) -- and ``preserve_post``, which
keeps a form (:func:`read_form_fields`, its own codes by :attr:`BodyError.kind`); every other route takes its
parameters from the query string and never touches ``wsgi.input``.  Before any
auth route runs, :func:`refusal` answers a body that would be too large --
``Content-Length`` over ``max_request_body``, or unsized (``Transfer-Encoding``
without ``Content-Length``, which gunicorn hands over as a terminated stream)
-- with 413, without reading a byte of it.  :func:`read_form` then reads at most
``Content-Length`` bytes of an ``application/x-www-form-urlencoded`` body.

Security caveat: this bounds what the middleware reads, not what the server
buffers before calling it.  gunicorn streams bodies to the application;
waitress buffers each one (to a temporary file past 512 KiB, up to its
``max_request_body_size``, 1 GiB by default) before the application runs: cap bodies there, or in a proxy in
front, as well.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import parse_qsl

from webob import Response

from ..errors import SSOError
from .pages import no_store

__all__ = ["BodyError", "read_form", "read_form_fields", "refusal"]

#: Digits of a ``Content-Length`` beyond which it is over any cap (and never converted to int).
_MAX_LENGTH_DIGITS = 18
#: Form fields read from one body: auth routes need one or two.
_MAX_FIELDS = 64
_FORM_TYPE = "application/x-www-form-urlencoded"


#: :attr:`BodyError.kind` values: what was wrong (a caller with its own codes, preserve_post, maps them).
TOO_LARGE, UNSIZED, UNSUPPORTED, UNREADABLE = "too_large", "unsized", "unsupported", "unreadable"


class BodyError(SSOError):
    """A request body that is refused: ``status`` 413 (too large or unsized) or 400 (unreadable).

    ``kind``: :data:`TOO_LARGE`, :data:`UNSIZED`, :data:`UNSUPPORTED` (another type or charset) or
    :data:`UNREADABLE` (a malformed length, a short or undecodable body, too many fields).
    """

    def __init__(self, status: int, reason: str, kind: str = UNREADABLE) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.kind = kind


def body_length(environ: Mapping[str, Any], limit: int) -> int:
    """The announced length of the request body (0 when there is none), at most ``limit``; else BodyError."""
    raw = environ.get("CONTENT_LENGTH") or ""
    if not raw:
        if environ.get("HTTP_TRANSFER_ENCODING"):  # chunked: no length to check before reading
            raise BodyError(413, "a request body without Content-Length is not accepted here", UNSIZED)
        return 0
    if not (raw.isascii() and raw.isdigit()):
        raise BodyError(400, "malformed Content-Length")
    if len(raw) > _MAX_LENGTH_DIGITS or int(raw) > limit:
        raise BodyError(413, f"request body too large (at most {limit} bytes)", TOO_LARGE)
    return int(raw)


def refusal(environ: Mapping[str, Any], limit: int, as_json: bool) -> Optional[Response]:
    """The 413 (or 400) answer for a body no auth route may read; None when the body is acceptable.

    Nothing is read: the decision rests on ``CONTENT_LENGTH`` and ``Transfer-Encoding`` alone.
    """
    try:
        body_length(environ, limit)
    except BodyError as refused:
        return _answer(refused, as_json)
    return None


def read_form(environ: dict[str, Any], limit: int) -> dict[str, list[str]]:
    """The fields of an ``application/x-www-form-urlencoded`` body (UTF-8), read up to its ``Content-Length``.

    Raises :class:`BodyError` for a body over ``limit``, unsized, shorter than
    announced, of another type or charset, or not valid UTF-8 once decoded.
    """
    return _grouped(read_form_fields(environ, limit))


def read_form_fields(environ: dict[str, Any], limit: int, max_fields: int = _MAX_FIELDS) -> list[tuple[str, str]]:
    """:func:`read_form`'s fields as sent: a list of (name, value) pairs in order, repeated names kept.

    The type is checked before the length (a large file upload is refused as :data:`UNSUPPORTED`);
    nothing is read unless both pass.
    """
    media_type, _, parameters = (environ.get("CONTENT_TYPE") or "").partition(";")
    if media_type.strip().lower() != _FORM_TYPE:
        raise BodyError(400, f"the body must be {_FORM_TYPE}", UNSUPPORTED)
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise BodyError(400, "the body's charset must be UTF-8", UNSUPPORTED)
    length = body_length(environ, limit)
    data = _read_exactly(environ["wsgi.input"], length) if length else b""
    try:
        pairs = parse_qsl(data.decode("ascii"), keep_blank_values=True, encoding="utf-8", errors="strict",
                          max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise BodyError(400, "unreadable form body") from None
    return pairs


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


def _read_exactly(stream: Any, length: int) -> bytes:
    """``length`` bytes from ``stream`` (never more: the rest belongs to the next request on the connection)."""
    chunks: list[bytes] = []
    remaining = length
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            raise BodyError(400, "the request body is shorter than its Content-Length")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _answer(refused: BodyError, as_json: bool) -> Response:
    if as_json:
        body = json.dumps({"error": "invalid_request", "error_description": refused.reason}).encode()
        response = Response(body=body, status=refused.status, content_type="application/json", charset=None)
    else:
        title = "Request too large" if refused.status == 413 else "Bad request"
        page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
                f"<body><h1>{title}</h1><p>The sign-in service refused this request: {refused.reason}.</p>"
                "</body></html>\n")
        response = Response(body=page.encode(), status=refused.status, content_type="text/html", charset="utf-8")
        response.headers["X-Content-Type-Options"] = "nosniff"
    return no_store(response)
