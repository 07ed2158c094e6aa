"""Checks of what the middleware answers itself for the page's people and scripts: failure pages, session endpoint.

Security caveat: the template check reads the operator's file again (bounded, like the
middleware does) and reports its path and placeholders, never its content.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..._config import page_template
from ..._translations import LANGUAGES
from ...errors import ConfigError
from .context import FAIL, INFO, OK, WARN, Context, Finding


def check_failure_pages(ctx: Context) -> Iterator[Finding]:
    """``failure_page_template``: readable, its placeholders; the languages the pages speak."""
    config = ctx.config
    languages = ", ".join(LANGUAGES)
    if not config.failure_page_template:
        if config.serve_failure_page:
            yield OK, f"built-in failure pages, in the browser's language ({languages}; Accept-Language)"
        return
    try:  # checked when the configuration was built; read again: the file may have changed or moved since
        template = page_template.load(config.failure_page_template)
    except ConfigError as exc:
        yield FAIL, f"{exc.message}: the middleware would not start"
        return
    used = ", ".join("{" + name + "}" for name in template.placeholders)
    yield OK, (f"failure and 403 pages use the template {config.failure_page_template!r} ({used}), in the "
               f"browser's language ({languages})")
    if "lang" not in template.placeholders:
        yield WARN, ("the template has no {lang}: a German page is announced as its <html lang> says (use "
                     "<html lang=\"{lang}\">)")
    if not config.serve_failure_page:
        yield WARN, ("serve_failure_page = false: the application serves failure_path, so the template only brands "
                     "the 403 page and the session-store outage page")


def check_session_endpoint(ctx: Context) -> Iterator[Finding]:
    """``session_endpoint_path``: where it is, and whether a POST can refresh anything."""
    config = ctx.config
    if not config.session_endpoint_path:
        return
    yield OK, (f"session endpoint {config.primary_url}{config.session_endpoint_path}: GET the session's state; "
               "POST (same origin, header X-SSO-CSRF: 1) to refresh it")
    if not config.keep_access_token:
        yield INFO, "keep_access_token is off: a POST only extends the idle timeout (there is no token to refresh)"
    elif "offline_access" not in config.scope.split():
        yield WARN, ("no offline_access in scope, so no refresh token: a POST answers 409 no_refresh_token (it "
                     "still extends the idle timeout)")
