"""The errors of the session stores: unavailable (503), too large for a cookie, gone meanwhile."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The session store cannot be reached; the request is answered 503."""


class SessionTooLarge(Exception):
    """A cookie session would not fit in a cookie."""


class RecordGone(Exception):
    """An update found its record deleted meanwhile (signed out elsewhere): it is not written back."""
