"""``session_type`` to back end (:mod:`sso_middleware.stores.registry`): built-in names, ``module:Class``, objects."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sso_middleware import ConfigError, SSOConfig
from sso_middleware.stores import (
    CookieBackend,
    EnvironBackend,
    FileBackend,
    MemcachedBackend,
    PostgresBackend,
    RedisBackend,
    SessionBackend,
)
from sso_middleware.stores.registry import SESSION_TYPES, backend_for, resolve, type_name

from ..custom_backend import DictBackend

PACKAGE = Path(__file__).resolve().parents[2] / "sso_middleware"
URLS = {"ext:redis": "redis://127.0.0.1:1/0", "ext:memcached": "127.0.0.1:1",
        "postgresql": "postgresql://app:pw@127.0.0.1:1/sso"}


@pytest.mark.parametrize(("name", "cls", "keeps_records", "shared_lock"), [
    ("file", FileBackend, True, True),
    ("ext:redis", RedisBackend, True, True),
    ("ext:memcached", MemcachedBackend, True, True),
    ("postgresql", PostgresBackend, True, True),
    ("cookie", CookieBackend, False, False),
    ("environ", EnvironBackend, False, False),
])
def test_each_built_in_name_builds_its_back_end(settings: dict[str, Any], name: str, cls: type[Any],
                                                 keeps_records: bool, shared_lock: bool) -> None:
    config = SSOConfig(**settings, session_type=name, session_url=URLS.get(name, ""))
    backend = backend_for(config)  # no connection is made
    assert type(backend) is cls and isinstance(backend, SessionBackend)
    assert (backend.keeps_records, backend.shared_lock) == (keeps_records, shared_lock)


def test_the_built_in_names_are_the_documented_ones() -> None:
    assert list(SESSION_TYPES) == ["file", "ext:redis", "ext:memcached", "postgresql", "cookie", "environ"]


def test_module_and_class_text_is_imported(settings: dict[str, Any]) -> None:
    assert resolve("tests.custom_backend:DictBackend") is DictBackend
    backend = backend_for(SSOConfig(**settings, session_type="tests.custom_backend:DictBackend"))
    assert type(backend) is DictBackend


def test_a_class_is_built_and_an_object_is_used_as_it_is(settings: dict[str, Any]) -> None:
    built = backend_for(SSOConfig(**settings, session_type=DictBackend))
    assert type(built) is DictBackend
    assert backend_for(SSOConfig(**settings, session_type=DictBackend)) is not built  # one per configuration user
    given = DictBackend(SSOConfig(**settings))
    assert backend_for(SSOConfig(**settings, session_type=given)) is given


@pytest.mark.parametrize("value", [
    "tests.custom_backend:NotABackend",
    "tests.custom_backend:HalfABackend",
    "tests.custom_backend:NoSuchClass",
    "no_such_module_here:Backend",
    "tests.custom_backend",  # no class named
    42,
    object(),
    str,
])
def test_anything_else_is_refused_naming_session_type(settings: dict[str, Any], value: Any) -> None:
    with pytest.raises(ConfigError) as refused:
        SSOConfig(**settings, session_type=value)
    assert refused.value.setting == "session_type"


def test_a_refusal_says_what_is_missing() -> None:
    with pytest.raises(ConfigError) as refused:
        resolve("tests.custom_backend:HalfABackend")
    assert "index_add" in str(refused.value) and "index_remove" in str(refused.value)
    assert "read_record" not in str(refused.value)  # it has that one


def test_type_name_for_messages(settings: dict[str, Any]) -> None:
    assert type_name("ext:redis") == "ext:redis"
    assert type_name(DictBackend) == "tests.custom_backend:DictBackend"
    assert type_name(DictBackend(SSOConfig(**settings))) == "tests.custom_backend:DictBackend"


def test_no_module_outside_stores_asks_which_store_it_is() -> None:
    """The registry is the one place that maps a store's name to its behaviour."""
    asking = re.compile(r"session_type\s*(==|!=|\bin\b|\bnot in\b)|\.kind\s*(==|!=|\bin\b)|searchable|server_side")
    found = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
             for path in PACKAGE.rglob("*.py") if "stores" not in path.relative_to(PACKAGE).parts
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if asking.search(line)]
    assert found == []
