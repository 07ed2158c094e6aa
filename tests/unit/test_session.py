"""SessionStore / SSOSession directly: sign-in and sign-out, timeouts, what is stored and how."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import pytest

from sso_middleware import ConfigError, SSOConfig
from sso_middleware._sealing import BoundedJsonSerializer
from sso_middleware._session.state import SessionStore, SignedInUser, SSOSession, Tokens, own_cookie

from ..fakes import CLIENT_ID, ISSUER
from ..records import file_container, session_data

NOW = 1_700_000_000.0


@pytest.fixture
def store(settings: dict[str, Any]) -> SessionStore:
    return SessionStore(SSOConfig(**settings))


def user(sub: str = "alice", signed_in_at: float = NOW) -> SignedInUser:
    return SignedInUser(claims={"sub": sub, "email": f"{sub}@example.com"}, connection="c",
                        id_token="header.payload.signature", signed_in_at=signed_in_at)


def bound(signed_in: SignedInUser) -> SignedInUser:
    """The user as stored: stamped with the application it was signed in for."""
    return dataclasses.replace(signed_in, issuer=ISSUER, client_id=CLIENT_ID)


def reopen(store: SessionStore, headers: list[tuple[str, str]], previous: str = "") -> tuple[SSOSession, str]:
    """The next request's session, sending back the cookie set by ``headers`` (or the previous one)."""
    cookie = previous
    for name, value in headers:
        if name == "Set-Cookie":
            cookie = value.split(";", 1)[0]
    return store.open({"HTTP_COOKIE": cookie} if cookie else {}), cookie


def session_files(store: SessionStore) -> list[str]:
    """The session records (not the back-channel logout index records)."""
    from sso_middleware.stores import INDEX_PREFIX

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
    assert first.current_user(NOW) == bound(user("bob"))
    first.sign_in(user(), NOW)
    headers = first.commit()
    second, new_cookie = reopen(store, headers)
    assert new_cookie != old_cookie
    assert second.current_user(NOW + 1) == bound(user())
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
    current._loaded()["user"] = {"claims": {"sub": "alice"}}  # fields missing
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
    return session_data(file_container(path)["session"])  # sealed JSON around Beaker's text


def test_session_data_is_stored_as_json_not_pickle(store: SessionStore) -> None:
    assert isinstance(store.backend.options["data_serializer"], BoundedJsonSerializer)  # Beaker's "json", bounded
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
    login_id = record["user"].pop("login_id")
    assert isinstance(login_id, str) and len(login_id) >= 22  # random, one per sign-in (what sign-out revokes)
    assert record["user"] == {"claims": {"sub": "alice", "email": "alice@example.com"}, "connection": "c",
                              "id_token": "header.payload.signature", "signed_in_at": NOW, "sid": None,
                              "auth_time": None, "acr": None, "issuer": "https://op.example/",
                              "client_id": "app2-client", "organization": None}
    assert record["last_seen"] == NOW


def test_store_files_are_private(store: SessionStore) -> None:
    assert os.stat(store.config.data_dir).st_mode & 0o077 == 0


def test_beaker_options(store: SessionStore) -> None:
    options = store.backend.options
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

    from sso_middleware.stores import sweep_file_store

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

    from sso_middleware.stores import sweep_file_store

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
    from sso_middleware._config.settings import SSOConfig
    from sso_middleware._session.state import SessionStore
    from sso_middleware.stores import file as file_module

    calls = []
    monkeypatch.setattr(file_module, "sweep_file_store", lambda *args: calls.append(args))
    store = SessionStore(SSOConfig(issuer="https://op.example/", client_id="c", client_secret="s",
                                   base_url="https://app.example", session_secret="x" * 32,
                                   session_data_dir=str(tmp_path)))
    store.backend.session_created(1000.0)
    store.backend.session_created(1001.0)
    store.backend.session_created(1000.0 + file_module.SWEEP_INTERVAL + 1)
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

    from sso_middleware._config.settings import SSOConfig
    from sso_middleware._session.state import SessionStore
    from sso_middleware.errors import ConfigError

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


# -- tokens (keep_access_token) --------------------------------------------------------------


TOKENS = Tokens(access_token="at-one", expires_at=NOW + 120, refresh_token="rt-one")
NEWER = Tokens(access_token="at-two", expires_at=NOW + 300, refresh_token="rt-two")


@pytest.fixture
def token_store(settings: dict[str, Any]) -> SessionStore:
    return SessionStore(SSOConfig(**settings, keep_access_token=True))


def files_named(store: SessionStore, prefix: str) -> list[str]:
    root_dir = os.path.join(store.config.data_dir, "container_file")
    return sorted(os.path.join(root, name) for root, _dirs, names in os.walk(root_dir) for name in names
                  if name.startswith(prefix))


def user_files(store: SessionStore) -> list[str]:
    from sso_middleware.stores import INDEX_PREFIX, TOKENS_PREFIX

    return [path for path in session_files(store) if not os.path.basename(path).startswith(TOKENS_PREFIX)
            and not os.path.basename(path).startswith(INDEX_PREFIX)]


def token_record(path: str) -> Any:
    return json.loads(file_container(path)["session"])  # the record's value is the JSON text itself


def signed_in_with_tokens(store: SessionStore, tokens: Tokens = TOKENS) -> str:
    session = store.open({})
    session.sign_in(user(), NOW, tokens)
    _, cookie = reopen(store, session.commit())
    return cookie


def test_server_side_tokens_live_in_a_record_of_their_own(token_store: SessionStore) -> None:
    cookie = signed_in_with_tokens(token_store)
    (user_path,) = user_files(token_store)
    session_id = os.path.basename(user_path)[: -len(".cache")]
    (tokens_path,) = files_named(token_store, "sso-tokens-")
    assert os.path.basename(tokens_path) == f"sso-tokens-{session_id}.cache"
    record = token_record(tokens_path)
    assert (record["access_token"], record["expires_at"], record["refresh_token"]) == ("at-one", NOW + 120, "rt-one")
    assert Tokens.from_record(record) == TOKENS
    assert "tokens" not in stored_record(user_path)  # never in the session itself
    current, _ = reopen(token_store, [], cookie)
    assert current.current_user(NOW) == bound(user())
    assert current.tokens() == TOKENS
    assert os.stat(token_store.config.data_dir).st_mode & 0o077 == 0  # inside the private folder


def test_tokens_are_read_once_per_request_and_reloaded_on_demand(token_store: SessionStore) -> None:
    cookie = signed_in_with_tokens(token_store)
    first, _ = reopen(token_store, [], cookie)
    assert first.tokens() == TOKENS
    second, _ = reopen(token_store, [], cookie)
    assert second.store_tokens(NEWER) is True  # another request refreshed them
    assert first.tokens() == TOKENS  # this request's view
    assert first.reload_tokens() == NEWER  # as stored now
    assert first.tokens() == NEWER
    assert reopen(token_store, [], cookie)[0].tokens() == NEWER


def test_storing_tokens_writes_no_session_record(token_store: SessionStore) -> None:
    """A refresh replaces the token record alone: a concurrent request's idle stamp cannot undo it."""
    cookie = signed_in_with_tokens(token_store)
    (user_path,) = user_files(token_store)
    before = os.stat(user_path).st_mtime_ns
    current, _ = reopen(token_store, [], cookie)
    assert current.store_tokens(NEWER)
    assert current.commit() == []
    assert os.stat(user_path).st_mtime_ns == before
    # A request that read the session earlier and writes its idle stamp now keeps the new tokens.
    stale, _ = reopen(token_store, [], cookie)
    stale.current_user(NOW + 3600)
    stale.commit()
    assert reopen(token_store, [], cookie)[0].tokens() == NEWER


def test_storing_no_tokens_removes_the_record(token_store: SessionStore) -> None:
    cookie = signed_in_with_tokens(token_store)
    current, _ = reopen(token_store, [], cookie)
    assert current.store_tokens(None) is True
    assert files_named(token_store, "sso-tokens-") == []
    again, _ = reopen(token_store, [], cookie)
    assert again.current_user(NOW) is not None and again.tokens() is None


def test_tokens_are_never_stored_for_an_ended_session(token_store: SessionStore) -> None:
    cookie = signed_in_with_tokens(token_store)
    refreshing, _ = reopen(token_store, [], cookie)
    assert refreshing.current_user(NOW) is not None
    signing_out, _ = reopen(token_store, [], cookie)
    signing_out.sign_out()
    signing_out.commit()
    assert files_named(token_store, "sso-tokens-") == [] and user_files(token_store) == []
    assert refreshing.store_tokens(NEWER) is False  # the record is not brought back
    refreshing.commit()
    assert files_named(token_store, "sso-tokens-") == [] and user_files(token_store) == []


def test_a_session_without_cookie_has_no_tokens_to_store(token_store: SessionStore) -> None:
    session = token_store.open({})
    assert session.tokens() is None
    assert session.store_tokens(NEWER) is False
    assert session.commit() == []
    assert all_files(token_store) == []


def test_sign_out_removes_the_token_record(token_store: SessionStore) -> None:
    cookie = signed_in_with_tokens(token_store)
    current, _ = reopen(token_store, [], cookie)
    current.sign_out()
    current.commit()
    assert files_named(token_store, "sso-tokens-") == []
    assert session_files(token_store) == []


def test_signing_in_again_replaces_the_token_record(token_store: SessionStore) -> None:
    cookie = signed_in_with_tokens(token_store)
    current, _ = reopen(token_store, [], cookie)
    current.sign_in(user("bob"), NOW + 5, NEWER)
    fresh, _ = reopen(token_store, current.commit())
    (tokens_path,) = files_named(token_store, "sso-tokens-")  # the old session's record went with it
    assert token_record(tokens_path)["access_token"] == "at-two"
    assert fresh.tokens() == NEWER


def test_a_sign_in_without_tokens_writes_no_token_record(token_store: SessionStore) -> None:
    signed_in_with_tokens(token_store, tokens=None)  # type: ignore[arg-type]
    assert files_named(token_store, "sso-tokens-") == []


def test_back_channel_logout_removes_the_token_record(settings: dict[str, Any]) -> None:
    store = SessionStore(SSOConfig(**settings, keep_access_token=True))
    session = store.open({})
    session.sign_in(SignedInUser(claims={"sub": "alice"}, connection=None, id_token="h.p.s", signed_in_at=NOW,
                                 sid="sid-1"), NOW, TOKENS)
    session.commit()
    assert len(files_named(store, "sso-tokens-")) == 1
    assert store.end_sessions("sid-1", None, NOW + 1) == 1
    assert files_named(store, "sso-tokens-") == []
    assert user_files(store) == []


def test_cookie_store_tokens_live_inside_the_session(settings: dict[str, Any]) -> None:
    store = SessionStore(SSOConfig(**settings, keep_access_token=True, session_type="cookie"))
    cookie = signed_in_with_tokens(store)
    current, _ = reopen(store, [], cookie)
    assert current.current_user(NOW) is not None
    assert current.tokens() == TOKENS
    assert Tokens.from_record(current._loaded()["tokens"]) == TOKENS
    assert current.store_tokens(NEWER) is True
    (header,) = current.commit()  # the cookie is rewritten with the new tokens
    assert header[0] == "Set-Cookie"
    assert reopen(store, [header])[0].tokens() == NEWER
    assert reopen(store, [], cookie)[0].tokens() == TOKENS  # the old cookie still holds the old ones


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param('{"access_token": "a", "expires_at": 1.5, "refresh_token": "r"}', Tokens("a", 1.5, "r"),
                     id="json"),
        pytest.param({"access_token": "a"}, Tokens("a"), id="dict-access-token-only"),
        pytest.param('{"access_token": "a", "expires_at": null, "refresh_token": null}', Tokens("a"), id="nulls"),
        pytest.param(None, None, id="missing"),
        pytest.param("", None, id="empty"),
        pytest.param("not json", None, id="not-json"),
        pytest.param("[1, 2]", None, id="json-list"),
        pytest.param('{"expires_at": 1}', None, id="no-access-token"),
        pytest.param('{"access_token": 42}', None, id="access-token-number"),
        pytest.param('{"access_token": "a", "scope": "x"}', None, id="unknown-field"),
        pytest.param(42, None, id="number"),
    ],
)
def test_tokens_from_a_stored_record(record: Any, expected: Any) -> None:
    assert Tokens.from_record(record) == expected


def test_tokens_round_trip_as_json() -> None:
    assert Tokens.from_record(TOKENS.to_json()) == TOKENS
    assert json.loads(TOKENS.to_json())["access_token"] == "at-one"
    failed = Tokens(access_token="", error="refresh_failed")  # keep_session: the reason stays, no token
    assert Tokens.from_record(failed.to_json()) == failed


def test_sweep_keeps_token_records_until_the_absolute_cutoff(tmp_path) -> None:
    import time

    from sso_middleware.stores import sweep_file_store

    now = time.time()
    records = tmp_path / "container_file" / "s" / "ss"
    records.mkdir(parents=True)
    idle_session = records / "0123abcd.cache"
    tokens_recent = records / "sso-tokens-recent.cache"  # older than the idle cutoff, newer than the absolute one
    tokens_ancient = records / "sso-tokens-ancient.cache"
    index_recent = records / "sso-index-recent.cache"
    for path in (idle_session, tokens_recent, tokens_ancient, index_recent):
        path.write_text("x")
    for path in (idle_session, tokens_recent, index_recent):
        os.utime(path, (now - 5000, now - 5000))
    os.utime(tokens_ancient, (now - 50_000, now - 50_000))

    removed = sweep_file_store(str(tmp_path), before=now - 1000, index_before=now - 20_000)

    assert removed == 2
    assert not idle_session.exists() and not tokens_ancient.exists()
    assert tokens_recent.exists() and index_recent.exists()


def test_the_sweep_keeps_a_live_sessions_token_record(settings: dict[str, Any]) -> None:
    """With the cutoffs FileBackend.session_created uses: a recently stamped session's old token record survives."""
    store = SessionStore(SSOConfig(**settings, keep_access_token=True, session_idle_timeout=600,
                                   session_absolute_timeout=86400))
    cookie = signed_in_with_tokens(store)
    (tokens_path,) = files_named(store, "sso-tokens-")
    (user_path,) = user_files(store)
    import time

    now = time.time()
    # The token record was written at sign-in, two hours ago; the session was stamped a minute ago.
    os.utime(tokens_path, (now - 7200, now - 7200))
    os.utime(user_path, (now - 60, now - 60))
    data_dir, before, index_before = (store.config.data_dir, now - 600 - store.stamp_interval - 60,
                                      now - 86400 - 600 - store.stamp_interval - 60)
    from sso_middleware.stores import sweep_file_store

    sweep_file_store(data_dir, before, index_before)
    assert os.path.exists(tokens_path) and os.path.exists(user_path)
    current, _ = reopen(store, [], cookie)
    assert current.tokens() == TOKENS
