"""What a session holds: the signed-in user (:class:`SignedInUser`) and its tokens (:class:`Tokens`).

Plain frozen values, stored as JSON by :mod:`sso_middleware._session.state`.

Security caveat: the ID, access and refresh tokens are kept out of ``repr`` (and so out of
logs and tracebacks); the stored user names the issuer and client it was signed in for.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class SignedInUser:
    """The user of a session."""

    claims: dict[str, Any]
    connection: Optional[str]
    id_token: str = field(repr=False)
    signed_in_at: float
    sid: Optional[str] = None
    auth_time: Optional[float] = None  # when the provider authenticated the user, on this host's clock
    acr: Optional[str] = None  # the authentication context class the provider reported
    issuer: Optional[str] = None  # the application it was signed in for (set by SSOSession.sign_in) ...
    client_id: Optional[str] = None  # ... a stored user of another issuer or client is no session
    login_id: Optional[str] = field(default=None, compare=False, repr=False)  # one per sign-in: what sign-out revokes
    organization: Optional[dict[str, Optional[str]]] = None  # Auth0: {"id": org_id, "name": org_name}, checked

    @property
    def sub(self) -> str:
        return str(self.claims.get("sub", ""))


@dataclass(frozen=True)
class Tokens:
    """A session's tokens for calling APIs (``keep_access_token``)."""

    access_token: str = field(repr=False)  # "" when there is none any more (see ``error``)
    expires_at: Optional[float] = None  # None: the provider did not say
    refresh_token: Optional[str] = field(default=None, repr=False)
    error: Optional[str] = None  # why the session lost its token (``refresh_failure = keep_session``)
    obtained_at: Optional[float] = None  # when the provider issued it (this host's clock)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_record(cls, record: Any) -> Optional[Tokens]:
        """Tokens from a stored record (JSON text or dict); None when it is missing or unreadable."""
        try:
            data = json.loads(record) if isinstance(record, str) else record
            tokens = cls(**data) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            return None
        if tokens is None or not isinstance(tokens.access_token, str):
            return None
        return tokens
