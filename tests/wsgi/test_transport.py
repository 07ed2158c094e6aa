"""The ``http_transport=`` seam and the kit's transports (``make_response``, ``RecordingTransport``)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

import pytest
import requests
import webtest

from sso_middleware import SSOMiddleware
from sso_middleware.testing import FakeProvider, FakeProviderAdapter, RecordingTransport, make_response

from ..conftest import browser_for


def sign_in(browser: webtest.TestApp, provider: FakeProvider) -> None:
    started = browser.get("/auth/sso", {"connection": "Username-Password-Authentication", "target_url": "/"})
    browser.get(provider.authorize(started.location))


def test_every_provider_request_goes_through_the_transport(make_middleware: Callable[..., SSOMiddleware],
                                                          provider: FakeProvider) -> None:
    recorder = RecordingTransport(FakeProviderAdapter(provider))
    browser = browser_for(make_middleware(http_transport=recorder))
    sign_in(browser, provider)
    assert browser.get("/page").json["remote_user"] == "alice"
    paths = [urlsplit(str(sent.url)).path for sent in recorder.requests]
    assert paths == ["/.well-known/openid-configuration", "/oauth/token", "/.well-known/jwks.json", "/userinfo"]
    assert len(recorder.requests_to("/jwks.json")) == 1
    assert [call.url for call in provider.calls] == [sent.url for sent in recorder.requests]


def test_the_transport_answers_for_any_host(make_middleware: Callable[..., SSOMiddleware]) -> None:
    """Mounted for every URL: a provider whose endpoints sit on other hosts is answered too."""
    provider = FakeProvider(discovery_overrides={"userinfo_endpoint": "https://userinfo.example/me"})
    recorder = RecordingTransport(provider.transport())
    browser = browser_for(make_middleware(http_transport=recorder))
    sign_in(browser, provider)
    assert [urlsplit(str(sent.url)).netloc for sent in recorder.requests_to("/me")] == ["userinfo.example"]


def test_make_response_is_read_like_a_real_answer() -> None:
    request = requests.Request("GET", "https://op.example/x").prepare()
    response = make_response(request, 418, b'{"a": 1}')
    assert (response.status_code, response.url, response.request) == (418, "https://op.example/x", request)
    assert response.headers["Content-Type"] == "application/json"
    assert response.raw.read(3) == b'{"a' and response.raw.read() == b'": 1}'


@pytest.fixture
def server() -> Any:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"path": "%s"}' % self.path.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_recording_transport_forwards_to_the_network_and_keeps_the_requests(server: Any) -> None:
    recorder = RecordingTransport()
    session = requests.Session()
    session.mount("http://", recorder)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    assert session.get(base + "/one").json() == {"path": "/one"}
    assert session.get(base + "/two/jwks").json() == {"path": "/two/jwks"}
    assert [str(sent.url) for sent in recorder.requests] == [base + "/one", base + "/two/jwks"]
    assert [str(sent.url) for sent in recorder.requests_to("/jwks")] == [base + "/two/jwks"]
    recorder.close()
