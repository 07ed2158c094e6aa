"""Checks of what happens around a sign-in and a sign-out: the ``on_sign_in`` hook, ``userinfo_claims``, revocation.

Security caveat: ``check_revocation`` sends the client's credentials to the provider's
revocation endpoint with a made-up token (RFC 7009 answers 200 for a token it does not
know), exactly as a sign-out would authenticate; no real token is ever sent.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Iterator

from ..._oidc.revocation import enabled, post_revocation
from ...errors import ProviderError
from ..wording import describe_error, names, provider_words
from .context import FAIL, INFO, OK, WARN, Context, Finding


def check_sign_in_hook(ctx: Context) -> Iterator[Finding]:
    """The hook was imported (the configuration built) and takes ``(claims, tokens, environ)``; the allow-list."""
    config = ctx.config
    hook = config.on_sign_in
    if hook is None:
        yield INFO, "on_sign_in not set: every user the provider signs in gets a session"
    else:
        name = f"{getattr(hook, '__module__', '?')}:{getattr(hook, '__qualname__', type(hook).__name__)}"
        try:
            inspect.signature(hook).bind(None, None, None)
        except TypeError:
            yield FAIL, (f"on_sign_in {name} cannot be called as hook(claims, tokens, environ): every sign-in "
                         "would end in sign_in_hook_failed")
        except ValueError:  # no signature to read (some builtins): it will tell at the first sign-in
            yield WARN, f"on_sign_in {name}: its parameters cannot be read; it must take (claims, tokens, environ)"
        else:
            yield OK, f"on_sign_in {name} is imported and takes (claims, tokens, environ)"
    if config.userinfo_claims:
        yield INFO, f"userinfo_claims: sessions keep only {names(('sub', *config.userinfo_claims))}"
        if hook is not None:
            yield INFO, "claims on_sign_in adds are kept only when userinfo_claims lists them"


def check_revocation(ctx: Context) -> Iterator[Finding]:
    """``revoke_tokens_on_logout`` against what the provider advertises; the endpoint accepts this client."""
    config = ctx.config
    assert ctx.metadata is not None
    mode = config.revoke_tokens_on_logout
    endpoint = ctx.metadata.revocation_endpoint
    refresh = "offline_access" in config.scope.split()
    if mode == "off":
        yield (WARN if config.keep_access_token and refresh and endpoint else INFO), (
            "revoke_tokens_on_logout is off: refresh tokens stay valid at the provider after sign-out")
        return
    if not config.keep_access_token:
        yield INFO, "keep_access_token is off: sessions keep no token, so sign-out has nothing to revoke"
        return
    if endpoint is None:
        yield (FAIL if mode == "on" else WARN if refresh else INFO), (
            f"revoke_tokens_on_logout {mode}, but the provider advertises no revocation_endpoint: tokens are "
            "not revoked at sign-out" + (" and refresh tokens outlive it" if refresh else ""))
        return
    assert enabled(config, endpoint)
    method = config.token_endpoint_auth_method
    advertised = ctx.document.get("revocation_endpoint_auth_methods_supported")
    if isinstance(advertised, list) and method not in advertised:
        yield WARN, f"the provider's revocation_endpoint_auth_methods_supported does not list {method}"
    made_up = "sso-middleware-check-" + secrets.token_urlsafe(16)
    try:
        status, document = post_revocation(ctx.http, config, endpoint, made_up, "refresh_token")
    except ProviderError as exc:
        yield FAIL, f"the revocation endpoint did not answer usably: {describe_error(exc)} (sign-out goes on)"
        return
    if status == 200:
        yield OK, f"sign-out revokes the refresh token, then the access token, at {endpoint} ({method} accepted)"
    elif status == 401 or (isinstance(document, dict) and document.get("error") == "invalid_client"):
        yield FAIL, (f"the revocation endpoint refused this client ({method}; HTTP {status}"
                     f"{provider_words(document)}): sign-outs will not revoke")
    else:
        yield WARN, f"the revocation endpoint answered HTTP {status}{provider_words(document)} to a made-up token"
