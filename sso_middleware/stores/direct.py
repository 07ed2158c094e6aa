"""The hot path's read of a session without Beaker's objects: the cookie's signature, the record, its payload.

A signed-in request needs only the session's data.  Beaker's ``Session`` gets it by
parsing the cookie again with :mod:`http.cookies`, building a namespace manager and
a session object around one record read -- most of the cost of such a request.
:meth:`~.beaker.BeakerBackend.open_session` instead checks the signature on the value
:func:`~sso_middleware._cookies.request_cookie` already isolated (:func:`signed_part`: the
HMAC-SHA1 Beaker's ``SignedCookie`` uses, with the same key, so every cookie stays valid),
reads the record through the back end's sealed :meth:`read_record` and decodes it
(:func:`decoded`: base64, bounded zlib, JSON -- Beaker's format) into a
:class:`StoredSession`.  A Beaker session is built from it only when something must be
written (:meth:`~.beaker.BeakerBackend.save_session`).

Security caveats: this is a second reader of the same bytes, so it must refuse exactly
what Beaker refuses.  A value of any other shape than the one Beaker writes is not
judged here at all -- it goes to Beaker, as before; a value of that shape with a wrong
signature is no session (never an id the client chose), compared in constant time.
Nothing of a record is decoded before the back end's read verified its seal, and the
decompression is bounded (:class:`~sso_middleware._sealing.BoundedJsonSerializer`).
"""

from __future__ import annotations

import hmac
import re
from typing import Any, Callable, Optional

from beaker._compat import b64decode

from .._sealing import BoundedJsonSerializer

#: What Beaker's ``SignedCookie`` writes for a session id: 40 hex digits of HMAC-SHA1, then the id (a uuid4 hex).
_SIGNED_ID = re.compile(r"[0-9a-f]{40}[0-9a-f]{32}")
_SERIALIZER = BoundedJsonSerializer()


class StoredSession(dict):  # type: ignore[type-arg]
    """A stored session as the hot path read it: its data, its id and the cookie that named it.

    It is a dict like Beaker's sessions (``id``, ``is_new``, ``get``, item assignment), so
    the session layer reads and changes it alike; what it cannot do is write itself:
    :meth:`~.beaker.BeakerBackend.save_session` builds the Beaker session for that and keeps
    it in :attr:`written` (its ``Set-Cookie`` is read from there).
    """

    is_new = False

    def __init__(self, session_id: str, data: dict[str, Any], cookie: str) -> None:
        super().__init__(data)
        self.id = session_id
        self.cookie = cookie  # ``name=value`` as the request sent it: what a Beaker session is built from
        self.written: Any = None  # the Beaker session that wrote it, once saved

    def delete(self) -> None:
        """Forget the data (the caller deletes the record and sends the deletion cookie)."""
        self.clear()

    def to_write(self, load: Callable[[str], Any]) -> Any:
        """The Beaker session to write this one with, kept in :attr:`written`; None when its record is gone.

        ``load(cookie)`` loads it again (``ValueError`` when it became unreadable); it then
        carries the changes made since: the session layer's keys, while Beaker's own
        (``_id``, ``_accessed_time``...) stay Beaker's.
        """
        try:
            session = load(self.cookie)
        except ValueError:
            return None
        if session.is_new:
            return None
        for key in [key for key in session if not key.startswith("_") and key not in self]:
            del session[key]
        session.update({key: value for key, value in self.items() if not key.startswith("_")})
        self.written = session
        return session


def is_signed_id(value: str) -> bool:
    """True when a cookie value has the exact shape of a signed session id (anything else is Beaker's to judge)."""
    return _SIGNED_ID.fullmatch(value) is not None


def signed_part(value: str, secret: bytes) -> Optional[str]:
    """What follows the signature of a value Beaker's ``SignedCookie`` signed, or None when it is not ``secret``'s.

    ``SignedCookie.value_decode``: HMAC-SHA1 keyed with ``secret`` (the UTF-8 of Beaker's
    ``secret`` option) over the rest of the value, as 40 lower-case hex digits in front of
    it.  ``value`` is ASCII (the callers matched its shape first); compared in constant time.
    """
    rest = value[40:]
    expected = hmac.digest(secret, rest.encode("utf-8"), "sha1").hex()
    return rest if hmac.compare_digest(value[:40], expected) else None


def decoded(text: str) -> Optional[dict[str, Any]]:
    """A session record's data (Beaker's text: base64 of zlib of JSON), or None when it holds no session.

    Like Beaker's ``Session.load``: what does not decode, or decodes to anything but a
    non-empty dict, is no session.  ``text`` must come from a read that verified its seal.
    """
    try:
        data = _SERIALIZER.loads(b64decode(text))
    except Exception:  # whatever Beaker's decoding would raise: an unreadable record is none
        return None
    return data if isinstance(data, dict) and data else None
