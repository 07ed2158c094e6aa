"""The errors of the session stores: unavailable (503), too large for a cookie, gone meanwhile.

The first two are failure pages (``session_store_unavailable``, ``session_too_large``),
declared with the other failure codes in :mod:`sso_middleware.errors`.
"""

from __future__ import annotations

from ..errors import SessionTooLarge, SSOError, StoreUnavailable

__all__ = ["RecordGone", "SessionTooLarge", "StoreUnavailable"]


class RecordGone(SSOError):
    """An update found its record deleted meanwhile (signed out elsewhere): it is not written back."""
