"""The parameters of the authentication routes, read and checked: ``target_url``, ``connection``, the callback's.

Every value comes from a URL or form anyone can craft: an unreadable encoding, a repeated
parameter or a refused value is an :class:`~sso_middleware.errors.AuthFailure` (a 4xx
failure page), never a 500.

Security caveat: :func:`target_param` is the routes' one door to a redirect target; it
accepts only this application's origins and ``allowed_redirect_origins``
(:func:`sso_middleware._policy.redirects.checked_target`).
"""

from __future__ import annotations

from typing import Any, Optional

from webob import Request

from .._config.settings import SSOConfig
from .._config.validation import is_valid_connection
from .._policy.redirects import checked_target
from ..errors import (
    AuthFailure,
    ConnectionNotAllowed,
    InvalidConnection,
    InvalidRequest,
    InvalidTargetUrl,
    MissingConnection,
    MissingTargetUrl,
)
from .bodies import BodyError, read_form


def param(request: Request, name: str) -> Optional[str]:
    """One text parameter from the query string (its last value).  The body is never read here (see :mod:`.bodies`).

    Anything unreadable (bad encodings) is bad input, never a 500.
    """
    values = query_values(request, name)
    return values[-1] if values else None


def query_values(request: Request, name: str, failure: type[AuthFailure] = InvalidRequest) -> list[str]:
    """Every value of ``name`` in the query string, in order (a route that allows one refuses more itself).

    Anything unreadable (bad encodings) raises ``failure`` (a 4xx of the route's own code), never a 500.
    """
    try:
        values: list[Any] = request.GET.getall(name)
    except (UnicodeDecodeError, LookupError, ValueError, TypeError, Warning):
        raise failure("unreadable request parameters") from None
    if not all(isinstance(value, str) for value in values):
        raise failure(f"parameter {name!r} is not text")
    return values


def callback_params(config: SSOConfig, request: Request) -> dict[str, Optional[str]]:
    """The authorization response's parameters, from where ``response_mode`` puts them.

    ``form_post``: only a POSTed form counts (its query string is ignored); a GET is
    refused before any ``state`` is redeemed, so a code pushed in a URL (logs, history,
    a forged link) neither signs in nor spends the browser's real sign-in.  ``query``:
    only a GET's (or HEAD's) query string; a POST is refused unread.
    """
    names = ("state", "code", "error", "iss")
    if config.response_mode == "form_post":
        if request.method != "POST":
            raise InvalidRequest("response_mode is form_post: the callback must be a POST")
        try:
            form = read_form(request.environ, config.max_request_body)
        except BodyError as refused:
            raise InvalidRequest(refused.reason) from None
        params: dict[str, Optional[str]] = {}
        for name in names:
            values = form.get(name, [])
            if len(values) > 1:
                raise InvalidRequest(f"parameter {name!r} given more than once")
            params[name] = values[0] if values else None
        return params
    if request.method not in ("GET", "HEAD"):
        raise InvalidRequest("response_mode is query: the callback must be a GET")
    return {name: param(request, name) for name in names}


def target_param(config: SSOConfig, request: Request, required: bool) -> str:
    """``target_url``, checked against this app's origins and ``allowed_redirect_origins`` (``/`` if optional)."""
    value = param(request, "target_url")
    if not value:
        if required:
            raise MissingTargetUrl()
        return "/"
    # Every listed origin of this app is its own (several hostnames), besides allowed_redirect_origins.
    target = checked_target(value, config.origin, config.allowed_redirect_origins + config.origins)
    if target is None:
        raise InvalidTargetUrl("refused redirect target")
    return target

def connection_param(config: SSOConfig, request: Request, required: bool) -> Optional[str]:
    """``connection`` (or ``default_connection``), checked against the allowed connections."""
    connection = param(request, "connection") or config.default_connection or None
    if connection is None:
        if required:
            raise MissingConnection()
        return None
    if not is_valid_connection(connection):
        raise InvalidConnection()
    if config.allowed_connections and connection not in config.allowed_connections:
        raise ConnectionNotAllowed(f"connection {connection!r} is not allowed")
    return connection
