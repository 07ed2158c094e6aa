"""``Clock``: a time a test can move, for ``SSOMiddleware(..., clock=...)`` and ``FakeProvider(clock=...)``.

The middleware reads the time through one callable (seconds since the epoch, like
``time.time``): session idle and absolute timeouts, the sign-in's ``transaction_ttl``,
``max_age``, token expiry and refresh all follow it (what a store expires by itself --
Redis and memcached TTLs, the file store's sweep -- keeps the real time). A test that
needs time to pass builds the middleware with a :class:`Clock` and moves it instead of
sleeping.
"""

from __future__ import annotations

import time
from typing import Optional

__all__ = ["Clock"]


class Clock:
    """A settable clock: a callable returning seconds since the epoch.

    ``Clock()`` follows the real time (``time.time()``) until a test sets it
    (``clock.now = t``) or moves it (``clock.advance(s)``, from the time it reads then);
    from then on it stands still between moves. ``Clock(t)`` stands at ``t`` from the start.

    Following the real time at first lets a test sign in against a provider whose tokens
    carry the real time (the development provider, or a ``FakeProvider`` on its default
    clock), then jump ahead. Share one ``Clock`` with ``FakeProvider(clock=...)`` when the
    provider's timestamps must move too.
    """

    def __init__(self, now: Optional[float] = None) -> None:
        self._now = None if now is None else float(now)

    def __call__(self) -> float:
        return time.time() if self._now is None else self._now

    @property
    def now(self) -> float:
        """The time this clock reads."""
        return self()

    @now.setter
    def now(self, moment: float) -> None:
        self._now = float(moment)

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` ahead of what it reads now (and stop it there); the new time."""
        self._now = self() + seconds
        return self._now

    def __repr__(self) -> str:
        return "<Clock real time>" if self._now is None else f"<Clock {self._now}>"
