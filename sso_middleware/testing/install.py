"""Installing npm dependencies once, in a cache directory: the bundled development provider's, and
any other lock file's (``npm_install_cached``: the demo's single-page app uses it too).

The installed Python package may be read-only, so the provider's files are copied to
``$DEVPROVIDER_HOME`` or ``~/.cache/sso_middleware`` (``$XDG_CACHE_HOME`` honoured) and
``npm ci`` runs there from the committed ``package-lock.json`` (``--ignore-scripts``: no
package's install script runs). Requirements: Node.js >= 20 and npm on ``PATH``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import DevProviderError

__all__ = ["devprovider_source_dir", "ensure_devprovider_installed", "npm_install_cached"]

#: Files of the bundled provider that are copied into the install directory.
_SOURCE_FILES = ("package.json", "package-lock.json", "server.mjs")
_NODE_MISSING = (
    "sso_middleware.testing needs Node.js >= 20 and npm: install them (Debian: apt-get install -y nodejs npm)"
)
_MIN_NODE_MAJOR = 20


def devprovider_source_dir() -> Path:
    """The bundled provider's folder inside the installed package (may be read-only)."""
    return Path(__file__).resolve().parent.parent / "devprovider"


def _cache_base() -> Path:
    configured = os.environ.get("DEVPROVIDER_HOME")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "sso_middleware"


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DevProviderError(f"{_NODE_MISSING} ({name!r} is not on PATH)")
    return path


def _check_node(node: str) -> None:
    try:
        out = subprocess.run(  # noqa: S603 - a fixed argv, node found by shutil.which
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise DevProviderError(f"{_NODE_MISSING} (running {node} --version failed: {exc})") from exc
    match = re.match(r"v(\d+)\.", out)
    if match is None or int(match.group(1)) < _MIN_NODE_MAJOR:
        raise DevProviderError(f"{_NODE_MISSING} (found node {out or 'of unknown version'})")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock (POSIX ``flock``; a no-op elsewhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        else:  # pragma: no cover - the atomic rename below still prevents half installs
            yield


def _copy_modules(source: Path, target: Path) -> Path:
    """Copy the provider's ES modules (``source/*.mjs``) into ``target/modules-<hash>``.

    The folder is named by a hash of the modules' names and contents and is filled in a
    temporary folder renamed into place, so it never changes once it exists: two checkouts
    (or an edit during a test run) with different modules never overwrite the files a running
    provider has loaded or is about to load. Its ``node_modules`` is a link to the one of
    ``target``, whose npm dependencies all module folders share.
    """
    modules = sorted(source.glob("*.mjs"))
    digest = hashlib.sha256()
    for path in modules:
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    folder = target / f"modules-{digest.hexdigest()[:16]}"
    if folder.is_dir():
        return folder
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".modules-"))
    try:
        for path in modules:
            shutil.copyfile(path, staging / path.name)
        (staging / "node_modules").symlink_to(Path("..") / "node_modules", target_is_directory=True)
        try:
            os.replace(staging, folder)
        except OSError:
            if not folder.is_dir():  # not another process that renamed the same copy first
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def npm_install_cached(
    source: Path, files: Sequence[str], name: str, home: Path | None = None, *, npm: str | None = None
) -> Path:
    """Return ``<home>/<name>-<hash>``: ``files`` of ``source`` with their npm dependencies installed.

    ``files`` must include ``package.json`` and ``package-lock.json``; the hash covers those two,
    so a changed lock file gets a fresh folder. ``home`` defaults to ``$DEVPROVIDER_HOME`` or
    ``~/.cache/sso_middleware``. ``npm ci --omit=dev --ignore-scripts`` runs only when that
    folder does not exist yet, in a temporary folder renamed into place when it succeeded; a
    file lock keeps concurrent processes from installing twice.

    Security caveat: what is installed is exactly what the lock file pins (with its integrity
    hashes), and no package's install script runs; the registry is npm's configured one.
    """
    missing = [file for file in files if not (source / file).is_file()]
    if missing:
        raise DevProviderError(f"{name} is incomplete: {missing} missing in {source}")
    digest = hashlib.sha256()
    for file in ("package.json", "package-lock.json"):
        digest.update((source / file).read_bytes())
    base = (home if home is not None else _cache_base()).expanduser()
    target = base / f"{name}-{digest.hexdigest()[:16]}"
    if (target / "node_modules").is_dir():
        return target
    with _file_lock(base / f"{target.name}.lock"):
        if not (target / "node_modules").is_dir():
            npm_path = npm or _require_tool("npm")
            staging = Path(tempfile.mkdtemp(dir=base, prefix=f".{target.name}-"))
            try:
                for file in files:
                    shutil.copyfile(source / file, staging / file)
                _npm_ci(npm_path, staging, name)
                if target.exists():  # a stale directory without node_modules
                    shutil.rmtree(target, ignore_errors=True)
                os.replace(staging, target)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
    return target


def _npm_ci(npm: str, folder: Path, name: str) -> None:
    env = dict(os.environ)
    env.update(npm_config_audit="false", npm_config_fund="false", npm_config_update_notifier="false")
    try:
        result = subprocess.run(  # noqa: S603 - a fixed argv, npm found by shutil.which
            [npm, "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DevProviderError(f"npm ci failed to run in {folder}: {exc}") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-4000:]
        raise DevProviderError(f"npm ci failed (exit {result.returncode}) for the {name}:\n{output}")


def ensure_devprovider_installed(home: Path | None = None, *, npm: str | None = None) -> Path:
    """Return a directory holding ``server.mjs`` and its modules, npm dependencies installed.

    The dependencies are in ``<home>/devprovider-<hash>`` where the hash covers
    ``package.json`` and ``package-lock.json`` (see :func:`npm_install_cached`); ``home``
    defaults to ``$DEVPROVIDER_HOME`` or ``~/.cache/sso_middleware``. The returned directory
    is ``modules-<hash of the *.mjs>`` inside it, made on the first call that sees those
    modules, so editing the bundled provider needs no reinstall.
    """
    source = devprovider_source_dir()
    if not (source / "server.mjs").is_file():
        raise DevProviderError(f"the bundled devprovider is incomplete: ['server.mjs'] missing in {source}")
    target = npm_install_cached(source, _SOURCE_FILES, "devprovider", home, npm=npm)
    return _copy_modules(source, target)
