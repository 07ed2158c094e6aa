"""StoreLocks: mutual exclusion across threads and processes, bounded waits, expiry.

The shared kinds run against the real thing: ``flock`` on the file store's
folder, and a real ``redis-server`` / ``memcached`` / PostgreSQL on a free loopback port
(:mod:`tests.store_servers`, :mod:`tests.postgres_server`; a missing binary fails the
test, never skips it).
Other processes are real ones (``python -c``) using the same configuration,
like the workers of one deployment; a holder that "dies" is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
import redis

from sso_middleware._config.settings import SSOConfig
from sso_middleware._session.locks import StoreLocks
from sso_middleware.stores import JsonMemcachedNamespace, StoreUnavailable

from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER
from ..postgres_server import PostgresServer
from ..store_servers import StoreServer

SERVERS = ["redis", "memcached", "postgresql"]
SHARED = ["file", *SERVERS]
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Env:
    kind: str
    settings: dict[str, Any]
    server: Optional[Any]  # a StoreServer or a PostgresServer
    data_dir: Path

    def config(self) -> SSOConfig:
        return SSOConfig(**self.settings)

    def locks(self) -> StoreLocks:
        """A StoreLocks of its own: another worker process of the same deployment, as far as sharing goes."""
        return StoreLocks(self.config())


@contextlib.contextmanager
def make_env(kind: str, tmp_path: Path) -> Iterator[Env]:
    server: Optional[Any] = None
    if kind == "postgresql":
        server = PostgresServer().start()
    elif kind in ("redis", "memcached"):
        server = StoreServer(kind).start()
    settings: dict[str, Any] = {
        "issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "base_url": BASE_URL,
        "session_secret": "s" * 40, "session_data_dir": str(tmp_path / "sessions"), "session_store_timeout": 0.5,
    }
    if server is not None:
        settings.update(session_type=server.session_type, session_url=server.url)
    elif kind != "file":
        settings["session_type"] = kind
    try:
        yield Env(kind, settings, server, tmp_path / "sessions")
    finally:
        if server is not None:
            server.close()


@pytest.fixture(params=[*SHARED, "cookie"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    with make_env(request.param, tmp_path) as running:
        yield running


@pytest.fixture(params=SHARED)
def shared_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    with make_env(request.param, tmp_path) as running:
        yield running


@pytest.fixture(params=SERVERS)
def server_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    with make_env(request.param, tmp_path) as running:
        yield running


@pytest.fixture
def file_env(tmp_path: Path) -> Iterator[Env]:
    with make_env("file", tmp_path) as running:
        yield running


@pytest.fixture
def memcached_env(tmp_path: Path) -> Iterator[Env]:
    with make_env("memcached", tmp_path) as running:
        yield running


@pytest.fixture
def redis_env(tmp_path: Path) -> Iterator[Env]:
    with make_env("redis", tmp_path) as running:
        yield running


def close_thread_connections() -> None:
    """python-memcached keeps one connection per thread (its client is a ``threading.local``): close this one's."""
    for client in list(JsonMemcachedNamespace.clients.dict.values()):
        client.disconnect_all()


def lock_name() -> str:
    return "test-" + secrets.token_hex(6)


class Turns:
    """Counts holders inside a critical section; ``overlaps`` > 0 means two were inside at once."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.inside = 0
        self.most = 0
        self.entries = 0
        self.refused = 0

    def enter(self) -> None:
        with self.guard:
            self.inside += 1
            self.entries += 1
            self.most = max(self.most, self.inside)

    def leave(self) -> None:
        with self.guard:
            self.inside -= 1


def run_threads(count: int, target: Any) -> None:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
        finally:
            close_thread_connections()

    threads = [threading.Thread(target=guarded, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    if errors:
        raise errors[0]


class Holder:
    """A thread holding a lock until told to let go."""

    def __init__(self, locks: StoreLocks, name: str, ttl: float = 30.0) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        self.result: Optional[bool] = None
        self.thread = threading.Thread(target=self._run, args=(locks, name, ttl))
        self.thread.start()
        assert self.held.wait(10), "the holder never got the lock"
        assert self.result is True

    def _run(self, locks: StoreLocks, name: str, ttl: float) -> None:
        try:
            with locks.hold(name, ttl=ttl, wait=5) as held:
                self.result = held
                self.held.set()
                self.release.wait(30)
        finally:
            close_thread_connections()

    def let_go(self) -> None:
        self.release.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


# -- what kind of lock ----------------------------------------------------------------


def test_shared_means_across_processes(env: Env) -> None:
    assert env.locks().shared is (env.kind != "cookie")


def test_the_environ_store_lock_is_per_process(tmp_path: Path) -> None:
    settings = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "base_url": BASE_URL,
                "session_secret": "s" * 40, "session_type": "environ"}
    locks = StoreLocks(SSOConfig(**settings))
    assert locks.shared is False
    with locks.hold(lock_name(), ttl=1, wait=0) as held:
        assert held


# -- mutual exclusion --------------------------------------------------------------------


def test_threads_sharing_one_instance_take_turns(env: Env) -> None:
    locks, name, turns = env.locks(), lock_name(), Turns()

    def work(_index: int) -> None:
        for _ in range(3):
            with locks.hold(name, ttl=30, wait=30) as held:
                assert held
                turns.enter()
                time.sleep(0.01)
                turns.leave()

    run_threads(10, work)
    assert (turns.entries, turns.most) == (30, 1)
    assert locks._local == {}  # nothing left behind per name


def test_instances_of_a_shared_store_take_turns(shared_env: Env) -> None:
    """Each thread with a StoreLocks of its own: only the store (flock, Redis, memcached) keeps them apart."""
    name, turns = lock_name(), Turns()
    instances = [shared_env.locks() for _ in range(8)]

    def work(index: int) -> None:
        for _ in range(3):
            with instances[index].hold(name, ttl=30, wait=30) as held:
                assert held
                turns.enter()
                time.sleep(0.01)
                turns.leave()

    run_threads(8, work)
    assert (turns.entries, turns.most) == (24, 1)


def test_different_names_do_not_exclude_each_other(env: Env) -> None:
    locks = env.locks()
    holder = Holder(locks, "name-a")
    try:
        started = time.monotonic()
        with locks.hold("name-b", ttl=5, wait=2) as held:
            assert held
        assert time.monotonic() - started < 1
    finally:
        holder.let_go()


WORKER = r"""
import json, os, sys, time
from sso_middleware._config.settings import SSOConfig
from sso_middleware._session.locks import StoreLocks

settings, log, name, rounds, go = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
locks = StoreLocks(SSOConfig(**settings))
while not os.path.exists(go):
    time.sleep(0.005)
for _ in range(rounds):
    with locks.hold(name, ttl=30, wait=30) as held:
        if not held:
            sys.exit(3)
        with open(log, "a") as out:
            out.write(f"in {os.getpid()}\n")
        time.sleep(0.01)
        with open(log, "a") as out:
            out.write(f"out {os.getpid()}\n")
"""


def python(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_processes_take_turns(shared_env: Env, tmp_path: Path) -> None:
    log, go, name = tmp_path / "log", tmp_path / "go", lock_name()
    workers = [python(WORKER, json.dumps(shared_env.settings), str(log), name, "5", str(go)) for _ in range(4)]
    try:
        time.sleep(0.5)  # let them start (and wait at the gate)
        go.touch()
        for worker in workers:
            _out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err.decode()[-2000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    lines = log.read_text().splitlines()
    assert len(lines) == 4 * 5 * 2
    assert len({line.split()[1] for line in lines}) == 4
    for enter, leave in zip(lines[::2], lines[1::2]):
        assert enter.startswith("in ") and leave == "out " + enter.split()[1], lines  # nobody else in between


# -- bounded waits -------------------------------------------------------------------------


def test_a_wait_that_runs_out_yields_false_in_time(env: Env) -> None:
    name = lock_name()
    holder = Holder(env.locks(), name)
    try:
        for waiter in (env.locks(), env.locks()) if env.kind != "cookie" else ():
            started = time.monotonic()
            with waiter.hold(name, ttl=5, wait=0.3) as held:
                assert held is False
            elapsed = time.monotonic() - started
            assert 0.25 <= elapsed < 0.3 + 0.5, elapsed
    finally:
        holder.let_go()


def test_a_wait_on_the_same_instance_runs_out_in_time(env: Env) -> None:
    locks, name = env.locks(), lock_name()
    holder = Holder(locks, name)
    try:
        started = time.monotonic()
        with locks.hold(name, ttl=5, wait=0.3) as held:
            assert held is False
        assert 0.25 <= time.monotonic() - started < 0.8
        started = time.monotonic()
        with locks.hold(name, ttl=5, wait=0) as held:  # no wait at all
            assert held is False
        assert time.monotonic() - started < 0.2
    finally:
        holder.let_go()
    with locks.hold(name, ttl=5, wait=0) as held:
        assert held  # free again
    assert locks._local == {}


def test_a_waiter_gets_the_lock_as_soon_as_it_is_released(env: Env) -> None:
    locks, name = env.locks(), lock_name()
    waiter = locks if env.kind == "cookie" else env.locks()
    holder = Holder(locks, name)
    threading.Timer(0.3, holder.let_go).start()
    started = time.monotonic()
    with waiter.hold(name, ttl=5, wait=5) as held:
        assert held
    assert 0.25 <= time.monotonic() - started < 1.0


def test_an_exception_in_the_block_releases_the_lock(env: Env) -> None:
    locks, name = env.locks(), lock_name()
    with pytest.raises(RuntimeError), locks.hold(name, ttl=5, wait=1) as held:
        assert held
        raise RuntimeError("the work failed")
    other = locks if env.kind == "cookie" else env.locks()
    with other.hold(name, ttl=5, wait=0) as held:
        assert held
    assert locks._local == {}


# -- holders that die, locks that expire -------------------------------------------------------


HOLD_AND_HANG = r"""
import json, sys, time
from sso_middleware._config.settings import SSOConfig
from sso_middleware._session.locks import StoreLocks

settings, name, ttl = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3])
locks = StoreLocks(SSOConfig(**settings))
with locks.hold(name, ttl=ttl, wait=5) as held:
    print("held" if held else "not held", flush=True)
    time.sleep(600)
"""


def hold_in_a_process(env: Env, name: str, ttl: float) -> subprocess.Popen[bytes]:
    holder = python(HOLD_AND_HANG, json.dumps(env.settings), name, str(ttl))
    assert holder.stdout is not None
    line = holder.stdout.readline()
    if line != b"held\n":
        holder.kill()
        _out, err = holder.communicate(timeout=10)
        pytest.fail(f"the holding process did not get the lock: {line!r} {err.decode()[-2000:]}")
    return holder


def kill(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=10)  # reaps it and closes its pipes


def test_a_file_lock_is_released_when_its_holder_is_killed(file_env: Env, tmp_path: Path) -> None:
    env = file_env
    name = lock_name()
    holder = hold_in_a_process(env, name, ttl=600)
    try:
        locks = env.locks()
        with locks.hold(name, ttl=5, wait=0.2) as held:
            assert held is False  # really held by the other process
    finally:
        kill(holder)
    started = time.monotonic()
    with locks.hold(name, ttl=5, wait=2) as held:
        assert held
    assert time.monotonic() - started < 0.5  # the kernel released it with the process, no expiry involved


def test_a_server_lock_of_a_dead_holder_expires_after_its_ttl(server_env: Env) -> None:
    name, ttl = lock_name(), 1.0
    holder = hold_in_a_process(server_env, name, ttl=ttl)
    died = time.monotonic()
    kill(holder)
    locks = server_env.locks()
    with locks.hold(name, ttl=5, wait=0) as held:
        assert held is False  # still there: the holder did not release it
    with locks.hold(name, ttl=5, wait=5) as held:
        assert held
    waited = time.monotonic() - died
    # Redis and PostgreSQL expire it after ttl; memcached's clock ticks in whole seconds, so up to a second more.
    assert waited < ttl + (2.1 if server_env.kind == "memcached" else 0.5), waited


def test_a_redis_lock_carries_a_ttl_and_a_random_value(redis_env: Env) -> None:
    assert redis_env.server is not None
    raw = redis.Redis(port=redis_env.server.port)
    name, key = lock_name(), "sso_middleware:lock:" + "x"
    values = []
    for _ in range(2):
        with redis_env.locks().hold(name, ttl=7.5, wait=1) as held:
            assert held
            key = f"sso_middleware:lock:{name}"
            assert 6000 < raw.pttl(key) <= 7500
            values.append(raw.get(key))
        assert raw.exists(key) == 0  # released: deleted
    assert values[0] != values[1] and all(value and len(value) >= 32 for value in values)
    raw.close()


def test_release_never_frees_the_next_holders_lock(server_env: Env) -> None:
    """A holds past its ttl; B takes the expired lock; A's release must leave B's lock alone."""
    name = lock_name()
    ttl = 1.0 if server_env.kind == "memcached" else 0.3
    a_locks, b_locks, c_locks = server_env.locks(), server_env.locks(), server_env.locks()
    b_holds, a_done = threading.Event(), threading.Event()
    a_result: list[bool] = []

    def slow_holder() -> None:
        try:
            with a_locks.hold(name, ttl=ttl, wait=1) as held:
                a_result.append(held)
                b_holds.wait(10)  # A's work took longer than its ttl; B got the lock meanwhile
            a_done.set()  # A released (too late)
        finally:
            close_thread_connections()

    thread = threading.Thread(target=slow_holder)
    thread.start()
    time.sleep(0.05)
    with b_locks.hold(name, ttl=30, wait=5) as b_held:
        assert b_held and a_result == [True]
        b_holds.set()
        assert a_done.wait(10)
        thread.join(10)
        with c_locks.hold(name, ttl=30, wait=0.3) as c_held:
            assert c_held is False  # B still holds it: A's release did not free it
    with c_locks.hold(name, ttl=30, wait=1) as c_held:
        assert c_held  # B's own release did


def test_a_file_release_never_frees_another_holder(file_env: Env, tmp_path: Path) -> None:
    """flock belongs to its open file: another instance's release cannot unlock a held lock."""
    env = file_env
    name = lock_name()
    holder = Holder(env.locks(), name)
    try:
        other = env.locks()
        with other.hold(name, ttl=5, wait=0.1) as held:
            assert held is False
        with other.hold(name, ttl=5, wait=0.1) as held:  # still held after the failed attempt
            assert held is False
    finally:
        holder.let_go()


# -- the store down ------------------------------------------------------------------------------


def test_a_stopped_server_is_store_unavailable(server_env: Env) -> None:
    assert server_env.server is not None
    locks, name = server_env.locks(), lock_name()
    with locks.hold(name, ttl=5, wait=0) as held:
        assert held  # the client is connected
    server_env.server.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable), locks.hold(name, ttl=5, wait=2):
        pytest.fail("the block must not run")
    assert time.monotonic() - started < 3
    assert locks._local == {}  # the per-process lock was let go too


def test_a_hung_server_is_store_unavailable_within_the_store_timeout(server_env: Env) -> None:
    assert server_env.server is not None
    locks = server_env.locks()
    with locks.hold(lock_name(), ttl=5, wait=0) as held:
        assert held
    server_env.server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable), locks.hold(lock_name(), ttl=5, wait=1):
            pytest.fail("the block must not run")
        assert time.monotonic() - started < 5
    finally:
        server_env.server.resume()


def restart_nobody_saw(env: Env) -> None:
    assert env.server is not None
    locks, name = env.locks(), lock_name()
    with locks.hold(name, ttl=5, wait=0) as held:
        assert held  # the client now holds an open connection
    env.server.stop()
    env.server.start()  # no call in between: nothing has noticed
    with locks.hold(name, ttl=5, wait=1) as held:
        assert held


def test_redis_locks_work_after_a_restart_nobody_saw(redis_env: Env) -> None:
    """A restart nobody saw costs no request (as for the session store, tests/test_stores.py)."""
    restart_nobody_saw(redis_env)


def test_memcached_locks_work_after_a_restart_nobody_saw(memcached_env: Env) -> None:
    restart_nobody_saw(memcached_env)


def test_postgresql_locks_work_after_a_restart_nobody_saw(tmp_path: Path) -> None:
    with make_env("postgresql", tmp_path) as env:
        restart_nobody_saw(env)


def test_a_server_that_comes_back_is_used_again(server_env: Env) -> None:
    assert server_env.server is not None
    locks, name = server_env.locks(), lock_name()
    with locks.hold(name, ttl=5, wait=0) as held:
        assert held  # connected (python-memcached leaks the socket of a first connection that fails)
    server_env.server.stop()
    with pytest.raises(StoreUnavailable), locks.hold(name, ttl=5, wait=0):
        pass
    server_env.server.start()
    time.sleep(1.1)  # python-memcached retries a dead server after dead_retry (1 s)
    with locks.hold(name, ttl=5, wait=1) as held:
        assert held


def test_an_unusable_lock_folder_is_store_unavailable(file_env: Env, tmp_path: Path) -> None:
    env = file_env
    locks = env.locks()
    env.data_dir.mkdir(parents=True, exist_ok=True)
    (env.data_dir / "locks").write_text("not a folder")
    with pytest.raises(StoreUnavailable), locks.hold(lock_name(), ttl=5, wait=0):
        pytest.fail("the block must not run")
    assert locks._local == {}


def test_file_lock_files_are_private_and_never_followed(file_env: Env, tmp_path: Path) -> None:
    env = file_env
    locks, name = env.locks(), lock_name()
    with locks.hold(name, ttl=5, wait=0) as held:
        assert held
    path = env.data_dir / "locks" / f"sso-lock-{name}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((env.data_dir / "locks").stat().st_mode) & 0o077 == 0
    # A link planted where a lock file goes is refused, never followed (or truncated, or created through).
    victim = tmp_path / "victim"
    victim.write_text("keep")
    other = lock_name()
    (env.data_dir / "locks" / f"sso-lock-{other}").symlink_to(victim)
    with pytest.raises(StoreUnavailable), locks.hold(other, ttl=5, wait=0):
        pytest.fail("the block must not run")
    assert victim.read_text() == "keep"


def test_a_held_file_lock_is_fresh_for_the_sweep(file_env: Env, tmp_path: Path) -> None:
    """The sweep removes old files in the lock folder: a lock file is touched when taken."""
    env = file_env
    locks, name = env.locks(), lock_name()
    with locks.hold(name, ttl=5, wait=0):
        pass
    path = env.data_dir / "locks" / f"sso-lock-{name}"
    os.utime(path, (1, 1))
    with locks.hold(name, ttl=5, wait=0) as held:
        assert held
        assert time.time() - path.stat().st_mtime < 60
