"""The README's settings table is the configuration's, and its test-kit example runs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from sso_middleware._config.settings import SSOConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def _default(field: dataclasses.Field) -> str:  # type: ignore[type-arg]
    value = field.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return " ".join(value) if value else "(none)"
    return str(value) if value not in ("", None) else "(none)"


def settings_table() -> str:
    """The Markdown table of the settings, as it must appear in the README."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for field in dataclasses.fields(SSOConfig):
        rows.append(f"| `{field.name}` | `{_default(field)}` | {field.metadata['help']} |")
    return "\n".join(rows)


def test_the_readme_lists_every_setting_as_the_code_defines_it() -> None:
    text = README.read_text(encoding="utf-8")
    assert settings_table() in text, (
        "README.md's settings table is out of date; regenerate it with: "
        "python -c 'from tests.wsgi.test_readme import settings_table; print(settings_table())'"
    )


def python_block_after(heading: str) -> str:
    """The first ```python block of the README after ``heading``."""
    text = README.read_text(encoding="utf-8")
    assert heading in text, f"README.md has no {heading!r}"
    section = text.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, f"no python block after {heading!r}"
    return match.group(1)


def test_the_fake_provider_example_runs(tmp_path: Path) -> None:
    """The "Testing your own application" example is a working test: run it as a user would."""
    code = python_block_after("### In memory: `FakeProvider`")
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md (FakeProvider example)", "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_") and callable(value)]
    assert len(tests) == 1
    tests[0](tmp_path)
