"""`predict` and `bench predict` on the shipped models, run in this process through ``cnnviz.cli.main``."""

from __future__ import annotations

import contextlib
import json
import resource
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnviz.datasets.samples import list_samples, load_sample
from cnnviz.images.decode import read_image_file
from cnnviz.images.preprocess import preprocess
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import load_checkpoint
from tests.test_cli import cli

MNIST_MODEL = MODELS_DIR / "mnist.pt"
CIFAR_MODEL = MODELS_DIR / "cifar10.pt"


def needs(path):
    return pytest.mark.skipif(not path.is_file(), reason=f"{path.name} is not in models/ yet")


def write_digit_photos(folder, count: int = 6) -> list[tuple[str, str]]:
    """Bundled MNIST test digits written as dark-ink-on-white JPEGs, 4x enlarged: (path, true label)."""
    written = []
    for sample in list_samples("mnist")[::5][:count]:
        ink = load_sample(sample)[0].numpy()  # (28, 28) white on black
        paper = Image.fromarray(255 - ink).resize((112, 112), Image.Resampling.BICUBIC)
        path = folder / f"digit_{sample.label}_{sample.test_index}.jpg"
        paper.save(path, "JPEG", quality=90)
        written.append((str(path), sample.class_name))
    return written


def own_forward_pass(path: str, model_path) -> torch.Tensor:
    """The probabilities the model itself gives for a file's preprocessed tensor (the mean logits of
    the image and its mirror image for a model trained to answer that way)."""
    loaded = load_checkpoint(model_path)
    prepared = preprocess(read_image_file(path), loaded.dataset, loaded.mean, loaded.std)
    x = prepared.tensor
    with torch.inference_mode():
        logits = loaded.model(x)[0]
        if loaded.metadata["training"].get("mirror_tta"):
            logits = (logits + loaded.model(torch.flip(x, dims=[3]))[0]) / 2
        return torch.softmax(logits, dim=0)


@needs(MNIST_MODEL)
def test_predict_json_on_real_files_with_a_broken_one_in_the_middle(tmp_path, capsys) -> None:
    photos = write_digit_photos(tmp_path)
    broken = tmp_path / "cut_off.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")  # a PNG cut off in its header
    paths = [photos[0][0], str(broken), *(p for p, _ in photos[1:])]

    result = cli(capsys, "predict", "--model", str(MNIST_MODEL), "--top", "3", "--json", *paths)

    assert result.returncode == 1, result.stderr  # one file failed; the others were still predicted
    entries = json.loads(result.stdout)
    assert [e["file"] for e in entries] == paths
    assert set(entries[1]) == {"file", "error"} and "damaged" in entries[1]["error"]
    good = [e for e in entries if "error" not in e]
    assert len(good) == len(photos)
    assert sum(e["label"] == label for e, (_, label) in zip(good, photos, strict=True)) >= len(photos) - 1
    for entry in good:
        assert len(entry["top"]) == 3
        assert entry["top"][0] == [entry["label"], entry["probability"]]
        assert [p for _, p in entry["top"]] == sorted((p for _, p in entry["top"]), reverse=True)
    expected = own_forward_pass(photos[0][0], MNIST_MODEL)
    assert entries[0]["label"] == str(int(expected.argmax()))
    assert entries[0]["probability"] == pytest.approx(float(expected.max()), abs=1e-6)


@needs(MNIST_MODEL)
def test_predict_text_and_friendly_errors(tmp_path, capsys) -> None:
    (path, label), = write_digit_photos(tmp_path, count=1)
    result = cli(capsys, "predict", "--model", str(MNIST_MODEL), path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}  {label} (") and "top 5:" in result.stdout

    missing_model = cli(capsys, "predict", "--model", str(tmp_path / "none.pt"), path)
    assert missing_model.returncode == 2 and missing_model.stderr.startswith("error: No model file")
    assert "Traceback" not in missing_model.stderr
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("hello")
    foreign = cli(capsys, "predict", "--model", str(not_a_model), path)
    assert foreign.returncode == 2 and "not a readable cnnviz model" in foreign.stderr


@contextlib.contextmanager
def at_most_more_memory(extra_bytes: int):
    """This process may take at most ``extra_bytes`` more data memory (RLIMIT_DATA) inside the block,
    so a command that reads without end fails with MemoryError instead of filling the machine."""
    used = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmData:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = used + extra_bytes if hard == resource.RLIM_INFINITY else min(used + extra_bytes, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


@needs(MNIST_MODEL)
@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_predict_on_an_endless_device_refuses_it_quickly(capsys) -> None:
    load_checkpoint(MNIST_MODEL)  # the model's own memory is not what is measured
    started = time.perf_counter()
    with at_most_more_memory(1 * 2**30):
        result = cli(capsys, "predict", "--model", str(MNIST_MODEL), "--json", "/dev/zero")
    seconds = time.perf_counter() - started
    assert result.returncode == 1, result.stderr
    (entry,) = json.loads(result.stdout)
    assert entry == {"file": "/dev/zero",
                     "error": "/dev/zero holds more than the 10 MB cnnviz accepts: use a smaller image."}
    assert seconds < 10, f"{seconds:.1f} s"


@needs(CIFAR_MODEL)
def test_predict_cifar_photo_matches_the_models_own_forward_pass(tmp_path, capsys) -> None:
    sample = list_samples("cifar10")[0]
    path = tmp_path / "photo.png"
    Image.fromarray(load_sample(sample).permute(1, 2, 0).numpy()).resize((96, 96)).save(path)  # (H, W, C)
    result = cli(capsys, "predict", "--model", str(CIFAR_MODEL), "--json", str(path))
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)
    expected = own_forward_pass(str(path), CIFAR_MODEL)
    classes = load_checkpoint(CIFAR_MODEL).classes
    assert entry["label"] == classes[int(expected.argmax())]
    assert entry["probability"] == pytest.approx(float(expected.max()), abs=1e-6)
    assert sum(p for _, p in entry["top"]) <= 1.0 + 1e-6


@needs(MNIST_MODEL)
@pytest.mark.slow
@pytest.mark.bench
def test_bench_predict_reports_its_numbers(real_data_dir, capsys) -> None:
    # Its times are judged by the command itself (ok / over the target), not here.
    result = cli(capsys, "bench", "predict", "--model", str(MNIST_MODEL), "--photos", "100", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (mnist,) = report["models"]
    assert mnist["dataset"] == "mnist" and mnist["layers"] == len(load_checkpoint(MNIST_MODEL).model.features)
    assert mnist["inspect_ms"] > 0 and mnist["preprocess_ms"] > 0
    assert mnist["staged_photos"] == 100 and mnist["staged_accuracy"] >= 0.95
    assert mnist["page_rerun_ms"] > 0
