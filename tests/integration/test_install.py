"""``npm_install_cached``: a lock file's npm dependencies installed once, into a folder keyed by its hash.

Real ``npm ci`` against the demo SPA's lock file (one small package), and a stand-in ``npm``
for the failures.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from sso_middleware.testing import DevProviderError, npm_install_cached

SPA = Path(__file__).resolve().parents[2] / "demo" / "spa"
LOCK_FILES = ("package.json", "package-lock.json")


def _fake_npm(folder: Path, script: str) -> str:
    path = folder / "npm"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_the_lock_file_is_installed_once_into_a_folder_named_by_its_hash(tmp_path: Path) -> None:
    installed = npm_install_cached(SPA, LOCK_FILES, "demo-spa", tmp_path)
    assert installed.parent == tmp_path and installed.name.startswith("demo-spa-")
    package = json.loads((installed / "node_modules" / "oidc-client-ts" / "package.json").read_text())
    pinned = json.loads((SPA / "package.json").read_text())["dependencies"]["oidc-client-ts"]
    assert package["version"] == pinned
    # The second call finds the folder: npm is not run again (this npm would fail).
    refusing = _fake_npm(tmp_path, "exit 1")
    assert npm_install_cached(SPA, LOCK_FILES, "demo-spa", tmp_path, npm=refusing) == installed


def test_a_changed_lock_file_gets_a_folder_of_its_own(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in LOCK_FILES:
        shutil.copyfile(SPA / name, source / name)
    recording = _fake_npm(tmp_path, 'mkdir node_modules && echo "$@" > node_modules/argv')
    first = npm_install_cached(source, LOCK_FILES, "x", tmp_path / "home", npm=recording)
    assert (first / "node_modules" / "argv").read_text().split() == [
        "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"]
    (source / "package-lock.json").write_text((source / "package-lock.json").read_text() + "\n")
    second = npm_install_cached(source, LOCK_FILES, "x", tmp_path / "home", npm=recording)
    assert second != first and (second / "node_modules").is_dir()


def test_a_failed_npm_ci_leaves_no_folder_and_says_why(tmp_path: Path) -> None:
    failing = _fake_npm(tmp_path, "echo 'npm ERR! network unreachable' >&2; exit 1")
    home = tmp_path / "home"
    with pytest.raises(DevProviderError, match=r"npm ci failed \(exit 1\) for the demo-spa:\nnpm ERR! network"):
        npm_install_cached(SPA, LOCK_FILES, "demo-spa", home, npm=failing)
    assert [path.name for path in home.iterdir()] == [path.name for path in home.glob("*.lock")]


def test_a_missing_lock_file_is_named(tmp_path: Path) -> None:
    shutil.copyfile(SPA / "package.json", tmp_path / "package.json")
    with pytest.raises(DevProviderError, match=r"\['package-lock.json'\] missing"):
        npm_install_cached(tmp_path, LOCK_FILES, "demo-spa", tmp_path / "home")
