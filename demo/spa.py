"""App 1 of the demo: a single-page app, served as static files with its settings as JSON.

The SPA (``demo/spa/``: ``index.html``, ``app.js``, ...) signs in in the browser with
``oidc-client-ts``, a public client (``token_endpoint_auth_method: none``) with PKCE: no
secret, no server-side session, no ``SSOMiddleware`` in front of it. This module only serves
its files, the library's browser build from the npm install (``npm ci`` of
``demo/spa/package-lock.json`` into a cache folder, as the dev provider's dependencies are
installed), the shared style sheet, and ``/config.json`` (where the provider and the APIs are).

Security caveat: the SPA keeps its tokens in the browser's ``localStorage`` (so that every
tab of the origin shares the sign-in), where any script of the origin can read them; the
Content-Security-Policy below therefore allows scripts from this origin only and connections
and frames to the provider and App 2's API only.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from sso_middleware.testing import npm_install_cached

from .pages import STYLE

SPA_DIR = Path(__file__).resolve().parent / "spa"
#: The files of ``demo/spa/`` the server serves, by path (the callback is the app's own page).
PAGES = {
    "/": "index.html",
    "/callback": "index.html",
    "/app.js": "app.js",
    "/manager.js": "manager.js",
    "/silent-renew.html": "silent-renew.html",
    "/silent-renew.js": "silent-renew.js",
}
#: The library's browser build (a global ``oidc``, jwt-decode bundled), inside the npm install.
LIBRARY_PATH = "/vendor/oidc-client-ts.min.js"
LIBRARY_FILE = Path("node_modules", "oidc-client-ts", "dist", "browser", "oidc-client-ts.min.js")


def install_spa_dependencies(home: Path | None = None) -> Path:
    """``npm ci`` of the SPA's lock file, once, into a cache folder; return the library's file."""
    installed = npm_install_cached(SPA_DIR, ("package.json", "package-lock.json"), "demo-spa", home)
    return installed / LIBRARY_FILE


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class SPAServer:
    """The WSGI app serving the SPA: its fixed files, the library, the style sheet, ``/config.json``.

    ``settings`` is what ``config.json`` carries (the provider's issuer, the client id, App 2's
    API URL and ``audience``, the links to App 2 and App 3, the renewal interval).
    """

    def __init__(self, settings: Mapping[str, Any], library: Path) -> None:
        self.config = json.dumps(dict(settings), indent=2).encode()
        self.library = library
        provider, api = _origin(str(settings["authority"])), _origin(str(settings["api_url"]))
        self.csp = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"connect-src 'self' {provider} {api}; frame-src 'self' {provider}; "
            "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self._send(start_response, "405 Method Not Allowed", b"method not allowed", "text/plain",
                              [("Allow", "GET, HEAD")])
        if path in PAGES:
            name = PAGES[path]
            body = (SPA_DIR / name).read_bytes()
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if name.endswith(".js"):
                kind = "text/javascript"
            return self._send(start_response, "200 OK", body, kind)
        if path == LIBRARY_PATH:
            return self._send(start_response, "200 OK", self.library.read_bytes(), "text/javascript")
        if path == "/style.css":
            return self._send(start_response, "200 OK", STYLE.encode(), "text/css")
        if path == "/config.json":
            return self._send(start_response, "200 OK", self.config, "application/json")
        return self._send(start_response, "404 Not Found", b"not found", "text/plain")

    def _send(
        self,
        start_response: Callable[..., Any],
        status: str,
        body: bytes,
        kind: str,
        extra: Iterable[tuple[str, str]] = (),
    ) -> Iterable[bytes]:
        headers = [
            ("Content-Type", kind if kind.startswith(("image/", "application/octet")) else f"{kind}; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Content-Security-Policy", self.csp),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            *extra,
        ]
        start_response(status, headers)
        return [body]
