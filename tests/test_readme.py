"""The README's settings table is the configuration's: every setting, its default and its help text."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sso_middleware.config import SSOConfig

README = Path(__file__).resolve().parent.parent / "README.md"


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
        "python -c 'from tests.test_readme import settings_table; print(settings_table())'"
    )
