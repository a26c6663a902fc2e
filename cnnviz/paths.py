"""Where cnnviz's own files are, computed once: the repository, the app script, the shipped models
and the bundled assets. Folders a user chooses (data, saved models) come from settings instead."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent  # cnnviz/
REPO_DIR = PACKAGE_DIR.parent
APP_SCRIPT = REPO_DIR / "app.py"  # what `streamlit run` starts
MODELS_DIR = REPO_DIR / "models"  # the shipped models (mnist.pt, cifar10.pt)
ASSETS_DIR = PACKAGE_DIR / "assets"
SAMPLES_DIR = ASSETS_DIR / "samples"  # real test-set images, <dataset>/<label>_<index>.png
