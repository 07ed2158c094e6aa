"""Opaque access tokens, asked about at the provider's introspection endpoint (RFC 7662), with a bounded cache.

:class:`Introspector` POSTs ``token`` (hint ``access_token``) to the discovered
``introspection_endpoint``, authenticating the client exactly as at the token endpoint
(:mod:`.client_auth`), and accepts an answer only when ``active`` is ``true``, its
``token_type`` (when given) is an access token's, its ``iss`` (when given) is the issuer
exactly, its ``aud`` contains ``bearer_audience``, ``exp`` (when given) has not passed and
``iat``/``nbf`` are not in the future, within ``clock_skew``.

Answers are cached, keyed by the SHA-256 of the token (never the token itself), for
``bearer_introspection_ttl`` seconds at most and never past the token's ``exp``; a refusal
is cached the same way (an inactive token does not come back), but apart: accepted answers
in at most :data:`MAX_ENTRIES` entries, refusals in at most :data:`MAX_REFUSALS`, the oldest
going first, so a flood of made-up tokens evicts only other refusals, never a valid token's
answer.  Before any call, a token must look like one (at most :data:`MAX_OPAQUE_LENGTH`
characters of RFC 6750's ``b64token``), and at most :data:`MAX_IN_FLIGHT` calls run at
once: one more is a 503 (``provider_unreachable``) at once, not a thread waiting on the
provider.

Security caveats: a token revoked at the provider stays accepted until its cached
answer expires (``bearer_introspection_ttl``: keep it short); a provider outage is a
:class:`~sso_middleware.errors.ProviderError` (503), never an acceptance; the token is
sent only to the discovered endpoint and never logged.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from typing import Any, Optional, TypeVar
from urllib.parse import urlencode

from ..errors import InvalidAccessToken, ProviderBadResponse, ProviderUnreachable
from . import client_auth
from .client import OIDCClient
from .id_token import _is_number

#: Most accepted answers kept; a flood of distinct valid tokens evicts the oldest, it never grows memory.
MAX_ENTRIES = 10000
#: Most refusals kept, apart from the accepted answers (a flood of random tokens only evicts refusals).
MAX_REFUSALS = 1000
#: Longest opaque token sent to the provider (Auth0's and oidc-provider's are well under 100 characters).
MAX_OPAQUE_LENGTH = 2048
#: Most introspection calls in progress at once; one more is refused at once with a 503.
MAX_IN_FLIGHT = 16
#: RFC 6750 section 2.1's b64token: what a bearer token consists of.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: ``token_type`` values of an access token (RFC 7662 section 2.2 names RFC 6749's types; lower-cased).
_ACCESS_TOKEN_TYPES = frozenset({"bearer", "access_token", "urn:ietf:params:oauth:token-type:access_token"})


class Introspector:
    """RFC 7662 introspection of opaque access tokens for one API, cached."""

    def __init__(self, client: OIDCClient, *, audience: str, max_entries: int = MAX_ENTRIES,
                 max_refusals: int = MAX_REFUSALS, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.client = client
        self.audience = audience
        self.ttl = client.config.bearer_introspection_ttl
        self.max_entries = max_entries
        self.max_refusals = max_refusals
        self._in_flight = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        # sha256(token) -> (cached until, the answer's claims); and -> (cached until, the refusal's reason)
        self._cache: OrderedDict[bytes, tuple[float, dict[str, Any]]] = OrderedDict()
        self._refusals: OrderedDict[bytes, tuple[float, str]] = OrderedDict()

    def claims(self, token: str) -> dict[str, Any]:
        """The active token's introspection answer, or :class:`InvalidAccessToken`.

        :class:`~sso_middleware.errors.ProviderUnreachable` when :data:`MAX_IN_FLIGHT`
        calls are already waiting for the provider.
        """
        if len(token) > MAX_OPAQUE_LENGTH or not B64TOKEN.fullmatch(token):
            raise InvalidAccessToken("the access token is too long or has characters no token has")
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = self.client.clock()
        with self._lock:
            result = _fresh(self._cache, key, now)
            refusal = _fresh(self._refusals, key, now) if result is None else None
        if result is None and refusal is None:
            if not self._in_flight.acquire(blocking=False):
                raise ProviderUnreachable("introspection: too many calls in progress")
            try:
                answer = self._ask(token)
            finally:
                self._in_flight.release()
            try:
                result = self._checked(answer, now)
            except InvalidAccessToken as refused:
                refusal = refused.detail
            self._remember(key, now, result, refusal)
        if refusal is not None:
            raise InvalidAccessToken(refusal)
        assert result is not None
        return dict(result)

    def __len__(self) -> int:
        return len(self._cache) + len(self._refusals)

    def _remember(self, key: bytes, now: float, result: Optional[dict[str, Any]], refusal: Optional[str]) -> None:
        until = now + self.ttl
        if result is not None and _is_number(result.get("exp")):
            until = min(until, float(result["exp"]))
        if until <= now:
            return
        with self._lock:
            if result is not None:
                _store(self._cache, key, (until, result), self.max_entries)
            elif refusal is not None:
                _store(self._refusals, key, (until, refusal), self.max_refusals)

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


_Entry = TypeVar("_Entry")


def _fresh(cache: OrderedDict[bytes, tuple[float, _Entry]], key: bytes, now: float) -> Optional[_Entry]:
    """The entry cached under ``key`` unless it has expired (then it goes); the caller holds the lock."""
    entry = cache.get(key)
    if entry is None:
        return None
    if entry[0] <= now:
        del cache[key]
        return None
    return entry[1]


def _store(cache: OrderedDict[bytes, tuple[float, _Entry]], key: bytes, entry: tuple[float, _Entry],
           limit: int) -> None:
    """Keep ``entry`` as the newest, dropping the oldest beyond ``limit``; the caller holds the lock."""
    cache[key] = entry
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)
