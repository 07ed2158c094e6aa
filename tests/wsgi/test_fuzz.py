"""Property-based fuzzing of every auth route and the pass-through path (hypothesis).

Random methods, paths, query strings, bodies, cookies (garbage, tampered,
truncated, oversized, another app's) and headers are thrown at the middleware
as raw WSGI environs.  Whatever arrives, these must hold:

* no 5xx and no traceback in the body;
* no CR or LF in any response header, and every header is latin-1 text;
* every redirect goes to the application's own origin or the provider's
  authorization endpoint (never elsewhere);
* nothing creates a session: no request stores a record or sets a live
  session cookie (starting a sign-in stores nothing, and no fuzzed callback
  can complete one);
* a sign-in transaction cookie is set only with a redirect to the provider's
  authorization endpoint, one, named for the ``state`` it sends there; every
  other cookie header expires a cookie, and a transaction cookie is expired
  only if the request carried it; issuing one leaves the browser at most
  ``MAX_TRANSACTIONS`` of them;
* ``REMOTE_USER`` reaches the app only for the one signed-in cookie, or on a bearer path
  (``/api``) for the one valid access token sent verbatim in an ``Authorization`` header;
* on a bearer path any ``Authorization`` header (garbage, other schemes, tampered,
  truncated, forged or expired tokens, opaque ones introspected) gets a 200, 400, 401 or
  403, never a cookie, and every 401/403 carries a ``Bearer`` challenge;
* a body over ``max_request_body``, or unsized (chunked), sent to an auth route
  is answered 413 without a byte of it being read.

A second target runs with ``response_mode = form_post`` and two ``base_url``
origins: its callback takes POSTed forms (random bodies, types, lengths, repeated
fields, the real ``state``), requests arrive with listed, unlisted and malformed
Hosts, and every redirect must still go to a listed origin (never the Host sent).

The cookies include a real transaction cookie (with its ``state`` sometimes in
the query), tampered, truncated or renamed, among heaps of look-alikes.
"""

from __future__ import annotations

import io
import json
import os
import time
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sso_middleware import SSOMiddleware
from sso_middleware._wsgi.transactions import MAX_TRANSACTIONS

from ..conftest import legacy_app
from ..cookies import is_tx_name, parse_all, tx_name, tx_prefix
from ..fakes import BASE_URL, FakeProvider, make_response
from ..tokens import API, access_token, claims, forge, hmac_token, sign

AUTH_PATHS = ["/auth/sso", "/auth/login", "/auth/callback", "/auth/logout", "/auth/failure",
              "/auth/backchannel-logout"]
BEARER_PATHS = ["/api", "/api/x", "/api/admin", "/api/admin/x", "//api/admin/../x", "/api/%2e%2e/admin"]
PATHS = st.one_of(st.sampled_from([*AUTH_PATHS, "/", "/dashboard", "/dashboard/x", "/public", *BEARER_PATHS]),
                  st.text(max_size=40).map(lambda text: "/" + text))
PARAM_NAMES = st.sampled_from(["target_url", "connection", "state", "code", "error", "iss", "logout_token",
                               "error_description", "x"])
PARAM_VALUES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["/dashboard", "//evil.example", "/\\evil.example", "https://evil.example/", "javascript:alert(1)",
                     "/%0d%0aSet-Cookie:%20x=1", "%ff%fe", "login_required", "https://op.example/",
                     "Username-Password-Authentication", "a" * 3000]),
)
QUERY = st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=5).map(
    lambda pairs: "&".join(f"{name}={value}" for name, value in pairs)
)
RAW_QUERY = st.one_of(QUERY, st.binary(max_size=80).map(lambda data: data.decode("latin-1")))
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80)
CONTENT_TYPES = st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data",
                                 "multipart/form-data; boundary=XX", "application/json", "text/plain",
                                 "application/x-www-form-urlencoded; charset=utf-16", ""])


def mutations(cookie: str) -> st.SearchStrategy[str]:
    """``cookie`` (``name=value``) as is, truncated, with one character changed, oversized, doubled, or garbage."""
    name, _, value = cookie.partition("=")
    return st.one_of(
        st.just(cookie),
        st.integers(0, max(len(value) - 1, 0)).map(lambda cut: f"{name}={value[:cut]}"),
        st.integers(0, max(len(value) - 1, 0)).map(
            lambda at: f"{name}={value[:at]}{'0' if value[at:at + 1] != '0' else '1'}{value[at + 1:]}"),
        st.just(f"{name}={'a' * 5000}"),
        st.just(f'{name}="{value}"; {name}=other'),
        HEADER_TEXT.map(lambda text: f"{name}={text}"),
    )


def tx_look_alikes(session_cookie: str, transaction: str, at_least: int = 0) -> st.SearchStrategy[str]:
    """The real transaction cookie (or a mutation) among up to 12 others with our prefix: well-formed
    names of other states, names that are not even legal cookie names, renamed copies of the real one."""
    prefix = tx_prefix(session_cookie)
    value = transaction.partition("=")[2]
    suffix = st.one_of(st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
                       st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                                      exclude_characters=";="), max_size=20))
    other = st.tuples(suffix, st.one_of(st.just(value), HEADER_TEXT.map(lambda text: text.replace(";", ""))))
    others = st.lists(other.map(lambda pair: f"{prefix}{pair[0]}={pair[1]}"), min_size=at_least, max_size=12)
    return st.tuples(mutations(transaction), others).flatmap(
        lambda parts: st.permutations([parts[0], *parts[1]])).map("; ".join)


def cookie_values(signed_in: str, transaction: str) -> st.SearchStrategy[str]:
    """Cookie headers: garbage, our valid cookies tampered or truncated, oversized, others' cookies."""
    name = signed_in.partition("=")[0]
    return st.one_of(
        st.just(""),
        HEADER_TEXT,
        mutations(signed_in),
        st.just('prefs={"a":1}; sso_session=abc; other_app_session=zzz'),
        tx_look_alikes(name, transaction),
        st.tuples(mutations(signed_in), tx_look_alikes(name, transaction)).map("; ".join),
    )


#: The one opaque token the fuzz target's introspection endpoint calls active.
OPAQUE = "opaque-active-token"
#: A valid JWT access token without ``read:admin`` (accepted on /api, 403 on /api/admin).
READER = access_token(scope="read:messages", exp=int(time.time()) + 86400)


def introspect(request: Any) -> Any:
    """The fuzz target's RFC 7662 endpoint: OPAQUE is active for the API, anything else inactive."""
    body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
    token = parse_qs(body).get("token", [""])[0]
    answer = ({"active": True, "sub": "alice", "aud": API, "scope": "read:messages", "exp": int(time.time()) + 600}
              if token == OPAQUE else {"active": False})
    return make_response(request, 200, json.dumps(answer).encode())


def token_mutations(token: str) -> st.SearchStrategy[str]:
    """A valid access token as is, truncated, with a character changed, segments swapped or replaced, forged."""
    head, body, signature = token.split(".")
    segment = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60)
    return st.one_of(
        st.just(token),
        st.integers(0, len(token) - 1).map(lambda cut: token[:cut]),
        st.integers(0, len(token) - 1).map(lambda at: token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1:]),
        st.just(f"{body}.{head}.{signature}"),
        segment.map(lambda text: f"{text}.{body}.{signature}"),
        segment.map(lambda text: f"{head}.{text}.{signature}"),
        st.just(forge({"alg": "none", "typ": "at+jwt"}, {"iss": "https://op.example/", "sub": "root", "aud": API,
                                                          "exp": 4102444800, "iat": 0})),
        st.just(hmac_token({"alg": "HS256", "typ": "at+jwt", "kid": "key-1"}, {"sub": "root", "aud": API}, b"k")),
        st.just(sign(claims())),  # an ID token
        st.just(access_token(exp=1)),  # expired long ago
        st.just(READER),
        st.just(OPAQUE),
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=", min_size=1,
                max_size=80),
    )


def authorizations(token: str) -> st.SearchStrategy[str]:
    """Authorization headers: bearer credentials of any quality, other schemes, garbage."""
    return st.one_of(
        token_mutations(token).map(lambda value: f"Bearer {value}"),
        st.tuples(st.sampled_from(["bearer", "BEARER", "Bearer  ", "Bearer\t", "Bearer,", "Token", "Basic", "Bearer"]),
                  token_mutations(token)).map(lambda pair: f"{pair[0]} {pair[1]}"),
        st.just(f"Bearer {token}, Bearer {token}"),
        st.just("Basic dTpw"),
        HEADER_TEXT,
    )


def environ_for(method: str, path: str, query: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "app2.example",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "HTTP_HOST": "app2.example",
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in headers.items():
        if name == "Content-Type":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def call(app: Callable[..., Any], environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    received = environ.get("wsgi.input")
    body = b"".join(app(environ, start_response))
    spooled = environ.get("wsgi.input")
    if spooled is not received and spooled is not None:
        # WebOb copies a large body (over 10 KB) to a temporary file that replaces wsgi.input; the environ
        # is in a reference cycle (WebOb's GetDict refers back to it), so without this the file would be
        # closed by whichever later garbage collection comes first -- and reported in whatever test runs then.
        spooled.close()
    return int(captured["status"].split()[0]), captured["headers"], body


class Target:
    """One middleware (file store) and a signed-in user whose cookie seeds the mutations."""

    def __init__(self, directory: str, **extra: Any) -> None:
        from ..conftest import SESSION_SECRET
        from ..fakes import CLIENT_ID, CLIENT_SECRET, ISSUER

        self.provider = FakeProvider()
        self.provider.discovery_overrides["introspection_endpoint"] = ISSUER + "oauth/introspect"
        self.provider.fail["/oauth/introspect"] = introspect
        settings: dict[str, Any] = {"base_url": BASE_URL, "bearer_paths": "/api", "bearer_audience": API,
                                    "bearer_rules": "/api/admin scope read:admin", "bearer_introspection": True,
                                    **extra}
        self.middleware = SSOMiddleware(
            legacy_app, issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
            session_secret=SESSION_SECRET, session_data_dir=directory, protected_paths=["/dashboard"], **settings,
            http_transport=self.provider.transport(),
        )
        self.cookie = ""
        self.transaction, self.state = self._sign_in_in_flight()
        self.token = access_token(exp=int(time.time()) + 86400)  # valid, with read:admin

    def _sign_in_in_flight(self) -> tuple[str, str]:
        """A real transaction cookie (``name=value``) and its state, as ``/auth/sso`` issues them."""
        from ..conftest import browser_for
        from .test_handlers import start_sso

        browser = browser_for(self.middleware)
        response = start_sso(browser)
        state = parse_qs(urlsplit(response.location).query)["state"][0]
        name = tx_name(self.middleware.store.cookie_name, state)
        return f"{name}={browser.cookies[name]}", state

    def signed_in_cookie(self) -> str:
        """The seed cookie, signing in again if a fuzzed request signed the user out."""
        if not self.cookie or b'"remote_user": "alice"' not in call(
            self.middleware, environ_for("GET", "/page", "", b"", {"Cookie": self.cookie}))[2]:
            from ..conftest import browser_for
            from .test_handlers import sign_in, start_sso

            browser = browser_for(self.middleware)
            if self.middleware.config.response_mode == "form_post":
                from .test_callback_modes import post_back

                post_back(browser, self.provider.authorize(start_sso(browser).location))
            else:
                sign_in(browser, self.provider)
            name = self.middleware.store.cookie_name
            self.cookie = f"{name}={browser.cookies[name]}"
        return self.cookie


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    return Target(str(tmp_path_factory.mktemp("fuzz") / "sessions"))


def stored_records(middleware: SSOMiddleware) -> int:
    root = os.path.join(middleware.config.data_dir, "container_file")
    return sum(len(files) for _root, _dirs, files in os.walk(root))


def check_invariants(middleware: SSOMiddleware, environ: dict[str, Any], signed_in_cookie: str,
                     valid_token: str = "") -> None:
    path = environ["PATH_INFO"]
    before = stored_records(middleware)
    seen: dict[str, Any] = {}
    inner = middleware.app

    def spy(env: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        seen["remote_user"] = env.get("REMOTE_USER")
        return inner(env, start_response)

    middleware.app = spy
    try:
        status, headers, body = call(middleware, environ)
    finally:
        middleware.app = inner
    assert status < 500, (status, body[:300])
    assert b"Traceback" not in body
    for name, value in headers:
        assert "\r" not in value and "\n" not in value, (name, value)
        value.encode("latin-1")
        if name.lower() == "location":
            parts = urlsplit(value)
            origin = f"{parts.scheme}://{parts.netloc}"
            assert origin in (*middleware.config.origins, "https://op.example"), value
            if origin == "https://op.example":
                assert parts.path in ("/authorize", "/oidc/logout"), value
    assert stored_records(middleware) <= before, f"{environ['REQUEST_METHOD']} {path} stored a session"
    check_cookies(middleware, environ, status, headers)
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if seen.get("remote_user") is not None:  # only the real session's value (quoted or not), or a real token
        by_token = middleware.bearer is not None and middleware.bearer.covers(path) and (
            authorization.split(" ")[-1] in (valid_token, READER, OPAQUE))
        assert by_token or signed_in_cookie.partition("=")[2] in environ.get("HTTP_COOKIE", ""), (
            environ.get("HTTP_COOKIE"), authorization[:80])
    if middleware.bearer is not None and middleware.bearer.covers(path):
        assert status in (200, 400, 401, 403), (status, body[:300])
        challenges = [value for name, value in headers if name.lower() == "www-authenticate"]
        if status in (401, 403):
            assert len(challenges) == 1 and challenges[0].startswith(f'Bearer realm="{BASE_URL}"'), headers
        if authorization.strip().partition(" ")[0].lower() == "bearer":  # bearer credentials: no session at all
            assert not any(name.lower() == "set-cookie" for name, _ in headers), headers


def check_cookies(middleware: SSOMiddleware, environ: dict[str, Any], status: int,
                  headers: list[tuple[str, str]]) -> None:
    session_cookie = middleware.store.cookie_name
    sent = {part.partition("=")[0].strip() for part in environ.get("HTTP_COOKIE", "").split(";") if "=" in part}
    carried = {name for name in sent if is_tx_name(session_cookie, name)}
    location = next((value for name, value in headers if name.lower() == "location"), "")
    cookies = parse_all(value for name, value in headers if name.lower() == "set-cookie")
    issued = [cookie.name for cookie in cookies if not cookie.expires_it]
    expired = {cookie.name for cookie in cookies if cookie.expires_it}
    for cookie in cookies:
        assert cookie.name == session_cookie or is_tx_name(session_cookie, cookie.name), cookie
        if is_tx_name(session_cookie, cookie.name):
            assert {"httponly", "secure", "samesite", "path", "max-age"} <= set(cookie.attributes), cookie
    assert session_cookie not in issued, "a fuzzed request set a live session cookie"
    assert expired & carried == {name for name in expired if name != session_cookie}, (expired, carried)
    if issued:
        assert status == 303 and location.startswith("https://op.example/authorize?"), (status, location, issued)
        assert issued == [tx_name(session_cookie, parse_qs(urlsplit(location).query)["state"][0])], issued
        assert len((carried - expired) | set(issued)) <= MAX_TRANSACTIONS, (len(carried), expired)


FUZZ_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ_SETTINGS
@given(data=st.data())
def test_any_request_gets_a_clean_answer(fuzz_target: Target, data: Any) -> None:
    middleware, cookie = fuzz_target.middleware, fuzz_target.signed_in_cookie()
    method = data.draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]))
    path = data.draw(PATHS)
    query = data.draw(RAW_QUERY)
    if data.draw(st.booleans()):  # the state of the real transaction cookie
        query = f"{query}&state={fuzz_target.state}" if query else f"state={fuzz_target.state}"
    body = data.draw(st.one_of(QUERY.map(str.encode), st.binary(max_size=200)))
    headers = {
        "Cookie": data.draw(cookie_values(cookie, fuzz_target.transaction)),
        "Content-Type": data.draw(CONTENT_TYPES),
        "Accept": data.draw(st.sampled_from(["text/html", "application/json", "*/*", "", "image/png"])),
        "Sec-Fetch-Mode": data.draw(st.sampled_from(["navigate", "cors", "no-cors", ""])),
        "X-Requested-With": data.draw(st.sampled_from(["", "XMLHttpRequest"])),
        "Remote-User": data.draw(HEADER_TEXT),
        "Authorization": data.draw(st.one_of(st.just(""), authorizations(fuzz_target.token))),
    }
    headers = {name: value for name, value in headers.items() if value}
    if data.draw(st.booleans()):  # a token in the URL: refused on bearer paths, ignored elsewhere
        query = f"{query}&access_token={fuzz_target.token}"
    environ = environ_for(method, path, query, body, headers)
    if data.draw(st.booleans()):
        environ["REMOTE_USER"] = "spoofed-admin"
    if data.draw(st.booleans()):
        environ["sso.scopes"] = ("read:admin",)
    check_invariants(middleware, environ, cookie, fuzz_target.token)


@FUZZ_SETTINGS
@given(data=st.data())
def test_bearer_paths_with_any_authorization_header(fuzz_target: Target, data: Any) -> None:
    """Every bearer path, any Authorization header, with or without the session cookie: never a 5xx."""
    middleware, cookie = fuzz_target.middleware, fuzz_target.signed_in_cookie()
    headers = {"Authorization": data.draw(authorizations(fuzz_target.token))}
    if data.draw(st.booleans()):
        headers["Cookie"] = data.draw(st.one_of(st.just(cookie), mutations(cookie)))
    method = data.draw(st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "DELETE"]))
    path = data.draw(st.sampled_from(BEARER_PATHS))
    query = data.draw(st.one_of(st.just(""), RAW_QUERY))
    environ = environ_for(method, path, query, b"", headers)
    check_invariants(middleware, environ, cookie, fuzz_target.token)


@FUZZ_SETTINGS
@given(query=QUERY, cookie_choice=st.integers(0, 14), method=st.sampled_from(["GET", "POST"]),
       with_state=st.booleans())
def test_callback_with_hostile_parameters(fuzz_target: Target, query: str, cookie_choice: int, method: str,
                                          with_state: bool) -> None:
    middleware, cookie = fuzz_target.middleware, fuzz_target.signed_in_cookie()
    if with_state:  # the state of the real transaction cookie
        query = f"{query}&state={fuzz_target.state}" if query else f"state={fuzz_target.state}"
    tx = fuzz_target.transaction
    tx_name_, _, tx_value = tx.partition("=")
    cookies = ["", cookie, cookie[:-3], cookie + "00", "x=1", cookie.replace("=", "=0"), "a" * 100,
               f"{cookie}; {cookie}", "sso_session=1", tx, f"{cookie}; {tx}", tx[:-3], tx.replace("=", "=0"),
               f"{tx_name(middleware.store.cookie_name, 'another state')}={tx_value}", f"{tx_name_}={'A' * 200}"]
    environ = environ_for(method, "/auth/callback", query if method == "GET" else "",
                          query.encode() if method == "POST" else b"",
                          {"Cookie": cookies[cookie_choice], "Content-Type": "application/x-www-form-urlencoded"})
    check_invariants(middleware, environ, cookie)


@FUZZ_SETTINGS
@given(data=st.data())
def test_starting_sign_ins_among_heaps_of_transaction_cookies(fuzz_target: Target, data: Any) -> None:
    """/auth/sso and /auth/login when the browser already holds about the cap of (look-alike) transactions."""
    middleware, cookie = fuzz_target.middleware, fuzz_target.signed_in_cookie()
    path, query = data.draw(st.sampled_from([
        ("/auth/login", ""),
        ("/auth/login", "target_url=/dashboard&connection=github"),
        ("/auth/sso", "target_url=/dashboard&connection=Username-Password-Authentication"),
        ("/auth/sso", "target_url=/dashboard&connection=github"),
    ]))
    header = data.draw(tx_look_alikes(middleware.store.cookie_name, fuzz_target.transaction,
                                      at_least=MAX_TRANSACTIONS - 2))
    if data.draw(st.booleans()):
        header = f"{cookie}; {header}"
    check_invariants(middleware, environ_for("GET", path, query, b"", {"Cookie": header}), cookie)


FORWARD_NAMES = st.sampled_from(["login_hint", "ui_locales", "screen_hint", "prompt", "organization", "invitation",
                                  "organization_name", "state", "nonce", "redirect_uri", "client_id", "scope",
                                  "response_type", "request_uri", "audience", "utm_source"])
FORWARD_VALUES = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["none", "login", "login none", "consent select_account", "org_acme", "acme", "inv_1",
                     "https://evil.example/cb", "a\r\nSet-Cookie: x=1", "x" * 257, "\u202eevil", "alice@example.com"]),
)


@pytest.fixture(scope="module")
def forwarding(tmp_path_factory: pytest.TempPathFactory) -> SSOMiddleware:
    from ..conftest import SESSION_SECRET
    from ..fakes import CLIENT_ID, CLIENT_SECRET, ISSUER

    return SSOMiddleware(
        legacy_app, issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=BASE_URL,
        session_secret=SESSION_SECRET, session_data_dir=str(tmp_path_factory.mktemp("fwd")),
        forward_params=("login_hint", "ui_locales", "screen_hint", "prompt"), authorize_params={"ext-x": "1"},
        http_transport=FakeProvider().transport(),
    )


@FUZZ_SETTINGS
@given(path=st.sampled_from(["/auth/login", "/auth/sso"]), pairs=st.lists(st.tuples(FORWARD_NAMES, FORWARD_VALUES),
                                                                           max_size=6))
def test_forwarded_parameters_never_reach_the_provider_unchecked(
    forwarding: SSOMiddleware, path: str, pairs: list[tuple[str, str]]
) -> None:
    """Whatever a link carries: a clean 303; at the provider only the middleware's protocol values,
    the allowed parameters exactly as given and valid, ``prompt=none`` on a silent attempt."""
    query = urlencode([("target_url", "/x"), ("connection", "c1"), *pairs])
    status, headers, body = call(forwarding, environ_for("GET", path, query, b"", {}))
    assert status == 303 and b"Traceback" not in body, (status, body[:300])
    location = dict(headers)["Location"]
    parts = urlsplit(location)
    if parts.path == "/auth/failure":
        assert parse_qs(parts.query)["error"][0] in ("invalid_authorize_param", "invalid_connection"), location
        return
    assert location.startswith("https://op.example/authorize?"), location
    sent = {name: values for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
    assert all(len(values) == 1 for values in sent.values()), sent
    sent_one = {name: values[0] for name, values in sent.items()}
    assert sent_one["redirect_uri"] == BASE_URL + "/auth/callback"
    assert sent_one["client_id"] == forwarding.config.client_id
    assert sent_one["response_type"] == "code" and sent_one["scope"] == forwarding.config.scope
    assert sent_one["code_challenge_method"] == "S256" and sent_one["connection"] == "c1"
    assert sent_one["ext-x"] == "1" and "request_uri" not in sent_one and "utm_source" not in sent_one
    assert "audience" not in sent_one
    assert "organization_name" not in sent_one
    given_values = dict(pairs)  # the last of each name (a repeated one is refused above)
    for name in ("login_hint", "ui_locales", "screen_hint", "organization", "invitation"):
        if name in sent_one:
            assert sent_one[name] == given_values[name] and sent_one[name].isprintable(), (name, sent_one[name])
    if path == "/auth/sso":
        assert sent_one["prompt"] == "none"
    else:
        assert sent_one.get("prompt", "login") in ("login", "consent", "select_account") or set(
            sent_one["prompt"].split(" ")) <= {"login", "consent", "select_account"}
    for name in ("state", "nonce"):
        assert sent_one[name] != given_values.get(name)


def test_the_seed_cookie_is_a_real_session(fuzz_target: Target) -> None:
    """The seed cookie is valid (so the invariants above were checked against a real session)."""
    cookie = fuzz_target.signed_in_cookie()
    status, _headers, body = call(fuzz_target.middleware, environ_for("GET", "/page", "", b"", {"Cookie": cookie}))
    assert status == 200
    assert b'"remote_user": "alice"' in body


def test_the_seed_transaction_is_a_real_sign_in_in_flight(fuzz_target: Target) -> None:
    """The seed transaction cookie is redeemable for its state (the fuzzed callbacks met a real one)."""
    handlers = fuzz_target.middleware.handlers
    transaction, expire = handlers.transactions.redeem(fuzz_target.state, fuzz_target.transaction,
                                                       handlers.clock())
    assert transaction is not None and transaction.target_url == "/dashboard"
    assert len(expire) == 1


class Untouchable:
    """A ``wsgi.input`` that counts (and refuses) reads."""

    def __init__(self) -> None:
        self.touched = 0

    def read(self, *args: Any) -> bytes:
        self.touched += 1
        raise AssertionError("the body was read")

    readline = read


@FUZZ_SETTINGS
@given(data=st.data())
def test_oversized_or_unsized_bodies_to_auth_routes_are_refused_unread(fuzz_target: Target, data: Any) -> None:
    middleware, cookie = fuzz_target.middleware, fuzz_target.signed_in_cookie()
    limit = middleware.config.max_request_body
    method = data.draw(st.sampled_from(["POST", "PUT", "GET", "PATCH", "DELETE"]))
    path = data.draw(st.sampled_from(AUTH_PATHS))
    environ = environ_for(method, path, data.draw(RAW_QUERY), b"", {
        "Cookie": data.draw(cookie_values(cookie, fuzz_target.transaction)),
        "Content-Type": data.draw(CONTENT_TYPES),
        "Accept": data.draw(st.sampled_from(["text/html", "application/json", ""])),
    })
    body = Untouchable()
    environ["wsgi.input"] = body
    if data.draw(st.booleans()):
        environ["CONTENT_LENGTH"] = str(data.draw(st.integers(limit + 1, 2**70)))
    else:  # chunked, as gunicorn hands it over: no length, a terminated stream
        del environ["CONTENT_LENGTH"]
        environ["HTTP_TRANSFER_ENCODING"] = data.draw(st.sampled_from(["chunked", "gzip, chunked", "Chunked"]))
        environ["wsgi.input_terminated"] = True
    check_invariants(middleware, environ, cookie)
    status, _headers, answer = call(middleware, environ)
    assert (status, body.touched) == (413, 0), answer[:200]


# -- response_mode = form_post and two base_url origins (issue 14 parts 6 and 7) ---------------

SECOND_ORIGIN = "https://intranet.corp.example"
HOSTS = st.one_of(st.sampled_from(["app2.example", "intranet.corp.example", "evil.example", "app2.example:443",
                                   "intranet.corp.example:8443", "evil.example@app2.example", ""]), HEADER_TEXT)


@pytest.fixture(scope="module")
def form_post_target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    return Target(str(tmp_path_factory.mktemp("fuzz-form-post") / "sessions"), response_mode="form_post",
                  base_url=f"{BASE_URL} {SECOND_ORIGIN}")


def test_the_form_post_seeds_are_real(form_post_target: Target) -> None:
    """The form_post target's seed session came from a POSTed callback; its transaction is a real one."""
    cookie = form_post_target.signed_in_cookie()
    status, _headers, body = call(form_post_target.middleware, environ_for("GET", "/page", "", b"", {"Cookie": cookie}))
    assert (status, b'"remote_user": "alice"' in body) == (200, True)
    handlers = form_post_target.middleware.handlers
    transaction, _expire = handlers.transactions.redeem(form_post_target.state, form_post_target.transaction,
                                                        handlers.clock())
    assert transaction is not None


@FUZZ_SETTINGS
@given(data=st.data())
def test_form_post_callback_with_hostile_bodies(form_post_target: Target, data: Any) -> None:
    middleware, cookie = form_post_target.middleware, form_post_target.signed_in_cookie()
    fields = data.draw(QUERY)
    if data.draw(st.booleans()):  # the state of the real transaction cookie, sometimes twice
        fields = "&".join(filter(None, [fields, *[f"state={form_post_target.state}"] * data.draw(st.integers(1, 2))]))
    body = data.draw(st.one_of(st.just(fields.encode()), st.binary(max_size=300),
                               st.just(fields.encode() + b"&pad=" + b"x" * data.draw(st.integers(0, 70000)))))
    method = data.draw(st.sampled_from(["POST", "POST", "GET", "PUT"]))
    environ = environ_for(method, "/auth/callback", data.draw(RAW_QUERY), body, {
        "Cookie": data.draw(cookie_values(cookie, form_post_target.transaction)),
        "Content-Type": data.draw(CONTENT_TYPES),
        "Accept": data.draw(st.sampled_from(["text/html", "application/json", ""])),
    })
    environ["HTTP_HOST"] = data.draw(HOSTS)
    if data.draw(st.booleans()):
        environ["CONTENT_LENGTH"] = data.draw(st.sampled_from(["", "-1", "0", "1e3", str(len(body) + 5), "99999999"]))
    check_invariants(middleware, environ, cookie)


@FUZZ_SETTINGS
@given(data=st.data())
def test_any_host_on_any_route_redirects_only_to_listed_origins(form_post_target: Target, data: Any) -> None:
    middleware, cookie = form_post_target.middleware, form_post_target.signed_in_cookie()
    environ = environ_for(data.draw(st.sampled_from(["GET", "POST", "HEAD"])), data.draw(PATHS),
                          data.draw(RAW_QUERY), data.draw(QUERY.map(str.encode)), {
                              "Cookie": data.draw(cookie_values(cookie, form_post_target.transaction)),
                              "Content-Type": data.draw(CONTENT_TYPES),
                              "Accept": data.draw(st.sampled_from(["text/html", "application/json", ""])),
                              "X-Forwarded-Host": data.draw(HOSTS),
                          })
    environ["HTTP_HOST"] = data.draw(HOSTS)
    environ["wsgi.url_scheme"] = data.draw(st.sampled_from(["https", "http"]))
    check_invariants(middleware, environ, cookie)
