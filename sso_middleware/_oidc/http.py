"""Talking to the provider over HTTP: bounded in time and in size.

Every call to the provider goes through :class:`ProviderHTTP`, which uses a
shared :class:`requests.Session` (connection pooling, thread-safe for these
simple calls), a timeout on every request, and reads at most
``MAX_RESPONSE_BYTES`` of any answer, which must be complete within about the
timeout, so a provider that is down, slow, dripping its answer or answering with
an endless body costs a bounded time and memory.  Answers are asked for, and
accepted only, without a ``Content-Encoding`` (``Accept-Encoding: identity``): a
compressed answer is refused on its headers, before any byte of it is decoded, so
the size cap is a cap on what is held in memory whatever urllib3 does with
encodings (urllib3 < 2.6 decoded a ``gzip, gzip`` answer whole in one read,
CVE-2025-66471 / CVE-2025-66418; the dependency floor excludes it as well).
Redirects are never followed
(a redirect's body is read within the same bounds, then refused), and no
cookies are kept between requests.  Failures
become :class:`~sso_middleware.errors.ProviderError` with the code
``provider_unreachable``, ``provider_timeout`` or ``provider_bad_response`` (and
``provider_proxy_error`` / ``provider_tls_error`` naming the setting to check).
The proxy, the trusted CAs and the client certificate come from an
:class:`~sso_middleware._oidc.egress.Egress` and are passed to the adapter on every call.

Tests replace the network with ``transport``: a ``requests`` transport adapter
mounted for every URL (``SSOMiddleware(..., http_transport=...)`` passes it here,
e.g. ``sso_middleware.testing.FakeProvider().transport()``); everything above the
adapter -- the bounds, the refusals, the error codes -- still runs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

import requests
import urllib3.exceptions
from requests.adapters import BaseAdapter

from .._observe import NO_METRICS, Recorder, metrics_for, observed_provider_call
from ..errors import ProviderBadResponse, ProviderTimeout, ProviderUnreachable
from .egress import Egress

if TYPE_CHECKING:  # pragma: no cover
    from .._config.settings import SSOConfig

log = logging.getLogger("sso_middleware")

MAX_RESPONSE_BYTES = 1024 * 1024
USER_AGENT = "sso_middleware"
_CHUNK_BYTES = 64 * 1024


class ProviderHTTP:
    """A small JSON-over-HTTP client for the provider's endpoints."""

    metrics: Recorder = NO_METRICS  # for_config's: every call timed by endpoint (sso_middleware._observe)

    def __init__(
        self,
        timeout: float,
        session: Optional[requests.Session] = None,
        egress: Optional[Egress] = None,
        transport: Optional[BaseAdapter] = None,
    ) -> None:
        self.timeout = timeout
        self.session = session or requests.Session()
        if transport is not None:  # the test seam: it answers every URL in place of the network
            self.session.mount("https://", transport)
            self.session.mount("http://", transport)
        self.session.headers["User-Agent"] = USER_AGENT
        # Proxies come from ``egress`` alone (the environment only with http_trust_env), never from
        # requests' own environment lookup: that would also read netrc and REQUESTS_CA_BUNDLE.
        self.session.trust_env = False
        self.egress = egress or Egress()

    @classmethod
    def for_config(cls, config: SSOConfig, transport: Optional[BaseAdapter] = None) -> ProviderHTTP:
        """The client a middleware with ``config`` uses: its timeout, proxy, CA bundle and client certificate.

        ``transport`` (tests): a ``requests`` adapter that answers every request instead of the network.
        """
        http = cls(config.http_timeout, egress=Egress.from_config(config), transport=transport)
        http.metrics = metrics_for(config)
        return http

    def with_timeout(self, timeout: float) -> ProviderHTTP:
        """This client with another ``timeout``: the same session (pool, test transport), egress and metrics."""
        http = ProviderHTTP(timeout, session=self.session, egress=self.egress)
        http.metrics = self.metrics
        return http

    def get_json(self, url: str, what: str, headers: Optional[Mapping[str, str]] = None) -> tuple[int, Any]:
        """GET ``url``; returns (status, parsed JSON).  ``what`` names the endpoint in errors."""
        return self._request("GET", url, what, headers=headers)

    def post_form(
        self,
        url: str,
        what: str,
        data: str,
        headers: Optional[Mapping[str, str]] = None,
        auth: Optional[tuple[str, str]] = None,
    ) -> tuple[int, Any]:
        """POST a form-encoded body; returns (status, parsed JSON)."""
        merged = {"Content-Type": "application/x-www-form-urlencoded"}
        merged.update(headers or {})
        return self._request("POST", url, what, headers=merged, data=data, auth=auth)

    def post_form_any_body(
        self, url: str, what: str, data: str, auth: Optional[tuple[str, str]] = None
    ) -> tuple[int, Any]:
        """POST a form-encoded body; returns (status, parsed JSON, or None for an empty or non-JSON body).

        For endpoints whose success has no JSON body (RFC 7009 revocation answers 200 with
        any body, often empty); every bound of :meth:`post_form` still holds.
        """
        return self._request("POST", url, what, headers={"Content-Type": "application/x-www-form-urlencoded"},
                             data=data, auth=auth, any_body=True)

    @observed_provider_call
    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> tuple[int, Any]:
        headers = dict(self.session.headers)
        headers["Accept"] = "application/json"
        headers["Accept-Encoding"] = "identity"  # see _refuse_encoded: nothing is ever decompressed
        headers.update(kwargs.pop("headers", None) or {})
        any_body = kwargs.pop("any_body", False)
        deadline = time.monotonic() + self.timeout
        try:
            # Straight to the transport adapter: Session.send would read a redirect's whole body
            # (unbounded) even with allow_redirects=False, and would keep the provider's cookies
            # (which is also why the request is not merged with the session's cookie jar).
            prepared = requests.Request(method, url, headers=headers, **kwargs).prepare()
            adapter = self.session.get_adapter(str(prepared.url))
            egress = self.egress
            with adapter.send(prepared, stream=True, timeout=self.timeout, verify=egress.verify, cert=egress.cert,
                              proxies=egress.proxies_for(str(prepared.url))) as response:
                _refuse_encoded(response, what)
                body = _read_body(response, deadline, what)
                status = response.status_code
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            # timeouts, proxy and TLS failures: a message naming the setting to check
            raise self.egress.failure(exc, what, url, self.timeout) from exc
        if len(body) > MAX_RESPONSE_BYTES:
            raise ProviderBadResponse(f"{what}: answer larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            return status, json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            if any_body:
                return status, None
            if status >= 500:
                raise ProviderUnreachable(f"{what}: HTTP {status}") from None
            raise ProviderBadResponse(f"{what}: HTTP {status}, body is not JSON") from None


def _refuse_encoded(response: requests.Response, what: str) -> None:
    """Refuse an answer with any ``Content-Encoding`` but ``identity``, before reading its body.

    A compressed answer is a decompression bomb in waiting (a 1.8 KB ``gzip, gzip`` answer
    decodes to gigabytes); the provider was asked for ``identity`` and a JSON document is
    small, so there is no reason to accept one.  (Repeated headers arrive joined by commas.)
    """
    encoding = response.headers.get("Content-Encoding", "")
    codings = [coding.strip().lower() for coding in encoding.split(",")]
    if any(coding not in ("", "identity") for coding in codings):
        raise ProviderBadResponse(
                            f"{what}: answer with Content-Encoding {encoding[:40]!r} (only identity is accepted)")


def _read_body(response: requests.Response, deadline: float, what: str) -> bytes:
    """At most ``MAX_RESPONSE_BYTES + 1`` bytes of the body, arriving by ``deadline``.

    Each network read is bounded by the socket timeout; the deadline bounds their sum, so
    a provider that drips its answer a byte at a time cannot hold a worker indefinitely.
    """
    read = getattr(response.raw, "read1", None) or response.raw.read  # read1: urllib3 >= 2
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_RESPONSE_BYTES:
        if chunks and time.monotonic() > deadline:
            raise ProviderTimeout(f"{what}: answer not complete in time")
        # decode_content=False: encoded answers were refused; never decode whatever slipped through.
        chunk = read(min(_CHUNK_BYTES, MAX_RESPONSE_BYTES + 1 - size), decode_content=False)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
