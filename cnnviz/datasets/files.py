"""MNIST and CIFAR-10 as uint8 image tensors, read from a local folder in torchvision's layout.

Sources, in order:
1. a data directory laid out as torchvision lays out its ``root``:
   ``MNIST/raw/*-idx?-ubyte[.gz]`` and ``cifar-10-batches-py/`` pickles. The files are read
   directly (no checksum), so a copy whose checksums differ from the originals still loads;
2. a download through torchvision into that same directory, when the machine is online.

The directory is the ``data_dir`` argument, else ``$CNNVIZ_DATA_DIR``, else a per-user cache folder.
Decoded splits are cached in memory for the life of the process.
"""

from __future__ import annotations

import functools
import http.client
import os
import pickle
import socket
import urllib.error
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DATA_DIR_ENV = "CNNVIZ_DATA_DIR"
# A download that failed with one of these (or because of one) failed for want of a network. An
# HTTPError is a URLError too, but the server answered: it is reported as what it is (404, 503, ...).
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
                  socket.gaierror)
_URL_ERROR_MARK = "<urlopen error"  # how str() of a URLError (not an HTTPError) begins

MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset besides its pixels."""

    name: str  # "mnist" or "cifar10"
    title: str  # for people: "MNIST", "CIFAR-10"
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, pixel values scaled to 0..1
    std: tuple[float, ...]
    image_shape: tuple[int, int, int]  # (C, H, W)
    train_size: int
    test_size: int

    @property
    def num_classes(self) -> int:
        return len(self.classes)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST",
        classes=tuple(str(d) for d in range(10)),
        mean=MNIST_MEAN,
        std=MNIST_STD,
        image_shape=(1, 28, 28),
        train_size=60_000,
        test_size=10_000,
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        title="CIFAR-10",
        classes=("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"),
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        image_shape=(3, 32, 32),
        train_size=50_000,
        test_size=10_000,
    ),
}

SPLITS = ("train", "test")

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
# The only globals a real CIFAR-10 batch names (a dict of bytes, lists and numpy arrays): a pickle
# may call any global it names, so a crafted batch naming another (os.system, ...) is refused.
_CIFAR_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how pickles written by numpy under Python 3 spell byte strings
})


class DataNotFoundError(FileNotFoundError):
    """The dataset is neither in the data directory nor downloadable right now."""


class CorruptDataError(ValueError):
    """A dataset file is there but cannot be decoded."""


@dataclass(frozen=True)
class LabeledImages:
    """One split of a dataset."""

    images: torch.Tensor  # (N, C, H, W) uint8, 0..255
    labels: torch.Tensor  # (N,) int64
    info: DatasetInfo

    def __len__(self) -> int:
        return len(self.labels)


def dataset_info(name: str) -> DatasetInfo:
    """Look a dataset up by name ("mnist" or "cifar10"; case and dashes ignored)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}.")
    return DATASETS[key]


def default_cache_dir() -> Path:
    """The per-user cache folder for cnnviz (honours $XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnviz"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: the argument, else $CNNVIZ_DATA_DIR, else the per-user cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return default_cache_dir() / "data"


def expected_files(name: str, root: Path) -> list[Path]:
    """The files a dataset needs under ``root`` (MNIST may also be gzipped: ``name.gz``)."""
    info = dataset_info(name)
    if info.name == "mnist":
        return [root / "MNIST" / "raw" / f for split in SPLITS for f in _MNIST_FILES[split]]
    return [root / _CIFAR_FOLDER / f for split in SPLITS for f in _CIFAR_FILES[split]]


def is_available(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """True when every file of the dataset is in the data directory."""
    root = resolve_data_dir(data_dir)
    return all(_find_file(path) is not None for path in expected_files(name, root))


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> LabeledImages:
    """Load one split of MNIST or CIFAR-10 as uint8 tensors.

    Args:
        name: "mnist" or "cifar10".
        split: "train" or "test".
        data_dir: folder in torchvision's layout; see :func:`resolve_data_dir`.
        download: when the files are missing, try torchvision's download into ``data_dir``.

    Returns:
        The images (N, C, H, W) uint8 and labels (N,) int64, with the dataset's info.

    Raises:
        DataNotFoundError: the files are missing and could not be downloaded.
        CorruptDataError: a file is present but unreadable.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: choose 'train' or 'test'.")
    root = resolve_data_dir(data_dir).resolve()
    return _load_cached(info.name, split, str(root), download)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, root_str: str, download: bool) -> LabeledImages:
    root = Path(root_str)
    if not is_available(name, root):
        failure = _download(name, root) if download else None
        if not is_available(name, root):
            raise DataNotFoundError(_missing_message(name, root, download, failure))
    reader = _read_mnist if name == "mnist" else _read_cifar10
    images, labels = reader(root, split)
    info = DATASETS[name]
    images.requires_grad_(False)
    return LabeledImages(images=images, labels=labels, info=info)


def clear_cache() -> None:
    """Forget every decoded split (tests use this after writing new files)."""
    _load_cached.cache_clear()


def _missing_message(name: str, root: Path, tried_download: bool, failure: BaseException | None) -> str:
    info = DATASETS[name]
    files = ", ".join(str(p.relative_to(root)) for p in expected_files(name, root))
    if not tried_download:
        how = "and downloading is off"
    elif failure is None:
        how = "and the download did not put its files there"
    elif is_network_error(failure):
        how = "and downloading it failed (offline?)"
    else:
        how = f"and downloading it failed ({_one_line(failure)})"
    return (
        f"{info.title} was not found in {root} {how}: put {files} there "
        f"(MNIST files may be .gz), or point {DATA_DIR_ENV} or --data-dir at a folder that has them."
    )


def _download(name: str, root: Path) -> Exception | None:
    """Let torchvision fetch the dataset into ``root``; what went wrong, or None.

    A failure leaves the files missing, and the caller says so with the reason.
    """
    try:
        import torchvision.datasets as tvd

        root.mkdir(parents=True, exist_ok=True)
        if name == "mnist":
            for train in (True, False):
                tvd.MNIST(str(root), train=train, download=True)
        else:
            tvd.CIFAR10(str(root), train=True, download=True)
    except Exception as err:  # noqa: BLE001 - offline, refused, read-only folder, bad checksum: reported
        return err
    return None


def is_network_error(err: BaseException) -> bool:
    """True when ``err`` (or what caused it) means the download site could not be reached."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, NETWORK_ERRORS):
            return not isinstance(cause, urllib.error.HTTPError)
        cause = cause.__cause__ or cause.__context__
    # torchvision's MNIST tries each mirror and reports their URLErrors together as one RuntimeError.
    return isinstance(err, RuntimeError) and _URL_ERROR_MARK in str(err)


def _one_line(err: BaseException, limit: int = 200) -> str:
    text = " ".join(str(err).split()) or "no details"
    text = f"{type(err).__name__}: {text}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _find_file(path: Path) -> Path | None:
    """The file itself, or its ``.gz`` twin (torchvision keeps both for MNIST)."""
    if path.is_file():
        return path
    gz = path.with_name(path.name + ".gz")
    return gz if gz.is_file() else None


def _read_bytes(path: Path) -> bytes:
    found = _find_file(path)
    assert found is not None, path
    raw = found.read_bytes()
    if found.suffix == ".gz":
        try:
            # zlib is about 3x faster than gzip.open for a whole file in memory.
            return zlib.decompress(raw, 16 + zlib.MAX_WBITS)
        except zlib.error as err:
            raise CorruptDataError(f"{found} is not a readable gzip file ({err}).") from err
    return raw


def parse_idx(data: bytes, source: str = "IDX data") -> np.ndarray:
    """Decode an IDX file (MNIST's format): magic, dims as big-endian int32, then uint8 data."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise CorruptDataError(f"{source} is not an unsigned-byte IDX file.")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims))
    if len(data) != header + count:
        raise CorruptDataError(
            f"{source} says it holds {count} values but has {len(data) - header} (truncated?)."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_mnist(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    raw = root / "MNIST" / "raw"
    image_file, label_file = _MNIST_FILES[split]
    images = parse_idx(_read_bytes(raw / image_file), image_file)
    labels = parse_idx(_read_bytes(raw / label_file), label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise CorruptDataError(f"MNIST {split} files disagree: {images.shape} vs {labels.shape}.")
    images_t = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28)
    return images_t, torch.from_numpy(labels.astype(np.int64))


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch, admitting only the globals in ``_CIFAR_GLOBALS``."""

    def __init__(self, file, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):  # noqa: ANN201 - whatever pickle's own returns
        if (module, name) not in _CIFAR_GLOBALS:
            raise CorruptDataError(f"{self.path} is not a CIFAR-10 batch: it asks to load {module}.{name}.")
        return super().find_class(module, name)


def load_cifar_batch(path: Path) -> dict:
    """One CIFAR-10 batch file as its dict (keys are bytes), through the restricted unpickler.

    Raises:
        CorruptDataError: the file names a global a real batch does not need, or is no pickle.
    """
    with open(path, "rb") as f:
        return _CifarUnpickler(f, path).load()


def _read_cifar10(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    chunks, labels = [], []
    for file in _CIFAR_FILES[split]:
        path = root / _CIFAR_FOLDER / file
        try:
            batch = load_cifar_batch(path)
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            batch_labels = batch[b"labels"]
        except CorruptDataError:
            raise
        except Exception as err:  # noqa: BLE001
            raise CorruptDataError(f"{path} is not a CIFAR-10 batch ({err}).") from err
        chunks.append(data.reshape(-1, 3, 32, 32))  # rows are R plane, G plane, B plane
        labels.extend(batch_labels)
    images = torch.from_numpy(np.concatenate(chunks))  # (N, 3, 32, 32)
    return images, torch.tensor(labels, dtype=torch.int64)
