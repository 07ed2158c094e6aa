"""Access rules end to end: claim rules (403), step-up (max_age, acr_values) from the pass-through path
through the login route and the provider to the callback, with the fake provider and webtest.

The rule syntax itself is tested in test_rules.py; here every answer is checked the way a browser or an
API client sees it: status, headers, where a redirect goes, what reaches the provider, what the session
holds afterwards -- and that nothing ever loops.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
import webtest

from sso_middleware import ConfigError, SSOMiddleware
from sso_middleware.testing import Clock

from ..conftest import browser_for
from ..fakes import BASE_URL, FakeProvider
from ..records import file_container, session_data

CONNECTION = "Username-Password-Authentication"
COOKIE = "__Host-sso_session"
AUTHORIZE = "https://op.example/authorize"
ROLES = "https://example.com/roles"
MFA = "urn:dev:loa:mfa"
PWD = "urn:dev:loa:pwd"

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
NAVIGATE = {"Sec-Fetch-Mode": "navigate"}

Browser = webtest.TestApp

PAGE_LOADS = [
    pytest.param("GET", HTML, id="accept-html"),
    pytest.param("GET", NAVIGATE, id="sec-fetch-navigate"),
    pytest.param("HEAD", {"Accept": "text/html"}, id="head-accept-html"),
]

API_CALLS = [
    pytest.param("GET", {"Accept": "application/json"}, id="accept-json"),
    pytest.param("GET", {"Sec-Fetch-Mode": "cors", "Accept": "text/html"}, id="sec-fetch-cors"),
    pytest.param("GET", {"X-Requested-With": "XMLHttpRequest", "Accept": "text/html"}, id="xhr"),
    pytest.param("GET", {}, id="no-accept"),
    pytest.param("POST", {"Accept": "text/html"}, id="post-html"),
    pytest.param("POST", {"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}, id="post-navigate"),
    pytest.param("DELETE", {"Accept": "application/json"}, id="delete"),
]


# -- helpers -------------------------------------------------------------------


def now() -> int:
    return int(time.time())


def query(url: str) -> dict[str, str]:
    """The query parameters of ``url``; each must appear once."""
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in parsed.values()), parsed
    return {key: values[0] for key, values in parsed.items()}


def is_authorize(response: webtest.TestResponse) -> bool:
    return response.status_int == 303 and response.location.startswith(AUTHORIZE + "?")


def failure_code(response: webtest.TestResponse) -> str:
    """The error code of a redirect to the failure page (asserting it is one)."""
    assert response.status_int == 303, response
    parts = urlsplit(response.location)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "app2.example", "/auth/failure"), response.location
    return query(response.location)["error"]


def login_redirect(location: str, prefix: str = "") -> dict[str, str]:
    """The parameters of a redirect to the login route (asserting it is one)."""
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "app2.example", prefix + "/auth/login"), location
    return query(location)


def call(browser: Browser, method: str, url: str, headers: dict[str, str], status: Any = "*") -> webtest.TestResponse:
    """``browser.get``/``head``/``post``/``delete`` (which, unlike ``request``, keep the browser's environ)."""
    response: webtest.TestResponse = getattr(browser, method.lower())(url, headers=headers, status=status)
    return response


def set_claims(provider: FakeProvider, user: str = "alice", **claims: Any) -> None:
    """Claims of ``user`` in both the ID token and userinfo (like an Auth0 Action adding them to both)."""
    provider.users[user].update(claims)


def sign_in(browser: Browser, provider: FakeProvider, *, user: str = "alice", target: str = "/",
            connection: Optional[str] = CONNECTION, **id_token: Any) -> webtest.TestResponse:
    """A complete silent sign-in whose ID token carries the ``id_token`` overrides (None removes a claim)."""
    provider.id_token_overrides = dict(id_token)
    params = {"target_url": target}
    if connection is not None:
        params["connection"] = connection
    response = browser.get("/auth/sso" if connection is not None else "/auth/login", params)
    assert is_authorize(response), response
    response = browser.get(provider.authorize(response.location, user=user))
    assert response.status_int == 303, response
    assert urlsplit(response.location).path != "/auth/failure", response.location
    return response


def whoami(browser: Browser) -> dict[str, Any]:
    """What the app sees on an unguarded page: remote_user and userinfo."""
    seen: dict[str, Any] = browser.get("/page", headers={"Accept": "application/json"}).json
    return seen


@dataclass
class Answer:
    """What the provider does with one authorization request."""

    claims: dict[str, Any] = field(default_factory=dict)  # ID-token claim overrides (None removes one)
    user: str = "alice"
    error: Optional[str] = None  # answer with this error instead of a code


def follow(browser: Browser, provider: FakeProvider, response: webtest.TestResponse, answers: list[Answer],
           headers: Optional[dict[str, str]] = None) -> tuple[webtest.TestResponse, list[str]]:
    """Follow redirects as a browser would, answering the n-th trip to the provider with ``answers[n]``.

    Returns the first response that is not a redirect, and the authorization URLs visited.  Needing
    more provider trips than there are answers, or more than 10 redirects, fails the test: a loop.
    """
    visited: list[str] = []
    for _hop in range(10):
        if response.status_int not in (301, 302, 303, 307, 308):
            return response, visited
        location = response.location
        if location.startswith(AUTHORIZE + "?"):
            assert len(visited) < len(answers), f"redirect loop: trip {len(visited) + 1} to the provider"
            answer = answers[len(visited)]
            visited.append(location)
            provider.id_token_overrides = dict(answer.claims)
            extra = {"error": answer.error} if answer.error else {}
            response = browser.get(provider.authorize(location, user=answer.user, **extra), expect_errors=True)
        else:
            assert location.startswith(BASE_URL + "/"), location
            response = browser.get(location, headers=headers if headers is not None else HTML, expect_errors=True)
    raise AssertionError("redirect loop: more than 10 redirects")


def session_cookie_changes(response: webtest.TestResponse) -> list[str]:
    return [value for value in response.headers.getall("Set-Cookie") if value.startswith(COOKIE + "=")]


def stored_users(middleware: SSOMiddleware) -> list[dict[str, Any]]:
    """The user records of every session in Beaker's file store."""
    users = []
    for root, _dirs, files in os.walk(os.path.join(middleware.config.data_dir, "container_file")):
        for name in files:
            if name.startswith("sso-"):  # index and token records
                continue
            container = file_container(os.path.join(root, name))  # sealed JSON around Beaker's text
            if "session" in container:
                record = session_data(container["session"])
                if "user" in record:
                    users.append(record["user"])
    return users


_AUTH_PARAM = re.compile(r'\s*([A-Za-z_]+)="((?:[^"\\]|\\.)*)"\s*(?:,|\Z)')


def challenge(header: str) -> tuple[str, dict[str, str]]:
    """A ``WWW-Authenticate`` challenge parsed per RFC 9110 (every auth-param a quoted-string, unescaped)."""
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _AUTH_PARAM.match(rest, position)
        assert match, f"not a quoted auth-param at {rest[position:]!r}"
        assert match.group(1) not in params, header
        params[match.group(1)] = re.sub(r"\\(.)", r"\1", match.group(2))
        position = match.end()
    return scheme, params


# -- claim rules: allowed and forbidden -----------------------------------------------------


CLAIM_CASES = [
    # includes, on a list claim
    pytest.param("/x claim roles includes admin", {"roles": ["user", "admin"]}, True, id="includes-list"),
    pytest.param("/x claim roles includes admin", {"roles": ["user"]}, False, id="includes-list-without"),
    pytest.param("/x claim roles includes admin", {"roles": []}, False, id="includes-empty-list"),
    pytest.param("/x claim roles includes admin", {}, False, id="includes-claim-missing"),
    pytest.param("/x claim roles includes admin", {"roles": ["Admin"]}, False, id="includes-case-sensitive"),
    pytest.param("/x claim roles includes admin", {"roles": ["administrator"]}, False, id="includes-no-substring"),
    pytest.param("/x claim roles includes admin,owner", {"roles": ["owner"]}, True, id="includes-any-of"),
    pytest.param("/x claim roles includes admin", {"roles": {"admin": True}}, False, id="includes-object-claim"),
    # namespaced claim names (an Auth0 Action's custom claims)
    pytest.param(f"/x claim {ROLES} includes admin", {ROLES: ["admin"]}, True, id="namespaced"),
    pytest.param(f"/x claim {ROLES} includes admin", {ROLES: ["viewer"]}, False, id="namespaced-without"),
    pytest.param(f"/x claim {ROLES} includes admin", {"roles": ["admin"]}, False, id="namespaced-other-name"),
    # includes, on a space-separated string claim (like scope)
    pytest.param("/x claim permissions includes write:reports", {"permissions": "read:reports write:reports"},
                 True, id="includes-space-separated"),
    pytest.param("/x claim permissions includes write:reports", {"permissions": "read:reports"}, False,
                 id="includes-space-separated-without"),
    pytest.param("/x claim permissions includes write", {"permissions": "write:reports"}, False,
                 id="includes-space-separated-no-substring"),
    # equals
    pytest.param("/x claim org equals acme", {"org": "acme"}, True, id="equals"),
    pytest.param("/x claim org equals acme", {"org": "acme2"}, False, id="equals-other"),
    pytest.param("/x claim org equals acme", {"org": ["acme"]}, False, id="equals-list"),
    pytest.param("/x claim org equals acme", {}, False, id="equals-missing"),
    pytest.param("/x claim staff equals true", {"staff": True}, True, id="equals-boolean-true"),
    pytest.param("/x claim staff equals true", {"staff": False}, False, id="equals-boolean-false"),
    pytest.param("/x claim staff equals true", {"staff": "true"}, True, id="equals-true-as-text"),
    pytest.param("/x claim staff equals true", {"staff": 1}, False, id="equals-true-vs-1"),
    pytest.param("/x claim level equals 3", {"level": 3}, True, id="equals-number"),
    pytest.param("/x claim level equals 3", {"level": 3.0}, True, id="equals-float"),
    pytest.param("/x claim level equals 3", {"level": 4}, False, id="equals-other-number"),
    # present
    pytest.param("/x claim org_id present", {"org_id": "org_1"}, True, id="present"),
    pytest.param("/x claim org_id present", {"org_id": False}, True, id="present-false-is-present"),
    pytest.param("/x claim org_id present", {"org_id": ""}, False, id="present-empty-string"),
    pytest.param("/x claim org_id present", {"org_id": []}, False, id="present-empty-list"),
    pytest.param("/x claim org_id present", {"org_id": None}, False, id="present-null"),
    pytest.param("/x claim org_id present", {}, False, id="present-missing"),
    # several conditions on one path: all must hold
    pytest.param("/x claim org equals acme; /x claim staff equals true", {"org": "acme", "staff": True}, True,
                 id="and-both"),
    pytest.param("/x claim org equals acme; /x claim staff equals true", {"org": "acme"}, False, id="and-one"),
]


@pytest.mark.parametrize(("rules", "claims", "allowed"), CLAIM_CASES)
def test_claim_rules_allow_and_forbid(make_browser: Callable[..., Browser], provider: FakeProvider, rules: str,
                                      claims: dict[str, Any], allowed: bool) -> None:
    browser = make_browser(access_rules=rules)
    provider.userinfo = {"sub": "alice", **claims}  # the claims as userinfo gives them (they win over the ID token)
    sign_in(browser, provider)
    response = browser.get("/x/page", headers={"Accept": "application/json"}, expect_errors=True)
    if allowed:
        assert response.status_int == 200
        assert response.json["remote_user"] == "alice"
    else:
        assert response.status_int == 403
        assert response.json == {"error": "forbidden"}
    # Unruled paths are open to the same user either way.
    assert whoami(browser)["remote_user"] == "alice"


def test_claims_from_the_id_token_alone_count(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    """A custom claim only in the ID token (userinfo does not repeat it) is still one of the user's claims."""
    browser = make_browser(access_rules=f"/admin claim {ROLES} includes admin")
    provider.userinfo = {"sub": "alice", "name": "Alice Example"}
    sign_in(browser, provider, **{ROLES: ["admin"]})
    assert browser.get("/admin", headers=HTML).json["userinfo"][ROLES] == ["admin"]


def test_nested_prefixes_are_anded(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    rules = "/admin claim roles includes admin\n/admin/billing claim dept equals finance"
    users = {
        "admin-finance": {"roles": ["admin"], "dept": "finance"},
        "admin-only": {"roles": ["admin"], "dept": "it"},
        "finance-only": {"roles": ["user"], "dept": "finance"},
    }
    expected = {  # (/admin/users, /admin/billing/x, /billing)
        "admin-finance": (200, 200, 200),
        "admin-only": (200, 403, 200),
        "finance-only": (403, 403, 200),
    }
    for name, claims in users.items():
        provider.users[name] = {"sub": name, **claims}
        browser = make_browser(access_rules=rules)
        sign_in(browser, provider, user=name)
        statuses = tuple(
            browser.get(path, headers={"Accept": "application/json"}, expect_errors=True).status_int
            for path in ("/admin/users", "/admin/billing/x", "/billing")
        )
        assert statuses == expected[name], name


def test_a_longer_prefix_never_relaxes_a_shorter_one(make_browser: Callable[..., Browser],
                                                     provider: FakeProvider) -> None:
    browser = make_browser(access_rules="/admin claim roles includes admin; /admin/public claim org_id present")
    set_claims(provider, org_id="org_1")
    sign_in(browser, provider)
    browser.get("/admin/public", headers={"Accept": "application/json"}, status=403)


@pytest.mark.parametrize(
    ("path", "ruled"),
    [
        pytest.param("/admin", True, id="exact"),
        pytest.param("/admin/", True, id="exact-slash"),
        pytest.param("/admin/users/7", True, id="below"),
        pytest.param("/administrator", False, id="longer-segment"),
        pytest.param("/admin-panel", False, id="dash-suffix"),
        pytest.param("/admin.json", False, id="dot-suffix-not-predicted"),
        pytest.param("/admi", False, id="shorter"),
        pytest.param("/public/admin", False, id="not-a-prefix"),
        pytest.param("/", False, id="root"),
        # path tricks that an application would route to /admin
        pytest.param("//admin", True, id="double-slash"),
        pytest.param("///admin/", True, id="triple-slash"),
        pytest.param("/./admin", True, id="dot-segment"),
        pytest.param("/x/../admin", True, id="dot-dot-segment"),
        pytest.param("/admin//users", True, id="double-slash-inside"),
        pytest.param("/admin/./users", True, id="dot-inside"),
        pytest.param("/admin/x/../../admin/y", True, id="dot-dot-back-in"),
        # Apps route PATH_INFO as it is (no ".." resolution; gunicorn even decodes %2F into it), so a path
        # that starts under the prefix is ruled whatever its dot segments make of it: fail closed.
        pytest.param("/admin/../public", True, id="dot-dot-out-still-ruled"),
        pytest.param("/admin/..", True, id="dot-dot-to-root"),
        pytest.param("/admin/../", True, id="dot-dot-slash"),
        pytest.param("/admin/x/../..", True, id="dot-dot-twice"),
        pytest.param("/public/../public", False, id="dot-dot-elsewhere"),
    ],
)
def test_rule_prefixes_match_on_segment_boundaries_and_see_through_path_tricks(
    make_browser: Callable[..., Browser], provider: FakeProvider, path: str, ruled: bool
) -> None:
    browser = make_browser(access_rules="/admin claim roles includes admin")
    set_claims(provider, roles=["user"])
    sign_in(browser, provider)
    response = browser.get(path, headers={"Accept": "application/json"}, expect_errors=True)
    assert response.status_int == (403 if ruled else 200), path
    # ... and the same path tricks send an anonymous visitor to sign in.
    anonymous = make_browser(access_rules="/admin claim roles includes admin")
    assert anonymous.get(path, headers={"Accept": "application/json"}, expect_errors=True).status_int == (
        401 if ruled else 200
    )


# -- the 403 answer ----------------------------------------------------------------------


@pytest.fixture
def forbidden_browser(make_browser: Callable[..., Browser], provider: FakeProvider) -> Browser:
    """Alice, signed in with claim values that must never be echoed, is not an admin."""
    browser = make_browser(access_rules=f"/admin claim {ROLES} includes admin")
    set_claims(provider, **{ROLES: ["viewer-<b>role</b>"], "name": "Alice <script>x</script>"})
    sign_in(browser, provider)
    return browser


@pytest.mark.parametrize(("method", "headers"), PAGE_LOADS)
def test_forbidden_page_load_gets_a_403_page(forbidden_browser: Browser, method: str,
                                             headers: dict[str, str]) -> None:
    response = call(forbidden_browser, method, "/admin/users?q=<script>", headers, status=403)
    assert response.status_int == 403
    assert response.content_type == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Location" not in response.headers
    assert "WWW-Authenticate" not in response.headers
    assert session_cookie_changes(response) == []
    assert "Set-Cookie" not in response.headers
    if method == "HEAD":
        assert response.body == b""
        return
    page = response.text
    assert "Access denied" in page
    assert "<code>forbidden</code>" in page
    assert f'href="{BASE_URL}/"' in page
    for leaked in ("viewer", "role", "Alice", "alice", "script", "q=", ROLES, "admin"):
        assert leaked not in page.replace("Access denied", ""), leaked


@pytest.mark.parametrize(("method", "headers"), API_CALLS)
def test_forbidden_api_call_gets_403_json(forbidden_browser: Browser, method: str, headers: dict[str, str]) -> None:
    response = call(forbidden_browser, method, "/admin/data?x=1", headers, status=403)
    assert response.content_type == "application/json"
    assert json.loads(response.body) == {"error": "forbidden"}
    assert response.headers["Cache-Control"] == "no-store"
    assert "Location" not in response.headers
    assert "WWW-Authenticate" not in response.headers
    assert "Set-Cookie" not in response.headers


def test_a_403_leaves_the_session_alone(make_middleware: Callable[..., SSOMiddleware],
                                        provider: FakeProvider) -> None:
    middleware = make_middleware(access_rules="/admin claim roles includes admin")
    browser = browser_for(middleware)
    sign_in(browser, provider)
    cookie = browser.cookies[COOKIE]
    before = stored_users(middleware)
    for _ in range(3):  # repeatedly: never a redirect, never a sign-in attempt
        response = browser.get("/admin", headers=HTML, status=403)
        assert "Set-Cookie" not in response.headers and "Location" not in response.headers
    assert browser.cookies[COOKIE] == cookie
    assert stored_users(middleware) == before
    assert whoami(browser)["remote_user"] == "alice"
    assert provider.requests_to("/oauth/token") and len(provider.requests_to("/oauth/token")) == 1


def test_a_403_is_logged_without_claim_values(forbidden_browser: Browser, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sso_middleware"):
        forbidden_browser.get("/admin", headers=HTML, status=403)
    (line,) = [record.getMessage() for record in caplog.records if "stopped at" in record.getMessage()]
    assert "'/admin'" in line and ROLES in line and "includes" in line
    assert "viewer" not in line


def test_forbidden_page_escapes_the_home_link(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    """The only value the page echoes is base_url (a setting); it is escaped all the same."""
    base_url = "https://app2.example/a'b&d"
    browser = make_browser(base_url=base_url, access_rules="/admin claim roles includes admin")
    browser.extra_environ["SCRIPT_NAME"] = "/a'b&d"  # mounted there: the session cookie's Path
    # Sign in by hand: the routes are matched on PATH_INFO, so strip the (unmounted) prefix from the URLs.
    response = browser.get("/auth/login", {"target_url": "/"})
    callback = provider.authorize(response.location)
    browser.get("/auth/callback?" + callback.partition("?")[2], status=303)
    page = browser.get("/admin", headers=HTML, status=403).text
    assert f'href="{html.escape(base_url + "/", quote=True)}"' in page
    assert "a'b&d" not in page


# -- anonymous visitors on rule paths ----------------------------------------------------


@pytest.mark.parametrize("rules", [
    pytest.param("/admin claim roles includes admin", id="claim-rule"),
    pytest.param("/admin max_age 300", id="max-age-rule"),
    pytest.param(f"/admin acr_values {MFA}", id="acr-rule"),
])
def test_anonymous_page_load_of_a_rule_path_is_sent_to_sign_in(make_browser: Callable[..., Browser],
                                                               rules: str) -> None:
    browser = make_browser(access_rules=rules)
    response = browser.get("/admin/users?page=2&q=a%20b", headers=HTML, status=303)
    assert response.headers["Cache-Control"] == "no-store"
    assert login_redirect(response.location) == {"target_url": "/admin/users?page=2&q=a%20b"}
    api = browser.get("/admin/users?page=2", headers={"Accept": "application/json"}, status=401)
    assert api.json["error"] == "login_required"
    assert challenge(api.headers["WWW-Authenticate"]) == (
        "OpenIDConnect", {"realm": BASE_URL, "error": "login_required"}
    )
    assert login_redirect(api.json["login_url"]) == {"target_url": "/admin/users?page=2"}
    assert browser.get("/public", headers=HTML).json["remote_user"] is None


def test_anonymous_with_a_session_cookie_is_sent_to_sign_in_too(make_browser: Callable[..., Browser],
                                                                provider: FakeProvider) -> None:
    browser = make_browser(access_rules="/admin claim roles includes admin")
    sign_in(browser, provider)
    cookie = browser.cookies[COOKIE]
    browser.get("/auth/logout", {"target_url": "/"})
    browser.set_cookie(COOKIE, cookie)  # the session is gone server-side; the browser still sends its id
    response = browser.get("/admin", headers=HTML, status=303)
    assert login_redirect(response.location) == {"target_url": "/admin"}


def test_anonymous_round_trip_to_a_claim_rule_path(make_browser: Callable[..., Browser],
                                                   provider: FakeProvider) -> None:
    """Signing in as an admin lands on the page; as anyone else, on a 403 -- never back at the provider."""
    for roles, status in ((["admin"], 200), (["user"], 403)):
        set_claims(provider, roles=roles)
        browser = make_browser(access_rules="/admin claim roles includes admin")
        response = browser.get("/admin/x?y=1", headers=HTML, status=303)
        final, visited = follow(browser, provider, response, [Answer()])
        assert len(visited) == 1
        assert "max_age" not in query(visited[0]) and "acr_values" not in query(visited[0])
        assert final.status_int == status
        assert final.request.path_qs == "/admin/x?y=1"


# -- step-up: max_age ------------------------------------------------------------------------


@pytest.fixture
def billing(make_middleware: Callable[..., SSOMiddleware]) -> SSOMiddleware:
    return make_middleware(access_rules="/billing max_age 300")


def test_a_recent_authentication_opens_a_max_age_path(billing: SSOMiddleware, provider: FakeProvider) -> None:
    browser = browser_for(billing)
    sign_in(browser, provider, auth_time=now() - 10)
    assert browser.get("/billing/invoices", headers=HTML).json["remote_user"] == "alice"
    assert browser.get("/billing", headers={"Accept": "application/json"}).status_int == 200


@pytest.mark.parametrize(("method", "headers"), PAGE_LOADS)
def test_an_old_authentication_is_sent_to_authenticate_again(billing: SSOMiddleware, provider: FakeProvider,
                                                             method: str, headers: dict[str, str]) -> None:
    browser = browser_for(billing)
    sign_in(browser, provider, auth_time=now() - 1000)
    cookie = browser.cookies[COOKIE]
    response = call(browser, method, "/billing/invoices?year=2024&q=a%20b", headers, status=303)
    assert response.headers["Cache-Control"] == "no-store"
    assert login_redirect(response.location) == {
        "target_url": "/billing/invoices?year=2024&q=a%20b", "connection": CONNECTION,
    }
    assert "Set-Cookie" not in response.headers  # still signed in: nothing changed yet
    assert browser.cookies[COOKIE] == cookie
    assert whoami(browser)["remote_user"] == "alice"
    assert len(provider.requests_to("/oauth/token")) == 1


def test_step_up_round_trip_asks_for_max_age_and_lands_on_the_page(billing: SSOMiddleware,
                                                                   provider: FakeProvider) -> None:
    browser = browser_for(billing)
    sign_in(browser, provider, auth_time=now() - 1000)
    old_cookie = browser.cookies[COOKIE]
    response = browser.get("/billing/invoices?year=2024", headers=HTML, status=303)
    final, visited = follow(browser, provider, response, [Answer({"auth_time": now()})])
    assert len(visited) == 1  # one trip to the provider, no loop
    params = query(visited[0])
    assert params["max_age"] == "300"
    assert "prompt" not in params
    assert "acr_values" not in params
    assert params["connection"] == CONNECTION
    assert final.status_int == 200
    assert final.request.path_qs == "/billing/invoices?year=2024"
    assert final.json["remote_user"] == "alice"
    assert browser.cookies[COOKIE] != old_cookie  # a sign-in: a new session id
    # From now on the page opens straight away.
    assert browser.get("/billing/invoices", headers=HTML).status_int == 200


def test_step_up_with_a_login_without_connection_sends_none(billing: SSOMiddleware, provider: FakeProvider) -> None:
    browser = browser_for(billing)
    sign_in(browser, provider, connection=None, auth_time=now() - 1000)
    response = browser.get("/billing", headers=HTML, status=303)
    assert login_redirect(response.location) == {"target_url": "/billing"}
    final, visited = follow(browser, provider, response, [Answer({"auth_time": now()})])
    assert "connection" not in query(visited[0]) and query(visited[0])["max_age"] == "300"
    assert final.status_int == 200


def test_the_new_auth_time_is_kept_in_the_session(billing: SSOMiddleware, provider: FakeProvider) -> None:
    browser = browser_for(billing)
    old = now() - 1000
    sign_in(browser, provider, auth_time=old, acr=PWD)
    (user,) = stored_users(billing)
    assert user["auth_time"] == pytest.approx(old, abs=2)
    assert user["acr"] == PWD
    assert "auth_time" not in whoami(browser)["userinfo"]
    fresh = now()
    response = browser.get("/billing", headers=HTML, status=303)
    follow(browser, provider, response, [Answer({"auth_time": fresh, "acr": MFA})])
    (user,) = stored_users(billing)
    assert user["auth_time"] == pytest.approx(fresh, abs=2)
    assert user["acr"] == MFA


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"auth_time": "OLD"}, id="old-auth-time"),
        pytest.param({"auth_time": None}, id="no-auth-time"),
        pytest.param({"auth_time": "BEYOND"}, id="just-beyond-the-leeway"),
    ],
)
def test_a_provider_ignoring_max_age_ends_on_step_up_failed_and_keeps_the_session(
    billing: SSOMiddleware, provider: FakeProvider, claims: dict[str, Any]
) -> None:
    browser = browser_for(billing)
    sign_in(browser, provider, auth_time=now() - 1000)
    before = whoami(browser)
    cookie = browser.cookies[COOKIE]
    records = stored_users(billing)
    answer = {key: {"OLD": now() - 1000, "BEYOND": now() - 361}.get(value, value)
              for key, value in claims.items()}
    set_claims(provider, name="Someone Else")  # what a completed sign-in would have stored
    response = browser.get("/billing", headers=HTML, status=303)
    response = browser.get(response.location)  # the login route
    assert is_authorize(response)
    provider.id_token_overrides = answer
    callback = browser.get(provider.authorize(response.location))
    assert failure_code(callback) == "step_up_failed"
    assert session_cookie_changes(callback) == []  # nothing signed in, nothing signed out
    page = browser.get(callback.location, status=403)
    assert "step_up_failed" in page.text
    # The previous session is intact, with the same claims.
    assert browser.cookies[COOKIE] == cookie
    assert whoami(browser) == before
    assert stored_users(billing) == records
    # ... and the page still asks for a step-up (a new attempt, started by the user), not a loop by itself.
    assert login_redirect(browser.get("/billing", headers=HTML, status=303).location)["target_url"] == "/billing"


def test_step_up_failure_through_another_user_keeps_the_first(billing: SSOMiddleware, provider: FakeProvider) -> None:
    browser = browser_for(billing)
    sign_in(browser, provider, auth_time=now() - 1000)
    response = browser.get("/billing", headers=HTML, status=303)
    final, visited = follow(browser, provider, response, [Answer({"auth_time": now() - 1000}, user="bob")])
    assert len(visited) == 1
    assert final.status_int == 403 and "step_up_failed" in final.text
    assert whoami(browser)["remote_user"] == "alice"


def test_an_unknown_auth_time_in_the_session_needs_a_step_up(billing: SSOMiddleware, provider: FakeProvider) -> None:
    browser = browser_for(billing)
    sign_in(browser, provider, auth_time=None)
    (user,) = stored_users(billing)
    assert user["auth_time"] is None
    assert whoami(browser)["remote_user"] == "alice"  # signing in without auth_time is fine...
    response = browser.get("/billing", headers=HTML, status=303)  # ... but max_age paths need one
    final, visited = follow(browser, provider, response, [Answer({"auth_time": now()})])
    assert query(visited[0])["max_age"] == "300"
    assert final.status_int == 200


# The edges below hold whether the leeway is clock_skew or a second for whole-second timestamps: an
# authentication exactly max_age old is fresh enough, and clock_skew never stretches max_age by a minute more.
@pytest.mark.parametrize(
    ("clock_skew", "age", "allowed"),
    [
        pytest.param(60, 0, True, id="skew60-just-now"),
        pytest.param(60, 299, True, id="skew60-inside"),
        pytest.param(60, 300, True, id="skew60-max-age"),
        pytest.param(60, 361, False, id="skew60-beyond-max-age-plus-skew"),
        pytest.param(60, 100_000, False, id="skew60-long-ago"),
        pytest.param(0, 300, True, id="skew0-max-age"),
        pytest.param(0, 302, False, id="skew0-beyond"),
    ],
)
def test_max_age_edges_on_the_pass_through_path(make_middleware: Callable[..., SSOMiddleware],
                                                provider: FakeProvider, clock_skew: int, age: int,
                                                allowed: bool) -> None:
    clock = Clock()
    middleware = make_middleware(access_rules="/billing max_age 300", clock_skew=clock_skew,
                                 session_idle_timeout=200_000, session_absolute_timeout=200_000, clock=clock)
    browser = browser_for(middleware)
    authenticated = now()
    sign_in(browser, provider, auth_time=authenticated)
    clock.now = authenticated + age
    response = browser.get("/billing", headers=HTML, expect_errors=True)
    if allowed:
        assert response.status_int == 200
    else:
        assert response.status_int == 303
        assert login_redirect(response.location)["target_url"] == "/billing"


@pytest.mark.parametrize(
    ("age", "signed_in"),
    [
        pytest.param(0, True, id="just-now"),
        pytest.param(300, True, id="max-age"),
        pytest.param(361, False, id="beyond-max-age-plus-skew"),
    ],
)
def test_max_age_edges_at_the_callback(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider,
                                       age: int, signed_in: bool) -> None:
    middleware = make_middleware(access_rules="/billing max_age 300")
    browser = browser_for(middleware)
    response = browser.get("/auth/login", {"target_url": "/billing"})
    assert query(response.location)["max_age"] == "300"
    provider.id_token_overrides = {"auth_time": now() - age}
    response = browser.get(provider.authorize(response.location))
    if signed_in:
        assert response.location == BASE_URL + "/billing"
        assert browser.get("/billing", headers=HTML).status_int == 200
    else:
        assert failure_code(response) == "step_up_failed"
        assert whoami(browser)["remote_user"] is None


def test_max_age_zero_asks_for_a_fresh_authentication(make_browser: Callable[..., Browser],
                                                      provider: FakeProvider) -> None:
    browser = make_browser(access_rules="/now max_age 0", clock_skew=0)
    sign_in(browser, provider, auth_time=now() - 5)
    response = browser.get("/now", headers=HTML, status=303)
    response = browser.get(response.location)
    assert query(response.location)["max_age"] == "0"


def test_the_smallest_max_age_of_nested_rules_is_asked_for(make_browser: Callable[..., Browser],
                                                           provider: FakeProvider) -> None:
    browser = make_browser(access_rules="/billing max_age 600; /billing/pay max_age 60")
    sign_in(browser, provider, auth_time=now() - 300)
    assert browser.get("/billing", headers=HTML).status_int == 200  # 300 s old is fine for /billing
    response = browser.get("/billing/pay", headers=HTML, status=303)
    final, visited = follow(browser, provider, response, [Answer({"auth_time": now()})])
    assert query(visited[0])["max_age"] == "60"
    assert final.status_int == 200


def test_a_claim_failure_is_a_403_even_when_a_step_up_is_also_due(make_browser: Callable[..., Browser],
                                                                  provider: FakeProvider) -> None:
    """Authenticating again would not change the claims: no trip to the provider for nothing."""
    browser = make_browser(access_rules="/admin claim roles includes admin; /admin max_age 300")
    set_claims(provider, roles=["user"])
    sign_in(browser, provider, auth_time=now() - 1000)
    browser.get("/admin", headers=HTML, status=403)
    browser.get("/admin", headers={"Accept": "application/json"}, status=403)


# -- step-up: acr_values -----------------------------------------------------------------------


@pytest.fixture
def vault(make_middleware: Callable[..., SSOMiddleware]) -> SSOMiddleware:
    return make_middleware(access_rules=f"/vault acr_values {MFA},urn:dev:loa:hwk")


def test_the_right_acr_opens_an_acr_path(vault: SSOMiddleware, provider: FakeProvider) -> None:
    for acr in (MFA, "urn:dev:loa:hwk"):
        browser = browser_for(vault)
        sign_in(browser, provider, acr=acr)
        assert browser.get("/vault", headers=HTML).status_int == 200, acr


@pytest.mark.parametrize(
    "acr",
    [
        pytest.param(PWD, id="weaker"),
        pytest.param(None, id="missing"),
        pytest.param(MFA.upper(), id="case-differs"),
        pytest.param(f"{MFA} urn:dev:loa:hwk", id="both-in-one-string"),
        pytest.param(["urn:dev:loa:mfa"], id="not-a-string"),
    ],
)
def test_a_weaker_acr_steps_up_asking_for_acr_values(vault: SSOMiddleware, provider: FakeProvider,
                                                     acr: Any) -> None:
    browser = browser_for(vault)
    sign_in(browser, provider, acr=acr)
    response = browser.get("/vault/secrets", headers=HTML, status=303)
    assert login_redirect(response.location) == {"target_url": "/vault/secrets", "connection": CONNECTION}
    final, visited = follow(browser, provider, response, [Answer({"acr": MFA})])
    params = query(visited[0])
    assert params["acr_values"] == f"{MFA} urn:dev:loa:hwk"
    assert "max_age" not in params and "prompt" not in params
    assert final.status_int == 200 and final.request.path == "/vault/secrets"


@pytest.mark.parametrize(
    "acr",
    [
        pytest.param(PWD, id="wrong-acr"),
        pytest.param(None, id="no-acr"),
        pytest.param(7, id="acr-not-a-string"),
    ],
)
def test_a_provider_ignoring_acr_values_ends_on_step_up_failed(vault: SSOMiddleware, provider: FakeProvider,
                                                               acr: Any) -> None:
    browser = browser_for(vault)
    sign_in(browser, provider, acr=PWD)
    before = whoami(browser)
    records = stored_users(vault)
    response = browser.get("/vault", headers=HTML, status=303)
    final, visited = follow(browser, provider, response, [Answer({"acr": acr})])
    assert len(visited) == 1
    assert final.status_int == 403
    assert final.request.path == "/auth/failure" and "step_up_failed" in final.text
    assert whoami(browser) == before
    assert stored_users(vault) == records


def test_max_age_and_acr_together(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    browser = make_browser(access_rules=f"/vault acr_values {MFA}; /vault/keys max_age 120")
    sign_in(browser, provider, acr=MFA, auth_time=now() - 1000)
    assert browser.get("/vault", headers=HTML).status_int == 200
    response = browser.get("/vault/keys", headers=HTML, status=303)
    # The provider honours only the acr: still too old.
    final, visited = follow(browser, provider, response, [Answer({"acr": MFA, "auth_time": now() - 1000})])
    params = query(visited[0])
    assert (params["max_age"], params["acr_values"]) == ("120", MFA)
    assert final.status_int == 403 and "step_up_failed" in final.text
    # Honours only max_age: wrong acr.
    response = browser.get("/vault/keys", headers=HTML, status=303)
    final, _ = follow(browser, provider, response, [Answer({"acr": PWD, "auth_time": now()})])
    assert final.status_int == 403 and "step_up_failed" in final.text
    # Both.
    response = browser.get("/vault/keys", headers=HTML, status=303)
    final, _ = follow(browser, provider, response, [Answer({"acr": MFA, "auth_time": now()})])
    assert final.status_int == 200 and final.request.path == "/vault/keys"


def test_nested_acr_rules_ask_for_the_values_they_share(make_browser: Callable[..., Browser],
                                                        provider: FakeProvider) -> None:
    browser = make_browser(access_rules="/vault acr_values a,b,c; /vault/inner acr_values c,b")
    sign_in(browser, provider, acr="a")
    assert browser.get("/vault", headers=HTML).status_int == 200
    response = browser.get("/vault/inner", headers=HTML, status=303)
    final, visited = follow(browser, provider, response, [Answer({"acr": "b"})])
    assert query(visited[0])["acr_values"] == "c b"
    assert final.status_int == 200


# -- step-up for API calls: 401 with a challenge -------------------------------------------------


@pytest.mark.parametrize(("method", "headers"), API_CALLS)
def test_an_api_call_needing_a_step_up_gets_401_with_a_challenge(make_browser: Callable[..., Browser],
                                                                 provider: FakeProvider, method: str,
                                                                 headers: dict[str, str]) -> None:
    browser = make_browser(access_rules=f"/api/pay max_age 300; /api/pay acr_values {MFA},urn:x")
    sign_in(browser, provider, auth_time=now() - 1000, acr=PWD)
    response = call(browser, method, "/api/pay/transfer?amount=5", headers, status=401)
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Location" not in response.headers and "Set-Cookie" not in response.headers
    body = json.loads(response.body)
    assert body["error"] == "insufficient_user_authentication"
    assert login_redirect(body["login_url"]) == {"target_url": "/api/pay/transfer?amount=5", "connection": CONNECTION}
    assert challenge(response.headers["WWW-Authenticate"]) == ("OpenIDConnect", {
        "realm": BASE_URL, "error": "insufficient_user_authentication", "acr_values": f"{MFA} urn:x",
        "max_age": "300",
    })
    assert whoami(browser)["remote_user"] == "alice"


@pytest.mark.parametrize(
    ("rules", "params"),
    [
        pytest.param("/api max_age 300", {"max_age": "300"}, id="max-age-only"),
        pytest.param(f"/api acr_values {MFA}", {"acr_values": MFA}, id="acr-only"),
        pytest.param("/api max_age 0", {"max_age": "0"}, id="max-age-zero"),
    ],
)
def test_the_challenge_names_only_what_is_required(make_browser: Callable[..., Browser], provider: FakeProvider,
                                                   rules: str, params: dict[str, str]) -> None:
    browser = make_browser(access_rules=rules)
    sign_in(browser, provider, auth_time=now() - 1000, acr=PWD)
    response = browser.get("/api/x", headers={"Accept": "application/json"}, status=401)
    scheme, found = challenge(response.headers["WWW-Authenticate"])
    assert scheme == "OpenIDConnect"
    assert found == {"realm": BASE_URL, "error": "insufficient_user_authentication", **params}


def test_the_challenge_quotes_acr_values_per_rfc_9110(make_browser: Callable[..., Browser],
                                                      provider: FakeProvider) -> None:
    r"""acr values may hold ``"`` and ``\`` (the parser allows any printable text): escaped in the quoted-string."""
    browser = make_browser(access_rules='/api acr_values a"b,c\\d,e\\"f')
    sign_in(browser, provider, acr=PWD)
    response = browser.get("/api/x", headers={"Accept": "application/json"}, status=401)
    header = response.headers["WWW-Authenticate"]
    assert 'acr_values="a\\"b c\\\\d e\\\\\\"f"' in header
    assert challenge(header)[1]["acr_values"] == 'a"b c\\d e\\"f'
    # The same values travel to the provider and are checked at the callback.
    response = browser.get("/api/x", headers=HTML, status=303)
    final, visited = follow(browser, provider, response, [Answer({"acr": 'c\\d'})])
    assert query(visited[0])["acr_values"] == 'a"b c\\d e\\"f'
    assert final.status_int == 200


def test_non_ascii_acr_values_never_make_an_invalid_header(make_browser: Callable[..., Browser],
                                                           provider: FakeProvider) -> None:
    try:
        browser = make_browser(access_rules="/api acr_values urn:lo\u20ac")
    except ConfigError as refused:  # refusing them at start-up is as good
        assert refused.setting == "access_rules"
        return
    sign_in(browser, provider, acr=PWD)
    response = browser.get("/api/x", headers={"Accept": "application/json"}, expect_errors=True)
    assert response.status_int == 401
    response.headers["WWW-Authenticate"].encode("ascii")


# -- /auth/sso and /auth/login to step-up targets --------------------------------------------------


def test_sso_to_a_step_up_target_asks_silently_with_max_age(make_browser: Callable[..., Browser],
                                                            provider: FakeProvider) -> None:
    browser = make_browser(access_rules="/billing max_age 300")
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/billing/x"})
    assert is_authorize(response)
    params = query(response.location)
    assert (params["prompt"], params["max_age"], params["connection"]) == ("none", "300", CONNECTION)
    # The provider's session is too old for a silent answer: login_required, retried interactively.
    final, visited = follow(browser, provider, response,
                            [Answer(error="login_required"), Answer({"auth_time": now()})])
    assert len(visited) == 2
    retry = query(visited[1])
    assert "prompt" not in retry
    assert (retry["max_age"], retry["connection"]) == ("300", CONNECTION)
    assert final.status_int == 200 and final.request.path == "/billing/x"


def test_sso_retry_that_still_misses_max_age_fails_once(make_browser: Callable[..., Browser],
                                                        provider: FakeProvider) -> None:
    browser = make_browser(access_rules="/billing max_age 300")
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/billing"})
    final, visited = follow(browser, provider, response,
                            [Answer(error="login_required"), Answer({"auth_time": now() - 1000})])
    assert len(visited) == 2
    assert final.status_int == 403 and "step_up_failed" in final.text
    assert whoami(browser)["remote_user"] is None


def test_sso_with_anonymous_fallback_to_a_step_up_target_ends_at_an_interactive_login(
    make_browser: Callable[..., Browser], provider: FakeProvider
) -> None:
    """silent_sso_fallback=anonymous goes to the target without a user; a rule path then asks to sign in."""
    browser = make_browser(access_rules="/billing max_age 300", silent_sso_fallback="anonymous")
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/billing"})
    final, visited = follow(browser, provider, response,
                            [Answer(error="login_required"), Answer({"auth_time": now()})])
    assert [query(url).get("prompt") for url in visited] == ["none", None]
    assert [query(url)["max_age"] for url in visited] == ["300", "300"]
    assert final.status_int == 200 and final.request.path == "/billing"


def test_sso_to_an_acr_target_sends_acr_values(make_browser: Callable[..., Browser], provider: FakeProvider) -> None:
    browser = make_browser(access_rules=f"/vault acr_values {MFA}")
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/vault"})
    params = query(response.location)
    assert (params["prompt"], params["acr_values"]) == ("none", MFA)
    assert "max_age" not in params
    final, visited = follow(browser, provider, response, [Answer({"acr": MFA})])
    assert len(visited) == 1 and final.status_int == 200


def test_sso_when_already_signed_in_goes_to_the_target_which_then_steps_up(make_browser: Callable[..., Browser],
                                                                           provider: FakeProvider) -> None:
    browser = make_browser(access_rules="/billing max_age 300")
    sign_in(browser, provider, auth_time=now() - 1000)
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/billing"})
    assert response.location == BASE_URL + "/billing"
    final, visited = follow(browser, provider, response, [Answer({"auth_time": now()})])
    assert len(visited) == 1 and query(visited[0])["max_age"] == "300"
    assert final.status_int == 200


def test_an_anonymous_visitor_to_a_step_up_page_is_asked_for_it_at_once(make_browser: Callable[..., Browser],
                                                                        provider: FakeProvider) -> None:
    """No sign-in followed by a second one: the first authorization request already carries max_age."""
    browser = make_browser(access_rules="/billing max_age 300")
    response = browser.get("/billing", headers=HTML, status=303)
    assert login_redirect(response.location) == {"target_url": "/billing"}
    final, visited = follow(browser, provider, response, [Answer({"auth_time": now()})])
    assert len(visited) == 1 and query(visited[0])["max_age"] == "300"
    assert final.status_int == 200


@pytest.mark.parametrize(
    ("target", "max_age"),
    [
        pytest.param("/billing", "300", id="relative"),
        pytest.param("/billing/x?y=1#z", "300", id="relative-query-fragment"),
        pytest.param("/b%69lling/x", "300", id="percent-encoded"),
        pytest.param("/x/../billing", "300", id="dot-dot"),
        pytest.param("/billingx", None, id="longer-segment"),
        pytest.param("/", None, id="root"),
        pytest.param("https://app2.example/billing", "300", id="absolute-same-origin"),
        pytest.param("https://APP2.example:443/billing?x=1", "300", id="absolute-same-origin-spelled-otherwise"),
        pytest.param("https://app2.example/other", None, id="absolute-same-origin-unruled"),
        pytest.param("https://app3.example/billing", None, id="allowed-other-origin"),
    ],
)
@pytest.mark.parametrize("route", ["/auth/login", "/auth/sso"])
def test_the_targets_path_decides_the_step_up(make_browser: Callable[..., Browser], target: str,
                                              max_age: Optional[str], route: str) -> None:
    browser = make_browser(access_rules="/billing max_age 300", allowed_redirect_origins=["https://app3.example"])
    response = browser.get(route, {"connection": CONNECTION, "target_url": target})
    assert is_authorize(response), response
    assert query(response.location).get("max_age") == max_age


def test_a_root_rule_covers_every_target_of_this_application_only(make_browser: Callable[..., Browser]) -> None:
    browser = make_browser(access_rules="/ max_age 300", allowed_redirect_origins=["https://app3.example"])
    for target, expected in (("/", "300"), ("/x", "300"), ("https://app2.example/x", "300"),
                             ("https://app3.example/x", None), ("https://app3.example/", None)):
        response = browser.get("/auth/login", {"target_url": target})
        assert query(response.location).get("max_age") == expected, target


def mounted(app: Any, prefix: str) -> Callable[..., Any]:
    """The middleware mounted under ``prefix`` (what a WSGI server's SCRIPT_NAME does)."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path != prefix and not path.startswith(prefix + "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not mounted here"]
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
        environ["PATH_INFO"] = path[len(prefix):]
        return app(environ, start_response)

    return wsgi


def test_step_up_under_a_mount_prefix(make_middleware: Callable[..., SSOMiddleware], provider: FakeProvider) -> None:
    middleware = make_middleware(base_url="https://app2.example/app2", access_rules="/billing max_age 300")
    browser = webtest.TestApp(mounted(middleware, "/app2"),
                              extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "app2.example"})
    provider.id_token_overrides = {"auth_time": now() - 1000}
    response = browser.get("/app2/auth/sso", {"connection": CONNECTION, "target_url": "/"})
    browser.get(provider.authorize(response.location), status=303)
    response = browser.get("/app2/billing?x=1", headers=HTML, status=303)
    assert login_redirect(response.location, prefix="/app2") == {"target_url": "/billing?x=1",
                                                                 "connection": CONNECTION}
    final, visited = follow(browser, provider, response, [Answer({"auth_time": now()})])
    assert query(visited[0])["max_age"] == "300"
    assert final.status_int == 200 and final.json["path"] == "/billing"
    # Absolute targets: below the prefix they are the application's paths; beside it they are not.
    for target, expected in (("https://app2.example/app2/billing", "300"), ("https://app2.example/billing", None),
                             ("https://app2.example/app2billing", None)):
        response = browser.get("/app2/auth/login", {"target_url": target})
        assert query(response.location).get("max_age") == expected, target


# -- the callback's own checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth_time",
    [
        pytest.param("1700000000", id="text"),
        pytest.param(True, id="boolean"),
        pytest.param([1700000000], id="list"),
        pytest.param({"t": 1}, id="object"),
    ],
)
@pytest.mark.parametrize("rules", [pytest.param("", id="no-rules"), pytest.param("/billing max_age 300", id="rule")])
def test_an_auth_time_that_is_not_a_number_is_an_invalid_id_token(make_browser: Callable[..., Browser],
                                                                  provider: FakeProvider, auth_time: Any,
                                                                  rules: str) -> None:
    browser = make_browser(access_rules=rules)
    response = browser.get("/auth/login", {"target_url": "/billing"})
    provider.id_token_overrides = {"auth_time": auth_time}
    assert failure_code(browser.get(provider.authorize(response.location))) == "invalid_id_token"
    assert whoami(browser)["remote_user"] is None


@pytest.mark.parametrize("rules", [pytest.param("", id="no-rules"), pytest.param("/billing max_age 300", id="rule")])
def test_a_huge_auth_time_is_not_a_500(make_browser: Callable[..., Browser], provider: FakeProvider,
                                       rules: str) -> None:
    browser = make_browser(access_rules=rules)
    response = browser.get("/auth/login", {"target_url": "/billing"})
    provider.id_token_overrides = {"auth_time": 10**400}
    response = browser.get(provider.authorize(response.location), expect_errors=True)
    assert response.status_int == 303, response.status
    assert failure_code(response) in ("invalid_id_token", "step_up_failed")


def test_a_sign_in_without_step_up_accepts_any_auth_time_and_acr(make_browser: Callable[..., Browser],
                                                                  provider: FakeProvider) -> None:
    """Only a sign-in that asked for a step-up checks auth_time/acr; other sign-ins never fail on them."""
    browser = make_browser(access_rules="/billing max_age 300")
    sign_in(browser, provider, target="/dashboard", auth_time=1, acr=None)
    assert whoami(browser)["remote_user"] == "alice"


# -- with protected_paths, and without any rule ------------------------------------------------------


def test_protected_paths_and_access_rules_together(make_browser: Callable[..., Browser],
                                                   provider: FakeProvider) -> None:
    settings = {"protected_paths": ["/private", "/admin"],
                "access_rules": "/admin claim roles includes admin; /admin/billing max_age 300"}
    anonymous = make_browser(**settings)
    for path in ("/private/x", "/admin", "/admin/billing"):
        response = anonymous.get(path, headers=HTML, status=303)
        assert login_redirect(response.location) == {"target_url": path}
    anonymous.get("/public", status=200)

    for roles, statuses in ((["user"], (200, 403, 403)), (["admin"], (200, 200, 303))):
        set_claims(provider, roles=roles)
        browser = make_browser(**settings)
        sign_in(browser, provider, auth_time=now() - 1000)
        found = tuple(browser.get(path, headers=HTML, expect_errors=True).status_int
                      for path in ("/private/x", "/admin", "/admin/billing"))
        assert found == statuses, roles


def test_without_rules_nothing_changes(make_middleware: Callable[..., SSOMiddleware],
                                       provider: FakeProvider) -> None:
    middleware = make_middleware(protected_paths=["/admin"])
    assert middleware.config.access_rules == ()
    browser = browser_for(middleware)
    browser.get("/billing", headers=HTML, status=200)
    response = browser.get("/auth/sso", {"connection": CONNECTION, "target_url": "/billing"})
    assert not {"max_age", "acr_values"} & set(query(response.location))
    provider.id_token_overrides = {"auth_time": 1, "acr": None}
    browser.get(provider.authorize(response.location), status=303)
    for path in ("/billing", "/admin", "/vault", "/"):
        assert browser.get(path, headers=HTML).json["remote_user"] == "alice"
    response = browser.get("/auth/login", {"target_url": "/admin"})
    assert not {"max_age", "acr_values"} & set(query(response.location))


# -- review fixes: login targets of odd paths, huge max_age, the app's own failure page --------------


def test_a_doubled_slash_path_signs_in_to_its_single_slash_target(make_browser: Callable[..., Browser],
                                                                   provider: FakeProvider) -> None:
    """"//admin" is guarded like "/admin"; its login target must not read as a host ("//admin")."""
    browser = make_browser(access_rules="/admin claim roles present")
    response = browser.get("//admin?q=a\\b c", headers={"Accept": "text/html"})
    assert response.status_int == 303
    target = parse_qs(urlsplit(response.location).query)["target_url"][0]
    assert target == "/admin?q=a%5Cb%20c"
    login = browser.get(response.location)
    assert login.status_int == 303 and urlsplit(login.location).netloc == urlsplit(provider.issuer).netloc


def test_a_max_age_too_large_for_a_float_is_refused_at_start_up(make_browser: Callable[..., Browser]) -> None:
    with pytest.raises(ConfigError) as refused:
        make_browser(access_rules="/billing max_age " + "9" * 400)
    assert refused.value.setting == "access_rules"


def test_the_apps_own_failure_page_is_never_guarded(make_browser: Callable[..., Browser],
                                                    provider: FakeProvider) -> None:
    """With serve_failure_page=false the app serves /auth/failure; a rule over "/" must not send that page to
    sign in again, or a failing sign-in would loop."""
    browser = make_browser(access_rules="/ claim roles includes admin", serve_failure_page=False)
    anonymous = browser.get("/auth/failure?error=invalid_state", headers={"Accept": "text/html"})
    assert anonymous.status_int == 200
    set_claims(provider, roles=["user"])
    sign_in(browser, provider)
    assert browser.get("/auth/failure", headers={"Accept": "text/html"}).status_int == 200
    assert browser.get("/elsewhere", headers={"Accept": "text/html"}, expect_errors=True).status_int == 403


# -- issue 13 item 2: the app's failure page opens no rule path; item 14: encoded prefixes ----------------


@pytest.mark.parametrize("path", ["/admin/../auth/failure", "/admin/%2e%2e/auth/failure",
                                  "//admin/x/../../auth/failure"])
def test_a_path_resolving_to_the_apps_failure_page_is_still_ruled(make_browser: Callable[..., Browser],
                                                                  provider: FakeProvider, path: str) -> None:
    """serve_failure_page=false: the app routes "/admin/../auth/failure" under /admin (as sent)."""
    browser = make_browser(access_rules="/admin claim roles includes admin", serve_failure_page=False)
    assert browser.get(path, headers={"Accept": "application/json"}, expect_errors=True).status_int == 401
    set_claims(provider, roles=["user"])
    sign_in(browser, provider)
    assert browser.get(path, headers={"Accept": "application/json"}, expect_errors=True).status_int == 403
    assert browser.get("/auth/failure", headers={"Accept": "application/json"}).status_int == 200


@pytest.mark.parametrize("prefix", ["/caf%C3%A9", "/café"])
def test_a_percent_encoded_or_non_ascii_rule_path_rules_the_decoded_path(make_browser: Callable[..., Browser],
                                                                         provider: FakeProvider, prefix: str) -> None:
    browser = make_browser(access_rules=f"{prefix} claim roles includes admin")
    set_claims(provider, roles=["user"])
    sign_in(browser, provider)
    for path in ("/caf%C3%A9", "/caf%C3%A9/menu", "/caf%c3%a9/menu"):
        assert browser.get(path, headers={"Accept": "application/json"}, expect_errors=True).status_int == 403, path
    assert browser.get("/cafe/menu", headers={"Accept": "application/json"}).status_int == 200


def test_a_step_up_rule_on_a_non_ascii_path_is_asked_for_at_login(make_browser: Callable[..., Browser]) -> None:
    """The login route matches its (percent-encoded) target with the decoded rule path too, else the
    provider is never asked for max_age and the access check would send the user round again."""
    browser = make_browser(access_rules="/caf%C3%A9 max_age 300")
    response = browser.get("/caf%C3%A9/menu", headers=HTML, status=303)
    assert login_redirect(response.location) == {"target_url": "/caf%C3%A9/menu"}
    authorize = browser.get(response.location, status=303)
    assert is_authorize(authorize) and query(authorize.location)["max_age"] == "300"


@pytest.mark.parametrize(("rule", "problem"), [
    pytest.param("/a%2Fb max_age 1", "encoded '/'", id="encoded-slash"),
    pytest.param("/a/%2e%2e/admin max_age 1", "dot segment", id="encoded-dot-dot"),
    pytest.param("/a%zz max_age 1", "malformed", id="bad-hex"),
    pytest.param("/a%0d max_age 1", "control", id="encoded-cr"),
])
def test_an_unguardable_encoded_rule_path_is_refused_at_start_up(make_browser: Callable[..., Browser],
                                                                 rule: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        make_browser(access_rules=rule)
    assert refused.value.setting == "access_rules"
    assert problem in str(refused.value)
