"""The house's layout holds: one layering of the service packages, no import circles.

`services/` is domain packages, each built only on those below it (README, "How it
works"). A lower layer that must trigger a higher one offers a registration point
instead of importing it. These tests read every import statement, including those
inside functions and under TYPE_CHECKING, so a lazy import cannot hide a circle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "shopctl"
SERVICES = "shopctl.services"
LAYERS = {  # a package may import only packages of a lower rank (and services.common)
    "accounts": 0,
    "catalog": 0,
    "orders": 1,
    "payments": 2,
    "fulfilment": 3,
    "promotions": 3,
    "integrations": 4,
    "system": 5,
}
MAX_MODULE_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + is_package]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str) -> set[str]:
    """The shopctl modules `module` imports, wherever in the file the import is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in MODULES else target)
    return {name for name in found if name in MODULES and name != module}


def _package(module: str) -> str | None:
    parts = module.split(".")
    if module.startswith(SERVICES + ".") and parts[2] in LAYERS:
        return parts[2]
    return None


def test_every_service_module_lives_in_a_domain_package():
    loose = [m for m in MODULES if m.startswith(SERVICES + ".") and _package(m) is None]
    assert loose == [f"{SERVICES}.common"]
    assert {p.name for p in (PACKAGE / "services").iterdir() if p.is_dir()} >= set(LAYERS)


def test_no_package_imports_one_above_it():
    wrong = []
    for module in MODULES:
        home = _package(module)
        for target in imports_of(module) if home else ():
            other = _package(target)
            if other and other != home and LAYERS[other] >= LAYERS[home]:
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_the_layering_check_sees_a_lazy_upward_import(tmp_path):
    """The check above must catch an import hidden inside a function."""
    module = f"{SERVICES}.orders.probe"
    MODULES[module] = tmp_path / "probe.py"
    MODULES[module].write_text("def f():\n    from shopctl.services.payments import gateway\n")
    try:
        assert imports_of(module) == {f"{SERVICES}.payments.gateway"}
    finally:
        del MODULES[module]


def _loaded_by(package: str) -> list[str]:
    modules = sorted(m for m in MODULES if _package(m) == package)
    code = (
        "import json, sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(json.dumps(sorted(m for m in sys.modules if m.startswith('shopctl'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("package", ["accounts", "catalog", "orders", "payments"])
def test_importing_a_package_loads_nothing_above_it(package):
    """In a fresh interpreter, e.g. `shopctl.services.orders` loads nothing of payments."""
    above = {p for p, rank in LAYERS.items() if rank >= LAYERS[package] and p != package}
    loaded = {_package(m) for m in _loaded_by(package)} - {None}
    assert loaded & above == set()
    assert package in loaded


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_anywhere_in_shopctl():
    graph = {module: imports_of(module) for module in MODULES}
    assert _cycles(graph) == []


def test_the_circle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_exceeds_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
