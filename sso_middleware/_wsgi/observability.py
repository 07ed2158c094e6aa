"""The operator's routes: ``metrics_path`` (Prometheus scrape) and ``health_path`` (a load balancer's probe).

Both are off by default, answered here and never passed to the application.

``metrics_path`` answers the Prometheus text format (OpenMetrics when the scraper asks)
to clients allowed by ``metrics_allowed_networks`` (default: loopback only) and, when
``metrics_token`` is set, presenting it as ``Authorization: Bearer``.  Under gunicorn with
``PROMETHEUS_MULTIPROC_DIR`` every scrape adds up all workers, whichever one answers.

``health_path`` answers ``200 ok`` when the session store answers a cheap read (a record
that does not exist) and the provider's discovery document is cached (or fetched now),
else ``503 unavailable`` -- never any detail (the reason goes to the log, on each change).
Bounded: at most ``session_store_timeout`` plus, when discovery is not cached,
``http_timeout`` (a failed discovery is retried at most every few seconds, so a probe
during an outage answers at once).  The answer is kept for ``HEALTH_CACHE_SECONDS`` (one
second), and probes arriving while one asks wait for its answer: a flood of probes costs
one store read a second per process.  Stores that keep no records (cookie, environ) have
nothing to ask: the store part is then healthy.

Security caveat: the metrics are operational data (sign-in failure rates, provider
latency), not secrets -- but they are nobody else's business.  The network check reads
``REMOTE_ADDR``: behind a reverse proxy on the same host every client is the proxy, i.e.
loopback.  So without ``metrics_token`` a request carrying ``Forwarded``, ``X-Forwarded-For``
or ``X-Real-IP`` (a proxy relayed it) is refused whatever its address; a proxy that adds none
of them still makes every client loopback: block ``metrics_path`` at the proxy or set
``metrics_token``.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Optional

from webob import Request, Response

from .._config.settings import SSOConfig
from .._observe import Metrics
from .._observe.settings import networks
from .._oidc.client import OIDCClient
from .._sealing import same_text
from .._session.state import SessionStore, SSOSession
from .pages import no_store

if TYPE_CHECKING:
    from .handlers import Handler

log = logging.getLogger("sso_middleware")

#: Headers a reverse proxy adds when it relays a request (RFC 7239 and the de-facto ones).
FORWARDED_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")
#: Seconds a health answer is kept (probes come every few seconds; a flood shares one store read a second).
HEALTH_CACHE_SECONDS = 1.0
#: The record the health check reads: it never exists, so the read is the cheapest one a back end has.
HEALTH_RECORD = "sso-health-probe"


class Observability:
    """The ``metrics_path`` and ``health_path`` handlers of one middleware."""

    def __init__(self, config: SSOConfig, client: OIDCClient, store: SessionStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.client = client
        self.store = store
        self.clock = clock
        self.networks = networks(config)
        self.token = config.metrics_token
        #: What the store's seams write (metrics_path set means metrics are on): the scrape reads the same objects.
        self.instruments = store.metrics.instruments if isinstance(store.metrics, Metrics) else None
        #: The last health answer: (when, problem); and the lock a probe holds while it asks the store.
        self._checked: Optional[tuple[float, Optional[str]]] = None
        self._check_lock = threading.Lock()

    def routes(self) -> dict[str, Handler]:
        routes: dict[str, Handler] = {}
        if self.config.metrics_path and self.instruments is not None:
            routes[self.config.metrics_path] = self.metrics
        if self.config.health_path:
            routes[self.config.health_path] = self.health
        return routes

    # -- metrics ---------------------------------------------------------------

    def metrics(self, request: Request, session: SSOSession) -> Response:
        refused = _only_get(request) or self._refusal(request)
        if refused is not None:
            return refused
        from .._observe.instruments import exposition

        instruments = self.instruments
        assert instruments is not None  # routes() serves metrics_path only then
        try:
            body, content_type = exposition(instruments, request.headers.get("Accept", ""))
        except ValueError:  # an Accept header prometheus_client cannot read: the plain text format
            body, content_type = exposition(instruments, "")
        response = no_store(Response(body=body))
        response.headers["Content-Type"] = content_type
        return response

    def _refusal(self, request: Request) -> Optional[Response]:
        """403 for a client outside ``metrics_allowed_networks`` (or relayed by a proxy, without a token); 401
        without the right ``metrics_token``."""
        if self.networks and not _within(request.environ.get("REMOTE_ADDR", ""), self.networks):
            return _text(403, "forbidden\n")
        if not self.token and any(name in request.environ for name in FORWARDED_HEADERS):
            # Relayed by a proxy: REMOTE_ADDR is the proxy's (loopback, for one on this host), not the
            # client's; the address proves nothing, only a token can.
            return _text(403, "forbidden\n")
        if self.token:
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not same_text(presented.strip(), self.token):
                response = _text(401, "unauthorized\n")
                response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
                return response
        return None

    # -- health ----------------------------------------------------------------

    def health(self, request: Request, session: SSOSession) -> Response:
        refused = _only_get(request)
        if refused is not None:
            return refused
        problem = self._recent_problem()
        return _text(200, "ok\n") if problem is None else _text(503, "unavailable\n")

    def _recent_problem(self) -> Optional[str]:
        """:meth:`_problem`, asked at most once per ``HEALTH_CACHE_SECONDS``; probes meanwhile share the answer.

        The route is public: without this, each probe of a flood was a store read (and, during an
        outage, a worker held for ``session_store_timeout``).
        """
        with self._check_lock:  # one probe asks; the others wait for its answer instead of asking too
            now = self.clock()
            if self._checked is not None and 0 <= now - self._checked[0] < HEALTH_CACHE_SECONDS:
                return self._checked[1]
            before = self._checked
            problem = self._problem()
            self._checked = (self.clock(), problem)
        _log_change(before, problem)
        return problem

    def _problem(self) -> Optional[str]:
        """None when healthy; else what is wrong, for the log (never for the caller)."""
        try:
            backend = self.store.backend
            if backend.keeps_records:
                backend.read_record(HEALTH_RECORD, kind="health")
        except Exception as exc:  # StoreUnavailable, or a custom back end's own failure
            return f"session store: {exc}"
        try:
            self.client.metadata()
        except Exception as exc:  # ProviderError, or anything a broken discovery raises
            return f"discovery: {exc}"
        return None


def _log_change(before: Optional[tuple[float, Optional[str]]], problem: Optional[str]) -> None:
    """Log the health answer when it changed since ``before`` (the previous check; None: this is the first)."""
    was_healthy = None if before is None else before[1] is None
    if problem is not None and was_healthy is not False:
        log.warning("sso: health check failing: %s", problem)
    elif problem is None and was_healthy is False:
        log.info("sso: health check passing")


def _only_get(request: Request) -> Optional[Response]:
    if request.method in ("GET", "HEAD"):
        return None
    response = _text(405, "method not allowed\n")
    response.headers["Allow"] = "GET, HEAD"
    return response


def _within(address: str, allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    """True when the client ``address`` (REMOTE_ADDR; an IPv4-mapped IPv6 one as IPv4) is in ``allowed``."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # a zone index (fe80::1%eth0) is not part of it
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == network.version and ip in network for network in allowed)


def _text(status: int, body: str) -> Response:
    response = Response(status=status, body=body.encode(), content_type="text/plain")
    response.charset = "utf-8"
    return no_store(response)
