"""Fuzzing the metrics and health routes (hypothesis): whatever arrives, a clean, bounded answer.

Random methods, query strings, bodies, client addresses (``REMOTE_ADDR``: v4, v6, mapped,
zone-indexed, garbage), ``Authorization`` headers (near misses of the token, other schemes,
non-ASCII) and ``Accept`` headers (OpenMetrics variants, garbage versions) are thrown at
``metrics_path`` and ``health_path`` as raw WSGI environs.  Whatever arrives:

* the status is 200, 401, 403, 405 (metrics) or 200, 405 (health: store and provider are
  up), never another 4xx/5xx, and never a traceback;
* metrics are served only to a listed network *and* with the exact token; a refusal shows
  no metric; health says exactly ``ok`` (or nothing, for HEAD);
* every header is latin-1 text without CR or LF;
* the application is never called;
* afterwards, the series are still the fixed set: the fuzz added no label value.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from sso_middleware import SSOMiddleware

from ..conftest import SESSION_SECRET
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER, FakeProvider
from .test_fuzz import call, environ_for

METRICS = "/auth/metrics"
HEALTH = "/auth/health"
TOKEN = "T0k3n-" + "x" * 34
NETWORK = ipaddress.ip_network("10.20.0.0/16")

ADDRESSES = st.one_of(
    st.sampled_from(["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.20.3.4", "::ffff:10.20.3.4", "fe80::1%eth0",
                     "10.21.0.1", "", " ", "10.20.0.1 ", "localhost", "0x7f.1", "999.1.1.1", "::ffff:999.1.1.1"]),
    st.ip_addresses().map(str),
    st.text(max_size=30),
)
AUTHORIZATION = st.one_of(
    st.sampled_from(["Bearer " + TOKEN, "bearer " + TOKEN, "BEARER  " + TOKEN + " ", "Bearer " + TOKEN[:-1],
                     "Bearer " + TOKEN + "x", "Basic " + TOKEN, TOKEN, "Bearer", "Bearer ", ""]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60),
    st.text(max_size=20).map(lambda tail: "Bearer " + TOKEN[:20] + tail),
)
ACCEPT = st.one_of(
    st.sampled_from(["", "*/*", "text/plain", "text/plain; version=0.0.4", "application/openmetrics-text",
                     "application/openmetrics-text; version=1.0.0", "application/openmetrics-text; version=x.y",
                     "application/openmetrics-text; version=", "application/openmetrics-text; escaping=nope",
                     "text/plain; version=abc; escaping=", "application/openmetrics-text;;;,text/plain"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80),
)
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "get", "TRACE"])


class Never:
    """The application: it must never be reached through these routes."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls += 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app"]


def _target(directory: str) -> tuple[SSOMiddleware, Never, CollectorRegistry]:
    app, registry = Never(), CollectorRegistry()
    middleware = SSOMiddleware(
        app, issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=BASE_URL,
        session_secret=SESSION_SECRET, session_data_dir=directory, http_transport=FakeProvider().transport(),
        metrics_path=METRICS, health_path=HEALTH, metrics_registry=registry, metrics_token=TOKEN,
        metrics_allowed_networks=str(NETWORK),
    )
    return middleware, app, registry


def _allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version == 4 and ip in NETWORK


def _series(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(sample.name, tuple(sorted(sample.labels.items()))) for metric in registry.collect()
            for sample in metric.samples}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> tuple[SSOMiddleware, Never, CollectorRegistry, Any]:
    middleware, app, registry = _target(str(tmp_path_factory.mktemp("fuzz-observe")))
    call(middleware, environ_for("GET", HEALTH, "", b"", {}))  # discovery fetched, store read: the series exist
    return middleware, app, registry, _series(registry)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_metrics_and_health_routes_under_fuzz(target: Any, data: st.DataObject) -> None:
    middleware, app, registry, before = target
    path = data.draw(st.sampled_from([METRICS, HEALTH]))
    method = data.draw(METHODS)
    address = data.draw(ADDRESSES)
    authorization = data.draw(AUTHORIZATION)
    headers = {"Accept": data.draw(ACCEPT)}
    if data.draw(st.booleans()):
        headers["Authorization"] = authorization
    query = data.draw(st.text(max_size=40)).encode("utf-8", "surrogatepass").decode("latin-1")
    body = data.draw(st.binary(max_size=200))
    environ = environ_for(method, path, query, body, headers)
    environ["REMOTE_ADDR"] = address

    status, response_headers, content = call(middleware, environ)

    assert b"Traceback" not in content
    for name, value in response_headers:
        assert "\r" not in name + value and "\n" not in name + value
        (name + value).encode("latin-1")
    assert app.calls == 0
    if method not in ("GET", "HEAD"):
        assert status == 405, (method, status)
    elif path == HEALTH:
        assert status == 200 and content in (b"ok\n", b"")
    else:
        token_ok = headers.get("Authorization", "").partition(" ")[0].lower() == "bearer" and \
            headers["Authorization"].partition(" ")[2].strip() == TOKEN
        if not _allowed(address):
            assert status == 403 and b"sso_" not in content
        elif not token_ok:
            assert status == 401 and b"sso_" not in content
        else:
            assert status == 200
            assert method == "HEAD" or b"sso_sign_ins_total" in content
    assert _series(registry) - before == set(), "the fuzz added series"

