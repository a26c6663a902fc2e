"""The Train page's time machine on a tiny real run (MNIST, 2,000 images, 1 epoch): every moment of
the slider shows that snapshot's own numbers, Play moves it, and the run keeps its snapshots."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnnviz import pages
from cnnviz.datasets.files import load_dataset
from cnnviz.images.inspection import predict
from cnnviz.images.preprocess import normalize_image
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.ui.navigation import page_spec
from cnnviz.ui.training.timeline import moment_label
from tests.conftest import REPO

TINY_SPEC = "C8n M C16n M F32"
PROBE_INDEX = 7


def _decoded(value):
    """A figure's JSON with Plotly's base64-packed arrays turned back into numpy arrays."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return array.reshape([int(n) for n in str(value.get("shape", len(array))).split(",")])
    if isinstance(value, dict):
        return {key: _decoded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    return value


def chart(app: AppTest, key: str) -> dict:
    element = next(e for e in app.get("plotly_chart") if e.proto.id and key in e.proto.id)
    return _decoded(json.loads(element.proto.spec))


def _train_tiny_run(app: AppTest, seed: int = 0) -> object:
    app.button(key=pages.TRAIN_START_KEY).click().run()
    job = app.session_state["train_job"]
    job.join(timeout=180)
    app.run()  # the live view notices the end and reruns the page with the run in the history
    assert not app.exception, [e.value for e in app.exception]
    return job.snapshot().result


@pytest.fixture
def trained_page(monkeypatch, tmp_path, real_data_dir):
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
    monkeypatch.setenv("CNNVIZ_MODELS_DIR", str(tmp_path))
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    app.run()
    app.switch_page(str(page_spec("train").path))
    app.run()
    app.selectbox(key="train_preset_mnist").set_value("custom").run()
    app.text_input(key="train_spec").set_value(TINY_SPEC).run()
    app.selectbox(key="train_custom_subset").set_value("2,000").run()
    app.slider(key="train_custom_epochs").set_value(1).run()
    app.select_slider(key="train_custom_batch").set_value(64).run()
    app.number_input(key="train_probe_index").set_value(PROBE_INDEX).run()
    assert not app.exception, [e.value for e in app.exception]
    return app, _train_tiny_run(app), tmp_path


def _check_moment(app: AppTest, run, index: int, classes) -> None:
    """What the page shows at snapshot ``index`` is that snapshot's own numbers."""
    snapshot = run.snapshots[index]
    assert app.select_slider(key=pages.TRAIN_TIME_KEY).value == index
    caption = next(c.value for c in app.caption if c.value.startswith("Snapshot "))
    assert caption.startswith(f"Snapshot {index + 1} of {len(run.snapshots)}: after {snapshot.step:,} "
                              f"training steps (epoch {snapshot.epoch:.2f})")
    answer = chart(app, "train_time_answer")["data"][0]
    assert answer["y"] == list(classes)
    np.testing.assert_allclose(answer["x"], snapshot.probe.probabilities.numpy(), rtol=0, atol=1e-7)
    confusion = chart(app, "train_time_confusion")["data"][0]
    np.testing.assert_array_equal(np.asarray(confusion["z"]), snapshot.confusion.numpy())
    rows = snapshot.confusion.sum(dim=1)
    accuracy = chart(app, "train_time_accuracy")["data"][0]
    expected = [float(snapshot.confusion[c, c]) / max(int(rows[c]), 1) for c in range(len(classes))]
    np.testing.assert_allclose(np.asarray(accuracy["y"], dtype=np.float64), expected, rtol=0, atol=1e-6)
    marks = chart(app, "train_time_curves")["layout"]["shapes"]
    assert [m["x0"] for m in marks] == pytest.approx([snapshot.epoch, snapshot.epoch])


@pytest.mark.slow
def test_the_slider_shows_each_snapshot_s_own_numbers(trained_page, real_data_dir):
    app, result, models_dir = trained_page
    run = result.snapshots
    assert run is not None and len(run.snapshots) >= 10
    test = load_dataset("mnist", "test", data_dir=real_data_dir)
    assert torch.equal(run.probe_pixels, test.images[PROBE_INDEX])  # the probe the student picked
    assert run.probe_label == f"test image {PROBE_INDEX} (labelled {int(test.labels[PROBE_INDEX])})"
    assert app.session_state["train_runs"][-1].snapshots is run  # kept with the run
    classes = result.info.classes

    slider = app.select_slider(key=pages.TRAIN_TIME_KEY)
    assert slider.options == [moment_label(s) for s in run.snapshots]
    last = len(run.snapshots) - 1
    _check_moment(app, run, last, classes)  # a finished run opens at its end
    # The end is the trained model itself: its own forward pass on the probe gives the bars' numbers.
    final = predict(result.model, normalize_image(run.probe_pixels, result.info.mean, result.info.std))
    torch.testing.assert_close(run.snapshots[last].probe.probabilities, final.probabilities, atol=1e-5,
                               rtol=0)
    for index in (0, 3, last // 2):
        app.select_slider(key=pages.TRAIN_TIME_KEY).set_value(index).run()
        assert not app.exception, [e.value for e in app.exception]
        _check_moment(app, run, index, classes)

    started = time.perf_counter()
    app.select_slider(key=pages.TRAIN_TIME_KEY).set_value(5).run()
    print(f"\nslider step, whole page under AppTest: {time.perf_counter() - started:.3f} s")

    # Play from the end starts again at the beginning, then moves one snapshot each rerun.
    app.select_slider(key=pages.TRAIN_TIME_KEY).set_value(last).run()
    app.button(key=pages.TRAIN_PLAY_KEY).click().run()
    assert app.button(key=pages.TRAIN_PLAY_KEY).label == "Pause"
    _check_moment(app, run, 0, classes)
    app.run()  # what run_every does in the browser
    _check_moment(app, run, 1, classes)
    app.button(key=pages.TRAIN_PLAY_KEY).click().run()  # Pause
    assert app.button(key=pages.TRAIN_PLAY_KEY).label == "Play"
    app.run()
    _check_moment(app, run, 1, classes)

    # The probe's maps at a layer: the picture's range is that snapshot's own maps' range.
    app.selectbox(key="train_time_layer").set_value(2).run()
    maps = run.snapshots[1].probe.maps[2].float()
    caption = next(c.value for c in app.caption if c.value.startswith("Its first "))
    assert f"from {float(maps.min()):.2f} (dark purple) to {float(maps.max()):.2f} (yellow)" in caption

    # Saving the run saves its snapshots with it.
    app.text_input(key="train_save_name").set_value("tiny_with_snapshots")
    app.button(key=pages.TRAIN_SAVE_KEY).click().run()
    assert not app.exception, [e.value for e in app.exception]
    saved = load_checkpoint(models_dir / "tiny_with_snapshots.pt")
    assert saved.snapshots is not None and len(saved.snapshots.snapshots) == len(run.snapshots)
    assert torch.equal(saved.snapshots.snapshots[4].confusion, run.snapshots[4].confusion)


@pytest.mark.slow
def test_a_second_run_is_replayed_first_and_the_first_can_be_chosen(trained_page):
    app, first, _ = trained_page
    app.number_input(key="train_probe_index").set_value(PROBE_INDEX + 1).run()
    second = _train_tiny_run(app)
    picker = app.selectbox(key="train_time_run_2")
    assert picker.options == ["#1", "#2"] and picker.value == "#2"
    last = len(second.snapshots.snapshots) - 1
    _check_moment(app, second.snapshots, last, second.info.classes)
    picker.set_value("#1").run()
    assert not app.exception, [e.value for e in app.exception]
    _check_moment(app, first.snapshots, len(first.snapshots.snapshots) - 1, first.info.classes)
