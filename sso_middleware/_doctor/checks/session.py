"""Checks of where sign-ins are kept: tokens and rules, the session cookie, the session store.

Security caveat: the store probes (each back end's ``probe()``, :mod:`...stores`) touch the
store: the file probe writes and removes one temporary file (and any folder it had to
create), the memcached probe writes and deletes one short-lived key, and Redis gets a PING.
A store URL is shown with its password masked (:func:`~sso_middleware._redaction.redact_url`); the
client libraries' error messages do not carry it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from ..._config.urls import is_loopback_host
from ...errors import ConfigError
from ...stores import backend_for
from ...stores.registry import resolve as resolve_backend
from ...stores.registry import type_name
from ..wording import names as _names
from .context import FAIL, INFO, OK, WARN, Context, Finding


def check_tokens_and_rules(ctx: Context) -> Iterator[Finding]:
    """What keep_access_token and access_rules need from the provider and the session store."""
    config, document = ctx.config, ctx.document
    if config.keep_access_token:
        if "offline_access" not in config.scope.split():
            yield WARN, ("keep_access_token without offline_access in scope: no refresh token, so the access token "
                         "is not refreshed and the app sees sso.token_error=token_expired once it expires")
        elif not resolve_backend(config.session_type).shared_lock:
            yield WARN, (f"session_type {type_name(config.session_type)}: token refresh is single-flight per "
                         "process only; with several processes and rotating refresh tokens use file, ext:redis, "
                         "ext:memcached or postgresql")
        else:
            yield OK, (f"access tokens refreshed {config.refresh_margin} s before expiry, one refresh at a time "
                       f"through a lock in the {type_name(config.session_type)} store")
    wanted_acr = sorted({value for rule in config.access_rules for value in rule.acr_values})
    if wanted_acr and ctx.metadata is not None:  # (the store-only findings above need no discovery)
        supported = document.get("acr_values_supported")
        unknown = [value for value in wanted_acr if not isinstance(supported, list) or value not in supported]
        if unknown:
            yield WARN, (f"access_rules ask for acr_values {_names(unknown)}, which the provider does not list in "
                         f"acr_values_supported ({_names(supported)}): step-up to them will end in step_up_failed")
        else:
            yield OK, f"access_rules' acr_values {_names(wanted_acr)} are in acr_values_supported"
    if config.access_rules:
        paths = ", ".join(rule.path for rule in config.access_rules)
        yield INFO, f"access_rules guard {paths}"


def check_cookies(ctx: Context) -> Iterator[Finding]:
    """The session cookie: Secure over https, a ``cookie_domain`` the browser accepts, its name and flags."""
    config = ctx.config
    if not config.secure_cookies:
        yield WARN, "base_url is http: cookies are not Secure (acceptable only for loopback demos)"
    domain = config.cookie_domain.lstrip(".").lower()
    for url in config.base_urls if domain else ():
        host = (urlsplit(url).hostname or "").lower()
        if host == domain or (host.endswith("." + domain) and not is_loopback_host(host) and not _is_ip(host)):
            yield OK, f"cookie_domain {config.cookie_domain} covers base_url's host {host}"
        else:
            yield FAIL, (f"cookie_domain {config.cookie_domain} does not domain-match base_url's host {host}: "
                         "browsers would drop the session cookie")
    flags = ["HttpOnly", "SameSite=Lax", f"Path={config.cookie_path}"]
    flags.append("Secure" if config.secure_cookies else "not Secure")
    flags.append(f"Domain={config.cookie_domain}" if config.cookie_domain else "host-only")
    yield INFO, f"session cookie {config.session_cookie_name}: {'; '.join(flags)}"


def _is_ip(host: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|\[?[0-9a-fA-F:]+\]?", host))


def check_session_store(ctx: Context) -> Iterator[Finding]:
    """The session store is usable: what its back end's probe finds (a writable folder, a server that answers)."""
    try:
        backend = backend_for(ctx.config)
    except ConfigError as exc:
        yield FAIL, f"session store: {exc.message} (setting {exc.setting})"
        return
    yield from backend.probe()
