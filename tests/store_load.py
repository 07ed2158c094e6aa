"""Signed-in users under load against a session store, for the failover and resharding tests.

:func:`store_settings` keeps access and refresh tokens (so a token record, the refresh
lock and the sid/sub index are all in the store); :func:`check_refresh`,
:func:`check_lock` and :func:`check_backchannel_logout` prove that each still works.

:func:`sign_in_users` signs several users in through the in-memory :class:`~tests.fakes.FakeProvider`
(each with its own provider ``sid``), one cookie-keeping ``webtest`` browser each, all on the
same middleware object (so nothing is restarted).  :class:`Load` runs one thread per user
asking ``/page`` again and again and classifies every answer: 200 as that very user,
503 ``session_store_unavailable``, or anything else (a 500, an exception, another user, a
user signed out) -- which the tests require never to happen.  :meth:`Load.report` gives the
figures docs/scaling.md quotes: when the first 503 came, when the last one came, how many.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import webtest

from sso_middleware import SSOMiddleware
from sso_middleware.stores import SessionBackend
from sso_middleware.testing import Clock

from .conftest import browser_for
from .fakes import FakeProvider
from .wsgi.test_backchannel import logout_token, post_logout

CONNECTION = "Username-Password-Authentication"
SCOPE = "openid profile email offline_access"
LIFETIME = 600  # expires_in of the access tokens; refresh_margin is 60
MARGIN = 60
#: The pause between two requests of one user: a few hundred requests a second in all.
PACE = 0.01

Browser = webtest.TestApp


def store_settings(url: str, timeout: float = 0.5) -> dict[str, Any]:
    """Settings of a middleware on the Redis store at ``url`` that keeps (and refreshes) tokens."""
    return {"session_type": "ext:redis", "session_url": url, "session_store_timeout": timeout,
            "keep_access_token": True, "scope": SCOPE}


def sign_in(browser: Browser, provider: FakeProvider, user: str) -> None:
    """An interactive sign-in of ``user`` (provider ``sid`` = ``sid-<user>``), landing on ``/``."""
    provider.users.setdefault(user, {"sub": user, "name": user.title(), "email": f"{user}@example.com"})
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/"})
    assert response.status_int == 303, response
    response = browser.get(provider.authorize(response.location, user=user, claims={"sid": f"sid-{user}"}))
    assert response.status_int == 303 and response.location == "https://app2.example/", response


def sign_in_users(middleware: SSOMiddleware, provider: FakeProvider, count: int) -> dict[str, Browser]:
    """``count`` users (``user0``...) signed in, each in a browser of their own: name -> browser."""
    browsers = {f"user{index}": browser_for(middleware) for index in range(count)}
    for user, browser in browsers.items():
        sign_in(browser, provider, user)
        assert who(browser) == user
    return browsers


def who(browser: Browser) -> Optional[str]:
    """Whom the wrapped app sees for this browser (a 200 is required)."""
    response = browser.get("/page")
    assert response.status_int == 200, response
    remote_user: Optional[str] = response.json["remote_user"]
    return remote_user


def check_refresh(browser: Browser, user: str, provider: FakeProvider, clock: Clock) -> None:
    """A due access token is refreshed once, under the store's lock, and the session carries on."""
    before = provider.refreshes
    clock.advance(LIFETIME - MARGIN)
    assert who(browser) == user
    assert provider.refreshes == before + 1
    assert who(browser) == user
    assert provider.refreshes == before + 1  # the new token record was written: no second refresh


def check_lock(backend: SessionBackend) -> None:
    """``SET NX PX`` excludes a second holder; only the holder's handle releases it (compare-and-delete)."""
    name = "ha-test-" + secrets.token_hex(4)
    handle = backend.acquire(name, 5)
    assert handle is not None
    assert backend.acquire(name, 5) is None
    backend.release(name, "not-the-holder")
    assert backend.acquire(name, 5) is None
    backend.release(name, handle)
    again = backend.acquire(name, 5)
    assert again is not None
    backend.release(name, again)


def check_backchannel_logout(browsers: dict[str, Browser], user: str) -> None:
    """A logout token for ``user`` (by ``sub``) ends that user's session only."""
    post_logout(browsers[user], logout_token(sid=None, sub=user))
    assert who(browsers[user]) is None
    for other, browser in browsers.items():
        if other != user:
            assert who(browser) == other


@dataclass
class Answer:
    at: float
    user: str
    kind: str  # "ok" | "unavailable" | "wrong"
    detail: str = ""


@dataclass
class Report:
    """What the users saw during a topology change, in seconds from ``since``."""

    requests: int
    unavailable: int
    wrong: list[Answer]
    first_503: Optional[float]
    last_503: Optional[float]
    resumed: Optional[float]  # the first moment from which every user got 200s only

    def text(self) -> str:
        def seconds(value: Optional[float]) -> str:
            return "-" if value is None else f"{value:.2f} s"

        return (f"{self.requests} requests, {self.unavailable} answered 503, {len(self.wrong)} wrong; "
                f"first 503 at {seconds(self.first_503)}, last at {seconds(self.last_503)}, "
                f"every user served again from {seconds(self.resumed)}")


@dataclass
class Load:
    """One thread per signed-in user asking ``/page`` until stopped; every answer classified."""

    browsers: dict[str, Browser]
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for user, browser in self.browsers.items():
            thread = threading.Thread(target=self._run, args=(user, browser), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, user: str, browser: Browser) -> None:
        while not self._stop.is_set():
            answer = self.ask(user, browser)
            with self._lock:
                self.answers.append(answer)
            time.sleep(PACE)

    @staticmethod
    def ask(user: str, browser: Browser) -> Answer:
        try:
            response = browser.get("/page", expect_errors=True)
        except Exception as exc:  # a traceback through the middleware: the worst answer
            return Answer(time.monotonic(), user, "wrong", f"{type(exc).__name__}: {exc}")
        now = time.monotonic()
        if response.status_int == 200 and response.content_type == "application/json":
            seen = response.json["remote_user"]
            return Answer(now, user, "ok" if seen == user else "wrong", f"200 as {seen!r}")
        if response.status_int == 503 and "session_store_unavailable" in response.text:
            assert response.headers["Cache-Control"] == "no-store"
            return Answer(now, user, "unavailable")
        return Answer(now, user, "wrong", f"{response.status} {response.text[:200]!r}")

    def served_since(self, moment: float) -> set[str]:
        """The users whose every answer after ``moment`` was a 200 as themselves (and who got at least one)."""
        with self._lock:
            later = [answer for answer in self.answers if answer.at > moment]
        return {user for user in self.browsers
                if any(a.user == user for a in later) and all(a.kind == "ok" for a in later if a.user == user)}

    def wait_all_served(self, within: float) -> float:
        """Until every user has had only 200s for a while; the moment that run of 200s began."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            time.sleep(0.2)
            with self._lock:
                last_failure = max((a.at for a in self.answers if a.kind != "ok"), default=0.0)
            if time.monotonic() - last_failure > 1.0 and self.served_since(last_failure) == set(self.browsers):
                return last_failure
        raise AssertionError(f"not every user is served again within {within} s: {self.report(0).text()}")

    def report(self, since: float) -> Report:
        with self._lock:
            answers = [answer for answer in self.answers if answer.at >= since]
        unavailable = [a.at - since for a in answers if a.kind == "unavailable"]
        failures = [a.at for a in answers if a.kind != "ok"]
        resumed = None
        if failures:
            after = [a.at for a in answers if a.at > max(failures)]
            resumed = (min(after) - since) if after else None
        return Report(len(answers), len(unavailable), [a for a in answers if a.kind == "wrong"],
                      min(unavailable, default=None), max(unavailable, default=None), resumed)
