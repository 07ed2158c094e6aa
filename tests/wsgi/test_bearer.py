"""Bearer tokens on API paths, end to end through WebTest with the fake provider.

Statuses and challenges (RFC 6750 section 3), what the app sees, that no session is
read or written for a bearer request, sessions on bearer paths (and ``bearer_only``),
``bearer_rules`` scopes, opaque tokens refused or introspected (RFC 7662) with a bounded,
expiring cache, and a provider that is down.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any, Callable, Optional
from urllib.parse import parse_qs

import pytest
import requests
import webtest

from sso_middleware import SSOMiddleware, get_scopes
from sso_middleware.errors import InvalidAccessToken
from sso_middleware.testing import Clock

from ..conftest import browser_for
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider, make_response
from ..tokens import API, access_token, claims, sign

INTROSPECT = ISSUER + "oauth/introspect"
REALM = f'Bearer realm="{BASE_URL}"'


def api_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """An API showing what the middleware told it (and the body it received)."""
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.dumps({
        "path": environ.get("PATH_INFO"),
        "remote_user": environ.get("REMOTE_USER"),
        "userinfo": environ.get("sso.userinfo"),
        "scopes": get_scopes(environ),
        "sso_keys": sorted(key for key in environ if key.startswith("sso.")),
        "body": environ["wsgi.input"].read(size).decode() if size else "",
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def bearer_settings(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"bearer_paths": "/api", "bearer_audience": API,
                              "bearer_rules": "/api/admin scope read:admin"}
    values.update(overrides)
    return values


@pytest.fixture
def make_api(make_middleware: Callable[..., SSOMiddleware]) -> Callable[..., tuple[SSOMiddleware, webtest.TestApp]]:
    def build(**overrides: Any) -> tuple[SSOMiddleware, webtest.TestApp]:
        middleware = make_middleware(api_app, **bearer_settings(**overrides))
        return middleware, browser_for(middleware)

    return build


@pytest.fixture
def api(make_api: Callable[..., tuple[SSOMiddleware, webtest.TestApp]]) -> tuple[SSOMiddleware, webtest.TestApp]:
    return make_api()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: webtest.TestResponse) -> str:
    value: str = response.headers["WWW-Authenticate"]
    return value


def refused(response: webtest.TestResponse, status: int, code: str, error: Optional[str]) -> dict[str, Any]:
    """Check a refusal's shape: status, JSON body with the code, the challenge, never cached nor a cookie."""
    assert response.status_int == status, response
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    body: dict[str, Any] = response.json
    assert body["code"] == code
    assert body.get("error") == error
    if error is None:
        assert challenge(response) == REALM  # RFC 6750 section 3.1: no error code without credentials
    else:
        assert challenge(response).startswith(f'{REALM}, error="{error}"'), challenge(response)
    return body


def sign_in(browser: webtest.TestApp, provider: FakeProvider, user: str = "alice") -> None:
    response = browser.get("/auth/login", {"target_url": "/"})
    browser.get(provider.authorize(response.location, user=user))
    assert browser.cookies, "signed in"


class NoStore:
    """A session store that fails the test when touched."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the session store was used ({name}) for a bearer request")


# -- a valid token ----------------------------------------------------------------


def test_a_valid_token_reaches_the_app_with_its_claims_and_scopes(api: tuple[SSOMiddleware, webtest.TestApp]) -> None:
    _, browser = api
    token = access_token()
    response = browser.get("/api/messages", headers=bearer(token))
    assert response.status_int == 200
    seen = response.json
    assert seen["remote_user"] == "alice"
    assert seen["userinfo"]["aud"] == API and seen["userinfo"]["client_id"] == "spa-client"
    assert seen["scopes"] == ["read:messages", "read:admin"]
    assert seen["sso_keys"] == ["sso.scopes", "sso.userinfo"]  # no session keys, no access token echoed
    assert "Set-Cookie" not in response.headers


def test_a_bearer_request_never_touches_the_session_store(api: tuple[SSOMiddleware, webtest.TestApp],
                                                          provider: FakeProvider) -> None:
    middleware, browser = api
    sign_in(browser, provider, "bob")  # the browser even has a session cookie
    middleware.store = NoStore()  # type: ignore[assignment]
    response = browser.get("/api/messages", headers=bearer(access_token()))
    assert response.json["remote_user"] == "alice"  # the token's user, not the session's
    assert "Set-Cookie" not in response.headers


def test_scheme_is_case_insensitive_and_spaces_are_allowed(api: tuple[SSOMiddleware, webtest.TestApp]) -> None:
    _, browser = api
    for header in (f"bearer {access_token()}", f"BEARER   {access_token()}"):
        assert browser.get("/api/x", headers={"Authorization": header}).status_int == 200


def test_remote_user_claim_is_honoured(make_api: Callable[..., Any]) -> None:
    _, browser = make_api(remote_user_claim="client_id")
    assert browser.get("/api/x", headers=bearer(access_token())).json["remote_user"] == "spa-client"


def test_forged_environ_keys_are_stripped(api: tuple[SSOMiddleware, webtest.TestApp]) -> None:
    _, browser = api
    forged = {"sso.scopes": ("read:admin",), "sso.userinfo": {"sub": "root"}, "REMOTE_USER": "root"}
    seen = browser.get("/public", extra_environ=forged).json
    assert (seen["scopes"], seen["userinfo"], seen["remote_user"]) == (None, None, None)
    response = browser.get("/api/x", extra_environ=forged, expect_errors=True)
    refused(response, 401, "bearer_token_missing", None)


def test_other_paths_ignore_bearer_tokens(api: tuple[SSOMiddleware, webtest.TestApp]) -> None:
    _, browser = api
    seen = browser.get("/dashboard", headers=bearer(access_token())).json
    assert (seen["remote_user"], seen["scopes"]) == (None, None)
    seen = browser.get("/apiary", headers=bearer(access_token())).json  # a prefix is a whole segment
    assert seen["remote_user"] is None


@pytest.mark.parametrize("path", ["/api", "/api/", "//api/x", "/x/../api/x", "/api/./x"])
def test_bearer_paths_match_like_access_rules(api: tuple[SSOMiddleware, webtest.TestApp], path: str) -> None:
    _, browser = api
    refused(browser.get(path, expect_errors=True), 401, "bearer_token_missing", None)


# -- no token ---------------------------------------------------------------------


def test_no_token_and_no_session_is_a_bare_401_challenge(api: tuple[SSOMiddleware, webtest.TestApp]) -> None:
    _, browser = api
    body = refused(browser.get("/api/messages", expect_errors=True), 401, "bearer_token_missing", None)
    assert "error_description" not in body
    page_load = browser.get("/api/messages", headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"},
                            expect_errors=True)
    refused(page_load, 401, "bearer_token_missing", None)  # an API: never a redirect to sign in


def test_a_session_is_honoured_without_an_authorization_header(api: tuple[SSOMiddleware, webtest.TestApp],
                                                              provider: FakeProvider) -> None:
    _, browser = api
    sign_in(browser, provider)
    seen = browser.get("/api/messages").json
    assert seen["remote_user"] == "alice"
    assert seen["scopes"] is None  # a session user has no token scopes
    assert "sso.connection" in seen["sso_keys"]


def test_bearer_only_refuses_sessions(make_api: Callable[..., Any], provider: FakeProvider) -> None:
    _, browser = make_api(bearer_only=True)
    sign_in(browser, provider)
    refused(browser.get("/api/messages", expect_errors=True), 401, "bearer_token_missing", None)
    assert browser.get("/dashboard").json["remote_user"] == "alice"  # elsewhere the session still works
    assert browser.get("/api/messages", headers=bearer(access_token())).status_int == 200


def test_bearer_rules_hold_for_session_users_too(api: tuple[SSOMiddleware, webtest.TestApp],
                                                 provider: FakeProvider) -> None:
    _, browser = api
    sign_in(browser, provider)
    body = refused(browser.get("/api/admin/users", expect_errors=True), 403, "insufficient_scope",
                   "insufficient_scope")
    assert body["scope"] == "read:admin"


# -- malformed requests -----------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer", id="no-token"),
        pytest.param("Bearer ", id="empty-token"),
        pytest.param("Bearer a b", id="two-tokens"),
        pytest.param("Bearer tok\tx", id="tab"),
        pytest.param("Bearer tok,Bearer other", id="two-credentials"),
        pytest.param("Bearer tök", id="non-ascii"),
        pytest.param("Bearer " + "a" * 20000, id="too-long"),
        pytest.param("", id="empty-header"),
        pytest.param("Bearer =abc", id="padding-first"),
    ],
)
def test_malformed_credentials_are_invalid_request(api: tuple[SSOMiddleware, webtest.TestApp], header: str) -> None:
    _, browser = api
    environ = {"HTTP_AUTHORIZATION": header}
    response = browser.get("/api/x", extra_environ=environ, expect_errors=True)
    body = refused(response, 400, "invalid_bearer_request", "invalid_request")
    assert body["error_description"]


def test_another_scheme_leaves_it_to_the_session(api: tuple[SSOMiddleware, webtest.TestApp],
                                                 provider: FakeProvider) -> None:
    _, browser = api
    basic = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    refused(browser.get("/api/x", headers=basic, expect_errors=True), 401, "bearer_token_missing", None)
    sign_in(browser, provider)
    assert browser.get("/api/x", headers=basic).json["remote_user"] == "alice"


def test_another_scheme_with_bearer_only_is_invalid_request(make_api: Callable[..., Any]) -> None:
    _, browser = make_api(bearer_only=True)
    response = browser.get("/api/x", headers={"Authorization": "Basic dTpw"}, expect_errors=True)
    refused(response, 400, "invalid_bearer_request", "invalid_request")


def test_a_token_in_the_query_string_is_refused_even_beside_a_header(
        api: tuple[SSOMiddleware, webtest.TestApp]) -> None:
    _, browser = api
    token = access_token()
    for headers in ({}, bearer(token)):
        response = browser.get("/api/x", {"access_token": token}, headers=headers, expect_errors=True)
        refused(response, 400, "invalid_bearer_request", "invalid_request")


def test_a_token_in_a_form_body_is_never_read(api: tuple[SSOMiddleware, webtest.TestApp],
                                              provider: FakeProvider) -> None:
    _, browser = api
    form = {"access_token": access_token()}
    refused(browser.post("/api/x", form, expect_errors=True), 401, "bearer_token_missing", None)
    sign_in(browser, provider)
    seen = browser.post("/api/x", form).json
    assert seen["scopes"] is None  # the session's user: the body's token counted for nothing
    assert parse_qs(seen["body"]) == {"access_token": [form["access_token"]]}  # and the body is intact


# -- invalid tokens ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "description"),
    [
        pytest.param(lambda: access_token(exp=int(time.time()) - 3600), "expired", id="expired"),
        pytest.param(lambda: access_token(aud="https://other.example/"), "Audience", id="wrong-aud"),
        pytest.param(lambda: access_token(iss="https://evil.example/"), "iss", id="wrong-iss"),
        pytest.param(lambda: access_token(typ="JWT"), "typ", id="typ-JWT"),
        pytest.param(lambda: sign(claims()), "typ", id="an-id-token"),
        pytest.param(lambda: access_token(kid="unknown"), "kid", id="unknown-kid"),
        pytest.param(lambda: "opaque-token-value", "not a JWT", id="opaque"),
    ],
)
def test_invalid_tokens_get_invalid_token(api: tuple[SSOMiddleware, webtest.TestApp],
                                          token: Callable[[], str], description: str) -> None:
    _, browser = api
    body = refused(browser.get("/api/x", headers=bearer(token()), expect_errors=True), 401, "invalid_access_token",
                   "invalid_token")
    assert description in body["error_description"], body
    assert f'error_description="{body["error_description"]}"' in challenge(
        browser.get("/api/x", headers=bearer(token()), expect_errors=True))


def test_auth0_default_profile_typ_jwt(make_api: Callable[..., Any]) -> None:
    _, browser = make_api(bearer_token_type="JWT")
    assert browser.get("/api/x", headers=bearer(access_token(typ="JWT"))).status_int == 200
    assert browser.get("/api/x", headers=bearer(access_token(typ=None))).status_int == 200
    # an ID token still fails: its audience is the client, and it has a nonce
    refused(browser.get("/api/x", headers=bearer(sign(claims())), expect_errors=True), 401,
            "invalid_access_token", "invalid_token")


def test_leeway_is_clock_skew_and_the_clock_is_the_middlewares(make_api: Callable[..., Any]) -> None:
    clock = Clock(1_900_000_000.0)
    _, browser = make_api(clock=clock, clock_skew=10)
    token = access_token(clock.now)  # exp = now + 300
    assert browser.get("/api/x", headers=bearer(token)).status_int == 200
    clock.advance(305)
    assert browser.get("/api/x", headers=bearer(token)).status_int == 200  # within the 10 s of skew
    clock.advance(10)
    refused(browser.get("/api/x", headers=bearer(token), expect_errors=True), 401, "invalid_access_token",
            "invalid_token")


# -- scopes -----------------------------------------------------------------------


def test_insufficient_scope_is_403_naming_the_scope(api: tuple[SSOMiddleware, webtest.TestApp]) -> None:
    _, browser = api
    reader = access_token(scope="read:messages")
    assert browser.get("/api/messages", headers=bearer(reader)).status_int == 200
    response = browser.get("/api/admin/x", headers=bearer(reader), expect_errors=True)
    body = refused(response, 403, "insufficient_scope", "insufficient_scope")
    assert body["scope"] == "read:admin"
    assert challenge(response).endswith(', scope="read:admin"')
    assert browser.get("/api/admin/x", headers=bearer(access_token())).json["scopes"] == ["read:messages",
                                                                                          "read:admin"]
    refused(browser.get("/api/admin", headers=bearer(access_token(scope=None)), expect_errors=True), 403,
            "insufficient_scope", "insufficient_scope")


def test_every_listed_scope_and_claim_is_required(make_api: Callable[..., Any]) -> None:
    _, browser = make_api(bearer_rules="/api/w scope write:a,write:b\n/api/w claim client_id equals spa-client")
    assert browser.get("/api/w", headers=bearer(access_token(scope="write:a write:b"))).status_int == 200
    response = browser.get("/api/w", headers=bearer(access_token(scope="write:a")), expect_errors=True)
    assert refused(response, 403, "insufficient_scope", "insufficient_scope")["scope"] == "write:a write:b"
    other_client = access_token(scope="write:a write:b", client_id="other")
    refused(browser.get("/api/w", headers=bearer(other_client), expect_errors=True), 403, "insufficient_scope",
            "insufficient_scope")


# -- the provider -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        pytest.param(503, 503, "provider_unreachable", id="jwks-503"),
        pytest.param(requests.ConnectionError("refused"), 503, "provider_unreachable", id="jwks-refused"),
        pytest.param(requests.exceptions.ReadTimeout("slow"), 504, "provider_timeout", id="jwks-timeout"),
    ],
)
def test_a_provider_that_is_down_gets_a_clean_answer(api: tuple[SSOMiddleware, webtest.TestApp],
                                                     provider: FakeProvider, fault: Any, status: int,
                                                     code: str) -> None:
    _, browser = api
    provider.fail = {"/.well-known/jwks.json": fault}
    started = time.monotonic()
    response = browser.get("/api/x", headers=bearer(access_token()), expect_errors=True)
    assert time.monotonic() - started < 2
    assert response.status_int == status
    assert response.json["code"] == code
    assert response.headers["Cache-Control"] == "no-store"
    assert "Traceback" not in response.text and "WWW-Authenticate" not in response.headers


def test_the_jwks_is_fetched_once_for_many_requests(api: tuple[SSOMiddleware, webtest.TestApp],
                                                    provider: FakeProvider) -> None:
    _, browser = api
    for _ in range(5):
        assert browser.get("/api/x", headers=bearer(access_token())).status_int == 200
    assert len(provider.requests_to("/jwks.json")) == 1


# -- introspection ----------------------------------------------------------------


class Introspection:
    """The fake provider's RFC 7662 endpoint: answers per token, records what it was sent."""

    def __init__(self, provider: FakeProvider) -> None:
        self.answers: dict[str, dict[str, Any]] = {}
        self.provider = provider
        self.requests: list[tuple[dict[str, list[str]], str]] = []
        provider.discovery_overrides["introspection_endpoint"] = INTROSPECT
        provider.fail["/oauth/introspect"] = self

    def __call__(self, request: requests.PreparedRequest) -> requests.Response:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        form = parse_qs(body)
        self.requests.append((form, request.headers.get("Authorization", "")))
        answer = self.answers.get(form["token"][0], {"active": False})
        return make_response(request, 200, json.dumps(answer).encode())

    def active(self, token: str, **overrides: Any) -> None:
        answer = {"active": True, "sub": "alice", "aud": API, "iss": ISSUER, "client_id": "spa-client",
                  "scope": "read:messages", "token_type": "Bearer", "exp": int(time.time()) + 300}
        answer.update(overrides)
        self.answers[token] = {key: value for key, value in answer.items() if value is not None}


@pytest.fixture
def introspection(provider: FakeProvider) -> Introspection:
    return Introspection(provider)


def test_opaque_tokens_are_introspected_with_the_clients_credentials(
        make_api: Callable[..., Any], introspection: Introspection) -> None:
    _, browser = make_api(bearer_introspection=True)
    introspection.active("opaque-1")
    seen = browser.get("/api/messages", headers=bearer("opaque-1")).json
    assert (seen["remote_user"], seen["scopes"]) == ("alice", ["read:messages"])
    assert "active" not in seen["userinfo"]
    ((form, auth),) = introspection.requests
    assert form == {"token": ["opaque-1"], "token_type_hint": ["access_token"]}
    assert auth == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    # a JWT is still checked locally, never sent to the provider
    assert browser.get("/api/messages", headers=bearer(access_token())).status_int == 200
    assert len(introspection.requests) == 1


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        pytest.param({"active": False}, "not active", id="inactive"),
        pytest.param({"active": "true"}, "not active", id="active-a-string"),
        pytest.param({"aud": "https://other.example/"}, "aud", id="wrong-aud"),
        pytest.param({"aud": None}, "aud", id="no-aud"),
        pytest.param({"iss": "https://evil.example/"}, "iss", id="wrong-iss"),
        pytest.param({"exp": int(time.time()) - 3600}, "expired", id="expired"),
        pytest.param({"nbf": int(time.time()) + 3600}, "not valid yet", id="nbf-future"),
        pytest.param({"token_type": "refresh_token"}, "not an access token", id="a-refresh-token"),
        pytest.param({"token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "not an access token",
                     id="a-refresh-token-urn"),
        pytest.param({"token_type": "Refresh_Token"}, "not an access token", id="a-refresh-token-any-case"),
        pytest.param({"token_type": None, "aud": None}, "aud", id="no-token-type-no-aud"),
        pytest.param({"token_type": None, "aud": ["https://other.example/"]}, "aud", id="no-token-type-other-aud"),
        pytest.param({"sub": None}, "sub", id="no-sub"),
        pytest.param({"scope": ["read:messages"]}, "scope", id="scope-a-list"),
    ],
)
def test_introspection_answers_meet_the_same_rules(make_api: Callable[..., Any], introspection: Introspection,
                                                   overrides: dict[str, Any], description: str) -> None:
    _, browser = make_api(bearer_introspection=True)
    introspection.active("opaque-1", **overrides)
    response = browser.get("/api/messages", headers=bearer("opaque-1"), expect_errors=True)
    body = refused(response, 401, "invalid_access_token", "invalid_token")
    assert description in body["error_description"]


def test_unknown_opaque_tokens_are_inactive(make_api: Callable[..., Any], introspection: Introspection) -> None:
    _, browser = make_api(bearer_introspection=True)
    refused(browser.get("/api/x", headers=bearer("never-issued"), expect_errors=True), 401,
            "invalid_access_token", "invalid_token")


def test_the_introspection_cache_expires_and_never_outlives_the_token(
        make_api: Callable[..., Any], introspection: Introspection) -> None:
    clock = Clock(1_900_000_000.0)
    _, browser = make_api(bearer_introspection=True, bearer_introspection_ttl=60, clock=clock)
    introspection.active("long", exp=int(clock.now) + 3600)
    introspection.active("short", exp=int(clock.now) + 20)
    for token in ("long", "short", "long", "short"):
        assert browser.get("/api/x", headers=bearer(token)).status_int == 200
    assert len(introspection.requests) == 2  # cached
    clock.advance(25)  # past "short"'s exp: asked again (and now refused)
    introspection.active("short", active=False)
    refused(browser.get("/api/x", headers=bearer("short"), expect_errors=True), 401, "invalid_access_token",
            "invalid_token")
    assert browser.get("/api/x", headers=bearer("long")).status_int == 200
    assert len(introspection.requests) == 3
    clock.advance(40)  # past the TTL: "long" is asked about again, and a revocation is seen
    introspection.active("long", active=False)
    refused(browser.get("/api/x", headers=bearer("long"), expect_errors=True), 401, "invalid_access_token",
            "invalid_token")
    assert len(introspection.requests) == 4
    refused(browser.get("/api/x", headers=bearer("long"), expect_errors=True), 401, "invalid_access_token",
            "invalid_token")
    assert len(introspection.requests) == 4  # the refusal is cached too


def test_ttl_zero_asks_every_time(make_api: Callable[..., Any], introspection: Introspection) -> None:
    _, browser = make_api(bearer_introspection=True, bearer_introspection_ttl=0)
    introspection.active("opaque-1")
    for _ in range(3):
        browser.get("/api/x", headers=bearer("opaque-1"))
    assert len(introspection.requests) == 3


def test_the_introspection_cache_is_bounded_and_keyed_by_hash(
        make_api: Callable[..., Any], introspection: Introspection) -> None:
    middleware, browser = make_api(bearer_introspection=True)
    assert middleware.bearer is not None
    cache = middleware.bearer.verifier.introspector
    assert cache is not None
    cache.max_entries = 3
    for number in range(10):
        introspection.active(f"opaque-{number}")
        assert browser.get("/api/x", headers=bearer(f"opaque-{number}")).status_int == 200
    assert len(cache) == 3
    assert all(isinstance(key, bytes) and len(key) == 32 for key in cache._cache)  # sha256, never the token
    browser.get("/api/x", headers=bearer("opaque-9"))
    assert len(introspection.requests) == 10  # the newest is still cached
    browser.get("/api/x", headers=bearer("opaque-0"))
    assert len(introspection.requests) == 11  # the oldest was evicted


def test_without_token_type_the_audience_still_decides(make_api: Callable[..., Any],
                                                      introspection: Introspection) -> None:
    _, browser = make_api(bearer_introspection=True)
    introspection.active("opaque-1", token_type=None, aud=["https://other.example/", API])
    assert browser.get("/api/x", headers=bearer("opaque-1")).json["remote_user"] == "alice"


def test_refusals_are_cached_apart_and_cannot_evict_valid_answers(
        make_api: Callable[..., Any], introspection: Introspection) -> None:
    middleware, browser = make_api(bearer_introspection=True)
    cache = middleware.bearer.verifier.introspector
    cache.max_refusals = 3
    introspection.active("valid-1")
    assert browser.get("/api/x", headers=bearer("valid-1")).status_int == 200
    for number in range(20):  # random tokens: each asked once, each refused
        refused(browser.get("/api/x", headers=bearer(f"random-{number}"), expect_errors=True), 401,
                "invalid_access_token", "invalid_token")
    assert (len(cache._cache), len(cache._refusals)) == (1, 3)
    assert browser.get("/api/x", headers=bearer("valid-1")).status_int == 200
    assert len(introspection.requests) == 21  # the valid answer was still cached
    refused(browser.get("/api/x", headers=bearer("random-19"), expect_errors=True), 401,
            "invalid_access_token", "invalid_token")
    assert len(introspection.requests) == 21  # the newest refusal too


@pytest.mark.parametrize("token", ["x" * 2049, "not a token", "tok\u00e9n", ""])
def test_implausible_tokens_never_reach_the_provider(make_api: Callable[..., Any], introspection: Introspection,
                                                     token: str) -> None:
    middleware, browser = make_api(bearer_introspection=True)
    with pytest.raises(InvalidAccessToken, match="too long or has characters"):
        middleware.bearer.verifier.introspector.claims(token)
    if token.isascii() and token.isalnum():  # the Authorization header can carry it: refused through the gate too
        refused(browser.get("/api/x", headers=bearer(token), expect_errors=True), 401, "invalid_access_token",
                "invalid_token")
    assert introspection.requests == []


def test_too_many_introspection_calls_at_once_are_a_clean_503(make_api: Callable[..., Any],
                                                              introspection: Introspection) -> None:
    """Calls waiting on a slow provider are capped: one more is refused at once, not queued."""
    middleware, browser = make_api(bearer_introspection=True)
    middleware.bearer.verifier.introspector._in_flight = threading.BoundedSemaphore(1)
    introspection.active("slow-1")
    introspection.active("other-1")
    entered, release = threading.Event(), threading.Event()
    answer = introspection.__call__

    def slow(request: requests.PreparedRequest) -> requests.Response:
        entered.set()
        release.wait(10)
        return answer(request)

    introspection.provider.fail["/oauth/introspect"] = slow
    statuses: list[int] = []
    first = threading.Thread(target=lambda: statuses.append(
        browser_for(middleware).get("/api/x", headers=bearer("slow-1")).status_int))
    first.start()
    try:
        assert entered.wait(10)
        started = time.monotonic()
        response = browser.get("/api/x", headers=bearer("other-1"), expect_errors=True)
        assert (response.status_int, response.json["code"]) == (503, "provider_unreachable")
        assert time.monotonic() - started < 2
    finally:
        release.set()
        first.join(10)
    assert statuses == [200]
    assert browser.get("/api/x", headers=bearer("other-1")).status_int == 200  # the slot is free again


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        pytest.param(503, 503, "provider_unreachable", id="introspection-503"),
        pytest.param(401, 502, "provider_bad_response", id="our-credentials-refused"),
        pytest.param(requests.exceptions.ReadTimeout("slow"), 504, "provider_timeout", id="timeout"),
    ],
)
def test_introspection_trouble_is_a_clean_provider_error(make_api: Callable[..., Any], provider: FakeProvider,
                                                        fault: Any, status: int, code: str) -> None:
    _, browser = make_api(bearer_introspection=True)
    provider.discovery_overrides["introspection_endpoint"] = INTROSPECT
    provider.fail["/oauth/introspect"] = fault
    response = browser.get("/api/x", headers=bearer("opaque-1"), expect_errors=True)
    assert (response.status_int, response.json["code"]) == (status, code)


def test_introspection_without_an_endpoint_is_a_provider_error(make_api: Callable[..., Any]) -> None:
    _, browser = make_api(bearer_introspection=True)
    response = browser.get("/api/x", headers=bearer("opaque-1"), expect_errors=True)
    assert (response.status_int, response.json["code"]) == (502, "provider_bad_response")


# -- access_rules, scopes and the query string on bearer paths ---------------------------


def test_access_rules_hold_for_bearer_tokens_too(make_api: Callable[..., Any]) -> None:
    """An access rule on a path under bearer_paths is not skipped because a token was sent.

    Session users on /api/admin are held to access_rules (roles includes admin); a token is
    held to the same claim conditions, against its own claims (one decision, same engine).
    """
    _, browser = make_api(bearer_rules="", access_rules="/api/admin claim roles includes admin")
    response = browser.get("/api/admin/users", headers=bearer(access_token()), expect_errors=True)
    refused(response, 403, "insufficient_scope", "insufficient_scope")
    # reached as /api/../admin... too: the access rule on a path outside bearer_paths holds as well
    _, browser = make_api(bearer_rules="", access_rules="/admin claim roles includes admin")
    response = browser.get("/api/../admin/x", headers=bearer(access_token()), expect_errors=True)
    assert response.status_int == 403
    admin = access_token(roles=["admin"])
    assert browser.get("/api/../admin/x", headers=bearer(admin)).status_int == 200
    _, browser = make_api(bearer_rules="", access_rules="/api/admin claim roles includes admin")
    assert browser.get("/api/admin/users", headers=bearer(admin)).json["remote_user"] == "alice"
    assert browser.get("/api/messages", headers=bearer(access_token())).status_int == 200


def test_a_session_claim_named_scope_grants_no_scope(make_api: Callable[..., Any],
                                                     provider: FakeProvider) -> None:
    """bearer_rules' scope requirements are about an access token's grant; a session has none.

    A user whose ID token / userinfo happens to carry a "scope" claim (a provider mapping a
    user attribute, a custom claim) does not pass ``/api/admin scope read:admin`` on a session.
    """
    provider.users["bob"]["scope"] = "read:admin"
    _, browser = make_api()
    sign_in(browser, provider, "bob")
    response = browser.get("/api/admin/users", expect_errors=True)
    body = refused(response, 403, "insufficient_scope", "insufficient_scope")
    assert body["scope"] == "read:admin"
    assert browser.get("/api/messages").json["remote_user"] == "bob"  # no scope rule there: the session works


@pytest.mark.parametrize("query", ["access%5Ftoken=", "access%5ftoken=", "%61ccess_token=", "a=1&access_token="])
def test_an_encoded_access_token_query_parameter_is_refused_too(
        api: tuple[SSOMiddleware, webtest.TestApp], query: str) -> None:
    """RFC 6750 section 2.3 is refused; the name percent-encoded is the same parameter to every app."""
    _, browser = api
    token = access_token()
    response = browser.get(f"/api/x?{query}{token}", headers=bearer(token), expect_errors=True)
    refused(response, 400, "invalid_bearer_request", "invalid_request")


def test_introspected_sender_constrained_tokens_are_refused(make_api: Callable[..., Any],
                                                            introspection: Introspection) -> None:
    """oidc-provider's introspection says ``cnf`` for DPoP/mTLS-bound tokens; no proof is checked here."""
    _, browser = make_api(bearer_introspection=True)
    introspection.active("bound-1", cnf={"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})
    response = browser.get("/api/x", headers=bearer("bound-1"), expect_errors=True)
    body = refused(response, 401, "invalid_access_token", "invalid_token")
    assert "sender-constrained" in body["error_description"]
