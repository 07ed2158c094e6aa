"""The smallest real example: a legacy WSGI app wrapped by SSOMiddleware.

Configured entirely from ``SSO_*`` environment variables (see the README's
settings table), e.g.::

    SSO_DOMAIN=tenant.eu.auth0.com SSO_CLIENT_ID=... SSO_CLIENT_SECRET=... \\
    SSO_BASE_URL=http://127.0.0.1:5002 SSO_ALLOW_INSECURE_HTTP=true \\
    SSO_SESSION_SECRET=$(python -c 'import secrets;print(secrets.token_urlsafe(32))') \\
    SSO_PROTECTED_PATHS=/dashboard python demo_app.py
"""

from __future__ import annotations

import contextlib
import html
import os
from collections.abc import Iterable
from typing import Any, Callable
from wsgiref.simple_server import make_server

from sso_middleware import SSOConfig, SSOMiddleware, get_userinfo


def legacy_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A legacy app that knows nothing of OpenID Connect: it only reads the environ."""
    user = get_userinfo(environ)
    if user is None:
        body = '<p>Not signed in. <a href="/auth/login?target_url=/dashboard">Sign in</a></p>'
    else:
        body = (
            f"<p>Signed in as <b>{html.escape(str(user.get('name', environ.get('REMOTE_USER'))))}</b>"
            f" ({html.escape(str(user.get('email', '')))}).</p>"
            '<p><a href="/auth/logout?target_url=/">Sign out</a></p>'
        )
    data = f"<!DOCTYPE html><title>Demo app</title><h1>Demo app</h1>{body}".encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]


def main() -> None:
    app = SSOMiddleware(legacy_app, SSOConfig.from_env())
    port = int(os.environ.get("PORT", "5002"))
    print(f"demo app on http://127.0.0.1:{port}/ (Ctrl-C to stop)")
    with make_server("127.0.0.1", port, app) as server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
