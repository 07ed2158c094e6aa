"""Pushed authorization requests (PAR, RFC 9126): where the browser is sent to start a sign-in.

:func:`authorization_redirect` gets the authorization parameters that
:meth:`.OIDCClient.authorization_url` built (one place for them) and either puts them
in the authorization endpoint's query string or, with PAR, POSTs them to the
provider's ``pushed_authorization_request_endpoint`` with client authentication
(:mod:`.client_auth`) and sends the browser with only ``client_id`` and the
``request_uri`` the provider answered.

``pushed_authorization``: ``auto`` uses PAR whenever discovery advertises the endpoint,
``required`` refuses to sign in without it (``par_unavailable``), ``off`` never pushes;
a provider announcing ``require_pushed_authorization_requests`` is refused then
(``par_required``) rather than sent a request it has said it will reject.

Security caveats: with PAR the parameters (``state``, ``nonce``, the PKCE challenge,
``redirect_uri``) travel on the authenticated back channel, so they never appear in
the browser's history, the provider's access logs or a Referer, and cannot be altered
by whoever relays the URL.  Every failure of the push (unreachable, an error answer, a
malformed one) is a :class:`~sso_middleware.errors.ProviderError`: the failure page (502, or
503/504 for an unreachable or slow provider), never a redirect back into a sign-in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from ..errors import ParFailed, ParRequired, ParUnavailable, ProviderRefused
from . import client_auth

if TYPE_CHECKING:  # pragma: no cover
    from .._config.settings import SSOConfig
    from .discovery import ProviderMetadata
    from .http import ProviderHTTP

#: A ``request_uri`` the browser can carry: printable ASCII, bounded.
_REQUEST_URI_RE = re.compile(r"[\x21-\x7e]{1,2048}")


def authorization_redirect(
    config: SSOConfig, metadata: ProviderMetadata, http: ProviderHTTP, params: Mapping[str, str]
) -> str:
    """The URL that starts a sign-in: the parameters in its query, or pushed first (PAR)."""
    endpoint = metadata.pushed_authorization_request_endpoint
    mode = config.pushed_authorization
    if mode == "off" or (endpoint is None and mode == "auto"):
        if metadata.require_pushed_authorization_requests:
            why = "pushed_authorization is off" if mode == "off" else "it advertises no PAR endpoint"
            raise ParRequired("the provider requires pushed authorization requests "
                              f"(require_pushed_authorization_requests) but {why}")
        return add_query(metadata.authorization_endpoint, params)
    if endpoint is None:
        raise ParUnavailable("pushed_authorization is required but discovery advertises no "
                             "pushed_authorization_request_endpoint")
    request_uri = push(config, http, endpoint, params)
    return add_query(metadata.authorization_endpoint, {"client_id": config.client_id, "request_uri": request_uri})


#: PAR refusals caused by what the request asked for (RFC 9126 section 2.3 and RFC 6749 4.1.2.1); anything
#: else (``invalid_client``, an unregistered redirect URI, a 5xx) is the operator's: ``par_failed`` (502).
_REFUSED_REQUEST = frozenset({"invalid_request", "invalid_scope", "invalid_target", "access_denied"})


def push(config: SSOConfig, http: ProviderHTTP, endpoint: str, params: Mapping[str, str]) -> str:
    """POST the authorization parameters to the PAR endpoint (RFC 9126 section 2); the checked ``request_uri``."""
    fields, auth = client_auth.authenticate(config, endpoint)
    body = urlencode({**params, **fields})
    status, document = http.post_form(endpoint, "pushed authorization request", body, auth=auth)
    if not isinstance(document, dict):
        raise ParFailed(f"PAR endpoint: HTTP {status}, not a JSON object")
    if status >= 300 or "error" in document:
        error = re.sub(r"[^A-Za-z0-9_.-]", "", str(document.get("error", "")))[:64] or "none"
        if 400 <= status < 500 and error in _REFUSED_REQUEST:
            # The request itself was refused (an unknown organization in a link, a scope it may not
            # have): the same 4xx page as when /authorize refuses it, not a 502 and an operator warning.
            raise ProviderRefused.from_error(error, f"PAR endpoint refused the request: {error}")
        raise ParFailed(f"PAR endpoint refused the request: HTTP {status}, error {error}")
    request_uri, expires_in = document.get("request_uri"), document.get("expires_in")
    if not isinstance(request_uri, str) or not _REQUEST_URI_RE.fullmatch(request_uri):
        raise ParFailed("PAR response lacks a usable request_uri")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
        raise ParFailed("PAR response lacks a positive integer expires_in")
    return request_uri


def add_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to its query string."""
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode(params)
