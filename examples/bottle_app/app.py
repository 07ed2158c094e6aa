"""A Bottle app behind single sign-on, configured from ``SSO_*`` environment variables.

    waitress-serve --listen=127.0.0.1:8080 app:app

``bottle_app`` is an ordinary Bottle application; ``app`` is the same application
wrapped by the middleware, which is what the server runs.  Views read the user from
the WSGI environ (``REMOTE_USER``, ``sso.userinfo``), never from the request.
"""

from __future__ import annotations

from typing import Any

import bottle

from sso_middleware import SSOConfig, SSOMiddleware, get_userinfo

bottle_app = bottle.Bottle()


@bottle_app.get("/")
def home() -> str:
    user = get_userinfo(bottle.request.environ)
    who = bottle.html_escape(str(user.get("name"))) if user else "nobody"
    return f'<!DOCTYPE html><title>Bottle</title><p>Signed in: {who}. <a href="/whoami">/whoami</a></p>'


@bottle_app.get("/whoami")
def whoami() -> dict[str, Any]:
    user = get_userinfo(bottle.request.environ)
    if user is None:  # when SSO_PROTECTED_PATHS does not already cover /whoami
        bottle.redirect("/auth/login?target_url=/whoami", 303)
    return {"remote_user": bottle.request.environ["REMOTE_USER"], "userinfo": user}


app = SSOMiddleware(bottle_app, SSOConfig.from_env())
