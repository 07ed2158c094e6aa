"""``sso_middleware.testing.Clock``: real time until a test moves it, and the middleware's ``clock=`` seam."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest
import webtest

from sso_middleware import SSOMiddleware
from sso_middleware.testing import Clock, FakeProvider

from ..conftest import browser_for


def test_a_new_clock_follows_the_real_time() -> None:
    clock = Clock()
    before = time.time()
    read = clock()
    assert before <= read <= time.time()
    time.sleep(0.01)
    assert clock() > read  # not frozen at creation


def test_setting_or_advancing_stops_it() -> None:
    clock = Clock()
    clock.now = 1000.0
    assert clock() == clock.now == 1000.0
    time.sleep(0.01)
    assert clock() == 1000.0
    assert clock.advance(5) == 1005.0 and clock() == 1005.0


def test_advancing_a_following_clock_starts_from_the_real_time() -> None:
    clock = Clock()
    before = time.time()
    moved = clock.advance(600)
    assert before + 600 <= moved <= time.time() + 600
    assert clock() == moved


def test_a_clock_given_a_time_stands_there() -> None:
    clock = Clock(1_900_000_000)
    assert clock() == 1_900_000_000.0 and isinstance(clock(), float)
    assert repr(clock) == "<Clock 1900000000.0>" and repr(Clock()) == "<Clock real time>"


def sign_in(browser: webtest.TestApp, provider: FakeProvider) -> None:
    started = browser.get("/auth/sso", {"connection": "Username-Password-Authentication", "target_url": "/"})
    browser.get(provider.authorize(started.location))


def test_the_middleware_reads_the_clock_it_was_given(make_middleware: Callable[..., SSOMiddleware],
                                                     provider: FakeProvider) -> None:
    clock = Clock()
    middleware = make_middleware(session_idle_timeout=600, clock=clock)
    assert middleware.clock is clock
    with pytest.raises(AttributeError):  # swapping it later would move only some of the deadlines
        middleware.clock = time.time  # type: ignore[misc]
    browser = browser_for(middleware)
    sign_in(browser, provider)
    clock.advance(599)
    seen: Any = browser.get("/page").json
    assert seen["remote_user"] == "alice"
    clock.advance(601)  # idle for longer than the timeout: signed out without anyone sleeping
    assert browser.get("/page").json["remote_user"] is None


def test_without_a_clock_the_middleware_reads_the_real_time(make_middleware: Callable[..., SSOMiddleware]) -> None:
    assert make_middleware().clock is time.time
