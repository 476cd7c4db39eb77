"""Checks of a plugin package's structure, for its own tests.

``import_cycles("my_plugin")`` lists the cycles among the package's modules, counting every
import (at module level, inside functions, and under ``TYPE_CHECKING``): a plugin whose
modules import each other in a circle is one module in disguise, and its import order
decides whether it loads::

    from runwright.testing.structure import import_cycles

    def test_the_plugin_has_no_import_cycles():
        assert import_cycles("my_plugin") == []
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path


def _modules(package: str, exclude: tuple[str, ...]) -> dict[str, Path]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package!r} is not an importable package")
    root = Path(next(iter(spec.submodule_search_locations)))
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = (package, *path.relative_to(root).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not any(name == prefix or name.startswith(prefix + ".") for prefix in exclude):
            modules[name] = path
    return modules


def _imports(path: Path, modules: dict[str, Path], own: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        # a module's own parent packages load before it anyway: not an edge
        found.update(n for n in names if n in modules and n != own and not own.startswith(n + "."))
    return found


def import_cycles(package: str, exclude: tuple[str, ...] = ()) -> list[list[str]]:
    """Every import cycle among ``package``'s modules (each as ``[a, b, ..., a]``), skipping
    the modules under the dotted prefixes in ``exclude``."""
    modules = _modules(package, exclude)
    edges = {name: _imports(path, modules, name) for name, path in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(edges[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name)
    return cycles
