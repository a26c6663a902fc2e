"""The package map holds: capability packages one level deep, imports that never run back up, no cycles,
and short modules (a long one says why in its docstring)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "cnnviz"
LONG_MODULE_LINES = 400
LONG_MODULE_REASON = "Why this module is long:"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, top_level_only: bool) -> set[str]:
    """The cnnviz modules ``path`` imports (``from cnnviz.x import y`` counts ``cnnviz.x.y`` when that is a
    module); with ``top_level_only`` the imports inside functions are left out."""
    known = modules()
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("cnnviz"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnnviz"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
    return found


def test_packages_are_one_level_deep_and_the_ui_groups_by_page():
    for name in modules():
        depth = name.count(".")
        limit = 3 if name.startswith("cnnviz.ui.") else 2
        assert depth <= limit, f"{name} is nested deeper than the package map allows"


def test_the_core_never_imports_the_ui():
    for name, path in modules().items():
        if name.startswith("cnnviz.ui") or name == "cnnviz.__main__":
            continue
        ui = sorted(m for m in imported_modules(path, top_level_only=False) if m.startswith("cnnviz.ui"))
        commands_may_bench_pages = name.startswith("cnnviz.commands.")  # bench conv / predict time the pages
        assert not ui or commands_may_bench_pages, f"{name} imports the UI: {ui}"


def test_no_import_cycles():
    graph = {name: imported_modules(path, top_level_only=True) for name, path in modules().items()}

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(name):], name]))
        for child in graph.get(name, ()):
            if child != name and not name.startswith(child + "."):  # a package's own __init__
                visit(child, [*trail, name])

    for name in graph:
        visit(name, [])


def test_long_modules_say_why():
    for name, path in modules().items():
        text = path.read_text()
        lines = text.count("\n")
        if lines > LONG_MODULE_LINES:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            assert LONG_MODULE_REASON in docstring, (
                f"{name} has {lines} lines: split it, or say '{LONG_MODULE_REASON} ...' in its docstring")
