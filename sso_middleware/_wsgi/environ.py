"""What the wrapped application reads: namespaced environ keys and their accessors.

When a user is signed in, the middleware sets ``environ["sso.userinfo"]`` (a
dict of the user's claims: the ID token's identity claims merged with the
userinfo response), ``environ["sso.connection"]`` (the connection they signed
in through, or None), ``environ["sso.organization"]`` (Auth0 Organizations:
``{"id": org_id, "name": org_name}`` from the ID token, checked against the
organization the sign-in asked for; absent when the user signed in through
none) and ``REMOTE_USER``.  With ``keep_access_token`` it also
sets ``environ["sso.access_token"]`` and ``environ["sso.access_token_expires_at"]``
(Unix time, or None when the provider did not say), refreshed beforehand when
due; when there is no usable token, ``environ["sso.token_error"]`` says why.
Next to a token, ``environ["sso.api_settings"]`` holds what :func:`~sso_middleware.api_session`
takes from the middleware's configuration (timeout, proxy, CA bundle, client
certificate, the plain-http rule).
When nobody is signed in, all of them are absent: values that arrive from
outside are removed before the application runs.

On ``bearer_paths``, a request authenticated by an access token gets
``environ["sso.userinfo"]`` = the token's claims (or its introspection answer),
``REMOTE_USER`` and ``environ["sso.scopes"]`` (a tuple of the token's scopes), and
none of the session keys: no session is read or written for it.

Security caveat: the access token is a bearer credential for the user's APIs;
send it only to the API it was issued for (``audience``), never to the browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from ..errors import SSOError

USERINFO_KEY = "sso.userinfo"
CONNECTION_KEY = "sso.connection"
ACCESS_TOKEN_KEY = "sso.access_token"
ACCESS_TOKEN_EXPIRES_KEY = "sso.access_token_expires_at"
TOKEN_ERROR_KEY = "sso.token_error"
ORGANIZATION_KEY = "sso.organization"
SCOPES_KEY = "sso.scopes"
#: The middleware's :class:`~sso_middleware._wsgi.api_session.APISettings`, set next to the access token.
API_SETTINGS_KEY = "sso.api_settings"
#: Every key the middleware owns: removed from each incoming environ before it sets its own.
OWN_KEYS = ("REMOTE_USER", USERINFO_KEY, CONNECTION_KEY, ACCESS_TOKEN_KEY, ACCESS_TOKEN_EXPIRES_KEY, TOKEN_ERROR_KEY,
            ORGANIZATION_KEY, SCOPES_KEY, API_SETTINGS_KEY)


class NoAccessToken(SSOError, LookupError):
    """The request has no usable access token (nobody signed in, ``keep_access_token`` off, or a failed refresh)."""


def get_userinfo(environ: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """The signed-in user's claims, or None when nobody is signed in."""
    userinfo = environ.get(USERINFO_KEY)
    return userinfo if isinstance(userinfo, dict) else None


def get_organization(environ: Mapping[str, Any]) -> Optional[dict[str, Optional[str]]]:
    """The signed-in user's Auth0 organization (``{"id": ..., "name": ...}``), or None.

    When the sign-in asked for an organization (the ``organization`` setting or an
    invitation link), the ID token's ``org_id``/``org_name`` was checked against it;
    otherwise it is whatever organization the provider put in the token: an
    application serving several organizations must itself check that this one may
    see the data it asks for.
    """
    organization = environ.get(ORGANIZATION_KEY)
    return organization if isinstance(organization, dict) else None


def get_scopes(environ: Mapping[str, Any]) -> Optional[tuple[str, ...]]:
    """The scopes of the access token that authenticated this request (``bearer_paths``), or None.

    None when the request was not authenticated by a bearer token (a session user, or
    nobody); ``()`` for a token that carries no ``scope``.
    """
    scopes = environ.get(SCOPES_KEY)
    return scopes if isinstance(scopes, tuple) else None


def get_access_token(environ: Mapping[str, Any]) -> Optional[str]:
    """The signed-in user's access token (refreshed first when due), or None."""
    token = environ.get(ACCESS_TOKEN_KEY)
    return token if isinstance(token, str) and token else None


def authorization_header(environ: Mapping[str, Any]) -> dict[str, str]:
    """``{"Authorization": "Bearer <access token>"}`` for calling the API on the user's behalf.

    Use it as ``requests.get(api_url, headers=authorization_header(environ))``.
    Raises :class:`NoAccessToken` (with ``environ["sso.token_error"]`` in its
    message when there is one) rather than returning a header-less request.
    """
    return {"Authorization": f"Bearer {require_access_token(environ)}"}


def require_access_token(environ: Mapping[str, Any]) -> str:
    """The signed-in user's access token, or :class:`NoAccessToken` saying why there is none."""
    token = get_access_token(environ)
    if token is None:
        reason = environ.get(TOKEN_ERROR_KEY)
        raise NoAccessToken(f"no access token for this request ({reason})" if reason else "no access token")
    return token
