"""The signed-in user and the pending sign-ins, kept in a Beaker session.

:class:`SessionStore` is built once per middleware and opens one
:class:`SSOSession` per request.  The Beaker session behind it is created
lazily: a request without the session cookie never touches the store, and a
signed-in request reads it once and writes nothing unless something changed
(the idle-timeout stamp is refreshed at most every ``STAMP_INTERVAL`` seconds
instead of Beaker's rewrite-on-every-request ``timeout``).

What is stored (JSON-serializable, Beaker's ``json`` serializer):

* ``transactions``: ``{state: {...}}``, one per sign-in in flight (several
  tabs may sign in at once), each with its nonce, PKCE verifier, target,
  connection, prompt and expiry; popped (single use) by the callback.
* ``user``: the claims, the connection signed in through, the sign-in time
  and the ID token (kept as the logout hint).
* ``last_seen``: the idle-timeout stamp.

Security caveats: the session id changes when a user signs in (fixation
defence: the old id is deleted server-side) and sign-out deletes the data
server-side, not just the cookie.  The cookie is HttpOnly, SameSite=Lax,
signed with ``session_secret``, and Secure whenever ``base_url`` is https.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

from beaker.session import Session

from .config import SSOConfig
from .errors import ConfigError

log = logging.getLogger("sso_middleware")

#: Most sign-ins one browser session may have in flight; older ones are dropped.
MAX_TRANSACTIONS = 8
#: Seconds between two sweeps of abandoned session files (per process).
SWEEP_INTERVAL = 600.0


@dataclass(frozen=True)
class Transaction:
    """One sign-in in flight, keyed by its ``state``."""

    nonce: str
    code_verifier: str
    target_url: str
    connection: Optional[str]
    prompt: Optional[str]
    expires_at: float


@dataclass(frozen=True)
class SignedInUser:
    """The user of a session."""

    claims: dict[str, Any]
    connection: Optional[str]
    id_token: str
    signed_in_at: float


class SessionStore:
    """Opens the per-request :class:`SSOSession` over the configured Beaker store."""

    def __init__(self, config: SSOConfig) -> None:
        self.config = config
        self.cookie_name = config.session_cookie_name
        self.stamp_interval = min(60.0, config.session_idle_timeout / 10)
        data_dir = config.data_dir
        _prepare_data_dir(data_dir, private=not config.session_data_dir)
        self.beaker_options: dict[str, Any] = {
            "type": config.session_type,
            "data_dir": data_dir,
            "lock_dir": os.path.join(data_dir, "locks"),
            "key": self.cookie_name,
            "secret": config.session_secret,
            "httponly": True,
            "secure": config.secure_cookies,
            "samesite": "Lax",
            "cookie_domain": config.cookie_domain or None,
            "cookie_path": "/",
            "data_serializer": "json",
            "invalidate_corrupt": True,
            "cookie_expires": True,
        }
        self._sweep_lock = threading.Lock()
        self._next_sweep = 0.0

    def session_created(self, now: float) -> None:
        """Called when a new session is stored: sweep abandoned ones now and then, off the request path.

        Beaker's file store never removes records, and every anonymous visit to
        ``/auth/sso`` stores one (its sign-in transaction), so without a sweep
        abandoned records would fill the disk.
        """
        with self._sweep_lock:
            if now < self._next_sweep:
                return
            self._next_sweep = now + SWEEP_INTERVAL
        config = self.config
        idle = max(config.session_idle_timeout, config.transaction_ttl) + self.stamp_interval + 60
        thread = threading.Thread(
            target=sweep_file_store,
            args=(config.data_dir, now - idle),
            name="sso-session-sweep",
            daemon=True,
        )
        thread.start()

    def open(self, environ: dict[str, Any]) -> SSOSession:
        """The session of this request; nothing is read until it is needed."""
        return SSOSession(self, own_cookie(environ.get("HTTP_COOKIE", ""), self.cookie_name))

    def beaker_session(self, cookie_header: str) -> Session:
        return Session({"cookie": cookie_header}, **self.beaker_options)


def _prepare_data_dir(data_dir: str, private: bool) -> None:
    """Create the file store's folder; the default one (in the shared temp dir) must be ours alone.

    Sessions hold ID tokens, so another local user must not be able to read them
    or to pre-create the (predictable) default folder for us to write into.
    """
    try:
        if private:
            os.makedirs(os.path.dirname(data_dir), mode=0o700, exist_ok=True)
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError("session_data_dir", f"cannot create {data_dir!r}: {exc.strerror}") from None
    if private:
        for folder in (os.path.dirname(data_dir), data_dir):
            info = os.lstat(folder)
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022:
                # Ours, readable by others but never writable by them (so nothing can have been
                # planted inside): an older version or a umask left it open; close it.
                os.chmod(folder, 0o700)
                info = os.lstat(folder)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
                raise ConfigError(
                    "session_data_dir",
                    f"the default session folder {folder!r} is not a private (0700) folder of this user; "
                    "remove it or set session_data_dir",
                )
    if not os.access(data_dir, os.W_OK):
        raise ConfigError("session_data_dir", f"{data_dir!r} is not writable")


def sweep_file_store(data_dir: str, before: float) -> int:
    """Delete session records and lock files not written since ``before``.

    A live session is written at least every ``stamp_interval`` while in use, so
    an old record is an idle one; Beaker recreates a lock file when it needs it.
    Symbolic links are never followed.  Returns how many files were removed;
    errors (a file already gone) are ignored.
    """
    removed = 0
    for folder in (os.path.join(data_dir, "container_file"), os.path.join(data_dir, "locks")):
        if os.path.islink(folder):
            log.warning("sso: %s is a symbolic link; not sweeping it", folder)
            continue
        for root, _dirs, files in os.walk(folder):
            for name in files:
                path = os.path.join(root, name)
                try:
                    info = os.lstat(path)
                    if stat.S_ISREG(info.st_mode) and info.st_mtime < before:
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
    whole header when any cookie in it is malformed by its rules (a JSON value,
    a space, a stray quote), and cookies of sibling applications on the parent
    domain must not sign our users out.
    """
    for part in cookie_header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            return f"{name}={value}" if value else ""
    return ""


class SSOSession:
    """One request's view of the session: the user, the sign-ins in flight, and what to write back."""

    def __init__(self, store: SessionStore, cookie_header: str) -> None:
        self._store = store
        self._cookie_header = cookie_header
        self._beaker: Optional[Session] = None
        self._dirty = False
        self._cookie_out: Optional[str] = None  # the Set-Cookie value to send, if any

    # -- reading -----------------------------------------------------------

    def _loaded(self) -> Optional[Session]:
        """The session the cookie names (read once), or None when there is none stored."""
        if self._beaker is None and self._cookie_header:
            beaker = self._store.beaker_session(self._cookie_header)
            self._cookie_header = ""
            if beaker.is_new:
                # The cookie names no stored session (expired, deleted, swept): never adopt a
                # client-supplied id, and clear the cookie so the lookup is not repeated.
                beaker.delete()
                self._cookie_out = str(beaker.request["cookie_out"])
            else:
                self._beaker = beaker
        return self._beaker

    @property
    def _data(self) -> Session:
        """The session to write to: the stored one, or a new one with a fresh id."""
        beaker = self._loaded()
        if beaker is None:
            beaker = self._beaker = self._store.beaker_session("")
        return beaker

    def stored_user(self) -> Optional[SignedInUser]:
        """The user recorded in the session, expired or not (logout still needs the ID token)."""
        beaker = self._loaded()
        record = beaker.get("user") if beaker is not None else None
        if not isinstance(record, dict):
            return None
        try:
            return SignedInUser(**record)
        except TypeError:
            log.warning("sso: discarding a session with an unreadable user record")
            self.sign_out()
            return None

    def current_user(self, now: float) -> Optional[SignedInUser]:
        """The signed-in user, or None; an expired session is signed out here."""
        user = self.stored_user()
        if user is None:
            return None
        config = self._store.config
        data = self._data
        last_seen = data.get("last_seen", user.signed_in_at)
        if now - user.signed_in_at > config.session_absolute_timeout or now - last_seen > config.session_idle_timeout:
            log.info("sso: session expired; signing out")
            self.sign_out()
            return None
        if now - last_seen > self._store.stamp_interval:
            data["last_seen"] = now
            self._dirty = True
        return user

    # -- sign-ins in flight -------------------------------------------------

    def add_transaction(self, state: str, transaction: Transaction, now: float) -> None:
        pending = {
            key: value
            for key, value in self._transactions().items()
            if isinstance(value, dict) and value.get("expires_at", 0) > now
        }
        while len(pending) >= MAX_TRANSACTIONS:
            oldest = min(pending, key=lambda key: pending[key].get("expires_at", 0))
            del pending[oldest]
        pending[state] = asdict(transaction)
        self._data["transactions"] = pending
        self._dirty = True

    def pop_transaction(self, state: str, now: float) -> Optional[Transaction]:
        """The transaction for ``state`` (removed: single use), or None if unknown or expired."""
        pending = self._transactions()
        record = pending.pop(state, None)
        if record is None:
            return None
        self._data["transactions"] = pending
        self._dirty = True
        try:
            transaction = Transaction(**record)
        except TypeError:
            return None
        return transaction if transaction.expires_at > now else None

    def _transactions(self) -> dict[str, Any]:
        beaker = self._loaded()
        pending = beaker.get("transactions") if beaker is not None else None
        return dict(pending) if isinstance(pending, dict) else {}

    # -- signing in and out -------------------------------------------------

    def sign_in(self, user: SignedInUser, now: float) -> None:
        """Store the user under a new session id; the old id is deleted server-side."""
        keep = {"transactions": self._transactions()}
        self._discard()
        fresh = self._data
        fresh.update(keep)
        fresh["user"] = asdict(user)
        fresh["last_seen"] = now
        self._dirty = True

    def sign_out(self) -> None:
        """Delete the session server-side and expire the cookie."""
        self._discard()

    def _discard(self) -> None:
        beaker = self._loaded()
        if beaker is not None:
            if not beaker.is_new:
                beaker.namespace.remove()  # delete the stored record itself, not just its contents
            beaker.delete()
            self._cookie_out = str(beaker.request["cookie_out"])
        self._beaker = None
        self._dirty = False

    # -- writing back -------------------------------------------------------

    def commit(self) -> list[tuple[str, str]]:
        """Persist changes; the headers (``Set-Cookie``) to add to the response."""
        beaker = self._beaker
        if self._dirty and beaker is not None:
            created = beaker.is_new
            beaker.save()
            self._dirty = False
            if created:
                self._cookie_out = str(beaker.request["cookie_out"])
                self._store.session_created(time.time())
        if self._cookie_out is None:
            return []
        return [("Set-Cookie", self._cookie_out.strip())]
