"""SessionStore / SSOSession directly: sign-in and sign-out, timeouts, what is stored and how."""

from __future__ import annotations

import base64
import json
import os
import pickle
import zlib
from typing import Any

import pytest

from sso_middleware import ConfigError, SSOConfig
from sso_middleware.session import SessionStore, SignedInUser, SSOSession, own_cookie

NOW = 1_700_000_000.0


@pytest.fixture
def store(settings: dict[str, Any]) -> SessionStore:
    return SessionStore(SSOConfig(**settings))


def user(sub: str = "alice", signed_in_at: float = NOW) -> SignedInUser:
    return SignedInUser(claims={"sub": sub, "email": f"{sub}@example.com"}, connection="c",
                        id_token="header.payload.signature", signed_in_at=signed_in_at)


def reopen(store: SessionStore, headers: list[tuple[str, str]], previous: str = "") -> tuple[SSOSession, str]:
    """The next request's session, sending back the cookie set by ``headers`` (or the previous one)."""
    cookie = previous
    for name, value in headers:
        if name == "Set-Cookie":
            cookie = value.split(";", 1)[0]
    return store.open({"HTTP_COOKIE": cookie} if cookie else {}), cookie


def session_files(store: SessionStore) -> list[str]:
    """The session records (not the back-channel logout index records)."""
    from sso_middleware.session import INDEX_PREFIX

    root_dir = os.path.join(store.config.data_dir, "container_file")
    return sorted(os.path.join(root, name) for root, _dirs, names in os.walk(root_dir) for name in names
                  if not name.startswith(INDEX_PREFIX))


def all_files(store: SessionStore) -> list[str]:
    return sorted(os.path.join(root, name) for root, _dirs, names in os.walk(store.config.data_dir) for name in names)


# -- lazy opening --------------------------------------------------------------


def test_a_session_without_cookie_reads_and_writes_nothing(store: SessionStore) -> None:
    session = store.open({})
    assert session.current_user(NOW) is None
    assert session.stored_user() is None
    assert session.commit() == []
    assert all_files(store) == []


def test_signing_out_nobody_writes_nothing(store: SessionStore) -> None:
    session = store.open({})
    session.sign_out()
    assert session.commit() == []
    assert all_files(store) == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("", "", id="none"),
        pytest.param("sso_session=abc", "sso_session=abc", id="alone"),
        pytest.param('a={"x": 1}; sso_session=abc; b=c d', "sso_session=abc", id="among-odd-cookies"),
        pytest.param("sso_session=abc; sso_session=def", "sso_session=abc", id="first-wins"),
        pytest.param(" sso_session = abc ", "sso_session=abc", id="spaces"),
        pytest.param("xsso_session=abc; sso_session_old=def", "", id="similar-names"),
        pytest.param("sso_session=", "", id="empty-value"),
        pytest.param("sso_session", "", id="no-equals"),
    ],
)
def test_only_our_cookie_is_handed_to_beaker(header: str, expected: str) -> None:
    assert own_cookie(header, "sso_session") == expected


# -- sign-in and sign-out ------------------------------------------------------


def test_sign_in_stores_the_user_under_a_new_id_and_removes_the_old_record(store: SessionStore) -> None:
    session = store.open({})
    session.sign_in(user("bob"), NOW)
    first, old_cookie = reopen(store, session.commit())
    (old_file,) = session_files(store)
    assert first.current_user(NOW) == user("bob")
    first.sign_in(user(), NOW)
    headers = first.commit()
    second, new_cookie = reopen(store, headers)
    assert new_cookie != old_cookie
    assert second.current_user(NOW + 1) == user()
    # The old record is gone from the store.
    assert old_file not in session_files(store)
    assert len(session_files(store)) == 1
    assert reopen(store, [], old_cookie)[0].current_user(NOW + 1) is None


def test_sign_out_removes_the_record_and_expires_the_cookie(store: SessionStore) -> None:
    session = store.open({})
    session.sign_in(user(), NOW)
    current, cookie = reopen(store, session.commit())
    assert session_files(store) != []
    assert current.current_user(NOW) is not None
    current.sign_out()
    (header,) = current.commit()
    name, value = header
    assert name == "Set-Cookie"
    assert value.startswith("__Host-sso_session=") and "expires=" in value.lower()
    assert session_files(store) == []
    assert reopen(store, [], cookie)[0].current_user(NOW) is None


def test_an_unreadable_user_record_signs_out(store: SessionStore) -> None:
    session = store.open({})
    session.sign_in(user(), NOW)
    current, cookie = reopen(store, session.commit())
    current._data["user"] = {"claims": {"sub": "alice"}}  # fields missing
    current._dirty = True
    current.commit()
    broken, _ = reopen(store, [], cookie)
    assert broken.current_user(NOW) is None
    assert any("expires=" in value.lower() for _, value in broken.commit())
    assert session_files(store) == []


@pytest.mark.parametrize(
    ("elapsed", "signed_in"),
    [
        pytest.param(0, True, id="fresh"),
        pytest.param(86400, True, id="exactly-idle-limit"),
        pytest.param(86401, False, id="idle"),
    ],
)
def test_idle_timeout(store: SessionStore, elapsed: float, signed_in: bool) -> None:
    session = store.open({})
    session.sign_in(user(), NOW)
    current, _ = reopen(store, session.commit())
    assert (current.current_user(NOW + elapsed) is not None) is signed_in


def test_absolute_timeout_ignores_activity(settings: dict[str, Any]) -> None:
    store = SessionStore(SSOConfig(**settings, session_idle_timeout=100, session_absolute_timeout=250))
    session = store.open({})
    session.sign_in(user(), NOW)
    _, cookie = reopen(store, session.commit())
    for now in (NOW + 90, NOW + 180, NOW + 250):
        current, _ = reopen(store, [], cookie)
        assert current.current_user(now) is not None
        current.commit()
    current, _ = reopen(store, [], cookie)
    assert current.current_user(NOW + 251) is None


def test_the_idle_stamp_is_written_at_most_once_per_interval(settings: dict[str, Any]) -> None:
    store = SessionStore(SSOConfig(**settings, session_idle_timeout=300))
    assert store.stamp_interval == 30
    session = store.open({})
    session.sign_in(user(), NOW)
    _, cookie = reopen(store, session.commit())
    (path,) = session_files(store)
    mtime = os.stat(path).st_mtime_ns
    quiet, _ = reopen(store, [], cookie)
    quiet.current_user(NOW + 30)
    assert quiet.commit() == []
    assert os.stat(path).st_mtime_ns == mtime
    stamped, _ = reopen(store, [], cookie)
    stamped.current_user(NOW + 31)
    assert stamped.commit() == []
    assert stored_record(path)["last_seen"] == NOW + 31


def test_default_stamp_interval_is_a_minute(store: SessionStore) -> None:
    assert store.stamp_interval == 60


# -- what is stored, and how ---------------------------------------------------


def stored_record(path: str) -> dict[str, Any]:
    with open(path, "rb") as handle:
        container = pickle.load(handle)  # Beaker's file container (its own format)
    record: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(container["session"])))
    return record


def test_session_data_is_stored_as_json_not_pickle(store: SessionStore) -> None:
    assert store.beaker.options["data_serializer"] == "json"
    session = store.open({})
    session.sign_in(user(), NOW)
    session.commit()
    (path,) = session_files(store)
    record = stored_record(path)
    assert record["user"]["id_token"] == "header.payload.signature"


def test_the_signed_in_user_record(store: SessionStore) -> None:
    session = store.open({})
    session.sign_in(user(), NOW)
    session.commit()
    (path,) = session_files(store)
    record = stored_record(path)
    assert record["user"] == {"claims": {"sub": "alice", "email": "alice@example.com"}, "connection": "c",
                              "id_token": "header.payload.signature", "signed_in_at": NOW, "sid": None,
                              "auth_time": None, "acr": None}
    assert record["last_seen"] == NOW


def test_store_files_are_private(store: SessionStore) -> None:
    assert os.stat(store.config.data_dir).st_mode & 0o077 == 0


def test_beaker_options(store: SessionStore) -> None:
    options = store.beaker.options
    assert options["httponly"] is True
    assert options["samesite"] == "Lax"
    assert options["secure"] is True
    assert options["key"] == "__Host-sso_session"
    assert options["cookie_expires"] is True
    assert "timeout" not in options  # the idle timeout is kept by us, without a write per request


def test_an_unwritable_data_dir_fails_at_construction(settings: dict[str, Any], tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError) as caught:
        SessionStore(SSOConfig(**{**settings, "session_data_dir": str(blocker / "sessions")}))
    assert caught.value.setting == "session_data_dir"


def test_sweep_removes_idle_records_and_locks_and_never_follows_links(tmp_path) -> None:
    import os
    import time

    from sso_middleware.session import sweep_file_store

    now = time.time()
    records = tmp_path / "container_file" / "a" / "ab"
    locks = tmp_path / "locks" / "e" / "e6"
    records.mkdir(parents=True)
    locks.mkdir(parents=True)
    old_record, fresh_record = records / "old.cache", records / "fresh.cache"
    old_lock, fresh_lock = locks / "old.lock", locks / "fresh.lock"
    for path in (old_record, fresh_record, old_lock, fresh_lock):
        path.write_text("x")
    for path in (old_record, old_lock):
        os.utime(path, (now - 5000, now - 5000))
    # A link planted inside points at someone else's old file: it must survive.
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    os.utime(victim, (now - 5000, now - 5000))
    (records / "link.cache").symlink_to(victim)

    removed = sweep_file_store(str(tmp_path), before=now - 1000)

    assert removed == 2
    assert not old_record.exists() and not old_lock.exists()
    assert fresh_record.exists() and fresh_lock.exists() and victim.exists()


def test_sweep_refuses_a_linked_store_folder(tmp_path) -> None:
    import os
    import time

    from sso_middleware.session import sweep_file_store

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "old").write_text("x")
    os.utime(elsewhere / "old", (1, 1))
    store = tmp_path / "store"
    store.mkdir()
    (store / "container_file").symlink_to(elsewhere)
    assert sweep_file_store(str(store), before=time.time()) == 0
    assert (elsewhere / "old").exists()


def test_new_sessions_trigger_at_most_one_sweep_per_interval(tmp_path, monkeypatch) -> None:
    from sso_middleware import session as session_module
    from sso_middleware.config import SSOConfig
    from sso_middleware.session import SessionStore

    calls = []
    monkeypatch.setattr(session_module, "sweep_file_store", lambda *args: calls.append(args))
    store = SessionStore(SSOConfig(issuer="https://op.example/", client_id="c", client_secret="s",
                                   base_url="https://app.example", session_secret="x" * 32,
                                   session_data_dir=str(tmp_path)))
    store.session_created(1000.0)
    store.session_created(1001.0)
    store.session_created(1000.0 + session_module.SWEEP_INTERVAL + 1)
    for thread in __import__("threading").enumerate():
        if thread.name == "sso-session-sweep":
            thread.join(5)
    assert len(calls) == 2
    data_dir, before, index_before = calls[0]
    assert data_dir == str(tmp_path)
    assert index_before < before < 1000.0 - 86400


def test_default_data_dir_is_private_and_refused_when_not(tmp_path, monkeypatch) -> None:
    import os
    import stat

    import pytest

    from sso_middleware.config import SSOConfig
    from sso_middleware.errors import ConfigError
    from sso_middleware.session import SessionStore

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    config = SSOConfig(issuer="https://op.example/", client_id="c", client_secret="s",
                       base_url="https://app.example", session_secret="x" * 32)
    SessionStore(config)
    for folder in (os.path.dirname(config.data_dir), config.data_dir):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    # Ours, only readable by others (an older version, a umask): closed again.
    os.chmod(config.data_dir, 0o755)
    SessionStore(config)
    assert stat.S_IMODE(os.stat(config.data_dir).st_mode) == 0o700
    # Writable by others: something may have been planted inside; refused.
    os.chmod(config.data_dir, 0o777)
    with pytest.raises(ConfigError):
        SessionStore(config)
    os.chmod(config.data_dir, 0o700)
    # Not a folder of ours (here: a symlink planted in its place): refused.
    os.rename(config.data_dir, str(tmp_path / "elsewhere"))
    os.symlink(str(tmp_path / "elsewhere"), config.data_dir)
    with pytest.raises(ConfigError) as refused:
        SessionStore(config)
    assert refused.value.setting == "session_data_dir"
