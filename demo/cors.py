"""CORS for a JSON API called from one browser origin (the demo's SPA calling App 2's API).

Use it *outside* ``SSOMiddleware``: a browser's preflight (``OPTIONS`` with
``Access-Control-Request-Method``) carries no ``Authorization`` header and no cookie, so a
bearer path inside the middleware would refuse it with ``401`` and the browser would then
never send the real request. Here the preflight is answered before the middleware sees it,
and the real request goes through the middleware, which validates its token; its answer
(``401`` with ``WWW-Authenticate`` included) gets the CORS headers so the SPA can read it.

Security caveat: only the one listed origin is let in and only under ``path_prefix``;
credentials (cookies) are not allowed (no ``Access-Control-Allow-Credentials``), so a page
of that origin can reach the API with a token it holds, never with App 2's session cookie.
A small hand-written wrapper: the WSGI CORS packages on PyPI are unmaintained.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: What a preflight may ask for: the bearer token's header, GET only (the demo's API reads).
ALLOWED_METHODS = "GET"
ALLOWED_HEADERS = "authorization"
MAX_AGE_SECONDS = "600"


class CORSForOrigin:
    """Let ``origin`` call ``app``'s paths under ``path_prefix`` from a browser."""

    def __init__(self, app: WSGIApp, origin: str, path_prefix: str) -> None:
        self.app = app
        self.origin = origin
        self.path_prefix = path_prefix.rstrip("/") + "/"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not (path + "/").startswith(self.path_prefix):
            return self.app(environ, start_response)
        allowed = environ.get("HTTP_ORIGIN") == self.origin
        if environ.get("REQUEST_METHOD") == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ:
            headers = [("Vary", "Origin"), ("Content-Length", "0")]
            if allowed:
                headers += [
                    ("Access-Control-Allow-Origin", self.origin),
                    ("Access-Control-Allow-Methods", ALLOWED_METHODS),
                    ("Access-Control-Allow-Headers", ALLOWED_HEADERS),
                    ("Access-Control-Max-Age", MAX_AGE_SECONDS),
                ]
            start_response("204 No Content", headers)
            return []

        def with_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [*headers, ("Vary", "Origin")]
            if allowed:
                headers += [
                    ("Access-Control-Allow-Origin", self.origin),
                    ("Access-Control-Expose-Headers", "WWW-Authenticate"),
                ]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, with_cors)
