"""The sid/sub index over any back end (:mod:`sso_middleware.stores.index`), here the in-memory test back end."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from sso_middleware import SSOConfig
from sso_middleware.stores import StoreUnavailable
from sso_middleware.stores.index import end_index, end_sessions, index_key, logout_keys, remember, session_keys

from ..custom_backend import DictBackend


@pytest.fixture
def backend(settings: dict[str, Any]) -> DictBackend:
    return DictBackend(SSOConfig(**settings))


@pytest.mark.parametrize(("sid", "sub", "keys"), [
    ("s1", "alice", ["sid:s1", "nosid:alice"]),  # and alice's sessions whose ID token had no sid
    ("s1", None, ["sid:s1"]),
    (None, "alice", ["sub:alice"]),
])
def test_what_a_logout_token_ends(sid: Optional[str], sub: Optional[str], keys: list[str]) -> None:
    assert logout_keys(sid, sub) == keys


def test_what_a_session_answers_to() -> None:
    assert session_keys("s1", "alice") == ["sid:s1", "sub:alice"]
    assert session_keys(None, "alice") == ["nosid:alice", "sub:alice"]


def test_index_ids_are_hashes_never_the_values() -> None:
    assert index_key("sid:s1").startswith("sso-index-") and "s1" not in index_key("sid:s1")
    assert index_key("sid:s1") != index_key("sub:s1")


def seed(backend: DictBackend, session_id: str, sid: Optional[str], sub: str) -> None:
    assert backend.write_record(session_id, "a session", 600, kind="session")
    assert backend.write_record(f"sso-tokens-{session_id}", "tokens", 600)
    remember(backend, sid, sub, session_id, 600)


def test_a_sid_ends_its_sessions_and_the_users_without_a_sid_never_another_sid(backend: DictBackend) -> None:
    seed(backend, "one", "s1", "alice")
    seed(backend, "two", None, "alice")
    seed(backend, "three", "s2", "alice")
    assert end_sessions(backend, "s1", "alice", ("sso-tokens-",)) == 2
    assert backend.read_record("one", kind="session") is None and backend.read_record("sso-tokens-one") is None
    assert backend.read_record("two", kind="session") is None
    assert backend.read_record("three", kind="session") == "a session"
    end_sessions(backend, None, "alice")  # every session of alice's
    assert backend.read_record("three", kind="session") is None


def test_ending_is_idempotent_and_completes_after_an_outage(backend: DictBackend) -> None:
    seed(backend, "one", "s1", "alice")
    seed(backend, "two", "s1", "alice")
    original = backend.delete_record
    calls: list[str] = []

    def flaky(record_id: str) -> None:
        calls.append(record_id)
        if len(calls) == 2:
            raise StoreUnavailable("dict store: down")
        original(record_id)

    backend.delete_record = flaky  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        end_index(backend, index_key("sid:s1"))
    assert backend.index_members(index_key("sid:s1")) == ["one", "two"]  # not trimmed before the sessions went
    backend.delete_record = original  # type: ignore[method-assign]
    assert end_index(backend, index_key("sid:s1")) == ["one", "two"]  # the provider's retry finishes the job
    assert backend.index_members(index_key("sid:s1")) == []
    assert end_index(backend, index_key("sid:s1")) == []
