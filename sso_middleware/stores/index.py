"""The sid/sub index: which sessions a back-channel logout ends, over any back end's index records.

A sign-in joins two index records: its provider session (``sid``, or ``nosid:<sub>``
when the ID token had none) and its user (``sub``).  A logout token names a ``sid``,
a ``sub`` or both (Back-Channel Logout 1.0 section 2.4), and every session of the
indexes it names is deleted, with its side records.

Security caveat: index ids are hashes of the ``sid``/``sub`` (never the values
themselves in a key), and a back end's index records are sealed like every other
record, so an entry planted by someone able to write to the store is ignored.
"""

from __future__ import annotations

import hashlib
from typing import Optional

from .backend import SessionBackend

#: Prefix of the records that map a provider ``sid``/``sub`` to session ids.
INDEX_PREFIX = "sso-index-"


def index_key(key: str) -> str:
    """The index record id of a logout key (``sid:...``, ``nosid:...``, ``sub:...``)."""
    return INDEX_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:40]


def session_keys(sid: Optional[str], sub: str) -> list[str]:
    """The logout keys a session answers to: its ``sid`` (``nosid:<sub>`` when the ID token had none), its ``sub``."""
    return [f"sid:{sid}" if sid else f"nosid:{sub}", f"sub:{sub}"]


def logout_keys(sid: Optional[str], sub: Optional[str]) -> list[str]:
    """The logout keys a logout token ends: its ``sid`` (and that user's sessions without one), or its ``sub``.

    With a ``sid`` and a ``sub``, that user's sessions whose ID token had no ``sid`` end too, never a
    session of another ``sid``.
    """
    if not sid:
        return [f"sub:{sub}"]
    return [f"sid:{sid}", f"nosid:{sub}"] if sub else [f"sid:{sid}"]


def remember(backend: SessionBackend, sid: Optional[str], sub: str, session_id: str, ttl: int) -> None:
    """Index a new sign-in so a back-channel logout can find it."""
    for key in session_keys(sid, sub):
        backend.index_add(index_key(key), session_id, ttl)


def end_index(backend: SessionBackend, index_id: str, companions: tuple[str, ...] = ()) -> list[str]:
    """Delete every session of an index, then those ids from the index; the ids ended.

    ``companions``: prefixes of the side records that go with a session
    (``<prefix><session id>``, e.g. its tokens).  Idempotent, so a provider retrying
    after a store outage completes the job: the index is only read before the
    sessions are deleted, and trimmed after.
    """
    members = list(backend.index_members(index_id))
    for session_id in members:
        for prefix in companions:
            backend.delete_record(prefix + session_id)
        backend.delete_record(session_id)
    if members:
        backend.index_remove(index_id, members)
    return members


def end_sessions(backend: SessionBackend, sid: Optional[str], sub: Optional[str],
                 companions: tuple[str, ...] = ()) -> int:
    """End the sessions a logout token names (see :func:`logout_keys`); how many were found."""
    ended: set[str] = set()
    for key in logout_keys(sid, sub):
        ended.update(end_index(backend, index_key(key), companions))
    return len(ended)
