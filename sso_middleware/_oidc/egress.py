"""Outgoing connections to the provider in enterprise networks: proxy, private CAs, client certificates.

:class:`Egress` holds the four settings that decide *how* :class:`~.http.ProviderHTTP`
reaches the provider -- ``http_proxy`` (with ``http_trust_env``), ``ca_bundle`` and
``tls_client_cert``/``tls_client_key`` -- and turns them into the ``proxies``, ``verify``
and ``cert`` arguments of the transport adapter.  It also names the setting to check when
a connection fails (:meth:`Egress.failure`), and validates the files at build time
(:func:`validate`), so a wrong path is a :class:`~sso_middleware.errors.ConfigError`, not a failed
sign-in.

Security caveats: ``http_proxy`` may carry ``user:password``; it is kept out of ``repr``
and every message shows it through :func:`~sso_middleware._redaction.redact_url`.  An ``http://`` proxy sees the
host names the middleware connects to (CONNECT), never the traffic: provider calls are
TLS tunnels through it, verified end to end against ``ca_bundle``.  ``ca_bundle`` replaces
the default trust store for the provider (and an ``https://`` proxy); it does not add to it.
Plain ``http://`` to a loopback host (``allow_insecure_http``) never goes through a proxy.
Environment proxies (``HTTPS_PROXY``, ``NO_PROXY``, ...) are read only with
``http_trust_env``: a variable set for some other program must not silently reroute the
calls that carry the client secret and the users' codes.
"""

from __future__ import annotations

import http.client
import re
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Union
from urllib.parse import urlsplit

import requests
import requests.utils
import urllib3.exceptions
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .._config.certificates import check_client_certificate, count_ca_certificates
from .._config.urls import is_loopback_host
from .._redaction import redact_url
from ..errors import (
    ConfigError,
    ProviderError,
    ProviderProxyError,
    ProviderTimeout,
    ProviderTlsError,
    ProviderUnreachable,
)

if TYPE_CHECKING:  # pragma: no cover
    from .._config.settings import SSOConfig



@dataclass(frozen=True)
class Egress:
    """How provider calls leave the process: the proxy, the trusted CAs, the client certificate."""

    proxy: str = field(default="", repr=False)
    trust_env: bool = False
    ca_bundle: str = ""
    client_cert: str = ""
    client_key: str = ""

    @classmethod
    def from_config(cls, config: SSOConfig) -> Egress:
        return cls(config.http_proxy, config.http_trust_env, config.ca_bundle, config.tls_client_cert,
                   config.tls_client_key)

    def __repr__(self) -> str:
        return (f"Egress(proxy={redact_url(self.proxy)!r}, trust_env={self.trust_env}, "
                f"ca_bundle={self.ca_bundle!r}, client_cert={self.client_cert!r})")

    @property
    def verify(self) -> Union[bool, str]:
        """The adapter's ``verify``: the ``ca_bundle`` path, else the default bundle (always verified)."""
        return self.ca_bundle or True

    @property
    def cert(self) -> Optional[tuple[str, str]]:
        """The adapter's ``cert``: (certificate, key) for mutual TLS, or None."""
        return (self.client_cert, self.client_key) if self.client_cert else None

    def proxy_for(self, url: str) -> tuple[str, str]:
        """The proxy for ``url`` and the setting it came from (``""`` when the call goes direct).

        ``http_proxy`` applies to every call; otherwise, with ``http_trust_env``, the
        environment's proxy for the URL's scheme unless ``NO_PROXY`` exempts its host.
        A plain-http loopback URL always goes direct (:func:`goes_direct`).
        """
        if goes_direct(url):
            return "", ""
        if self.proxy:
            return self.proxy, "http_proxy"
        if self.trust_env:
            try:
                found = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
            except ValueError:  # a URL requests cannot parse: the call itself fails, cleanly
                return "", ""
            if found:
                scheme = urlsplit(url).scheme.upper()
                return found, f"{scheme}_PROXY (http_trust_env)"
        return "", ""

    def proxies_for(self, url: str) -> dict[str, str]:
        """The adapter's ``proxies`` for ``url``: one proxy for every scheme, or none."""
        proxy, _ = self.proxy_for(url)
        return {"all": proxy} if proxy else {}

    def failure(self, exc: BaseException, what: str, url: str, timeout: float) -> ProviderError:
        """A :class:`ProviderError` for a failed call whose message names the setting to check.

        Only fixed words and the setting's name reach the message: never the exception's
        text, which could quote the proxy URL with its password.
        """
        proxy, source = self.proxy_for(url)
        via = f" through the proxy (check {source})" if proxy else ""
        if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError)) or (
            isinstance(exc, requests.exceptions.ProxyError) and _timed_out(exc)
        ):
            return ProviderTimeout(f"{what}: no answer within {timeout}s{via}")
        if isinstance(exc, requests.exceptions.ProxyError):
            setting = source or "http_proxy"
            return ProviderProxyError(f"{what}: {_proxy_reason(exc)} (check {setting})")
        if isinstance(exc, requests.exceptions.SSLError) or _is_tls(exc):
            return ProviderTlsError(f"{what}: {self._tls_reason(exc, source)}")
        if isinstance(exc, OSError) and "CA certificate bundle" in str(exc):
            return ProviderTlsError(f"{what}: ca_bundle cannot be read (check ca_bundle)")
        if isinstance(exc, OSError) and ("TLS certificate file" in str(exc) or "TLS key file" in str(exc)):
            return ProviderTlsError(f"{what}: client certificate cannot be read "
                                    "(check tls_client_cert, tls_client_key)")
        if self.cert is not None and url.startswith("https://") and _closed_early(exc):
            # TLS 1.3: a server refusing the client certificate does so after the client's last
            # handshake flight, so the client only sees the connection closed before any answer.
            return ProviderTlsError(f"{what}: the provider closed the connection without an "
                                    "answer: it may refuse the client certificate "
                                    "(check tls_client_cert, tls_client_key)")
        return ProviderUnreachable(f"{what}: {type(exc).__name__}{via}")

    def _tls_reason(self, exc: BaseException, proxy_source: str) -> str:
        text = _chain_text(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text:
            if "match" in text or "mismatch" in text:
                return "TLS certificate does not match the provider's host name (check issuer)"
            if "expired" in text:
                return "TLS certificate of the provider has expired"
            return "TLS certificate not trusted (check ca_bundle)"
        if self.cert is not None:
            return "TLS handshake failed: the provider refused the client certificate " \
                   "(check tls_client_cert, tls_client_key)"
        if proxy_source:
            return "TLS handshake failed: the provider may require a client certificate (set tls_client_cert, " \
                   "tls_client_key)"
        return "TLS handshake failed: the provider may require a client certificate (set tls_client_cert, " \
               "tls_client_key), or be reachable only through a proxy (set http_proxy)"


def goes_direct(url: str) -> bool:
    """Whether ``url`` is plain ``http://`` to a loopback host, which no proxy may ever carry.

    Plain http is allowed only because the bytes never leave this machine; through a proxy
    they would (credentials and tokens in clear text to the proxy host), and the proxy's own
    loopback would answer.  The URL is read by urllib3's parser, the one ``requests`` connects with.
    """
    try:
        parts = parse_url(url)
    except LocationParseError:
        return False
    return (parts.scheme or "").lower() == "http" and bool(parts.host) and is_loopback_host(str(parts.host))


# -- validation at build time ---------------------------------------------------------


def validate(config: SSOConfig) -> None:
    """Check ``http_proxy``, ``ca_bundle`` and the client certificate; one ConfigError naming the setting."""
    if config.http_proxy:
        check_proxy_url(config.http_proxy)
    if config.ca_bundle:
        count_ca_certificates(config.ca_bundle)
    if bool(config.tls_client_cert) != bool(config.tls_client_key):
        missing = "tls_client_key" if config.tls_client_cert else "tls_client_cert"
        raise ConfigError(missing, "tls_client_cert and tls_client_key go together: give both or neither")
    if config.tls_client_cert:
        check_client_certificate(config.tls_client_cert, config.tls_client_key)


def check_proxy_url(url: str) -> None:
    """An ``http://`` or ``https://`` proxy URL with a host and port, optionally ``user:password@``."""
    problem = "must be a proxy URL like http://proxy.example:3128 (optionally http://user:password@...)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError("http_proxy", problem) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise ConfigError("http_proxy", problem + " (scheme, host and port are required)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError("http_proxy", problem + " (no path, query or fragment)")
    if not all("\x21" <= char <= "\x7e" for char in url):
        raise ConfigError("http_proxy", "must not contain spaces or control characters (percent-encode them)")


# -- classification helpers -------------------------------------------------------------


def _timed_out(exc: BaseException) -> bool:
    # NewConnectionError subclasses urllib3's ConnectTimeoutError, but means "refused"
    return any(isinstance(item, (TimeoutError, urllib3.exceptions.TimeoutError))
               and not isinstance(item, urllib3.exceptions.NewConnectionError) for item in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it (``__cause__``, ``__context__``, urllib3's ``reason``, args)."""
    seen: list[BaseException] = []
    pending = [exc]
    while pending and len(seen) < 20:
        current = pending.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return seen


def _closed_early(exc: BaseException) -> bool:
    return any(isinstance(item, (ConnectionResetError, http.client.RemoteDisconnected)) for item in _chain(exc))


def _chain_text(exc: BaseException) -> str:
    return " | ".join(str(item) for item in _chain(exc))


def _is_tls(exc: BaseException) -> bool:
    return any(isinstance(item, ssl.SSLError) for item in _chain(exc))


def _proxy_reason(exc: BaseException) -> str:
    chain = _chain(exc)
    if any(isinstance(item, ConnectionRefusedError) for item in chain):
        return "proxy refused the connection"
    match = re.search(r"Tunnel connection failed: (\d{3})", _chain_text(exc))
    if match:
        status = match.group(1)
        if status in ("401", "407"):
            return f"proxy asks for credentials or refused them (HTTP {status})"
        return f"proxy refused the tunnel to the provider (HTTP {status})"
    if any(isinstance(item, ssl.SSLError) for item in chain):
        return "TLS to the https:// proxy failed (its certificate must be trusted by ca_bundle)"
    return "proxy cannot be reached"
