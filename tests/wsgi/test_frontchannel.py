"""``GET /auth/frontchannel-logout`` (OpenID Connect Front-Channel Logout 1.0) through ``webtest``.

Users sign in through the fake provider, whose ID tokens carry ``sid: provider-session-1``
unless a test names another.  The provider's logout page is played by a request of another
browser (no cookies: what a cross-site iframe sends) with ``iss`` and ``sid``, or by the
user's own browser without them (what a same-site iframe sends).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest
import webtest

from sso_middleware import SSOMiddleware
from sso_middleware._session.revocations import SIGNED_IN_SID
from sso_middleware.errors import InvalidLogoutRequest, LogoutIssuerMismatch, LogoutRequestTooLong, StoreUnavailable
from sso_middleware.testing import Clock

from ..conftest import browser_for
from ..fakes import ISSUER, FakeProvider
from ..store_servers import StoreServer
from .test_backchannel import sign_in, sign_in_without_sid, who

PATH = "/auth/frontchannel-logout"
Browser = webtest.TestApp


def frame(app: SSOMiddleware, status: Any = 200, *, query: Optional[str] = None, **params: str) -> webtest.TestResponse:
    """What the provider's logout page makes a browser do: GET the route in an iframe, without our cookie."""
    provider_side = webtest.TestApp(app, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"})
    url = PATH + "?" + (query if query is not None else urlencode(params)) if (params or query is not None) else PATH
    response: webtest.TestResponse = provider_side.get(url, status=status)
    return response


@pytest.fixture
def middleware(make_middleware: Callable[..., SSOMiddleware]) -> SSOMiddleware:
    return make_middleware(frontchannel_logout_path=PATH)


def assert_frame_headers(response: webtest.TestResponse, ancestors: str = "https://op.example") -> None:
    assert response.content_type == "text/html"
    assert response.headers["Cache-Control"] == "no-cache, no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert response.headers["Content-Security-Policy"] == f"default-src 'none'; frame-ancestors {ancestors}"
    assert "X-Frame-Options" not in response.headers  # it must stay framable by the provider
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# -- the setting ---------------------------------------------------------------------------------


def test_off_by_default_the_path_reaches_the_application(make_middleware: Callable[..., SSOMiddleware]) -> None:
    response = frame(make_middleware(), iss=ISSUER, sid="provider-session-1")
    assert response.json["path"] == PATH  # the legacy app answered: no route of ours


def test_the_route_follows_its_setting(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    middleware = make_middleware(frontchannel_logout_path="/sso/fc")
    browser = browser_for(middleware)
    sign_in(browser, provider)
    provider_side = webtest.TestApp(middleware, extra_environ=browser.extra_environ)
    provider_side.get("/sso/fc?" + urlencode({"iss": ISSUER, "sid": "provider-session-1"}), status=200)
    assert who(browser) is None


# -- iss and sid: the sessions of that provider session, no cookie needed -----------------------------


def test_iss_and_sid_end_every_session_of_that_sid_and_only_those(middleware: SSOMiddleware,
                                                                 provider: FakeProvider) -> None:
    first, second, other_sid = browser_for(middleware), browser_for(middleware), browser_for(middleware)
    sign_in(first, provider)
    sign_in(second, provider)
    sign_in(other_sid, provider, sid="provider-session-2")
    response = frame(middleware, iss=ISSUER, sid="provider-session-1")
    assert_frame_headers(response)
    assert response.html.find(id="frontchannel-logout")["data-code"] == "signed_out"
    assert who(first) is None and who(second) is None
    assert who(other_sid) == "alice"


def test_a_browser_cookie_of_another_sid_is_left_alone(middleware: SSOMiddleware, provider: FakeProvider) -> None:
    """The sid decides, not the cookie that happens to come along (same-site deployments send it)."""
    browser, target = browser_for(middleware), browser_for(middleware)
    sign_in(browser, provider, sid="provider-session-2")
    sign_in(target, provider)
    browser.get(PATH + "?" + urlencode({"iss": ISSUER, "sid": "provider-session-1"}), status=200)
    assert who(browser) == "alice"
    assert who(target) is None


def test_an_unknown_sid_is_a_harmless_200(middleware: SSOMiddleware, provider: FakeProvider) -> None:
    """Section 2: already signed out counts as success; a 404 would tell which sids have sessions here."""
    browser = browser_for(middleware)
    sign_in(browser, provider)
    response = frame(middleware, iss=ISSUER, sid="no-such-session")
    assert_frame_headers(response)
    assert who(browser) == "alice"


def test_sessions_whose_id_token_had_no_sid_are_not_ended_by_a_sid(middleware: SSOMiddleware,
                                                                   provider: FakeProvider) -> None:
    """A front-channel request names no ``sub``: a sid-less session cannot be matched (and is not guessed at)."""
    browser = browser_for(middleware)
    sign_in_without_sid(browser, provider)
    frame(middleware, iss=ISSUER, sid="provider-session-1")
    assert who(browser) == "alice"


@pytest.mark.parametrize("store", ["cookie", "file"])
def test_every_instance_sharing_the_store_or_host_sees_it(make_middleware: Callable[..., SSOMiddleware],
                                                          provider: FakeProvider, store: str) -> None:
    """Another process (instance) than the one framed: the store's index, or the host's revocation journal."""
    one = make_middleware(frontchannel_logout_path=PATH, session_type=store)
    other = make_middleware(frontchannel_logout_path=PATH, session_type=store)
    browser = browser_for(one)
    sign_in(browser, provider)
    frame(other, iss=ISSUER, sid="provider-session-1")
    assert who(browser) is None


# -- no iss/sid: the browser's own session --------------------------------------------------------


@pytest.mark.parametrize("store", ["file", "cookie"])
def test_without_iss_and_sid_the_cookies_session_ends(make_middleware: Callable[..., SSOMiddleware],
                                                      provider: FakeProvider, store: str) -> None:
    middleware = make_middleware(frontchannel_logout_path=PATH, session_type=store)
    browser, same_sid_elsewhere = browser_for(middleware), browser_for(middleware)
    sign_in(browser, provider)
    sign_in(same_sid_elsewhere, provider)
    copied_cookie = browser.cookies[middleware.config.session_cookie_name]
    response = browser.get(PATH, status=200)
    assert_frame_headers(response)
    assert any(header.startswith(middleware.config.session_cookie_name + "=;")
               for header in response.headers.getall("Set-Cookie"))
    assert who(browser) is None
    assert who(same_sid_elsewhere) == "alice"  # only the cookie's session: the request named no sid
    replayed = browser_for(middleware)  # a copy of the cookie taken before (cookie store: revoked, not deleted)
    replayed.set_cookie(middleware.config.session_cookie_name, copied_cookie)
    assert who(replayed) is None


def test_without_iss_sid_or_cookie_it_is_a_harmless_200(middleware: SSOMiddleware) -> None:
    """The cross-site iframe of a provider that sends no sid: nothing to end, and nothing we can do."""
    response = frame(middleware)
    assert_frame_headers(response)
    assert "Set-Cookie" not in response.headers


# -- the frame-ancestors -----------------------------------------------------------------------


def test_the_end_session_endpoints_origin_may_frame_it_too(make_middleware: Callable[..., SSOMiddleware],
                                                           provider: FakeProvider) -> None:
    provider.discovery_overrides["end_session_endpoint"] = "https://logout.op.example/oidc/logout"
    middleware = make_middleware(frontchannel_logout_path=PATH)
    assert_frame_headers(frame(middleware, iss=ISSUER, sid="s"),
                         ancestors="https://op.example https://logout.op.example")


def test_without_discovery_the_issuers_origin_alone_and_the_logout_still_works(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    middleware = make_middleware(frontchannel_logout_path=PATH)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    middleware.client._metadata = None  # a fresh worker ...
    provider.fail["/.well-known/openid-configuration"] = 503  # ... whose provider is down
    response = frame(middleware, iss=ISSUER, sid="provider-session-1")
    assert_frame_headers(response)
    assert who(browser) is None


# -- refused ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        pytest.param(urlencode({"iss": "https://evil.example/", "sid": "provider-session-1"}), LogoutIssuerMismatch,
                     id="another-issuer"),
        pytest.param(urlencode({"iss": ISSUER.rstrip("/"), "sid": "provider-session-1"}), LogoutIssuerMismatch,
                     id="issuer-without-its-slash"),
        pytest.param(urlencode({"iss": ISSUER.upper(), "sid": "provider-session-1"}), LogoutIssuerMismatch,
                     id="issuer-other-case"),
        pytest.param(urlencode({"sid": "provider-session-1"}), InvalidLogoutRequest, id="sid-without-iss"),
        pytest.param(urlencode({"iss": ISSUER}), InvalidLogoutRequest, id="iss-without-sid"),
        pytest.param(urlencode([("iss", ISSUER), ("sid", "provider-session-1"), ("sid", "provider-session-2")]),
                     InvalidLogoutRequest, id="sid-twice"),
        pytest.param(urlencode([("iss", ISSUER), ("iss", ISSUER), ("sid", "provider-session-1")]),
                     InvalidLogoutRequest, id="iss-twice"),
        pytest.param(urlencode({"iss": ISSUER, "sid": ""}), InvalidLogoutRequest, id="empty-sid"),
        pytest.param(urlencode({"iss": ISSUER, "sid": "a" * 256}), InvalidLogoutRequest, id="sid-too-long"),
        pytest.param(urlencode({"iss": ISSUER, "sid": "provider session"}), InvalidLogoutRequest, id="sid-space"),
        pytest.param(urlencode({"iss": ISSUER, "sid": "provider-session-1\n"}), InvalidLogoutRequest,
                     id="sid-newline"),
        pytest.param(urlencode({"iss": ISSUER, "sid": "sitzung-ä"}), InvalidLogoutRequest, id="sid-non-ascii"),
        pytest.param("iss=" + ISSUER + "&sid=%ff%fe", InvalidLogoutRequest, id="sid-not-utf8"),
        pytest.param(urlencode({"iss": ISSUER, "sid": "provider-session-1", "x": "y" * 5000}), LogoutRequestTooLong,
                     id="huge-query"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_end_nothing(middleware: SSOMiddleware, provider: FakeProvider, query: str,
                                                     kind: type[InvalidLogoutRequest]) -> None:
    browser = browser_for(middleware)
    sign_in(browser, provider)
    response = frame(middleware, kind.status, query=query)
    assert_frame_headers(response)
    assert response.html.find(id="frontchannel-logout")["data-code"] == kind.code
    assert response.html.find(id="frontchannel-logout").get_text() == kind.message
    assert who(browser) == "alice"


def test_a_foreign_iss_with_the_browsers_cookie_ends_nothing_either(middleware: SSOMiddleware,
                                                                    provider: FakeProvider) -> None:
    """A refused iss/sid request is not "downgraded" to the cookie form."""
    browser = browser_for(middleware)
    sign_in(browser, provider)
    browser.get(PATH + "?" + urlencode({"iss": "https://evil.example/", "sid": "x"}), status=400)
    assert who(browser) == "alice"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
def test_other_methods_are_405_with_allow_get(middleware: SSOMiddleware, provider: FakeProvider, method: str) -> None:
    browser = browser_for(middleware)
    sign_in(browser, provider)
    response = browser.request(PATH, method=method, status=405)
    assert response.headers["Allow"] == "GET"
    assert who(browser) == "alice"


# -- the store ------------------------------------------------------------------------------------


@pytest.fixture(params=["redis"])
def server(request: pytest.FixtureRequest) -> Any:
    running = StoreServer(request.param).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("with_sid", [True, False], ids=["iss-sid", "cookie"])
def test_a_store_outage_is_503_and_a_retry_works(make_middleware: Callable[..., SSOMiddleware],
                                                 provider: FakeProvider, server: StoreServer, with_sid: bool) -> None:
    middleware = make_middleware(frontchannel_logout_path=PATH, session_type=server.session_type,
                                 session_url=server.url, session_store_timeout=0.5)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    params = {"iss": ISSUER, "sid": "provider-session-1"} if with_sid else {}
    url = PATH + ("?" + urlencode(params) if params else "")
    server.pause()
    try:
        response = browser.get(url, status=503)
        assert_frame_headers(response)
        assert response.html.find(id="frontchannel-logout")["data-code"] == "session_store_unavailable"
    finally:
        server.resume()
    browser.get(url, status=200)
    assert who(browser) is None


# -- logs ------------------------------------------------------------------------------------------


def test_the_sid_is_never_logged(middleware: SSOMiddleware, provider: FakeProvider,
                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    frame(middleware, iss=ISSUER, sid="provider-session-1")
    frame(middleware, 400, iss="https://evil.example/", sid="provider-session-1")
    assert "front-channel logout" in caplog.text
    assert "provider-session-1" not in caplog.text


# -- forged sids and the revocation journal (cookie and environ stores) -------------------------------


def journal_size(middleware: SSOMiddleware) -> tuple[int, int]:
    """The revocation journal's bytes on disk and the entries this process holds."""
    revocations = middleware.store.revocations
    assert revocations is not None
    revocations.revoked_since([], 0)  # read what the journal holds now
    size = os.path.getsize(revocations.path) if os.path.exists(revocations.path) else 0
    return size, len(revocations._entries)


def test_forged_sids_do_not_grow_the_revocation_journal(make_middleware: Callable[..., SSOMiddleware],
                                                        provider: FakeProvider) -> None:
    """Anyone may send ``iss`` (public) and a made-up ``sid``: with no index to look it up in, each one
    was appended to the host's journal and held by every worker until the absolute timeout (disk and
    memory without bound).  Only a sid that signed in here is revoked."""
    middleware = make_middleware(frontchannel_logout_path=PATH, session_type="cookie")
    browser = browser_for(middleware)
    sign_in(browser, provider)
    before = journal_size(middleware)
    for n in range(200):
        frame(middleware, iss=ISSUER, sid=f"forged-{n}")
    assert journal_size(middleware) == before
    assert who(browser) == "alice"
    frame(middleware, iss=ISSUER, sid="provider-session-1")  # the real one still ends, on every worker
    assert who(browser) is None


@pytest.mark.parametrize("endpoint", [
    "https://*/logout",  # host-source "*": any https site could frame the route
    "https://*.example/logout",
    "https://op.example;script-src/logout",  # a second directive
    "https://op.example,evil.example/logout",
    "https://op.example'unsafe-inline'/logout",
])
def test_an_end_session_endpoint_that_is_no_origin_never_widens_frame_ancestors(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, endpoint: str
) -> None:
    """The discovery document's URL passes the endpoint checks (https, visible ASCII), but its host is spliced
    into a CSP source list: only an origin whose host is a host name or an IP address may be added."""
    provider.discovery_overrides["end_session_endpoint"] = endpoint
    middleware = make_middleware(frontchannel_logout_path=PATH)
    assert_frame_headers(frame(middleware, iss=ISSUER, sid="s"), ancestors="https://op.example")


@pytest.mark.parametrize("path", [PATH, "/auth/logout"])
def test_a_replayed_revoked_cookie_does_not_grow_the_revocation_journal(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, path: str
) -> None:
    """One account is enough: sign in, keep the cookie, sign out, and send the old cookie again and again.
    Each request named the same (revoked) sign-in and appended its line again, until the journal is
    compacted (only once its first line is past the absolute timeout): the disk filled at ~48 bytes a
    request.  A sign-in already revoked is not revoked again."""
    middleware = make_middleware(frontchannel_logout_path=PATH, session_type="cookie")
    browser = browser_for(middleware)
    sign_in(browser, provider)
    copied_cookie = browser.cookies[middleware.config.session_cookie_name]
    browser.get(path)
    assert who(browser) is None
    after_sign_out = journal_size(middleware)
    for _ in range(50):
        replayed = browser_for(middleware)
        replayed.set_cookie(middleware.config.session_cookie_name, copied_cookie)
        replayed.get(path)
    assert journal_size(middleware) == after_sign_out


def test_signing_one_provider_session_in_again_notes_its_sid_once(make_middleware: Callable[..., SSOMiddleware],
                                                                  provider: FakeProvider) -> None:
    """Silent SSO signs the same provider session in on every visit: one journal line, not one a visit."""
    middleware = make_middleware(frontchannel_logout_path=PATH, session_type="cookie")
    sign_in(browser_for(middleware), provider)
    noted = journal_size(middleware)
    for _ in range(5):
        sign_in(browser_for(middleware), provider)
    assert journal_size(middleware) == noted


def test_a_sign_in_whose_sid_cannot_be_noted_is_a_clean_store_failure(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The note is part of the sign-in (without it a front-channel logout could not end the session):
    a journal that cannot be written is the store-unavailable page, and no session -- never a 500."""
    middleware = make_middleware(frontchannel_logout_path=PATH, session_type="cookie")
    revocations = middleware.store.revocations
    assert revocations is not None

    def unwritable(keys: Any, now: float) -> None:
        raise StoreUnavailable("revocations: No space left on device (test)")

    monkeypatch.setattr(revocations, "record", unwritable)
    browser = browser_for(middleware)
    response = browser.get("/auth/sso", {"connection": "Username-Password-Authentication", "target_url": "/"})
    response = browser.get(provider.authorize(response.location))
    assert response.status_int == 303 and "error=session_store_unavailable" in response.location
    assert who(browser) is None


def test_a_later_sign_in_of_the_same_sid_keeps_its_note_alive_as_long_as_its_session(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    """The journal drops a note once it is past the horizon (the absolute timeout): a sid signed in again
    later must be noted again, or its newer session would outlive the note and a front-channel logout
    of that sid would no longer end it."""
    clock = Clock(int(time.time()))
    provider.clock = clock
    middleware = make_middleware(frontchannel_logout_path=PATH, session_type="cookie", clock=clock)
    revocations = middleware.store.revocations
    assert revocations is not None
    sign_in(browser_for(middleware), provider)
    clock.advance(3600)  # well past the clock skew: the first note would go an hour before this session
    sign_in(browser_for(middleware), provider)
    revocations.revoked_since([], 0)
    noted = revocations._entries[revocations.name(SIGNED_IN_SID + "provider-session-1")]
    assert noted >= clock() - 2 * middleware.config.clock_skew
