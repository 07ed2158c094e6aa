"""What the middleware's seams call to count and time: a :class:`Recorder`, live or silent.

Each call site is one line at the narrowest seam (the provider transport, the store, the
callback's outcome, the refresh outcome, the logout routes), calling a small method here;
nobody else touches a metric object.  With metrics off every seam gets :data:`NO_METRICS`,
whose methods do nothing, and the hot path (a signed-in GET) meets none of them at all: the
store is not wrapped (:func:`~.seams.observed_backend` returns the back end itself).

``metrics_for(config)`` hands out the recorder of a configuration; metrics are on when
``metrics_path`` or ``metrics_registry`` is set.  Only then is :mod:`.instruments` (and with
it ``prometheus_client``) imported.

Security caveat: every label value passes through :mod:`.labels` (fixed sets); no user, sid,
path or URL ever reaches a metric.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..errors import StoreUnavailable
from . import labels

if TYPE_CHECKING:
    from .._config.settings import SSOConfig
    from .instruments import Instruments

log = logging.getLogger("sso_middleware")

#: The environ key where the callback notes that its sign-in was silent (read when it ends).
SILENT_KEY = "sso_middleware.metrics.silent"


class Recorder:
    """The silent recorder: metrics are off, every method does nothing.

    The two timing seams (the store wrapper, the provider-call decorator) are not here: with
    metrics off they are not in the way at all (:mod:`.seams`), so only :class:`Metrics` has them.
    """

    enabled = False

    def attempt(self, environ: dict[str, Any], prompt: Optional[str]) -> None:
        """The callback found its sign-in (``prompt``: the transaction's, ``none`` for a silent one)."""

    def signed_in(self, environ: dict[str, Any]) -> None:
        """A new sign-in's session was stored: a successful sign-in."""

    def silent_fallback(self, environ: dict[str, Any]) -> None:
        """A silent sign-in found no provider session (``login_required``...): the fallback runs."""

    def route_failed(self, environ: dict[str, Any], code: str) -> None:
        """An authentication route ended on the failure page with ``code``."""

    def refresh(self, outcome: str) -> None:
        """A token refresh ended: ``success``, ``refused`` or ``error``."""

    def session_ended(self, reason: str, count: int = 1) -> None:
        """``count`` sessions ended for ``reason`` (:data:`~.labels.END_REASONS`)."""

    def logout_notification(self, channel: str, status: int) -> None:
        """A logout notification from the provider (``channel``) was answered with HTTP ``status``."""


#: The recorder of every configuration with metrics off.
NO_METRICS = Recorder()


class ProviderCall:
    """What a provider call's seam reports back: the HTTP status it got (5xx counts as a failure)."""

    status: int = 0


class Metrics(Recorder):
    """The live recorder over the metric objects of :mod:`.instruments`.

    Security caveat (availability): a metric write can fail -- in multiprocess mode
    prometheus_client opens its files at the first write after a fork, so a folder removed or
    not writable by a worker makes every write raise.  Every write goes through :func:`_write`,
    which logs and drops the failure: counting must never be the request's failure.
    """

    enabled = True

    def __init__(self, instruments: Instruments, sign_in_paths: frozenset[str]) -> None:
        self.instruments = instruments
        self._sign_in_paths = sign_in_paths

    def attempt(self, environ: dict[str, Any], prompt: Optional[str]) -> None:
        if prompt == "none":
            environ[SILENT_KEY] = True

    def signed_in(self, environ: dict[str, Any]) -> None:
        silent = bool(environ.get(SILENT_KEY))
        _write(self._signed_in, silent)

    def _signed_in(self, silent: bool) -> None:
        self.instruments.sign_ins.labels(labels.SUCCESS).inc()
        self.instruments.sessions_created.inc()
        if silent:
            self.instruments.silent.labels("signed_in").inc()

    def silent_fallback(self, environ: dict[str, Any]) -> None:
        environ.pop(SILENT_KEY, None)  # the interactive retry is a sign-in of its own
        _write(lambda: self.instruments.silent.labels("login_required").inc())

    def route_failed(self, environ: dict[str, Any], code: str) -> None:
        if environ.get("PATH_INFO") not in self._sign_in_paths:
            return  # a failed sign-out is no failed sign-in
        silent = bool(environ.pop(SILENT_KEY, None))
        _write(self._route_failed, labels.outcome_code(code), silent)

    def _route_failed(self, outcome: str, silent: bool) -> None:
        self.instruments.sign_ins.labels(outcome).inc()
        if silent:
            self.instruments.silent.labels("error").inc()

    def refresh(self, outcome: str) -> None:
        label = outcome if outcome in labels.REFRESH_OUTCOMES else labels.OTHER
        _write(lambda: self.instruments.refreshes.labels(label).inc())

    def session_ended(self, reason: str, count: int = 1) -> None:
        if count > 0:
            label = labels.end_reason(reason)
            _write(lambda: self.instruments.sessions_ended.labels(label).inc(count))

    def logout_notification(self, channel: str, status: int) -> None:
        outcome = labels.SUCCESS if status < 400 else "unavailable" if status >= 500 else "refused"
        _write(lambda: self.instruments.logouts.labels(labels.channel(channel), outcome).inc())

    @contextlib.contextmanager
    def provider_call(self, what: str) -> Iterator[ProviderCall]:
        """Time one call to the provider endpoint ``what`` (discovery, jwks, token...)."""
        endpoint = labels.endpoint(what)
        call = ProviderCall()
        start = time.perf_counter()
        try:
            yield call
        except Exception as failure:
            reason = labels.failure_reason(failure)
            _write(lambda: self.instruments.provider_failures.labels(endpoint, reason).inc())
            raise
        finally:
            elapsed = time.perf_counter() - start
            _write(lambda: self.instruments.provider_seconds.labels(endpoint).observe(elapsed))
        if call.status >= 500:
            _write(lambda: self.instruments.provider_failures.labels(endpoint, "http_5xx").inc())

    def store_call(self, operation: str, call: Any) -> Any:
        """``call`` (a back end's method), timed as ``operation``, its ``StoreUnavailable`` counted."""
        seconds = self.instruments.store_seconds.labels(operation)  # bound once: no label lookup per call
        failures = self.instruments.store_failures.labels(operation)
        clock = time.perf_counter

        def observed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return call(*args, **kwargs)
            except StoreUnavailable:
                _write(failures.inc)
                raise
            finally:
                _write(seconds.observe, clock() - start)

        return observed


#: Seconds between two log lines about metric writes that failed (one per process at most this often).
WRITE_FAILURE_LOG_INTERVAL = 60.0
_write_failure_logged_at = float("-inf")


def _write(metric_write: Callable[..., Any], *args: Any) -> None:
    """Do one metric write; a failure is logged (at most once a minute) and dropped, never raised."""
    global _write_failure_logged_at
    try:
        metric_write(*args)
    except Exception as exc:  # OSError from a multiprocess file, or anything a collector raises
        now = time.monotonic()
        if now - _write_failure_logged_at >= WRITE_FAILURE_LOG_INTERVAL:
            _write_failure_logged_at = now
            log.error("sso: a metric could not be written (%s: %s); requests go on, uncounted (check "
                      "PROMETHEUS_MULTIPROC_DIR)", type(exc).__name__, exc)


def metrics_on(config: SSOConfig) -> bool:
    return bool(config.metrics_path) or config.metrics_registry not in (None, "")


def metrics_for(config: SSOConfig) -> Recorder:
    """The recorder of ``config``: :data:`NO_METRICS` unless ``metrics_path`` or ``metrics_registry`` is set."""
    if not metrics_on(config):
        return NO_METRICS
    from .instruments import instruments_for  # only now: prometheus_client is needed only with metrics on

    paths = frozenset({config.sso_path, config.login_path, config.callback_path})
    return Metrics(instruments_for(config.metrics_registry), paths)
