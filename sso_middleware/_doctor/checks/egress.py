"""Checks of how provider calls leave this host: the proxy, the CA bundle, the client certificate.

Security caveat: a proxy URL is shown with its password masked
(:func:`~sso_middleware._redaction.redact_url`); the proxy probe opens one TCP connection to the proxy
and sends nothing through it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from ..._config.certificates import certificate_validity, check_client_certificate, count_ca_certificates
from ..._config.settings import SSOConfig
from ..._redaction import redact_url
from .context import FAIL, INFO, OK, WARN, Context, Finding


def check_egress(ctx: Context) -> Iterator[Finding]:
    """How provider calls leave: the proxy (password redacted) and whether it answers, CA bundle, client cert."""
    config = ctx.config
    url = config.discovery_url
    egress = ctx.http.egress
    proxy, source = egress.proxy_for(url)
    if proxy:
        shown = redact_url(proxy)
        yield INFO, f"provider calls go through the proxy {shown} (from {source}; CONNECT tunnels, TLS end to end)"
        yield from _probe_proxy(proxy, source, config.http_timeout)
    else:
        ignored = [name for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
                   if os.environ.get(name)]
        if config.http_trust_env:
            yield INFO, "http_trust_env: no environment proxy applies to the issuer (NO_PROXY or none set); direct"
        elif ignored:
            yield WARN, (f"{ignored[0]} is set in the environment but ignored for provider calls "
                         "(set http_proxy, or http_trust_env = true); calls go direct")
        else:
            yield INFO, "provider calls go direct (no http_proxy)"
    https = url.startswith("https://")
    if config.ca_bundle:
        count = count_ca_certificates(config.ca_bundle)
        note = "" if https else " (unused: the issuer is http://)"
        yield OK, f"ca_bundle {config.ca_bundle}: {count} certificate(s), trusted instead of the default bundle{note}"
    if config.tls_client_cert:
        yield from _describe_client_certificate(config, https)


def _probe_proxy(proxy: str, source: str, timeout: float) -> Iterator[Finding]:
    parts = urlsplit(proxy)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 3128), timeout=timeout):
            pass
    except socket.timeout:
        yield FAIL, f"the proxy {redact_url(proxy)} did not accept a connection within {timeout:g} s (check {source})"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        yield FAIL, f"the proxy {redact_url(proxy)} cannot be reached: {reason} (check {source})"
    else:
        yield OK, f"the proxy {parts.hostname}:{parts.port} accepts connections"


def _describe_client_certificate(config: SSOConfig, https: bool) -> Iterator[Finding]:
    cert = check_client_certificate(config.tls_client_cert, config.tls_client_key)
    status, message = certificate_validity(cert, "tls_client_cert")
    note = "" if https or status != OK else " (unused: the issuer is http://)"
    yield status, message + note
