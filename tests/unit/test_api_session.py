"""``api_session(environ)`` (:mod:`sso_middleware._wsgi.api_session`) on hand-built environs, network replaced.

A recording transport adapter, mounted on the session as ``requests`` allows, answers
every request and keeps what ``requests`` handed it: the prepared request and the
``timeout``, ``proxies``, ``verify`` and ``cert`` it would have connected with.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import pytest
import requests
from oauthlib.oauth2 import InsecureTransportError
from requests.adapters import BaseAdapter
from requests_oauthlib import OAuth2Session

import sso_middleware
from sso_middleware import NoAccessToken, SSOConfig, api_session
from sso_middleware._oidc.egress import Egress
from sso_middleware._wsgi.api_session import APISession, APISettings, UserTokenClient
from sso_middleware._wsgi.environ import ACCESS_TOKEN_EXPIRES_KEY, ACCESS_TOKEN_KEY, API_SETTINGS_KEY, TOKEN_ERROR_KEY
from sso_middleware.testing.transport import make_response

from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER

TOKEN = "at-5f3a9c1e7d2b4086"  # distinctive: searched for in logs and reprs
API = "https://api.example/orders"
PROXY = "http://squid:proxy-pass@proxy.corp.example:3128"


class Recorder(BaseAdapter):
    """Answers every request 200 ``{}`` (or from ``redirects``: url -> Location) and records it."""

    def __init__(self, redirects: Optional[dict[str, str]] = None) -> None:
        super().__init__()
        self.sent: list[tuple[requests.PreparedRequest, dict[str, Any]]] = []
        self.redirects = redirects or {}

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append((request, kwargs))
        location = self.redirects.get(str(request.url))
        response = make_response(request, 302 if location else 200, b"{}")
        if location:
            response.headers["Location"] = location
        return response

    def close(self) -> None:
        pass

    @property
    def last(self) -> tuple[requests.PreparedRequest, dict[str, Any]]:
        assert self.sent, "nothing was sent"
        return self.sent[-1]


def environ_with(settings: Optional[APISettings] = None, **extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {ACCESS_TOKEN_KEY: TOKEN, ACCESS_TOKEN_EXPIRES_KEY: 4102444800.0, **extra}
    if settings is not None:
        environ[API_SETTINGS_KEY] = settings
    return environ


def session_for(environ: dict[str, Any]) -> tuple[OAuth2Session, Recorder]:
    session = api_session(environ)
    recorder = Recorder()
    session.mount("https://", recorder)
    session.mount("http://", recorder)
    return session, recorder


# -- the token ---------------------------------------------------------------------------------


def test_it_is_an_oauth2_session_exported_by_the_package() -> None:
    session = api_session(environ_with(APISettings()))
    assert isinstance(session, OAuth2Session) and isinstance(session, requests.Session)
    assert sso_middleware.api_session is api_session and "api_session" in sso_middleware.__all__
    assert session.authorized and session.access_token == TOKEN
    assert session.token["token_type"] == "Bearer" and "refresh_token" not in session.token


def test_the_users_token_is_sent_in_the_authorization_header_only() -> None:
    session, recorder = session_for(environ_with(APISettings()))
    caller_headers = {"Accept": "application/json"}
    session.get(API, params={"page": "2"}, headers=caller_headers)
    request, _ = recorder.last
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"
    assert request.url == API + "?page=2"  # nothing added to the URL
    assert caller_headers == {"Accept": "application/json"}  # the caller's dict is not changed

    session.post(API, data={"item": "book"})
    request, _ = recorder.last
    assert request.body == "item=book" and request.headers["Authorization"] == f"Bearer {TOKEN}"
    session.post(API, json={"item": "book"})
    assert recorder.last[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_withhold_token_sends_no_token() -> None:
    session, recorder = session_for(environ_with(APISettings()))
    session.get(API, withhold_token=True)
    assert "Authorization" not in recorder.last[0].headers


def test_the_token_goes_in_the_header_or_nowhere() -> None:
    client = UserTokenClient({"access_token": TOKEN, "token_type": "Bearer"}, APISettings())
    for placement in ("query", "body"):
        with pytest.raises(ValueError, match="Authorization header only"):
            client.add_token(API, token_placement=placement)
    assert client.add_token(API, headers={"X": "1"}) == (API, {"X": "1", "Authorization": f"Bearer {TOKEN}"}, None)


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="nobody signed in"),
        pytest.param({ACCESS_TOKEN_KEY: ""}, id="empty token"),
        pytest.param({ACCESS_TOKEN_KEY: None, API_SETTINGS_KEY: APISettings()}, id="no token, settings"),
        pytest.param({API_SETTINGS_KEY: APISettings(allow_insecure_http=True)}, id="settings alone"),
    ],
)
def test_no_token_is_no_access_token(environ: dict[str, Any]) -> None:
    with pytest.raises(NoAccessToken, match=r"^no access token$"):
        api_session(environ)


def test_no_access_token_says_why() -> None:
    with pytest.raises(NoAccessToken, match=r"no access token for this request \(refresh_failed\)"):
        api_session({TOKEN_ERROR_KEY: "refresh_failed"})


# -- the timeout --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "used"),
    [
        pytest.param({}, 3.5, id="http_timeout by default"),
        pytest.param({"timeout": 1.25}, 1.25, id="the caller's"),
        pytest.param({"timeout": (0.5, 9)}, (0.5, 9), id="connect and read"),
        pytest.param({"timeout": None}, None, id="explicitly none"),
    ],
)
def test_http_timeout_is_the_default_timeout(given: dict[str, Any], used: Any) -> None:
    session, recorder = session_for(environ_with(APISettings(timeout=3.5)))
    session.get(API, **given)
    assert recorder.last[1]["timeout"] == used


def test_a_request_sent_directly_gets_the_timeout_too() -> None:
    session, recorder = session_for(environ_with(APISettings(timeout=2.5)))
    session.send(session.prepare_request(requests.Request("GET", API)))
    assert recorder.last[1]["timeout"] == 2.5


def test_without_settings_the_defaults_are_the_strictest() -> None:
    """An environ the middleware did not build (no, or a foreign, settings object): https only, no proxy."""
    for planted in (None, {"allow_insecure_http": True, "egress": {"proxy": PROXY}}):
        environ = environ_with() if planted is None else environ_with(**{API_SETTINGS_KEY: planted})
        session, recorder = session_for(environ)
        session.get(API)
        _, sent = recorder.last
        assert sent["timeout"] == SSOConfig.__dataclass_fields__["http_timeout"].default == 5.0
        assert (sent["proxies"], sent["verify"], sent["cert"]) == ({}, True, None)
        with pytest.raises(InsecureTransportError):
            session.get("http://127.0.0.1:8080/")


# -- the enterprise-network settings --------------------------------------------------------------


def test_proxy_ca_bundle_and_client_certificate_are_applied() -> None:
    egress = Egress(proxy=PROXY, ca_bundle="/etc/ssl/corp-root.pem", client_cert="/etc/app/tls.crt",
                    client_key="/etc/app/tls.key")
    session, recorder = session_for(environ_with(APISettings(egress=egress)))
    session.get(API)
    _, sent = recorder.last
    assert sent["proxies"] == {"all": PROXY}
    assert sent["verify"] == "/etc/ssl/corp-root.pem"
    assert sent["cert"] == ("/etc/app/tls.crt", "/etc/app/tls.key")


def test_the_caller_may_still_choose_per_request() -> None:
    session, recorder = session_for(environ_with(APISettings(egress=Egress(proxy=PROXY))))
    session.get(API, proxies={"https": "http://other.example:3128"}, verify="/tmp/other.pem")
    _, sent = recorder.last
    assert sent["proxies"] == {"https": "http://other.example:3128"} and sent["verify"] == "/tmp/other.pem"


def test_environment_proxies_only_with_http_trust_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://envproxy.example:8080")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")  # never read, with or without trust_env
    for trust_env, expected in ((False, {}), (True, {"all": "http://envproxy.example:8080"})):
        session, recorder = session_for(environ_with(APISettings(egress=Egress(trust_env=trust_env))))
        session.get(API)
        assert (recorder.last[1]["proxies"], recorder.last[1]["verify"]) == (expected, True)
        session.get("https://svc.internal.example/")  # NO_PROXY exempts it
        assert recorder.last[1]["proxies"] == {}


def test_from_config_takes_the_middlewares_settings() -> None:
    config = SSOConfig(issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=BASE_URL,
                       session_secret="s" * 40, http_timeout=7.5, http_proxy=PROXY, allow_insecure_http=True)
    assert APISettings.from_config(config) == APISettings(7.5, Egress(proxy=PROXY), True)


# -- the plain-http rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow_insecure_http"),
    [
        pytest.param("http://api.example/orders", True, id="http to another host"),
        pytest.param("http://127.0.0.1:8080/", False, id="http to loopback without allow_insecure_http"),
        pytest.param("http://localhost/", False, id="localhost without allow_insecure_http"),
        pytest.param("http://127.0.0.1.evil.example/", True, id="a name starting like loopback"),
        pytest.param("http://localhost.evil.example/", True, id="a name starting with localhost"),
        pytest.param("http://evil.example\\@127.0.0.1/", True, id="backslash parser differential"),
        pytest.param("http://127.0.0.1@evil.example/", True, id="loopback as user name"),
        pytest.param("http://0x7f000001/", True, id="loopback spelt in hex"),
        pytest.param("ftp://127.0.0.1/", True, id="another scheme"),
        pytest.param("http:///orders", True, id="no host"),
    ],
)
def test_a_url_outside_the_rule_is_refused_before_anything_is_sent(url: str, allow_insecure_http: bool) -> None:
    session, recorder = session_for(environ_with(APISettings(allow_insecure_http=allow_insecure_http)))
    with pytest.raises(InsecureTransportError, match="api_session: "):
        session.get(url)
    with pytest.raises(InsecureTransportError):
        session.get(url, withhold_token=True)  # the rule is the session's, token or not
    assert recorder.sent == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/api", "http://localhost/api", "http://[::1]:9/api",
                                 "HTTP://LOCALHOST/api"])
def test_http_to_loopback_with_allow_insecure_http(url: str) -> None:
    session, recorder = session_for(environ_with(APISettings(allow_insecure_http=True)))
    session.get(url)
    assert recorder.last[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_the_rule_does_not_depend_on_oauthlib_insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ
    session, recorder = session_for(environ_with(APISettings(allow_insecure_http=True)))
    session.get("http://127.0.0.1:8080/")  # allowed by our rule ...
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ  # ... without the process-wide switch
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # set by some other code of the process
    with pytest.raises(InsecureTransportError, match="allowed only on a loopback host"):
        session.get("http://api.example/")
    assert len(recorder.sent) == 1


def test_the_refusal_shows_no_path_query_or_credentials() -> None:
    session, _ = session_for(environ_with(APISettings()))
    with pytest.raises(InsecureTransportError) as refused:
        session.get("http://user:pa55word@api.example:8080/orders?api_key=k-123")
    assert "http://api.example:8080 uses http://" in str(refused.value)
    assert not any(secret in str(refused.value) for secret in ("pa55word", "user", "orders", "k-123"))


def test_a_redirect_outside_the_rule_is_refused() -> None:
    session, recorder = session_for(environ_with(APISettings()))
    recorder.redirects = {API: "http://api.example/orders"}  # a downgrade to plain http
    with pytest.raises(InsecureTransportError):
        session.get(API)
    assert [str(request.url) for request, _ in recorder.sent] == [API]


def test_a_redirect_to_another_host_does_not_carry_the_token() -> None:
    session, recorder = session_for(environ_with(APISettings(egress=Egress(proxy=PROXY))))
    recorder.redirects = {API: "https://elsewhere.example/orders"}
    session.get(API)
    (first, _), (second, sent) = recorder.sent
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "Authorization" not in second.headers
    assert sent["proxies"] == {"all": PROXY} and sent["timeout"] == APISettings().timeout


# -- no refresh of its own, no token in reprs and logs ---------------------------------------------


def test_it_never_refreshes_by_itself() -> None:
    environ = environ_with(APISettings())
    environ[ACCESS_TOKEN_EXPIRES_KEY] = 1000.0  # long expired: oauthlib's own client would refresh or raise
    session, recorder = session_for(environ)
    assert session.auto_refresh_url is None
    session.get(API)
    assert [str(request.url) for request, _ in recorder.sent] == [API]  # no call to any token endpoint
    assert recorder.last[0].headers["Authorization"] == f"Bearer {TOKEN}"
    with pytest.raises(NotImplementedError, match="middleware"):
        session.refresh_token("https://op.example/token", refresh_token="rt")
    with pytest.raises(NotImplementedError, match="middleware"):
        session.fetch_token("https://op.example/token", code="c")
    assert recorder.sent[1:] == []


def test_the_token_stays_out_of_reprs_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    egress = Egress(proxy=PROXY)
    session, recorder = session_for(environ_with(APISettings(egress=egress)))
    assert isinstance(session, APISession)
    for shown in (repr(session), str(session), repr(session._user_client), repr(session.settings)):
        assert TOKEN not in shown and "proxy-pass" not in shown, shown

    # requests-oauthlib's own OAuth2Session.request logs the whole token at DEBUG ("Adding token ...") ...
    plain = OAuth2Session(token={"access_token": TOKEN, "token_type": "Bearer"})
    plain.mount("https://", Recorder())
    with caplog.at_level(logging.DEBUG):
        plain.get(API)
    assert TOKEN in caplog.text
    caplog.clear()
    # ... the api_session does not.
    with caplog.at_level(logging.DEBUG):
        session.post(API, data={"a": "b"}, headers={"X-Trace": "1"})
    assert TOKEN not in caplog.text
    assert recorder.last[0].headers["Authorization"] == f"Bearer {TOKEN}"


# -- plain http to loopback -------------------------------------------------------


def test_plain_http_to_loopback_never_goes_through_a_proxy() -> None:
    """The plain-http rule lets the token travel unencrypted only to this machine's loopback.

    With ``http_proxy`` set, ``http://127.0.0.1/...`` is handed to the proxy host in clear text
    (``Authorization: Bearer`` included), and the proxy's own 127.0.0.1 answers: neither is
    loopback any more.  A loopback http URL must go direct (or be refused).
    """
    settings = APISettings(egress=Egress(proxy=PROXY), allow_insecure_http=True)
    session, recorder = session_for(environ_with(settings))
    session.get("http://127.0.0.1:8080/orders")
    _, sent = recorder.last
    assert not sent["proxies"], "the bearer token went over plain http to a non-loopback proxy"
    session.get("http://localhost:8080/orders", proxies={"all": PROXY})  # not even a proxy the caller names
    assert not recorder.last[1]["proxies"]
    session.get("https://api.example.com/orders")  # https still goes through the proxy
    assert recorder.last[1]["proxies"] == {"all": PROXY}
