"""Checks of where sign-ins are kept: tokens and rules, the session cookie, the session store.

Security caveat: the store probes touch the store: the file probe writes and removes one
temporary file (and any folder it had to create), the memcached probe writes and deletes
one short-lived key, and Redis gets a PING.  A store URL is shown with its password masked
(:func:`~...redaction.redact_url`); the client libraries' error messages do not carry it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import tempfile
from collections.abc import Iterator
from urllib.parse import urlsplit

from ...config import SSOConfig, is_loopback_host
from ...errors import ConfigError
from ...redaction import redact_url
from ...session import prepare_data_dir
from ...stores import JsonMemcachedNamespace, JsonRedisNamespace
from ..wording import names as _names
from ..wording import one_line as _one_line
from .context import FAIL, INFO, OK, WARN, Context, Finding


def check_tokens_and_rules(ctx: Context) -> Iterator[Finding]:
    """What keep_access_token and access_rules need from the provider and the session store."""
    config, document = ctx.config, ctx.document
    if config.keep_access_token:
        if "offline_access" not in config.scope.split():
            yield WARN, ("keep_access_token without offline_access in scope: no refresh token, so the access token "
                         "is not refreshed and the app sees sso.token_error=token_expired once it expires")
        elif config.session_type in ("cookie", "environ"):
            yield WARN, (f"session_type {config.session_type}: token refresh is single-flight per process only; "
                         "with several processes and rotating refresh tokens use file, ext:redis or ext:memcached")
        else:
            yield OK, (f"access tokens refreshed {config.refresh_margin} s before expiry, one refresh at a time "
                       f"through a lock in the {config.session_type} store")
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
    """The session store is usable: a writable folder, or a Redis/memcached server that answers."""
    config = ctx.config
    kind = config.session_type
    if kind == "file":
        yield from _probe_file_store(config)
    elif kind == "ext:redis":
        yield from _probe_redis(config)
    elif kind == "ext:memcached":
        yield from _probe_memcached(config)
    elif kind == "cookie":
        yield INFO, "session_type cookie: the session lives in the encrypted cookie (about 4 KB at most); no server"
    else:
        yield INFO, (f"session_type environ: an outer Beaker SessionMiddleware must wrap this middleware and put its "
                     f"session at environ[{config.session_environ_key!r}]; it owns the cookie and the store")


def _probe_file_store(config: SSOConfig) -> Iterator[Finding]:
    data_dir = os.path.abspath(config.data_dir)
    private = not config.session_data_dir
    missing: list[str] = []  # folders the probe creates, deepest first (removed afterwards)
    folder = data_dir
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    if private:  # the per-user root of the default folders may be shared with running apps: left alone
        missing = [path for path in missing if path != os.path.dirname(data_dir)]
    try:
        try:
            prepare_data_dir(data_dir, private)
        except ConfigError as exc:
            yield FAIL, f"file store: {exc.message} (setting {exc.setting})"
            return
        try:
            fd, probe = tempfile.mkstemp(dir=data_dir, prefix=".sso-doctor-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(b"probe")
            finally:
                os.unlink(probe)
        except OSError as exc:
            yield FAIL, f"file store: cannot write in {data_dir}: {exc.strerror}"
            return
        kind = "private default folder" if private else "folder"
        created = " (created when the middleware starts)" if data_dir in missing else ""
        yield OK, f"file store: {kind} {data_dir} is writable{created}"
    finally:
        for path in missing:
            with contextlib.suppress(OSError):
                os.rmdir(path)


def _probe_redis(config: SSOConfig) -> Iterator[Finding]:
    where = redact_url(config.session_url)
    try:
        client = JsonRedisNamespace.client_for(config.session_url, config.session_store_timeout)
        client.ping()
    except Exception as exc:  # any client error is the finding; the URL's password is not in it
        yield FAIL, f"redis at {where} does not answer PING: {type(exc).__name__}: {_one_line(str(exc))}"
        return
    yield OK, f"redis at {where} answers PING (session_store_timeout {config.session_store_timeout:g} s)"


def _probe_memcached(config: SSOConfig) -> Iterator[Finding]:
    for server in config.session_url.split(";"):
        key = f"sso_middleware:doctor-probe:{secrets.token_hex(8)}"
        try:
            client = JsonMemcachedNamespace.client_for(server, config.session_store_timeout)
            for host in client.servers:  # connect first ourselves: python-memcached leaks a refused socket
                with socket.socket(host.family, socket.SOCK_STREAM) as probe:
                    probe.settimeout(config.session_store_timeout)
                    probe.connect(host.address)
            stored = client.set(key, b"probe", time=60)
            read = client.get(key) if stored else None
            client.delete(key)
        except OSError as exc:
            yield FAIL, f"memcached at {server} does not answer: {exc.strerror or type(exc).__name__}"
            continue
        except Exception as exc:  # python-memcached mostly reports failures as False, but not always
            yield FAIL, f"memcached at {server}: {type(exc).__name__}: {_one_line(str(exc))}"
            continue
        if stored and read == b"probe":
            yield OK, f"memcached at {server} stores and returns a probe key"
        else:
            yield FAIL, f"memcached at {server} does not answer (set/get of a probe key failed)"
