"""ProviderHTTP against a real HTTP server on 127.0.0.1: time, size, and content bounds."""

from __future__ import annotations

import base64
import configparser
import functools
import gzip
import http.server as http_server
import json
import re
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import urllib3
import urllib3.response

from sso_middleware._oidc.egress import Egress
from sso_middleware._oidc.http import MAX_RESPONSE_BYTES, USER_AGENT, ProviderHTTP
from sso_middleware.errors import ProviderError

TIMEOUT = 0.4
SLACK = 1.5  # generous margin for slow CI machines


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Connection:
    sock: socket.socket
    stop: threading.Event
    sent: int = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def respond(self, status: int, body: bytes, content_type: str = "application/json",
                headers: Optional[dict[str, str]] = None) -> None:
        lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
                 "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


Handler = Callable[[Connection, Request], None]


@dataclass
class Server:
    """A raw-socket HTTP/1.1 server: each connection is answered by ``handler`` in its own thread."""

    handler: Handler
    requests: list[Request] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        connection = Connection(sock, self.stop)
        self.connections.append(connection)
        try:
            request = self._read_request(sock)
            if request is not None:
                self.requests.append(request)
                self.handler(connection, request)
        except OSError:
            pass  # the client went away: that is what several tests want
        finally:
            sock.close()

    @staticmethod
    def _read_request(sock: socket.socket) -> Optional[Request]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        method, path, _ = request_line.split(" ", 2)
        return Request(method, path, headers, body)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def start(handler: Handler) -> Server:
        server = Server(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def http() -> Iterator[ProviderHTTP]:
    client = ProviderHTTP(TIMEOUT)
    yield client
    client.session.close()


def json_answer(status: int, document: Any) -> Handler:
    return lambda connection, request: connection.respond(status, json.dumps(document).encode())


def raw_answer(status: int, body: bytes, content_type: str = "text/html") -> Handler:
    return lambda connection, request: connection.respond(status, body, content_type)


def provider_error(call: Callable[[], Any]) -> tuple[ProviderError, float]:
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value, time.monotonic() - started


# -- success ------------------------------------------------------------------------


def test_get_json(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    server = serve(json_answer(200, {"issuer": "x", "n": [1, 2]}))
    assert http.get_json(server.url("/.well-known/openid-configuration"), "discovery") == (
        200, {"issuer": "x", "n": [1, 2]}
    )
    [request] = server.requests
    assert (request.method, request.path) == ("GET", "/.well-known/openid-configuration")
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT


def test_get_json_sends_extra_headers(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    server = serve(json_answer(200, {"sub": "alice"}))
    http.get_json(server.url("/userinfo"), "userinfo", headers={"Authorization": "Bearer at-1"})
    assert server.requests[0].headers["authorization"] == "Bearer at-1"


def test_post_form(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    server = serve(json_answer(200, {"access_token": "a"}))
    status, document = http.post_form(server.url("/oauth/token"), "token", "grant_type=authorization_code&code=c",
                                      auth=("app2-client", "secret"))
    assert (status, document) == (200, {"access_token": "a"})
    [request] = server.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["authorization"].startswith("Basic ")
    assert request.body == b"grant_type=authorization_code&code=c"


def test_non_200_json_is_returned_to_the_caller(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    server = serve(json_answer(400, {"error": "invalid_grant"}))
    assert http.post_form(server.url("/t"), "token", "") == (400, {"error": "invalid_grant"})
    server = serve(json_answer(503, {"error": "temporarily_unavailable"}))
    assert http.get_json(server.url("/t"), "token") == (503, {"error": "temporarily_unavailable"})


def test_a_body_of_exactly_the_limit_is_accepted(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    padding = MAX_RESPONSE_BYTES - len(b'{"p": ""}')
    body = b'{"p": "' + b"x" * padding + b'"}'
    assert len(body) == MAX_RESPONSE_BYTES
    server = serve(raw_answer(200, body, "application/json"))
    status, document = http.get_json(server.url(), "jwks")
    assert status == 200 and len(document["p"]) == padding


def test_identity_encoding_is_asked_for_and_accepted(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    server = serve(lambda c, r: c.respond(200, b'{"keys": []}', headers={"Content-Encoding": "identity"}))
    assert http.get_json(server.url(), "jwks") == (200, {"keys": []})
    assert http.post_form(server.url(), "token", "a=b") == (200, {"keys": []})
    assert [request.headers.get("accept-encoding") for request in server.requests] == ["identity", "identity"]


def test_chunked_answer(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    def chunked(connection: Connection, request: Request) -> None:
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                        b"Connection: close\r\n\r\n")
        for part in (b'{"keys"', b": ", b"[]}"):
            connection.send(b"%x\r\n%s\r\n" % (len(part), part))
        connection.send(b"0\r\n\r\n")

    assert http.get_json(serve(chunked).url(), "jwks") == (200, {"keys": []})


def test_proxy_environment_is_ignored(serve: Callable[[Handler], Server], http: ProviderHTTP,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    server = serve(json_answer(200, {"ok": True}))
    assert http.get_json(server.url(), "discovery") == (200, {"ok": True})


# -- time -----------------------------------------------------------------------------


def test_a_server_that_never_answers_times_out(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    server = serve(lambda connection, request: connection.stop.wait(30))
    error, elapsed = provider_error(lambda: http.get_json(server.url(), "discovery"))
    assert error.code == "provider_timeout"
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + SLACK


def test_a_server_that_stalls_mid_body_times_out(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    def stall(connection: Connection, request: Request) -> None:
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":")
        connection.stop.wait(30)

    error, elapsed = provider_error(lambda: http.get_json(serve(stall).url(), "jwks"))
    assert error.code == "provider_timeout"
    assert elapsed < TIMEOUT + SLACK


def test_a_server_that_drips_its_body_is_cut_off(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    # Each byte arrives well within the per-read timeout, yet the whole answer would take 40 s.
    def drip(connection: Connection, request: Request) -> None:
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n")
        while not connection.stop.is_set():
            connection.send(b" ")
            connection.stop.wait(TIMEOUT / 4)

    error, elapsed = provider_error(lambda: http.get_json(serve(drip).url(), "jwks"))
    assert error.code == "provider_timeout"
    assert elapsed < 2 * TIMEOUT + SLACK


def test_a_slow_but_steady_answer_within_the_timeout_is_fine(serve: Callable[[Handler], Server],
                                                             http: ProviderHTTP) -> None:
    def steady(connection: Connection, request: Request) -> None:
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{")
        time.sleep(TIMEOUT / 4)
        connection.send(b"}")

    assert http.get_json(serve(steady).url(), "jwks") == (200, {})


def test_connection_refused_is_unreachable(http: ProviderHTTP) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error, elapsed = provider_error(lambda: http.get_json(f"http://127.0.0.1:{port}/", "discovery"))
    assert error.code == "provider_unreachable"
    assert elapsed < TIMEOUT + SLACK


def test_connection_closed_without_an_answer(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    server = serve(lambda connection, request: None)  # closes at once
    error, _ = provider_error(lambda: http.get_json(server.url(), "discovery"))
    assert error.code == "provider_unreachable"


def test_truncated_body(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    server = serve(lambda c, r: c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\": 1}"))
    error, _ = provider_error(lambda: http.get_json(server.url(), "discovery"))
    assert error.code in ("provider_unreachable", "provider_bad_response")


def test_garbage_instead_of_http(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    server = serve(lambda connection, request: connection.send(b"SSH-2.0-OpenSSH_9.2\r\n"))
    error, _ = provider_error(lambda: http.get_json(server.url(), "discovery"))
    assert error.code == "provider_unreachable"


# -- size ---------------------------------------------------------------------------


def test_an_oversized_body_is_refused_without_reading_it_all(serve: Callable[[Handler], Server],
                                                             http: ProviderHTTP) -> None:
    total = 64 * MAX_RESPONSE_BYTES

    def flood(connection: Connection, request: Request) -> None:
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % total)
        block = b"[" * 65536
        while connection.sent < total and not connection.stop.is_set():
            connection.send(block)

    server = serve(flood)
    error, elapsed = provider_error(lambda: http.get_json(server.url(), "jwks"))
    assert error.code == "provider_bad_response"
    assert elapsed < TIMEOUT + SLACK
    for thread in server.threads:
        thread.join(timeout=5)
    # The client hung up: the server could not push more than the limit plus socket buffers.
    assert server.connections[0].sent < total / 4


def test_an_endless_chunked_body_is_refused(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    def endless(connection: Connection, request: Request) -> None:
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        block = b" " * 65536
        while not connection.stop.is_set():
            connection.send(b"%x\r\n%s\r\n" % (len(block), block))

    error, _ = provider_error(lambda: http.get_json(serve(endless).url(), "jwks"))
    assert error.code == "provider_bad_response"


def test_a_decompression_bomb_is_refused(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    bomb = gzip.compress(b" " * (64 * MAX_RESPONSE_BYTES))
    assert len(bomb) < MAX_RESPONSE_BYTES / 4
    server = serve(lambda c, r: c.respond(200, bomb, headers={"Content-Encoding": "gzip"}))
    error, _ = provider_error(lambda: http.get_json(server.url(), "jwks"))
    assert error.code == "provider_bad_response"


@functools.cache
def gzip_of_gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzipped twice, built in pieces (the answer of CVE-2025-66471's report)."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    once = b"".join(inner.compress(block) for _ in range(size // len(block))) + inner.flush()
    return gzip.compress(once, 9)


def test_a_gzip_of_gzip_bomb_costs_bounded_memory_and_time(serve: Callable[[Handler], Server],
                                                           http: ProviderHTTP) -> None:
    # 256 MiB of JSON-ish zeros in under 1 KiB: urllib3 < 2.6 decoded a `gzip, gzip` answer whole
    # inside one read(), whatever amount was asked for.  The answer is refused on its headers.
    bomb = gzip_of_gzip_bomb(256 * 1024 * 1024)
    assert len(bomb) < 2048
    server = serve(lambda c, r: c.respond(200, bomb, headers={"Content-Encoding": "gzip, gzip"}))
    tracemalloc.start()
    try:
        error, elapsed = provider_error(lambda: http.get_json(server.url(), "jwks"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == "provider_bad_response"
    assert "Content-Encoding" in error.detail
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    assert elapsed < TIMEOUT + SLACK


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "gzip, gzip", "identity, gzip", "x-custom",
                                      "GZIP"])
def test_an_encoded_answer_is_refused(serve: Callable[[Handler], Server], http: ProviderHTTP, encoding: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A provider ignoring `Accept-Encoding: identity`: refused before any decoding, whatever the encoding
    # (and whatever urllib3 version: its decoders are never called).
    decoded: list[str] = []
    for name in ("GzipDecoder", "DeflateDecoder"):
        decoder = getattr(urllib3.response, name)
        original = decoder.decompress
        monkeypatch.setattr(decoder, "decompress", lambda self, *args, _o=original, _n=name, **kwargs:
                            decoded.append(_n) or _o(self, *args, **kwargs))
    body = gzip.compress(json.dumps({"keys": []}).encode())
    server = serve(lambda c, r: c.respond(200, body, headers={"Content-Encoding": encoding}))
    error, _ = provider_error(lambda: http.get_json(server.url(), "jwks"))
    assert error.code == "provider_bad_response"
    assert "Content-Encoding" in error.detail
    error, _ = provider_error(lambda: http.post_form(server.url(), "token", "a=b"))
    assert error.code == "provider_bad_response"
    assert decoded == []


def test_an_endless_encoded_answer_is_not_read(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    total = 64 * MAX_RESPONSE_BYTES

    def flood(connection: Connection, request: Request) -> None:
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                        b"Content-Length: %d\r\n\r\n" % total)
        block = gzip.compress(b" " * 65536)
        while connection.sent < total and not connection.stop.is_set():
            connection.send(block)

    server = serve(flood)
    error, elapsed = provider_error(lambda: http.get_json(server.url(), "jwks"))
    assert error.code == "provider_bad_response"
    assert elapsed < TIMEOUT + SLACK
    for thread in server.threads:
        thread.join(timeout=5)
    assert server.connections[0].sent < total / 4


def test_the_urllib3_floor_is_one_with_the_decompression_fixes() -> None:
    # CVE-2025-66471 / CVE-2025-66418 are fixed in urllib3 2.6.0 (and a redirect bypass of the
    # same safeguard in 2.6.3): setup.cfg requires at least that, and so does this environment.
    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    requirements = [line.strip() for line in config["options"]["install_requires"].splitlines() if line.strip()]
    floors = [line for line in requirements if re.match(r"urllib3\b", line)]
    assert floors == ["urllib3>=2.6.3"], requirements
    assert tuple(int(part) for part in urllib3.__version__.split(".")[:3]) >= (2, 6, 3)


# -- content -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        pytest.param(200, b"<html>hello</html>", "provider_bad_response", id="200-html"),
        pytest.param(200, b"", "provider_bad_response", id="200-empty"),
        pytest.param(200, b"\xff\xfe\xfa", "provider_bad_response", id="200-not-utf8"),
        pytest.param(200, b"[" * 100_000, "provider_bad_response", id="200-deeply-nested"),
        pytest.param(404, b"Not Found", "provider_bad_response", id="404-text"),
        pytest.param(500, b"<html>Internal Server Error</html>", "provider_unreachable", id="500-html"),
        pytest.param(502, b"Bad Gateway", "provider_unreachable", id="502-text"),
        pytest.param(503, b"", "provider_unreachable", id="503-empty"),
        pytest.param(504, b"[" * 100_000, "provider_unreachable", id="504-deeply-nested"),
    ],
)
def test_answers_that_are_not_json(serve: Callable[[Handler], Server], http: ProviderHTTP, status: int, body: bytes,
                                   code: str) -> None:
    server = serve(raw_answer(status, body))
    error, _ = provider_error(lambda: http.get_json(server.url(), "discovery"))
    assert error.code == code
    assert "discovery" in error.detail


def test_redirects_are_not_followed(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    def redirect(connection: Connection, request: Request) -> None:
        if request.path == "/start":
            connection.respond(302, b"{}", headers={"Location": "/elsewhere"})
        else:
            connection.respond(200, b'{"followed": true}')

    server = serve(redirect)
    assert http.get_json(server.url("/start"), "discovery") == (302, {})
    assert [request.path for request in server.requests] == ["/start"]


def test_a_redirect_with_a_non_json_body(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    def redirect(connection: Connection, request: Request) -> None:
        connection.respond(307, b"Moved", content_type="text/plain",
                           headers={"Location": connection_url(connection) + "/elsewhere"})

    server = serve(redirect)
    error, _ = provider_error(lambda: http.post_form(server.url("/token"), "token", "code=x"))
    assert error.code == "provider_bad_response"
    assert [request.path for request in server.requests] == ["/token"]


def connection_url(connection: Connection) -> str:
    host, port = connection.sock.getsockname()[:2]
    return f"http://{host}:{port}"


def test_an_invalid_url_is_unreachable_not_a_crash(http: ProviderHTTP) -> None:
    error, _ = provider_error(lambda: http.get_json("http://[::1/", "discovery"))
    assert error.code == "provider_unreachable"


def test_a_redirect_with_an_endless_body_is_not_read(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    def endless_redirect(connection: Connection, request: Request) -> None:
        connection.send(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n")
        block = b" " * 65536
        while not connection.stop.is_set():
            connection.send(b"%x\r\n%s\r\n" % (len(block), block))

    server = serve(endless_redirect)
    error, elapsed = provider_error(lambda: http.get_json(server.url("/start"), "discovery"))
    assert error.code == "provider_bad_response"
    assert elapsed < TIMEOUT + SLACK
    assert [request.path for request in server.requests] == ["/start"]


def test_provider_cookies_are_not_kept(serve: Callable[[Handler], Server], http: ProviderHTTP) -> None:
    server = serve(lambda c, r: c.respond(200, b"{}", headers={"Set-Cookie": "did=tracker; Path=/"}))
    http.get_json(server.url("/one"), "discovery")
    http.get_json(server.url("/two"), "discovery")
    assert [request.headers.get("cookie") for request in server.requests] == [None, None]


# -- outgoing HTTP: proxy, CA bundle, client certificate -------------------------------

PROXY_PASSWORD = "pr0xy-secret"


def egress_http(**settings: Any) -> ProviderHTTP:
    return ProviderHTTP(TIMEOUT, egress=Egress(**settings))


def test_an_explicit_proxy_carries_the_call_with_its_credentials(serve: Callable[[Handler], Server]) -> None:
    proxy = serve(json_answer(200, {"via": "proxy"}))
    http = egress_http(proxy=f"http://sso:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}")
    # a host only the proxy knows: the call can only have gone through it
    assert http.get_json("http://provider.example.invalid/.well-known/x", "discovery") == (200, {"via": "proxy"})
    [request] = proxy.requests
    assert request.path == "http://provider.example.invalid/.well-known/x"  # absolute form: a proxy request
    assert request.headers["proxy-authorization"] == "Basic " + base64.b64encode(
        f"sso:{PROXY_PASSWORD}".encode()).decode()


def test_environment_proxies_only_with_trust_env(serve: Callable[[Handler], Server],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = serve(json_answer(200, {"via": "proxy"}))
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    # a host only the proxy knows: a call can only succeed through it
    with pytest.raises(ProviderError):
        egress_http().get_json("http://provider.example.invalid/a", "discovery")
    assert egress_http(trust_env=True).get_json("http://provider.example.invalid/b", "discovery") == (
        200, {"via": "proxy"})
    monkeypatch.setenv("NO_PROXY", "provider.example.invalid")
    with pytest.raises(ProviderError):
        egress_http(trust_env=True).get_json("http://provider.example.invalid/c", "discovery")
    assert [request.path for request in proxy.requests] == ["http://provider.example.invalid/b"]


@pytest.mark.parametrize("settings", [{"trust_env": True}, {"proxy": "http://127.0.0.1:{port}"}],
                         ids=["environment-proxy", "http_proxy"])
def test_plain_http_to_loopback_never_goes_through_a_proxy(serve: Callable[[Handler], Server],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           settings: dict[str, Any]) -> None:
    """Plain http is allowed for loopback only; through a proxy the client secret would leave the machine."""
    proxy = serve(json_answer(200, {"via": "proxy"}))
    direct = serve(json_answer(200, {"via": "direct"}))
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    http = egress_http(**{name: str(value).format(port=proxy.port) if isinstance(value, str) else value
                          for name, value in settings.items()})
    assert http.get_json(direct.url("/a"), "discovery") == (200, {"via": "direct"})
    assert http.get_json(direct.url("/b").replace("127.0.0.1", "localhost"), "discovery") == (
        200, {"via": "direct"})
    assert proxy.requests == []


def test_a_refused_proxy_is_a_proxy_error_naming_http_proxy() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    http = egress_http(proxy=f"http://sso:{PROXY_PASSWORD}@127.0.0.1:{port}")
    error, elapsed = provider_error(lambda: http.get_json("https://provider.example.invalid/x", "discovery"))
    assert (error.code, error.detail) == ("provider_proxy_error",
                                          "discovery: proxy refused the connection (check http_proxy)")
    assert PROXY_PASSWORD not in str(error) and PROXY_PASSWORD not in repr(http.egress)
    assert elapsed < TIMEOUT + SLACK


def test_a_silent_proxy_times_out_within_http_timeout(serve: Callable[[Handler], Server]) -> None:
    proxy = serve(lambda connection, request: connection.stop.wait(10))
    http = egress_http(proxy=f"http://127.0.0.1:{proxy.port}")
    error, elapsed = provider_error(lambda: http.get_json("https://provider.example.invalid/x", "jwks"))
    assert error.code == "provider_timeout"
    assert error.detail == f"jwks: no answer within {TIMEOUT}s through the proxy (check http_proxy)"
    assert elapsed < TIMEOUT + SLACK
    assert proxy.requests[0].method == "CONNECT"


@pytest.mark.parametrize(("status", "reason"), [
    (403, "proxy refused the tunnel to the provider (HTTP 403)"),
    (407, "proxy asks for credentials or refused them (HTTP 407)"),
])
def test_a_proxy_refusing_the_tunnel_is_named(serve: Callable[[Handler], Server], status: int, reason: str) -> None:
    proxy = serve(raw_answer(status, b"no"))
    http = egress_http(proxy=f"http://127.0.0.1:{proxy.port}")
    error, _ = provider_error(lambda: http.get_json("https://provider.example.invalid/x", "token endpoint"))
    assert (error.code, error.detail) == ("provider_proxy_error", f"token endpoint: {reason} (check http_proxy)")


@dataclass
class TLSServer:
    url: str
    server: http_server.ThreadingHTTPServer


@pytest.fixture(scope="module")
def tls_pki(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from ..pki import CertificateAuthority

    folder = tmp_path_factory.mktemp("http-pki")
    ca = CertificateAuthority(folder / "ca")
    return ca, ca.server(), ca.issue("client", client=True), CertificateAuthority(folder / "other", "other CA")


@pytest.fixture
def tls_server(tls_pki: Any) -> Iterator[Callable[[bool], str]]:
    """An https JSON server with the test CA's certificate; ``True`` makes it require a client certificate."""
    ca, issued, _, _ = tls_pki
    servers: list[http_server.ThreadingHTTPServer] = []

    class Answer(http_server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"tls": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    def start(mutual: bool) -> str:
        server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(issued.cert, issued.key)
        if mutual:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(ca.cert)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"https://127.0.0.1:{server.server_address[1]}/.well-known/openid-configuration"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_ca_bundle_is_trusted_instead_of_the_default_bundle(tls_server: Callable[[bool], str], tls_pki: Any) -> None:
    ca, _, _, other = tls_pki
    url = tls_server(False)
    assert egress_http(ca_bundle=str(ca.cert)).get_json(url, "discovery") == (200, {"tls": True})
    for bundle in ("", str(other.cert)):  # the default bundle, or a CA that did not issue the certificate
        error, _ = provider_error(lambda bundle=bundle: egress_http(ca_bundle=bundle).get_json(url, "discovery"))
        assert (error.code, error.detail) == ("provider_tls_error",
                                              "discovery: TLS certificate not trusted (check ca_bundle)")


def test_the_client_certificate_is_presented_for_mutual_tls(tls_server: Callable[[bool], str], tls_pki: Any) -> None:
    ca, _, client, _ = tls_pki
    url = tls_server(True)
    with_cert = egress_http(ca_bundle=str(ca.cert), client_cert=str(client.cert), client_key=str(client.key))
    assert with_cert.get_json(url, "discovery") == (200, {"tls": True})
    error, elapsed = provider_error(lambda: egress_http(ca_bundle=str(ca.cert)).get_json(url, "discovery"))
    assert error.code == "provider_tls_error"
    assert "may require a client certificate (set tls_client_cert, tls_client_key)" in error.detail
    assert elapsed < TIMEOUT + SLACK
