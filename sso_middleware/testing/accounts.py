"""What the development provider knows: its users, its demo clients, its ACR levels, its TLS files.

These values must match ``sso_middleware/devprovider`` (the Node side keeps its own copy of
the users and demo clients). Everything here is a test fixture: the passwords and client
secrets are public, so never configure a real deployment with them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import DevProviderError

__all__ = [
    "ACR_MFA",
    "ACR_PWD",
    "ACR_UNMET_REASON",
    "DEFAULT_API",
    "DEFAULT_CLIENTS",
    "DEFAULT_RESOURCES",
    "DEFAULT_USERS",
    "DEV_OTP",
    "ROLES_CLAIM",
    "ClientCredentials",
    "DevUser",
    "ProviderTLS",
]



#: The provider's ACR values (discovery's ``acr_values_supported``; must match devprovider/accounts.mjs):
#: a password-only login, and a login with password and one-time code.
ACR_PWD = "urn:dev:loa:pwd"
ACR_MFA = "urn:dev:loa:mfa"
#: The one-time code every user of the provider has (``login(..., otp=DEV_OTP)``).
DEV_OTP = "123456"
#: The ``reasons`` entry of an ``interaction`` event when the session's acr is not among
#: the requested ``acr_values``.
ACR_UNMET_REASON = "acr_values_unmet"


@dataclass(frozen=True)
class ClientCredentials:
    """A client known to the provider: what a relying party needs to be configured with.

    ``metadata`` is the full client metadata the provider holds (including the secret);
    ``DevProvider`` uses it to re-create registered clients when it restarts.
    """

    client_id: str
    client_secret: str = field(repr=False)
    token_endpoint_auth_method: str = "client_secret_basic"
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def redirect_uri(self) -> str:
        """The first registered redirect URI."""
        if not self.redirect_uris:
            raise DevProviderError(f"client {self.client_id} has no redirect_uris")
        return self.redirect_uris[0]

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ClientCredentials:
        """Build credentials from oidc-provider client metadata (static or registered)."""
        return cls(
            client_id=str(metadata["client_id"]),
            client_secret=str(metadata.get("client_secret", "")),
            token_endpoint_auth_method=str(metadata.get("token_endpoint_auth_method", "client_secret_basic")),
            redirect_uris=tuple(metadata.get("redirect_uris", ())),
            post_logout_redirect_uris=tuple(metadata.get("post_logout_redirect_uris", ())),
            metadata=MappingProxyType(copy.deepcopy(dict(metadata))),
        )


@dataclass(frozen=True)
class ProviderTLS:
    """Serve the development provider over https (opt-in), optionally requiring client certificates.

    ``cert``/``key``: the server's PEM certificate and key (for 127.0.0.1 / localhost);
    ``ca``: the PEM CA that issued it, trusted by ``DevProvider``'s own requests;
    ``client_ca``: when set, every connection must present a client certificate issued by
    it (mutual TLS) -- then ``client_cert``/``client_key`` is what ``DevProvider`` itself presents.
    """

    cert: Path
    key: Path
    ca: Path
    client_ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


@dataclass(frozen=True)
class DevUser:
    """A user the development provider knows, and the claims it issues for them.

    ``claims`` are the claims of the ID token and of userinfo when the scopes
    ``openid profile email`` are granted (``sub`` is the username). The ID token also
    carries ``connection`` when the authorization request had one.
    """

    username: str
    password: str = field(repr=False)
    claims: Mapping[str, Any]

    @property
    def sub(self) -> str:
        """The subject identifier (equal to the username)."""
        return self.username


#: The namespaced roles claim of the development provider's users (like an Auth0 Action adds).
ROLES_CLAIM = "https://example.com/roles"


def _user(username: str, given_name: str, roles: tuple[str, ...]) -> DevUser:
    return DevUser(
        username=username,
        password=f"{username}-password",
        claims=MappingProxyType(
            {
                "sub": username,
                "name": f"{given_name} Example",
                "given_name": given_name,
                "family_name": "Example",
                "nickname": username,
                "preferred_username": username,
                "email": f"{username}@example.com",
                "email_verified": True,
                ROLES_CLAIM: list(roles),
            }
        ),
    )


#: The users of the development provider (must match USERS in devprovider/accounts.mjs).
DEFAULT_USERS: Mapping[str, DevUser] = MappingProxyType(
    {"alice": _user("alice", "Alice", ("admin", "staff")), "bob": _user("bob", "Bob", ("staff",))}
)


def _demo_client(n: int, auth_method: str) -> ClientCredentials:
    origin = f"http://127.0.0.1:500{n}"
    return ClientCredentials.from_metadata(
        {
            "client_id": f"app{n}",
            "client_secret": f"app{n}-secret",
            "client_name": f"App {n}",
            "token_endpoint_auth_method": auth_method,
            "redirect_uris": [f"{origin}/auth/callback"],
            "post_logout_redirect_uris": [f"{origin}/"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "require_auth_time": True,
        }
    )


#: The demo clients the provider has unless ``DevProvider(clients=...)`` replaces them
#: (must match DEFAULT_CLIENTS in devprovider/clients.mjs).
DEFAULT_CLIENTS: Mapping[str, ClientCredentials] = MappingProxyType(
    {"app1": _demo_client(1, "client_secret_basic"), "app2": _demo_client(2, "client_secret_post")}
)


#: The identifier of the provider's default API (an Auth0 "API identifier"): ``audience=`` this
#: in an authorization request gets a JWT access token whose ``aud`` is it.
DEFAULT_API = "https://app2.example/api"

#: The APIs the provider issues access tokens for unless ``DevProvider(resources=...)`` replaces
#: them (must match DEFAULT_RESOURCES in devprovider/resources.mjs): identifier -> ``scopes``
#: (the scopes it defines), optional ``format`` (``"jwt"``, the default, or ``"opaque"``) and
#: ``ttl`` (access token lifetime in seconds).
DEFAULT_RESOURCES: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {DEFAULT_API: MappingProxyType({"scopes": ("read:messages", "write:messages", "read:admin")})}
)
