"""The contestants: one bare WSGI app and everything put in front of it.

Every factory is importable by gunicorn (``bench.apps:make_sso()``) and usable
in-process.  Servers get their settings from the environment: ``SSO_*`` for
:class:`~sso_middleware.SSOMiddleware` (``SSOConfig.from_env()``) and ``BENCH_*``
for the Flask + Authlib app.  Each signed-in app answers ``hello <sub>`` so a
benchmark can check it measures a signed-in request, not a redirect.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Callable

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Header mod_auth_openidc passes the ``sub`` claim in (``OIDCClaimPrefix OIDC-Claim-``).
APACHE_SUB = "HTTP_OIDC_CLAIM_SUB"


def bare_app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """The application every contestant serves: a few bytes naming the user it was told about."""
    user = environ.get("REMOTE_USER") or environ.get(APACHE_SUB) or "anonymous"
    body = b"hello " + user.encode("latin-1", "replace")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def make_bare() -> WSGIApp:
    return bare_app


def make_sso(app: WSGIApp = bare_app, **settings: Any) -> WSGIApp:
    """``SSOMiddleware`` around ``app``; settings from ``SSO_*`` variables unless given."""
    from sso_middleware import SSOConfig, SSOMiddleware

    if settings:
        return SSOMiddleware(app, **settings)
    return SSOMiddleware(app, SSOConfig.from_env())


def make_floor(options: dict[str, Any], app: WSGIApp | None = None, save_accessed_time: bool = False) -> WSGIApp:
    """Beaker's ``SessionMiddleware`` alone, reading the session our store wrote (the floor).

    ``options`` are the middleware's own Beaker options (``SSOMiddleware.store.backend.options``),
    so the floor reads the same record, with the same serializer, from the same store.  The app
    reads the user out of the session, as SSOMiddleware does, so the session is really loaded.
    """
    from beaker.middleware import SessionMiddleware

    def floor_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        record = environ["beaker.session"].get("user")
        if isinstance(record, dict):
            environ["REMOTE_USER"] = str(record["claims"]["sub"])
        return (app or bare_app)(environ, start_response)

    merged = dict(options)
    if "encrypt_key" in merged:  # our cookie store builds CookieSession directly; Beaker picks it by type
        merged["type"] = "cookie"
    return SessionMiddleware(floor_app, save_accessed_time=save_accessed_time, **merged)


def _flask(name: str) -> Any:
    from flask import Flask

    return Flask(name)


def make_flask_plain() -> Any:
    """A Flask app with one view and no session: what Flask itself costs."""
    from flask import Response, request

    app = _flask("bench_flask_plain")

    @app.get("/")
    def home() -> Response:
        user = request.environ.get("REMOTE_USER") or "anonymous"
        return Response("hello " + user, content_type="text/plain")

    return app


def make_flask_sso(**settings: Any) -> Any:
    """The plain Flask app behind SSOMiddleware (``app.wsgi_app = SSOMiddleware(app.wsgi_app, ...)``)."""
    app = make_flask_plain()
    app.wsgi_app = make_sso(app.wsgi_app, **settings)
    return app


def make_flask_authlib(
    issuer: str = "", client_id: str = "", client_secret: str = "", secret_key: str = "", base_url: str = ""
) -> Any:
    """The idiomatic Flask + Authlib app: the user's claims and ID token in Flask's signed-cookie session.

    As in Authlib's documentation: ``/login`` redirects to the provider, ``/auth`` calls
    ``authorize_access_token()`` (code exchange, ID token validation) and stores
    ``token["userinfo"]`` and the ID token (the logout hint) in ``session``; ``/`` is a
    protected view reading ``session["user"]``.
    """
    from authlib.integrations.flask_client import OAuth
    from flask import Response, redirect, session

    env = os.environ
    issuer = issuer or env["BENCH_ISSUER"]
    base_url = base_url or env["BENCH_BASE_URL"]
    app = _flask("bench_flask_authlib")
    app.secret_key = secret_key or env["BENCH_SECRET_KEY"]
    app.config.update(SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True)
    oauth = OAuth(app)
    oauth.register(
        "dev",
        client_id=client_id or env["BENCH_CLIENT_ID"],
        client_secret=client_secret or env["BENCH_CLIENT_SECRET"],
        server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
    )

    @app.get("/login")
    def login() -> Any:
        return oauth.dev.authorize_redirect(base_url + "/auth")

    @app.get("/auth")
    def auth() -> Any:
        token = oauth.dev.authorize_access_token()
        session["user"] = dict(token["userinfo"])
        session["id_token"] = token["id_token"]
        return redirect("/")

    @app.get("/")
    def home() -> Any:
        user = session.get("user")
        if user is None:
            return redirect("/login")
        return Response("hello " + str(user["sub"]), content_type="text/plain")

    return app
