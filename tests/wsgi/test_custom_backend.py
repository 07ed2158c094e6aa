"""A session back end of one's own (:mod:`tests.custom_backend`, written from the README alone), end to end.

The in-memory ``DictBackend`` is plugged in the three documented ways -- ``session_type =
"tests.custom_backend:DictBackend"``, the class, an object already built -- and carries a
whole life through the fake provider: sign-in, token refresh, sign-out, back-channel
logout.  What it holds is read back from its dicts, so each step is seen in the store.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest
import webtest

from sso_middleware import ConfigError, SSOConfig, SSOMiddleware
from sso_middleware._doctor.checks.session import check_session_store
from sso_middleware._session.locks import StoreLocks
from sso_middleware.stores.index import index_key
from sso_middleware.testing import Clock

from ..conftest import browser_for
from ..custom_backend import DictBackend
from ..fakes import FakeProvider
from .test_backchannel import logout_token, post_logout
from .test_refresh import LIFETIME, MARGIN, SCOPE, latest_access_token, sign_in, token_app, view

Browser = webtest.TestApp
WAYS = ["text", "class", "object"]


def plugged(way: str, settings: dict[str, Any]) -> Any:
    """``session_type`` naming DictBackend one of the documented ways."""
    if way == "text":
        return "tests.custom_backend:DictBackend"
    if way == "class":
        return DictBackend
    return DictBackend(SSOConfig(**settings))


@pytest.fixture(params=WAYS)
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> Clock:
    """One time for the middleware and the provider, standing still from a whole second."""
    return Clock(int(time.time()))


@pytest.fixture
def provider(clock: Clock) -> FakeProvider:
    """The suite's fake provider (it replaces conftest's here), on the middleware's clock, with short-lived tokens."""
    return FakeProvider(clock=clock, expires_in=LIFETIME)


@pytest.fixture
def build(make_middleware: Callable[..., SSOMiddleware], clock: Clock, settings: dict[str, Any],
          way: str) -> Callable[..., SSOMiddleware]:
    def build(**overrides: Any) -> SSOMiddleware:
        return make_middleware(token_app, keep_access_token=True, scope=SCOPE,
                               session_type=plugged(way, settings), clock=clock, **overrides)

    return build


def live(backend: DictBackend, prefix: str) -> list[str]:
    """The ids of the records that have not expired, whose id starts with ``prefix`` ("" for all)."""
    now = backend.clock()
    start = f"{backend.prefix}:dict:{prefix}"
    return sorted(key[len(backend.prefix) + 6:] for key, (expires, _) in backend.records.items()
                  if key.startswith(start) and expires > now)


def session_records(backend: DictBackend) -> list[str]:
    return [record for record in live(backend, "") if not record.startswith("sso-")]


def backend_of(middleware: SSOMiddleware) -> DictBackend:
    backend = middleware.store.backend
    assert isinstance(backend, DictBackend)
    return backend


def signed_in(middleware: SSOMiddleware, provider: FakeProvider, user: str = "alice") -> Browser:
    browser = browser_for(middleware)
    sign_in(browser, provider, user=user)
    return browser


def test_every_way_of_naming_it_builds_a_dict_backend(build: Callable[..., SSOMiddleware], way: str) -> None:
    middleware = build()
    assert type(middleware.store.backend) is DictBackend
    assert middleware.refresher.locks.backend is middleware.store.backend  # one back end: its lock too
    assert middleware.refresher.locks.shared


def test_sign_in_refresh_and_sign_out(build: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    middleware = build()
    backend = backend_of(middleware)
    browser = signed_in(middleware, provider)
    (session_id,) = session_records(backend)
    assert live(backend, "sso-tokens-") == [f"sso-tokens-{session_id}"]
    first = view(browser)
    assert first["remote_user"] == "alice" and first["access_token"] == latest_access_token(provider)

    middleware.clock.advance(LIFETIME - MARGIN)  # due: refreshed once, through the back end's lock
    fresh = view(browser)
    assert provider.refresh_requests == 1
    assert fresh["access_token"] == latest_access_token(provider) != first["access_token"]
    assert view(browser)["access_token"] == fresh["access_token"]
    assert provider.refresh_requests == 1
    assert backend.locks == {}, "the refresh lock was not released"

    browser.get("/auth/logout")
    assert session_records(backend) == [] and live(backend, "sso-tokens-") == []
    assert view(browser)["remote_user"] is None


def test_a_back_channel_logout_ends_every_session_of_the_provider_session(
        build: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    middleware = build()
    backend = backend_of(middleware)
    tabs = [signed_in(middleware, provider) for _ in range(2)]
    assert len(session_records(backend)) == 2 and len(live(backend, "sso-tokens-")) == 2
    assert [view(tab)["remote_user"] for tab in tabs] == ["alice", "alice"]

    post_logout(tabs[0], logout_token(sid="provider-session-1"))

    assert session_records(backend) == [] and live(backend, "sso-tokens-") == []
    assert [view(tab)["remote_user"] for tab in tabs] == [None, None]
    assert backend.index_members(index_key("sid:provider-session-1")) == [], "the index still names ended sessions"


def test_an_outage_of_the_store_is_a_503(build: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    middleware = build()
    backend = backend_of(middleware)
    browser = signed_in(middleware, provider)
    backend.down = True
    response = browser.get("/page", status=503)
    assert "session_store_unavailable" in response.text
    backend.down = False
    assert view(browser)["remote_user"] == "alice", "an outage signed the user out"


def test_a_record_not_sealed_for_its_key_is_no_session(build: Callable[..., SSOMiddleware],
                                                        provider: FakeProvider) -> None:
    middleware = build()
    backend = backend_of(middleware)
    alice = signed_in(middleware, provider)
    (alice_id,) = session_records(backend)
    bob = signed_in(middleware, provider, user="bob")
    (bob_id,) = set(session_records(backend)) - {alice_id}
    # Someone able to write to the store copies bob's session record under alice's key.
    backend.records[backend.record_key(alice_id)] = backend.records[backend.record_key(bob_id)]
    assert view(alice)["remote_user"] is None
    assert view(bob)["remote_user"] == "bob"


def test_records_expire_by_their_ttl(settings: dict[str, Any]) -> None:
    backend = DictBackend(SSOConfig(**settings, session_type=DictBackend))
    assert backend.write_record("sso-tokens-x", "text", ttl=60)
    assert backend.read_record("sso-tokens-x") == "text"
    assert backend.read_record("sso-tokens-x", kind="session") is None  # sealed as another kind
    now = backend.clock()
    backend.clock = lambda: now + 61
    assert backend.read_record("sso-tokens-x") is None
    assert backend.write_record("sso-tokens-x", "again", ttl=60, existing=True) is False


def test_a_session_type_that_is_no_backend_is_refused(settings: dict[str, Any]) -> None:
    for value, missing in [("tests.custom_backend:NotABackend", "index_add"),
                           ("tests.custom_backend:HalfABackend", "index_members"),
                           ("tests.custom_backend:Nowhere", "cannot import"),
                           (object(), "open_session")]:
        with pytest.raises(ConfigError) as refused:
            SSOConfig(**settings, session_type=value)
        assert refused.value.setting == "session_type"
        assert missing in str(refused.value)


def test_the_backend_checks_its_own_settings(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as refused:
        SSOConfig(**settings, session_type="tests.custom_backend:DictBackend", session_url="redis://x/0")
    assert refused.value.setting == "session_url"
    SSOConfig(**settings, session_type="tests.custom_backend:DictBackend", session_url="memory:one")


def test_ini_and_environment_strings_name_it(settings: dict[str, Any]) -> None:
    text = {**settings, "session_type": " tests.custom_backend:DictBackend "}
    assert SSOConfig.from_settings(text).session_type == "tests.custom_backend:DictBackend"
    environ = {f"SSO_{name.upper()}": value for name, value in text.items()}
    assert SSOConfig.from_env(environ).session_type == "tests.custom_backend:DictBackend"


def test_the_doctor_prints_its_probe(settings: dict[str, Any]) -> None:
    class Context:
        config = SSOConfig(**settings, session_type="tests.custom_backend:DictBackend")

    assert list(check_session_store(Context())) == [("OK", "in-memory store: 0 records")]


def test_its_lock_excludes_another_holder(settings: dict[str, Any]) -> None:
    backend = DictBackend(SSOConfig(**settings))
    config = SSOConfig(**settings, session_type=backend)
    one, other = StoreLocks(config), StoreLocks(config)  # two "processes" sharing the object
    assert one.backend is other.backend is backend
    with one.hold("refresh-x", ttl=30, wait=0) as held:
        assert held
        with other.hold("refresh-x", ttl=30, wait=0.05) as also:
            assert not also
    with other.hold("refresh-x", ttl=30, wait=0) as held_after:
        assert held_after


def test_a_value_planted_unsealed_in_the_store_is_no_record(settings: dict[str, Any]) -> None:
    """TextRecords seals for the back end: what the store holds is never taken as it is."""
    backend = DictBackend(SSOConfig(**settings, session_type=DictBackend))
    assert backend.write_record("sso-tokens-x", '{"access_token": "mine"}', ttl=60)
    stored = backend.get_text(backend.record_key("sso-tokens-x"))
    assert stored is not None and stored != '{"access_token": "mine"}'  # the back end only holds sealed text
    # Someone able to write to the store puts plain text (or text sealed for another key) there.
    backend.put_text(backend.record_key("sso-tokens-x"), '{"access_token": "theirs"}', 60, existing=False)
    assert backend.read_record("sso-tokens-x") is None
    backend.put_text(backend.record_key("sso-tokens-y"), stored, 60, existing=False)
    assert backend.read_record("sso-tokens-y") is None
    backend.set_add(backend.record_key("sid:s1"), "planted-session-id", 60)
    assert backend.index_members("sid:s1") == []
    backend.index_add("sid:s1", "real-session-id", 60)
    assert backend.index_members("sid:s1") == ["real-session-id"]
    backend.index_remove("sid:s1", ["real-session-id"])
    assert backend.index_members("sid:s1") == []
