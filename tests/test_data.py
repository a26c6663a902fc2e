"""The dataset loaders on the real files (when present) and on tiny files written here."""

from __future__ import annotations

import gzip
import pickle
import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.datasets import files as data


@pytest.fixture(autouse=True)
def _fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


# --- real data -----------------------------------------------------------------------------

def test_real_mnist_counts_labels_and_ranges(real_data_dir):
    train = data.load_dataset("mnist", "train", real_data_dir, download=False)
    test = data.load_dataset("mnist", "test", real_data_dir, download=False)
    assert train.images.shape == (60_000, 1, 28, 28)
    assert test.images.shape == (10_000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert int(train.images.min()) == 0 and int(train.images.max()) == 255
    assert set(test.labels.unique().tolist()) == set(range(10))
    assert train.info.classes[5] == "5"


def test_real_cifar10_counts_balance_and_ranges(real_data_dir):
    train = data.load_dataset("cifar10", "train", real_data_dir, download=False)
    test = data.load_dataset("cifar10", "test", real_data_dir, download=False)
    assert train.images.shape == (50_000, 3, 32, 32)
    assert test.images.shape == (10_000, 3, 32, 32)
    assert test.images.dtype == torch.uint8 and test.labels.dtype == torch.int64
    assert torch.bincount(test.labels, minlength=10).tolist() == [1000] * 10
    assert torch.bincount(train.labels, minlength=10).tolist() == [5000] * 10
    # Real photos: every channel spans nearly the whole range and the mean is near the known stats.
    channel_means = train.images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(channel_means, torch.tensor(data.CIFAR10_MEAN), atol=0.01)
    assert test.info.classes == ("airplane", "automobile", "bird", "cat", "deer",
                                 "dog", "frog", "horse", "ship", "truck")


def test_real_mnist_stats_match_the_constants(real_data_dir):
    train = data.load_dataset("mnist", "train", real_data_dir, download=False)
    pixels = train.images.float() / 255
    assert pixels.mean().item() == pytest.approx(data.MNIST_MEAN[0], abs=1e-3)
    assert pixels.std().item() == pytest.approx(data.MNIST_STD[0], abs=1e-3)


def test_loader_caches_decoded_splits(real_data_dir):
    first = data.load_dataset("mnist", "test", real_data_dir, download=False)
    again = data.load_dataset("mnist", "test", str(real_data_dir), download=False)
    assert again.images is first.images


def test_data_dir_from_environment(real_data_dir, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(real_data_dir))
    assert data.resolve_data_dir() == real_data_dir
    assert len(data.load_dataset("mnist", "test", download=False)) == 10_000


# --- tiny files written here, in both formats ----------------------------------------------

def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_tiny_mnist(root: Path, n: int = 12, gz: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    written = {}
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, array, dims in (("images", images, 3), ("labels", labels, 1)):
            name = f"{prefix}-{kind}-idx{dims}-ubyte"
            payload = _idx_bytes(array)
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (raw / name).write_bytes(payload)
            written[f"{prefix}-{kind}"] = array
    return written


def write_tiny_cifar10(root: Path, per_batch: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pixels = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": pixels,
                 b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        written[name] = pixels
        written[name + "-labels"] = np.array(labels)
    return written


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
def test_tiny_mnist_files_decode_exactly(tmp_path, gz):
    written = write_tiny_mnist(tmp_path, gz=gz)
    train = data.load_dataset("mnist", "train", tmp_path, download=False)
    test = data.load_dataset("mnist", "test", tmp_path, download=False)
    assert train.images.shape == (12, 1, 28, 28)
    assert np.array_equal(train.images[:, 0].numpy(), written["train-images"])
    assert np.array_equal(test.labels.numpy(), written["t10k-labels"].astype(np.int64))


def test_tiny_cifar10_files_decode_exactly(tmp_path):
    written = write_tiny_cifar10(tmp_path)
    train = data.load_dataset("cifar10", "train", tmp_path, download=False)
    test = data.load_dataset("cifar10", "test", tmp_path, download=False)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    # Row layout: 1024 red, 1024 green, 1024 blue values, each row-major.
    first = written["data_batch_1"][0]
    assert np.array_equal(train.images[0, 0].numpy().ravel(), first[:1024])
    assert np.array_equal(train.images[0, 2].numpy().ravel(), first[2048:])
    assert np.array_equal(train.images[4].numpy().ravel(), written["data_batch_2"][0])
    assert test.labels.tolist() == written["test_batch-labels"].tolist()


def test_missing_data_names_the_folder_and_files(tmp_path):
    with pytest.raises(data.DataNotFoundError) as caught:
        data.load_dataset("cifar10", "test", tmp_path / "nowhere", download=False)
    message = str(caught.value)
    assert str(tmp_path / "nowhere") in message
    assert "cifar-10-batches-py/data_batch_1" in message and "test_batch" in message
    assert data.DATA_DIR_ENV in message and "\n" not in message
    with pytest.raises(data.DataNotFoundError, match=r"MNIST/raw/train-images-idx3-ubyte"):
        data.load_dataset("mnist", "train", tmp_path, download=False)


def test_a_download_that_fails_for_another_reason_than_the_network_says_what_failed(tmp_path):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data folder should be")
    with pytest.raises(data.DataNotFoundError) as caught:
        data.load_dataset("mnist", "test", not_a_folder)  # a real failure: the folder cannot be made
    message = str(caught.value)
    assert "offline" not in message and "FileExistsError" in message and "\n" not in message, message
    assert "MNIST/raw/t10k-images-idx3-ubyte" in message


@pytest.mark.parametrize(("name", "module"), [("mnist", "mnist"), ("cifar10", "cifar")])
def test_a_download_without_a_network_still_says_offline(tmp_path, monkeypatch, name, module):
    import torchvision.datasets

    def unreachable(*args, **kwargs):  # what urllib raises without a network
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    # torchvision's own downloader: the real one cannot reach the internet from here
    monkeypatch.setattr(getattr(torchvision.datasets, module), "download_and_extract_archive", unreachable)
    with pytest.raises(data.DataNotFoundError, match=r"downloading it failed \(offline\?\)"):
        data.load_dataset(name, "test", tmp_path)


@pytest.mark.parametrize(("error", "words"), [
    (RuntimeError("File not found or corrupted."), ["RuntimeError", "File not found or corrupted"]),
    (urllib.error.HTTPError("https://example.org/x", 404, "Not Found", None, None), ["HTTP Error 404"]),
    (PermissionError(13, "Permission denied"), ["PermissionError", "Permission denied"]),
])
def test_a_download_failure_is_named_unless_it_is_the_network(tmp_path, monkeypatch, error, words):
    import torchvision.datasets

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", fails)
    with pytest.raises(data.DataNotFoundError) as caught:
        data.load_dataset("cifar10", "test", tmp_path)
    message = str(caught.value)
    assert "offline" not in message and all(w in message for w in words), message


def test_truncated_mnist_file_is_reported(tmp_path):
    write_tiny_mnist(tmp_path, gz=False)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(data.CorruptDataError, match="truncated"):
        data.load_dataset("mnist", "train", tmp_path, download=False)


def test_garbage_cifar_batch_is_reported(tmp_path):
    write_tiny_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(data.CorruptDataError, match="test_batch"):
        data.load_dataset("cifar10", "test", tmp_path, download=False)


class _RunsACommand:
    """Unpickling this calls os.system: what a crafted data_batch would do on the server."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def test_crafted_cifar_batch_is_refused_and_never_runs(tmp_path):
    write_tiny_cifar10(tmp_path)
    marker = tmp_path / "ran"
    batch = {b"labels": [0], b"data": _RunsACommand(f"touch {marker}")}
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(data.CorruptDataError) as caught:
        data.load_dataset("cifar10", "train", tmp_path, download=False)
    message = str(caught.value)
    assert "data_batch_3 is not a CIFAR-10 batch: it asks to load" in message
    assert "system" in message
    assert not marker.exists()
    # the same file through plain pickle would have run the command: the test can fail
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "rb") as f:
        pickle.load(f)  # noqa: S301 - shows the crafted file is live
    assert marker.exists()


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="Unknown dataset 'svhn'"):
        data.dataset_info("svhn")
    assert data.dataset_info("CIFAR-10").name == "cifar10"
    with pytest.raises(ValueError, match="Unknown split"):
        data.load_dataset("mnist", "validation")


def test_default_dir_is_a_per_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.resolve_data_dir() == tmp_path / "cnnviz" / "data"
    assert data.resolve_data_dir("~/elsewhere") == Path.home() / "elsewhere"
