"""``FakeProvider``: a scriptable in-memory OpenID Provider behind a fake ``requests`` transport.

Use it to test an application behind ``SSOMiddleware`` without Node.js or a network: pass
``http_transport=provider.transport()`` to the middleware and every request it makes to
the provider is answered here. Only the transport is fake: the middleware's real
``requests`` code sends real request objects, which :class:`~.transport.FakeProviderAdapter` answers
the way a provider would. Tokens are real JWTs signed with real RSA keys
(:meth:`FakeProvider.make_id_token`), codes are bound to their PKCE challenge, redirect
URI and client, and every call is recorded in ``provider.calls`` so tests can assert on
what went over the wire (:meth:`FakeProvider.requests_to`).

There is no browser and no login page: a test takes the middleware's redirect to the
provider and calls :meth:`FakeProvider.authorize` with its ``Location``, which approves the
request for a user and returns the callback URL the browser would be sent back to.

Tests script faults and forgeries by changing attributes: ``id_token_overrides``
(claims), ``id_token_header`` / ``id_token_key`` (signature), ``token_response``
(replace the token endpoint's JSON), ``userinfo`` (replace the userinfo JSON),
``fail`` (URL suffix -> exception or status), ``expires_in`` (the access tokens'
lifetime in every token response; None leaves it out), ``clock`` (the time the
provider stamps into its ID tokens; share one :class:`~.clock.Clock` with the middleware
when both must move).

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

Revocation (RFC 7009, :mod:`.fake_revocation`): with ``revocation`` the provider serves
``/oauth/revoke``; ``revocations`` records each request, a revoked refresh token fails
its next refresh.

Security caveat: it is a test double. It knows one client, keeps everything in memory,
signs with keys shared by the whole process (:mod:`.keys`), and every code and token it
hands out is also kept in :data:`ISSUED_SECRETS` (so a suite can check its logs never
hold one); never put it in front of real users.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from .fake_client_auth import authenticated_client
from .fake_refresh import RefreshTokens
from .fake_revocation import RevocationEndpoint
from .grants import ISSUED_SECRETS, Grant, RefreshGrant, issued
from .keys import at_hash, public_jwk, rsa_key, s256
from .transport import FakeProviderAdapter

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "ISSUED_SECRETS",
    "ISSUER",
    "FakeProvider",
    "Fault",
    "Grant",
    "RefreshGrant",
]

#: The defaults of :class:`FakeProvider`: configure the middleware with these (or the provider's attributes).
ISSUER = "https://op.example/"
CLIENT_ID = "app2-client"
CLIENT_SECRET = "app2-secret-value"

#: What ``FakeProvider.fail`` maps a URL suffix to: an exception to raise (as the transport would),
#: an HTTP status to answer, or a function answering the request itself.
Fault = Union[Exception, int, Callable[[requests.PreparedRequest], requests.Response]]


@dataclass
class FakeProvider(RefreshTokens, RevocationEndpoint):
    """An in-memory provider for one confidential client; see the module docstring.

    Configure the middleware with ``issuer``, ``client_id`` and ``client_secret`` (the
    defaults :data:`ISSUER`, :data:`CLIENT_ID`, :data:`CLIENT_SECRET`) and
    ``http_transport=provider.transport()``. ``users`` maps each username (its ``sub``)
    to the claims of its ID token and userinfo. Every field may be changed between
    requests to script the provider's next answers.
    """

    issuer: str = ISSUER
    client_id: str = CLIENT_ID
    client_secret: str = field(default=CLIENT_SECRET, repr=False)
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
    #: sign each ID token in authorize() rather than at the token endpoint (a benchmark of the
    #: callback then does not time the provider's RSA signing); later overrides do not reach it
    sign_at_authorize: bool = False
    # -- refreshed answers (the refresh tokens themselves: RefreshTokens) --
    refresh_id_token: bool = False
    refresh_id_token_overrides: dict[str, Any] = field(default_factory=dict)
    refresh_changes: dict[str, Any] = field(default_factory=dict)
    refresh_delay: float = 0.0
    on_refresh: Optional[Callable[[], None]] = None
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
        """The RSA key that signs ID tokens (unless ``id_token_key`` replaces it)."""
        return rsa_key()

    def __repr__(self) -> str:  # the fields hold codes and tokens: a repr shows none of them
        return f"<FakeProvider issuer={self.issuer!r} client_id={self.client_id!r}>"

    def transport(self) -> FakeProviderAdapter:
        """A ``requests`` transport answered by this provider: ``SSOMiddleware(..., http_transport=...)``."""
        return FakeProviderAdapter(self)

    def discovery(self) -> dict[str, Any]:
        """The discovery document (``discovery_overrides`` applied; a None value removes a member)."""
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
        if self.revocation:
            document["revocation_endpoint"] = base + "/oauth/revoke"
        document.update(self.discovery_overrides)
        return {key: value for key, value in document.items() if value is not None}

    def jwks(self) -> dict[str, Any]:
        """The JWKS (``jwks_keys`` when set, else the public key of :attr:`key` as ``kid``)."""
        keys = self.jwks_keys if self.jwks_keys is not None else [public_jwk(self.key, self.kid)]
        return {"keys": keys}

    # -- what a test does in place of the browser at the provider -----------

    def authorize(
        self,
        authorize_url: str,
        user: str = "alice",
        *,
        claims: Optional[dict[str, Any]] = None,
        **response: Optional[str],
    ) -> str:
        """Approve an authorization request for ``user``; returns the callback URL the browser goes to next.

        ``authorize_url`` is where the middleware sent the browser (its ``Location``).
        ``claims`` replace ID token claims of this sign-in only (e.g. another ``sid``).
        Other keyword arguments override (or with None, remove) response parameters,
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
                claims=dict(claims or {}),
            )
            if self.sign_at_authorize:
                grant.id_token = self.make_id_token(sub=user, nonce=grant.nonce, **grant.claims)
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
        """Answer one request: (status, JSON payload), or (0, a ready ``requests.Response``) from ``fail``."""
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
        if route == "/oauth/revoke" and self.revocation:  # RFC 7009: fake_revocation
            body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
            form = {key: values[0] for key, values in parse_qs(body).items()}
            with self._refresh_lock:
                return self._revoke(self._authenticate(request, form), form, self.refresh_tokens, self._access_tokens)
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
        id_token = grant.id_token or self.make_id_token(sub=grant.sub, nonce=grant.nonce, **grant.claims)
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
        return authenticated_client(request, form, self.client_id, self.client_secret, self.issuer,
                                    self.assertion_key, self.assertions)

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

    def _refresh(self, client_id: str, form: dict[str, str]) -> tuple[int, Any]:
        if self.refresh_delay:
            time.sleep(self.refresh_delay)
        grant = self._redeem_refresh_token(client_id, form.get("refresh_token", ""))
        if isinstance(grant, str):
            return 400, {"error": "invalid_grant", "error_description": grant}
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
        super().__post_init__()
        self._access_tokens: dict[str, str] = {}

    def requests_to(self, suffix: str) -> list[requests.PreparedRequest]:
        """The requests received so far whose URL path ends with ``suffix``, oldest first."""
        return [call for call in self.calls if urlsplit(str(call.url)).path.endswith(suffix)]
