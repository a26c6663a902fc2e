"""The datasets packed into numbered parts of bounded size, and unpacked again.

A machine that receives files in batches of limited size (a GPU machine that takes a working tree
of at most 64 MiB per call, say) gets the datasets one part per batch. The parts are one bzip2
compressed tar stream cut into pieces; a manifest names each part with its size and SHA-256, so
unpacking says which part is missing or damaged before it writes anything.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cnnviz.datasets import files as data

MANIFEST = "cnnviz-data.json"
PART_PREFIX = "cnnviz-data.tar.bz2.part"
DEFAULT_PART_MIB = 52  # leaves room for the working tree beside one part in a 64 MiB transfer
CHUNK = 1 << 20  # bytes copied at a time
EXTRA_FILES = {"cifar10": ("cifar-10-batches-py/batches.meta",)}  # packed when present


@dataclass(frozen=True)
class PackedParts:
    """What :func:`pack_datasets` wrote."""

    manifest: Path
    parts: list[Path]
    files: list[str]  # paths inside the data directory
    data_bytes: int  # the files' size before compression


def dataset_files(root: Path, names: tuple[str, ...] = tuple(data.DATASETS)) -> list[str]:
    """The files of each dataset under ``root``, relative to it (MNIST's may be gzipped).

    Raises:
        ValueError: a dataset is not complete there.
    """
    found = []
    for name in names:
        if not data.is_available(name, root):
            raise ValueError(f"{data.dataset_info(name).title} is not complete in {root}: "
                             f"run `python -m cnnviz data --data-dir {root}` to see what is missing.")
        for path in data.expected_files(name, root):
            path = path if path.is_file() else path.with_name(path.name + ".gz")
            found.append(path.relative_to(root).as_posix())
        found += [extra for extra in EXTRA_FILES.get(name, ()) if (root / extra).is_file()]
    return found


class _PartWriter:
    """A write-only stream that starts a new numbered file every ``part_bytes`` bytes."""

    def __init__(self, folder: Path, part_bytes: int) -> None:
        self.folder, self.part_bytes = folder, part_bytes
        self.parts: list[Path] = []
        self._file: BinaryIO | None = None
        self._left = 0

    def write(self, chunk: bytes) -> int:
        view = memoryview(chunk)
        while view:
            if self._left == 0:
                self._next_part()
            assert self._file is not None
            taken = view[: self._left]
            self._file.write(taken)
            self._left -= len(taken)
            view = view[len(taken):]
        return len(chunk)

    def flush(self) -> None:
        if self._file:
            self._file.flush()

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None

    def _next_part(self) -> None:
        self.close()
        path = self.folder / f"{PART_PREFIX}{len(self.parts):03d}"
        self.parts.append(path)
        self._file = open(path, "wb")  # noqa: SIM115 - closed when the next part starts or in close()
        self._left = self.part_bytes


def pack_datasets(data_dir: str | os.PathLike | None, out_dir: str | os.PathLike,
                  part_mib: float = DEFAULT_PART_MIB) -> PackedParts:
    """Pack MNIST and CIFAR-10 from ``data_dir`` into parts of at most ``part_mib`` MiB in ``out_dir``.

    Returns:
        The manifest, the parts and the files packed.
    """
    if part_mib <= 0:
        raise ValueError("The part size must be above 0 MiB.")
    root = data.resolve_data_dir(data_dir)
    names = dataset_files(root)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{PART_PREFIX}*"):  # parts of an earlier packing would not match
        old.unlink()
    writer = _PartWriter(folder, int(part_mib * 2**20))
    with bz2.BZ2File(writer, "wb") as compressed, tarfile.open(fileobj=compressed, mode="w|") as tar:
        for name in names:
            tar.add(root / name, arcname=name, recursive=False)
    writer.close()
    parts = [{"name": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p)} for p in writer.parts]
    data_bytes = sum((root / name).stat().st_size for name in names)
    manifest = folder / MANIFEST
    manifest.write_text(json.dumps({"files": names, "data_bytes": data_bytes, "parts": parts}, indent=2))
    return PackedParts(manifest, writer.parts, names, data_bytes)


def unpack_datasets(parts_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Check every part against the manifest, then unpack the files into ``data_dir`` (default: the
    data directory cnnviz reads, $CNNVIZ_DATA_DIR or the per-user cache).

    Returns:
        The files written.
    """
    folder = Path(parts_dir)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} is missing: it is written by `python -m cnnviz data-pack`.")
    manifest = json.loads(manifest_path.read_text())
    paths = [folder / part["name"] for part in manifest["parts"]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{len(missing)} of {len(paths)} parts are not in {folder} yet: "
                         f"{', '.join(missing)}.")
    for path, part in zip(paths, manifest["parts"], strict=True):
        if path.stat().st_size != part["bytes"] or _sha256(path) != part["sha256"]:
            raise ValueError(f"{path} is damaged (its size or SHA-256 differs from {MANIFEST}); "
                             "copy it again.")
    root = data.resolve_data_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    with _PartReader(paths) as joined, bz2.BZ2File(joined) as compressed, \
            tarfile.open(fileobj=compressed, mode="r|") as tar:
        tar.extractall(root, filter="data")
    return [root / name for name in manifest["files"]]


class _PartReader:
    """A read-only stream over the parts, one after the other."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = list(paths)
        self._file: BinaryIO | None = None

    def read(self, size: int = -1) -> bytes:
        chunks, wanted = [], size
        while wanted != 0:
            if self._file is None:
                if not self._paths:
                    break
                self._file = open(self._paths.pop(0), "rb")  # noqa: SIM115 - closed at its end
            chunk = self._file.read(wanted if wanted > 0 else -1)
            if not chunk or wanted < 0:
                self._file.close()
                self._file = None
            chunks.append(chunk)
            if wanted > 0:
                wanted -= len(chunk)
        return b"".join(chunks)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None

    def __enter__(self) -> _PartReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
