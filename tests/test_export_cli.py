"""`export --model M --onnx F --code F` and `summary SPEC --diagram F`, run as commands (in this process)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import onnx
import onnxruntime
import torch
from PIL import Image

from cnnviz import paths
from cnnviz.networks.diagram import shape_text, spec_diagram
from cnnviz.networks.diagram_draw import png_size
from cnnviz.networks.onnx_export import INPUT_NAME, onnx_class_names
from cnnviz.networks.summary import summarize_spec
from cnnviz.networks.tta import class_logits
from cnnviz.training.checkpoint import load_checkpoint, save_checkpoint
from cnnviz.training.config import TrainConfig
from cnnviz.training.presets import NET_PRESETS
from cnnviz.training.script import training_script
from tests.test_cli import cli

SVG = "{http://www.w3.org/2000/svg}"


def test_export_writes_the_onnx_model_and_the_training_script(capsys, tmp_path):
    onnx_path, code_path = tmp_path / "cifar.onnx", tmp_path / "train.py"
    result = cli(capsys, "export", "--model", "cifar10", "--onnx", str(onnx_path), "--code", str(code_path))
    assert result.returncode == 0, result.stderr
    assert f"wrote {onnx_path}" in result.stdout and f"wrote {code_path}" in result.stdout
    loaded = load_checkpoint(paths.MODELS_DIR / "cifar10.pt")
    proto = onnx.load(onnx_path)
    onnx.checker.check_model(proto)
    assert onnx_class_names(proto) == loaded.classes
    images = torch.randn(3, *loaded.input_shape, generator=torch.Generator().manual_seed(0))
    (logits,) = onnxruntime.InferenceSession(str(onnx_path)).run(None, {INPUT_NAME: images.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), class_logits(loaded.model, images),
                                   atol=1e-4, rtol=1e-4)
    script = code_path.read_text()
    config = TrainConfig(**loaded.metadata["training"])
    assert script == training_script(config, "train.py")  # the model's own spec and recipe
    assert "    python train.py --data DATA_FOLDER " in script  # its usage names the file written
    assert config.spec == loaded.spec
    compile(script, str(code_path), "exec")


def test_export_by_path_with_only_the_code(capsys, tmp_path):
    code_path = tmp_path / "mnist_train.py"
    result = cli(capsys, "export", "--model", str(paths.MODELS_DIR / "mnist.pt"), "--code", str(code_path))
    assert result.returncode == 0, result.stderr
    assert "C16k5s2p2n C32n M F128" in code_path.read_text()
    assert not list(tmp_path.glob("*.onnx"))


def test_export_problems_get_one_sentence(capsys, tmp_path):
    missing = cli(capsys, "export", "--model", "no-such-model", "--onnx", str(tmp_path / "x.onnx"))
    assert missing.returncode == 2 and "There is no model file no-such-model" in missing.stderr
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint at all")
    bad = cli(capsys, "export", "--model", str(broken), "--onnx", str(tmp_path / "x.onnx"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.onnx").exists()
    unwritable = cli(capsys, "export", "--model", "mnist", "--onnx", str(tmp_path / "no-dir" / "x.onnx"))
    assert unwritable.returncode == 2 and "Cannot write the ONNX file" in unwritable.stderr
    nothing = cli(capsys, "export", "--model", "mnist")
    assert nothing.returncode == 2 and "--onnx FILE" in nothing.stderr
    loaded = load_checkpoint(paths.MODELS_DIR / "mnist.pt")
    bare = save_checkpoint(tmp_path / "bare.pt", loaded.model,
                           {k: v for k, v in loaded.metadata.items() if k != "training"})
    no_settings = cli(capsys, "export", "--model", str(bare), "--code", str(tmp_path / "t.py"))
    assert no_settings.returncode == 2 and "stores no training settings" in no_settings.stderr
    assert not (tmp_path / "t.py").exists()


def test_summary_draws_the_diagram_as_svg_and_png(capsys, tmp_path):
    preset = NET_PRESETS["cifar10_speed"]
    svg_path, png_path = tmp_path / "net.svg", tmp_path / "net.png"
    result = cli(capsys, "summary", "cifar10_speed", "--diagram", str(svg_path))
    assert result.returncode == 0, result.stderr
    assert f"diagram: {svg_path}" in result.stderr and "total parameters" in result.stdout
    blocks = [g for g in ET.parse(svg_path).getroot().iter(f"{SVG}g") if g.get("class") == "block"]
    assert [g.get("data-token") for g in blocks] == ["", *preset.spec.split(), ""]
    last_shape = summarize_spec(preset.spec, (3, 32, 32)).layers[-1].output_shape
    assert blocks[-1].find(f"{SVG}text[@class='shape']").text == shape_text(last_shape)
    assert "airplane" in [t.text for t in blocks[-1].iter(f"{SVG}text")]  # a preset: its dataset's classes
    result = cli(capsys, "summary", "C8 M F16", "--input", "1x28x28", "--diagram", str(png_path))
    assert result.returncode == 0, result.stderr
    assert Image.open(png_path).size == png_size(spec_diagram("C8 M F16", (1, 28, 28)))
    width, height = Image.open(png_path).size  # the size it says is the file's (drawn at twice the SVG's)
    assert f"diagram: {png_path} ({width} x {height} px)" in result.stderr
    wrong = cli(capsys, "summary", "C8", "--input", "1x28x28", "--diagram", str(tmp_path / "net.pdf"))
    assert wrong.returncode == 2 and "ending in .svg or .png" in wrong.stderr
