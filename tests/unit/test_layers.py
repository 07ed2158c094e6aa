"""The layers' import rules, read from the source: dependencies point one way.

``_oidc`` (the protocol core) imports no WSGI and nothing of the session, policy or WSGI
layers; ``stores`` knows nothing of sessions or WSGI; ``_session`` nothing of WSGI; the
public ``testing`` kit and the doctor sit on top.  A test reads every module's imports
(following them through the package, so an indirect import counts too), so a new import
that breaks a rule fails here with the chain that breaks it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sso_middleware"
WSGI_LIBRARIES = ("webob", "wsgiref", "beaker.middleware")
#: Shared by every layer and not followed: the settings (which hand each setting to the parser of the
#: layer it configures) and the package's public face.
LEAVES = ("sso_middleware._config", "sso_middleware.errors")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path) for path in PACKAGE.rglob("*.py")}


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                names = [f"{module}.{alias.name}" for alias in node.names]
                found.update(names)  # "from package import module" names the module, not the package
                if not all(name in MODULES for name in names):
                    found.add(module)
        graph[name] = found
    return graph


GRAPH = _imports()


def _internal(name: str) -> str | None:
    """The package module ``name`` refers to (a module, or the module holding an imported name)."""
    while name:
        if name in GRAPH:
            return name
        name = name.rpartition(".")[0]
    return None


def _reach(start: str) -> dict[str, list[str]]:
    """Every module (internal or external) reachable from ``start``, with one import chain to it."""
    chains = {start: [start]}
    todo = [start]
    while todo:
        current = todo.pop()
        for imported in GRAPH[current]:
            target = _internal(imported) or imported
            if target in chains:
                continue
            chains[target] = chains[current] + [target]
            if target in GRAPH and not target.startswith(LEAVES):
                todo.append(target)
    return chains


def _layer_modules(prefix: str) -> list[str]:
    return sorted(name for name in GRAPH if name == prefix or name.startswith(prefix + "."))


FORBIDDEN = {
    "sso_middleware._oidc": ("sso_middleware._wsgi", "sso_middleware._session", "sso_middleware.stores",
                             *WSGI_LIBRARIES),
    "sso_middleware.stores": ("sso_middleware._wsgi", "sso_middleware._session", "sso_middleware._oidc",
                              *WSGI_LIBRARIES),
    "sso_middleware._session": ("sso_middleware._wsgi", *WSGI_LIBRARIES),
    "sso_middleware._policy": ("sso_middleware._wsgi", "sso_middleware._session", *WSGI_LIBRARIES),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_reaches_nothing_above_it(layer: str) -> None:
    broken = []
    for module in _layer_modules(layer):
        for target, chain in _reach(module).items():
            if any(target == bad or target.startswith(bad + ".") for bad in FORBIDDEN[layer]):
                broken.append(" -> ".join(chain))
    assert broken == []


def test_the_rule_finds_a_forbidden_import() -> None:
    """The graph is real: the WSGI face does reach WebOb, the middleware reaches the protocol core."""
    reached = _reach("sso_middleware._wsgi.middleware")
    assert "webob" in reached
    assert any(name.startswith("sso_middleware._oidc.") for name in reached)
