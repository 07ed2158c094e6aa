"""Keeping a session's access token fresh: automatic, single-flight refresh.

With ``keep_access_token`` the session holds the access token the provider
issued at sign-in (for Auth0, for the API named by ``audience``) and, when
``scope`` asks for ``offline_access``, a refresh token.  Before a request
reaches the application, :meth:`TokenRefresher.current` returns its token,
refreshed first when it is due: within ``refresh_margin`` seconds of expiry, or
past half its lifetime for tokens that live shorter.

Single flight.  Every request of one session that finds the token due takes the
lock named after the session's refresh token (:class:`~.locks.StoreLocks`: in
Redis, memcached or the file store, so it holds across threads, workers and
hosts).  The first one refreshes and writes the new tokens; the others wait
(bounded), then re-read the session, find the token already replaced and use
it: one refresh per expiry, and no request ever sends a refresh token the
provider has already rotated (a provider detecting such reuse may revoke the
whole grant).  The cookie and environ stores have nothing to share between
processes, so their lock is per process; within a process a refresh's result
is also kept for ``GRACE_SECONDS``, so a request still carrying the cookie with
the just-replaced token adopts the new one instead of refreshing again.

Outcomes.  A refreshed ID token is validated against the original (Core 1.0
section 12.2, in :mod:`sso_middleware._oidc.client`).  When the provider refuses the refresh token
(revoked, expired: ``invalid_grant``) or the refreshed ID token is about someone
else, the user is signed out, or with ``refresh_failure = keep_session`` keeps
the session without a token and the application sees
``environ["sso.token_error"]``.  Anything else -- an unreachable or rate-limiting
provider, a token that cannot be checked right now -- never signs anyone out:
the current token is used while it is valid (a request holding one waits at most
``VALID_TOKEN_WAIT`` for another's refresh), and a session whose refresh failed is
not retried for ``RETRY_SECONDS``.

Forced refreshes (the session endpoint's POST) take the same path, except for a token
obtained less than ``FORCED_REFRESH_MIN_AGE`` seconds ago: that one is as good as a new
one and is returned as it is, so a script POSTing in a loop costs the provider one token
request per session per ``FORCED_REFRESH_MIN_AGE``, not one per POST (the provider's rate
limit is the client's, shared by every user).

Security caveat: tokens are never logged; the lock names are hashes of the
refresh token, never the token.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from typing import Optional

from .._config.settings import SSOConfig
from .._oidc.client import OIDCClient
from .._oidc.id_token import IdentityMismatch
from ..errors import AuthFailure, InvalidGrant
from .locks import StoreLocks
from .state import SessionStore, SignedInUser, SSOSession, Tokens

log = logging.getLogger("sso_middleware")

#: Seconds a process remembers a refresh's result for requests carrying the replaced token (cookie stores).
GRACE_SECONDS = 60.0
#: Seconds a request whose token is still valid waits for another request's refresh before using its own.
VALID_TOKEN_WAIT = 2.0
#: Seconds a process leaves a session's failed refresh (provider trouble) alone while its token still serves.
RETRY_SECONDS = 5.0
#: Seconds after a token was obtained during which a forced refresh returns it instead of asking the provider.
FORCED_REFRESH_MIN_AGE = 5.0
#: At most this many remembered refresh results (and failures) per process.
_MAX_RECENT = 10000

#: ``environ["sso.token_error"]`` values.
REFRESH_FAILED = "refresh_failed"  # the provider refused the refresh token
TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"  # the provider (or the lock) could not be had in time
TOKEN_EXPIRED = "token_expired"  # expired and there is no refresh token
#: ``TokenState.skipped`` when the session has no refresh token to refresh with.
NO_REFRESH_TOKEN = "no_refresh_token"



def _is_refusal(failure: AuthFailure) -> bool:
    """The provider's verdict on the session: its refresh token refused (RFC 6749 section 5.2: invalid,
    expired, revoked), or a refreshed ID token about someone else (Core section 12.2).  The session ends."""
    return isinstance(failure, (IdentityMismatch, InvalidGrant))


@dataclass(frozen=True)
class TokenState:
    """A request's user and token after the refresh check."""

    user: Optional[SignedInUser]  # None: signed out (the refresh token was refused)
    tokens: Optional[Tokens]  # None: no usable access token
    error: Optional[str] = None  # why there is no token, for the application
    #: Why a refresh that was due (or forced) did not happen although the session goes on: ``NO_REFRESH_TOKEN``,
    #: ``TEMPORARILY_UNAVAILABLE`` (a recent failure, or another request's refresh still running) or the failure
    #: code of the provider's trouble (``provider_unreachable``...).  None when it happened or was not needed.
    skipped: Optional[str] = None


class TokenRefresher:
    """Refreshes access tokens before they expire, once per expiry across every process sharing the store."""

    def __init__(
        self,
        config: SSOConfig,
        client: OIDCClient,
        store: SessionStore,
        locks: Optional[StoreLocks] = None,
    ) -> None:
        self.config = config
        self.client = client
        self.store = store
        self.locks = locks or StoreLocks(config, store.backend)
        # Longer than the slowest refresh: a discovery, the token call and two JWKS fetches (a stale set, then
        # an unknown kid), each bounded by http_timeout, and the store calls -- or a rotated refresh token
        # could be sent twice.
        self.lock_ttl = 4 * config.http_timeout + 3 * config.session_store_timeout + 10
        self.lock_wait = config.http_timeout + 2 * config.session_store_timeout + 1
        self._recent: dict[str, tuple[float, Tokens]] = {}
        self._failures: dict[str, float] = {}  # lock name -> until when not to try again (provider trouble)
        self._recent_lock = threading.Lock()
        #: How many refreshes this process has made (for tests and benchmarks).
        self.refreshes = 0

    def current(self, session: SSOSession, user: SignedInUser, now: float, *, force: bool = False) -> TokenState:
        """The user and a token valid for ``refresh_margin`` more seconds (refreshed if due), or why not.

        ``force``: refresh now even if the token is not due (the session endpoint's POST), through the same
        lock: forced and due refreshes of one session running at once make one provider call between them.
        A token obtained less than ``FORCED_REFRESH_MIN_AGE`` seconds ago is returned as it is (unless due).
        """
        tokens = session.tokens()
        if tokens is None:
            return TokenState(user, None)
        if tokens.error is not None:  # a refused refresh, kept as the reason until the user signs in again
            return TokenState(user, None, tokens.error)
        if not self.store.backend.keeps_records:  # the tokens travel with the session: a replaced one may come back
            tokens = self._adopt_recent(session, tokens, now)
        if (force and tokens.refresh_token is not None and tokens.obtained_at is not None
                and now - tokens.obtained_at < FORCED_REFRESH_MIN_AGE):
            force = False  # as good as new: one provider call per session per FORCED_REFRESH_MIN_AGE at most
        if not force and not self._due(tokens, now):
            return TokenState(user, tokens)
        if tokens.refresh_token is None:
            return self._without_refresh(user, tokens, now, TOKEN_EXPIRED, NO_REFRESH_TOKEN)
        name = "refresh-" + _fingerprint(tokens.refresh_token)
        still_valid = tokens.expires_at is not None and tokens.expires_at > now
        if still_valid and self._failed_recently(name, now):
            # The provider just failed us: no new attempt while the token serves.
            return TokenState(user, tokens, skipped=TEMPORARILY_UNAVAILABLE)
        # Waiters reuse the refresh in progress; while the current token is valid they wait only briefly for it
        # (a healthy refresh takes milliseconds), and then use the current token.  A forced refresh was asked for
        # a new token: it waits as long as an expired one does.
        wait = min(self.lock_wait, VALID_TOKEN_WAIT) if still_valid and not force else self.lock_wait
        with self.locks.hold(name, ttl=self.lock_ttl, wait=wait) as held:
            if not held:
                if still_valid:
                    return TokenState(user, tokens, skipped=TEMPORARILY_UNAVAILABLE)
                log.warning("sso: a token refresh of this session is still running elsewhere; not waiting longer")
                return self._without_refresh(user, tokens, now, TEMPORARILY_UNAVAILABLE, TEMPORARILY_UNAVAILABLE)
            if self.store.backend.keeps_records:
                latest = session.reload_tokens()
            else:
                latest = self._adopt_recent(session, tokens, now)
            if latest is None:  # the session was ended meanwhile (a sign-out, or a refused refresh signed it out)
                session.sign_out()
                return TokenState(None, None)
            if latest.error is not None:  # another request's refresh was refused meanwhile
                return TokenState(user, None, latest.error)
            if latest != tokens:
                return TokenState(user, latest)  # refreshed by another request while this one waited
            return self._refresh(session, user, latest, now)

    # -- helpers -----------------------------------------------------------

    def _due(self, tokens: Tokens, now: float) -> bool:
        """Within ``refresh_margin`` of expiry -- or of half its lifetime, for tokens that live shorter.

        Without the second bound a token living no longer than the margin would be
        "due" from the moment it was issued: a refresh on every request.
        """
        if tokens.expires_at is None:
            return False
        margin: float = self.config.refresh_margin
        if tokens.obtained_at is not None:
            margin = min(margin, (tokens.expires_at - tokens.obtained_at) / 2)
        return tokens.expires_at - now <= margin

    @staticmethod
    def _without_refresh(user: SignedInUser, tokens: Tokens, now: float, error: str, skipped: str) -> TokenState:
        """The current token while it is still valid; else no token and why (``error``); ``skipped``: why no refresh."""
        if tokens.expires_at is None or tokens.expires_at > now:
            return TokenState(user, tokens, skipped=skipped)
        return TokenState(user, None, error, skipped)

    def _refresh(self, session: SSOSession, user: SignedInUser, tokens: Tokens, now: float) -> TokenState:
        assert tokens.refresh_token is not None
        try:
            result = self.client.refresh(tokens.refresh_token, user.id_token)
        except AuthFailure as failure:
            if not _is_refusal(failure):
                # Not a verdict on this refresh token (the provider is down, rate-limits, refuses us as a client,
                # or sent a token we cannot check now): nobody is signed out for that; the current token serves
                # while it is valid, and the next attempt waits RETRY_SECONDS.
                log.warning("sso: token refresh for sub=%r failed (%s); keeping the current token while valid",
                            user.sub, failure.code)
                self._remember_failure("refresh-" + _fingerprint(tokens.refresh_token), now)
                self.store.metrics.refresh("error")
                return self._without_refresh(user, tokens, now, TEMPORARILY_UNAVAILABLE, failure.code)
            self.refreshes += 1
            self.store.metrics.refresh("refused")
            if self.config.refresh_failure == "sign_out":
                log.info("sso: token refresh for sub=%r refused (%s); signing out", user.sub, failure)
                self.store.metrics.session_ended("refresh_refused")
                session.sign_out()
                return TokenState(None, None, REFRESH_FAILED)
            log.info("sso: token refresh for sub=%r refused (%s); keeping the session without a token",
                     user.sub, failure)
            if not session.store_tokens(Tokens(access_token="", error=REFRESH_FAILED)):
                return TokenState(None, None)  # the session was ended meanwhile
            return TokenState(user, None, REFRESH_FAILED)
        self.refreshes += 1
        self.store.metrics.refresh("success")
        fresh = Tokens(
            access_token=result.access_token,
            expires_at=result.expires_at,
            refresh_token=result.refresh_token or tokens.refresh_token,
            obtained_at=now,
        )
        if not session.store_tokens(fresh):
            log.info("sso: the session ended while its token was refreshed; not keeping the new token")
            return TokenState(None, None)
        log.info("sso: refreshed the access token of sub=%r", user.sub)
        if not self.store.backend.keeps_records:
            self._remember(tokens.refresh_token, fresh, now)
        return TokenState(user, fresh)

    def _failed_recently(self, name: str, now: float) -> bool:
        with self._recent_lock:
            until = self._failures.get(name)
            return until is not None and until > now

    def _remember_failure(self, name: str, now: float) -> None:
        with self._recent_lock:
            if len(self._failures) >= _MAX_RECENT:
                self._failures = {key: until for key, until in self._failures.items() if until > now}
                while len(self._failures) >= _MAX_RECENT:
                    del self._failures[next(iter(self._failures))]
            self._failures[name] = now + RETRY_SECONDS

    def _adopt_recent(self, session: SSOSession, tokens: Tokens, now: float) -> Tokens:
        """The tokens a refresh in this process made from ``tokens``' refresh token, if recent; else ``tokens``."""
        if tokens.refresh_token is None or not self._recent:
            return tokens
        with self._recent_lock:
            entry = self._recent.get(_fingerprint(tokens.refresh_token))
        if entry is None or entry[0] < now:
            return tokens
        session.store_tokens(entry[1])  # the cookie is rewritten with the new tokens
        return entry[1]

    def _remember(self, old_refresh_token: str, fresh: Tokens, now: float) -> None:
        with self._recent_lock:
            if len(self._recent) >= _MAX_RECENT:
                self._recent = {key: entry for key, entry in self._recent.items() if entry[0] >= now}
                while len(self._recent) >= _MAX_RECENT:
                    del self._recent[next(iter(self._recent))]
            self._recent[_fingerprint(old_refresh_token)] = (now + GRACE_SECONDS, fresh)


def _fingerprint(token: str) -> str:
    """A name for a token that does not reveal it."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]
