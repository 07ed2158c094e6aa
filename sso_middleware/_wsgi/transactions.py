"""Sign-ins in flight: one encrypted, short-lived cookie per ``state``.

Starting a sign-in creates a :class:`Transaction` (nonce, PKCE verifier,
target, connection, prompt, step-up, expiry) that the callback must find again
for the same ``state``.  It travels in its own cookie,
``__Host-<session cookie name>_tx_<app>_<id>`` on https (the session cookie's
name without its own ``__Host-``/``__Secure-``; ``<app>``: 8 hex digits of
sha256(the first ``base_url``); ``<id>``: 16 of sha256(``state``)), encrypted and
authenticated with a key derived from ``session_secret`` (Fernet: AES-CBC +
HMAC-SHA256), HttpOnly, SameSite=Lax, Secure, ``Path=/``, no ``Domain``, and
expiring after ``transaction_ttl``.  With ``response_mode = form_post`` they are
``SameSite=None; Secure`` instead (also on http loopback): the provider's
auto-submitted form is a cross-site POST, which carries no Lax cookie.  The callback first refuses any ``state``
not of the shape :func:`is_valid_state` describes (what we issue), then reads
that one cookie, checks that it was issued for exactly this ``state`` (compared
as bytes, in constant time) and is not expired, and expires the cookie.

Why cookies and not the session: two tabs of a browser without a session would
each create a session and the last cookie would win, losing the other tab's
sign-in; concurrent requests of one session would overwrite each other's
transactions; and every anonymous visit to ``/auth/sso`` would write a record
to the shared store.  One cookie per ``state`` has none of these problems
(mod_auth_openidc does the same; express-openid-connect keeps a single
``auth_verification`` cookie, so a second tab's sign-in replaces the first's).

Security caveats:

* A transaction is bound to the browser that started it (only that browser has
  the cookie) and to its ``state``; it is used once (the callback expires the
  cookie, and the provider's code is single-use).
* ``SameSite=None`` (form_post only) lets a cross-site page's request carry the
  cookie; what it could do with it is what it can do anyway: send a callback
  whose ``state`` and code must both be the browser's own sign-in's.
* ``__Host-`` (https) means a sibling subdomain cannot plant one, even when the
  session cookie has a ``cookie_domain``; over http (loopback only) no prefix is
  possible, and the cookies are host-only.
* Each application on an origin has its own ``<app>`` part: apps under other
  ``base_url`` paths never count, read or expire each other's cookies.
* At most :data:`MAX_TRANSACTIONS` are kept per browser and application, and
  together at most :data:`COOKIE_BUDGET` bytes of the ``Cookie`` header; the
  oldest (unreadable ones first) are expired to make room, never the new one.
  A cross-site page can still start sign-ins that push out older ones.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Optional

from cryptography.fernet import Fernet, InvalidToken

from .._config.settings import SSOConfig
from .._cookies import request_cookie, request_cookies, set_cookie
from .._sealing import app_key, same_text
from ..errors import InvalidTargetUrl

#: Most sign-ins one browser may have in flight (per application); the oldest are dropped.
MAX_TRANSACTIONS = 6

#: Most bytes our transaction cookies may add to a request's ``Cookie`` header (``name=value; `` each).
#: gunicorn and Apache refuse a header line over 8190 bytes and nginx one over 8 KiB (a 431 or 400
#: for every request of that browser); the largest session cookie (the cookie store's, which Beaker
#: caps near 4 KB) plus this budget stays under that.  It holds six ordinary sign-ins (about 600
#: bytes each), or one whose target has the longest length accepted (2048 characters, ~3.3 KB).
COOKIE_BUDGET = 4000

#: The ``state`` values we issue (``secrets.token_urlsafe(32)``); anything else is refused unread.
_STATE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Transaction:
    """One sign-in in flight, keyed by its ``state``."""

    nonce: str = field(repr=False)  # secrets of the sign-in: never in a repr (error reporters capture locals)
    code_verifier: str = field(repr=False)
    target_url: str
    connection: Optional[str]
    prompt: Optional[str]
    expires_at: float
    max_age: Optional[int] = None  # step-up: the authentication must be at most this old
    acr_values: Optional[str] = None  # step-up: space-separated acceptable acr values
    redirect_uri: Optional[str] = None  # sent to /authorize, when not the first base_url's (sent again with the code)
    # What the request asked the provider for beyond the protocol, for the silent sign-in's interactive
    # retry (bounded: authorize_params.MAX_REQUEST_BYTES); the fixed authorize_params come from the settings.
    params: Optional[dict[str, str]] = None
    organization: Optional[str] = None  # Auth0 organization sent: the ID token's org_id/org_name must match
    invitation: Optional[str] = None  # Auth0 invitation id (sent again on the retry)
    # preserve_post: the reference (record id and its key) of the form kept for this sign-in's target
    preserved_post: Optional[str] = field(default=None, repr=False)


#: Fields always written; the others (step-up) only when set, to keep the cookie short.
_REQUIRED = frozenset({"nonce", "code_verifier", "target_url", "connection", "prompt", "expires_at"})


def is_valid_state(state: str) -> bool:
    """True for a ``state`` of the shape we issue: 43 characters of URL-safe base64 (so ASCII)."""
    return _STATE.fullmatch(state) is not None


class TransactionCookies:
    """Issues and redeems the per-``state`` transaction cookies of one middleware."""

    def __init__(self, config: SSOConfig) -> None:
        # Bound to this application (issuer, client id): another one sharing the secret cannot read or make them.
        self._fernet = Fernet(base64.urlsafe_b64encode(app_key(config, "sign-in transactions")))
        self._prefix = tx_prefix(config)
        self._ours = re.compile(re.escape(self._prefix) + "[0-9a-f]{16}")
        self._ttl = config.transaction_ttl
        # form_post: the provider's page POSTs to the callback cross-site, and browsers send no SameSite=Lax
        # cookie with a cross-site POST; SameSite=None needs Secure, which Chromium also keeps (and sends) on
        # http://127.0.0.1 and http://localhost (measured, see the README's form_post section).
        self._cross_site = config.response_mode == "form_post"
        self._secure = config.secure_cookies or self._cross_site

    def name_for(self, state: str) -> str:
        return self._prefix + hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def issue(
        self, state: str, transaction: Transaction, cookie_header: str, now: float, spent: Optional[str] = None
    ) -> list[tuple[str, str]]:
        """``Set-Cookie`` headers that store a new transaction (and expire the oldest beyond the caps).

        ``spent``: the state whose cookie this response already expires (a callback
        retrying a silent sign-in); it counts against neither cap.  Raises
        :class:`AuthFailure` ``invalid_target_url`` if this one cookie alone would
        exceed :data:`COOKIE_BUDGET` (only a target of about 2 KB full of quotes can).
        """
        record = {key: value for key, value in asdict(transaction).items() if value is not None or key in _REQUIRED}
        record["state"] = state
        value = self._fernet.encrypt_at_time(json.dumps(record).encode(), int(now)).decode()
        name = self.name_for(state)
        room = COOKIE_BUDGET - _size(name, value)
        if room < 0:
            raise InvalidTargetUrl("the sign-in would not fit in its cookie")
        headers = [self._set_cookie(name, value, self._ttl)]
        skip = {name, self.name_for(spent) if spent is not None else name}
        present = sorted((item for item in self._present(cookie_header) if item[0] not in skip),
                         key=lambda item: item[1])
        kept = len(present)
        room -= sum(size for _name, _issued, size in present)
        for old, _issued, size in present:  # oldest first
            if kept < MAX_TRANSACTIONS and room >= 0:
                break
            headers.append(self._set_cookie(old, "", 0))
            kept -= 1
            room += size
        return headers

    def redeem(self, state: str, cookie_header: str, now: float) -> tuple[Optional[Transaction], list[tuple[str, str]]]:
        """The transaction of ``state`` if this browser holds a valid one, and the header that expires it.

        A ``state`` of another shape than ours is refused before any lookup.
        """
        if not is_valid_state(state):
            return None, []
        name = self.name_for(state)
        value = request_cookie(cookie_header, name, unquote=True)
        if value is None:
            return None, []
        expire = [self._set_cookie(name, "", 0)]
        try:
            record = json.loads(self._fernet.decrypt_at_time(value.encode(), self._ttl, int(now)))
            issued_for = record.pop("state")
            transaction = Transaction(**record)
        except (InvalidToken, ValueError, TypeError, KeyError, AttributeError, UnicodeError):
            return None, expire
        if not isinstance(issued_for, str) or not same_text(issued_for, state):
            return None, expire
        if transaction.expires_at <= now:
            return None, expire
        return transaction, expire

    def _present(self, cookie_header: str) -> list[tuple[str, int, int]]:
        """This app's transaction cookies in a request: name, issue time (0: unreadable), header bytes.

        Only names this class issues count: any other name, even with our prefix, is
        not ours to expire (and may not even be a legal ``Set-Cookie`` name); nor
        are other applications' (another ``<app>`` part).
        """
        found = []
        for name, value in request_cookies(cookie_header, unquote=True).items():
            if self._ours.fullmatch(name):
                try:
                    issued = self._fernet.extract_timestamp(value.encode())
                except (InvalidToken, UnicodeError):
                    issued = 0
                found.append((name, issued, _size(name, value)))
        return found

    def _set_cookie(self, name: str, value: str, max_age: int) -> tuple[str, str]:
        # Path=/: what __Host- demands; the <app> part of the name keeps apps apart
        return "Set-Cookie", set_cookie(name, value, path="/", max_age=max_age, secure=self._secure,
                                        same_site="None" if self._cross_site else "Lax")


def tx_prefix(config: SSOConfig) -> str:
    """The names of one application's transaction cookies start with this (see the module docstring)."""
    base = config.session_cookie_name.removeprefix("__Host-").removeprefix("__Secure-")
    app = hashlib.sha256(config.primary_url.encode()).hexdigest()[:8]  # the first: listing more origins keeps it
    return f"{'__Host-' if config.secure_cookies else ''}{base}_tx_{app}_"


def _size(name: str, value: str) -> int:
    """Bytes a cookie adds to a ``Cookie`` header: ``name=value`` and the ``; `` separator."""
    return len(name.encode("utf-8", "surrogatepass")) + len(value.encode("utf-8", "surrogatepass")) + 3

