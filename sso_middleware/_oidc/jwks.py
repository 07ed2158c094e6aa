"""The provider's signing keys: fetched lazily, cached, refetched with restraint.

:class:`KeySet` keeps the provider's JSON Web Key Set in memory for
``ttl`` seconds.  A token whose ``kid`` is unknown triggers one refetch
(the provider may have rotated its keys), but refetches are rate limited by a
small token bucket: a flood of forged tokens with random ``kid`` values cannot
make the middleware hammer the provider, yet a genuine rotation right after a
scheduled fetch is still picked up.  When a scheduled refresh fails, the old
keys stay in use for ``grace`` seconds, and a failed fetch is not retried for
``retry_seconds`` (an outage is not hammered, nor are requests queued behind it).

Security caveat: a key is only ever used with an algorithm of its own family
(RSA keys for ``RS*``/``PS*``, EC for ``ES*``, OKP for ``EdDSA``) and only if
its ``use`` and ``alg`` members, when present, allow it -- so a public key can
never be abused as an HMAC secret (algorithm confusion).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

from jwt import PyJWK
from jwt.exceptions import PyJWTError

from ..errors import InvalidIdToken, ProviderBadResponse, ProviderError

log = logging.getLogger("sso_middleware")

_FAMILY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def key_type_for(alg: str) -> Optional[str]:
    """The JWK ``kty`` an algorithm needs (None for HMAC and unknown algorithms)."""
    return _FAMILY.get(alg[:2])


def key_fits(jwk: Any, alg: str) -> bool:
    """Whether a JWK may verify a signature made with ``alg``: the one key selection rule.

    The key's ``kty`` must be the algorithm's family (:func:`key_type_for`), and its ``use``
    and ``alg`` members, when present, must allow signing with exactly ``alg``.  Whether the
    key's numbers load is not part of the rule (a key that fits but does not load is a broken
    key, not another key's turn).

    Security caveat: this is what keeps a public key from being used as an HMAC secret or
    with another family's algorithm (algorithm confusion): HMAC and unknown algorithms fit
    no key at all.  The middleware's lookup and the doctor both use it, so the doctor reports
    exactly the keys sign-ins will use.
    """
    kty = key_type_for(alg)
    if kty is None or not isinstance(jwk, dict) or jwk.get("kty") != kty:
        return False
    return bool(jwk.get("use", "sig") == "sig" and jwk.get("alg", alg) == alg)


class KeySet:
    """A cached JWKS with rate-limited refetching on unknown key ids."""

    def __init__(
        self,
        fetch: Callable[[], Any],
        ttl: float,
        grace: float = 86400.0,
        burst: int = 3,
        refill_seconds: float = 60.0,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._grace = grace
        self._burst = burst
        self._refill_seconds = refill_seconds
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[dict[str, Any]] = []
        self._parsed: dict[tuple[int, str], tuple[dict[str, Any], Any]] = {}  # JWK -> key object, per alg
        self._fetched_at: Optional[float] = None
        self._failure: Optional[tuple[float, ProviderError]] = None
        self._tokens = float(burst)
        self._tokens_at = clock()

    def key_for(self, kid: Optional[str], alg: str) -> Any:
        """The public key (a ``cryptography`` object) to verify a token with this header."""
        keys = self._current_keys()
        found = _select(keys, kid, alg)
        if found is None and self._may_refetch():
            log.info("sso: signing key %r not in the cached JWKS; refetching once", kid)
            keys = self._refresh(force=True)
            found = _select(keys, kid, alg)
        if found is None:
            raise InvalidIdToken(f"no usable {alg} key with kid {kid!r} in the provider's JWKS")
        cache_key = (id(found), alg)  # the JWK dicts are replaced (new ids) whenever the set is refetched
        parsed = self._parsed.get(cache_key)
        if parsed is not None and parsed[0] is found:
            return parsed[1]
        try:
            key = PyJWK(found, algorithm=alg).key
        except (PyJWTError, ValueError) as exc:  # InvalidKeyError is not a PyJWKError
            raise InvalidIdToken(f"unusable JWK {kid!r}: {exc}") from None
        self._parsed[cache_key] = (found, key)
        return key

    def _current_keys(self) -> list[dict[str, Any]]:
        fetched_at = self._fetched_at
        if fetched_at is not None and self._clock() - fetched_at < self._ttl:
            return self._keys
        return self._refresh(force=False)

    def _refresh(self, force: bool) -> list[dict[str, Any]]:
        with self._lock:
            now = self._clock()
            if not force and self._fetched_at is not None and now - self._fetched_at < self._ttl:
                return self._keys  # another thread refreshed meanwhile
            if self._failure is not None and now - self._failure[0] < self._retry_seconds:
                # A fetch failed moments ago: do not queue every request behind another attempt.
                return self._stale_keys(now, self._failure[1])
            try:
                document = self._fetch()
                keys = document.get("keys") if isinstance(document, dict) else None
                if not isinstance(keys, list):
                    raise ProviderBadResponse("JWKS has no 'keys' list")
            except ProviderError as exc:
                self._failure = (now, exc)
                log.warning("sso: JWKS refresh failed (%s)", exc.code)
                return self._stale_keys(now, exc)
            self._keys = [key for key in keys if isinstance(key, dict)]
            self._parsed = {}
            self._fetched_at, self._failure = now, None
            return self._keys

    def _stale_keys(self, now: float, error: ProviderError) -> list[dict[str, Any]]:
        """The cached keys while within ``ttl + grace`` of the last good fetch, else ``error``."""
        if self._fetched_at is not None and now - self._fetched_at < self._ttl + self._grace:
            return self._keys
        raise error

    def _may_refetch(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._tokens_at) / self._refill_seconds)
            self._tokens_at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


def _select(keys: list[dict[str, Any]], kid: Optional[str], alg: str) -> Optional[dict[str, Any]]:
    candidates = [key for key in keys if key_fits(key, alg) and (kid is None or key.get("kid") == kid)]
    if len(candidates) == 1 or (kid is not None and candidates):
        return candidates[0]
    return None
