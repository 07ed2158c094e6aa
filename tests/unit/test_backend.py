"""The protocol itself (:mod:`sso_middleware.stores.backend`): its members, and who implements them."""

from __future__ import annotations

from typing import Any

import pytest

from sso_middleware import SSOConfig
from sso_middleware.stores import SessionBackend
from sso_middleware.stores.backend import protocol_members, stamp_interval
from sso_middleware.stores.registry import SESSION_TYPES

from ..custom_backend import DictBackend, NotABackend


def test_the_protocol_lists_flags_checks_sessions_records_index_and_lock() -> None:
    members = protocol_members()
    for name in ("keeps_records", "shared_lock", "validate", "probe", "prepare", "session_created",
                 "may_have_session", "open_session", "new_session", "save_session", "session_cookie",
                 "delete_session", "deletion_cookie", "read_record", "write_record", "delete_record",
                 "index_add", "index_members", "index_remove", "acquire", "release"):
        assert name in members
    assert not any(name.startswith("_") for name in members)


@pytest.mark.parametrize("cls", [*SESSION_TYPES.values(), DictBackend])
def test_every_back_end_class_has_every_member(cls: type[Any]) -> None:
    assert [name for name in protocol_members() if not hasattr(cls, name)] == []


def test_an_object_is_checked_by_its_members(settings: dict[str, Any]) -> None:
    assert isinstance(DictBackend(SSOConfig(**settings)), SessionBackend)
    assert not isinstance(NotABackend(), SessionBackend)


@pytest.mark.parametrize(("idle", "interval"), [(86400, 60.0), (600, 60.0), (300, 30.0), (60, 6.0)])
def test_the_idle_stamp_is_written_at_most_once_a_minute(idle: float, interval: float) -> None:
    assert stamp_interval(idle) == interval
