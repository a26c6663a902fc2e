"""The Train page's "Take it with you" under AppTest: the bytes its download buttons serve are the
chosen spec's diagram (SVG and PNG), a run's ONNX model and its training script."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import PurePosixPath

import onnx
import onnxruntime
import pytest
import torch
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from cnnviz.datasets import files as data
from cnnviz.networks.diagram import spec_diagram
from cnnviz.networks.diagram_draw import png_size
from cnnviz.networks.onnx_export import INPUT_NAME, onnx_class_names
from cnnviz.networks.tta import class_logits
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.config import TrainConfig
from cnnviz.training.presets import NET_PRESETS
from cnnviz.training.script import training_script
from cnnviz.training.step import normalize
from cnnviz.ui.training.runs import RunRecord
from tests.test_training_page import _open_training_page

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module", autouse=True)
def _speed_timing_done():
    """The Train page times this machine in a background thread; a process that ends while it runs is
    aborted (rc 134), so the module waits for it, as tests/test_training_page.py does."""
    yield
    from cnnviz.runtime import training_threads
    from cnnviz.training import estimate

    estimate.machine_speed("mnist", "auto", training_threads())


@pytest.fixture
def served(monkeypatch) -> dict[str, bytes]:
    """What Streamlit's media storage is handed (the download buttons' files), by file id."""
    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        files[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return files


def _download(app, served: dict[str, bytes], label: str) -> bytes:
    (button,) = [b for b in app.get("download_button") if b.proto.label == label]
    return served[PurePosixPath(button.proto.url).stem]


def test_the_chosen_spec_s_diagram_downloads_as_svg_and_png(monkeypatch, tmp_path, real_data_dir, served):
    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    for preset, shape in (("mnist_fast", (1, 28, 28)), ("vgg_classic", (1, 28, 28))):
        app.selectbox(key="train_preset_mnist").set_value(preset).run()
        assert not app.exception, [e.value for e in app.exception]
        spec = NET_PRESETS[preset].spec
        svg = _download(app, served, "Diagram (SVG)")
        blocks = [g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("class") == "block"]
        assert [g.get("data-token") for g in blocks] == ["", *spec.split(), ""]
        classes = [t.text for t in blocks[-1].iter(f"{SVG}text") if t.get("class") == "class"]
        assert classes == list(data.DATASETS["mnist"].classes)
        png = Image.open(io.BytesIO(_download(app, served, "Diagram (PNG)")))
        assert png.size == png_size(spec_diagram(spec, shape, 10, data.DATASETS["mnist"].classes))
    assert not [b for b in app.get("download_button") if b.proto.label == "Download ONNX"]  # no run yet


def test_a_bad_spec_draws_no_diagram_and_no_error(monkeypatch, tmp_path, real_data_dir):
    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    app.selectbox(key="train_preset_mnist").set_value("custom").run()
    app.text_input(key="train_spec").set_value("C32 X9").run()
    assert not app.exception, [e.value for e in app.exception]
    assert not [b for b in app.get("download_button") if b.proto.label.startswith("Diagram")]
    assert any("Take it with you" in h.value for h in app.subheader)


def test_a_run_downloads_as_a_valid_onnx_model_and_its_training_script(monkeypatch, tmp_path, real_data_dir,
                                                                      served):
    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    records = []
    for number, name in enumerate(("mnist", "cifar10"), start=1):  # trained models: the shipped ones
        trained = load_checkpoint(MODELS_DIR / f"{name}.pt")
        records.append(RunRecord(
            label=f"#{number}", dataset=trained.dataset, spec=trained.spec, params=0, epochs=1.0,
            train_accuracy=None, val_accuracy=None, test_accuracy=trained.test_accuracy, seconds=1.0,
            device="cpu", stopped=False, history=(), model=trained.model, metadata=trained.metadata))
    app.session_state["train_runs"] = records
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    for record in (records[1], records[0]):  # the latest is offered first, then the run picked
        if record is records[0]:
            app.selectbox(key="train_takeaway_run_2").set_value("#1").run()
            assert not app.exception, [e.value for e in app.exception]
        proto = onnx.load_from_string(_download(app, served, "Download ONNX"))
        onnx.checker.check_model(proto)
        assert onnx_class_names(proto) == list(record.metadata["classes"])
        test = data.load_dataset(record.dataset, "test", real_data_dir, download=False)
        mean = torch.tensor(record.metadata["mean"]).view(1, -1, 1, 1)  # (1, C, 1, 1)
        images = normalize(test.images[:7], mean, torch.tensor(record.metadata["std"]).view(1, -1, 1, 1))
        session = onnxruntime.InferenceSession(proto.SerializeToString())
        (logits,) = session.run(None, {INPUT_NAME: images.numpy()})
        with torch.no_grad():
            expected = class_logits(record.model, images)
        torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=1e-4)
        script = _download(app, served, "Download the training script").decode()
        assert script == training_script(TrainConfig(**record.metadata["training"]))


def test_the_form_s_settings_download_as_a_training_script_before_any_run(
    monkeypatch, tmp_path, real_data_dir, served
):
    app = _open_training_page(monkeypatch, tmp_path, real_data_dir)
    app.selectbox(key="train_preset_mnist").set_value("mnist_fast").run()
    app.slider(key="train_mnist_fast_epochs").set_value(2).run()
    app.number_input(key="train_mnist_fast_lr").set_value(0.0123).run()
    app.number_input(key="train_mnist_fast_seed").set_value(7).run()
    assert not app.exception, [e.value for e in app.exception]
    script = _download(app, served, "Training script (these settings)").decode()
    compile(script, "train_mnist.py", "exec")
    lines = script.splitlines()
    assert "EPOCHS = 2" in lines and "LR = 0.0123  # peak learning rate" in lines
    assert '    parser.add_argument("--seed", type=int, default=7)' in lines
    assert "class Net(nn.Module):" in lines and "C16k5s2p2n C32n M F128" in script  # mnist_fast's spec
