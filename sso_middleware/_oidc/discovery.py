"""The provider's discovery document (OpenID Connect Discovery 1.0), checked against the configuration.

:meth:`ProviderMetadata.parse` keeps the members the middleware uses and refuses a
document that could send it astray: its ``issuer`` must equal the configured issuer
exactly, and every endpoint must be https (loopback http only for an http issuer
under ``allow_insecure_http``).  Fetching and caching the document is the client's
(:meth:`.OIDCClient.metadata`); the doctor parses with the same function.

Security caveat: the document comes from the network; only its string members are
kept (an ``id_token_signing_alg_values_supported`` of other types counts as not said),
and its issuer is never trusted in place of the configured one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from .._config.settings import SSOConfig
from .._config.urls import check_endpoint_url
from ..errors import ConfigError, ProviderBadResponse

log = logging.getLogger("sso_middleware")


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the discovery document the middleware uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: Optional[str]
    end_session_endpoint: Optional[str]
    iss_parameter_supported: bool
    #: ``id_token_signing_alg_values_supported`` (its string members); None when the provider does not say.
    id_token_signing_algs: Optional[tuple[str, ...]] = None
    #: RFC 9126: the PAR endpoint (None: not offered), and whether the provider refuses authorization without it.
    pushed_authorization_request_endpoint: Optional[str] = None
    require_pushed_authorization_requests: bool = False
    #: RFC 7662/RFC 8414: the token introspection endpoint (None: not offered), for ``bearer_introspection``.
    introspection_endpoint: Optional[str] = None
    #: RFC 7009/RFC 8414: the token revocation endpoint (None: not offered), for ``revoke_tokens_on_logout``.
    revocation_endpoint: Optional[str] = None

    @classmethod
    def parse(cls, document: Any, config: SSOConfig) -> ProviderMetadata:
        """Validate a discovery document against the configuration."""
        if not isinstance(document, dict):
            raise ProviderBadResponse("discovery document is not a JSON object")
        if document.get("issuer") != config.issuer_url:
            raise ProviderBadResponse(
                f"discovery issuer {document.get('issuer')!r} differs from the configured {config.issuer_url!r}",
            )
        urls: dict[str, Optional[str]] = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
                     "end_session_endpoint", "pushed_authorization_request_endpoint", "introspection_endpoint",
                     "revocation_endpoint"):
            value = document.get(name)
            required = name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
            if value is None and not required:
                urls[name] = None
                continue
            if not isinstance(value, str):
                raise ProviderBadResponse(f"discovery {name} is missing or not a string")
            try:
                # An https issuer's endpoints are https too; loopback http only for an http issuer.
                insecure_ok = config.allow_insecure_http and urlsplit(config.issuer_url).scheme == "http"
                check_endpoint_url(name, value, insecure_ok)
            except ConfigError as exc:
                raise ProviderBadResponse(f"discovery {exc.setting}: {exc.message}") from None
            urls[name] = value
        algs = document.get("id_token_signing_alg_values_supported")  # only its strings; none at all: not said
        algs = tuple(alg for alg in algs if isinstance(alg, str)) if isinstance(algs, list) else ()
        methods = document.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            log.warning("sso: the provider does not advertise PKCE S256; sending it anyway")
        return cls(
            issuer=config.issuer_url,
            authorization_endpoint=str(urls["authorization_endpoint"]),
            token_endpoint=str(urls["token_endpoint"]),
            jwks_uri=str(urls["jwks_uri"]),
            userinfo_endpoint=urls["userinfo_endpoint"],
            end_session_endpoint=urls["end_session_endpoint"],
            iss_parameter_supported=document.get("authorization_response_iss_parameter_supported") is True,
            id_token_signing_algs=algs or None,
            pushed_authorization_request_endpoint=urls["pushed_authorization_request_endpoint"],
            require_pushed_authorization_requests=document.get("require_pushed_authorization_requests") is True,
            introspection_endpoint=urls["introspection_endpoint"],
            revocation_endpoint=urls["revocation_endpoint"],
        )
