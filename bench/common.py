"""Shared helpers: statistics, a minimal in-process WSGI client, real sign-ins against the bundled provider."""

from __future__ import annotations

import http.cookiejar
import io
import re
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import urljoin, urlsplit

import requests
from webob import Request

from sso_middleware.testing import DevProvider

from .servers import BenchError

USER = "alice"
CONNECTION = "Username-Password-Authentication"
REDIRECTS = (301, 302, 303, 307, 308)


# -- statistics ---------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * pct / 100.0
    low = int(k)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (k - low)


@dataclass
class Summary:
    """Distribution of one measurement (same unit as the samples)."""

    n: int
    median: float
    p25: float
    p75: float
    p90: float
    p99: float
    mean: float

    @classmethod
    def of(cls, samples: Iterable[float], offset: float = 0.0) -> Summary:
        values = sorted(value - offset for value in samples)
        if not values:
            raise BenchError("no samples")
        return cls(
            n=len(values),
            median=percentile(values, 50),
            p25=percentile(values, 25),
            p75=percentile(values, 75),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
            mean=statistics.fmean(values),
        )


# -- a minimal WSGI client (in-process) ----------------------------------------------------


def base_environ(cookie: str = "", path: str = "/", host: str = "127.0.0.1:8000") -> dict[str, Any]:
    """A browser-like GET environ (PEP 3333 keys plus the usual headers)."""
    name, _, port = host.partition(":")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": name,
        "SERVER_PORT": port or "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.5",
        "HTTP_ACCEPT_ENCODING": "gzip, deflate",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    return environ


def call_once(app: Callable[..., Any], environ: dict[str, Any]) -> tuple[str, bytes]:
    """One request through ``app``: (status, body)."""
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., None]:
        seen.append(status)
        return lambda data: None

    result = app(dict(environ), start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (seen[-1] if seen else ""), body


class Jar:
    """Cookies of one in-process browser (one host; last Set-Cookie wins)."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def get(self, app: Callable[..., Any], url: str, base_url: str) -> Any:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = Request.blank(path, base_url=base_url)
        if self.cookies:
            request.headers["Cookie"] = self.header()
        response = request.get_response(app)
        for value in response.headers.getall("Set-Cookie"):
            pair = value.split(";", 1)[0]
            name, _, content = pair.partition("=")
            if not content.strip('"') or _expired(value):
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = content
        return response


def _expired(set_cookie: str) -> bool:
    """Whether a Set-Cookie header deletes its cookie (Max-Age=0 or an Expires in the past)."""
    if re.search(r"max-age=0\b", set_cookie, re.IGNORECASE):
        return True
    match = re.search(r"expires=([^;]+)", set_cookie, re.IGNORECASE)
    when = http.cookiejar.http2time(match.group(1).strip()) if match else None
    return when is not None and when < time.time()


def sign_in_wsgi(app: Callable[..., Any], provider: DevProvider, start_path: str, cookie_name: str,
                 base_url: str, expect: bytes = b"hello " + USER.encode()) -> str:
    """Sign ``alice`` in to an in-process app against the real provider; the app's ``Cookie`` value.

    The app's requests are WSGI calls; the browser's visit to the provider is real HTTP
    (``DevProvider.login``), and so are the app's calls to the provider's token endpoint.
    """
    jar = Jar()
    response = jar.get(app, start_path, base_url)
    if response.status_int not in REDIRECTS:
        raise BenchError(f"{start_path} answered {response.status} instead of a redirect to the provider")
    back = provider.login(requests.Session(), USER, response.location)
    if back.status_code not in REDIRECTS:
        raise BenchError(f"the provider did not redirect back: HTTP {back.status_code} at {back.url}")
    response = jar.get(app, back.headers["Location"], base_url)
    for _ in range(5):
        if response.status_int not in REDIRECTS:
            break
        response = jar.get(app, response.location, base_url)
    if response.status_int != 200 or response.body != expect:
        raise BenchError(f"sign-in did not land signed in: {response.status} {response.body[:200]!r}")
    if cookie_name not in jar.cookies:
        raise BenchError(f"no {cookie_name} cookie after sign-in (have {sorted(jar.cookies)})")
    return f"{cookie_name}={jar.cookies[cookie_name]}"


def browse(http: requests.Session, url: str, max_hops: int = 10) -> requests.Response:
    """GET ``url`` following redirects one at a time (cookies kept by ``http``)."""
    response = http.get(url, allow_redirects=False, timeout=10)
    for _ in range(max_hops):
        if response.status_code not in REDIRECTS:
            return response
        response = http.get(urljoin(response.url, response.headers["Location"]), allow_redirects=False, timeout=10)
    raise BenchError(f"more than {max_hops} redirects at {response.url}")


def sign_in_http(provider: DevProvider, start_url: str, home_url: str, cookie_name: str,
                 expect: str = "hello " + USER) -> str:
    """Sign ``alice`` in to a served app like a browser; the app's session cookie as ``name=value``."""
    http = requests.Session()
    back = provider.login(http, USER, start_url)
    if back.status_code not in REDIRECTS:
        raise BenchError(f"the provider did not redirect back to {start_url}: HTTP {back.status_code}")
    landing = browse(http, urljoin(back.url, back.headers["Location"]))
    if landing.status_code != 200 or landing.text != expect:
        raise BenchError(f"sign-in at {start_url} did not land signed in: {landing.status_code} {landing.text[:200]!r}")
    origin = urlsplit(start_url)
    value: Optional[str] = None
    for cookie in http.cookies:
        if cookie.name == cookie_name and (cookie.domain or "").lstrip(".") in (origin.hostname, ""):
            value = cookie.value
    if value is None:
        raise BenchError(f"no {cookie_name} cookie after signing in at {start_url}")
    check_served(home_url, f"{cookie_name}={value}", expect)
    return f"{cookie_name}={value}"


def check_served(url: str, cookie: str, expect: str) -> str:
    """The server answers ``expect`` (200) to this cookie: the load test measures what it claims to.

    Returns the cookie a browser would send next: the same, or the one the answer set in its place
    (the cookie store sends a new cookie when the idle stamp is written; wrk would not keep it).
    """
    headers = {"Cookie": cookie} if cookie else {}
    answer = requests.get(url, headers=headers, allow_redirects=False, timeout=10)
    if answer.status_code != 200 or answer.text != expect:
        raise BenchError(f"{url} with {'a' if cookie else 'no'} cookie answered {answer.status_code} "
                         f"{answer.text[:100]!r}, expected {expect!r}")
    return refreshed(cookie, answer.raw.headers.getlist("Set-Cookie"))


def refreshed(cookie: str, set_cookies: Iterable[str]) -> str:
    """``cookie`` (``name=value``) as a browser keeps it after these ``Set-Cookie`` headers (new values only)."""
    name = cookie.partition("=")[0]
    for header in set_cookies:
        set_name, _, value = header.split(";", 1)[0].strip().partition("=")
        if name and set_name == name and value:
            cookie = f"{name}={value}"
    return cookie


class Deadline:
    """A time budget for a bounded loop."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() > self.end
