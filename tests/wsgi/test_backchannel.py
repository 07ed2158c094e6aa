"""``POST /auth/backchannel-logout`` (OpenID Connect Back-Channel Logout 1.0) through ``webtest``.

Users sign in through the fake provider, whose ID tokens carry
``sid: provider-session-1``; the provider's back channel is played by posting
a ``logout_token`` signed with the provider's real key.  Several middleware
instances built with the same settings share one store, like the processes of
one deployment.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from typing import Any, Callable, Optional

import pytest
import requests
import webtest

from sso_middleware import SSOMiddleware
from sso_middleware._oidc.id_token import LOGOUT_EVENT
from sso_middleware.testing import Clock

from ..conftest import browser_for
from ..fakes import CLIENT_ID, ISSUER, FakeProvider, rsa_key
from ..store_servers import StoreServer
from ..tokens import ec_jwk, ec_key, forge, sign

CONNECTION = "Username-Password-Authentication"
PATH = "/auth/backchannel-logout"

Browser = webtest.TestApp


# -- helpers -------------------------------------------------------------------


def logout_token(sid: Optional[str] = "provider-session-1", sub: Optional[str] = None, key: Any = None,
                 kid: str = "key-1", typ: str = "logout+jwt", alg: str = "RS256", **overrides: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": ISSUER, "aud": CLIENT_ID, "iat": now, "exp": now + 120,
                               "jti": secrets.token_urlsafe(12), "events": {LOGOUT_EVENT: {}}}
    if sid is not None:
        payload["sid"] = sid
    if sub is not None:
        payload["sub"] = sub
    payload.update(overrides)
    payload = {name: value for name, value in payload.items() if value is not None}
    return sign(payload, key=key, alg=alg, kid=kid, typ=typ)


def post_logout(browser: Browser, token: Optional[str], status: int = 200, **kwargs: Any) -> webtest.TestResponse:
    """What the provider does: a form POST without cookies, from its own HTTP client."""
    provider_side = webtest.TestApp(browser.app, extra_environ=browser.extra_environ)
    body = {} if token is None else {"logout_token": token}
    response: webtest.TestResponse = provider_side.post(PATH, body, status=status, **kwargs)
    return response


def sign_in(browser: Browser, provider: FakeProvider, user: str = "alice", sid: Optional[str] = None) -> None:
    if sid is not None:
        provider.id_token_overrides["sid"] = sid
    try:
        response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/"})
        response = browser.get(provider.authorize(response.location, user=user))
        assert response.status_int == 303 and response.location == "https://app2.example/", response.location
    finally:
        provider.id_token_overrides.pop("sid", None)


def who(browser: Browser) -> Optional[str]:
    remote_user: Optional[str] = browser.get("/page").json["remote_user"]
    return remote_user


@pytest.fixture
def middleware(make_middleware: Callable[..., SSOMiddleware]) -> SSOMiddleware:
    return make_middleware()


# -- the route and its answers -----------------------------------------------------------


def test_get_is_405_with_allow_post(middleware: SSOMiddleware) -> None:
    response = browser_for(middleware).get(PATH, status=405)
    assert response.headers["Allow"] == "POST"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_other_methods_are_405(middleware: SSOMiddleware, method: str) -> None:
    response = browser_for(middleware).request(PATH, method=method, status=405)
    assert response.headers["Allow"] == "POST"


def test_post_without_a_token_is_400_json(middleware: SSOMiddleware) -> None:
    response = post_logout(browser_for(middleware), None, status=400)
    assert response.content_type == "application/json"
    assert response.json["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_token_in_the_query_string_is_refused(middleware: SSOMiddleware, provider: FakeProvider) -> None:
    """Tokens never travel in URLs (they end up in access logs): only the POST body counts."""
    browser = browser_for(middleware)
    sign_in(browser, provider)
    response = webtest.TestApp(middleware, extra_environ=browser.extra_environ).post(
        f"{PATH}?logout_token={logout_token()}", status=400)
    assert response.json["error"] == "invalid_request"
    assert who(browser) == "alice"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: logout_token(key=rsa_key("attacker")), id="bad-signature"),
        pytest.param(lambda: logout_token(nonce="n"), id="nonce"),
        pytest.param(lambda: logout_token(events=None), id="no-events"),
        pytest.param(lambda: logout_token(aud="another-client"), id="wrong-aud"),
        pytest.param(lambda: logout_token(exp=int(time.time()) - 3600), id="expired"),
        pytest.param(lambda: logout_token(sid=None), id="neither-sub-nor-sid"),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
        pytest.param(lambda: logout_token(jti=None), id="no-jti"),
        pytest.param(lambda: logout_token(jti=""), id="empty-jti"),
        pytest.param(lambda: logout_token(jti=12), id="integer-jti"),
    ],
)
def test_an_invalid_token_is_400_and_ends_nothing(middleware: SSOMiddleware, provider: FakeProvider,
                                                  token: Callable[[], str]) -> None:
    browser = browser_for(middleware)
    sign_in(browser, provider)
    response = post_logout(browser, token(), status=400)
    assert response.json["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"
    assert who(browser) == "alice"


def test_an_id_token_replayed_as_a_logout_token_is_refused(middleware: SSOMiddleware,
                                                           provider: FakeProvider) -> None:
    browser = browser_for(middleware)
    sign_in(browser, provider)
    post_logout(browser, provider.make_id_token(nonce="nonce-1"), status=400)
    assert who(browser) == "alice"


# -- ending sessions ---------------------------------------------------------------------


def test_a_valid_token_with_sid_ends_that_session_only(middleware: SSOMiddleware, provider: FakeProvider) -> None:
    first, second, bob = browser_for(middleware), browser_for(middleware), browser_for(middleware)
    sign_in(first, provider)
    sign_in(second, provider, sid="provider-session-2")  # the same user, another provider session
    sign_in(bob, provider, "bob", sid="provider-session-3")
    response = post_logout(first, logout_token(sid="provider-session-1"))
    assert response.status_int == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert who(first) is None
    assert who(second) == "alice"
    assert who(bob) == "bob"


def test_a_token_with_sid_and_sub_ends_the_sid(middleware: SSOMiddleware, provider: FakeProvider) -> None:
    first, second = browser_for(middleware), browser_for(middleware)
    sign_in(first, provider)
    sign_in(second, provider, sid="provider-session-2")
    post_logout(first, logout_token(sid="provider-session-1", sub="alice"))
    assert who(first) is None
    assert who(second) == "alice"


def test_a_token_with_only_sub_ends_every_session_of_that_sub(middleware: SSOMiddleware,
                                                              provider: FakeProvider) -> None:
    first, second, bob = browser_for(middleware), browser_for(middleware), browser_for(middleware)
    sign_in(first, provider)
    sign_in(second, provider, sid="provider-session-2")
    sign_in(bob, provider, "bob", sid="provider-session-3")
    post_logout(first, logout_token(sid=None, sub="alice"))
    assert who(first) is None
    assert who(second) is None
    assert who(bob) == "bob"


def sign_in_without_sid(browser: Browser, provider: FakeProvider, user: str = "alice") -> None:
    """A sign-in whose ID token carries no ``sid`` (the provider's logout tokens still may)."""
    provider.id_token_overrides["sid"] = None  # None removes the claim; sign_in() restores it
    sign_in(browser, provider, user)


@pytest.mark.parametrize("store", [{}, {"session_type": "cookie"}], ids=["file", "cookie"])
def test_a_token_with_sid_and_sub_also_ends_that_subs_sessions_stored_without_a_sid(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, store: dict[str, Any]
) -> None:
    """Issue 13 item 19: ID tokens without ``sid``, logout tokens with ``sid`` and ``sub``."""
    middleware = make_middleware(**store)
    sidless, other_sid, bob = browser_for(middleware), browser_for(middleware), browser_for(middleware)
    sign_in_without_sid(sidless, provider)
    sign_in(other_sid, provider, sid="provider-session-2")
    sign_in_without_sid(bob, provider, "bob")
    post_logout(sidless, logout_token(sid="provider-session-1", sub="alice"))
    assert who(sidless) is None
    assert who(other_sid) == "alice"  # a session of another sid is never ended by this token
    assert who(bob) == "bob"


@pytest.mark.parametrize("store", [{}, {"session_type": "cookie"}], ids=["file", "cookie"])
def test_a_token_with_only_sid_leaves_sessions_without_a_sid(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, store: dict[str, Any]
) -> None:
    middleware = make_middleware(**store)
    sidless = browser_for(middleware)
    sign_in_without_sid(sidless, provider)
    post_logout(sidless, logout_token(sid="provider-session-1"))  # names no user: nothing to match
    assert who(sidless) == "alice"


def test_a_token_for_an_unknown_sid_is_200_and_ends_nothing(middleware: SSOMiddleware,
                                                            provider: FakeProvider) -> None:
    browser = browser_for(middleware)
    sign_in(browser, provider)
    post_logout(browser, logout_token(sid="some-other-session"))
    assert who(browser) == "alice"


def test_a_session_ended_elsewhere_ends_on_every_instance_sharing_the_store(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    one, other = make_middleware(), make_middleware()  # two processes of one deployment
    browser = browser_for(one)
    sign_in(browser, provider)
    post_logout(browser_for(other), logout_token())
    assert who(browser) is None
    assert who(browser_for(other)) is None


def test_a_replayed_jti_is_refused(middleware: SSOMiddleware, provider: FakeProvider) -> None:
    browser = browser_for(middleware)
    token = logout_token(sid="unused-session")
    post_logout(browser, token)
    response = post_logout(browser, token, status=400)
    assert response.json["error_description"] == "invalid_logout_token"
    # The same logout in a fresh token (new jti) is fine.
    post_logout(browser, logout_token(sid="unused-session"))


def test_a_token_without_jti_is_refused_every_time(middleware: SSOMiddleware, provider: FakeProvider) -> None:
    """Back-Channel Logout 1.0 section 2.4: ``jti`` is REQUIRED; without one, replays go undetected (400, 2.8)."""
    browser = browser_for(middleware)
    sign_in(browser, provider)
    token = logout_token(jti=None)
    for _ in range(2):
        response = post_logout(browser, token, status=400)
        assert response.json == {"error": "invalid_request", "error_description": "invalid_logout_token"}
    assert who(browser) == "alice"


def test_an_es256_token_from_a_provider_advertising_only_rs256_is_refused(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    """Issue 13 item 15: logout tokens are signed like ID tokens, with an algorithm the provider advertises."""
    provider.jwks_keys = [ec_jwk(ec_key(), "ec-1"), *provider.jwks()["keys"]]
    browser = browser_for(make_middleware(id_token_algorithms=("RS256", "ES256")))
    sign_in(browser, provider)
    token = logout_token(key=ec_key(), kid="ec-1", alg="ES256")
    assert provider.discovery()["id_token_signing_alg_values_supported"] == ["RS256"]
    post_logout(browser, token, status=400)
    assert who(browser) == "alice"
    provider.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "ES256"]
    fresh = browser_for(make_middleware(id_token_algorithms=("RS256", "ES256")))
    post_logout(fresh, logout_token(key=ec_key(), kid="ec-1", alg="ES256"))
    assert who(browser) is None  # advertised: the same kind of token is carried out


def test_an_unsigned_token_is_refused_even_with_none_allowed(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    """Issue 13 item 18: ``none`` is for ID tokens from the token endpoint only, never for logout tokens."""
    provider.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "none"]
    browser = browser_for(make_middleware(id_token_algorithms=("RS256", "none")))
    sign_in(browser, provider)
    _, body, _ = logout_token().split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    post_logout(browser, forge({"alg": "none", "typ": "logout+jwt"}, payload), status=400)
    assert who(browser) == "alice"


def test_jwks_unreachable_is_503_and_a_retry_succeeds(make_middleware: Callable[..., SSOMiddleware],
                                                      provider: FakeProvider) -> None:
    signed_in_through = make_middleware()
    browser = browser_for(signed_in_through)
    sign_in(browser, provider)
    receiver = make_middleware()  # another process: no keys cached yet
    provider.fail["/.well-known/jwks.json"] = requests.ConnectionError("connection refused")
    token = logout_token()
    response = post_logout(browser_for(receiver), token, status=503)
    assert response.json["error"] == "temporarily_unavailable"
    assert response.headers["Cache-Control"] == "no-store"
    assert who(browser) == "alice"
    del provider.fail["/.well-known/jwks.json"]
    # The provider retries the same token later (after the JWKS retry pause): not a replay.
    later = time.monotonic() + 10
    receiver.client.keys._clock = lambda: later
    post_logout(browser_for(receiver), token)
    assert who(browser) is None


def test_discovery_unreachable_is_503(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    provider.fail["/.well-known/openid-configuration"] = requests.ConnectionError("connection refused")
    response = post_logout(browser_for(make_middleware()), logout_token(), status=503)
    assert response.json["error"] == "temporarily_unavailable"


def test_an_empty_path_disables_the_route(make_middleware: Callable[..., SSOMiddleware]) -> None:
    browser = browser_for(make_middleware(backchannel_logout_path=""))
    response = browser.post(PATH, {"logout_token": logout_token()})
    assert response.status_int == 200
    assert response.json["path"] == PATH  # the wrapped app answered


def test_the_route_follows_its_setting(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    middleware = make_middleware(backchannel_logout_path="/oidc/bc-logout")
    browser = browser_for(middleware)
    sign_in(browser, provider)
    assert browser.post(PATH, {"logout_token": logout_token()}).json["path"] == PATH  # now the app's
    webtest.TestApp(middleware, extra_environ=browser.extra_environ).post(
        "/oidc/bc-logout", {"logout_token": logout_token()}, status=200)
    assert who(browser) is None


# -- stores that cannot be searched: the in-process revocation list -----------------------------


@pytest.mark.parametrize("token_kwargs", [{"sid": "provider-session-1"}, {"sid": None, "sub": "alice"}],
                         ids=["sid", "sub"])
def test_cookie_store_revokes_in_process(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider,
                                         token_kwargs: dict[str, Any]) -> None:
    clock = Clock()
    middleware = make_middleware(session_type="cookie", clock=clock)
    browser, bob = browser_for(middleware), browser_for(middleware)
    sign_in(browser, provider)
    sign_in(bob, provider, "bob", sid="provider-session-3")
    post_logout(browser, logout_token(**token_kwargs))
    assert who(browser) is None
    assert who(bob) == "bob"
    # Signing in again after the logout is not undone by it.
    clock.advance(5)
    sign_in(browser, provider)
    assert who(browser) == "alice"


def test_cookie_store_revocations_reach_every_process_of_the_host(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider
) -> None:
    """Cookie stores keep revocations in a host-wide registry in the data folder, not per process."""
    one, other = make_middleware(session_type="cookie"), make_middleware(session_type="cookie")
    browser = browser_for(one)
    sign_in(browser, provider)
    post_logout(browser_for(other), logout_token())
    assert who(browser) is None


def test_environ_store_revokes_in_process(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider,
                                          tmp_path: Any) -> None:
    from beaker.middleware import SessionMiddleware

    inner = make_middleware(session_type="environ")
    outer = SessionMiddleware(inner, type="file", data_dir=str(tmp_path / "outer"), key="app_session",
                              secret="outer-secret-" + "x" * 30, data_serializer="json")
    browser = webtest.TestApp(outer, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"})
    sign_in(browser, provider)
    assert who(browser) == "alice"
    post_logout(browser, logout_token())
    assert who(browser) is None


# -- shared stores ----------------------------------------------------------------------------


@pytest.fixture
def server(shared_server: Any) -> Any:
    """Back-channel logout through a shared store's index: Redis, memcached and PostgreSQL alike."""
    return shared_server


def test_shared_store_sessions_end_on_every_instance(make_middleware: Callable[..., SSOMiddleware],
                                                     provider: FakeProvider, server: StoreServer) -> None:
    settings = {"session_type": server.session_type, "session_url": server.url, "session_store_timeout": 0.5}
    one, other = make_middleware(**settings), make_middleware(**settings)
    first, second = browser_for(one), browser_for(one)
    sign_in(first, provider)
    sign_in(second, provider, sid="provider-session-2")
    post_logout(browser_for(other), logout_token())
    assert who(first) is None
    assert who(second) == "alice"
    post_logout(browser_for(other), logout_token(sid=None, sub="alice"))
    assert who(second) is None


def test_shared_store_sessions_without_a_sid_end_by_sid_and_sub(make_middleware: Callable[..., SSOMiddleware],
                                                                 provider: FakeProvider, server: StoreServer) -> None:
    settings = {"session_type": server.session_type, "session_url": server.url, "session_store_timeout": 0.5}
    one, other = make_middleware(**settings), make_middleware(**settings)
    sidless, with_sid = browser_for(one), browser_for(one)
    sign_in_without_sid(sidless, provider)
    sign_in(with_sid, provider, sid="provider-session-2")
    post_logout(browser_for(other), logout_token(sid="provider-session-1", sub="alice"))
    assert who(sidless) is None
    assert who(with_sid) == "alice"


def test_a_store_outage_is_503_and_the_same_token_works_when_it_returns(
    make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider, server: StoreServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The provider may retry a logout the RP could not carry out: its jti must not count as used."""
    middleware = make_middleware(session_type=server.session_type, session_url=server.url,
                                 session_store_timeout=0.5)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    token = logout_token()
    server.pause()  # hung: records kept, calls time out
    try:
        response = post_logout(browser, token, status=503)
        assert response.content_type == "application/json"
        assert response.json["error"] == "temporarily_unavailable"
        assert response.headers["Cache-Control"] == "no-store"
    finally:
        server.resume()
    deadline = time.monotonic() + 5
    while True:  # python-memcached retries a dead server after a second
        response = post_logout(browser, token, status="*")
        if response.status_int != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_int == 200, response
    assert who(browser) is None
    for record in caplog.records:
        assert record.exc_info is None


# -- logs ----------------------------------------------------------------------------------


def test_log_lines_never_contain_the_token(middleware: SSOMiddleware, provider: FakeProvider,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    browser = browser_for(middleware)
    sign_in(browser, provider)
    tokens = [logout_token(key=rsa_key("attacker")), logout_token(nonce="n"), logout_token(), "x.y"]
    post_logout(browser, tokens[0], status=400)
    post_logout(browser, tokens[1], status=400)
    post_logout(browser, tokens[2], status=200)
    post_logout(browser, tokens[2], status=400)  # replay
    post_logout(browser, tokens[3], status=400)
    assert caplog.records
    for token in tokens:
        for part in token.split("."):
            if len(part) > 8:
                assert part not in caplog.text
    assert "back-channel logout refused" in caplog.text
