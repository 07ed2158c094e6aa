"""The development provider's admin side: its clients, dynamic registration, its event log.

:class:`ProviderAdmin` is the part of :class:`~.devprovider.DevProvider` that talks to the
running provider as its operator: it registers clients (RFC 7591, with the initial access
token only this process knows) and reads or clears the ``/_dev/events`` log, through
``DevProvider``'s own HTTP session (the one that trusts its TLS and goes through its proxy).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import requests

from .accounts import ClientCredentials
from .errors import DevProviderError

__all__ = ["ProviderAdmin"]

# metadata returned by registration that is not client metadata
_REGISTRATION_ONLY = (
    "registration_access_token",
    "registration_client_uri",
    "client_id_issued_at",
    "client_secret_expires_at",
)


class ProviderAdmin:
    """Clients and events of a running provider (``DevProvider`` sets the attributes below)."""

    clients: dict[str, ClientCredentials]
    registered_clients: list[ClientCredentials]
    registration_token: str
    _http: requests.Session
    _lock: threading.RLock

    @property
    def base_url(self) -> str:
        """The provider's origin."""
        raise NotImplementedError

    def endpoint(self, name: str) -> str:
        """A discovery endpoint by name."""
        raise NotImplementedError

    def client(self, name: str) -> ClientCredentials:
        """A static or registered client by name/client_id."""
        if name in self.clients:
            return self.clients[name]
        for registered in self.registered_clients:
            if registered.client_id == name:
                return registered
        raise KeyError(name)

    def register_client(
        self,
        redirect_uris: Sequence[str],
        post_logout_redirect_uris: Sequence[str] = (),
        token_endpoint_auth_method: str = "client_secret_basic",  # noqa: S107 - not a password
        backchannel_logout_uri: str | None = None,
        *,
        backchannel_logout_session_required: bool = True,
        frontchannel_logout_uri: str | None = None,
        frontchannel_logout_session_required: bool = True,
        grant_types: Sequence[str] = ("authorization_code", "refresh_token"),
        client_name: str | None = None,
        **metadata: Any,
    ) -> ClientCredentials:
        """Register a confidential first-party client (RFC 7591) and return its credentials.

        Extra keyword arguments are sent as further client metadata. The client survives
        ``rotate_keys()`` with the same id and secret. ``frontchannel_logout_uri`` (on the origin
        of a redirect URI) has the provider's logout page frame it, with ``iss`` and ``sid`` unless
        ``frontchannel_logout_session_required`` is False (Front-Channel Logout 1.0).
        """
        body: dict[str, Any] = {
            "redirect_uris": list(redirect_uris),
            "post_logout_redirect_uris": list(post_logout_redirect_uris),
            "token_endpoint_auth_method": token_endpoint_auth_method,
            "grant_types": list(grant_types),
            "response_types": ["code"],
            **metadata,
        }
        if client_name is not None:
            body["client_name"] = client_name
        if backchannel_logout_uri is not None:
            body["backchannel_logout_uri"] = backchannel_logout_uri
            body["backchannel_logout_session_required"] = backchannel_logout_session_required
        if frontchannel_logout_uri is not None:
            body["frontchannel_logout_uri"] = frontchannel_logout_uri
            body["frontchannel_logout_session_required"] = frontchannel_logout_session_required
        response = self._http.post(
            self.endpoint("registration"),
            json=body,
            headers={"Authorization": f"Bearer {self.registration_token}"},
            timeout=10,
        )
        if response.status_code != 201:
            raise DevProviderError(f"client registration failed: HTTP {response.status_code} {response.text[:500]}")
        registered = {k: v for k, v in response.json().items() if k not in _REGISTRATION_ONLY}
        credentials = ClientCredentials.from_metadata(registered)
        with self._lock:
            self.registered_clients.append(credentials)
        return credentials

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The provider's event log, oldest first, optionally only events of one type.

        Types: ``authorize``, ``interaction``, ``login``, ``authorization_response``,
        ``token``, ``userinfo``, ``end_session``, ``end_session_confirm``,
        ``backchannel_logout``, ``frontchannel_logout``, ``registration``, ``pushed_authorization``
        (fields: see server.mjs).
        """
        params = {"type": event_type} if event_type else None
        response = self._http.get(f"{self.base_url}/_dev/events", params=params, timeout=10)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def clear_events(self) -> None:
        """Empty the provider's event log."""
        self._http.delete(f"{self.base_url}/_dev/events", timeout=10).raise_for_status()
