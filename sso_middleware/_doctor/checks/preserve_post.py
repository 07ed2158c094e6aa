"""The check of ``preserve_post``: which forms are kept across a sign-in, where, for how long, at what cost.

Security caveat: it reads the settings only; it never sends a form anywhere.  Its warnings
are about what an anonymous client can make the store hold, and paths where forms are
API calls (``bearer_paths``) rather than forms a person typed.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..._policy.rules import AccessRule
from ...stores.registry import type_name
from ..wording import names
from .context import INFO, OK, WARN, Context, Finding

#: Above this bound, warn: each anonymous POST may make the store hold that much for transaction_ttl.
_LARGE = 64 * 1024


def check_preserve_post(ctx: Context) -> Iterator[Finding]:
    """``preserve_post`` and ``preserve_post_max_body`` (SSOConfig already refused what cannot work)."""
    config = ctx.config
    if not config.preserve_post:
        return
    yield OK, (f"preserve_post keeps same-origin form POSTs (application/x-www-form-urlencoded, UTF-8, at most "
               f"{config.preserve_post_max_body} bytes) to {names(config.preserve_post)} across a sign-in, "
               f"encrypted in the {type_name(config.session_type)} store for up to {config.transaction_ttl} s, "
               "and re-posts them once")
    apis = tuple(AccessRule(path=prefix) for prefix in config.bearer_paths)
    for prefix in config.preserve_post:
        kept = AccessRule(path=prefix)
        overlap = [api.path for api in apis if api.overlaps(kept)]
        if overlap:
            yield WARN, (f"preserve_post {prefix} overlaps bearer_paths {names(overlap)}: POSTs there are answered "
                         "as API calls (401 without a token) and never kept")
    if "/" in config.preserve_post:
        yield WARN, ("preserve_post / covers every path: any anonymous client can make the store hold a form of up "
                     f"to {config.preserve_post_max_body} bytes per POST; list the paths of the long forms instead")
    if config.preserve_post_max_body > _LARGE:
        yield WARN, (f"preserve_post_max_body {config.preserve_post_max_body} bytes: each anonymous POST may make "
                     f"the store hold that much for {config.transaction_ttl} s; forms people type are a few KB")
    if config.transaction_ttl < 120:
        yield WARN, (f"transaction_ttl {config.transaction_ttl} s is all the time a user has to sign in before a kept "
                     "form expires (it is then lost, with a page saying so)")
    yield INFO, ("the re-POST is a same-origin POST made by the middleware's page: the application's own CSRF token "
                 "is sent as it was typed (a token that expired meanwhile is refused by the application as usual)")
