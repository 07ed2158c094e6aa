"""The public face: every name the README and the examples use comes from a public module.

The package's implementation lives in private modules (``sso_middleware._oidc``,
``._session``, ``._policy``, ``._wsgi``, ``._config``, ``._doctor``); what users may import
is ``sso_middleware`` itself, ``sso_middleware.errors``, ``sso_middleware.stores`` (the
back-end protocol) and ``sso_middleware.testing`` (the test kit).  These tests read the
README's code and prose and the examples, so documenting a private name fails here.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import sso_middleware

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_MODULES = ("sso_middleware", "sso_middleware.errors", "sso_middleware.stores", "sso_middleware.testing",
                  "sso_middleware.paste")
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def _imports_in(source: str) -> set[tuple[str, str]]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sso_middleware":
            found.update((node.module, alias.name) for alias in node.names)
    return found


def _documented_imports() -> set[tuple[str, str]]:
    found = set()
    for document in DOCUMENTS:
        for block in _code_blocks(document.read_text()):
            found |= _imports_in(block)
    demo = [ROOT / "demo_app.py", *sorted((ROOT / "demo").glob("*.py"))]
    for example in [*sorted((ROOT / "examples").rglob("*.py")), *demo]:
        found |= _imports_in(example.read_text())
    return found


def test_the_documents_show_code() -> None:
    assert len(_documented_imports()) >= 5


@pytest.mark.parametrize(("module", "name"), sorted(_documented_imports()))
def test_every_documented_import_is_public(module: str, name: str) -> None:
    assert module in PUBLIC_MODULES, f"{module} is private: import {name} from a public module"
    assert hasattr(importlib.import_module(module), name)
    if module == "sso_middleware":
        assert name in sso_middleware.__all__


def test_every_dotted_name_in_the_prose_is_exported() -> None:
    text = "\n".join(document.read_text() for document in DOCUMENTS)
    dotted = set(re.findall(r"\bsso_middleware\.([a-z_][A-Za-z0-9_]*)\(", text))
    assert dotted, "the README names functions as sso_middleware.<name>(...)"
    assert dotted <= set(sso_middleware.__all__)


def test_every_exported_name_exists() -> None:
    for module in PUBLIC_MODULES:
        loaded = importlib.import_module(module)
        for name in getattr(loaded, "__all__", ()):
            assert hasattr(loaded, name), f"{module}.__all__ names {name}, which it does not define"


def test_every_source_path_the_documents_name_exists() -> None:
    missing = []
    for document in [*DOCUMENTS, ROOT / "SECURITY.md"]:
        for path in re.findall(r"`(sso_middleware/[A-Za-z0-9_/.]+\.(?:py|mjs))`", document.read_text()):
            if not (ROOT / path).exists():
                missing.append(f"{document.name}: {path}")
    assert missing == []
