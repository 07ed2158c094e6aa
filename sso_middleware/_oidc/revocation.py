"""Token revocation at sign-out (RFC 7009): the refresh token first, then the access token.

:class:`TokenRevoker` POSTs ``token`` and ``token_type_hint`` to the discovered
``revocation_endpoint``, authenticating the client exactly as at the token endpoint
(:mod:`.client_auth`: ``client_secret_basic``/``_post``, ``client_secret_jwt``,
``private_key_jwt``), through the middleware's own provider HTTP (:mod:`.http`: proxy, CA
bundle, client certificate, bounded size), with a timeout of at most
:data:`REVOCATION_TIMEOUT` seconds.  The refresh token goes first (RFC 7009 section 2.1: a
provider may then revoke the access tokens of the same grant too); the access token is
sent only when the refresh token's revocation did not fail, so a provider that is down
costs sign-out one timeout, not two.

``revoke_tokens_on_logout`` (:func:`validate`, :func:`enabled`): ``auto`` revokes when
discovery advertises a ``revocation_endpoint`` and the session keeps tokens
(``keep_access_token``); ``on`` insists (and says so in the log when the provider offers no
endpoint); ``off`` never.

Outcomes.  200 is success (section 2.2: also for a token the provider no longer knows).
``unsupported_token_type`` for the access token (providers that cannot revoke
self-contained JWT access tokens) is expected, not a failure.  Anything else -- the
provider down, slow, 4xx or 5xx -- is one warning line, and sign-out goes on: a revocation
that fails never keeps a user signed in.

Sign-out waits at most :data:`REVOCATION_BUDGET` seconds for all of it (discovery included):
the calls run on a worker thread the request stops waiting for.  The per-call timeout alone
is no bound -- it bounds each socket read, not their sum, so a provider (or a proxy) that
trickles its answer holds a call open far longer (a header line a second kept a 3 s call
open 12 s, measured) -- and sign-out is what a user does to leave *now*.  A revocation still
running then finishes (or fails, with its own warning) in the background.

Security caveats: a revoked refresh token is dead at the provider, but an access token
that is a JWT stays valid for any API that checks it locally until its ``exp``; the
tokens are sent only to the discovered endpoint and never logged.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlencode

from ..errors import ConfigError, ProviderError
from . import client_auth

if TYPE_CHECKING:  # pragma: no cover
    from .._config.settings import SSOConfig
    from .client import OIDCClient
    from .http import ProviderHTTP

log = logging.getLogger("sso_middleware")

MODES = ("auto", "on", "off")
#: Most seconds one revocation call may take (``http_timeout`` when shorter): sign-out waits for it.
REVOCATION_TIMEOUT = 3.0
#: Most seconds sign-out waits for the revocations altogether, whatever the provider does (two calls' worth).
REVOCATION_BUDGET = 2 * REVOCATION_TIMEOUT


def validate(config: SSOConfig) -> None:
    """``revoke_tokens_on_logout``: one of :data:`MODES`; ``on`` needs tokens to revoke (one :class:`ConfigError`)."""
    mode = config.revoke_tokens_on_logout
    if mode not in MODES:
        raise ConfigError("revoke_tokens_on_logout", f"must be one of {', '.join(MODES)}")
    if mode == "on" and not config.keep_access_token:
        raise ConfigError("revoke_tokens_on_logout", "on needs keep_access_token: without it the session keeps no "
                          "token to revoke")


def enabled(config: SSOConfig, revocation_endpoint: Optional[str]) -> bool:
    """Whether sign-out revokes tokens, given what discovery advertises."""
    if config.revoke_tokens_on_logout == "off" or not config.keep_access_token:
        return False
    return revocation_endpoint is not None


def post_revocation(http: ProviderHTTP, config: SSOConfig, endpoint: str, token: str, hint: str) -> tuple[int, Any]:
    """One RFC 7009 request (``token``, ``token_type_hint``), the client authenticated as at the token endpoint.

    Returns the status and the JSON body (None when there is none); raises ``ProviderError``.
    The one place that builds it: sign-out's revoker and the doctor's check send the same request.
    """
    fields, auth = client_auth.authenticate(config, endpoint)
    body = urlencode({"token": token, "token_type_hint": hint, **fields})
    return http.post_form_any_body(endpoint, "revocation", body, auth=auth)


@dataclass(frozen=True)
class Revocation:
    """What one sign-out's revocation did: the hints ``revoked``, and ``failure``: why it stopped (None: it did not)."""

    revoked: tuple[str, ...] = ()
    failure: Optional[str] = None


class TokenRevoker:
    """RFC 7009 revocation of a session's tokens, for one client."""

    def __init__(self, client: OIDCClient) -> None:
        self.client = client
        # The client's own HTTP session (its pool, its test transport), egress and metrics, with the shorter timeout.
        self.http = client.http.with_timeout(min(client.http.timeout, REVOCATION_TIMEOUT))

    def revoke(self, refresh_token: Optional[str], access_token: Optional[str]) -> Revocation:
        """Revoke the refresh token, then the access token (either may be None); never raises for the provider.

        Returns within :data:`REVOCATION_BUDGET` seconds (``failure="provider_timeout"`` when the
        calls are still running then; they go on in the background).
        """
        config = self.client.config
        if config.revoke_tokens_on_logout == "off" or not (refresh_token or access_token):
            return Revocation()
        done: list[Revocation] = []
        worker = threading.Thread(target=lambda: done.append(self._revoke(refresh_token, access_token)),
                                  name="sso-revocation", daemon=True)
        worker.start()
        worker.join(REVOCATION_BUDGET)
        if done:
            return done[0]
        log.warning("sso: token revocation at sign-out still running after %.0f s; signed out without waiting "
                    "for it", REVOCATION_BUDGET)
        return Revocation(failure="provider_timeout")

    def _revoke(self, refresh_token: Optional[str], access_token: Optional[str]) -> Revocation:
        """:meth:`revoke`'s calls, on its worker thread; never raises."""
        config = self.client.config
        try:
            return self._revoke_all(config, refresh_token, access_token)
        except Exception:  # a bug must not kill the thread silently: the sign-out is done anyway
            log.exception("sso: unexpected error revoking tokens at sign-out")
            return Revocation(failure="internal_error")

    def _revoke_all(self, config: SSOConfig, refresh_token: Optional[str], access_token: Optional[str]) -> Revocation:
        try:
            endpoint = self.client.metadata().revocation_endpoint
        except ProviderError as exc:
            log.warning("sso: tokens not revoked at sign-out: discovery failed (%s)", exc.code)
            return Revocation(failure=exc.code)
        if not enabled(config, endpoint):
            if config.revoke_tokens_on_logout == "on":
                log.warning("sso: revoke_tokens_on_logout is on, but the provider advertises no revocation_endpoint")
            return Revocation()
        assert endpoint is not None
        revoked: list[str] = []
        for hint, token in (("refresh_token", refresh_token), ("access_token", access_token)):
            if not token:
                continue
            failure = self._revoke_one(endpoint, token, hint)
            if failure is not None:
                log.warning("sso: revoking the %s at sign-out failed (%s); signed out anyway%s", hint, failure,
                            "; the access token was not sent" if hint == "refresh_token" and access_token else "")
                return Revocation(tuple(revoked), failure)
            revoked.append(hint)
        return Revocation(tuple(revoked))

    def _revoke_one(self, endpoint: str, token: str, hint: str) -> Optional[str]:
        """None when revoked (or the provider cannot revoke that kind), else why not (a code, no token)."""
        try:
            status, document = post_revocation(self.http, self.client.config, endpoint, token, hint)
        except ProviderError as exc:
            return exc.code
        if status == 200:
            return None
        error = document.get("error") if isinstance(document, dict) else None
        if hint == "access_token" and error == "unsupported_token_type":
            log.info("sso: the provider cannot revoke access tokens (unsupported_token_type); they expire by "
                     "themselves")
            return None
        safe = "".join(char for char in str(error)[:40] if char.isalnum() or char in "_-.") if error else ""
        return f"HTTP {status}" + (f" {safe}" if safe else "")
