"""Signed-in requests read the session directly (:mod:`sso_middleware.stores.direct`), and refuse what Beaker refuses.

Every store reads a signed-in request's session without Beaker's ``Session`` (or
``CookieSession``) object, which is built only when something must be written (the
idle stamp when it is due, a sign-in).  The attacks of the direct read's rules are
played against both ways of reading -- directly, and through Beaker as before
(``direct_reads = False``) -- and must end alike: a forged cookie signature, a sealed
record swapped in from another session, an expired deadline and a record planted
unsealed (or sealed by another application) sign nobody in, answer no 5xx and decode
nothing before the seal was verified.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import webtest
from beaker.session import CookieSession, Session

from sso_middleware import SSOMiddleware
from sso_middleware._sealing import BoundedJsonSerializer, RecordSeal, app_key_text, record_prefix
from sso_middleware.stores.direct import StoredSession
from sso_middleware.testing import Clock

from ..conftest import browser_for
from ..custom_backend import DictBackend
from ..fakes import FakeProvider
from ..integration.test_stores import COOKIE, no_traceback, sign_in
from ..records import config_for
from ..store_servers import StoreServer
from .test_sealing import deletion_cookie, forged_session, inflations, raw_get, raw_plant

IDLE = 1000
ABSOLUTE = 5000
STORES = ["file", "redis", "memcached", "cookie", "custom"]

Browser = webtest.TestApp


@dataclass
class Store:
    """One store under test, with raw access to its records (beside the middleware's code)."""

    kind: str
    settings: dict[str, Any]
    server: Optional[StoreServer] = None
    folder: Optional[Path] = None
    built: list[SSOMiddleware] = field(default_factory=list)

    @property
    def keeps_records(self) -> bool:
        return self.kind != "cookie"

    def _dict(self) -> DictBackend:
        backend = self.built[0].store.backend
        assert isinstance(backend, DictBackend)
        return backend

    def raw(self, record_id: str) -> Optional[bytes]:
        """A session record as stored (sealed), or None."""
        if self.server is not None:
            return raw_get(self.server, record_id)
        if self.folder is not None:
            path = self._path(record_id)
            return path.read_bytes() if path.exists() else None
        backend = self._dict()
        entry = backend.records.get(backend.record_key(record_id))
        return None if entry is None else entry[1].encode()

    def plant(self, record_id: str, value: bytes) -> None:
        """Write a session record's raw value, as someone able to write to the store could."""
        if self.server is not None:
            raw_plant(self.server, record_id, value)
        elif self.folder is not None:
            self._path(record_id).parent.mkdir(parents=True, exist_ok=True)
            self._path(record_id).write_bytes(value)
        else:
            backend = self._dict()
            backend.records[backend.record_key(record_id)] = (time.time() + 600, value.decode())

    def record_key(self, record_id: str) -> str:
        """The key a session record's seal is bound to."""
        if self.folder is not None:
            return f"file:{record_id}"
        if self.server is not None:
            return f"{record_prefix(config_for())}:{record_id}:session"
        return self._dict().record_key(record_id)

    def _path(self, record_id: str) -> Path:
        assert self.folder is not None
        return self.folder / "container_file" / record_id[0] / record_id[:2] / f"{record_id}.cache"


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    timeouts = {"session_idle_timeout": IDLE, "session_absolute_timeout": ABSOLUTE}
    if request.param in ("redis", "memcached"):
        running = StoreServer(request.param).start()
        try:
            yield Store(request.param, {"session_type": running.session_type, "session_url": running.url,
                                        "session_store_timeout": 0.5, **timeouts}, server=running)
        finally:
            running.stop()
        return
    if request.param == "file":
        folder = tmp_path / "sessions"
        yield Store("file", {"session_data_dir": str(folder), **timeouts}, folder=folder)
    elif request.param == "cookie":
        yield Store("cookie", {"session_type": "cookie", **timeouts})
    else:
        yield Store("custom", {"session_type": DictBackend, **timeouts})


@pytest.fixture(params=["direct", "beaker"])
def read_path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def build(make_middleware: Callable[..., SSOMiddleware], store: Store, read_path: str,
          clock: Clock) -> Callable[..., SSOMiddleware]:
    """A middleware on the store, reading sessions the way ``read_path`` names."""

    def build(**overrides: Any) -> SSOMiddleware:
        middleware = make_middleware(**{**store.settings, **overrides}, clock=clock)
        backend: Any = middleware.store.backend
        assert backend.direct_reads is True  # every store reads directly unless told not to
        backend.direct_reads = read_path == "direct"
        store.built.append(middleware)
        return middleware

    return build


class Constructions:
    """Counts Beaker ``Session`` and ``CookieSession`` objects built."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for cls in (Session, CookieSession):
            monkeypatch.setattr(cls, "__init__", self._counting(cls.__init__))

    def _counting(self, init: Callable[..., None]) -> Callable[..., None]:
        def counted(session: Any, *args: Any, **kwargs: Any) -> None:
            self.count += 1
            init(session, *args, **kwargs)

        return counted


def session_id(browser: Browser) -> str:
    return browser.cookies[COOKIE].strip('"')[40:]


def sent(browser: Browser, value: str, path: str = "/page") -> webtest.TestResponse:
    """A request carrying exactly this session cookie value (webtest's ``set_cookie`` would quote it)."""
    return browser_for(browser.app).get(path, headers={"Cookie": f"{COOKIE}={value}"})


def anonymous_with_deletion(response: webtest.TestResponse) -> None:
    """Answered as for no session: the app sees nobody, the cookie is cleared with an empty value."""
    assert response.status_int == 200
    assert response.json["remote_user"] is None and response.json["userinfo"] is None
    header = deletion_cookie(response)
    assert header is not None and header.split(";", 1)[0] == f"{COOKIE}=", header


# -- the direct read is what runs -----------------------------------------------------------


def test_a_signed_in_get_builds_no_beaker_session(build: Callable[..., SSOMiddleware], provider: FakeProvider,
                                                  store: Store, read_path: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    browser = browser_for(build())
    sign_in(browser, provider)
    built = Constructions(monkeypatch)
    response = browser.get("/page")
    assert response.json["remote_user"] == "alice"
    assert "Set-Cookie" not in response.headers  # nothing to write: no stamp due
    assert built.count == (0 if read_path == "direct" else 1)


def test_a_due_idle_stamp_builds_the_beaker_session_to_write_it(build: Callable[..., SSOMiddleware],
                                                                provider: FakeProvider, store: Store, clock: Clock,
                                                                read_path: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    middleware = build()
    browser = browser_for(middleware)
    sign_in(browser, provider)
    before = browser.cookies[COOKIE]
    stamped = clock.advance(middleware.store.stamp_interval + 1)
    built = Constructions(monkeypatch)
    response = browser.get("/page")
    assert response.json["remote_user"] == "alice"
    assert built.count == 1  # directly: only to write it; through Beaker: the one that read it writes it
    if store.keeps_records:
        data = middleware.store.backend.read_session(session_id(browser))  # type: ignore[attr-defined]
        assert data is not None and data["last_seen"] == stamped
        assert "Set-Cookie" not in response.headers  # the cookie of a server-side session does not change
    else:
        assert browser.cookies[COOKIE] != before  # the new stamp travels in a new cookie
    built.count = 0
    assert browser.get("/page").json["remote_user"] == "alice"
    assert built.count == (0 if read_path == "direct" else 1)


def test_a_cookie_quoted_or_not_still_signs_in(build: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    """Both forms a browser may send: one of them is Beaker's to parse (the direct read judges one shape only)."""
    browser = browser_for(build())
    sign_in(browser, provider)
    value = browser.cookies[COOKIE]
    other = value.strip('"') if value.startswith('"') else f'"{value}"'
    response = browser_for(browser.app).get("/page", headers={"Cookie": f"{COOKIE}={other}"})
    assert response.json["remote_user"] == "alice"


# -- the attacks, both ways ----------------------------------------------------------------------


def test_a_forged_cookie_signature_is_no_session(build: Callable[..., SSOMiddleware], provider: FakeProvider,
                                                 store: Store, caplog: pytest.LogCaptureFixture) -> None:
    browser = browser_for(build())
    sign_in(browser, provider)
    value = browser.cookies[COOKIE]
    quote = '"' if value.startswith('"') else ""
    inner = value.strip('"')
    forged = quote + inner[:7] + ("0" if inner[7] != "0" else "1") + inner[8:] + quote  # same shape
    anonymous_with_deletion(sent(browser, forged))
    if store.keeps_records:
        assert store.raw(inner[40:]) is not None  # a forged cookie ends nobody's session either
    no_traceback(caplog)


def test_a_session_id_signed_for_another_application_is_no_session(build: Callable[..., SSOMiddleware],
                                                                   provider: FakeProvider, store: Store) -> None:
    browser = browser_for(build())
    sign_in(browser, provider)
    if store.kind == "cookie":  # alice's session, encrypted and signed with the other application's keys
        other = config_for(client_id="another-client")
        data = dict(build().store.backend.open_session({}, f"{COOKIE}={browser.cookies[COOKIE]}") or {})
        assert data["user"]["claims"]["sub"] == "alice"
        forged = CookieSession({}, key=COOKIE, data_serializer=BoundedJsonSerializer(),
                               encrypt_key=app_key_text(other, "cookie encryption"),
                               validate_key=app_key_text(other, "cookie signature"))
        forged.update(data)
        forged.save()
        value = str(forged.request["cookie_out"]).split(";", 1)[0].split("=", 1)[1]
    else:
        key = app_key_text(config_for(client_id="another-client"), "session id signature")
        own_id = session_id(browser)
        value = hmac.new(key.encode(), own_id.encode(), hashlib.sha1).hexdigest() + own_id
    anonymous_with_deletion(sent(browser, value))


def test_a_record_swapped_in_from_another_session_is_no_session(build: Callable[..., SSOMiddleware],
                                                                provider: FakeProvider, store: Store,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    middleware = build()
    alice, mallory = browser_for(middleware), browser_for(middleware)
    sign_in(alice, provider)
    sign_in(mallory, provider, user="bob")
    value = mallory.cookies[COOKIE]
    if store.keeps_records:
        record = store.raw(session_id(alice))
        assert record is not None
        store.plant(session_id(mallory), record)  # alice's sealed record under mallory's id
    else:  # the cookie is the record: alice's payload behind mallory's signature
        value = f'"{value.strip(chr(34))[:40]}{alice.cookies[COOKIE].strip(chr(34))[40:]}"'
    with inflations() as inflated:
        response = sent(mallory, value)
    anonymous_with_deletion(response)
    assert inflated == [], "the swapped record was decoded before its seal was checked"
    assert alice.get("/page").json["remote_user"] == "alice"  # the victim's own session is untouched
    no_traceback(caplog)


@pytest.mark.parametrize("deadline", ["idle", "absolute"])
def test_an_expired_session_is_no_session_and_ends(build: Callable[..., SSOMiddleware], provider: FakeProvider,
                                                   store: Store, clock: Clock, deadline: str) -> None:
    middleware = build()
    browser = browser_for(middleware)
    sign_in(browser, provider)
    stale = browser.cookies[COOKIE]
    signed_in_id = session_id(browser)
    if deadline == "absolute":  # active all along: the idle stamp is written every time, then the sign-in is too old
        for _ in range(ABSOLUTE // (IDLE // 2) - 1):
            clock.advance(IDLE // 2)
            assert browser.get("/page").json["remote_user"] == "alice"
        clock.advance(IDLE // 2 + 100)  # past the absolute deadline, well within the idle one
    else:
        clock.advance(IDLE + 1)
    anonymous_with_deletion(browser.get("/page"))
    if store.keeps_records:
        assert store.raw(signed_in_id) is None  # signed out where it is stored
    assert sent(browser, stale).json["remote_user"] is None  # its cookie, sent again, stays out


@pytest.mark.parametrize("planted", ["unsealed", "sealed-by-another-application", "sealed-as-tokens"])
def test_a_planted_record_is_no_session(build: Callable[..., SSOMiddleware], provider: FakeProvider, store: Store,
                                        planted: str, caplog: pytest.LogCaptureFixture) -> None:
    browser = browser_for(build())
    sign_in(browser, provider, user="bob")  # the attacker's own, validly signed session id
    value = browser.cookies[COOKIE]
    forged = forged_session("alice", time.time())
    if store.keeps_records:
        key = store.record_key(session_id(browser))
        if store.kind == "file":
            forged = json.dumps({"session": forged})  # a file record holds the namespace's dict
        if planted == "unsealed":
            record = forged.encode()
        elif planted == "sealed-by-another-application":
            record = RecordSeal.for_config(config_for(client_id="another-client")).seal("session", key, forged).encode()
        else:
            record = RecordSeal.for_config(config_for()).seal("tokens", key, forged).encode()
        store.plant(session_id(browser), record)
    else:  # a cookie in Beaker's shape that this application did not sign
        payload = "A" * 24 + base64.b64encode(zlib.compress(forged.encode())).decode()
        key = app_key_text(config_for(client_id="another-client"), "cookie signature")
        value = '"' + hmac.new(key.encode(), payload.encode(), hashlib.sha1).hexdigest() + payload + '"'
    with inflations() as inflated:
        response = sent(browser, value)
    anonymous_with_deletion(response)
    assert inflated == [], "the planted record was decoded before its seal was checked"
    no_traceback(caplog)


def test_the_direct_read_hands_the_session_layer_a_stored_session(build: Callable[..., SSOMiddleware],
                                                                  provider: FakeProvider, read_path: str) -> None:
    middleware = build()
    browser = browser_for(middleware)
    sign_in(browser, provider)
    session = middleware.store.open({"HTTP_COOKIE": f"{COOKIE}={browser.cookies[COOKIE]}"})
    assert session.current_user(time.time()) is not None
    assert isinstance(session._loaded(), StoredSession) is (read_path == "direct")
