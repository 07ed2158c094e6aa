"""``requests`` transports for tests: answers made in memory, and a recorder of real requests.

The middleware reaches its provider only through a ``requests`` transport adapter, which
``SSOMiddleware(..., http_transport=...)`` replaces for every URL. These are the pieces a
test puts there:

- :func:`make_response`: a ``requests.Response`` whose body is read from memory the way
  the middleware reads a real one (streamed, size-bounded), for adapters that answer
  requests themselves.
- :class:`FakeProviderAdapter`: a :class:`~.fake_provider.FakeProvider` as a transport.
- :class:`RecordingTransport`: sends every request on through a real (or any other)
  adapter and keeps it, so a test against a real provider can count what went over the
  wire (``requests_to("/jwks")``) without patching the middleware.
"""

from __future__ import annotations

import io
import json
import threading
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.response import HTTPResponse

if TYPE_CHECKING:
    from .fake_provider import FakeProvider

__all__ = ["RecordingTransport", "make_response"]


def make_response(
    request: requests.PreparedRequest, status: int, body: bytes, content_type: str = "application/json"
) -> requests.Response:
    """A ``requests.Response`` with a readable ``raw`` body, as a real transport gives."""
    response = requests.Response()
    response.status_code = status
    response.raw = HTTPResponse(
        body=io.BytesIO(body), status=status, preload_content=False, headers={"Content-Type": content_type}
    )
    response.headers["Content-Type"] = content_type
    response.url = str(request.url)
    response.request = request
    return response


class RecordingTransport(BaseAdapter):
    """A transport that keeps every request it sends on through ``inner`` (a fresh ``HTTPAdapter`` by default).

    ``requests`` lists them in order; :meth:`requests_to` picks those whose path ends with
    a suffix. It is thread-safe: a middleware served by a threaded server may send from
    several threads at once.
    """

    def __init__(self, inner: Optional[BaseAdapter] = None) -> None:
        super().__init__()
        self.inner = inner if inner is not None else HTTPAdapter()
        self.requests: list[requests.PreparedRequest] = []
        self._lock = threading.Lock()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        with self._lock:
            self.requests.append(request)
        return self.inner.send(request, **kwargs)

    def requests_to(self, suffix: str) -> list[requests.PreparedRequest]:
        """The requests sent so far whose URL path ends with ``suffix``, oldest first."""
        with self._lock:
            return [sent for sent in self.requests if urlsplit(str(sent.url)).path.endswith(suffix)]

    def close(self) -> None:
        self.inner.close()


class FakeProviderAdapter(BaseAdapter):
    """A ``requests`` transport that answers from a :class:`FakeProvider`."""

    def __init__(self, provider: FakeProvider) -> None:
        super().__init__()
        self.provider = provider

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.provider.calls.append(request)
        status, payload = self.provider.handle(request)
        if isinstance(payload, requests.Response):
            return payload
        return make_response(request, status, json.dumps(payload).encode())

    def close(self) -> None:
        pass
