"""What a fake provider's codes and refresh tokens stand for, and the record of every secret it issued.

Security caveat: :data:`ISSUED_SECRETS` keeps every code and token any fake provider in
this process handed out, for the life of the process, so that a test suite can check that
none of them ever reached a log line. It grows with every sign-in; it is for tests only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["ISSUED_SECRETS", "Grant", "RefreshGrant", "issued"]

#: Every authorization code, access token and refresh token a fake provider in this process handed out.
ISSUED_SECRETS: set[str] = set()


def issued(secret: str) -> str:
    """Note ``secret`` in :data:`ISSUED_SECRETS`; returns it."""
    ISSUED_SECRETS.add(secret)
    return secret


@dataclass
class Grant:
    """What an authorization code stands for: the approved request (``params``) and its user."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: Optional[str] = field(repr=False)
    sub: str
    params: dict[str, str] = field(repr=False)  # holds the state and the nonce too
    claims: dict[str, Any] = field(default_factory=dict)  # this sign-in's ID token claims (authorize(claims=))
    id_token: Optional[str] = field(default=None, repr=False)  # signed at authorize() with sign_at_authorize


@dataclass
class RefreshGrant:
    """What a refresh token stands for: the sign-in it came from."""

    client_id: str
    sub: str
    scope: str
    auth_time: Optional[int]
    sid: Optional[str]
    family: str  # every refresh token rotated from one sign-in shares it
