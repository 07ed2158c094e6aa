"""Values derived from the settings: the issuer's URLs, the app's origins, redirect URIs, cookie names.

:class:`DerivedValues` is the base of :class:`~sso_middleware.SSOConfig`; it holds no state
of its own and reads only settings, so every derived value is computed one way, here.

Security caveat: :meth:`DerivedValues.base_url_for` compares the request's ``Host`` with
the configured list and never builds a URL from it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .urls import origin_of, request_origin


class DerivedValues:
    """The derived values of the settings below (declared here for the type checker only)."""

    issuer: str
    domain: str
    client_id: str
    base_url: str
    callback_path: str
    cookie_name: str
    cookie_domain: str
    session_data_dir: str

    @property
    def issuer_url(self) -> str:
        """The issuer the provider must announce (from ``issuer`` or ``domain``)."""
        return self.issuer or f"https://{self.domain}/"

    @property
    def discovery_url(self) -> str:
        return self.issuer_url.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def base_urls(self) -> tuple[str, ...]:
        """The origins (with the shared path prefix) listed in ``base_url``; the first is the default."""
        return tuple(self.base_url.split())

    @property
    def primary_url(self) -> str:
        """The first ``base_url``: for requests whose Host is not listed, and where no request is at hand."""
        return self.base_urls[0]

    def base_url_for(self, environ: Mapping[str, Any]) -> str:
        """The listed ``base_url`` whose origin is the request's (``wsgi.url_scheme`` + ``Host``), else the first.

        The Host header is the client's to choose: it is only compared with the list, never
        used to build a URL.  ``X-Forwarded-*`` headers count only where a proxy-fix
        middleware in front already rewrote the environ from them (this one never reads them).
        """
        urls = self.base_urls
        if len(urls) > 1:
            origin = request_origin(environ)
            for url in urls:
                if origin_of(url) == origin:
                    return url
        return urls[0]

    @property
    def redirect_uri(self) -> str:
        """The default (first) redirect URI; :meth:`redirect_uri_for` picks the request's."""
        return self.primary_url + self.callback_path

    @property
    def redirect_uris(self) -> tuple[str, ...]:
        """Every redirect URI to register at the provider (one per listed origin)."""
        return tuple(url + self.callback_path for url in self.base_urls)

    def redirect_uri_for(self, environ: Mapping[str, Any]) -> str:
        return self.base_url_for(environ) + self.callback_path

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of the first ``base_url``."""
        return origin_of(self.primary_url) or ""

    @property
    def origins(self) -> tuple[str, ...]:
        """The origins of every listed ``base_url``."""
        return tuple(origin_of(url) or "" for url in self.base_urls)

    @property
    def secure_cookies(self) -> bool:
        return self.primary_url.startswith("https://")  # all listed origins agree (checked at build)

    @property
    def cookie_path(self) -> str:
        """The session cookie's ``Path``: ``base_url``'s path, so apps under other paths of the origin keep theirs."""
        return urlsplit(self.primary_url).path.rstrip("/") or "/"

    @property
    def session_cookie_name(self) -> str:
        """``cookie_name``, or the default: ``__Host-`` prefixed whenever the browser can enforce it.

        ``__Host-`` requires ``Path=/`` and no ``Domain``; under a path prefix the
        default is ``__Secure-sso_session`` (Secure enforced, the path kept).
        """
        if self.cookie_name:
            return self.cookie_name
        if not self.secure_cookies or self.cookie_domain:
            return "sso_session"
        return "__Host-sso_session" if self.cookie_path == "/" else "__Secure-sso_session"

    @property
    def is_auth0(self) -> bool:
        """True when the provider is an Auth0 tenant (legacy ``/v2/logout`` applies)."""
        host = urlsplit(self.issuer_url).hostname or ""
        return bool(self.domain) or host.endswith(".auth0.com")

    @property
    def data_dir(self) -> str:
        """Where the ``file`` store keeps sessions (private default per application)."""
        if self.session_data_dir:
            return self.session_data_dir
        digest = hashlib.sha256(f"{self.issuer_url}|{self.client_id}|{self.primary_url}".encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"sso_middleware-{os.getuid()}", digest)
