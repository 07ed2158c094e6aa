"""Opaque access tokens, asked about at the provider's introspection endpoint (RFC 7662), with a bounded cache.

:class:`Introspector` POSTs ``token`` (hint ``access_token``) to the discovered
``introspection_endpoint``, authenticating the client exactly as at the token endpoint
(:mod:`.client_auth`), and accepts an answer only when ``active`` is ``true``, its
``token_type`` (when given) is an access token's, its ``iss`` (when given) is the issuer
exactly, its ``aud`` contains ``bearer_audience``, ``exp`` (when given) has not passed and
``iat``/``nbf`` are not in the future, within ``clock_skew``.

Answers are cached, keyed by the SHA-256 of the token (never the token itself), for
``bearer_introspection_ttl`` seconds at most and never past the token's ``exp``; a refusal
is cached the same way (an inactive token does not come back).  The cache holds at most
:data:`MAX_ENTRIES` answers, the oldest going first.

Security caveats: a token revoked at the provider stays accepted until its cached
answer expires (``bearer_introspection_ttl``: keep it short); a provider outage is a
:class:`~sso_middleware.errors.ProviderError` (503), never an acceptance; the token is
sent only to the discovered endpoint and never logged.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Optional, Union
from urllib.parse import urlencode

from ..errors import InvalidAccessToken, ProviderBadResponse, ProviderUnreachable
from . import client_auth
from .client import OIDCClient
from .id_token import _is_number

#: Most answers kept; a flood of distinct tokens evicts the oldest, it never grows memory.
MAX_ENTRIES = 10000
#: ``token_type`` values of an access token (RFC 7662 section 2.2 names RFC 6749's types; lower-cased).
_ACCESS_TOKEN_TYPES = frozenset({"bearer", "access_token", "urn:ietf:params:oauth:token-type:access_token"})


class Introspector:
    """RFC 7662 introspection of opaque access tokens for one API, cached."""

    def __init__(self, client: OIDCClient, *, audience: str, max_entries: int = MAX_ENTRIES) -> None:
        self.client = client
        self.audience = audience
        self.ttl = client.config.bearer_introspection_ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        # sha256(token) -> (cached until, the answer's claims or the refusal's reason)
        self._cache: OrderedDict[bytes, tuple[float, Union[dict[str, Any], str]]] = OrderedDict()

    def claims(self, token: str) -> dict[str, Any]:
        """The active token's introspection answer, or :class:`InvalidAccessToken`."""
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = self.client.clock()
        cached = self._cached(key, now)
        if cached is None:
            answer = self._ask(token)
            try:
                result: Union[dict[str, Any], str] = self._checked(answer, now)
            except InvalidAccessToken as refusal:
                result = refusal.detail
            self._remember(key, now, result)
        else:
            result = cached
        if isinstance(result, str):
            raise InvalidAccessToken(result)
        return dict(result)

    def __len__(self) -> int:
        return len(self._cache)

    def _cached(self, key: bytes, now: float) -> Optional[Union[dict[str, Any], str]]:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._cache[key]
                return None
            return entry[1]

    def _remember(self, key: bytes, now: float, result: Union[dict[str, Any], str]) -> None:
        until = now + self.ttl
        if isinstance(result, dict) and _is_number(result.get("exp")):
            until = min(until, float(result["exp"]))
        if until <= now:
            return
        with self._lock:
            self._cache[key] = (until, result)
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)

    def _ask(self, token: str) -> dict[str, Any]:
        endpoint = self.client.metadata().introspection_endpoint
        if endpoint is None:
            raise ProviderBadResponse("bearer_introspection is on, but discovery advertises no introspection_endpoint")
        fields, auth = client_auth.authenticate(self.client.config, endpoint)
        body = urlencode({"token": token, "token_type_hint": "access_token", **fields})
        status, document = self.client.http.post_form(endpoint, "introspection", body, auth=auth)
        if status >= 500 or status == 429:
            raise ProviderUnreachable(f"introspection: HTTP {status}")
        if status != 200 or not isinstance(document, dict):
            # 401/403: the provider refused this client (its credentials, or its right to introspect)
            raise ProviderBadResponse(f"introspection: HTTP {status}")
        return document

    def _checked(self, answer: dict[str, Any], now: float) -> dict[str, Any]:
        """RFC 7662 section 2.2's answer, held to the rules a JWT access token meets."""
        if answer.get("active") is not True:
            raise InvalidAccessToken("the access token is not active (expired, revoked or unknown)")
        token_type = answer.get("token_type")
        if token_type is not None and (
                not isinstance(token_type, str) or token_type.lower() not in _ACCESS_TOKEN_TYPES):
            raise InvalidAccessToken("the token is not an access token")
        issuer = self.client.config.issuer_url
        if "iss" in answer and answer["iss"] != issuer:
            raise InvalidAccessToken("iss is not the issuer")
        aud = answer.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.audience not in audiences:
            raise InvalidAccessToken("aud does not name this API")
        leeway = self.client.config.clock_skew
        for name in ("exp", "iat", "nbf"):
            if name in answer and not _is_number(answer[name]):
                raise InvalidAccessToken(f"{name} is not a number")
        if "exp" in answer and answer["exp"] <= now - leeway:
            raise InvalidAccessToken("token has expired")
        if answer.get("iat", 0) > now + leeway or answer.get("nbf", 0) > now + leeway:
            raise InvalidAccessToken("token is not valid yet (iat/nbf)")
        return {key: value for key, value in answer.items() if key != "active"}
