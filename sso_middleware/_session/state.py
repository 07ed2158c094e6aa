"""The signed-in user, kept in the session of the configured back end (:mod:`sso_middleware.stores`).

:class:`SessionStore` is built once per middleware and opens one :class:`SSOSession`
per request.  The session is read lazily: a request without the session cookie never
touches the store, and a signed-in request reads it once and writes nothing unless
something changed (the idle stamp is refreshed at most every ``stamp_interval``
seconds, not on every request as Beaker's ``timeout`` would).  Sign-ins in flight live
in their own cookies (:mod:`sso_middleware._wsgi.transactions`).

Stored (JSON): ``user`` (claims, connection, sign-in time, the provider's ``sid``, the
ID token as the logout hint), ``last_seen`` and, with ``keep_access_token``, the
:class:`Tokens` -- in a record of their own (``sso-tokens-<session id>``, written only
at sign-in and by a refresh under its lock, so an idle-stamp write never puts back
replaced tokens) where the back end keeps records, else in the session itself.

Security caveats: the session id changes at sign-in (fixation defence: the old record
is deleted; a cookie store's content is replaced whole) and sign-out deletes the data
server-side, not just the cookie (where it cannot, the sign-in is revoked).  A cookie
naming no stored session is never adopted and is answered with a pure deletion cookie,
never a freshly signed id a record could be planted under.  The stored user records
the issuer and client id it was signed in for; another application's is no session.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import secrets
import time
from dataclasses import asdict, replace
from typing import Any, Optional

from .._config.settings import SSOConfig
from .._cookies import request_cookie
from .._observe import metrics_for, observed_backend
from .._sealing import app_key
from ..stores import TOKENS_PREFIX, SessionBackend, SessionTooLarge, StoreUnavailable, backend_for, prepare_data_dir
from ..stores import index as session_index
from ..stores.backend import stamp_interval
from .revocations import Revocations
from .signed_in import SignedInUser, Tokens

log = logging.getLogger("sso_middleware")

#: A session as the back end hands it out: a dict with ``id`` and ``is_new`` (Beaker's; Beaker is untyped).
Container = Any

__all__ = ["TOKENS_PREFIX", "SSOSession", "SessionStore", "SessionTooLarge", "SignedInUser", "StoreUnavailable",
           "Tokens"]


class SessionStore:
    """Opens the per-request :class:`SSOSession`; ends sessions named by a back-channel logout.

    Where sessions live is the back end's concern (:mod:`sso_middleware.stores`, chosen by ``session_type``).
    """

    def __init__(self, config: SSOConfig, backend: Optional[SessionBackend] = None) -> None:
        self.config = config
        self.metrics = metrics_for(config)  # what the seams count and time (silent with metrics off)
        self.backend = observed_backend(backend if backend is not None else backend_for(config), self.metrics)
        self.cookie_name = config.session_cookie_name
        self.stamp_interval = stamp_interval(config.session_idle_timeout)
        #: TTL of the records written only now and then (index and token records): the absolute timeout.
        self.record_ttl = int(config.session_absolute_timeout + 180)
        # Checked now, not at the first request: a folder another local user planted beforehand must
        # stop the deployment, not make every later request fail.
        self.backend.prepare()
        # Sessions that cannot be found to delete (cookie and environ stores) are revoked instead:
        # by sign-out ("login:<id>") and back-channel logout, in a registry every process of the
        # host sharing the data folder reads (see .revocations).
        self.revocations: Optional[Revocations] = None
        if not self.backend.keeps_records:
            prepare = functools.partial(prepare_data_dir, config.data_dir, private=not config.session_data_dir)
            prepare()
            self.revocations = Revocations(
                config.data_dir,
                horizon=config.session_absolute_timeout + 2 * config.clock_skew,
                key=app_key(config, "revocations"),  # names bound to this application, like every other key
                prepare=prepare,
            )

    def may_have_session(self, environ: dict[str, Any]) -> bool:
        """False when the request cannot carry a session (no cookie of ours): the hot path's shortcut."""
        return self.backend.may_have_session(environ)

    def open(self, environ: dict[str, Any]) -> SSOSession:
        """The session of this request; nothing is read until it is needed."""
        return SSOSession(self, environ)

    # -- back-channel logout -------------------------------------------------

    def remember(self, user: SignedInUser, session_id: str) -> None:
        """Index a new sign-in by ``sid`` (or ``nosid``) and ``sub`` so a back-channel logout can find it.

        Cookie and environ stores have none: with front-channel logout on, the journal notes the sid.
        """
        if self.backend.keeps_records:
            session_index.remember(self.backend, user.sid, user.sub, session_id, self.record_ttl)
        elif self.revocations is not None and user.sid and self.config.frontchannel_logout_path:
            self.revocations.note_sign_in(user.sid, user.signed_in_at, self.config.session_absolute_timeout)

    def end_sessions(self, sid: Optional[str], sub: Optional[str], now: float, proven: bool = True) -> int:
        """End the sessions a logout token names; how many were found (0 where they are revoked instead).

        With a ``sid``: that provider session's, plus (when ``sub`` is named too)
        that user's sessions whose ID token had no ``sid`` -- never a session of
        another ``sid``.  Without one: every session of ``sub``.  ``proven=False`` (a
        front-channel logout: anyone can name any ``sid``): a ``sid`` that never signed in
        here writes nothing (:meth:`~.revocations.Revocations.signed_in_here`).
        """
        if self.revocations is not None:
            if not proven and not (sid and self.revocations.signed_in_here(sid)):
                return 0
            self.revocations.record(session_index.logout_keys(sid, sub), now)
            return 0
        return session_index.end_sessions(self.backend, sid, sub, (TOKENS_PREFIX,))

    def revoke_login(self, user: SignedInUser, now: float) -> None:
        """End one sign-in everywhere on this host (cookie and environ stores, whose data cannot be deleted).

        Server-side stores delete the record instead, which ends every copy of the cookie.

        Security caveat: a copy of an already-revoked sign-in sent again is not recorded again (each
        would be one more journal line until the absolute timeout).
        """
        if self.revocations is not None and user.login_id and not self.is_revoked(user):
            self.revocations.record([f"login:{user.login_id}"], now)

    def is_revoked(self, user: SignedInUser) -> bool:
        """True when a sign-out or a back-channel logout after this sign-in named it (cookie and environ stores)."""
        if self.revocations is None:
            return False
        keys = session_index.session_keys(user.sid, user.sub)
        if user.login_id:
            keys.append(f"login:{user.login_id}")
        return self.revocations.revoked_since(keys, user.signed_in_at)


def own_cookie(cookie_header: str, name: str) -> str:
    """``name=value`` for our session cookie alone (the first one sent), or "" when there is none.

    Only our cookie is handed to Beaker: Python's cookie parser gives up on a
    whole header when any cookie in it is malformed by its rules (see :mod:`sso_middleware._cookies`),
    and cookies of sibling applications on the parent domain must not sign our users out.
    """
    value = request_cookie(cookie_header, name, unquote=False)
    return f"{name}={value}" if value else ""


class SSOSession:
    """One request's view of the session: the user, the sign-ins in flight, and what to write back."""

    def __init__(self, store: SessionStore, environ: dict[str, Any]) -> None:
        self._store = store
        self._backend = store.backend
        self._environ = environ
        self._unopened = True
        self._session: Optional[Container] = None
        self._dirty = False
        self._cookie_out: Optional[str] = None  # the Set-Cookie value to send, if any
        self._new_user: Optional[SignedInUser] = None
        self._new_tokens: Optional[Tokens] = None
        self._tokens: Optional[Tokens] = None
        self._tokens_read = False
        self.headers: list[tuple[str, str]] = []  # more headers for this response (transaction cookies)
        self.ended_elsewhere = False  # an update found the record deleted by a concurrent sign-out
        #: The user of a session that :meth:`current_user` found expired or revoked (and signed out), else None.
        self.expired_user: Optional[SignedInUser] = None

    def _loaded(self) -> Optional[Container]:
        """The session the request names (read once), or None when there is none stored."""
        if self._unopened:
            self._unopened = False
            if self._backend.may_have_session(self._environ):
                cookie = own_cookie(self._environ.get("HTTP_COOKIE", ""), self._store.cookie_name)
                self._session = self._backend.open_session(self._environ, cookie)
                if self._session is None and cookie:
                    # The cookie names no stored session (expired, deleted, swept, tampered): never
                    # adopt a client-supplied id, and clear the cookie so the lookup is not repeated.
                    self._cookie_out = self._backend.deletion_cookie()
        return self._session

    # -- reading -----------------------------------------------------------

    def stored_user(self) -> Optional[SignedInUser]:
        """The user recorded in the session, expired or not (logout still needs the ID token)."""
        container = self._loaded()
        record = container.get("user") if container is not None else None
        if not isinstance(record, dict):
            return None
        try:
            user = SignedInUser(**record)
        except TypeError:
            log.warning("sso: discarding a session with an unreadable user record")
            self.sign_out()
            return None
        config = self._store.config
        if (user.issuer, user.client_id) != (config.issuer_url, config.client_id):
            # Not signed out: with the environ store the outer session may be another application's.
            log.warning("sso: ignoring a session signed in for another issuer or client (or by an older version)")
            return None
        return user

    def _bound(self, user: SignedInUser) -> dict[str, Any]:
        """The user record to store: the user, stamped with the issuer and client id of this application."""
        config = self._store.config
        return asdict(dataclasses.replace(user, issuer=config.issuer_url, client_id=config.client_id))

    def current_user(self, now: float, *, stamp: bool = True) -> Optional[SignedInUser]:
        """The signed-in user, or None; an expired or revoked session is signed out here.

        ``stamp=False``: the request does not count as activity (the session endpoint's GET, which a page may
        poll: polling must not keep an abandoned session alive).
        """
        user = self.stored_user()
        container = self._session
        if user is None or container is None:
            return None
        config = self._store.config
        last_seen = container.get("last_seen", user.signed_in_at)
        if now - user.signed_in_at > config.session_absolute_timeout or now - last_seen > config.session_idle_timeout:
            log.info("sso: session expired; signing out")
            self._store.metrics.session_ended("expired")
            self.sign_out()
            self.expired_user = user
            return None
        if self._store.is_revoked(user):
            log.info("sso: session ended by a back-channel logout; signing out")
            self._store.metrics.session_ended("revoked")
            self.sign_out()
            self.expired_user = user
            return None
        if stamp and now - last_seen > self._store.stamp_interval:
            container["last_seen"] = now
            self._dirty = True
        return user

    def extend(self, now: float) -> None:
        """Restart the idle timeout now (the session endpoint's POST), whatever the stamp interval."""
        container = self._loaded()
        if container is not None and container.get("user") is not None:
            container["last_seen"] = now
            self._dirty = True

    def deadlines(self, user: SignedInUser) -> tuple[float, float]:
        """When the session ends if idle from now on, and when it ends regardless (Unix time, this host's clock)."""
        config = self._store.config
        container = self._session
        last_seen = container.get("last_seen", user.signed_in_at) if container is not None else user.signed_in_at
        absolute = user.signed_in_at + config.session_absolute_timeout
        return min(float(last_seen) + config.session_idle_timeout, absolute), absolute

    # -- tokens (keep_access_token) ------------------------------------------

    def tokens(self) -> Optional[Tokens]:
        """The session's tokens, read once per request; None when it has none."""
        if not self._tokens_read:
            self.reload_tokens()
        return self._tokens

    def reload_tokens(self) -> Optional[Tokens]:
        """The tokens as stored now: another request may have refreshed them since this one read them."""
        container = self._loaded()
        if container is None:
            tokens = None
        elif self._backend.keeps_records:
            tokens = Tokens.from_record(self._backend.read_record(TOKENS_PREFIX + container.id))
        else:
            tokens = Tokens.from_record(container.get("tokens"))
        self._tokens, self._tokens_read = tokens, True
        return tokens

    def store_tokens(self, tokens: Optional[Tokens]) -> bool:
        """Replace the session's tokens (after a refresh); False when the session was ended meanwhile.

        Where the back end keeps records, the token record is written at once and only
        if it still exists (a sign-out deletes it), so a refresh never brings back a session.
        """
        container = self._loaded()
        if container is None:
            return False
        self._tokens, self._tokens_read = tokens, True
        if self._backend.keeps_records:
            record = TOKENS_PREFIX + container.id
            if tokens is None:
                self._backend.delete_record(record)
                return True
            return self._backend.write_record(record, tokens.to_json(), self._store.record_ttl, existing=True)
        if tokens is None:
            container.pop("tokens", None)
        else:
            container["tokens"] = asdict(tokens)
        self._dirty = True
        return True

    # -- signing in and out -------------------------------------------------

    def sign_in(self, user: SignedInUser, now: float, tokens: Optional[Tokens] = None) -> None:
        """Store the user (and their tokens) under a new session id; the previous session ends.

        The previous session's record is deleted where the back end keeps records; where it
        cannot be (a cookie session), its sign-in is revoked, so a copy of the replaced
        cookie does not stay signed in.
        """
        user = self._ending_previous_sign_in(user, now)
        previous = self._loaded()
        self._forget_token_record(previous)
        keep_data = previous is None or not _held_by_another_user(previous, user)
        session = self._session = self._backend.new_session(previous, self._environ, keep_data)
        session["user"] = self._bound(user)
        session["last_seen"] = now
        if tokens is not None and not self._backend.keeps_records:
            session["tokens"] = asdict(tokens)
        self._dirty = True
        self._new_user = user
        self._new_tokens = tokens
        self._tokens, self._tokens_read = tokens, True

    def sign_out(self) -> None:
        """Delete the session where it is stored and expire the cookie."""
        session = self._loaded()
        if session is not None:
            self._forget_token_record(session)
            self._backend.delete_session(session)
            self._cookie_out = self._backend.deletion_cookie()  # the one deletion cookie, as for an unknown cookie
        self._session = None
        self._dirty = False

    def _forget_token_record(self, session: Optional[Container]) -> None:
        """Delete a stored session's token record (also when keep_access_token was turned off since)."""
        if session is not None and self._backend.keeps_records and not session.is_new:
            self._backend.delete_record(TOKENS_PREFIX + session.id)

    def _ending_previous_sign_in(self, user: SignedInUser, now: float) -> SignedInUser:
        """The new user with a fresh ``login_id``; where records cannot be deleted, the previous sign-in is revoked."""
        if self._store.revocations is not None:
            previous = self.stored_user()
            if previous is not None:
                self._store.revoke_login(previous, now)
        return user if user.login_id else replace(user, login_id=secrets.token_urlsafe(16))

    # -- writing back -------------------------------------------------------

    def commit(self) -> list[tuple[str, str]]:
        """Persist changes; the headers (``Set-Cookie``) to add to the response.

        Raises :class:`StoreUnavailable` or :class:`SessionTooLarge`; nothing is
        half-written then (the user is not signed in).
        """
        session = self._session
        if self._dirty and session is not None:
            created = session.is_new
            self._dirty = False
            if not self._backend.save_session(session, existing=not created):
                log.info("sso: the session ended elsewhere meanwhile; not writing it back")
                self.ended_elsewhere = True
                self._cookie_out = self._backend.deletion_cookie()
            else:
                self._saved(session, created)
        if self._cookie_out is None:
            return list(self.headers)
        return [("Set-Cookie", self._cookie_out.strip()), *self.headers]

    def _saved(self, session: Container, created: bool) -> None:
        """After a session was written: its cookie, housekeeping, a new sign-in's token record and index entries."""
        cookie = self._backend.session_cookie(session, created)
        if cookie is not None:
            self._cookie_out = cookie
        if created:
            self._backend.session_created(time.time())
        if self._new_tokens is not None and self._backend.keeps_records:
            self._backend.write_record(TOKENS_PREFIX + session.id, self._new_tokens.to_json(), self._store.record_ttl)
        if self._new_user is not None:
            self._store.remember(self._new_user, session.id)
            self._store.metrics.signed_in(self._environ)


def _held_by_another_user(session: Container, user: SignedInUser) -> bool:
    """True when the session holds a user record of another ``sub`` (or one that cannot be read)."""
    record = session.get("user")
    if record is None:
        return False  # an anonymous visitor's session: the data is theirs, now the user's
    claims = record.get("claims") if isinstance(record, dict) else None
    return not isinstance(claims, dict) or claims.get("sub") != user.sub
