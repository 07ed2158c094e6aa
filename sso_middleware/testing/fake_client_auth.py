"""Client authentication at :class:`~.fake_provider.FakeProvider`'s token and PAR endpoints.

``client_secret_basic``, ``client_secret_post`` and a JWT client assertion
(``private_key_jwt`` / ``client_secret_jwt``, RFC 7523) for the provider's one client.

Security caveat: a test double's check; the secret comparison is not constant-time.
"""

from __future__ import annotations

import base64
from typing import Any, Optional

import jwt
import requests


def authenticated_client(request: requests.PreparedRequest, form: dict[str, str], client_id: str,
                         client_secret: str, issuer: str, assertion_key: Any,
                         assertions: list[tuple[dict[str, Any], dict[str, Any]]]) -> Optional[str]:
    """The authenticated client id, or None; an accepted assertion's claims and header go to ``assertions``."""
    auth = request.headers.get("Authorization", "")
    if "client_assertion" in form:
        if assertion_key is None or auth or "client_secret" in form:
            return None
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return None
        try:
            claims = jwt.decode(form["client_assertion"], assertion_key,
                                algorithms=["RS256", "PS256", "ES256", "HS256"], audience=issuer,
                                issuer=client_id, options={"require": ["exp", "iat", "jti", "sub"]})
        except jwt.PyJWTError:
            return None
        if claims["sub"] != client_id or form.get("client_id", client_id) != client_id:
            return None
        assertions.append((claims, jwt.get_unverified_header(form["client_assertion"])))
        return client_id
    if auth.startswith("Basic "):
        sent_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
    else:
        sent_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    return sent_id if (sent_id, secret) == (client_id, client_secret) else None
