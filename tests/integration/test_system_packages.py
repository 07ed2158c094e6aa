"""``make test``'s first step, tools/system-packages.sh: missing Debian packages are named, never half-installed.

As root the script installs with apt-get (that path runs on every fresh CI machine); these
tests run it as an unprivileged user on a PATH without the servers, where it must name the
one command to run and fail, so that pytest never starts on a machine missing them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "system-packages.sh"


def _run_unprivileged(folder: Path, path: str) -> subprocess.CompletedProcess[str]:
    """The script run as nobody (when we are root) from a copy it can read, whatever the checkout's modes."""
    script = folder / SCRIPT.name
    shutil.copyfile(SCRIPT, script)
    script.chmod(0o644)
    argv = ["/usr/bin/env", f"PATH={path}", "/bin/sh", str(script)]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "nobody", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder the unprivileged user can read (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="sso-system-packages-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def _bin_with(folder: Path, *commands: str) -> str:
    """A PATH folder holding only ``commands`` (links to the real ones)."""
    folder = folder / "bin"
    folder.mkdir(mode=0o755)
    for name in commands:
        found = shutil.which(name)
        assert found, f"{name} is needed to run this test"
        (folder / name).symlink_to(found)
    return str(folder)


def test_a_user_without_the_servers_is_told_the_one_command_and_the_run_stops(public_dir: Path) -> None:
    result = _run_unprivileged(public_dir, _bin_with(public_dir, "python3", "id", "node", "npm"))
    assert result.returncode == 1
    command = [line.strip() for line in result.stderr.splitlines() if "apt-get" in line]
    assert len(command) == 1, result.stderr
    assert command[0].startswith("sudo apt-get install -y ")
    assert {"redis-server", "memcached"} <= set(command[0].split()[4:])
    assert "node" not in command[0].split() and "nodejs" not in command[0].split()
    assert result.stdout == ""


def test_a_machine_with_everything_installed_passes_silently(public_dir: Path) -> None:
    result = _run_unprivileged(public_dir, os.environ["PATH"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
