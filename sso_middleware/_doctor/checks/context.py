"""What every check works with: the :class:`Context`, the statuses, a :class:`Check`.

A check is a generator ``run(ctx)`` yielding :data:`Finding` pairs ``(status, message)``.
The :class:`Context` carries the configuration, the middleware's own HTTP client and what
discovery found (``metadata`` stays None when discovery failed; the checks marked
``needs_discovery`` are then skipped).

Security caveat: every provider request goes through the middleware's bounded
:class:`~sso_middleware._oidc.http.ProviderHTTP` (its timeouts, size limit, proxy and TLS settings, no
redirects); :class:`RecordingAdapter` only remembers the last answer's status and headers,
it sends nothing of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ..._config.settings import SSOConfig
from ..._observe import NO_METRICS
from ..._oidc.discovery import ProviderMetadata
from ..._oidc.http import ProviderHTTP
from ...errors import ProviderError

Status = Literal["OK", "WARN", "FAIL", "INFO", "SKIP"]
OK: Status = "OK"
WARN: Status = "WARN"
FAIL: Status = "FAIL"
INFO: Status = "INFO"
SKIP: Status = "SKIP"

#: What a check yields: a status and a one-line message.
Finding = tuple[Status, str]


@dataclass
class Answer:
    """What the transport saw of the last HTTP answer (status, headers, when)."""

    url: str
    status: int
    headers: Mapping[str, str]
    sent_at: float
    received_at: float


class RecordingAdapter(HTTPAdapter):
    """A ``requests`` transport that remembers the last answer's status and headers.

    :class:`~sso_middleware._oidc.http.ProviderHTTP` returns only the parsed body; mounted on its session,
    this adds what the clock check (``Date``) and the reachability check (any status)
    need, from the very same bounded request.
    """

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.last: Optional[Answer] = None

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        sent_at = time.time()
        response = super().send(request, *args, **kwargs)
        self.last = Answer(str(request.url), response.status_code, CaseInsensitiveDict(response.headers),
                           sent_at, time.time())
        return response


@dataclass
class Context:
    """Shared by the checks: the configuration, the HTTP client, and what discovery found."""

    config: SSOConfig
    http: ProviderHTTP
    transport: RecordingAdapter
    document: dict[str, Any] = field(default_factory=dict)
    metadata: Optional[ProviderMetadata] = None
    discovery_answer: Optional[Answer] = None

    @classmethod
    def for_config(cls, config: SSOConfig) -> Context:
        http = ProviderHTTP.for_config(config)
        http.metrics = NO_METRICS  # the doctor's calls are not the application's (nor in its multiprocess folder)
        transport = RecordingAdapter()
        http.session.mount("http://", transport)
        http.session.mount("https://", transport)
        return cls(config, http, transport)

    def close(self) -> None:
        self.http.session.close()

    def get(self, url: str, what: str) -> tuple[Optional[Answer], Any, Optional[ProviderError]]:
        """GET through the middleware's bounded client: the answer seen (if any), the JSON, the error."""
        self.transport.last = None
        try:
            _, document = self.http.get_json(url, what)
        except ProviderError as exc:
            return self.transport.last, None, exc
        return self.transport.last, document, None


@dataclass(frozen=True)
class Check:
    """One entry of the checklist."""

    name: str
    run: Callable[[Context], Iterator[Finding]]
    needs_discovery: bool = False
