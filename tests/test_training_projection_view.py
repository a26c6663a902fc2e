"""The Train page's map of what it learned, under AppTest: the points drawn are the projection of the
model's own penultimate features, a picked point shows its real answer and neighbours."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from streamlit.testing.v1 import AppTest

from cnnviz.datasets.files import load_dataset
from cnnviz.replay.projection import project
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.features import penultimate_features, projection_sample

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """
import streamlit as st
from cnnviz.datasets import files as data
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.ui.training.projection_view import projection_view

@st.cache_resource
def shipped():
    return load_checkpoint("models/mnist.pt")

loaded = shipped()
projection_view(loaded.model, data.DATASETS["mnist"], None)
"""


def _app(monkeypatch, real_data_dir: Path) -> AppTest:
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
    monkeypatch.chdir(REPO)
    app = AppTest.from_string(SCRIPT, default_timeout=60)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _figure(app: AppTest) -> dict:
    charts = [e for e in app.main if type(e).__name__ == "UnknownElement" and hasattr(e.proto, "spec")]
    return json.loads(charts[-1].proto.spec)


def _decode(values) -> np.ndarray:
    if isinstance(values, dict):  # plotly's typed array: {"dtype": "f4", "bdata": base64}
        import base64

        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
    return np.asarray(values)


def test_the_map_draws_the_models_own_features(monkeypatch, real_data_dir: Path) -> None:
    app = _app(monkeypatch, real_data_dir)
    loaded = load_checkpoint(REPO / "models" / "mnist.pt")
    test = load_dataset("mnist", "test", data_dir=real_data_dir)
    sample = projection_sample(test.labels)
    features = penultimate_features(loaded.model, test.images[sample], loaded.mean, loaded.std)
    expected = project(features, "pca")
    figure = _figure(app)
    traces = figure["data"]
    assert [t["name"] for t in traces] == loaded.classes  # one per class, named for the legend
    drawn = 0
    for cls, trace in enumerate(traces):
        mine = (test.labels[sample] == cls).numpy()
        np.testing.assert_allclose(_decode(trace["x"]), expected[mine, 0].numpy(), atol=1e-5)
        np.testing.assert_allclose(_decode(trace["y"]), expected[mine, 1].numpy(), atol=1e-5)
        drawn += len(_decode(trace["x"]))
    assert drawn == 2000
    assert "Click a dot" in " ".join(c.value for c in app.caption)


def test_a_picked_point_shows_its_answer_and_neighbours(monkeypatch, real_data_dir: Path) -> None:
    app = _app(monkeypatch, real_data_dir)
    app.session_state["train_projection_picked"] = 7  # what a click on the map's 8th point records
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    loaded = load_checkpoint(REPO / "models" / "mnist.pt")
    test = load_dataset("mnist", "test", data_dir=real_data_dir)
    sample = projection_sample(test.labels)
    features = penultimate_features(loaded.model, test.images[sample], loaded.mean, loaded.std)
    distances = torch.cdist(features.double(), features.double())[7]
    distances[7] = float("inf")
    nearest = distances.topk(5, largest=False).indices.tolist()
    text = " ".join(m.value for m in app.markdown)
    assert f"Test image {int(sample[7])}" in text
    image = test.images[sample[7]:sample[7] + 1].float() / 255
    logits = loaded.model((image - loaded.mean[0]) / loaded.std[0])
    probability = torch.softmax(logits, dim=1).max().item()
    assert f"{probability:.1%}" in text
    rows = [[img.caption for img in element.proto.imgs] for element in app.get("image")]
    neighbours = next(row for row in rows if len(row) == 5)  # the point's own image comes first, alone
    assert neighbours == [f"{loaded.classes[int(test.labels[sample[p]])]} (test {int(sample[p])})"
                          for p in nearest]


def test_tsne_shows_a_progress_line_then_the_map(monkeypatch, real_data_dir: Path) -> None:
    app = _app(monkeypatch, real_data_dir)
    app.radio(key="train_projection_method").set_value("tsne").run()
    assert not app.exception, [e.value for e in app.exception]
    lines = [bar.proto.text for bar in app.get("progress")]
    assert len(lines) == 1 and lines[0].startswith("t-SNE of 2,000 images: ") and "about" in lines[0]
    deadline = time.monotonic() + 90
    while not any("t-SNE 1" in json.dumps(e.proto.spec) for e in app.main
                  if type(e).__name__ == "UnknownElement" and hasattr(e.proto, "spec")):
        assert time.monotonic() < deadline, "the t-SNE map did not come in 90 s"
        time.sleep(1)
        app.run()
        assert not app.exception, [e.value for e in app.exception]


SNAPSHOT_SCRIPT = """
import streamlit as st
import torch
from cnnviz.datasets import files as data
from cnnviz.networks.build import build_model
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.features import penultimate_features, projection_sample
from cnnviz.training.snapshots import RunSnapshots
from cnnviz.ui.training.projection_view import projection_view

@st.cache_resource
def run():
    loaded = load_checkpoint("models/mnist.pt")
    test = data.load_dataset("mnist", "test")
    indices = projection_sample(test.labels, count=500, seed=3)
    torch.manual_seed(0)  # the same net at its initial weights: what a run's step 0 keeps
    untrained = build_model(loaded.spec, 1, 10, 28)
    before = penultimate_features(untrained, test.images[indices], loaded.mean, loaded.std)
    empty = torch.zeros(0, dtype=torch.int64)
    no_pixels = torch.zeros(0, 1, 28, 28, dtype=torch.uint8)
    snapshots = RunSnapshots(0, [], [], None, "", "test", empty, empty, no_pixels,
                             projection_indices=indices, projection_before=before)
    return loaded, snapshots

loaded, snapshots = run()
projection_view(loaded.model, data.DATASETS["mnist"], snapshots)
"""


def test_a_run_with_snapshots_is_mapped_before_and_after(monkeypatch, real_data_dir: Path) -> None:
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
    monkeypatch.chdir(REPO)
    app = AppTest.from_string(SNAPSHOT_SCRIPT, default_timeout=60)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.radio(key="train_projection_view").value == "side by side"
    loaded = load_checkpoint(REPO / "models" / "mnist.pt")
    test = load_dataset("mnist", "test", data_dir=real_data_dir)
    indices = projection_sample(test.labels, count=500, seed=3)
    after = project(penultimate_features(loaded.model, test.images[indices], loaded.mean, loaded.std), "pca")
    figure = _figure(app)
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert titles == ["before training", "after training"]
    labels = test.labels[indices]
    for trace in figure["data"]:
        if trace.get("xaxis") != "x2":
            continue
        mine = (labels == loaded.classes.index(trace["name"])).numpy()
        np.testing.assert_allclose(_decode(trace["x"]), after[mine, 0].numpy(), atol=1e-5)
    assert len([t for t in figure["data"] if t.get("xaxis") == "x"]) == 10  # before: one trace per class
    # t-SNE side by side: two maps, one after the other, and the progress line counts both
    app.radio(key="train_projection_method").set_value("tsne").run()
    assert not app.exception, [e.value for e in app.exception]
    lines = [bar.proto.text for bar in app.get("progress")]
    assert len(lines) == 1 and "; then 1 more map, about " in lines[0], lines
    app.radio(key="train_projection_method").set_value("pca").run()
    app.radio(key="train_projection_view").set_value("before training").run()
    assert [a["text"] for a in _figure(app)["layout"]["annotations"]] == ["before training"]
    app.session_state["train_projection_picked"] = 11
    app.run()
    text = " ".join(m.value for m in app.markdown)
    assert "Before training" in text and f"Test image {int(indices[11])}" in text
