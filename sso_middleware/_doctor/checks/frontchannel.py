"""The front-channel logout check: what the provider offers, the URL to register, what will work.

OpenID Connect Front-Channel Logout 1.0 has the provider's logout page frame each
application's ``frontchannel_logout_uri``.  The provider says in discovery whether it does
(``frontchannel_logout_supported``) and whether it sends ``iss`` and ``sid`` with it
(``frontchannel_logout_session_supported``); without them only the browser's own cookie can
name the session, and a cross-site iframe does not carry a ``SameSite=Lax`` cookie.

Security caveat: none of these lines holds a secret; the URL printed is public.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from ..._config.urls import provider_origins
from .context import INFO, OK, WARN, Context, Finding

#: The path the README suggests when the provider offers front-channel logout.
SUGGESTED_PATH = "/auth/frontchannel-logout"


def check_frontchannel_logout(ctx: Context) -> Iterator[Finding]:
    """``frontchannel_logout_path`` against the provider's ``frontchannel_logout_*`` metadata."""
    config, document = ctx.config, ctx.document
    supported = document.get("frontchannel_logout_supported") is True
    with_sid = document.get("frontchannel_logout_session_supported") is True
    path = config.frontchannel_logout_path
    if not path:
        if supported:
            yield INFO, ("the provider offers front-channel logout; frontchannel_logout_path is empty, so this "
                         f"application is not told (set it, e.g. {SUGGESTED_PATH}, and register its URL)")
        else:
            yield INFO, "front-channel logout off (frontchannel_logout_path empty)"
        return
    base = config.base_urls[0]
    yield INFO, (f"Front-Channel Logout URI: {base}{path} (register it with frontchannel_logout_session_required "
                 "= true, so the provider sends iss and sid)")
    if not supported:
        yield WARN, (f"the provider does not advertise frontchannel_logout_supported: {path} will not be framed "
                     "(Auth0 documents back-channel logout only: use backchannel_logout_path there)")
        return
    assert ctx.metadata is not None  # needs_discovery
    # The end-session endpoint as discovery parsed it for the middleware: the same origins the route sends.
    ancestors = provider_origins(config.issuer_url, ctx.metadata.end_session_endpoint)
    yield OK, f"front-channel logout supported; {path} may be framed by {' '.join(ancestors)} only"
    if with_sid:
        yield OK, ("frontchannel_logout_session_supported: with iss and sid the sessions end in the session store, "
                   "no cookie needed (works when the provider is another site)")
        return
    provider_host = (urlsplit(config.issuer_url).hostname or "").lower()
    app_host = (urlsplit(base).hostname or "").lower()
    if provider_host == app_host:
        yield INFO, ("the provider sends no sid (frontchannel_logout_session_supported not advertised): the "
                     f"browser's own session cookie ends the session; {app_host} serves both, so the iframe sends it")
    else:
        yield WARN, ("the provider sends no sid (frontchannel_logout_session_supported not advertised): only the "
                     f"browser's own cookie can end the session, and an iframe from {provider_host} carries the "
                     f"SameSite=Lax cookie of {app_host} only when both are the same site (one registrable domain)")
