"""A small API application for the access-token tests, and its gunicorn factory.

``token_app(userinfo_url)`` is a plain WSGI app behind the middleware:

- ``/api`` calls the provider's userinfo endpoint with
  ``authorization_header(environ)`` -- the stand-in for "call an Auth0 API on the
  user's behalf": the session's access token must be accepted by a real resource
  server -- and answers JSON ``{status, sub, token, expires_at, user, pid}``
  (``token`` is a sha256 fingerprint, never the token).  Without a token it
  answers 401 ``{"error": "no_token", "token_error": ...}``; when the resource
  server refuses the token, 502 with its status.
- every other path answers JSON describing what the middleware put in the
  environ (``user``, ``token`` fingerprint, ``expires_at``, ``token_error``, the
  ``sso.*`` keys present), without calling anyone.

``make_app()`` is the gunicorn factory (``tests.token_apps:make_app()``): the
middleware configured by ``SSO_*`` variables, the userinfo URL from
``TOKEN_APP_USERINFO_URL``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any, Callable, Iterable, Optional

import requests

from sso_middleware import NoAccessToken, SSOConfig, SSOMiddleware, authorization_header, get_userinfo

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: The environ keys the middleware owns around tokens.
TOKEN_KEYS = ("sso.access_token", "sso.access_token_expires_at", "sso.token_error")


def fingerprint(token: Optional[str]) -> Optional[str]:
    """A name for a token that does not reveal it (the first 16 hex digits of its sha256)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16] if token else None


def _json(start_response: Callable[..., Any], status: str, document: dict[str, Any]) -> list[bytes]:
    body = json.dumps(document).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")])
    return [body]


def token_app(userinfo_url: str) -> WSGIApp:
    """The wrapped application (see the module docstring)."""
    local = threading.local()

    def http() -> requests.Session:
        session: Optional[requests.Session] = getattr(local, "http", None)
        if session is None:  # one keep-alive connection to the resource server per thread
            session = local.http = requests.Session()
        return session

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        userinfo = get_userinfo(environ)
        seen = {
            "user": userinfo.get("sub") if userinfo else None,
            "remote_user": environ.get("REMOTE_USER"),
            "token": fingerprint(environ.get("sso.access_token")),
            "expires_at": environ.get("sso.access_token_expires_at"),
            "token_error": environ.get("sso.token_error"),
            "keys": sorted(key for key in TOKEN_KEYS if key in environ),
            "pid": os.getpid(),
        }
        if environ.get("PATH_INFO") != "/api":
            return _json(start_response, "200 OK", seen)
        try:
            headers = authorization_header(environ)
        except NoAccessToken as exc:
            return _json(start_response, "401 Unauthorized", {**seen, "error": "no_token", "detail": str(exc)})
        answer = http().get(userinfo_url, headers=headers, timeout=10)
        claims = answer.json() if answer.status_code == 200 else {}
        status = "200 OK" if answer.status_code == 200 else "502 Bad Gateway"
        return _json(start_response, status, {**seen, "status": answer.status_code, "sub": claims.get("sub")})

    return app


def make_app() -> SSOMiddleware:
    """gunicorn factory: ``tests.token_apps:make_app()`` with ``SSO_*`` and ``TOKEN_APP_USERINFO_URL`` set."""
    return SSOMiddleware(token_app(os.environ["TOKEN_APP_USERINFO_URL"]), SSOConfig.from_env())
