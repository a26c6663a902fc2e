"""`python -m cnnviz top-images`: the real top images of a channel (values equal the model's own forward
pass), the PNGs it writes, and friendly errors (exit status 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.cli import main
from cnnviz.datasets.files import load_dataset
from cnnviz.explorer.layers import trace
from cnnviz.images.preprocess import normalize_image
from cnnviz.networks.receptive_field import cell_box
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import load_checkpoint

MNIST = str(MODELS_DIR / "mnist.pt")


@pytest.fixture()
def data(real_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
    return real_data_dir


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_json_lists_the_real_strongest_responses(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _json(capsys, "top-images", "--model", MNIST, "--layer", "2", "--channel", "3", "--json")
    loaded = load_checkpoint(MNIST)
    test = load_dataset("mnist", "test", data_dir=data)
    assert report["test_images"] == len(test) == 10_000 and len(report["top"]) == 9
    values = [entry["value"] for entry in report["top"]]
    assert values == sorted(values, reverse=True)
    for entry in report["top"]:
        image = normalize_image(test.images[entry["index"]], loaded.mean, loaded.std)
        channel = trace(loaded.model, image).outputs[2][0, 3]
        assert float(channel.max()) == pytest.approx(entry["value"], abs=1e-5)
        assert float(channel[entry["row"], entry["col"]]) == pytest.approx(entry["value"], abs=1e-5)
        assert entry["label"] == loaded.classes[int(test.labels[entry["index"]])]
        box = cell_box(loaded.model, 2, entry["row"], entry["col"])
        assert entry["field"] == {"top": box.top, "left": box.left, "bottom": box.bottom, "right": box.right}


def test_out_writes_marked_crops_a_sheet_and_the_optimized_image(
        data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "top"
    report = _json(capsys, "top-images", "--model", MNIST, "--layer", "5", "--channel", "7", "--k", "4",
                   "--out", str(out), "--optimized", "--json")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"top{r}_test{e['index']}.png" for r, e in enumerate(report["top"], 1)]
                           + ["contact_sheet.png", "optimized.png"])
    test = load_dataset("mnist", "test", data_dir=data)
    first = report["top"][0]
    png = np.asarray(Image.open(out / f"top1_test{first['index']}.png").convert("L"))
    field = first["field"]
    crop = test.images[first["index"], 0, field["top"]:field["bottom"] + 1, field["left"]:field["right"] + 1]
    scale = png.shape[0] // crop.shape[0]
    assert png.shape == (crop.shape[0] * scale, crop.shape[1] * scale)
    assert np.array_equal(png[::scale, ::scale][0], crop.numpy()[0])  # the top row is not marked
    # the contact sheet: each tile is its crop, with a line of text (index, label, value) under it
    from cnnviz.commands.top_images_commands import CAPTION_PX, PNG_SIDE

    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("L"))
    assert sheet.shape == (2 * (PNG_SIDE + CAPTION_PX + 4) + 4, 3 * (PNG_SIDE + 4) + 4)  # 2 rows of 3
    tile = np.asarray(Image.open(out / f"top1_test{first['index']}.png").convert("L"))  # 9x9 crop, x17
    top, left = 4 + (PNG_SIDE - tile.shape[0]) // 2, 4 + (PNG_SIDE - tile.shape[1]) // 2
    assert np.array_equal(sheet[top:top + tile.shape[0], left:left + tile.shape[1]], tile)  # not stretched
    for i in range(4):
        left, top = 4 + (i % 3) * (PNG_SIDE + 4), 4 + (i // 3) * (PNG_SIDE + CAPTION_PX + 4)
        band = sheet[top + PNG_SIDE:top + PNG_SIDE + CAPTION_PX, left:left + PNG_SIDE]
        assert (band < 128).sum() > 30, f"no caption under tile {i + 1}"
    optimized = report["optimized"]
    assert optimized["activation"] > optimized["dataset_mean"] + 2.5 * optimized["dataset_std"]
    enlarged = np.asarray(Image.open(out / "optimized.png").convert("L"))
    made = enlarged[::enlarged.shape[0] // 28, ::enlarged.shape[1] // 28]
    loaded = load_checkpoint(MNIST)
    value = trace(loaded.model, normalize_image(torch.from_numpy(made.copy())[None], loaded.mean,
                                                loaded.std)).outputs[5][0, 7].mean()
    assert float(value) == pytest.approx(optimized["activation"], abs=1e-5)


def test_dense_units_have_no_cell(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["top-images", "--model", "mnist", "--layer", "10", "--channel", "4", "--k", "3"]) == 0
    text = capsys.readouterr().out
    assert "layer 10 · Linear, channel 4" in text and "at row" not in text
    assert text.count("(a 4)") >= 2  # the strongest "4" logits come from real 4s


@pytest.mark.parametrize(("argv", "message"), [
    (["--layer", "99", "--channel", "0"], "Layer 99 does not exist: this model has layers 0 to 10."),
    (["--layer", "5", "--channel", "32"], "Channel 32 does not exist: layer 5 has channels 0 to 31."),
    (["--layer", "5", "--channel", "0", "--k", "0"], "Ask for at least one image"),
    (["--layer", "5", "--channel", "0", "--k", "20000"], "at most 100 images"),
])
def test_friendly_errors(data: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                         message: str) -> None:
    assert main(["top-images", "--model", MNIST, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_missing_model_and_out_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["top-images", "--model", str(tmp_path / "none.pt"), "--layer", "0", "--channel", "0"]) == 2
    assert "There is no model file" in capsys.readouterr().err
    afile = tmp_path / "a.txt"
    afile.write_text("x")
    assert main(["top-images", "--model", MNIST, "--layer", "0", "--channel", "0", "--out", str(afile)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_bench_explorer_on_the_shipped_mnist_model(data: Path) -> None:
    from cnnviz.commands.explorer_bench import bench_model

    result = bench_model(load_checkpoint(MNIST))
    assert result["test_images"] == 10_000 and result["trace_ms"] > 0 and result["explain_cell"]["ms"] > 0
    assert [top["layer"] for top in result["top"]] == [2, 6]  # the first ReLU, the deepest maps (7x7)
    for top, channels in zip(result["top"], (16, 32), strict=True):
        assert top["cache_mb"] == round(10_000 * channels * 8 / 2**20, 2)
        assert top["later_channel_ms"] < top["first_s"] * 1000
    made = result["optimized"]
    assert made["activation"] > made["dataset_mean"] + 2.5 * made["dataset_std"]
    assert result["peak_rss_mb"] > 0
