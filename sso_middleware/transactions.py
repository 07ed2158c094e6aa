"""Sign-ins in flight: one encrypted, short-lived cookie per ``state``.

Starting a sign-in creates a :class:`Transaction` (nonce, PKCE verifier,
target, connection, prompt, expiry) that the callback must find again for the
same ``state``.  It travels in its own cookie, ``<session cookie>_tx_<id>``,
encrypted and authenticated with a key derived from ``session_secret`` (Fernet:
AES-CBC + HMAC-SHA256), HttpOnly, SameSite=Lax, Secure on https, host-only,
expiring after ``transaction_ttl``.  The callback reads it, checks that it was
issued for exactly this ``state`` and is not expired, and expires the cookie.

Why not the session, as DESIGN.md first said: two tabs of a browser without a
session would each create a session and the last cookie would win, losing the
other tab's sign-in; concurrent requests of one session would overwrite each
other's transactions (lost updates); and every anonymous visit to ``/auth/sso``
would write a record to the shared store (a cheap way to fill it).  Per-state
cookies have none of these problems; this is also what mod_auth_openidc and
express-openid-connect do.

Security caveats: a transaction is bound to the browser that started it (only
that browser has the cookie) and to its ``state``; it is used once (the cookie
is expired by the callback, and the provider's code is single-use); at most
``MAX_TRANSACTIONS`` are kept per browser, the oldest expired first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass
from http.cookies import Morsel
from typing import Optional

from cryptography.fernet import Fernet, InvalidToken

from .config import SSOConfig
from .sealing import app_key

#: Most sign-ins one browser may have in flight; the oldest are dropped.
MAX_TRANSACTIONS = 6


@dataclass(frozen=True)
class Transaction:
    """One sign-in in flight, keyed by its ``state``."""

    nonce: str
    code_verifier: str
    target_url: str
    connection: Optional[str]
    prompt: Optional[str]
    expires_at: float
    max_age: Optional[int] = None  # step-up: the authentication must be at most this old
    acr_values: Optional[str] = None  # step-up: space-separated acceptable acr values


#: Fields always written; the others (step-up) only when set, to keep the cookie short.
_REQUIRED = frozenset({"nonce", "code_verifier", "target_url", "connection", "prompt", "expires_at"})


class TransactionCookies:
    """Issues and redeems the per-``state`` transaction cookies of one middleware."""

    def __init__(self, config: SSOConfig) -> None:
        # Bound to this application (issuer, client id): another one sharing the secret cannot read or make them.
        self._fernet = Fernet(base64.urlsafe_b64encode(app_key(config, "sign-in transactions")))
        self._prefix = config.session_cookie_name + "_tx_"
        self._ours = re.compile(re.escape(self._prefix) + "[0-9a-f]{16}")
        self._ttl = config.transaction_ttl
        self._secure = config.secure_cookies

    def name_for(self, state: str) -> str:
        return self._prefix + hashlib.sha256(state.encode()).hexdigest()[:16]

    def issue(
        self, state: str, transaction: Transaction, cookie_header: str, now: float, spent: Optional[str] = None
    ) -> list[tuple[str, str]]:
        """``Set-Cookie`` headers that store a new transaction (and drop the oldest beyond the cap).

        ``spent``: the state whose cookie this response already expires (a callback
        retrying a silent sign-in); it does not count against the cap.
        """
        record = {key: value for key, value in asdict(transaction).items() if value is not None or key in _REQUIRED}
        record["state"] = state
        value = self._fernet.encrypt_at_time(json.dumps(record).encode(), int(now)).decode()
        headers = [self._set_cookie(self.name_for(state), value, self._ttl)]
        skip = self.name_for(spent) if spent is not None else None
        present = sorted((item for item in self._present(cookie_header) if item[0] != skip), key=lambda item: item[1])
        for name, _issued in present[: max(0, len(present) - (MAX_TRANSACTIONS - 1))]:
            headers.append(self._set_cookie(name, "", 0))
        return headers

    def redeem(self, state: str, cookie_header: str, now: float) -> tuple[Optional[Transaction], list[tuple[str, str]]]:
        """The transaction of ``state`` if this browser holds a valid one, and the header that expires it."""
        name = self.name_for(state)
        value = _cookies(cookie_header).get(name)
        if value is None:
            return None, []
        expire = [self._set_cookie(name, "", 0)]
        try:
            record = json.loads(self._fernet.decrypt_at_time(value.encode(), self._ttl, int(now)))
            issued_for = record.pop("state")
            transaction = Transaction(**record)
        except (InvalidToken, ValueError, TypeError, KeyError):
            return None, expire
        if not isinstance(issued_for, str) or not hmac.compare_digest(issued_for, state):
            return None, expire
        if transaction.expires_at <= now:
            return None, expire
        return transaction, expire

    def _present(self, cookie_header: str) -> list[tuple[str, int]]:
        """The transaction cookies a request carries, with their issue times (unreadable ones first).

        Only names this class issues count: any other name, even with our prefix, is
        not ours to expire (and may not even be a legal ``Set-Cookie`` name).
        """
        found = []
        for name, value in _cookies(cookie_header).items():
            if self._ours.fullmatch(name):
                try:
                    issued = self._fernet.extract_timestamp(value.encode())
                except InvalidToken:
                    issued = 0
                found.append((name, issued))
        return found

    def _set_cookie(self, name: str, value: str, max_age: int) -> tuple[str, str]:
        morsel: Morsel[str] = Morsel()
        morsel.set(name, value, value)
        morsel["path"] = "/"
        morsel["max-age"] = str(max_age)
        morsel["httponly"] = True
        morsel["samesite"] = "Lax"
        if self._secure:
            morsel["secure"] = True
        return "Set-Cookie", morsel.OutputString()


def _cookies(cookie_header: str) -> dict[str, str]:
    """Name -> value of the cookies in a header (the first of each name); malformed parts are skipped."""
    found: dict[str, str] = {}
    for part in cookie_header.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if sep and name and name not in found:
            found[name] = value.strip().strip('"')
    return found
