"""The refresh tokens of :class:`~.fake_provider.FakeProvider`: issued, rotated, revoked, reused.

:class:`RefreshTokens` keeps what each live refresh token stands for (a
:class:`~.grants.RefreshGrant`) and applies RFC 6749 section 6 and the rotation rules of
the OAuth security best practice (RFC 9700): with ``rotate_refresh_tokens`` (the default) a refresh consumes the
token, a consumed one sent again is refused, and with ``reuse_revokes_family`` that reuse
also revokes every token rotated from the same sign-in (as Auth0 does). The counters
``refreshes`` (granted) and ``refresh_requests`` (all) let tests assert how often the
middleware refreshed. Safe to use from several threads: the middleware refreshes from
whichever request finds the access token due.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Optional, Union

from .grants import RefreshGrant, issued

__all__ = ["RefreshTokens"]


@dataclass
class RefreshTokens:
    """The refresh-token state a fake provider holds (its dataclass fields; see the module docstring)."""

    rotate_refresh_tokens: bool = True
    reuse_revokes_family: bool = False
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    consumed_refresh_tokens: set[str] = field(default_factory=set)
    refreshes: int = 0
    refresh_requests: int = 0

    def __post_init__(self) -> None:
        self._refresh_lock = threading.Lock()
        self._families: dict[str, str] = {}  # consumed refresh token -> its family

    def _new_refresh_token(self, grant: RefreshGrant) -> str:
        token = issued("rt-" + secrets.token_urlsafe(24))
        with self._refresh_lock:
            self.refresh_tokens[token] = grant
        return token

    def revoke(self, refresh_token: Optional[str] = None, sub: Optional[str] = None) -> int:
        """Revoke one refresh token, or every one of ``sub`` (or, with neither, all); how many."""
        with self._refresh_lock:
            doomed = [token for token, grant in self.refresh_tokens.items()
                      if token == refresh_token or (refresh_token is None and sub in (None, grant.sub))]
            for token in doomed:
                del self.refresh_tokens[token]
        return len(doomed)

    def live_refresh_tokens(self, sub: Optional[str] = None) -> list[str]:
        """The refresh tokens that still work (of ``sub``, or all)."""
        with self._refresh_lock:
            return [token for token, grant in self.refresh_tokens.items() if sub in (None, grant.sub)]


    def _redeem_refresh_token(self, client_id: str, token: str) -> Union[RefreshGrant, str]:
        """The grant ``token`` stands for, counted and (when rotating) consumed; else why it is refused."""
        with self._refresh_lock:
            self.refresh_requests += 1
            grant = self.refresh_tokens.get(token)
            if grant is None:
                if token in self.consumed_refresh_tokens and self.reuse_revokes_family:
                    family = self._families.get(token)
                    for other in [name for name, live in self.refresh_tokens.items() if live.family == family]:
                        del self.refresh_tokens[other]
                return "unknown, revoked or used refresh token"
            if grant.client_id != client_id:
                return "issued to another client"
            if self.rotate_refresh_tokens:
                del self.refresh_tokens[token]
                self.consumed_refresh_tokens.add(token)
                self._families[token] = grant.family
            self.refreshes += 1
        return grant
