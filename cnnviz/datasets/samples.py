"""Real test-set images bundled with cnnviz, so every page has inputs offline from the first start.

They live in ``cnnviz/assets/samples/<dataset>/`` as lossless PNGs named
``<test index>_<class>.png``; :func:`export_samples` writes them from the real test sets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnviz.datasets.files import DATASETS, dataset_info, load_dataset

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "samples"
SAMPLES_PER_CLASS = 5


@dataclass(frozen=True)
class Sample:
    """One bundled image and where it came from."""

    dataset: str
    test_index: int  # position in the dataset's test split
    label: int
    path: Path

    @property
    def class_name(self) -> str:
        return DATASETS[self.dataset].classes[self.label]

    @property
    def caption(self) -> str:
        return f"{self.class_name} (test #{self.test_index})"


def list_samples(dataset: str, samples_dir: Path = SAMPLES_DIR) -> list[Sample]:
    """The bundled samples of a dataset, ordered by class then test index."""
    info = dataset_info(dataset)
    samples = []
    for path in sorted((samples_dir / info.name).glob("*.png")):
        index, class_name = path.stem.split("_", 1)
        samples.append(Sample(info.name, int(index), info.classes.index(class_name), path))
    return sorted(samples, key=lambda s: (s.label, s.test_index))


def load_sample(sample: Sample) -> torch.Tensor:
    """The sample's pixels as a (C, H, W) uint8 tensor, exactly as in the test set."""
    with Image.open(sample.path) as image:
        array = np.asarray(image.convert("L" if sample.dataset == "mnist" else "RGB"))
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)


def export_samples(
    data_dir: str | os.PathLike | None = None,
    samples_dir: Path = SAMPLES_DIR,
    per_class: int = SAMPLES_PER_CLASS,
) -> list[Path]:
    """Write the first ``per_class`` test images of every class of both datasets as PNGs."""
    written = []
    for name in DATASETS:
        test = load_dataset(name, "test", data_dir)
        folder = samples_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        for label, class_name in enumerate(test.info.classes):
            indices = (test.labels == label).nonzero().flatten()[:per_class].tolist()
            for index in indices:
                pixels = test.images[index].permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
                image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
                path = folder / f"{index:05d}_{class_name}.png"
                image.save(path, optimize=True)
                written.append(path)
    return written
