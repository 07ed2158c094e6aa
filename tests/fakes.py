"""A scriptable in-memory OpenID Provider behind a fake ``requests`` transport.

Only the transport is fake: the middleware's real ``requests`` session sends
real requests objects, which :class:`FakeProviderAdapter` answers the way a
provider would.  Tokens are real JWTs signed with real RSA keys
(:meth:`FakeProvider.make_id_token`), codes are bound to their PKCE challenge,
redirect URI and client, and every call is recorded in ``provider.calls`` so
tests can assert on what went over the wire.

Tests script faults and forgeries by changing attributes: ``id_token_overrides``
(claims), ``id_token_header`` / ``id_token_key`` (signature), ``token_response``
(replace the token endpoint's JSON), ``userinfo`` (replace the userinfo JSON),
``fail`` (URL suffix -> exception or status), ``expires_in`` (the access tokens'
lifetime in every token response; None leaves it out), ``clock`` (the time the
provider stamps into its ID tokens; tests that move the middleware's clock move
this one too).

Refresh tokens (RFC 6749 section 6): an authorization request whose ``scope``
holds ``offline_access`` gets one with its code.  ``grant_type=refresh_token``
(with the same client authentication as the code exchange) answers a fresh
access token; with ``rotate_refresh_tokens`` (the default) every refresh also
consumes the refresh token and issues the next one, and a consumed one sent again
is ``invalid_grant`` (with ``reuse_revokes_family``, it also revokes every token
of that sign-in, as Auth0 does).  ``refresh_id_token`` adds an ID token per Core
1.0 section 12.2 (same ``iss``/``sub``/``aud``/``auth_time``/``sid``, no nonce,
``at_hash`` of the new access token); ``refresh_id_token_overrides`` forges its
claims, ``refresh_changes`` the refresh response's members (None removes one).
``refreshes`` counts the refreshes granted, ``refresh_requests`` every refresh
request; ``revoke()`` revokes a refresh token; ``refresh_delay`` (seconds) and
``on_refresh`` (called while the request is in flight) make room for races.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from requests.adapters import BaseAdapter

ISSUER = "https://op.example/"
CLIENT_ID = "app2-client"
CLIENT_SECRET = "app2-secret-value"
BASE_URL = "https://app2.example"

_KEYS: dict[str, rsa.RSAPrivateKey] = {}

#: Every authorization code and access token the fake provider handed out (the log check looks for them).
ISSUED_SECRETS: set[str] = set()


def issued(secret: str) -> str:
    ISSUED_SECRETS.add(secret)
    return secret


def rsa_key(name: str = "default") -> rsa.RSAPrivateKey:
    """A real RSA key, generated once per test session per name."""
    if name not in _KEYS:
        _KEYS[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEYS[name]


def public_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    jwk.update(extra)
    return jwk


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: Optional[str]
    sub: str
    params: dict[str, str]


@dataclass
class RefreshGrant:
    """What a refresh token stands for: the sign-in it came from."""

    client_id: str
    sub: str
    scope: str
    auth_time: Optional[int]
    sid: Optional[str]
    family: str  # every refresh token rotated from one sign-in shares it


def at_hash(access_token: str) -> str:
    """The ``at_hash`` of an access token for an RS256 ID token."""
    digest = hashlib.sha256(access_token.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


Fault = Union[Exception, int, Callable[[requests.PreparedRequest], requests.Response]]


@dataclass
class FakeProvider:
    """The provider's state and behaviour; see the module docstring."""

    issuer: str = ISSUER
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    kid: str = "key-1"
    users: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "alice": {"sub": "alice", "name": "Alice Example", "email": "alice@example.com"},
            "bob": {"sub": "bob", "name": "Bob Example", "email": "bob@example.com"},
        }
    )
    discovery_overrides: dict[str, Any] = field(default_factory=dict)
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    id_token_header: dict[str, Any] = field(default_factory=dict)
    id_token_key: Any = None
    id_token_alg: str = "RS256"
    token_response: Optional[dict[str, Any]] = None
    userinfo: Optional[dict[str, Any]] = None
    end_session: bool = True
    fail: dict[str, Fault] = field(default_factory=dict)
    calls: list[requests.PreparedRequest] = field(default_factory=list)
    grants: dict[str, Grant] = field(default_factory=dict)
    last_grant: Optional[Grant] = None
    jwks_keys: Optional[list[dict[str, Any]]] = None
    clock: Callable[[], float] = field(default=time.time)
    expires_in: Any = 3600
    # -- refresh tokens (see the module docstring) --
    rotate_refresh_tokens: bool = True
    reuse_revokes_family: bool = False
    refresh_id_token: bool = False
    refresh_id_token_overrides: dict[str, Any] = field(default_factory=dict)
    refresh_changes: dict[str, Any] = field(default_factory=dict)
    refresh_delay: float = 0.0
    on_refresh: Optional[Callable[[], None]] = None
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    consumed_refresh_tokens: set[str] = field(default_factory=set)
    refreshes: int = 0
    refresh_requests: int = 0
    # -- client assertions (RFC 7523) and pushed authorization requests (RFC 9126) --
    #: the key that verifies client assertions (a public key, or the secret bytes for HS256); None: refused
    assertion_key: Any = None
    #: the claims and header of every client assertion verified, in order
    assertions: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    #: advertise and serve ``/oauth/par``; ``pushed`` maps each request_uri handed out to its parameters
    par: bool = False
    par_response: Optional[dict[str, Any]] = None
    pushed: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def key(self) -> rsa.RSAPrivateKey:
        return rsa_key()

    def discovery(self) -> dict[str, Any]:
        base = self.issuer.rstrip("/")
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/oauth/token",
            "jwks_uri": base + "/.well-known/jwks.json",
            "userinfo_endpoint": base + "/userinfo",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "authorization_response_iss_parameter_supported": True,
        }
        if self.end_session:
            document["end_session_endpoint"] = base + "/oidc/logout"
        if self.par:
            document["pushed_authorization_request_endpoint"] = base + "/oauth/par"
        document.update(self.discovery_overrides)
        return {key: value for key, value in document.items() if value is not None}

    def jwks(self) -> dict[str, Any]:
        keys = self.jwks_keys if self.jwks_keys is not None else [public_jwk(self.key, self.kid)]
        return {"keys": keys}

    # -- what a test does in place of the browser at the provider -----------

    def authorize(self, authorize_url: str, user: str = "alice", **response: Optional[str]) -> str:
        """Approve an authorization request; returns the callback URL the browser goes to next.

        Keyword arguments override (or with None, remove) response parameters,
        e.g. ``error="login_required"`` or ``iss=None``.
        """
        query = {key: values[0] for key, values in parse_qs(urlsplit(authorize_url).query).items()}
        assert authorize_url.startswith(self.discovery()["authorization_endpoint"] + "?")
        if "request_uri" in query:  # RFC 9126 section 4: the pushed parameters, for the same client, once
            pushed = self.pushed.pop(query["request_uri"])
            assert pushed["client_id"] == query["client_id"]
            query = pushed
        params: dict[str, Optional[str]] = {"state": query.get("state"), "iss": self.issuer}
        if "error" not in response:
            code = issued(secrets.token_urlsafe(16))
            grant = Grant(
                client_id=query["client_id"],
                redirect_uri=query["redirect_uri"],
                code_challenge=query["code_challenge"],
                nonce=query.get("nonce"),
                sub=user,
                params=query,
            )
            self.grants[code] = grant
            self.last_grant = grant
            params["code"] = code
        params.update(response)
        clean = {key: value for key, value in params.items() if value is not None}
        return query["redirect_uri"] + "?" + urlencode(clean)

    def make_id_token(self, sub: str = "alice", nonce: Optional[str] = None, **overrides: Any) -> str:
        """A real signed ID token; ``overrides`` replace claims (None removes one)."""
        claims = self.id_token_claims(sub, nonce, **overrides)
        header = {"kid": self.kid}
        header.update(self.id_token_header)
        header = {key: value for key, value in header.items() if value is not None}
        key = self.id_token_key if self.id_token_key is not None else self.key
        return jwt.encode(claims, key, algorithm=self.id_token_alg, headers=header)

    def id_token_claims(self, sub: str = "alice", nonce: Optional[str] = None, **overrides: Any) -> dict[str, Any]:
        """The claims :meth:`make_id_token` signs (for tests that sign or forge tokens themselves)."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": self.client_id,
            "exp": now + 300,
            "iat": now,
            "auth_time": now,
            "sid": "provider-session-1",
        }
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(self.users.get(sub, {}))
        claims.update(self.id_token_overrides)
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    # -- the endpoints -------------------------------------------------------

    def handle(self, request: requests.PreparedRequest) -> tuple[int, Any]:
        url = str(request.url)
        for suffix, fault in self.fail.items():
            if urlsplit(url).path.endswith(suffix):
                if isinstance(fault, Exception):
                    raise fault
                if isinstance(fault, int):
                    return fault, {"error": "server_error"}
                return 0, fault(request)
        path = urlsplit(url).path
        base_path = urlsplit(self.issuer).path.rstrip("/")
        route = path[len(base_path):]
        if route == "/.well-known/openid-configuration":
            return 200, self.discovery()
        if route == "/.well-known/jwks.json":
            return 200, self.jwks()
        if route == "/oauth/token":
            return self._token(request)
        if route == "/oauth/par" and self.par:
            return self._par(request)
        if route == "/userinfo":
            return self._userinfo(request)
        return 404, {"error": "not_found"}

    def _token(self, request: requests.PreparedRequest) -> tuple[int, Any]:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        form = {key: values[0] for key, values in parse_qs(body).items()}
        client_id = self._authenticate(request, form)
        if client_id is None:
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") == "refresh_token":
            return self._refresh(client_id, form)
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or grant.client_id != client_id or grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        if s256(form.get("code_verifier", "")) != grant.code_challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        if self.token_response is not None:
            return 200, self.token_response
        access_token = issued("at-" + secrets.token_urlsafe(16))
        self._access_tokens[access_token] = grant.sub
        id_token = self.make_id_token(sub=grant.sub, nonce=grant.nonce)
        answer: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "id_token": id_token,
            "scope": grant.params.get("scope", ""),
        }
        if self.expires_in is None:
            del answer["expires_in"]
        if "offline_access" in grant.params.get("scope", "").split():
            claims = jwt.decode(id_token, options={"verify_signature": False})
            refresh = RefreshGrant(client_id=client_id, sub=grant.sub, scope=grant.params.get("scope", ""),
                                   auth_time=claims.get("auth_time"), sid=claims.get("sid"),
                                   family=secrets.token_hex(8))
            answer["refresh_token"] = self._new_refresh_token(refresh)
        return 200, answer

    def _authenticate(self, request: requests.PreparedRequest, form: dict[str, str]) -> Optional[str]:
        """The authenticated client id (secret basic/post, or a client assertion), or None."""
        auth = request.headers.get("Authorization", "")
        if "client_assertion" in form:
            if self.assertion_key is None or auth or "client_secret" in form:
                return None
            if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                return None
            try:
                claims = jwt.decode(form["client_assertion"], self.assertion_key,
                                    algorithms=["RS256", "PS256", "ES256", "HS256"], audience=self.issuer,
                                    issuer=self.client_id, options={"require": ["exp", "iat", "jti", "sub"]})
            except jwt.PyJWTError:
                return None
            if claims["sub"] != self.client_id or form.get("client_id", self.client_id) != self.client_id:
                return None
            self.assertions.append((claims, jwt.get_unverified_header(form["client_assertion"])))
            return self.client_id
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id if (client_id, secret) == (self.client_id, self.client_secret) else None

    def _par(self, request: requests.PreparedRequest) -> tuple[int, Any]:
        """RFC 9126 section 2: authenticate the client, keep the parameters, answer a request_uri."""
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        form = {key: values[0] for key, values in parse_qs(body).items()}
        if self._authenticate(request, form) is None:
            return 401, {"error": "invalid_client"}
        if self.par_response is not None:
            return 201, self.par_response
        params = {key: value for key, value in form.items()
                  if key not in ("client_secret", "client_assertion", "client_assertion_type")}
        params["client_id"] = self.client_id
        request_uri = "urn:ietf:params:oauth:request_uri:" + secrets.token_urlsafe(16)
        self.pushed[request_uri] = params
        return 201, {"request_uri": request_uri, "expires_in": 60}

    # -- refresh tokens ----------------------------------------------------------

    def _new_refresh_token(self, grant: RefreshGrant) -> str:
        token = issued("rt-" + secrets.token_urlsafe(24))
        with self._refresh_lock:
            self.refresh_tokens[token] = grant
        return token

    def revoke(self, refresh_token: Optional[str] = None, sub: Optional[str] = None) -> int:
        """Revoke one refresh token, or every one of ``sub`` (or, with neither, all); how many."""
        with self._refresh_lock:
            doomed = [token for token, grant in self.refresh_tokens.items()
                      if token == refresh_token or (refresh_token is None and sub in (None, grant.sub))]
            for token in doomed:
                del self.refresh_tokens[token]
        return len(doomed)

    def live_refresh_tokens(self, sub: Optional[str] = None) -> list[str]:
        with self._refresh_lock:
            return [token for token, grant in self.refresh_tokens.items() if sub in (None, grant.sub)]

    def _refresh(self, client_id: str, form: dict[str, str]) -> tuple[int, Any]:
        if self.refresh_delay:
            time.sleep(self.refresh_delay)
        token = form.get("refresh_token", "")
        with self._refresh_lock:
            self.refresh_requests += 1
            grant = self.refresh_tokens.get(token)
            if grant is None:
                if token in self.consumed_refresh_tokens and self.reuse_revokes_family:
                    family = self._families.get(token)
                    for other in [name for name, live in self.refresh_tokens.items() if live.family == family]:
                        del self.refresh_tokens[other]
                return 400, {"error": "invalid_grant", "error_description": "unknown, revoked or used refresh token"}
            if grant.client_id != client_id:
                return 400, {"error": "invalid_grant", "error_description": "issued to another client"}
            if self.rotate_refresh_tokens:
                del self.refresh_tokens[token]
                self.consumed_refresh_tokens.add(token)
                self._families[token] = grant.family
            self.refreshes += 1
        if self.on_refresh is not None:
            self.on_refresh()
        access_token = issued("at-" + secrets.token_urlsafe(16))
        self._access_tokens[access_token] = grant.sub
        answer: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer",
                                  "expires_in": self.expires_in, "scope": grant.scope}
        if self.rotate_refresh_tokens:
            answer["refresh_token"] = self._new_refresh_token(grant)
        if self.refresh_id_token:
            overrides: dict[str, Any] = {"auth_time": grant.auth_time, "sid": grant.sid,
                                         "at_hash": at_hash(access_token)}
            overrides.update(self.refresh_id_token_overrides)
            sub = overrides.pop("sub", grant.sub)
            answer["id_token"] = self.make_id_token(sub=sub, **overrides)
        answer.update(self.refresh_changes)
        return 200, {key: value for key, value in answer.items() if value is not None}

    def _userinfo(self, request: requests.PreparedRequest) -> tuple[int, Any]:
        auth = request.headers.get("Authorization", "")
        sub = self._access_tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if sub is None:
            return 401, {"error": "invalid_token"}
        if self.userinfo is not None:
            return 200, self.userinfo
        return 200, dict(self.users[sub], email_verified=True)

    def __post_init__(self) -> None:
        self._access_tokens: dict[str, str] = {}
        self._refresh_lock = threading.Lock()
        self._families: dict[str, str] = {}  # consumed refresh token -> its family

    def requests_to(self, suffix: str) -> list[requests.PreparedRequest]:
        return [call for call in self.calls if urlsplit(str(call.url)).path.endswith(suffix)]


class FakeProviderAdapter(BaseAdapter):
    """A ``requests`` transport that answers from a :class:`FakeProvider`."""

    def __init__(self, provider: FakeProvider) -> None:
        super().__init__()
        self.provider = provider

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.provider.calls.append(request)
        status, payload = self.provider.handle(request)
        if isinstance(payload, requests.Response):
            return payload
        return make_response(request, status, json.dumps(payload).encode())

    def close(self) -> None:
        pass


def make_response(request: requests.PreparedRequest, status: int, body: bytes,
                  content_type: str = "application/json") -> requests.Response:
    """A ``requests.Response`` with a readable ``raw`` body, as a real transport gives."""
    import io

    from urllib3.response import HTTPResponse

    response = requests.Response()
    response.status_code = status
    response.raw = HTTPResponse(body=io.BytesIO(body), status=status, preload_content=False,
                                headers={"Content-Type": content_type})
    response.headers["Content-Type"] = content_type
    response.url = str(request.url)
    response.request = request
    return response
