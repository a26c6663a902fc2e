"""Predicting users' files: the JSON entries, errors that do not stop the rest, staged accuracy."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from cnnviz.datasets import files as data
from cnnviz.datasets.samples import list_samples, load_sample
from cnnviz.images import inspection as ins
from cnnviz.images.decode import decode_image
from cnnviz.images.predict import ImagePrediction, predict_files, predict_image, staged_photo_accuracy
from cnnviz.images.preprocess import preprocess
from cnnviz.images.staged_photos import stage_photo_set


class TinyCnn(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@dataclass
class Loaded:
    """The fields of cnnviz.training.checkpoint.LoadedModel that prediction reads, around a real network."""

    model: nn.Module
    dataset: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def loaded_for(dataset: str) -> Loaded:
    torch.manual_seed(1)
    info = data.dataset_info(dataset)
    return Loaded(TinyCnn(info.image_shape[0]).eval(), info.name, info.classes, info.mean, info.std)


def png_of(sample) -> bytes:
    pixels = load_sample(sample).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_json_entries_and_errors_that_do_not_stop_the_rest(tmp_path) -> None:
    loaded = loaded_for("cifar10")
    good = tmp_path / "ship.png"
    good.write_bytes(png_of(list_samples("cifar10")[0]))
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    paths = [text, good, tmp_path / "missing.png", empty, good]
    entries = [r.to_json(top_k=3) for r in predict_files(loaded, paths)]
    assert [e["file"] for e in entries] == [str(p) for p in paths]
    for index in (0, 2, 3):
        assert set(entries[index]) == {"file", "error"} and entries[index]["error"].endswith(".")
    assert "no file" in entries[2]["error"] and "empty" in entries[3]["error"]
    entry = entries[1]
    assert set(entry) == {"file", "label", "probability", "top"}
    assert entry["label"] in loaded.classes and len(entry["top"]) == 3
    assert entry["top"][0] == [entry["label"], entry["probability"]]
    # The numbers are the model's own: preprocess, then softmax of the forward pass.
    tensor = preprocess(decode_image(good.read_bytes()), "cifar10").tensor
    with torch.no_grad():
        probabilities = torch.softmax(loaded.model(tensor)[0], 0)
    assert entry["probability"] == pytest.approx(float(probabilities.max()), abs=1e-6)
    assert entries[4] == entry


def test_predict_image_keeps_the_steps_and_reports_blank_digits() -> None:
    loaded = loaded_for("mnist")
    result = predict_image(loaded, png_of(list_samples("mnist")[0]))
    assert isinstance(result, ImagePrediction) and result.error is None
    assert result.preprocessed.step("centred").image.dtype.name == "uint8"
    torch.testing.assert_close(result.prediction.probabilities,
                               ins.predict(loaded.model, result.preprocessed.tensor).probabilities)
    buffer = io.BytesIO()
    Image.new("L", (50, 50), 255).save(buffer, "PNG")
    blank = predict_image(loaded, buffer.getvalue())
    assert blank.prediction is None and "blank" in blank.error
    assert blank.to_json() == {"file": "upload", "error": blank.error}


def test_staged_photo_accuracy_counts_what_the_model_says() -> None:
    if not data.is_available("mnist"):
        pytest.skip("MNIST is not in the data directory")
    loaded = loaded_for("mnist")
    result = staged_photo_accuracy(loaded, count=12, seed=3)
    expected = 0
    for photo in stage_photo_set(12, seed=3):
        tensor = preprocess(decode_image(photo.jpeg), "mnist").tensor
        expected += ins.predict(loaded.model, tensor).label == str(photo.label)
    assert result.total == 12 and result.correct == expected
    assert len(result.wrong) == 12 - expected
    with pytest.raises(ValueError, match="MNIST model"):
        staged_photo_accuracy(loaded_for("cifar10"), count=1)


def test_the_core_modules_import_without_streamlit() -> None:
    code = ("import sys; sys.modules['streamlit'] = None; sys.modules['plotly'] = None\n"
            "import cnnviz.images.decode, cnnviz.images.preprocess, cnnviz.images.inspection, "
            "cnnviz.images.predict, cnnviz.images.staged_photos")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
