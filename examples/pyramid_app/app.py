"""A Pyramid app whose users come from ``REMOTE_USER``, set by ``sso_middleware``.

    waitress-serve --listen=127.0.0.1:6543 app:app

Pyramid never sees the OpenID Connect flow: the middleware signs the user in and
sets ``REMOTE_USER`` (and removes any ``REMOTE_USER`` a client tries to send), and a
small Pyramid 2 security policy turns it into ``request.identity`` and
``request.authenticated_userid``.  Views declare ``permission="signed-in"``; an
anonymous request for them goes to the forbidden view, which sends the browser to
the middleware's ``/auth/login``.  Settings come from ``SSO_*`` environment variables.
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import urlencode

from pyramid.authorization import ACLHelper, Allow, Authenticated, Everyone
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request

from sso_middleware import SSOConfig, SSOMiddleware, get_userinfo


class RemoteUserSecurityPolicy:
    """Pyramid 2 security policy: the identity is whoever the middleware put in REMOTE_USER."""

    def identity(self, request: Request) -> Optional[dict[str, Any]]:
        userid = request.environ.get("REMOTE_USER")
        if userid is None:
            return None
        return {"userid": userid, "claims": get_userinfo(request.environ) or {}}

    def authenticated_userid(self, request: Request) -> Optional[str]:
        identity = request.identity
        return identity["userid"] if identity is not None else None

    def permits(self, request: Request, context: Any, permission: str) -> Any:
        principals = [Everyone]
        if request.authenticated_userid is not None:
            principals += [Authenticated, f"user:{request.authenticated_userid}"]
        return ACLHelper().permits(context, principals, permission)

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        return []  # signing in is the middleware's job: /auth/login

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        return []  # signing out too: /auth/logout


class Root:
    """Root context: every signed-in user has the "signed-in" permission."""

    __acl__ = ((Allow, Authenticated, "signed-in"),)

    def __init__(self, request: Request) -> None:
        self.request = request


def home(request: Request) -> str:
    return f"Hello, {request.authenticated_userid or 'stranger'}. Try /whoami."


def whoami(request: Request) -> dict[str, Any]:
    return {"remote_user": request.authenticated_userid, "userinfo": request.identity["claims"]}


def forbidden(request: Request) -> Any:
    if request.authenticated_userid is not None:
        return request.exception  # signed in but not allowed: a plain 403
    target = request.path_info + (f"?{request.query_string}" if request.query_string else "")
    login_path = request.registry.settings["sso.login_path"]
    return HTTPSeeOther(location=f"{request.script_name}{login_path}?{urlencode({'target_url': target})}")


def make_pyramid_app(sso: SSOConfig) -> Any:
    with Configurator(root_factory=Root, settings={"sso.login_path": sso.login_path}) as config:
        config.set_security_policy(RemoteUserSecurityPolicy())
        config.add_route("home", "/")
        config.add_route("whoami", "/whoami")
        config.add_view(home, route_name="home", renderer="string")
        config.add_view(whoami, route_name="whoami", renderer="json", permission="signed-in")
        config.add_forbidden_view(forbidden)
        return config.make_wsgi_app()


sso_config = SSOConfig.from_env()
app = SSOMiddleware(make_pyramid_app(sso_config), sso_config)
