"""`python -m cnnviz explain-cell`, run in this process: its numbers are the model's own, and bad input
gets one sentence and exit status 2."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from cnnviz.datasets.files import load_dataset
from cnnviz.images.decode import read_image_file
from cnnviz.images.preprocess import normalize_image, preprocess
from cnnviz.training.checkpoint import load_checkpoint
from tests.conftest import REPO
from tests.test_cli import cli

MNIST = str(REPO / "models" / "mnist.pt")


def layer_output(model, image: torch.Tensor, number: int) -> torch.Tensor:
    """Layer ``number``'s output from the model's own nn.Sequential parts, run up to that layer."""
    features = len(model.features)
    with torch.no_grad():
        if number < features:
            return model.features[: number + 1](image.clone())
        return model.classifier[: number - features + 1](model.features(image.clone()))


@pytest.fixture(autouse=True)
def data_dir(real_data_dir, monkeypatch):
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
    return real_data_dir


@pytest.mark.parametrize(("name", "layer", "cell"), [
    ("mnist", 0, (0, 0, 0)), ("mnist", 5, (7, 3, 9)), ("mnist", 8, (100, 0, 0)),
    ("cifar10", 6, (5, 7, 2)), ("cifar10", 15, (190, 2, 1)), ("cifar10", 19, (3, 0, 0)),
])
def test_a_test_image_s_cell_is_the_model_s_own_value(capsys, data_dir, name, layer, cell):
    channel, row, col = cell
    result = cli(capsys, "explain-cell", "--model", name, "--test-index", "42", "--layer", str(layer),
                 "--channel", str(channel), "--row", str(row), "--col", str(col), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    loaded = load_checkpoint(REPO / "models" / f"{name}.pt")
    test = load_dataset(name, "test", data_dir)
    image = normalize_image(test.images[42], loaded.mean, loaded.std)
    out = layer_output(loaded.model, image, layer)[0]
    expected = float(out[channel, row, col] if out.dim() == 3 else out[channel])
    assert data["value"] == pytest.approx(expected, abs=1e-5)
    assert data["steps"][-1]["result"] == pytest.approx(expected, abs=1e-5)
    assert data["input"] == {"test_index": 42, "label": loaded.classes[int(test.labels[42])]}
    assert data["cell"] == {"layer": layer, "channel": channel, "row": row, "col": col}
    field = data["receptive_field"]
    size = loaded.model.input_shape[1]
    assert 0 <= field["rows"][0] <= field["rows"][1] < size
    assert 0 <= field["cols"][0] <= field["cols"][1] < size


def test_the_box_of_a_first_layer_cell_is_its_window_without_the_padding(capsys):
    # mnist's layer 0 is a 5x5 stride-2 conv with 2 zeros of padding: cell (0, 1) reads rows -2..2, cols 0..4
    result = cli(capsys, "explain-cell", "--model", MNIST, "--test-index", "0", "--layer", "0",
                 "--channel", "4", "--row", "0", "--col", "1", "--json")
    data = json.loads(result.stdout)
    conv = data["steps"][0]
    inside_rows = [r for r in conv["rows"] if 0 <= r < 28]
    inside_cols = [c for c in conv["cols"] if 0 <= c < 28]
    assert data["receptive_field"]["rows"] == [inside_rows[0], inside_rows[-1]] == [0, 2]
    assert data["receptive_field"]["cols"] == [inside_cols[0], inside_cols[-1]] == [0, 4]
    assert data["receptive_field"]["size"] == 5 and data["receptive_field"]["jump"] == 2


def test_an_image_file_is_prepared_as_predict_prepares_it(capsys, tmp_path, data_dir):
    test = load_dataset("mnist", "test", data_dir)
    path = tmp_path / "digit.png"
    Image.fromarray(test.images[3, 0].numpy()).save(path)
    predicted = cli(capsys, "predict", "--model", MNIST, "--json", str(path))
    (answer,) = json.loads(predicted.stdout)
    loaded = load_checkpoint(MNIST)
    unit = loaded.classes.index(answer["label"])
    result = cli(capsys, "explain-cell", "--model", MNIST, "--image", str(path), "--layer", "10",
                 "--channel", str(unit), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["softmax"]["probability"] == pytest.approx(answer["probability"], abs=1e-5)
    image = preprocess(read_image_file(path), "mnist", loaded.mean, loaded.std).tensor
    assert data["value"] == pytest.approx(float(loaded.model(image)[0, unit].detach()), abs=1e-5)


def test_the_text_shows_the_value_its_terms_and_the_box(capsys):
    result = cli(capsys, "explain-cell", "--model", "mnist", "--test-index", "5", "--layer", "4",
                 "--channel", "2", "--row", "6", "--col", "6", "--top-channels", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "mnist.pt on test image 5 (1)"
    assert lines[1].startswith("layer 4 · BatchNorm2d (C32n), channel 2, row 6, column 6: ")
    assert sum("sum of window * kernel" in line for line in lines) == 3
    assert any("the other 13 input channels" in line for line in lines)
    assert any(line.strip().startswith("BatchNorm: (") for line in lines)
    assert lines[-1].startswith("receptive field: input rows ")


@pytest.mark.parametrize(("args", "message"), [
    (["--model", MNIST, "--image", "/no/such/file.png", "--layer", "0", "--channel", "0"],
     "There is no file"),
    (["--model", "mnist", "--test-index", "0", "--layer", "11", "--channel", "0"], "layers 0 to 10"),
    (["--model", "mnist", "--test-index", "0", "--layer", "2", "--channel", "0", "--row", "14"],
     "row 0 to 13"),
    (["--model", "mnist", "--test-index", "0", "--layer", "2", "--channel", "16"], "channel 0 to 15"),
    (["--model", "mnist", "--test-index", "0", "--layer", "9", "--channel", "1", "--row", "1"],
     "128 units"),
    (["--model", "mnist", "--test-index", "10000", "--layer", "0", "--channel", "0"],
     "--test-index 0 to 9999"),
    (["--model", "no-such-model", "--test-index", "0", "--layer", "0", "--channel", "0"], "mnist"),
    (["--model", "mnist", "--test-index", "0", "--layer", "0", "--channel", "0", "--top-terms", "0"],
     "at least 1"),
])
def test_bad_input_gets_one_sentence_and_exit_status_2(capsys, args, message):
    result = cli(capsys, "explain-cell", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_broken_model_file_and_a_non_image_are_refused(capsys, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    result = cli(capsys, "explain-cell", "--model", str(broken), "--test-index", "0", "--layer", "0",
                 "--channel", "0")
    assert result.returncode == 2 and "not a readable cnnviz model" in result.stderr
    text = tmp_path / "notes.png"
    text.write_text("hello")
    result = cli(capsys, "explain-cell", "--model", MNIST, "--image", str(text), "--layer", "0",
                 "--channel", "0")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_a_field_cut_by_the_image_border_says_so(capsys):
    from cnnviz.networks.receptive_field import cell_box, layer_fields

    model = load_checkpoint(MNIST).model
    full, cut = layer_fields(model)[3].box(0, 0), cell_box(model, 3, 0, 0)  # the corner cell of layer 3
    assert (full.top, full.left) != (cut.top, cut.left)
    corner = cli(capsys, "explain-cell", "--model", "mnist", "--test-index", "0", "--layer", "3",
                 "--channel", "0").stdout.splitlines()[-1]
    assert f"({cut.height}x{cut.width} pixels)" in corner
    assert (f"rows {full.top}..{full.bottom} and columns {full.left}..{full.right}, reaches into the zero"
            in corner)
    inside = cli(capsys, "explain-cell", "--model", "mnist", "--test-index", "0", "--layer", "3",
                 "--channel", "0", "--row", "7", "--col", "7").stdout.splitlines()[-1]
    assert "zero padding" not in inside
