"""The common layer of the server-side back ends: every record sealed when written, verified before read.

Security caveat: the seal (:mod:`sso_middleware._sealing`) is the only thing that makes a record read from a
shared store trustworthy; a back end must decode nothing of a record that
:meth:`_SealedRecords._opened` has not returned.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from .._sealing import RecordSeal
from .errors import SessionTooLarge

log = logging.getLogger("sso_middleware")


class _SealedRecords:
    """What the namespace managers share: sealing a value on its way in, opening it on its way out.

    ``kind`` is the kind of the record's ``session`` value ("session" for Beaker's records,
    "tokens" for a token record); an index record is always of kind "index".  Without a
    seal (a namespace built only for its client, e.g. by the locks) nothing is readable.
    """

    seal: Optional[RecordSeal] = None
    kind = "session"

    def _kind_of(self, key: str) -> str:
        return "index" if key == "index" else self.kind

    def _sealed(self, record_key: str, key: str, value: Any) -> str:
        if self.seal is None:
            raise RuntimeError("this namespace has no seal: it cannot write records")
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        if not isinstance(text, str):
            raise TypeError(f"records are text, not {type(value).__name__}")
        try:
            return self.seal.seal(self._kind_of(key), record_key, text)
        except ValueError as exc:  # over the size limit
            raise SessionTooLarge(str(exc)) from None

    def _opened(self, record_key: str, key: str, value: Any, quiet: bool = False) -> Optional[str]:
        if self.seal is None:
            return None
        return self.seal.open(self._kind_of(key), record_key, value, quiet=quiet)

    def _open_members(self, record_key: str, members: list[Any]) -> list[str]:
        """The members of an index that are sealed for it (each on its own); refusals logged once."""
        opened = [self._opened(record_key, "index", member, quiet=True) for member in members]
        if None in opened:
            log.warning("sso: ignoring %d index entries not sealed for this application", opened.count(None))
        return [member for member in opened if member is not None]
