"""A Flask app behind single sign-on, configured from ``SSO_*`` environment variables.

    gunicorn --bind 127.0.0.1:5000 app:app

The idiomatic wrap is ``app.wsgi_app = SSOMiddleware(app.wsgi_app, ...)``: ``app``
stays the Flask object (CLI, test client, extensions keep working) while every
request passes through the middleware first.  Views read the user from
``request.environ``: ``REMOTE_USER`` and ``sso.userinfo``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, request, url_for
from markupsafe import escape
from werkzeug.wrappers import Response

from sso_middleware import SSOConfig, SSOMiddleware, get_userinfo

app = Flask(__name__)
app.wsgi_app = SSOMiddleware(app.wsgi_app, SSOConfig.from_env())  # type: ignore[method-assign]


@app.get("/")
def home() -> str:
    user = get_userinfo(request.environ)
    who = escape(user.get("name")) if user else "nobody"
    return f'<!DOCTYPE html><title>Flask</title><p>Signed in: {who}. <a href="{url_for("whoami")}">/whoami</a></p>'


@app.get("/whoami")
def whoami() -> Response | dict[str, Any]:
    user = get_userinfo(request.environ)
    if user is None:  # when SSO_PROTECTED_PATHS does not already cover /whoami
        return redirect("/auth/login?target_url=/whoami", 303)
    return {"remote_user": request.environ["REMOTE_USER"], "userinfo": user}
