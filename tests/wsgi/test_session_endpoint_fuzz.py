"""Property-based fuzzing of the session endpoint (hypothesis): methods, headers, cookies, bodies.

Random methods (known and made up), ``Origin``, ``Sec-Fetch-Site`` and ``X-SSO-CSRF``
values (right, wrong, garbage), cookies (the signed-in user's, tampered, truncated,
oversized, garbage), bodies and lengths are thrown at ``session_endpoint_path`` as raw
WSGI environs.  Whatever arrives, these must hold:

* no 5xx and no traceback; every answer is JSON, ``no-store``, ``Vary: Cookie``;
* a 405 names ``Allow``; nothing ever reaches the application;
* no header carries CR or LF;
* no token is in any body (no JWT, none of the provider's refresh tokens);
* half the requests are what the site's page sends, half of those with one header changed, so
  the rule's edges are probed and real refreshes happen (the last test checks they did);
* a refresh reaches the provider only for a POST that passes the same-origin rule
  (:func:`~sso_middleware._wsgi.session_endpoint.cross_origin_reason`) with the user's cookie;
* ``signed_in`` is true only for the user's own, untampered cookie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sso_middleware import SSOMiddleware
from sso_middleware._session.refresh import FORCED_REFRESH_MIN_AGE
from sso_middleware._wsgi.session_endpoint import cross_origin_reason
from sso_middleware.testing import Clock

from ..fakes import BASE_URL, FakeProvider
from .test_fuzz import HEADER_TEXT, call, environ_for, mutations

PATH = "/auth/session"
METHODS = st.one_of(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "post"]),
                    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10))
ORIGINS = st.one_of(st.sampled_from([BASE_URL, "https://evil.example", "null", "", "https://app2.example:443",
                                     "HTTPS://APP2.EXAMPLE", "https://sub.app2.example", f"{BASE_URL}/",
                                     f"{BASE_URL}, {BASE_URL}"]), HEADER_TEXT)
SITES = st.one_of(st.sampled_from(["same-origin", "same-site", "cross-site", "none", "", "Same-Origin"]), HEADER_TEXT)
CSRF = st.one_of(st.sampled_from(["1", "0", "", "true", " 1", "1 "]), HEADER_TEXT)


#: One entry per fuzzed request that refreshed (the last test checks the fuzzing reached the refresh at all).
REFRESHED: list[str] = []


class Target:
    """One middleware (file store, tokens kept) and a signed-in user whose cookie seeds the mutations."""

    def __init__(self, directory: str) -> None:
        from ..conftest import SESSION_SECRET, browser_for
        from ..fakes import CLIENT_ID, CLIENT_SECRET, ISSUER

        # One clock for both, moved on per example: a forced refresh of a token younger than
        # FORCED_REFRESH_MIN_AGE is answered without the provider.
        self.clock = Clock()
        self.provider = FakeProvider(clock=self.clock)
        self.reached_app: list[str] = []
        self.middleware = SSOMiddleware(
            self._app, issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=BASE_URL,
            session_secret=SESSION_SECRET, session_data_dir=directory, session_endpoint_path=PATH,
            keep_access_token=True, scope="openid profile email offline_access",
            http_transport=self.provider.transport(), clock=self.clock,
        )
        self._browser_for = browser_for
        self.cookie = ""

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.reached_app.append(environ.get("PATH_INFO", ""))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app"]

    def signed_in_cookie(self) -> str:
        """The seed cookie, signing in again when a fuzzed request ended the session."""
        if not self.cookie or b'"signed_in": true' not in call(
                self.middleware, environ_for("GET", PATH, "", b"", {"Cookie": self.cookie}))[2]:
            from .test_handlers import sign_in

            browser = self._browser_for(self.middleware)
            sign_in(browser, self.provider)
            name = self.middleware.store.cookie_name
            self.cookie = f"{name}={browser.cookies[name]}"
        return self.cookie


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    return Target(str(Path(tmp_path_factory.mktemp("session-fuzz")) / "sessions"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_session_endpoint_answers_any_request_cleanly(target: Target, data: Any) -> None:
    target.clock.advance(FORCED_REFRESH_MIN_AGE)
    cookie = target.signed_in_cookie()
    # Half the requests are what this site's page sends (a POST with the real cookie, Origin or fetch metadata,
    # the CSRF header), of which half then get one header changed: they probe the rule's edges, and many pass,
    # refreshing for real.  The other half are anything at all.
    realistic = data.draw(st.booleans())
    method = "POST" if realistic else data.draw(st.one_of(st.just("POST"), st.just("GET"), METHODS))
    headers: dict[str, str] = dict(data.draw(st.sampled_from([
        {"Origin": BASE_URL, "X-SSO-CSRF": "1"},
        {"Origin": BASE_URL, "X-SSO-CSRF": "1", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "same-origin", "X-SSO-CSRF": "1"}, {}])))
    changes = (("Origin", ORIGINS), ("Sec-Fetch-Site", SITES), ("X-SSO-CSRF", CSRF), ("Accept-Language", HEADER_TEXT),
               ("Content-Type", HEADER_TEXT))
    if realistic:
        if data.draw(st.booleans()):
            name, values = data.draw(st.sampled_from(changes))
            headers[name] = data.draw(values)
        sent_cookie = cookie
    else:
        for name, values in changes:
            if data.draw(st.booleans()):
                headers[name] = data.draw(values)
        sent_cookie = data.draw(st.one_of(st.just(cookie), mutations(cookie), HEADER_TEXT, st.just("")))
    if sent_cookie:
        headers["Cookie"] = sent_cookie
    body = data.draw(st.binary(max_size=100))
    environ = environ_for(method, PATH, data.draw(st.text(max_size=30)), body, headers)
    if not realistic and data.draw(st.booleans()):
        environ["CONTENT_LENGTH"] = data.draw(st.sampled_from(["", "abc", "-1", "99999999999999999999", "0"]))
    if not realistic and data.draw(st.booleans()):
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    refreshes = target.provider.refresh_requests

    status, response_headers, response_body = call(target.middleware, dict(environ))

    assert status < 500, (status, response_body[:300])
    assert b"Traceback" not in response_body
    names = {name.lower(): value for name, value in response_headers}
    for name, value in response_headers:
        assert "\r" not in value and "\n" not in value, (name, value)
    assert names["content-type"].startswith("application/json"), response_headers
    assert names["cache-control"] == "no-store"
    assert names["vary"] == "Cookie"
    if status == 405:
        assert names["allow"] == "GET, HEAD, POST"
    assert target.reached_app == []
    assert b"eyJ" not in response_body  # no JWT: no access or ID token
    for token in target.provider.live_refresh_tokens():
        assert token.encode() not in response_body
    if target.provider.refresh_requests > refreshes:
        REFRESHED.append(method)
        assert method == "POST" and cross_origin_reason(environ, target.middleware.config.origins) is None, headers
        assert cookie.partition("=")[2] in sent_cookie
    if b'"signed_in": true' in response_body:
        assert cookie.partition("=")[2] in sent_cookie, sent_cookie


def test_the_fuzzing_reached_real_refreshes() -> None:
    """Runs after the fuzz test (file order): without refreshes its refresh invariant would prove nothing."""
    assert len(REFRESHED) >= 10, REFRESHED  # typically 40 to 80 of the 300 examples pass the rule with the cookie
