"""The computation modules run without Streamlit or Plotly (tests, command line, GPU boxes)."""

import importlib
import pkgutil
import subprocess
import sys

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


def test_ui_modules_import():
    for info in pkgutil.walk_packages(importlib.import_module("cnnviz.ui").__path__, "cnnviz.ui."):
        if not info.name.endswith("page"):  # page scripts run only inside streamlit
            importlib.import_module(info.name)
