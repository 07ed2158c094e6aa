"""The Prometheus metric objects of the middleware, and where they are registered and read.

Built only when metrics are on (``metrics_path`` or ``metrics_registry``): this is the one
module that imports ``prometheus_client`` (the ``metrics`` extra), and it is imported only
then, so with metrics off the library is neither imported nor needed.

Three places the numbers can live (:func:`instruments_for`):

* ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn and other pre-fork servers): prometheus_client's
  multiprocess mode. Every process writes its values to files in that folder; the metrics
  are registered in no registry, and :func:`exposition` reads the folder with a fresh
  ``CollectorRegistry`` holding a ``MultiProcessCollector``, so one scrape, whichever worker
  answers it, adds up every worker. There are no gauges here (only counters and
  histograms), so no gauge mode applies; ``mark_process_dead`` in gunicorn's ``child_exit``
  only matters for the application's own live gauges.
* ``metrics_registry``: the operator's own ``CollectorRegistry`` (they expose it).
* otherwise: a registry of this module's own, shared by every middleware of the process.

One set of metric objects per place, shared by the middlewares of a process that use it
(two middlewares registering the same names in one registry would be refused).

Security caveat: every label value comes from a fixed set (:mod:`.labels`): never a user,
a session id, a path or a URL -- anything a client chooses would grow the series without
bound (a memory exhaustion of this process and of Prometheus).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client import values as prometheus_values
from prometheus_client.exposition import choose_encoder

from . import labels
from .settings import MULTIPROC_ENV

#: Store calls take about a millisecond (a file or a Redis round trip); a few seconds is a timeout.
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Provider calls take tens to hundreds of milliseconds; ``http_timeout`` (5 s by default) bounds them.
PROVIDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)



class Instruments:
    """The metric objects (``registry`` None: registered nowhere, as multiprocess mode wants)."""

    def __init__(self, registry: Optional[CollectorRegistry]) -> None:
        self.registry = registry
        self.sign_ins = Counter("sso_sign_ins_total", "Sign-ins that ended, by outcome: success or the failure code.",
                                ["outcome"], registry=registry)
        self.silent = Counter("sso_silent_sign_ins_total",
                              "Silent (prompt=none) sign-ins by outcome: signed_in, login_required (the provider "
                              "had no session: fallback), error.", ["outcome"], registry=registry)
        self.refreshes = Counter("sso_token_refreshes_total",
                                 "Access-token refreshes by outcome: success, refused (the provider refused the "
                                 "refresh token), error (the provider could not be used).", ["outcome"],
                                 registry=registry)
        self.logouts = Counter("sso_provider_logouts_total",
                               "Logout notifications from the provider, by channel (backchannel, frontchannel) and "
                               "outcome (success, refused, unavailable).", ["channel", "outcome"], registry=registry)
        self.sessions_created = Counter("sso_sessions_created_total", "Sessions stored for a new sign-in.",
                                        registry=registry)
        self.sessions_ended = Counter("sso_sessions_ended_total", "Sessions ended, by reason.", ["reason"],
                                      registry=registry)
        self.store_seconds = Histogram("sso_store_request_duration_seconds",
                                       "Duration of session-store calls, by operation.", ["operation"],
                                       buckets=STORE_BUCKETS, registry=registry)
        self.store_failures = Counter("sso_store_failures_total",
                                      "Session-store calls that failed (store unavailable), by operation.",
                                      ["operation"], registry=registry)
        self.provider_seconds = Histogram("sso_provider_request_duration_seconds",
                                          "Duration of calls to the provider, by endpoint.", ["endpoint"],
                                          buckets=PROVIDER_BUCKETS, registry=registry)
        self.provider_failures = Counter("sso_provider_request_failures_total",
                                         "Calls to the provider that failed, by endpoint and reason (the failure "
                                         "code, or http_5xx).", ["endpoint", "reason"], registry=registry)
        self._start_at_zero()

    def _start_at_zero(self) -> None:
        """Create the usual series at 0, so that ``rate()`` sees the first event (Prometheus practice)."""
        self.sign_ins.labels(labels.SUCCESS)
        for outcome in labels.SILENT_OUTCOMES:
            self.silent.labels(outcome)
        for outcome in labels.REFRESH_OUTCOMES:
            self.refreshes.labels(outcome)
        for outcome in labels.LOGOUT_OUTCOMES:
            self.logouts.labels(labels.BACKCHANNEL, outcome)


_lock = threading.Lock()
_own: Optional[Instruments] = None
_multiprocess: Optional[Instruments] = None
_theirs: dict[int, tuple[CollectorRegistry, Instruments]] = {}


def multiprocess_mode() -> bool:
    """True when prometheus_client keeps its values in ``PROMETHEUS_MULTIPROC_DIR`` (set before its import)."""
    return MULTIPROC_ENV in os.environ and prometheus_values.ValueClass is not prometheus_values.MutexValue


def instruments_for(registry: Optional[CollectorRegistry]) -> Instruments:
    """The metric objects for the operator's ``registry`` (None: this module's own), built once per place."""
    global _own, _multiprocess
    with _lock:
        if multiprocess_mode():
            if _multiprocess is None:
                _multiprocess = Instruments(None)
            return _multiprocess
        if registry is not None:
            entry = _theirs.get(id(registry))
            if entry is None or entry[0] is not registry:
                entry = _theirs[id(registry)] = (registry, Instruments(registry))
            return entry[1]
        if _own is None:
            _own = Instruments(CollectorRegistry(auto_describe=True))
        return _own


def exposition(instruments: Instruments, accept: str) -> tuple[bytes, str]:
    """The scrape's body and content type (text format, or OpenMetrics when ``accept`` asks for it)."""
    registry = instruments.registry
    if registry is None:  # multiprocess: a fresh registry reading every process's files, per scrape
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    encoder, content_type = choose_encoder(accept)
    body: bytes = encoder(registry)
    return body, content_type


def is_registry(value: Any) -> bool:
    return isinstance(value, prometheus_client.CollectorRegistry)
