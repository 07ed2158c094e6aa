"""URL rules shared by the settings, the routes and api_session: origins, loopback, plain http, endpoint URLs.

Security caveat: :func:`request_origin` is whatever the client sent; use it only to compare with
configured origins, never to build a URL.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import urlsplit

from ..errors import ConfigError

_LOOPBACK_NAMES = frozenset({"localhost"})
#: An origin as origin_of() writes it whose host is a CSP host-source without wildcards: DNS labels or an IP address.
_PLAIN_ORIGIN = re.compile(r"https?://(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
                           r"|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def origin_of(url: str) -> Optional[str]:
    """``scheme://host[:port]`` of an absolute http(s) URL (lower-cased, default port dropped), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def request_origin(environ: Mapping[str, Any]) -> Optional[str]:
    """The canonical origin a request was sent to (``wsgi.url_scheme`` and ``HTTP_HOST``, else ``SERVER_NAME``).

    For comparison with configured origins only: it is whatever the client sent.
    """
    scheme = str(environ.get("wsgi.url_scheme") or "http")
    host = str(environ.get("HTTP_HOST") or "")
    if not host:
        host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}".rstrip(":")
    if not host or not all("\x21" <= char <= "\x7e" for char in host) or any(c in host for c in "/?#@\\"):
        return None
    return origin_of(f"{scheme}://{host}")


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def insecure_transport(scheme: str, host: str, allow_insecure_http: bool) -> Optional[str]:
    """Why a URL of ``scheme`` to ``host`` may not carry credentials, or None: the one plain-http rule.

    ``https`` always may; ``http`` only to a loopback host (:func:`is_loopback_host`), and only
    with ``allow_insecure_http``; any other scheme never.  The provider's URLs, ``base_url`` and
    the API calls of :func:`~sso_middleware.api_session` all follow it.
    """
    if scheme == "https":
        return None
    if scheme != "http":
        return "must be an absolute https:// URL"
    if not allow_insecure_http:
        return "uses http://; use https:// (allow_insecure_http is for loopback tests)"
    if not is_loopback_host(host):
        return "uses http://, which is allowed only on a loopback host"
    return None


def check_endpoint_url(name: str, url: str, allow_insecure_http: bool) -> None:
    """Refuse a URL that is not https (or http on loopback when allowed); used for provider URLs too."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(name, f"{url!r} is not a valid URL") from exc
    if not parts.hostname or parts.scheme not in ("http", "https"):
        raise ConfigError(name, f"{url!r} must be an absolute https:// URL")
    problem = insecure_transport(parts.scheme, parts.hostname, allow_insecure_http)
    if problem:
        raise ConfigError(name, f"{url!r} {problem}")
    if parts.username or parts.password:
        raise ConfigError(name, "must not contain credentials")
    if parts.fragment or "#" in url or not all("\x21" <= char <= "\x7e" for char in url):
        raise ConfigError(name, f"{url!r} must not contain a fragment, spaces or control characters")


def provider_origins(issuer_url: str, end_session_endpoint: Optional[str]) -> list[str]:
    """The provider's page origins: the issuer's, and the end-session endpoint's when it differs.

    What may frame the front-channel logout route (``frame-ancestors``): the provider's logout
    page is served from one of them.

    Security caveat: the end-session endpoint comes from discovery and is spliced into a CSP
    source list, so its origin is added only when its host is plain (CSP host characters or an
    IP address): ``https://*``, ``;``, ``,`` or quotes would widen the policy or add directives.
    """
    origins = [origin_of(issuer_url) or issuer_url]
    other = origin_of(end_session_endpoint) if end_session_endpoint else None
    if other is not None and other not in origins and _PLAIN_ORIGIN.fullmatch(other):
        origins.append(other)
    return origins
