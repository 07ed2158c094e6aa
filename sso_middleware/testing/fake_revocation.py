"""The revocation endpoint (RFC 7009) of :class:`~.fake_provider.FakeProvider`.

With ``revocation`` on, the provider advertises ``revocation_endpoint`` (``/oauth/revoke``)
and serves it: the client authenticates as at the token endpoint, and a known refresh token
stops refreshing (``invalid_grant``), a known access token stops answering userinfo.  Every
request is recorded in ``revocations`` as ``(token_type_hint, what the token was)``, what
being ``refresh_token``, ``access_token`` or ``unknown`` (answered 200 all the same, as section
2.2 says).  ``revocation_status`` answers every request with that status instead (a provider
refusing, or down), and ``fail`` (``"/oauth/revoke": ...``) makes the call fail as a network would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .grants import RefreshGrant

__all__ = ["RevocationEndpoint"]


@dataclass
class RevocationEndpoint:
    """The revocation state a fake provider holds (its dataclass fields; see the module docstring)."""

    revocation: bool = False
    revocations: list[tuple[str, str]] = field(default_factory=list)
    revocation_status: Optional[int] = None

    def _revoke(self, client_id: Optional[str], form: dict[str, str], refresh_tokens: dict[str, RefreshGrant],
                access_tokens: dict[str, str]) -> tuple[int, Any]:
        """RFC 7009 section 2: revoke ``form["token"]`` for the authenticated ``client_id`` (None: refused)."""
        if client_id is None:
            return 401, {"error": "invalid_client"}
        if self.revocation_status is not None:
            return self.revocation_status, {"error": "server_error" if self.revocation_status >= 500 else
                                            "invalid_request"}
        token = form.get("token", "")
        if not token:
            return 400, {"error": "invalid_request"}
        hint = form.get("token_type_hint", "")
        grant = refresh_tokens.get(token)
        if grant is not None and grant.client_id == client_id:
            del refresh_tokens[token]
            self.revocations.append((hint, "refresh_token"))
        elif access_tokens.pop(token, None) is not None:
            self.revocations.append((hint, "access_token"))
        else:
            self.revocations.append((hint, "unknown"))
        return 200, ""  # any body: the client ignores it (section 2.2)
