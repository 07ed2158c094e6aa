"""Reference points that are not middlewares anyone should deploy: how little each job can cost in Python.

* :func:`minimal_pass_through` -- the least an authentication middleware must do for
  an anonymous request (drop the three environ keys a client could forge, look for
  its cookie) before calling the app.  It bounds what the anonymous target can mean.
* :func:`direct_reader` -- the signed-in job done without Beaker's objects: verify the
  cookie's HMAC, read the very record Beaker wrote (a sealed JSON ``{"session": text}``
  file written by atomic rename, so no lock is needed to read it; or one Redis GET),
  verify its seal, base64 + zlib + JSON, check the user's timestamps, set the environ.  It tells how much
  of a signed-in request is the store itself and how much is Beaker's machinery around
  it, i.e. what reading sessions directly in ``sso_middleware.stores`` could gain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import zlib
from typing import Any, Callable, Optional

from .apps import StartResponse, WSGIApp, bare_app

FORGEABLE = ("REMOTE_USER", "sso.userinfo", "sso.connection")


def minimal_pass_through(cookie_name: str, app: WSGIApp = bare_app) -> WSGIApp:
    marker = cookie_name + "="

    def middleware(environ: dict[str, Any], start_response: StartResponse) -> Any:
        for key in FORGEABLE:
            environ.pop(key, None)
        if marker in environ.get("HTTP_COOKIE", ""):
            raise NotImplementedError("only the anonymous path is modelled")
        return app(environ, start_response)

    return middleware


def _cookie_value(header: str, name: str) -> str:
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return ""


def direct_reader(options: dict[str, Any], idle_timeout: float, app: WSGIApp = bare_app) -> WSGIApp:
    """Read the session record Beaker wrote, without Beaker (file or our Redis namespace)."""
    name = options["key"]
    secret = str(options["secret"]).encode()
    seal = options["seal"]
    fetch: Callable[[str], Optional[str]]
    if options.get("type") == "file":
        root = options["data_dir"] + "/container_file"

        def fetch(session_id: str) -> Optional[str]:
            path = f"{root}/{session_id[0]}/{session_id[:2]}/{session_id}.cache"
            try:
                with open(path, "rb") as handle:
                    opened = seal.open("session", f"file:{session_id}", handle.read())
            except FileNotFoundError:
                return None
            text = json.loads(opened).get("session") if opened is not None else None
            return text if isinstance(text, str) else None
    else:
        import redis

        client = redis.Redis.from_url(options["url"], socket_timeout=options.get("socket_timeout", 2.0))

        def fetch(session_id: str) -> Optional[str]:
            key = f"{options['prefix']}:{session_id}:session"
            value = client.get(key)
            return seal.open("session", key, value) if isinstance(value, bytes) else None

    def middleware(environ: dict[str, Any], start_response: StartResponse) -> Any:
        for key in FORGEABLE:
            environ.pop(key, None)
        signed = _cookie_value(environ.get("HTTP_COOKIE", ""), name)
        if len(signed) == 72:
            session_id = signed[40:]
            expected = hmac.new(secret, session_id.encode(), hashlib.sha1).hexdigest()
            if hmac.compare_digest(signed[:40], expected) and session_id.isalnum():
                raw = fetch(session_id)
                if raw is not None:
                    data = json.loads(zlib.decompress(base64.b64decode(raw)))
                    user = data.get("user")
                    if isinstance(user, dict) and time.time() - data.get("last_seen", 0) < idle_timeout:
                        claims = dict(user["claims"])
                        environ["sso.userinfo"] = claims
                        environ["sso.connection"] = user.get("connection")
                        environ["REMOTE_USER"] = str(claims["sub"])
        return app(environ, start_response)

    return middleware
