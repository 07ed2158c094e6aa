"""Sealed records (:mod:`sso_middleware._sealing`): forged, copied, oversized and foreign records: the attacks.

The attacker here can write to the shared store (Redis, memcached, PostgreSQL's table, or
the file store's folder) and has an account at the provider, but does not know ``session_secret``.  Every
test plants what such an attacker would, through a raw client (not our namespace
managers), and checks that nobody is signed in by it, nothing is decoded before its seal
is verified, and no request fails with a 500.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import stat
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable, Optional

import memcache
import pytest
import redis
import webtest
from beaker.middleware import SessionMiddleware

from sso_middleware import ConfigError, SSOConfig, SSOMiddleware
from sso_middleware._sealing import (
    MAX_RECORD_BYTES,
    MAX_SESSION_JSON_BYTES,
    BoundedJsonSerializer,
    RecordSeal,
    record_prefix,
)
from sso_middleware._session.state import TOKENS_PREFIX, SessionStore, SignedInUser
from sso_middleware._wsgi.transactions import Transaction, TransactionCookies
from sso_middleware.stores.index import index_key

from ..conftest import SESSION_SECRET, browser_for, legacy_app
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider
from ..integration.test_stores import COOKIE, SideEffect, app_view, armed_pickle, no_traceback, session_id, sign_in
from ..postgres_server import PostgresServer
from ..store_servers import StoreServer

Browser = webtest.TestApp

@pytest.fixture
def provider() -> FakeProvider:
    """The fake provider, where the attacker, mallory, has an account of his own."""
    fake = FakeProvider()
    fake.users["mallory"] = {"sub": "mallory", "name": "Mallory Example", "email": "mallory@example.com"}
    return fake


def config_for(**overrides: Any) -> SSOConfig:
    base = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "base_url": BASE_URL,
            "session_secret": SESSION_SECRET}
    return SSOConfig(**{**base, **overrides})


@pytest.fixture
def server(shared_server: Any) -> Any:
    """The shared-store attacks hold on every shared store: Redis, memcached and PostgreSQL."""
    return shared_server


@pytest.fixture(params=["redis", "memcached", "postgresql", "file"])
def store_kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings of each server-side store, with a ``plant(record_id, text_or_bytes)`` and a ``read`` for raw access."""
    if request.param == "file":
        folder = tmp_path / "sessions"

        def path(record_id: str) -> Path:
            return folder / "container_file" / record_id[0] / record_id[:2] / f"{record_id}.cache"

        def plant_file(record_id: str, value: Any) -> None:
            path(record_id).parent.mkdir(parents=True, exist_ok=True)
            path(record_id).write_bytes(value if isinstance(value, bytes) else value.encode())

        yield {"settings": {"session_data_dir": str(folder)}, "plant": plant_file,
               "read": lambda record_id: path(record_id).read_bytes(), "kind": "file"}
        return
    running: Any = PostgresServer() if request.param == "postgresql" else StoreServer(request.param)
    running.start()
    try:
        # No outage here: a generous timeout, so that a loaded machine is not a store failure.
        settings = {"session_type": running.session_type, "session_url": running.url, "session_store_timeout": 5.0}

        def plant(record_id: str, value: Any) -> None:
            raw_plant(running, record_id, value)

        yield {"settings": settings, "plant": plant, "read": lambda record_id: raw_get(running, record_id),
               "kind": request.param, "server": running}
    finally:
        running.close()


def raw_name(server: Any, record_id: str, key: str = "session", config: Optional[SSOConfig] = None) -> str:
    """Where a record lives in the server (the application's key prefix is no secret on a Redis one can list)."""
    if server.kind == "postgresql":  # a row's key; whether it is a record or an index is its kind
        return f"{record_prefix(config or config_for())}:{record_id}"
    name = f"{record_prefix(config or config_for())}:{record_id}:{key}"
    return name if server.kind == "redis" else hashlib.sha256(name.encode()).hexdigest()


def raw_plant(server: Any, record_id: str, value: Any, key: str = "session") -> None:
    if server.kind == "postgresql":
        text = value.decode() if isinstance(value, bytes) else value
        server.plant(raw_name(server, record_id), text, kind="index" if key == "index" else "record")
    elif server.kind == "redis":
        redis.Redis(port=server.port).set(raw_name(server, record_id, key), value, ex=600)
    else:
        client = memcache.Client([server.url])
        text = value.decode() if isinstance(value, bytes) else value  # text, as the middleware writes it
        assert client.set(raw_name(server, record_id, key), text, time=600)
        client.disconnect_all()


def raw_get(server: Any, record_id: str) -> Optional[bytes]:
    if server.kind == "postgresql":
        text = server.record(raw_name(server, record_id))
        return None if text is None else text.encode()
    if server.kind == "redis":
        value = redis.Redis(port=server.port).get(raw_name(server, record_id))
        return None if value is None else bytes(value)
    found = server.memcached_get(raw_name(server, record_id))
    return None if found is None else found[1]


def forged_session(sub: str, now: float) -> str:
    """A session record in Beaker's format (base64 of zlib of JSON), as the running version writes its fields."""
    user: dict[str, Any] = {"claims": {"sub": sub, "email": f"{sub}@example.com"}, "connection": None,
                            "id_token": "h.p.s", "signed_in_at": now}
    names = {field.name for field in dataclasses.fields(SignedInUser)}
    if "issuer" in names:  # the attacker writes whatever fields the running version expects
        user.update(issuer=ISSUER, client_id=CLIENT_ID)
    data = {"user": user, "last_seen": now, "_creation_time": now, "_accessed_time": now}
    return base64.b64encode(zlib.compress(json.dumps(data).encode())).decode()


@contextlib.contextmanager
def inflations() -> Iterator[list[int]]:
    """Counts every zlib inflation meanwhile (and refuses it: nothing planted gets decoded)."""
    seen: list[int] = []
    real_decompress, real_decompressobj = zlib.decompress, zlib.decompressobj

    def spy_decompress(data: bytes, *args: Any, **kwargs: Any) -> bytes:
        seen.append(len(data))
        raise zlib.error("the test refuses to inflate")

    def spy_decompressobj(*args: Any, **kwargs: Any) -> Any:
        seen.append(-1)
        return real_decompressobj(*args, **kwargs)

    zlib.decompress, zlib.decompressobj = spy_decompress, spy_decompressobj  # type: ignore[assignment]
    try:
        yield seen
    finally:
        zlib.decompress, zlib.decompressobj = real_decompress, real_decompressobj  # type: ignore[assignment]


def deletion_cookie(response: webtest.TestResponse) -> Optional[str]:
    for header in response.headers.getall("Set-Cookie"):
        if header.startswith(f"{COOKIE}="):
            return str(header)
    return None


# -- the unknown-cookie answer: no signed id to plant under ---------------------------------


def test_an_unknown_cookie_is_answered_with_an_empty_deletion_cookie(make_browser: Callable[..., Browser]) -> None:
    browser = make_browser()
    browser.set_cookie(COOKIE, "0" * 40 + "f" * 32)
    response = browser.get("/page")
    assert response.json["remote_user"] is None
    header = deletion_cookie(response)
    assert header is not None
    value, *attributes = [part.strip() for part in header.split(";")]
    assert value == f"{COOKIE}=", header  # empty: no freshly signed session id
    lowered = {part.split("=", 1)[0].lower(): part.split("=", 1)[-1] for part in attributes}
    assert lowered["max-age"] == "0"
    assert parsedate_to_datetime(lowered["expires"]).timestamp() < time.time()
    assert lowered["path"] == "/"
    assert {"httponly", "secure", "samesite"} <= set(lowered) and lowered["samesite"].lower() == "lax"
    assert "domain" not in lowered  # host-only, like the session cookie


# -- forged, copied and oversized session records -------------------------------------------


@pytest.mark.parametrize("id_source", ["unknown-cookie-answer", "own-session"])
def test_a_forged_session_record_signs_nobody_in(make_browser: Callable[..., Browser], provider: FakeProvider,
                                                 server: StoreServer, id_source: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    browser = make_browser(session_type=server.session_type, session_url=server.url, session_store_timeout=0.5)
    if id_source == "own-session":
        sign_in(browser, provider, user="mallory")  # the attacker's own account: a validly signed id
        cookie = browser.cookies[COOKIE]
    else:
        browser.set_cookie(COOKIE, "0" * 40 + "f" * 32)
        answer = deletion_cookie(browser.get("/page"))
        assert answer is not None
        cookie = answer.split(";", 1)[0].split("=", 1)[1] or "0" * 40 + "f" * 32  # nothing signed: his own guess
    planted_id = cookie[40:]
    raw_plant(server, planted_id, forged_session("alice", time.time()))
    browser.set_cookie(COOKIE, cookie)
    with inflations() as inflated:
        response = browser.get("/page")
    assert response.status_int == 200
    assert response.json["remote_user"] is None, "a planted record signed the attacker in"
    assert inflated == [], "the forged record was decoded before its seal was checked"
    header = deletion_cookie(response)
    assert header is not None and header.split(";", 1)[0] == f"{COOKIE}="  # the cookie is cleared
    no_traceback(caplog)


def test_a_sealed_record_copied_to_another_session_is_refused(make_middleware: Callable[..., SSOMiddleware],
                                                              provider: FakeProvider,
                                                              store_kind: dict[str, Any]) -> None:
    middleware = make_middleware(**store_kind["settings"])
    alice, mallory = browser_for(middleware), browser_for(middleware)
    sign_in(alice, provider, user="alice")
    sign_in(mallory, provider, user="mallory")
    store_kind["plant"](session_id(mallory), store_kind["read"](session_id(alice)))
    assert app_view(mallory)["remote_user"] is None, "alice's record, copied under mallory's id, was accepted"
    assert app_view(alice)["remote_user"] == "alice"  # the original still works


def test_a_session_record_never_reads_as_a_token_record(make_middleware: Callable[..., SSOMiddleware],
                                                        provider: FakeProvider, store_kind: dict[str, Any]) -> None:
    middleware = make_middleware(**store_kind["settings"], keep_access_token=True)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    beaker = middleware.store.backend
    assert beaker is not None
    tokens_id = TOKENS_PREFIX + session_id(browser)
    assert beaker.read_record(tokens_id) is not None  # the control
    store_kind["plant"](tokens_id, store_kind["read"](session_id(browser)))
    assert beaker.read_record(tokens_id) is None, "a session record was read as a token record"


def test_an_oversized_record_is_refused_before_any_decompression(make_browser: Callable[..., Browser],
                                                                 provider: FakeProvider, store_kind: dict[str, Any],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    browser = make_browser(**store_kind["settings"])
    sign_in(browser, provider, user="mallory")
    # A zlib bomb a little over the size limit: about 300 MiB of JSON once inflated.
    squeeze = zlib.compressobj(9)
    chunks = [squeeze.compress(b'{"user": "') ]
    chunks += [squeeze.compress(b"A" * (1 << 20)) for _ in range(300)]
    chunks.append(squeeze.flush())
    bomb = base64.b64encode(b"".join(chunks)).decode()
    assert MAX_RECORD_BYTES < len(bomb) < 2 * MAX_RECORD_BYTES
    store_kind["plant"](session_id(browser), bomb)
    started = time.perf_counter()
    with inflations() as inflated:
        response = browser.get("/page")
    elapsed = time.perf_counter() - started
    assert response.status_int == 200 and response.json["remote_user"] is None
    assert inflated == [], "the oversized record reached decompression"
    assert elapsed < 2.0
    no_traceback(caplog)


def test_a_sealed_payload_that_would_inflate_too_far_is_refused(make_middleware: Callable[..., SSOMiddleware],
                                                                 provider: FakeProvider, store_kind: dict[str, Any],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Defence in depth: even a record sealed with the right key is inflated with a bound."""
    middleware = make_middleware(**store_kind["settings"])
    browser = browser_for(middleware)
    sign_in(browser, provider)
    squeeze = zlib.compressobj(9)
    bomb = squeeze.compress(b'{"a": "' + b"A" * (64 << 20)) + squeeze.flush()  # 64 MiB in about 64 KB
    text = base64.b64encode(bomb).decode()
    assert len(text) < MAX_RECORD_BYTES
    beaker = middleware.store.backend
    assert beaker is not None
    # Sealed by our own code, as the session record the cookie names.
    assert beaker.write_record(session_id(browser), text, 600, existing=True, kind="session")
    tracemalloc.start()
    try:
        response = browser.get("/page")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_int == 200 and response.json["remote_user"] is None
    assert peak < MAX_SESSION_JSON_BYTES + 8 * 2**20, f"{peak / 2**20:.0f} MiB at peak: the inflation was not bounded"
    no_traceback(caplog)


def test_the_bounded_serializer_round_trips_and_stops_a_bomb() -> None:
    serializer = BoundedJsonSerializer()
    assert serializer.loads(serializer.dumps({"user": {"sub": "alice"}})) == {"user": {"sub": "alice"}}
    bomb = zlib.compress(b'{"a": "' + b"A" * (4 * MAX_SESSION_JSON_BYTES) + b'"}')
    with pytest.raises(ValueError):
        serializer.loads(bomb)
    with pytest.raises(ValueError):
        serializer.loads(zlib.compress(b'{"a": 1}')[:-3])  # truncated


# -- token and index records ---------------------------------------------------------------


def test_a_planted_token_record_is_ignored(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider,
                                           store_kind: dict[str, Any]) -> None:
    middleware = make_middleware(**store_kind["settings"], keep_access_token=True)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    beaker = middleware.store.backend
    assert beaker is not None
    tokens_id = TOKENS_PREFIX + session_id(browser)
    forged = json.dumps({"access_token": "forged-token", "refresh_token": "forged-refresh"})
    if store_kind["kind"] == "file":
        store_kind["plant"](tokens_id, json.dumps({"session": forged}))  # JSON, as sealing would hold it
    else:
        store_kind["plant"](tokens_id, forged)
    assert beaker.read_record(tokens_id) is None, "a planted token record was read"
    assert app_view(browser)["remote_user"] == "alice"


def plant_index_member(store_kind: dict[str, Any], index_id: str, member: str) -> None:
    """Add ``member`` to an index record the way each store holds it, bypassing our code."""
    kind = store_kind["kind"]
    if kind == "file":
        path = Path(store_kind["settings"]["session_data_dir"]) / "index" / index_id
        with open(path, "a") as handle:
            handle.write(member + "\n")
        return
    server: Any = store_kind["server"]
    if kind == "postgresql":  # one row per member
        server.plant(raw_name(server, index_id), "", kind="index", member=member)
    elif kind == "redis":
        redis.Redis(port=server.port).sadd(raw_name(server, index_id, "index"), member)
    else:
        found = server.memcached_get(raw_name(server, index_id, "index"))
        assert found is not None
        raw_plant(server, index_id, json.dumps([member]), key="index")


def test_a_planted_index_member_ends_no_one_else(make_middleware: Callable[..., SSOMiddleware],
                                                 provider: FakeProvider, store_kind: dict[str, Any]) -> None:
    """Planting bob's id in mallory's index must not let a logout of mallory's end bob's session."""
    middleware = make_middleware(**store_kind["settings"])
    bob, mallory = browser_for(middleware), browser_for(middleware)
    sign_in(bob, provider, user="bob")
    sign_in(mallory, provider, user="mallory")
    plant_index_member(store_kind, index_key("sub:mallory"), session_id(bob))
    middleware.store.end_sessions(None, "mallory", time.time())
    assert app_view(bob)["remote_user"] == "bob", "a planted index member ended another user's session"


# -- the file store --------------------------------------------------------------------------


def test_an_explicit_world_writable_session_folder_is_refused(settings: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "shared-sessions"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(ConfigError) as caught:
        SSOMiddleware(legacy_app, **{**settings, "session_data_dir": str(folder)})
    assert caught.value.setting == "session_data_dir"


def test_a_session_folder_under_a_world_writable_parent_is_refused(settings: dict[str, Any], tmp_path: Path) -> None:
    parent = tmp_path / "open"
    parent.mkdir()
    parent.chmod(0o777)
    with pytest.raises(ConfigError) as caught:
        SSOMiddleware(legacy_app, **{**settings, "session_data_dir": str(parent / "sessions")})
    assert caught.value.setting == "session_data_dir"
    # A sticky parent (like /tmp) is fine, and the missing folder is created private.
    parent.chmod(0o1777)
    SSOMiddleware(legacy_app, **{**settings, "session_data_dir": str(parent / "sessions")})
    assert stat.S_IMODE(os.lstat(parent / "sessions").st_mode) == 0o700


def test_an_explicit_folder_readable_by_others_is_closed(settings: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    SSOMiddleware(legacy_app, **{**settings, "session_data_dir": str(folder)})
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700


def test_a_pickle_planted_in_the_file_store_is_never_unpickled(make_browser: Callable[..., Browser],
                                                               provider: FakeProvider, settings: dict[str, Any],
                                                               tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    browser = make_browser()
    sign_in(browser, provider, user="mallory")
    sid = session_id(browser)
    record = Path(settings["session_data_dir"]) / "container_file" / sid[0] / sid[:2] / f"{sid}.cache"
    assert record.exists()
    marker = tmp_path / "unpickled"
    record.write_bytes(armed_pickle(marker, 4))
    response = browser.get("/page")
    assert response.status_int == 200 and response.json["remote_user"] is None
    assert not marker.exists(), "the planted pickle was unpickled"
    assert SideEffect  # (the payload's class)
    no_traceback(caplog)


def test_a_fifo_planted_under_a_record_name_neither_hangs_nor_signs_in(make_browser: Callable[..., Browser],
                                                                       provider: FakeProvider,
                                                                       settings: dict[str, Any],
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Opening a FIFO for reading blocks until a writer comes: the worker would hang on this session."""
    browser = make_browser()
    sign_in(browser, provider)
    sid = session_id(browser)
    record = Path(settings["session_data_dir"]) / "container_file" / sid[0] / sid[:2] / f"{sid}.cache"
    record.unlink()
    os.mkfifo(record, 0o600)
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(browser.get("/page")), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the worker so the test run can end, then fail
        with open(record, "wb"):
            pass
        pytest.fail("a planted FIFO hung the request")
    assert outcome[0].status_int == 200 and outcome[0].json["remote_user"] is None
    no_traceback(caplog)


# -- two applications sharing a secret ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["redis", "memcached", "postgresql", "file", "cookie"])
def test_two_apps_sharing_a_secret_do_not_accept_each_others_sessions(make_middleware: Callable[..., SSOMiddleware],
                                                                       provider: FakeProvider, tmp_path: Path,
                                                                       kind: str) -> None:
    running: Any = None
    if kind in ("redis", "memcached"):
        running = StoreServer(kind).start()
    elif kind == "postgresql":
        running = PostgresServer().start()
    try:
        if running is not None:
            shared: dict[str, Any] = {"session_type": running.session_type, "session_url": running.url}
        elif kind == "file":
            shared = {"session_data_dir": str(tmp_path / "shared")}
        else:
            shared = {"session_type": "cookie"}
        app_a = browser_for(make_middleware(**shared))
        sign_in(app_a, provider)
        assert app_view(app_a)["remote_user"] == "alice"
        app_b = browser_for(make_middleware(**shared, client_id="app1-client"))
        app_b.set_cookie(COOKIE, app_a.cookies[COOKIE])
        assert app_view(app_b)["remote_user"] is None, "app B accepted app A's session"
    finally:
        if running is not None:
            running.close()


STATE_1 = "S" * 43  # the shape of the states we issue


def test_transaction_cookies_of_two_apps_sharing_a_secret_differ() -> None:
    # One base_url, so one cookie name: only the app-bound key tells them apart.
    a, b = TransactionCookies(config_for()), TransactionCookies(config_for(client_id="app1-client"))
    transaction = Transaction(nonce="n", code_verifier="v" * 43, target_url="/", connection=None, prompt=None,
                              expires_at=time.time() + 600)
    headers = a.issue(STATE_1, transaction, "", time.time())
    cookie = "; ".join(value.split(";", 1)[0] for name, value in headers if name == "Set-Cookie")
    assert a.redeem(STATE_1, cookie, time.time())[0] is not None  # the control
    assert b.redeem(STATE_1, cookie, time.time())[0] is None


def test_a_stored_user_of_another_client_is_no_session(provider: FakeProvider, make_middleware: Callable[..., Any],
                                                       tmp_path: Path) -> None:
    """The environ store: two middlewares inside one outer session; each sees only its own user."""
    outer_options = {"session.type": "file", "session.data_dir": str(tmp_path / "outer"), "session.key": "outer",
                     "session.secure": True, "session.httponly": True, "session.data_serializer": "json"}
    app_a = make_middleware(session_type="environ")
    browser = webtest.TestApp(SessionMiddleware(app_a, outer_options),
                              extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"})
    sign_in(browser, provider)
    assert app_view(browser)["remote_user"] == "alice"
    app_b = make_middleware(session_type="environ", client_id="app1-client")
    other = webtest.TestApp(SessionMiddleware(app_b, outer_options),
                            extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"})
    other.set_cookie("outer", browser.cookies["outer"])
    assert app_view(other)["remote_user"] is None, "app B accepted a user signed in for app A"


def test_a_stored_user_without_its_application_is_no_session(settings: dict[str, Any]) -> None:
    """A user record without issuer and client (an older version's) is no session."""
    store = SessionStore(SSOConfig(**settings))
    session = store.open({})
    session.sign_in(SignedInUser(claims={"sub": "alice"}, connection=None, id_token="h.p.s",
                                 signed_in_at=time.time()), time.time())
    headers = session.commit()
    cookie = next(value.split(";", 1)[0] for name, value in headers if name == "Set-Cookie")
    reopened = store.open({"HTTP_COOKIE": cookie})
    assert reopened.stored_user() is not None  # the control
    container = reopened._loaded()
    for field in ("issuer", "client_id"):
        container["user"].pop(field, None)
    assert reopened.stored_user() is None


# -- the seal itself -----------------------------------------------------------------------------


def test_the_seal_binds_kind_key_payload_and_application() -> None:
    seal = RecordSeal.for_config(config_for())
    sealed = seal.seal("session", "k1", "payload")
    assert seal.open("session", "k1", sealed) == "payload"
    assert seal.open("session", "k1", sealed.encode()) == "payload"
    assert seal.open("tokens", "k1", sealed) is None
    assert seal.open("session", "k2", sealed) is None
    assert seal.open("session", "k1", sealed[:-1] + "X") is None
    assert seal.open("session", "k1", "payload") is None
    assert seal.open("session", "k1", sealed.replace("1.", "2.", 1)) is None
    assert seal.open("session", "k1", "1." + "é" * 43 + ".x") is None
    assert seal.open("session", "k1", None) is None
    other = RecordSeal.for_config(config_for(client_id="app1-client"))
    assert other.open("session", "k1", sealed) is None
    other_issuer = RecordSeal.for_config(config_for(issuer="https://other.example/"))
    assert other_issuer.open("session", "k1", sealed) is None
    with pytest.raises(ValueError):
        seal.seal("session", "k1", "x" * MAX_RECORD_BYTES)


def test_an_oversized_value_is_refused_before_its_mac_is_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    seal = RecordSeal.for_config(config_for())
    computed: list[int] = []
    monkeypatch.setattr(RecordSeal, "_mac", lambda self, *args: computed.append(1) or b"")
    assert seal.open("session", "k", b"1." + b"A" * MAX_RECORD_BYTES) is None
    assert computed == []


def test_an_explicit_folder_may_be_a_link_to_a_private_folder_of_ours(settings: dict[str, Any],
                                                                       tmp_path: Path) -> None:
    target = tmp_path / "real-sessions"
    target.mkdir(mode=0o700)
    link = tmp_path / "sessions"
    link.symlink_to(target)
    SSOMiddleware(legacy_app, **{**settings, "session_data_dir": str(link)})
    # ...but not to a folder others can write to.
    target.chmod(0o777)
    with pytest.raises(ConfigError):
        SSOMiddleware(legacy_app, **{**settings, "session_data_dir": str(link)})
