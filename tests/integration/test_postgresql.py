"""The PostgreSQL store (:mod:`sso_middleware.stores.postgresql`) against a real PostgreSQL server.

Each test starts its own server (:mod:`tests.postgres_server`: a copy of one ``initdb``
cluster, on a free loopback port, run as ``postgres`` when the tests run as root) and
reads what the middleware wrote with a superuser connection of its own, so the
assertions are about the rows in the table, not about what the back end says it wrote.
The tests every shared store must pass (sealing, records, locks, back-channel logout)
run on PostgreSQL too, from their own modules; here are the ones about this store:
its table, deadlines and sweep, the ``migrate`` command, the doctor's probe, outages
and a server restart under load.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import webtest

from sso_middleware import SSOConfig, SSOMiddleware
from sso_middleware.__main__ import main
from sso_middleware._session.state import TOKENS_PREFIX, SessionStore
from sso_middleware.stores import StoreUnavailable
from sso_middleware.stores.index import index_key
from sso_middleware.stores.postgresql import SWEEP_INTERVAL, PostgresBackend
from sso_middleware.stores.postgresql_pool import TABLE
from sso_middleware.testing import Clock

from ..conftest import browser_for
from ..fakes import FakeProvider
from ..postgres_server import APP_PASSWORD, READER_PASSWORD, READER_USER, PostgresServer
from .test_stores import (
    ABSOLUTE,
    COOKIE,
    IDLE,
    PREFIX,
    app_view,
    decode_record,
    no_traceback,
    session_id,
    sign_in,
    unsealed,
)

Browser = webtest.TestApp


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_settings(pg: PostgresServer) -> dict[str, Any]:
    return {"session_type": "postgresql", "session_url": pg.url, "session_store_timeout": 0.5,
            "session_idle_timeout": IDLE, "session_absolute_timeout": ABSOLUTE}


def key(record_id: str) -> str:
    """A row's key: the application's prefix and the record (or index) id."""
    return f"{PREFIX}:{record_id}"


def backend_of(settings: dict[str, Any], pg_settings: dict[str, Any], **overrides: Any) -> PostgresBackend:
    backend = SessionStore(SSOConfig(**{**settings, **pg_settings, **overrides})).backend
    assert isinstance(backend, PostgresBackend)
    return backend


def table_exists(pg: PostgresServer) -> bool:
    return bool(pg.query("SELECT to_regclass(%s) IS NOT NULL", TABLE)[0][0])


# -- sign-in, reads, the idle stamp, sign-out ---------------------------------------------------------


def test_a_sign_in_is_a_sealed_row_with_its_index_rows(make_browser: Callable[..., Browser], provider: FakeProvider,
                                                       pg: PostgresServer, pg_settings: dict[str, Any]) -> None:
    assert not table_exists(pg)  # created by the first use, below
    browser = make_browser(**pg_settings)
    sign_in(browser, provider)
    assert app_view(browser)["remote_user"] == "alice"
    stored = pg.record(key(session_id(browser)))
    assert stored is not None
    record = decode_record(stored.encode())  # sealed base64 of zlib of JSON: never a pickle
    assert record["user"]["claims"]["sub"] == "alice" and isinstance(record["last_seen"], float)
    left = pg.seconds_left(key(session_id(browser)))
    assert left is not None and IDLE + 180 - 10 <= left <= IDLE + 180
    for name in ("sid:provider-session-1", "sub:alice"):
        members = pg.members(key(index_key(name)))
        assert [unsealed(member.encode()).decode() for member in members] == [session_id(browser)], name
        deadline = pg.query(f"SELECT min(extract(epoch FROM expires_at - now())) FROM {TABLE} "
                            "WHERE kind = 'index' AND key = %s", key(index_key(name)))[0][0]
        assert ABSOLUTE + 180 - 10 <= float(deadline) <= ABSOLUTE + 180, name


def test_a_signed_in_read_writes_nothing_and_the_idle_stamp_moves_the_deadline(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, pg: PostgresServer,
    pg_settings: dict[str, Any],
) -> None:
    clock = Clock()
    browser = browser_for(make_middleware(**pg_settings, clock=clock))
    sign_in(browser, provider)
    row = key(session_id(browser))
    pg.query(f"UPDATE {TABLE} SET expires_at = now() + interval '50 seconds' WHERE key = %s", row)
    written = pg.record(row)
    assert app_view(browser)["remote_user"] == "alice"
    assert pg.record(row) == written  # a read within the stamp interval writes nothing
    left = pg.seconds_left(row)
    assert left is not None and left <= 50
    clock.advance(200)  # past the stamp interval (60 s), within the idle timeout
    assert app_view(browser)["remote_user"] == "alice"
    assert pg.record(row) != written
    left = pg.seconds_left(row)
    assert left is not None and IDLE + 180 - 10 <= left <= IDLE + 180


def test_sign_out_deletes_that_session_s_rows_only(make_middleware: Callable[..., SSOMiddleware],
                                                   provider: FakeProvider, pg: PostgresServer,
                                                   pg_settings: dict[str, Any]) -> None:
    middleware = make_middleware(**pg_settings, keep_access_token=True)
    alice, bob = browser_for(middleware), browser_for(middleware)
    sign_in(alice, provider, "alice")
    sign_in(bob, provider, "bob")
    stolen = alice.cookies[COOKIE]
    alice_id, bob_id = session_id(alice), session_id(bob)
    assert pg.record(key(TOKENS_PREFIX + alice_id)) is not None  # the control
    alice.get("/auth/logout", {"target_url": "/bye"})
    assert pg.record(key(alice_id)) is None and pg.record(key(TOKENS_PREFIX + alice_id)) is None
    assert pg.record(key(bob_id)) is not None
    assert app_view(bob)["remote_user"] == "bob"
    replay = browser_for(middleware)
    replay.set_cookie(COOKIE, stolen)
    assert app_view(replay)["remote_user"] is None


def test_back_channel_logout_deletes_the_sessions_and_index_rows(make_middleware: Callable[..., SSOMiddleware],
                                                                 provider: FakeProvider, pg: PostgresServer,
                                                                 pg_settings: dict[str, Any]) -> None:
    middleware = make_middleware(**pg_settings)
    first, second, bob = browser_for(middleware), browser_for(middleware), browser_for(middleware)
    sign_in(first, provider)
    sign_in(second, provider)
    sign_in(bob, provider, "bob")
    ended = middleware.store.end_sessions(None, "alice", time.time())
    assert ended == 2
    assert app_view(first)["remote_user"] is None and app_view(second)["remote_user"] is None
    assert pg.members(key(index_key("sub:alice"))) == []
    assert app_view(bob)["remote_user"] == "bob"
    assert len(pg.members(key(index_key("sub:bob")))) == 1


# -- deadlines and the sweep ------------------------------------------------------------------------


def test_an_expired_row_is_no_session_and_is_never_brought_back(make_browser: Callable[..., Browser],
                                                                provider: FakeProvider, pg: PostgresServer,
                                                                pg_settings: dict[str, Any],
                                                                settings: dict[str, Any]) -> None:
    browser = make_browser(**pg_settings)
    sign_in(browser, provider)
    record_id = session_id(browser)
    row = key(record_id)
    pg.query(f"UPDATE {TABLE} SET expires_at = now() - interval '1 second' WHERE key = %s", row)
    response = browser.get("/page")
    assert response.json["remote_user"] is None
    assert f"{COOKIE}=;" in response.headers["Set-Cookie"]  # the cookie is cleared
    backend = backend_of(settings, pg_settings)
    assert backend.read_record(record_id, kind="session") is None
    assert backend.write_record(record_id, "text", 600, existing=True, kind="session") is False
    left = pg.seconds_left(row)
    assert left is not None and left < 0  # still expired: the update did not revive it


def test_index_members_past_their_deadline_are_ignored(settings: dict[str, Any], pg: PostgresServer,
                                                       pg_settings: dict[str, Any]) -> None:
    backend = backend_of(settings, pg_settings)
    backend.index_add("sso-index-x", "s1", 600)
    pg.query(f"UPDATE {TABLE} SET expires_at = now() - interval '1 second' WHERE kind = 'index'")
    assert backend.index_members("sso-index-x") == []
    backend.index_add("sso-index-x", "s2", 600)  # a new member does not revive the expired one
    assert backend.index_members("sso-index-x") == ["s2"]


def plant_expired(pg: PostgresServer, count: int, live: int = 0) -> None:
    pg.query(f"INSERT INTO {TABLE} (kind, key, value, expires_at) "
             "SELECT 'record', 'planted:' || n, 'x', now() - interval '1 minute' FROM generate_series(1, %s) n",
             count)
    pg.query(f"INSERT INTO {TABLE} (kind, key, value, expires_at) "
             "SELECT 'record', 'live:' || n, 'x', now() + interval '1 hour' FROM generate_series(1, %s) n", live)


def test_the_sweep_deletes_expired_rows_in_bounded_batches(settings: dict[str, Any], pg: PostgresServer,
                                                           pg_settings: dict[str, Any]) -> None:
    backend = backend_of(settings, pg_settings)
    backend.migrate()
    plant_expired(pg, 25, live=3)
    assert backend.sweep(batch=10, batches=2) == 20  # bounded: the rest waits for the next sweep
    assert pg.rows() == 8
    assert backend.sweep(batch=10, batches=2) == 5
    assert pg.rows() == 3 and pg.query(f"SELECT count(*) FROM {TABLE} WHERE key LIKE 'live:%%'")[0][0] == 3


def wait_for_rows(pg: PostgresServer, count: int) -> bool:
    deadline = time.monotonic() + 10
    while pg.rows() != count and time.monotonic() < deadline:
        time.sleep(0.05)
    return pg.rows() == count


def test_sign_ins_sweep_in_the_background_at_most_once_an_interval(settings: dict[str, Any], pg: PostgresServer,
                                                                   pg_settings: dict[str, Any]) -> None:
    backend = backend_of(settings, pg_settings)
    backend.migrate()
    plant_expired(pg, 5)
    now = time.time()
    backend.session_created(now)
    assert wait_for_rows(pg, 0)
    plant_expired(pg, 5)
    backend.session_created(now + 1)  # within the interval: no sweep
    time.sleep(0.5)
    assert pg.rows() == 5
    backend.session_created(now + SWEEP_INTERVAL + 1)
    assert wait_for_rows(pg, 0)


# -- the table: created on first use, or by migrate -----------------------------------------------


def test_workers_racing_to_create_the_table_all_succeed(settings: dict[str, Any], pg: PostgresServer,
                                                        pg_settings: dict[str, Any]) -> None:
    # Pools of different sizes are different pools: eight workers, each with connections of its own.
    backends = [backend_of(settings, pg_settings, session_pool_size=size) for size in range(1, 9)]
    start, errors = threading.Barrier(len(backends)), []

    def first_write(index: int) -> None:
        try:
            start.wait(10)
            assert backends[index].write_record(f"sso-tokens-{index}", "text", 600)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_write, args=(index,)) for index in range(len(backends))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert table_exists(pg) and pg.rows() == 8


def migrate(capsys: pytest.CaptureFixture[str], tmp_path: Path, settings: dict[str, Any],
            **overrides: Any) -> tuple[int, str, str]:
    path = tmp_path / "sso.json"
    path.write_text(json.dumps({**{name: value for name, value in settings.items() if name != "clock"}, **overrides}))
    code = main(["migrate", "--settings", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_migrate_creates_the_table_once(capsys: pytest.CaptureFixture[str], tmp_path: Path, pg: PostgresServer,
                                        settings: dict[str, Any], pg_settings: dict[str, Any]) -> None:
    code, out, err = migrate(capsys, tmp_path, settings, **pg_settings)
    assert (code, err) == (0, ""), err
    assert out == f"created table {TABLE} at postgresql://sso_app:***@127.0.0.1:{pg.port}/sso\n"
    assert table_exists(pg)
    assert pg.query("SELECT to_regclass(%s) IS NOT NULL", f"{TABLE}_expires_at")[0][0]
    code, out, err = migrate(capsys, tmp_path, settings, **pg_settings)
    assert code == 0 and out.startswith(f"table {TABLE} already exists at "), out
    assert APP_PASSWORD not in out + err


def test_migrate_as_a_role_that_may_not_create_fails_clearly(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                             pg: PostgresServer, settings: dict[str, Any],
                                                             pg_settings: dict[str, Any],
                                                             make_browser: Callable[..., Browser],
                                                             provider: FakeProvider,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    reader = {**pg_settings, "session_url": pg.url_as(READER_USER, READER_PASSWORD)}
    code, out, err = migrate(capsys, tmp_path, settings, **reader)
    assert code == 1 and out == ""
    assert "the session store cannot be changed: postgresql: InsufficientPrivilege" in err, err
    assert READER_PASSWORD not in err and not table_exists(pg)
    # The application running as that role: a clean 503 and a log line that says what to do.
    browser = make_browser(**reader)
    response = browser.get("/auth/sso", {"connection": "Username-Password-Authentication", "target_url": "/"})
    callback = browser.get(provider.authorize(response.location))
    assert "error=session_store_unavailable" in callback.location
    assert "run 'sso-middleware migrate' as its owner" in caplog.text
    # Once the owner has migrated, the same role signs users in (it may use the table, not create it).
    assert migrate(capsys, tmp_path, settings, **pg_settings)[0] == 0
    sign_in(browser, provider)
    assert app_view(browser)["remote_user"] == "alice"
    no_traceback(caplog)


def test_migrate_with_a_store_without_a_schema_does_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                            settings: dict[str, Any]) -> None:
    code, out, err = migrate(capsys, tmp_path, settings, session_type="cookie")
    assert (code, out, err) == (0, "session_type cookie has no schema to create: nothing to do\n", "")


def test_migrate_with_the_server_down_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path, pg: PostgresServer,
                                            settings: dict[str, Any], pg_settings: dict[str, Any]) -> None:
    pg.stop()
    started = time.monotonic()
    code, out, err = migrate(capsys, tmp_path, settings, **pg_settings)
    assert code == 1 and out == "" and "the session store cannot be changed: postgresql:" in err, err
    assert time.monotonic() - started < 5
    assert APP_PASSWORD not in err


# -- the doctor's probe --------------------------------------------------------------------------


def test_the_probe_reports_reachability_the_table_and_privileges(settings: dict[str, Any], pg: PostgresServer,
                                                                 pg_settings: dict[str, Any]) -> None:
    where = f"postgresql://sso_app:***@127.0.0.1:{pg.port}/sso"
    reader_url = pg.url_as(READER_USER, READER_PASSWORD)
    findings = list(backend_of(settings, pg_settings).probe())
    assert [status for status, _ in findings] == ["OK", "INFO"], findings
    assert f"at {where} answers as role sso_app" in findings[0][1]
    assert "does not exist yet: created on first use" in findings[1][1]
    findings = list(backend_of(settings, pg_settings, session_url=reader_url).probe())
    assert findings[1] == ("FAIL", f"postgresql: table {TABLE} does not exist and role sso_reader may not create "
                                   "it in schema public: run 'sso-middleware migrate' as a role that may")
    backend_of(settings, pg_settings).migrate()
    findings = list(backend_of(settings, pg_settings).probe())
    assert findings[1] == ("OK", f"postgresql: table {TABLE} exists; role sso_app may read, write and delete rows")
    pg.query(f"REVOKE DELETE, UPDATE ON {TABLE} FROM {READER_USER}")
    findings = list(backend_of(settings, pg_settings, session_url=reader_url).probe())
    assert findings[1] == ("FAIL", f"postgresql: role sso_reader lacks UPDATE, DELETE on table {TABLE}")
    pg.stop()
    findings = list(backend_of(settings, pg_settings).probe())
    assert len(findings) == 1 and findings[0][0] == "FAIL"
    assert findings[0][1].startswith(f"postgresql at {where} does not answer: postgresql: ")
    for _, message in findings:
        assert APP_PASSWORD not in message and READER_PASSWORD not in message


def test_a_wrong_password_is_a_503_that_shows_no_password(make_browser: Callable[..., Browser], pg: PostgresServer,
                                                          provider: FakeProvider, settings: dict[str, Any],
                                                          pg_settings: dict[str, Any],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    signed_in = make_browser(**pg_settings)
    sign_in(signed_in, provider)
    wrong = {**pg_settings, "session_url": pg.url_as("sso_app", "not-the-Password-42")}
    browser = make_browser(**wrong)
    browser.set_cookie(COOKIE, signed_in.cookies[COOKIE])  # a valid cookie: its record must be read
    page = browser.get("/page", status=503)
    assert "session_store_unavailable" in page.text
    findings = list(backend_of(settings, wrong).probe())
    assert findings[0][0] == "FAIL" and "not-the-Password-42" not in findings[0][1]
    assert "not-the-Password-42" not in caplog.text
    assert "not-the-Password-42" not in repr(SSOConfig(**{**settings, **wrong}))


# -- outages -------------------------------------------------------------------------------------------


def test_a_stopped_server_is_a_clean_503_and_the_sessions_survive_its_return(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, pg: PostgresServer,
    pg_settings: dict[str, Any], caplog: pytest.LogCaptureFixture,
) -> None:
    browser = browser_for(make_middleware(**pg_settings))
    sign_in(browser, provider)
    pg.stop()
    started = time.monotonic()
    page = browser.get("/page", status=503)
    assert time.monotonic() - started < 2
    assert "session_store_unavailable" in page.text and "Traceback" not in page.text
    assert app_view(browser_for(make_middleware(**pg_settings)))["remote_user"] is None  # no cookie: no store
    pg.start()
    deadline = time.monotonic() + 10
    while (response := browser.get("/page", expect_errors=True)).status_int == 503 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert response.status_int == 200 and response.json["remote_user"] == "alice"  # the record survived
    no_traceback(caplog)


def test_a_frozen_server_costs_the_store_timeout_not_a_hung_worker(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, pg: PostgresServer,
    pg_settings: dict[str, Any], caplog: pytest.LogCaptureFixture,
) -> None:
    browser = browser_for(make_middleware(**pg_settings))
    sign_in(browser, provider)
    pg.pause()
    try:
        started = time.monotonic()
        page = browser.get("/page", status=503)
        assert time.monotonic() - started < 1.5
        assert "session_store_unavailable" in page.text
    finally:
        pg.resume()
    assert app_view(browser)["remote_user"] == "alice"
    no_traceback(caplog)


def test_a_restart_nobody_saw_costs_no_request(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider,
                                               pg: PostgresServer, pg_settings: dict[str, Any]) -> None:
    browser = browser_for(make_middleware(**pg_settings))
    sign_in(browser, provider)
    assert app_view(browser)["remote_user"] == "alice"  # the pool now holds open connections
    pg.restart()
    response = browser.get("/page", expect_errors=True)
    assert response.status_int == 200 and response.json["remote_user"] == "alice"


USERS = [f"user{index}" for index in range(8)]


class Load:
    """Threads making signed-in requests, each as its own user, recording (time, status, who answered)."""

    def __init__(self, middleware: SSOMiddleware, provider: FakeProvider) -> None:
        self.browsers = {}
        for user in USERS:
            provider.users[user] = {"sub": user, "name": user, "email": f"{user}@example.com"}
            self.browsers[user] = browser_for(middleware)
            sign_in(self.browsers[user], provider, user)
        self.results: dict[str, list[tuple[float, int, Optional[str], str]]] = {user: [] for user in USERS}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(user,)) for user in USERS]

    def _run(self, user: str) -> None:
        deadline = time.monotonic() + 60  # bounded whatever happens
        while not self.stop.is_set() and time.monotonic() < deadline:
            response = self.browsers[user].get("/page", expect_errors=True)
            who = response.json["remote_user"] if response.status_int == 200 else None
            self.results[user].append((time.monotonic(), response.status_int, who, response.text[:2000]))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def test_a_server_restart_under_load(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider,
                                     pg: PostgresServer, pg_settings: dict[str, Any],
                                     caplog: pytest.LogCaptureFixture) -> None:
    """pg_ctl restarts the server twice while 8 threads make signed-in requests: 503s, never a 500 or a wrong user."""
    middleware = make_middleware(**pg_settings, session_pool_size=4)  # fewer connections than threads
    with Load(middleware, provider) as load:
        time.sleep(1.0)
        restarts = []
        for _ in range(2):
            began = time.monotonic()
            pg.restart()
            restarts.append((began, time.monotonic()))
            time.sleep(1.5)
    results = [(user, *result) for user, outcomes in load.results.items() for result in outcomes]
    statuses = {status for _, _, status, _, _ in results}
    assert statuses <= {200, 503}, statuses  # never a 500
    for user, _, status, who, text in results:
        if status == 200:
            assert who == user, f"{user} was answered as {who}"  # never another user's answer, never anonymous
        else:
            assert "session_store_unavailable" in text
    for user, browser in load.browsers.items():  # every session survived, service resumed
        assert app_view(browser)["remote_user"] == user
        assert load.results[user][-1][1] == 200, f"{user}'s last request during the load failed"
    report = []
    for began, ended in restarts:  # what one restart cost: the 503s from its start to 1.5 s after it
        during = [at for _, at, status, _, _ in results if status == 503 and began <= at <= ended + 1.5]
        window = max(during) - min(during) if during else 0.0
        report.append(f"pg_ctl restart {ended - began:.2f} s: {len(during)} answered 503 over {window:.2f} s")
    print(f"\npostgresql restart under load ({len(USERS)} threads, {len(results)} requests): {'; '.join(report)}")
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()


def test_every_call_reports_an_outage(settings: dict[str, Any], pg: PostgresServer,
                                      pg_settings: dict[str, Any]) -> None:
    """Reads, writes, deletes, the index and the lock all raise StoreUnavailable (never a silent success)."""
    backend = backend_of(settings, pg_settings)
    assert backend.write_record("sso-tokens-1", "text", 600)
    pg.stop()
    calls: list[Callable[[], Any]] = [
        lambda: backend.read_record("sso-tokens-1"),
        lambda: backend.write_record("sso-tokens-1", "text", 600),
        lambda: backend.write_record("sso-tokens-1", "text", 600, existing=True),
        lambda: backend.delete_record("sso-tokens-1"),
        lambda: backend.index_add("sso-index-1", "s1", 600),
        lambda: backend.index_members("sso-index-1"),
        lambda: backend.index_remove("sso-index-1", ["s1"]),
        lambda: backend.acquire("lock", 5),
        backend.sweep,
        backend.migrate,
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            call()
        assert time.monotonic() - started < 1.5
    backend.release("lock", "token")  # a release that cannot be made is left to expire, quietly
