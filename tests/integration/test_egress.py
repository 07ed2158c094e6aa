"""Enterprise networks against real components: a private CA, a real proxy, mutual TLS.

The bundled provider (``oidc-provider``) is served over https with a certificate from a CA
these tests make (:mod:`tests.pki`), and it accepts TCP connections only from 127.0.0.3 --
the outgoing address of Debian's ``tinyproxy`` (``Bind``), like an egress firewall that
lets only the proxy out.  Two proxies run: the middleware's (asking for credentials, its
log counting the middleware's tunnels alone) and the browser's.  So a sign-in that works
proves the middleware went through its proxy, and the same configuration without
``http_proxy`` must fail cleanly.  A second provider requires client certificates (mTLS).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urljoin

import pytest
import requests

from sso_middleware.testing import DevProvider, ProviderTLS

from ..pki import CertificateAuthority, Issued
from ..servers import Service, connect_requests, free_port, stop_all, stop_waitress, tinyproxy_service
from .test_api_session_integration import start_api_app
from .test_doctor import check, settings_for, write_settings
from .test_integration import App, Visit, browse, page, start_app

PROXY_USER = "sso"
PROXY_PASSWORD = "proxy-pass-8d1f"  # a test credential of the test proxy
PROXY_OUT = "127.0.0.3"  # tinyproxy's outgoing address: the only peer the gated provider accepts
TIMEOUT = 2.0
SLACK = 2.5  # generous margin for a loaded CI machine


@dataclass
class Pki:
    ca: CertificateAuthority
    server: Issued
    other_ca: CertificateAuthority
    client_ca: CertificateAuthority
    client: Issued
    stranger: Issued  # a client certificate from a CA the provider does not trust


@dataclass
class Network:
    pki: Pki
    provider: DevProvider  # https, accepts the proxies' outgoing address only
    mw_proxy: Service  # the middleware's proxy (asks for credentials)
    browser_proxy: Service

    @property
    def proxy_url(self) -> str:
        return f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{self.mw_proxy.port}"

    def tunnels(self) -> int:
        """CONNECTs the middleware's proxy was asked for, towards the provider."""
        return connect_requests(self.mw_proxy, self.provider.port)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(folder / "ca")
    client_ca = CertificateAuthority(folder / "client-ca", "sso-test client CA")
    other = CertificateAuthority(folder / "other", "some other CA")
    return Pki(ca, ca.server(), other, client_ca, client_ca.issue("app1.example", client=True),
               other.issue("stranger", client=True))


@pytest.fixture(scope="module")
def network(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    folder = tmp_path_factory.mktemp("proxies")
    provider_port = free_port()
    mw_proxy = tinyproxy_service(free_port(), folder / "mw", [provider_port], bind=PROXY_OUT,
                                 basic_auth=(PROXY_USER, PROXY_PASSWORD))
    browser_proxy = tinyproxy_service(free_port(), folder / "browser", [provider_port], bind=PROXY_OUT)
    try:
        for service in (mw_proxy, browser_proxy):
            service.start()
        provider = DevProvider(port=provider_port, tls=ProviderTLS(pki.server.cert, pki.server.key, pki.ca.cert),
                               allow_peers=(PROXY_OUT,), proxy=f"http://127.0.0.1:{browser_proxy.port}")
        with provider:
            yield Network(pki, provider, mw_proxy, browser_proxy)
    finally:
        stop_all((mw_proxy, browser_proxy))


@pytest.fixture(scope="module")
def mtls_provider(pki: Pki) -> Iterator[DevProvider]:
    tls = ProviderTLS(pki.server.cert, pki.server.key, pki.ca.cert, client_ca=pki.client_ca.cert,
                      client_cert=pki.client.cert, client_key=pki.client.key)
    with DevProvider(tls=tls) as provider:
        yield provider


@pytest.fixture(scope="module")
def started_apps() -> Iterator[list[App]]:
    """Every app this module started; their servers are closed at the end, from their own loop thread.

    (Closing a waitress server from another thread races its ``select``: EBADF in that thread.)
    """
    started: list[App] = []
    yield started
    for app in started:
        stop_waitress(app.server)


@pytest.fixture
def make_app(tmp_path: Path, started_apps: list[App]) -> Callable[..., App]:
    def make(provider: DevProvider, **settings: Any) -> App:
        app = start_app(provider, f"egress{len(started_apps)}", tmp_path, "client_secret_basic",
                        http_timeout=TIMEOUT, **settings)
        started_apps.append(app)
        return app

    return make


def browser(pki: Pki, proxy: Optional[Service] = None, cert: Optional[Issued] = None) -> requests.Session:
    """A browser trusting the test CA, reaching https through ``proxy`` (the app itself directly)."""
    http = requests.Session()
    http.trust_env = False
    http.headers["Connection"] = "close"  # no idle keep-alive channel left in the apps' servers
    http.verify = str(pki.ca.cert)
    if proxy is not None:
        http.proxies = {"https": f"http://127.0.0.1:{proxy.port}"}
    if cert is not None:
        http.cert = (str(cert.cert), str(cert.key))
    return http


def sign_in(provider: DevProvider, app: App, http: requests.Session) -> Visit:
    redirect = provider.login(http, "alice", app.url("/auth/login", target_url="/profile"))
    assert redirect.status_code == 303, redirect.text[:500]
    return browse(http, urljoin(redirect.url, redirect.headers["Location"]))


def failed_login(app: App, http: requests.Session) -> tuple[Visit, float]:
    """Start a sign-in that cannot reach the provider: the failure page, and how long it took."""
    started = time.monotonic()
    visit = browse(http, app.url("/auth/login", target_url="/profile"))
    return visit, time.monotonic() - started


def assert_failure_page(visit: Visit, elapsed: float, code: str, status: int, *words: str) -> None:
    assert visit.urls[-1].endswith(f"/auth/failure?error={code}"), visit.urls
    assert visit.response.status_code == status, visit.response.text[:300]
    for word in words:
        assert word in visit.response.text
    assert elapsed < TIMEOUT + SLACK, f"took {elapsed:.1f} s with http_timeout {TIMEOUT}"
    assert "Traceback" not in visit.response.text


def warnings_of(caplog: pytest.LogCaptureFixture) -> str:
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "sso_middleware")
    assert PROXY_PASSWORD not in text
    return text


# -- the proxy ----------------------------------------------------------------------------


def test_sign_in_through_the_proxy_to_a_private_ca_provider(network: Network, make_app: Callable[..., App]) -> None:
    app = make_app(network.provider, http_proxy=network.proxy_url, ca_bundle=str(network.pki.ca.cert))
    before = network.tunnels()
    landing = sign_in(network.provider, app, browser(network.pki, network.browser_proxy))
    assert landing.urls[-1] == app.url("/profile")
    shown = page(landing)
    assert shown["remote_user"] == "alice"
    assert shown["userinfo"]["email"] == "alice@example.com"
    assert network.tunnels() > before  # discovery, keys, token and userinfo went through the middleware's proxy
    token = [e for e in network.provider.events("token") if e.get("client_id") == app.client.client_id]
    assert token and token[-1]["status"] == 200
    assert PROXY_PASSWORD not in network.mw_proxy.output(tail=None)


def test_without_http_proxy_the_same_configuration_fails_cleanly(
    network: Network, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(network.provider, ca_bundle=str(network.pki.ca.cert))
    before = network.tunnels()
    visit, elapsed = failed_login(app, browser(network.pki, network.browser_proxy))
    assert visit.response.status_code in (502, 503), visit.urls
    assert_failure_page(visit, elapsed, visit.urls[-1].rsplit("=", 1)[1], visit.response.status_code)
    assert network.tunnels() == before
    assert "discovery:" in warnings_of(caplog)


def test_a_dead_proxy_port_is_a_clean_502_naming_http_proxy(
    network: Network, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{free_port()}"
    app = make_app(network.provider, http_proxy=dead, ca_bundle=str(network.pki.ca.cert))
    visit, elapsed = failed_login(app, browser(network.pki, network.browser_proxy))
    assert_failure_page(visit, elapsed, "provider_proxy_error", 502, "http_proxy")
    assert "discovery: proxy refused the connection (check http_proxy)" in warnings_of(caplog)


def test_a_proxy_that_never_answers_is_a_504_within_http_timeout(
    network: Network, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        app = make_app(network.provider, http_proxy=f"http://127.0.0.1:{silent.getsockname()[1]}",
                       ca_bundle=str(network.pki.ca.cert))
        visit, elapsed = failed_login(app, browser(network.pki, network.browser_proxy))
    assert_failure_page(visit, elapsed, "provider_timeout", 504)
    assert f"discovery: no answer within {TIMEOUT}s through the proxy (check http_proxy)" in warnings_of(caplog)


def test_wrong_proxy_credentials_are_a_clean_502(
    network: Network, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    wrong = f"http://{PROXY_USER}:not-the-password@127.0.0.1:{network.mw_proxy.port}"
    app = make_app(network.provider, http_proxy=wrong, ca_bundle=str(network.pki.ca.cert))
    visit, elapsed = failed_login(app, browser(network.pki, network.browser_proxy))
    assert_failure_page(visit, elapsed, "provider_proxy_error", 502, "http_proxy")
    logged = warnings_of(caplog)
    assert "proxy asks for credentials or refused them" in logged and "not-the-password" not in logged


# -- the CA -------------------------------------------------------------------------------


@pytest.mark.parametrize("trusted", ["other CA", "default bundle"])
def test_a_ca_that_does_not_verify_the_provider_is_a_502_naming_ca_bundle(
    network: Network, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture, trusted: str
) -> None:
    bundle = {"other CA": str(network.pki.other_ca.cert), "default bundle": ""}[trusted]
    app = make_app(network.provider, http_proxy=network.proxy_url, ca_bundle=bundle)
    visit, elapsed = failed_login(app, browser(network.pki, network.browser_proxy))
    assert_failure_page(visit, elapsed, "provider_tls_error", 502, "ca_bundle")
    assert "discovery: TLS certificate not trusted (check ca_bundle)" in warnings_of(caplog)


def test_a_hashed_ca_folder_is_a_ca_bundle(network: Network, make_app: Callable[..., App], tmp_path: Path) -> None:
    folder = network.pki.ca.hashed_folder(tmp_path / "certs")
    app = make_app(network.provider, http_proxy=network.proxy_url, ca_bundle=str(folder))
    assert page(sign_in(network.provider, app, browser(network.pki, network.browser_proxy)))["remote_user"] == "alice"


# -- environment proxies ------------------------------------------------------------------


def test_http_trust_env_honours_https_proxy_only_when_true(
    network: Network, make_app: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", network.proxy_url)
    http = browser(network.pki, network.browser_proxy)
    ignored = make_app(network.provider, ca_bundle=str(network.pki.ca.cert))
    before = network.tunnels()
    visit, _ = failed_login(ignored, http)
    assert visit.response.status_code >= 502 and network.tunnels() == before

    trusted = make_app(network.provider, ca_bundle=str(network.pki.ca.cert), http_trust_env=True)
    assert page(sign_in(network.provider, trusted, http))["remote_user"] == "alice"
    assert network.tunnels() > before

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # exempts the provider's host: direct, refused again
    exempted = make_app(network.provider, ca_bundle=str(network.pki.ca.cert), http_trust_env=True)
    after = network.tunnels()
    visit, _ = failed_login(exempted, http)
    assert visit.response.status_code >= 502 and network.tunnels() == after


# -- api_session: the application's own API calls ----------------------------------------


def test_api_session_calls_the_api_through_the_proxy_trusting_ca_bundle(network: Network, tmp_path: Path) -> None:
    """The gated provider's userinfo, reachable only through the middleware's proxy, verified by its CA."""
    app = start_api_app(network.provider, "egress-api", tmp_path, http_proxy=network.proxy_url,
                        ca_bundle=str(network.pki.ca.cert), http_timeout=TIMEOUT)
    try:
        http = browser(network.pki, network.browser_proxy)
        sign_in(network.provider, app, http)
        before = network.tunnels()
        network.provider.clear_events()
        shown = http.get(app.url("/api"), timeout=10).json()
        assert shown["status"] == 200 and shown["claims"]["sub"] == "alice", shown
        assert network.tunnels() > before  # the app's call went through the proxy (the only way in)
        (call,) = network.provider.events("userinfo")
        assert (call["status"], call["auth"]) == (200, "header")
    finally:
        stop_waitress(app.server)


def test_api_session_presents_tls_client_cert(pki: Pki, mtls_provider: DevProvider, tmp_path: Path) -> None:
    app = start_api_app(mtls_provider, "mtls-api", tmp_path, ca_bundle=str(pki.ca.cert),
                        tls_client_cert=str(pki.client.cert), tls_client_key=str(pki.client.key), http_timeout=TIMEOUT)
    try:
        http = browser(pki, cert=pki.client)
        sign_in(mtls_provider, app, http)
        mtls_provider.clear_events()
        shown = http.get(app.url("/api"), timeout=10).json()
        assert shown["status"] == 200 and shown["claims"]["sub"] == "alice", shown
        assert [call["status"] for call in mtls_provider.events("userinfo")] == [200]
    finally:
        stop_waitress(app.server)


# -- mutual TLS ---------------------------------------------------------------------------


def test_mtls_provider_signs_in_with_tls_client_cert(
    pki: Pki, mtls_provider: DevProvider, make_app: Callable[..., App]
) -> None:
    app = make_app(mtls_provider, ca_bundle=str(pki.ca.cert), tls_client_cert=str(pki.client.cert),
                   tls_client_key=str(pki.client.key))
    landing = sign_in(mtls_provider, app, browser(pki, cert=pki.client))
    assert page(landing)["remote_user"] == "alice"


@pytest.mark.parametrize("client", ["none", "stranger"])
def test_mtls_provider_without_an_accepted_client_cert_fails_cleanly(
    pki: Pki, mtls_provider: DevProvider, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture,
    client: str
) -> None:
    settings = {} if client == "none" else {"tls_client_cert": str(pki.stranger.cert),
                                            "tls_client_key": str(pki.stranger.key)}
    app = make_app(mtls_provider, ca_bundle=str(pki.ca.cert), **settings)
    visit, elapsed = failed_login(app, browser(pki, cert=pki.client))
    assert_failure_page(visit, elapsed, "provider_tls_error", 502, "tls_client_cert")
    expected = "may require a client certificate (set tls_client_cert" if client == "none" else \
        "client certificate (check tls_client_cert, tls_client_key)"
    assert expected in warnings_of(caplog)


# -- the doctor ---------------------------------------------------------------------------


def doctor_settings(network: Network, tmp_path: Path, **overrides: str) -> str:
    settings = settings_for(network.provider, tmp_path, http_proxy=network.proxy_url,
                            ca_bundle=str(network.pki.ca.cert), http_timeout=str(TIMEOUT))
    settings.update(overrides)
    return write_settings(tmp_path, settings)


def test_doctor_passes_through_the_proxy_and_redacts_its_password(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = check(capsys, "--settings", doctor_settings(network, tmp_path), secrets=(PROXY_PASSWORD,))
    assert outcome.code == 0, outcome.out
    proxy = outcome.line("INFO", "outgoing connections")
    assert f"http://{PROXY_USER}:***@127.0.0.1:{network.mw_proxy.port}" in proxy
    assert outcome.line("OK", "outgoing connections")
    assert outcome.line("OK", "discovery")


@pytest.mark.parametrize(("overrides", "fragment"), [
    pytest.param({"http_proxy": f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:1"},
                 "proxy refused the connection (check http_proxy)", id="dead-proxy"),
    pytest.param({"ca_bundle": ""}, "TLS certificate not trusted (check ca_bundle)", id="default-bundle"),
])
def test_doctor_names_the_setting_of_a_proxy_or_tls_failure(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: dict[str, str], fragment: str
) -> None:
    outcome = check(capsys, "--settings", doctor_settings(network, tmp_path, **overrides), secrets=(PROXY_PASSWORD,))
    assert outcome.code == 1
    assert fragment in outcome.line("FAIL", "discovery")
    assert "***@127.0.0.1" in outcome.out or not overrides.get("http_proxy")


def test_doctor_describes_the_client_certificate_and_warns_before_it_expires(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    soon = network.pki.client_ca.issue("expiring.example", client=True, days=10)
    for issued, status in ((network.pki.client, "OK"), (soon, "WARN")):
        settings = doctor_settings(network, tmp_path, tls_client_cert=str(issued.cert), tls_client_key=str(issued.key))
        outcome = check(capsys, "--settings", settings, secrets=(PROXY_PASSWORD,))
        assert "tls_client_cert CN=" in outcome.line(status, "outgoing connections"), outcome.out


def test_doctor_warns_when_an_environment_proxy_is_ignored(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", network.proxy_url)
    outcome = check(capsys, "--settings", doctor_settings(network, tmp_path, http_proxy=""), secrets=(PROXY_PASSWORD,))
    assert "HTTPS_PROXY is set in the environment but ignored" in outcome.line("WARN", "outgoing connections")
    assert outcome.line("FAIL", "discovery")  # the provider admits the proxy only: direct calls fail
