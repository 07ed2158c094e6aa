"""The two wrapped seams: every session-store call and every provider call pass through here.

* :func:`observed_backend`: the session back end, wrapped once (whatever the back end is:
  built-in or your own), so that each of its I/O methods (:data:`~.labels.STORE_OPERATIONS`)
  is timed and its ``StoreUnavailable`` counted.  With metrics off it returns the back end
  itself: the hot path pays nothing.
* :func:`observed_provider_call`: the decorator of the provider transport's one request
  method (:meth:`sso_middleware._oidc.http.ProviderHTTP._request`), timing it by endpoint
  and counting its failures (an exception, or an HTTP 5xx answer).

Security caveat: the wrapper sees the arguments of store calls (session ids, records) and
of provider calls (URLs, credentials) and keeps none of them; only the operation or the
endpoint name becomes a label.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar, cast

from . import labels
from .recorder import Metrics, Recorder

_Method = TypeVar("_Method", bound=Callable[..., Any])
_Backend = TypeVar("_Backend")
#: Methods without I/O that the session layer calls on every request (no timing, no delegation cost).
_HOT_PASSTHROUGH = ("may_have_session", "session_cookie", "deletion_cookie")


class ObservedBackend:
    """A session back end whose I/O methods are timed; everything else is the back end's own.

    Security caveat: a proxy, not a subclass: it must not hide any attribute of the back end
    (its flags are copied, the rest is delegated), so the session layer behaves the same.
    """

    def __init__(self, backend: Any, recorder: Metrics) -> None:
        self.wrapped = backend
        self.keeps_records = backend.keeps_records
        self.shared_lock = backend.shared_lock
        for operation in labels.STORE_OPERATIONS:
            setattr(self, operation, recorder.store_call(operation, getattr(backend, operation)))
        for name in _HOT_PASSTHROUGH:  # called on every request: bound here, not looked up through __getattr__
            setattr(self, name, getattr(backend, name))

    def __getattr__(self, name: str) -> Any:  # only for what __init__ did not set
        return getattr(self.wrapped, name)

    def __repr__(self) -> str:
        return f"ObservedBackend({self.wrapped!r})"


def observed_backend(backend: _Backend, recorder: Recorder) -> _Backend:
    """``backend`` with its store calls timed; ``backend`` itself when metrics are off."""
    if not isinstance(recorder, Metrics):
        return backend
    return cast(_Backend, ObservedBackend(backend, recorder))  # the same protocol, by delegation


def observed_provider_call(method: _Method) -> _Method:
    """Decorate ``ProviderHTTP._request(self, method, url, what, **kwargs) -> (status, document)``.

    The recorder is the instance's ``metrics`` attribute (:data:`~.recorder.NO_METRICS` unless
    :meth:`ProviderHTTP.for_config` set a live one).
    """

    @functools.wraps(method)
    def timed(http: Any, verb: str, url: str, what: str, **kwargs: Any) -> Any:
        recorder: Recorder = http.metrics
        if not isinstance(recorder, Metrics):
            return method(http, verb, url, what, **kwargs)
        with recorder.provider_call(what) as call:
            answer = method(http, verb, url, what, **kwargs)
            call.status = answer[0]
        return answer

    return timed  # type: ignore[return-value]


def logout_outcome(channel: str) -> Callable[[_Method], _Method]:
    """Decorate a logout-notification handler ``(self, request, session) -> Response`` of ``channel``.

    Its answer's status is the outcome (2xx done, 4xx refused, 5xx not done now); the
    recorder is that of the handler's ``store`` (a :class:`~sso_middleware._session.state.SessionStore`).
    """

    def decorate(handler: _Method) -> _Method:
        @functools.wraps(handler)
        def counted(self: Any, request: Any, session: Any) -> Any:
            response = handler(self, request, session)
            self.store.metrics.logout_notification(channel, response.status_int)
            return response

        return counted  # type: ignore[return-value]

    return decorate
