"""The check of metrics and health: prometheus_client, multiprocess mode, who may scrape, paths not shadowing the app.

Security caveat: it reads the environment (``PROMETHEUS_MULTIPROC_DIR``) and lists that
folder's file count; it never prints ``metrics_token``.  The doctor runs in the operator's
shell, whose environment may differ from the server's: its multiprocess findings are about
this environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from ..._observe import metrics_on
from ..._observe.settings import MULTIPROC_ENV, multiprocess_folder_problem, networks
from ..._policy.rules import AccessRule, matching
from ..wording import names
from .context import FAIL, INFO, OK, WARN, Context, Finding


def check_metrics(ctx: Context) -> Iterator[Finding]:
    """``metrics_*`` and ``health_path``: the library, the multiprocess folder, the scrape's guard, the paths."""
    config = ctx.config
    if not metrics_on(config) and not config.health_path:
        return
    if metrics_on(config):
        try:
            import prometheus_client
        except ImportError:
            yield FAIL, "metrics are on but prometheus_client is not installed: pip install 'sso_middleware[metrics]'"
            return
        version = getattr(prometheus_client, "__version__", "") or _version()
        yield OK, f"prometheus_client {version} is importable"
        yield from _multiprocess()
        if config.metrics_registry is not None:
            yield INFO, "metrics are registered in your metrics_registry: expose it yourself"
    if config.metrics_path:
        guard = f"clients in {names(config.metrics_allowed_networks)}" if config.metrics_allowed_networks else \
            "any client"
        token = "with metrics_token" if config.metrics_token else "without a token"
        yield OK, f"metrics_path {config.metrics_path} answers {guard}, {token}"
        if not config.metrics_token and all(network.is_loopback for network in networks(config)):
            yield INFO, ("metrics_path is guarded by the client address alone: behind a reverse proxy on this host "
                         "every client is loopback, so block the path at the proxy or set metrics_token")
    for name in ("metrics_path", "health_path"):
        yield from _shadowing(ctx, name)


def _multiprocess() -> Iterator[Finding]:
    folder = os.environ.get(MULTIPROC_ENV)
    if folder is None:
        yield INFO, (f"{MULTIPROC_ENV} is not set here: fine for one process; with several worker processes "
                     "(gunicorn --workers N) set it for the server, or each scrape shows one worker's counts")
        return
    problem = multiprocess_folder_problem(folder)
    if problem is not None:
        yield FAIL, f"{MULTIPROC_ENV}={folder} {problem}: the middleware refuses to start"
        return
    files = len([name for name in os.listdir(folder) if name.endswith(".db")])
    yield OK, (f"multiprocess mode: {MULTIPROC_ENV}={folder} is writable ({files} metric file(s); empty it "
               "before the server starts)")


def _shadowing(ctx: Context, name: str) -> Iterator[Finding]:
    """A route path outside the middleware's own folder takes that path away from the application."""
    config = ctx.config
    path = getattr(config, name)
    if not path:
        return
    own = config.callback_path.rsplit("/", 1)[0] + "/"
    if not path.startswith(own):
        yield WARN, (f"{name} {path} is outside {own}: the middleware answers it, so the application's own "
                     f"page at {path} (if it has one) is no longer reachable")
    if matching(tuple(AccessRule(path=prefix) for prefix in config.protected_paths), path):
        yield INFO, f"{name} {path} is under protected_paths but is answered before them (no sign-in needed)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prometheus_client")
    except PackageNotFoundError:  # pragma: no cover - imported, so installed
        return "(unknown version)"
