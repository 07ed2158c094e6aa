"""The check of bearer tokens on API paths: the audience, the keys that verify access tokens, introspection.

Security caveat: it fetches the provider's JWKS like the middleware does (nothing is sent
but a GET); it never asks the introspection endpoint about a token.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..wording import describe_error, names
from .context import FAIL, INFO, OK, WARN, Context, Finding
from .provider import _key_loads


def check_bearer(ctx: Context) -> Iterator[Finding]:
    """``bearer_*``: what the API accepts, whether the provider's keys verify such tokens, introspection."""
    config = ctx.config
    if not config.bearer_paths:
        return
    yield OK, (f"bearer_paths {names(config.bearer_paths)} accept access tokens for {config.bearer_audience} "
               f"(typ {config.bearer_token_type}, {names(config.bearer_algorithms)}"
               f"{'; bearer tokens only' if config.bearer_only else '; a session cookie also works'})")
    if config.is_auth0 and config.bearer_token_type == "at+jwt":
        yield INFO, ("Auth0 types access tokens at+jwt only with the API's RFC 9068 token profile; with its "
                     "default (Auth0) profile set bearer_token_type = JWT")
    if config.bearer_rules:
        yield INFO, f"bearer_rules guard {', '.join(rule.path for rule in config.bearer_rules)}"
    if ctx.metadata is None:
        return  # discovery failed: reported once by the discovery check
    url = ctx.metadata.jwks_uri
    answer, jwks, error = ctx.get(url, "jwks")
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if error is not None or answer is None or answer.status != 200 or not isinstance(keys, list):
        reason = describe_error(error) if error is not None else f"HTTP {answer.status if answer else '?'}"
        yield FAIL, f"cannot read the JWKS {url} ({reason}): every bearer request would get 503"
    else:
        usable = sorted({alg for alg in config.bearer_algorithms for key in keys if _key_loads(key, alg)})
        if usable:
            yield OK, f"{url} has keys for access tokens signed with {names(usable)}"
        else:
            yield FAIL, (f"{url} has no key usable for bearer_algorithms {names(config.bearer_algorithms)}: "
                         "no access token would verify")
    endpoint = ctx.metadata.introspection_endpoint
    if config.bearer_introspection:
        if endpoint is None:
            yield FAIL, ("bearer_introspection is on, but discovery advertises no introspection_endpoint: opaque "
                         "tokens would get 502")
        else:
            yield OK, (f"opaque access tokens are introspected at {endpoint} (answers cached up to "
                       f"{config.bearer_introspection_ttl} s)")
    else:
        yield INFO, "opaque (non-JWT) access tokens are refused with 401 invalid_token (bearer_introspection off)"
    if config.bearer_introspection and config.bearer_introspection_ttl > 300:
        yield WARN, (f"bearer_introspection_ttl {config.bearer_introspection_ttl} s: a revoked token stays "
                     "accepted that long")
