"""The hot path's direct reads (:mod:`sso_middleware.stores.direct`) agree with Beaker's, byte for byte.

A second reader of Beaker's cookies and records must accept exactly what Beaker accepts
and refuse exactly what it refuses: every check here compares the direct read with
Beaker's own ``Session`` / ``CookieSession`` on the same input, for real cookies and
records and for mutations of them (hypothesis).
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from typing import Any, Optional

import pytest
from beaker.container import MemoryNamespaceManager
from beaker.session import InvalidSignature, SignedCookie
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sso_middleware import SSOConfig
from sso_middleware._sealing import MAX_SESSION_JSON_BYTES
from sso_middleware._session.state import SessionStore, SignedInUser
from sso_middleware.stores import PrivateFileNamespace
from sso_middleware.stores.direct import StoredSession, decoded, is_signed_id, signed_part
from sso_middleware.stores.file_records import record_path

from ..custom_backend import DictBackend

NOW = 1_700_000_000.0
SECRET = "ab" * 32


def user() -> SignedInUser:
    return SignedInUser(claims={"sub": "alice", "email": "alice@example.com"}, connection="c",
                        id_token="header.payload.signature", signed_in_at=NOW)


def signed_in(store: SessionStore) -> str:
    """A stored sign-in's cookie (``name=value``, as the browser sends it back)."""
    session = store.open({})
    session.sign_in(user(), NOW)
    (header,) = [value for name, value in session.commit() if name == "Set-Cookie"]
    return header.split(";", 1)[0]


def both_reads(store: SessionStore, cookie: str) -> tuple[Optional[dict[str, Any]], Optional[dict[str, Any]]]:
    """The session ``cookie`` names, read directly and by Beaker: its data without Beaker's own keys, or None."""
    backend: Any = store.backend
    found = []
    for direct in (True, False):
        backend.direct_reads = direct
        session = backend.open_session({"HTTP_COOKIE": cookie}, cookie)
        assert direct or not isinstance(session, StoredSession)
        found.append(None if session is None else {k: v for k, v in session.items() if not k.startswith("_")})
    backend.direct_reads = True
    return found[0], found[1]


# -- the signed session id ---------------------------------------------------------------------


@pytest.mark.parametrize("session_id", ["0" * 32, "f" * 32, "0123456789abcdef" * 2])
def test_a_session_id_signed_by_beaker_is_read_back(session_id: str) -> None:
    value = SignedCookie(SECRET).value_encode(session_id)[1]
    assert is_signed_id(value)
    assert signed_part(value, SECRET.encode()) == session_id


@pytest.mark.parametrize("position", [0, 17, 39])
def test_a_changed_signature_is_refused_like_beaker_refuses_it(position: int) -> None:
    value = SignedCookie(SECRET).value_encode("0123456789abcdef" * 2)[1]
    forged = value[:position] + ("0" if value[position] != "0" else "1") + value[position + 1:]
    assert SignedCookie(SECRET).value_decode(forged)[0] is InvalidSignature
    assert signed_part(forged, SECRET.encode()) is None
    assert signed_part(value, b"cd" * 32) is None  # another key's


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        pytest.param("a" * 40 + "b" * 32, True, id="signed-id"),
        pytest.param("A" * 40 + "b" * 32, False, id="upper-case-signature"),
        pytest.param("a" * 40 + "b" * 31, False, id="short"),
        pytest.param("a" * 40 + "b" * 33, False, id="long"),
        pytest.param('"' + "a" * 40 + "b" * 32 + '"', False, id="quoted"),
        pytest.param("a" * 40 + "g" * 32, False, id="not-hex"),
        pytest.param("", False, id="empty"),
    ],
)
def test_only_the_shape_beaker_writes_is_judged_directly(value: str, shape: bool) -> None:
    assert is_signed_id(value) is shape


# -- the record's payload ----------------------------------------------------------------------


def beaker_text(data: Any) -> str:
    return base64.b64encode(zlib.compress(json.dumps(data).encode())).decode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(beaker_text({"user": {}, "last_seen": 1.0}), {"user": {}, "last_seen": 1.0}, id="session"),
        pytest.param(beaker_text({}), None, id="empty-dict"),
        pytest.param(beaker_text([1, 2]), None, id="list"),
        pytest.param(beaker_text(None), None, id="null"),
        pytest.param(beaker_text("text"), None, id="string"),
        pytest.param("not base64 at all!", None, id="not-base64"),
        pytest.param(base64.b64encode(b"not zlib").decode(), None, id="not-zlib"),
        pytest.param("é", None, id="not-ascii"),
        pytest.param(base64.b64encode(zlib.compress(b"{" * 10)).decode(), None, id="not-json"),
        pytest.param(base64.b64encode(zlib.compress(b" " * (MAX_SESSION_JSON_BYTES + 1))).decode(), None,
                     id="decompression-bomb"),
    ],
)
def test_a_records_text_decodes_as_beaker_loads_it(text: str, expected: Optional[dict[str, Any]]) -> None:
    assert decoded(text) == expected


# -- the file store's path ---------------------------------------------------------------------


@pytest.mark.parametrize("record_id", ["0123456789abcdef" * 2, "sso-tokens-" + "a" * 32, "sso-index-sid-x.y", "z",
                                       "a/b.c", "..", "x/"])
def test_a_records_path_is_beakers(tmp_path: Any, record_id: str) -> None:
    namespace = PrivateFileNamespace(record_id, data_dir=str(tmp_path), digest_filenames=False)
    assert record_path(str(tmp_path / "container_file"), record_id) == namespace.file


def test_reading_a_missing_file_record_creates_no_folder(settings: dict[str, Any]) -> None:
    store = SessionStore(SSOConfig(**settings))
    before = sorted(os.walk(store.config.data_dir))
    assert store.backend.read_record("f" * 32, kind="session") is None
    assert sorted(os.walk(store.config.data_dir)) == before


# -- direct and Beaker reads side by side ------------------------------------------------------


@pytest.fixture(params=["file", "cookie"])
def store(request: pytest.FixtureRequest, settings: dict[str, Any]) -> SessionStore:
    return SessionStore(SSOConfig(**settings, session_type=request.param))


def test_a_stored_session_reads_the_same_both_ways(store: SessionStore) -> None:
    cookie = signed_in(store)
    direct, beaker = both_reads(store, cookie)
    assert direct is not None and direct == beaker
    assert direct["user"]["claims"]["sub"] == "alice"


def _mutated(value: str, data: st.DataObject) -> str:
    kind = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate", "quote", "append"]))
    inner = value.strip('"')
    position = data.draw(st.integers(0, len(inner) - 1))
    char = data.draw(st.sampled_from('0123456789abcdefABCDEF+/=_-" '))
    if kind == "replace":
        inner = inner[:position] + char + inner[position + 1:]
    elif kind == "insert":
        inner = inner[:position] + char + inner[position:]
    elif kind == "delete":
        inner = inner[:position] + inner[position + 1:]
    elif kind == "truncate":
        inner = inner[:position]
    elif kind == "append":
        inner = inner + data.draw(st.text("0123456789abcdef=", max_size=8))
    quoted = value.startswith('"') if kind != "quote" else not value.startswith('"')
    return f'"{inner}"' if quoted else inner


@pytest.fixture
def cookie(store: SessionStore) -> str:
    return signed_in(store)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_cookie_is_refused_or_accepted_exactly_as_beaker_does(store: SessionStore, cookie: str,
                                                                       data: st.DataObject) -> None:
    name, _, value = cookie.partition("=")
    mutated = f"{name}={_mutated(value, data)}"
    direct, beaker = both_reads(store, mutated)
    assert direct == beaker


def test_a_record_replaced_under_the_id_reads_the_same_both_ways(settings: dict[str, Any]) -> None:
    store = SessionStore(SSOConfig(**settings))
    victim, other = signed_in(store), signed_in(store)
    path = record_path(os.path.join(store.config.data_dir, "container_file"), other.split("=", 1)[1][40:])
    victim_path = record_path(os.path.join(store.config.data_dir, "container_file"), victim.split("=", 1)[1][40:])
    with open(path, "rb") as source, open(victim_path, "wb") as target:
        target.write(source.read())  # sealed for another record: no session, either way
    assert both_reads(store, victim) == (None, None)


# -- which back ends read directly -------------------------------------------------------------


class _PluggedNamespace(DictBackend):
    """Beaker's sessions in a Beaker namespace of its own: not the records ``read_record`` reads."""

    namespace_class = MemoryNamespaceManager

    def namespace_args(self) -> dict[str, Any]:
        return {}


class _TimedOut(DictBackend):
    """Beaker's own ``timeout`` on: Beaker would expire sessions by its ``_accessed_time``."""

    def beaker_options(self) -> dict[str, Any]:
        return {**super().beaker_options(), "timeout": 600}


@pytest.mark.parametrize(
    ("backend", "direct"),
    [
        pytest.param(DictBackend, True, id="text-records"),
        pytest.param(_PluggedNamespace, False, id="another-beaker-namespace"),
        pytest.param(_TimedOut, False, id="beaker-timeout"),
        pytest.param("file", True, id="file"),
        pytest.param("cookie", True, id="cookie"),
    ],
)
def test_only_back_ends_whose_sessions_are_their_records_read_directly(settings: dict[str, Any], backend: Any,
                                                                       direct: bool) -> None:
    store = SessionStore(SSOConfig(**settings, session_type=backend))
    assert store.backend.direct_reads is direct  # type: ignore[attr-defined]
