"""A small legacy WSGI application that knows nothing about OpenID Connect.

It trusts what ``sso_middleware`` puts in the environ: ``REMOTE_USER`` and
``sso.userinfo`` are set only for a signed-in user (values sent by clients are
removed by the middleware).  ``make_app`` is its PasteDeploy app factory
(``use = call:legacy:make_app``).
"""

from __future__ import annotations

import html
import json
from typing import Any, Callable, Iterable

from sso_middleware import get_userinfo


def make_app(global_conf: dict[str, Any], **settings: str) -> Callable[..., Iterable[bytes]]:
    """PasteDeploy app factory; ``settings`` are the keys of the ``[app:legacy]`` section."""
    title = settings.get("title", "Legacy app")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        user = get_userinfo(environ)
        if path == "/whoami":  # protected by the filter's protected_paths
            body = json.dumps({"remote_user": environ.get("REMOTE_USER"), "userinfo": user}).encode()
            content_type = "application/json"
        elif path == "/":
            who = html.escape(str(user.get("name", environ["REMOTE_USER"]))) if user else "nobody"
            body = (
                f"<!DOCTYPE html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
                f"<p>Signed in: {who}.</p>"
                '<p><a href="/auth/login?target_url=/whoami">Sign in</a> · <a href="/whoami">/whoami</a> · '
                '<a href="/auth/logout?target_url=/">Sign out</a></p>'
            ).encode()
            content_type = "text/html; charset=utf-8"
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app
