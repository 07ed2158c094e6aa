"""A programmable OpenID Provider on loopback, over real HTTP, for adversarial tests.

:class:`AdversarialProvider` is :class:`tests.fakes.FakeProvider` -- the same
scriptable provider logic with real RSA keys, codes bound to their client,
redirect URI and PKCE challenge -- served by a real threaded ``http.server`` on a
free ``127.0.0.1`` port, so the middleware's HTTP client, timeouts and body
limits are exercised for real.  Its issuer is ``http://127.0.0.1:PORT/``
(the middleware needs ``allow_insecure_http=True``).  The browser reaches its
``/authorize`` endpoint too: it answers like a provider whose user already
approved, with a 303 back to the client's ``redirect_uri``.

What a test can script, besides :class:`FakeProvider`'s attributes
(``id_token_overrides``, ``id_token_header``, ``id_token_key``, ``jwks_keys``,
``discovery_overrides``, ``token_response``, ``userinfo``, ...):

* ``faults[route] = fault`` -- how one endpoint (``discovery``, ``jwks``,
  ``token``, ``userinfo``, ``authorize``) misbehaves: :class:`Status`,
  :class:`Body`, :class:`Oversized`, :class:`Reset`, :class:`Slow`,
  :class:`Drip`;
* ``forge_id_token`` -- a function turning the genuine ID-token claims into
  any token string (``alg: none``, HMAC with the public key, odd headers);
* ``authorize_user`` / ``authorize_response`` -- who approves, and what the
  authorization response carries (``iss``, ``state``, ``error``, ...);
* ``check_pkce = False`` -- a provider that ignores PKCE (to show the nonce
  still stops code injection).

Every request is recorded in ``calls`` (``requests_to(suffix)`` filters them),
and every secret the provider sees or mints -- codes, tokens, state, nonce,
PKCE values, the client secret -- is collected in ``secrets`` so tests can
assert none of them reaches a log line.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests
import waitress
from requests.structures import CaseInsensitiveDict
from waitress import wasyncore

from .fakes import FakeProvider, s256

#: Route name -> path below the issuer.
ROUTES = {
    "discovery": "/.well-known/openid-configuration",
    "jwks": "/.well-known/jwks.json",
    "token": "/oauth/token",
    "userinfo": "/userinfo",
    "authorize": "/authorize",
}

#: (status, headers, body) of one HTTP answer.
Answer = tuple[int, list[tuple[str, str]], bytes]


def json_answer(status: int, payload: Any) -> Answer:
    return status, [("Content-Type", "application/json")], json.dumps(payload).encode()




@dataclass
class Recorded:
    """One request the provider received (the attributes ``FakeProvider`` reads from a request)."""

    method: str
    url: str
    headers: CaseInsensitiveDict[str]
    body: str
    at: float = field(default_factory=time.monotonic)

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body).items()}


# -- faults -------------------------------------------------------------------------


class Fault:
    """How one endpoint misbehaves.  ``genuine`` computes the answer it would otherwise give."""

    def serve(self, handler: _Handler, genuine: Callable[[], Answer]) -> None:
        raise NotImplementedError


@dataclass
class Status(Fault):
    """Answer with this status (by default a JSON ``server_error``), whatever was asked."""

    status: int
    body: bytes = b'{"error": "server_error"}'
    content_type: str = "application/json"

    def serve(self, handler: _Handler, genuine: Callable[[], Answer]) -> None:
        handler.send_answer((self.status, [("Content-Type", self.content_type)], self.body))


@dataclass
class Body(Fault):
    """Answer 200 (or ``status``) with this raw body: HTML, a JWT, truncated JSON, ..."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200

    def serve(self, handler: _Handler, genuine: Callable[[], Answer]) -> None:
        handler.send_answer((self.status, [("Content-Type", self.content_type)], self.body))


@dataclass
class Oversized(Fault):
    """A JSON-looking body of ``size`` bytes (with its Content-Length), or endless without one."""

    size: int = 2 * 1024 * 1024
    endless: bool = False
    sent: int = 0  # bytes of body written before the client hung up (or all of them)
    finished: threading.Event = field(default_factory=threading.Event)

    def serve(self, handler: _Handler, genuine: Callable[[], Answer]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if not self.endless:
            handler.send_header("Content-Length", str(self.size))
        handler.send_header("Connection", "close")
        handler.end_headers()
        chunk = b" " * 65536
        prefix = b'{"padding": "'
        try:
            handler.wfile.write(prefix)
            self.sent = len(prefix)
            while (self.endless or self.sent < self.size) and not handler.stopping():
                part = chunk if self.endless else chunk[: self.size - self.sent]
                handler.wfile.write(part)
                self.sent += len(part)
                if self.endless and self.sent > 64 * 1024 * 1024:
                    break  # a client that reads forever: stop anyway (the test then fails on time)
        except OSError:
            pass  # the client stopped reading and closed the connection, as it should
        finally:
            self.finished.set()


@dataclass
class Reset(Fault):
    """Reset the connection (TCP RST): before answering, or after the headers and ``body_bytes`` of the body."""

    body_bytes: Optional[int] = None

    def serve(self, handler: _Handler, genuine: Callable[[], Answer]) -> None:
        status, headers, body = genuine()
        with contextlib.suppress(OSError):
            if self.body_bytes is not None:
                handler.send_response(status)
                for name, value in headers:
                    handler.send_header(name, value)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body[: self.body_bytes])
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
        handler.close_connection = True


@dataclass
class Slow(Fault):
    """Wait ``delay`` seconds before giving the genuine answer."""

    delay: float

    def serve(self, handler: _Handler, genuine: Callable[[], Answer]) -> None:
        handler.wait(self.delay)
        with contextlib.suppress(OSError):
            handler.send_answer(genuine())


@dataclass
class Drip(Fault):
    """The genuine answer's headers at once, then its body one byte every ``interval`` seconds."""

    interval: float = 0.2

    def serve(self, handler: _Handler, genuine: Callable[[], Answer]) -> None:
        status, headers, body = genuine()
        try:
            handler.send_response(status)
            for name, value in headers:
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            for index in range(len(body)):
                if handler.wait(self.interval):
                    return
                handler.wfile.write(body[index:index + 1])
        except OSError:
            pass


# -- the HTTP server ----------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    provider: AdversarialProvider

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up on purpose are the point of these tests


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no keep-alive state between faults

    def do_GET(self) -> None:
        self.server.provider.dispatch(self)

    def do_POST(self) -> None:
        self.server.provider.dispatch(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_answer(self, answer: Answer) -> None:
        status, headers, body = answer
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def wait(self, seconds: float) -> bool:
        """Sleep, cut short when the provider stops; True if it stopped."""
        return self.server.provider.stopped.wait(seconds)

    def stopping(self) -> bool:
        return self.server.provider.stopped.is_set()


@dataclass
class AdversarialProvider(FakeProvider):
    """A :class:`FakeProvider` served over real HTTP on loopback; see the module docstring."""

    faults: dict[str, Fault] = field(default_factory=dict)
    forge_id_token: Optional[Callable[[dict[str, Any]], str]] = None
    authorize_user: str = "alice"
    authorize_response: dict[str, Optional[str]] = field(default_factory=dict)
    check_pkce: bool = True
    secrets: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._server: Optional[_Server] = None
        self.secrets.append(self.client_secret)

    # -- lifecycle ------------------------------------------------------------

    def start(self, port: Optional[int] = None) -> AdversarialProvider:
        """Listen on ``port`` (default: the last one, else a free one) and serve in a thread."""
        self._server = _Server(("127.0.0.1", self.port if port is None else port), _Handler)
        self._server.provider = self
        self.port = int(self._server.server_address[1])
        self.issuer = f"http://127.0.0.1:{self.port}/"
        self.stopped.clear()
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (the port is closed: the provider is unreachable) and end slow answers."""
        self.stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> AdversarialProvider:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def url(self, route: str) -> str:
        return self.issuer.rstrip("/") + ROUTES.get(route, route)

    # -- requests -------------------------------------------------------------

    def dispatch(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode("latin-1") if length else ""
        recorded = Recorded(
            handler.command,
            self.issuer.rstrip("/") + handler.path,
            CaseInsensitiveDict(dict(handler.headers.items())),
            body,
        )
        with self._lock:
            self.calls.append(recorded)
        route = next((name for name, path in ROUTES.items() if recorded.path == path), None)
        fault = self.faults.get(route) if route else None

        def genuine() -> Answer:
            with self._lock:
                return self._answer(route, recorded)

        if fault is not None:
            fault.serve(handler, genuine)
        else:
            with contextlib.suppress(OSError):
                handler.send_answer(genuine())

    def _answer(self, route: Optional[str], request: Recorded) -> Answer:
        if route == "authorize":
            return self._authorize(request)
        if route == "token":
            self._note_token_request(request)
            if not self.check_pkce:
                grant = self.grants.get(request.form().get("code", ""))
                if grant is not None:
                    grant.code_challenge = s256(request.form().get("code_verifier", ""))
        status, payload = self.handle(request)  # type: ignore[arg-type]  # duck-typed like PreparedRequest
        if route == "token" and isinstance(payload, dict):
            self._note_token_response(payload)
        return json_answer(status, payload)

    def _authorize(self, request: Recorded) -> Answer:
        query = {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}
        self.secrets += [query[name] for name in ("state", "nonce", "code_challenge") if query.get(name)]
        callback = self.authorize(request.url, user=self.authorize_user, **self.authorize_response)
        code = parse_qs(urlsplit(callback).query).get("code")
        if code:
            self.secrets.append(code[0])
        return 303, [("Location", callback), ("Cache-Control", "no-store")], b""

    def _note_token_request(self, request: Recorded) -> None:
        form = request.form()
        self.secrets += [form[name] for name in ("code", "code_verifier", "client_secret") if form.get(name)]
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            self.secrets.append(auth[6:])

    def _note_token_response(self, payload: dict[str, Any]) -> None:
        for name in ("access_token", "id_token", "refresh_token"):
            value = payload.get(name)
            if isinstance(value, str) and value:
                self.secrets.append(value)
                # A JWT's payload and signature are secrets too (its header is not unique).
                self.secrets += [part for part in value.split(".")[1:] if len(part) > 16]

    def make_id_token(self, sub: str = "alice", nonce: Optional[str] = None, **overrides: Any) -> str:
        if self.forge_id_token is not None:
            return self.forge_id_token(self.id_token_claims(sub, nonce, **overrides))
        return super().make_id_token(sub, nonce, **overrides)

    def mint_code(self, authorize_url: str, user: str = "alice") -> str:
        """A code for an authorization request, as if its user had approved it elsewhere (an attacker)."""
        callback = self.authorize(authorize_url, user=user)
        code = parse_qs(urlsplit(callback).query)["code"][0]
        self.secrets.append(code)
        return code


# -- the application side ---------------------------------------------------------------


class ServedApp:
    """A WSGI application served by waitress in a thread on a free loopback port.

    The server starts before the application exists (the middleware needs its
    own ``base_url``): set :attr:`app` before the first request.  The event loop
    is ours, so :meth:`close` stops it before closing its sockets (closing them
    under waitress's own ``run()`` makes its ``select`` fail in the thread).
    """

    def __init__(self, threads: int = 4) -> None:
        self.app: Optional[Callable[..., Any]] = None
        self._map: dict[int, Any] = {}
        self._stopping = threading.Event()
        self.server = waitress.create_server(self._dispatch, map=self._map, host="127.0.0.1", port=0,
                                             threads=threads)
        self.base_url = f"http://127.0.0.1:{self.server.effective_port}"
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)

    def _dispatch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.app is not None, "ServedApp.app is not set"
        return self.app(environ, start_response)

    def url(self, path: str, **query: str) -> str:
        return self.base_url + path + ("?" + urlencode(query) if query else "")

    def close(self) -> None:
        self._stopping.set()
        self.server.pull_trigger()  # wake the loop now rather than at its next timeout
        self._thread.join(5)
        self.server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self._map)


@dataclass
class Visit:
    """Where a browser went: every URL requested, in order, the final response and the time it took."""

    urls: list[str]
    response: requests.Response
    seconds: float

    def count(self, predicate: Callable[[str], bool]) -> int:
        return sum(1 for url in self.urls if predicate(url))


def browse(http: requests.Session, url: str, max_hops: int = 10, timeout: float = 15.0) -> Visit:
    """GET ``url`` and follow redirects like a browser (cookies kept by ``http``), recording each hop."""
    started = time.monotonic()
    urls = [url]
    response = http.get(url, allow_redirects=False, timeout=timeout)
    while response.status_code in (301, 302, 303, 307, 308):
        if len(urls) > max_hops:
            raise AssertionError(f"redirect loop: {urls}")
        url = urljoin(response.url, response.headers["Location"])
        urls.append(url)
        response = http.get(url, allow_redirects=False, timeout=timeout)
    return Visit(urls, response, time.monotonic() - started)


def basic_credentials(request: Recorded) -> tuple[str, str]:
    """The client id and secret of a token request's ``Authorization: Basic`` header."""
    auth = request.headers.get("Authorization", "")
    assert auth.startswith("Basic "), f"not client_secret_basic: {auth[:10]!r}"
    client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
    return client_id, secret
