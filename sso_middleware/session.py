"""The signed-in user and the pending sign-ins, kept in a Beaker session.

:class:`SessionStore` is built once per middleware and opens one
:class:`SSOSession` per request.  The session behind it is read lazily: a
request without the session cookie never touches the store, and a signed-in
request reads it once and writes nothing unless something changed (the
idle-timeout stamp is refreshed at most every ``stamp_interval`` seconds instead
of Beaker's rewrite-on-every-request ``timeout``).  Where sessions live is
:mod:`.stores`' concern.

What is stored (JSON, Beaker's ``json`` serializer) -- sign-ins in flight are
not: they live in their own cookies (:mod:`.transactions`):

* ``user``: the claims, the connection signed in through, the sign-in time,
  the provider's ``sid`` and the ID token (kept as the logout hint).
* ``last_seen``: the idle-timeout stamp.
* with ``keep_access_token``: the access token, its expiry and the refresh token
  (:class:`Tokens`).  Server-side stores keep them in a record of their own,
  ``sso-tokens-<session id>``, written only at sign-in and by a refresh (under the
  refresh lock), so a concurrent request writing its idle stamp can never put
  back tokens a refresh just replaced; the cookie and environ stores keep them in
  the session itself.

Security caveats: the session id changes when a user signs in (fixation
defence: the old record is deleted server-side; a cookie store's content is
replaced whole) and sign-out deletes the data server-side, not just the cookie.
The cookie is HttpOnly, SameSite=Lax, signed with a key derived from
``session_secret``, the issuer and the client id (and encrypted for the cookie
store), and Secure whenever ``base_url`` is https.  A cookie naming no stored
session is never adopted, and is answered with a pure deletion cookie (empty
value), never with a freshly signed id that a record could then be planted
under.  The stored user records the issuer and client id it was signed in for;
a record of another application (or without them) is no session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import secrets
import stat
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

from beaker.session import CookieSession, SessionObject

from .config import SSOConfig
from .cookies import deletion_cookie, request_cookie
from .errors import ConfigError
from .revocations import Revocations
from .sealing import app_key
from .stores import BeakerStore, SessionTooLarge, StoreUnavailable

log = logging.getLogger("sso_middleware")

#: A Beaker session (or an outer ``SessionObject``): a dict with Beaker's methods; Beaker is untyped.
Container = Any

#: Seconds between two sweeps of abandoned session files (per process).
SWEEP_INTERVAL = 600.0
#: Prefix of the records that map a provider ``sid``/``sub`` to session ids (back-channel logout).
INDEX_PREFIX = "sso-index-"
#: Prefix of the records that hold a session's tokens (server-side stores).
TOKENS_PREFIX = "sso-tokens-"
#: Key prefix of our data inside an outer application's session (``session_type = environ``).
ENVIRON_PREFIX = "sso_middleware."

__all__ = ["SSOSession", "SessionStore", "SessionTooLarge", "SignedInUser", "StoreUnavailable", "Tokens"]


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


class SessionStore:
    """Opens the per-request :class:`SSOSession`; ends sessions named by a back-channel logout."""

    def __init__(self, config: SSOConfig) -> None:
        self.config = config
        self.kind = config.session_type
        self.cookie_name = config.session_cookie_name
        self.stamp_interval = min(60.0, config.session_idle_timeout / 10)
        #: TTL of the records written only now and then (index and token records): the absolute timeout.
        self.record_ttl = int(config.session_absolute_timeout + 180)
        self.beaker = BeakerStore(config, self.cookie_name, config.data_dir) if self.kind != "environ" else None
        # Sessions that cannot be found to delete (cookie and environ stores) are revoked instead:
        # by sign-out ("login:<id>") and back-channel logout, in a registry every process of the
        # host sharing the data folder reads (see .revocations).
        self.revocations: Optional[Revocations] = None
        if self.kind == "file" or not self.searchable:
            # Checked (and created 0700) now, not at the first sign-out: a folder another local user
            # planted beforehand must stop the deployment, not make every later sign-out fail.
            prepare_data_dir(config.data_dir, private=not config.session_data_dir)
        if not self.searchable:
            self.revocations = Revocations(
                config.data_dir,
                horizon=config.session_absolute_timeout + 2 * config.clock_skew,
                key=app_key(config, "revocations"),  # names bound to this application, like every other key
                prepare=lambda: prepare_data_dir(config.data_dir, private=not config.session_data_dir),
            )
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    @property
    def searchable(self) -> bool:
        """True when sessions can be found by id and deleted (server-side stores we own)."""
        return self.beaker is not None and self.beaker.server_side

    def may_have_session(self, environ: dict[str, Any]) -> bool:
        """False when the request cannot carry a session (no cookie of ours): the hot path's shortcut."""
        if self.kind == "environ":
            return "HTTP_COOKIE" in environ
        return self.cookie_name in environ.get("HTTP_COOKIE", "")

    def open(self, environ: dict[str, Any]) -> SSOSession:
        """The session of this request; nothing is read until it is needed."""
        if self.kind == "environ":
            return EnvironSSOSession(self, environ)
        return SSOSession(self, own_cookie(environ.get("HTTP_COOKIE", ""), self.cookie_name))

    # -- housekeeping ------------------------------------------------------

    def session_created(self, now: float) -> None:
        """Called when a new session is stored: sweep abandoned files now and then, off the request path.

        Beaker's file store never removes records, so without a sweep the records
        of users who never come back would fill the disk.  Redis and memcached expire
        records by their TTL.
        """
        if self.kind != "file":
            return
        with self._lock:
            if now < self._next_sweep:
                return
            self._next_sweep = now + SWEEP_INTERVAL
        config = self.config
        idle = config.session_idle_timeout + self.stamp_interval + 60
        thread = threading.Thread(
            target=sweep_file_store,
            args=(config.data_dir, now - idle, now - config.session_absolute_timeout - idle),
            name="sso-session-sweep",
            daemon=True,
        )
        thread.start()

    # -- back-channel logout -------------------------------------------------

    def remember(self, user: SignedInUser, session_id: str) -> None:
        """Index a new sign-in by ``sid`` (or ``nosid``) and ``sub`` so a back-channel logout can find it."""
        if not self.searchable:
            return
        assert self.beaker is not None
        for key in _index_keys(user.sid, user.sub):
            self.beaker.index_add(key, session_id, self.record_ttl)

    def end_sessions(self, sid: Optional[str], sub: Optional[str], now: float) -> int:
        """End the sessions a logout token names; how many were found (0 where they are revoked instead).

        With a ``sid``: that provider session's, plus (when ``sub`` is named too)
        that user's sessions whose ID token had no ``sid`` -- never a session of
        another ``sid``.  Without one: every session of ``sub``.
        """
        keys = _logout_keys(sid, sub)
        if self.revocations is not None:
            self.revocations.record(keys, now)
            return 0
        assert self.beaker is not None
        ended: set[str] = set()
        for key in keys:
            ended.update(self.beaker.end_index(_index_key(key), (TOKENS_PREFIX,)))
        return len(ended)

    def revoke_login(self, user: SignedInUser, now: float) -> None:
        """End one sign-in everywhere on this host (cookie and environ stores, whose data cannot be deleted).

        Server-side stores delete the record instead, which ends every copy of the cookie.
        """
        if self.revocations is not None and user.login_id:
            self.revocations.record([f"login:{user.login_id}"], now)

    def is_revoked(self, user: SignedInUser) -> bool:
        """True when a sign-out or a back-channel logout after this sign-in named it (cookie and environ stores)."""
        if self.revocations is None:
            return False
        keys = [f"sub:{user.sub}", f"sid:{user.sid}" if user.sid else f"nosid:{user.sub}"]
        if user.login_id:
            keys.append(f"login:{user.login_id}")
        return self.revocations.revoked_since(keys, user.signed_in_at)


def _index_key(key: str) -> str:
    return INDEX_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:40]


def _index_keys(sid: Optional[str], sub: str) -> list[str]:
    """The indexes a session joins: its ``sid`` (``nosid:<sub>`` when the ID token had none) and its ``sub``."""
    return [_index_key(f"sid:{sid}" if sid else f"nosid:{sub}"), _index_key(f"sub:{sub}")]


def _logout_keys(sid: Optional[str], sub: Optional[str]) -> list[str]:
    """The session keys a logout token ends (Back-Channel Logout 1.0 section 2.4: ``sid``, ``sub`` or both)."""
    if not sid:
        return [f"sub:{sub}"]
    return [f"sid:{sid}", f"nosid:{sub}"] if sub else [f"sid:{sid}"]


def prepare_data_dir(data_dir: str, private: bool) -> None:
    """Create the file store's folder (0700) and check that it, and the way to it, are ours alone.

    Sessions hold ID tokens, so another local user must not be able to read them, to
    pre-create the folder (the default one is predictable) or to plant records in it or
    swap it for another: the folder must be a directory (not a link) owned by this user
    with no group or other access, and no folder above it may be writable by another
    user unless it is sticky (like ``/tmp``).  This holds for an explicit
    ``session_data_dir`` as for the default one.  ``private``: the folder is the default
    one, whose per-user parent is created and checked the same way.
    """
    data_dir = os.path.abspath(data_dir)
    ours = [os.path.dirname(data_dir), data_dir] if private else [data_dir]
    try:
        for folder in ours:
            os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError("session_data_dir", f"cannot create {data_dir!r}: {exc.strerror}") from None
    for folder in ours:
        info = os.lstat(folder)
        if not private and stat.S_ISLNK(info.st_mode) and info.st_uid in (0, os.getuid()):
            info = os.stat(folder)  # an explicit folder may be a link of ours (or root's): its target is checked
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077 \
                and not info.st_mode & 0o022:
            # Ours, readable by others but never writable by them (so nothing can have been
            # planted inside): an older version or a umask left it open; close it.
            os.chmod(folder, 0o700)
            info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            kind = "the default session folder" if private else "session_data_dir"
            raise ConfigError(
                "session_data_dir",
                f"{kind} {folder!r} is not a private (0700) folder of this user"
                + ("; remove it or set session_data_dir" if private else "; create it with mode 0700"),
            )
    for start in {os.path.dirname(ours[0]), os.path.dirname(os.path.realpath(ours[0]))}:  # as named, and as linked
        _check_parents(start)
    if not os.access(data_dir, os.W_OK):
        raise ConfigError("session_data_dir", f"{data_dir!r} is not writable")


def _check_parents(folder: str) -> None:
    """Refuse a folder above the store that another user could write to (and so replace what is below)."""
    while True:
        try:
            link = os.lstat(folder)  # a link another user owns could be re-pointed (in a sticky folder too)
            info = os.stat(folder)  # and the folder it leads to
        except OSError as exc:
            raise ConfigError("session_data_dir", f"cannot inspect {folder!r}: {exc.strerror}") from None
        writable_by_others = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX
        if writable_by_others or info.st_uid not in (0, os.getuid()) or link.st_uid not in (0, os.getuid()):
            raise ConfigError(
                "session_data_dir",
                f"{folder!r}, above the session folder, can be changed by other users (group/other-writable "
                "without the sticky bit, or owned by another user): they could replace the session folder",
            )
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def sweep_file_store(data_dir: str, before: float, index_before: Optional[float] = None) -> int:
    """Delete session records and lock files not written since ``before``.

    A live session is written at least every ``stamp_interval`` while in use, so
    an old record is an idle one; Beaker recreates a lock file when it needs it.
    Back-channel logout index records (``sso-index-*``) and token records
    (``sso-tokens-*``) are not written on every use, so they are kept until
    ``index_before`` (past the absolute timeout).
    Symbolic links are never followed.  Returns how many files were removed;
    errors (a file already gone) are ignored.
    """
    index_cutoff = before if index_before is None else index_before
    removed = 0
    for folder in (os.path.join(data_dir, name) for name in ("container_file", "locks", "index")):
        if os.path.islink(folder):
            log.warning("sso: %s is a symbolic link; not sweeping it", folder)
            continue
        for root, _dirs, files in os.walk(folder):
            for name in files:
                path = os.path.join(root, name)
                try:
                    info = os.lstat(path)
                    cutoff = index_cutoff if name.startswith((INDEX_PREFIX, TOKENS_PREFIX)) else before
                    if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                        os.remove(path)
                        removed += 1
                except OSError:
                    continue
    if removed:
        log.info("sso: removed %d abandoned session files", removed)
    return removed


def own_cookie(cookie_header: str, name: str) -> str:
    """``name=value`` for our session cookie alone (the first one sent), or "" when there is none.

    Only our cookie is handed to Beaker: Python's cookie parser gives up on a
    whole header when any cookie in it is malformed by its rules (see :mod:`.cookies`),
    and cookies of sibling applications on the parent domain must not sign our users out.
    """
    value = request_cookie(cookie_header, name, unquote=False)
    return f"{name}={value}" if value else ""


class SSOSession:
    """One request's view of the session: the user, the sign-ins in flight, and what to write back."""

    def __init__(self, store: SessionStore, cookie_header: str) -> None:
        self._store = store
        self._cookie_header = cookie_header
        self._beaker: Optional[Container] = None
        self._dirty = False
        self._cookie_out: Optional[str] = None  # the Set-Cookie value to send, if any
        self._new_user: Optional[SignedInUser] = None
        self._new_tokens: Optional[Tokens] = None
        self._tokens: Optional[Tokens] = None
        self._tokens_read = False
        self.headers: list[tuple[str, str]] = []  # more headers for this response (transaction cookies)
        self.ended_elsewhere = False  # an update found the record deleted by a concurrent sign-out

    # -- the container: a Beaker session we own (the environ variant overrides these) ---------

    def _loaded(self) -> Optional[Container]:
        """The session the cookie names (read once), or None when there is none stored."""
        if self._beaker is None and self._cookie_header:
            assert self._store.beaker is not None
            header, self._cookie_header = self._cookie_header, ""
            try:
                beaker = self._store.beaker.session(header)
            except ValueError:  # unreadable record or cookie: start over
                beaker = None
            if beaker is None or beaker.is_new:
                # The cookie names no stored session (expired, deleted, swept, tampered): never
                # adopt a client-supplied id, and clear the cookie so the lookup is not repeated.
                self._cookie_out = self._expired_cookie()
            else:
                self._beaker = beaker
        return self._beaker

    def _fresh(self) -> Container:
        """A new, empty session (new id) to write to."""
        assert self._store.beaker is not None
        return self._store.beaker.session("")

    def _key(self, name: str) -> str:
        return name

    def _expired_cookie(self) -> str:
        """A cookie that deletes the session cookie: empty value, expired, same name and scope.

        Never a freshly signed id: an id that the middleware signed but nobody stored is what
        someone able to write to the store would plant a forged record under.
        """
        config = self._store.config
        # (a __Host- name always has Path=/: SSOConfig refuses one under a base_url path)
        return deletion_cookie(self._store.cookie_name, path=config.cookie_path, domain=config.cookie_domain,
                               secure=config.secure_cookies)

    @property
    def _data(self) -> Container:
        """The session to write to: the stored one, or a new one with a fresh id."""
        container = self._loaded()
        if container is None:
            container = self._beaker = self._fresh()
        return container

    # -- reading -----------------------------------------------------------

    def stored_user(self) -> Optional[SignedInUser]:
        """The user recorded in the session, expired or not (logout still needs the ID token)."""
        container = self._loaded()
        record = container.get(self._key("user")) if container is not None else None
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

    def current_user(self, now: float) -> Optional[SignedInUser]:
        """The signed-in user, or None; an expired or revoked session is signed out here."""
        user = self.stored_user()
        if user is None:
            return None
        config = self._store.config
        data = self._data
        last_seen = data.get(self._key("last_seen"), user.signed_in_at)
        if now - user.signed_in_at > config.session_absolute_timeout or now - last_seen > config.session_idle_timeout:
            log.info("sso: session expired; signing out")
            self.sign_out()
            return None
        if self._store.is_revoked(user):
            log.info("sso: session ended by a back-channel logout; signing out")
            self.sign_out()
            return None
        if now - last_seen > self._store.stamp_interval:
            data[self._key("last_seen")] = now
            self._dirty = True
        return user

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
        elif self._store.searchable:
            assert self._store.beaker is not None
            tokens = Tokens.from_record(self._store.beaker.read_value(TOKENS_PREFIX + container.id))
        else:
            tokens = Tokens.from_record(container.get(self._key("tokens")))
        self._tokens, self._tokens_read = tokens, True
        return tokens

    def store_tokens(self, tokens: Optional[Tokens]) -> bool:
        """Replace the session's tokens (after a refresh); False when the session was ended meanwhile.

        Server-side stores write the token record at once and only if it still
        exists (a sign-out deletes it), so a refresh never brings back a session.
        """
        container = self._loaded()
        if container is None:
            return False
        self._tokens, self._tokens_read = tokens, True
        if self._store.searchable:
            assert self._store.beaker is not None
            record = TOKENS_PREFIX + container.id
            if tokens is None:
                self._store.beaker.remove_id(record)
                return True
            return self._store.beaker.write_value(record, tokens.to_json(), self._store.record_ttl, existing=True)
        if tokens is None:
            container.pop(self._key("tokens"), None)
        else:
            container[self._key("tokens")] = asdict(tokens)
        self._dirty = True
        return True

    # -- signing in and out -------------------------------------------------

    def sign_in(self, user: SignedInUser, now: float, tokens: Optional[Tokens] = None) -> None:
        """Store the user (and their tokens) under a new session id; the old id is deleted server-side.

        A cookie session's previous sign-in cannot be deleted: it is revoked, so a
        copy of the replaced cookie does not stay signed in.
        """
        user = self._ending_previous_sign_in(user, now)
        self._discard()
        fresh = self._data
        fresh[self._key("user")] = self._bound(user)
        fresh[self._key("last_seen")] = now
        if tokens is not None and not self._store.searchable:
            fresh[self._key("tokens")] = asdict(tokens)
        self._dirty = True
        self._new_user = user
        self._new_tokens = tokens
        self._tokens, self._tokens_read = tokens, True

    def sign_out(self) -> None:
        """Delete the session server-side and expire the cookie."""
        self._discard()

    def _ending_previous_sign_in(self, user: SignedInUser, now: float) -> SignedInUser:
        """The new user with a fresh ``login_id``; where records cannot be deleted, the previous sign-in is revoked."""
        if self._store.revocations is not None:
            previous = self.stored_user()
            if previous is not None:
                self._store.revoke_login(previous, now)
        return user if user.login_id else replace(user, login_id=secrets.token_urlsafe(16))

    def _discard(self) -> None:
        beaker = self._loaded()
        if beaker is not None:
            assert self._store.beaker is not None
            if self._store.searchable and not beaker.is_new:  # also when keep_access_token was turned off since
                self._store.beaker.remove_id(TOKENS_PREFIX + beaker.id)
            self._store.beaker.remove(beaker)
            beaker.delete()
            self._cookie_out = self._expired_cookie()  # the one deletion cookie, as for an unknown cookie
        self._beaker = None
        self._dirty = False

    # -- writing back -------------------------------------------------------

    def commit(self) -> list[tuple[str, str]]:
        """Persist changes; the headers (``Set-Cookie``) to add to the response.

        Raises :class:`StoreUnavailable` or :class:`SessionTooLarge`; nothing is
        half-written then (the user is not signed in).
        """
        beaker = self._beaker
        if self._dirty and beaker is not None:
            assert self._store.beaker is not None
            created = beaker.is_new
            self._dirty = False
            if not self._store.beaker.save(beaker, existing=not created):
                log.info("sso: the session ended elsewhere meanwhile; not writing it back")
                self.ended_elsewhere = True
                self._cookie_out = self._expired_cookie()
                return [("Set-Cookie", self._cookie_out.strip()), *self.headers]
            if created or self._store.kind == "cookie":
                self._cookie_out = str(beaker.request["cookie_out"])
            if created:
                self._store.session_created(time.time())
            if self._new_tokens is not None and self._store.searchable:
                self._store.beaker.write_value(TOKENS_PREFIX + beaker.id, self._new_tokens.to_json(),
                                               self._store.record_ttl)
            if self._new_user is not None:
                self._store.remember(self._new_user, beaker.id)
        if self._cookie_out is None:
            return list(self.headers)
        return [("Set-Cookie", self._cookie_out.strip()), *self.headers]


def _beaker_session(outer: Container) -> Container:
    """The Beaker ``Session``/``CookieSession`` behind an outer ``SessionObject`` (or the session itself)."""
    return outer._session() if isinstance(outer, SessionObject) else outer


class EnvironSSOSession(SSOSession):
    """Our data inside an outer Beaker ``SessionMiddleware``'s session, under ``sso_middleware.*`` keys.

    The outer middleware owns the cookie, the store and when to save; sign-in
    regenerates its session id where its store supports that (server-side
    stores; a cookie store's content is replaced anyway), and sign-out deletes
    the whole outer session.  The application's data in the outer session
    belongs to the user signed in: when another user (another ``sub``) signs
    in, the whole outer session is invalidated first -- every key gone, the
    old record deleted where the outer store keeps one, a new id -- so the new
    user never sees the previous user's data.  The same user signing in again
    keeps it, and so does an anonymous visitor's first sign-in.
    """

    def __init__(self, store: SessionStore, environ: dict[str, Any]) -> None:
        super().__init__(store, "")
        self._environ = environ

    def _outer(self) -> Any:
        outer = self._environ.get(self._store.config.session_environ_key)
        if outer is None:
            raise StoreUnavailable(
                f"no Beaker session at environ[{self._store.config.session_environ_key!r}]: "
                "wrap this middleware in beaker.middleware.SessionMiddleware"
            )
        return outer

    def _loaded(self) -> Optional[Container]:
        if self._beaker is None and "HTTP_COOKIE" in self._environ:
            self._beaker = self._outer()
        return self._beaker

    def _fresh(self) -> Container:
        return self._outer()

    def _key(self, name: str) -> str:
        return ENVIRON_PREFIX + name

    def sign_in(self, user: SignedInUser, now: float, tokens: Optional[Tokens] = None) -> None:
        user = self._ending_previous_sign_in(user, now)
        outer = self._data
        if self._belongs_to_someone_else(outer, user):
            self._invalidate(outer)
        else:
            with contextlib.suppress(AttributeError):  # a cookie session: replaced whole, nothing to fixate
                outer.regenerate_id()
        outer[self._key("user")] = self._bound(user)
        outer[self._key("last_seen")] = now
        if tokens is not None:
            outer[self._key("tokens")] = asdict(tokens)
        self._tokens, self._tokens_read = tokens, True
        self._dirty = True

    def _belongs_to_someone_else(self, outer: Container, user: SignedInUser) -> bool:
        """True when the outer session holds a user record of another ``sub`` (or one we cannot read)."""
        record = outer.get(self._key("user"))
        if record is None:
            return False  # an anonymous visitor's session: the data is theirs, now the user's
        claims = record.get("claims") if isinstance(record, dict) else None
        return not isinstance(claims, dict) or claims.get("sub") != user.sub

    @staticmethod
    def _invalidate(outer: Container) -> None:
        """Empty the outer session under a new id, deleting its old record where the outer store has one."""
        session = _beaker_session(outer)
        namespace = getattr(session, "namespace", None)
        if not isinstance(session, CookieSession) and namespace is not None and not session.is_new:
            try:
                namespace.remove()  # Beaker's invalidate() leaves the old record (and its data) behind
            except OSError as exc:
                raise StoreUnavailable(f"outer session store: {exc.strerror or type(exc).__name__}") from None
        session.invalidate()  # Session: cleared, new id; CookieSession: cleared, new _id
        outer.save()  # for a SessionObject: persist it (under the new id) at the end of the request
        log.info("sso: another user signs in; the previous user's session data was discarded")

    def _discard(self) -> None:
        outer = self._loaded()
        if outer is not None and self._key("user") in outer:
            outer.delete()
            session = _beaker_session(outer)
            if isinstance(session, CookieSession):  # delete() drops its _id: the app would fail reading .id
                session.invalidate()
        self._beaker = None
        self._dirty = False

    def commit(self) -> list[tuple[str, str]]:
        if self._dirty and self._beaker is not None:
            self._beaker.save()  # marks it for the outer middleware to persist
            self._dirty = False
        return list(self.headers)
