"""An in-memory OpenID Provider behind a ``requests`` transport, for timing the callback handler alone.

Only the transport is fake: the middleware sends real ``requests`` objects and gets
real answers -- discovery, a JWKS with a real RSA key, a token endpoint that checks
the client's Basic credentials, the code, the redirect URI and the PKCE verifier, and
a userinfo endpoint.  The ID token (RS256, with the nonce) is signed when the
browser is "sent back" (:meth:`FakeOP.authorize`), so the provider's own RSA signing
is not part of the callback being timed.  Requests are counted per endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from requests.adapters import BaseAdapter
from urllib3.response import HTTPResponse

ISSUER = "https://op.example/"
BASE_URL = "https://app.example"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-client-secret-0123456789abcdef"
CLAIMS = {
    "name": "Alice Example",
    "given_name": "Alice",
    "family_name": "Example",
    "nickname": "alice",
    "preferred_username": "alice",
    "email": "alice@example.com",
    "email_verified": True,
}


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class _Grant:
    redirect_uri: str
    code_challenge: str
    id_token: str
    access_token: str


class FakeOP:
    """Provider state; ``counts`` holds how often each endpoint was called."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "bench-" + secrets.token_hex(4)
        self.grants: dict[str, _Grant] = {}
        self.tokens: dict[str, str] = {}
        self.counts: Counter[str] = Counter()

    def discovery(self) -> dict[str, Any]:
        base = ISSUER.rstrip("/")
        return {
            "issuer": ISSUER,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/oauth/token",
            "jwks_uri": base + "/.well-known/jwks.json",
            "userinfo_endpoint": base + "/userinfo",
            "end_session_endpoint": base + "/oidc/logout",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "authorization_response_iss_parameter_supported": True,
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def authorize(self, authorize_url: str, sub: str = "alice") -> str:
        """Approve an authorization request: the callback URL the browser is sent to."""
        query = {key: values[0] for key, values in parse_qs(urlsplit(authorize_url).query).items()}
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": sub, "aud": query["client_id"], "exp": now + 600, "iat": now,
                  "auth_time": now, "sid": "op-session-" + secrets.token_hex(4), "nonce": query["nonce"], **CLAIMS}
        code = secrets.token_urlsafe(24)
        access_token = secrets.token_urlsafe(24)
        self.grants[code] = _Grant(query["redirect_uri"], query["code_challenge"],
                                   jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid}),
                                   access_token)
        self.tokens[access_token] = sub
        return query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"], "iss": ISSUER})

    def handle(self, request: requests.PreparedRequest) -> tuple[int, Any]:
        path = urlsplit(str(request.url)).path
        self.counts[path] += 1
        if path == "/.well-known/openid-configuration":
            return 200, self.discovery()
        if path == "/.well-known/jwks.json":
            return 200, self.jwks()
        if path == "/oauth/token":
            return self._token(request)
        if path == "/userinfo":
            auth = request.headers.get("Authorization", "")
            sub = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
            return (200, {"sub": sub, **CLAIMS}) if sub else (401, {"error": "invalid_token"})
        return 404, {"error": "not_found"}

    def _token(self, request: requests.PreparedRequest) -> tuple[int, Any]:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        form = {key: values[0] for key, values in parse_qs(body).items()}
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return 401, {"error": "invalid_client"}
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        if _s256(form.get("code_verifier", "")) != grant.code_challenge:
            return 400, {"error": "invalid_grant"}
        return 200, {"access_token": grant.access_token, "token_type": "Bearer", "expires_in": 3600,
                     "id_token": grant.id_token, "scope": "openid profile email"}

    @property
    def discovery_fetches(self) -> int:
        return self.counts["/.well-known/openid-configuration"]

    @property
    def jwks_fetches(self) -> int:
        return self.counts["/.well-known/jwks.json"]


class FakeOPAdapter(BaseAdapter):  # type: ignore[misc]
    """A ``requests`` transport answered by a :class:`FakeOP`."""

    def __init__(self, provider: FakeOP) -> None:
        super().__init__()
        self.provider = provider

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        status, payload = self.provider.handle(request)
        body = json.dumps(payload).encode()
        response = requests.Response()
        response.status_code = status
        response.raw = HTTPResponse(body=io.BytesIO(body), status=status, preload_content=False,
                                    headers={"Content-Type": "application/json"})
        response.headers["Content-Type"] = "application/json"
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass
