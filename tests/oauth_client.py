"""A tiny OAuth client for integration tests: the authorization-code flow with PKCE against the DevProvider.

What a single-page app (a public client) or a back end (a confidential one) does to get
tokens, driven like a browser through the provider's login page
(:meth:`~sso_middleware.testing.DevProvider.login`), so tests get real access tokens --
for an API with ``audience=`` -- without a middleware in between.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from sso_middleware.testing import ClientCredentials, DevProvider


def code_flow_tokens(
    provider: DevProvider,
    client: ClientCredentials,
    user: str = "alice",
    *,
    scope: str = "openid profile",
    audience: Optional[str] = None,
    browser: Optional[requests.Session] = None,
) -> dict[str, Any]:
    """The token response of an authorization-code flow (PKCE S256) for ``user``, asking for ``audience``.

    The client authenticates as registered: ``none`` (public: its ``client_id`` only),
    ``client_secret_basic`` or ``client_secret_post``.
    """
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
             "scope": scope, "state": secrets.token_urlsafe(16), "code_challenge": challenge,
             "code_challenge_method": "S256"}
    if "openid" in scope.split():
        query["nonce"] = secrets.token_urlsafe(16)
    if audience is not None:
        query["audience"] = audience
    response = provider.login(browser or requests.Session(), user, provider.endpoint("authorization") + "?"
                              + urlencode(query))
    assert response.status_code == 303, (response.status_code, response.text[:300])
    params = parse_qs(urlsplit(response.headers["Location"]).query)
    assert "code" in params, params
    data = {"grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": client.redirect_uri,
            "code_verifier": verifier, "client_id": client.client_id}
    auth: Optional[tuple[str, str]] = None
    if client.token_endpoint_auth_method == "client_secret_basic":
        auth = (client.client_id, client.client_secret)
    elif client.token_endpoint_auth_method == "client_secret_post":
        data["client_secret"] = client.client_secret
    answer = requests.post(provider.endpoint("token"), data=data, auth=auth, timeout=10)
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens
