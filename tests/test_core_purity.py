"""The computation modules run without Streamlit or Plotly (tests, command line, GPU boxes)."""

import ast
import importlib
import importlib.util
import pkgutil
import subprocess
import sys
from pathlib import Path

import cnnviz
from tests.conftest import REPO


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(cnnviz.__path__, prefix="cnnviz."):
        if not info.name.startswith("cnnviz.ui"):
            names.append(info.name)
    return names


def test_core_imports_without_streamlit_or_plotly():
    modules = [m for m in core_modules() if m != "cnnviz.__main__"]
    assert "cnnviz.datasets.files" in modules
    code = (
        "import sys\n"
        "sys.modules['streamlit'] = None\nsys.modules['plotly'] = None\n"
        f"import importlib\nfor name in {modules!r}: importlib.import_module(name)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


# The one core module allowed to import part of Streamlit: the load test's client speaks Streamlit's
# websocket protocol, whose messages are the protobuf classes in streamlit.proto. It needs those and
# nothing else of Streamlit (not its runtime), and imports them inside a function, so that importing
# it needs no Streamlit (the test above). Moving it to cnnviz.ui instead would make the `loadtest`
# command, which is core, import the UI.
PROTOCOL_CLIENT = "cnnviz.hosting.session_client"


def streamlit_imports() -> dict[str, list[tuple[str, bool]]]:
    """Core module -> each Streamlit or Plotly module it imports, and whether inside a function."""
    found: dict[str, list[tuple[str, bool]]] = {}
    for name in core_modules():
        spec = importlib.util.find_spec(name)
        tree = ast.parse(Path(spec.origin).read_text())
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        lazy = {id(n) for f in functions for n in ast.walk(f)}
        for node in ast.walk(tree):
            targets = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for target in targets:
                if target.split(".")[0] in ("streamlit", "plotly"):
                    found.setdefault(name, []).append((target, id(node) in lazy))
    return found


def test_only_the_protocol_client_imports_streamlit_proto_and_nothing_else_of_streamlit():
    found = streamlit_imports()
    assert found[PROTOCOL_CLIENT] == [("streamlit.proto", True)]
    others = {name: targets for name, targets in found.items() if name != PROTOCOL_CLIENT}
    assert not any(t.startswith("streamlit.proto") for targets in others.values() for t, _ in targets)
    assert all(lazy for targets in found.values() for _, lazy in targets), found  # none at import time


def test_ui_modules_import():
    for info in pkgutil.walk_packages(importlib.import_module("cnnviz.ui").__path__, "cnnviz.ui."):
        if not info.name.endswith("page"):  # page scripts run only inside streamlit
            importlib.import_module(info.name)
