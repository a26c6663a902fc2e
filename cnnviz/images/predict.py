"""Predict users' image files with a trained model: what `python -m cnnviz predict` and the inspect
page need, without either of them.

A model is anything shaped like :class:`cnnviz.training.checkpoint.LoadedModel`: ``.model`` (features +
classifier), ``.dataset`` ("mnist" | "cifar10"), ``.classes``, ``.mean``, ``.std``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from cnnviz.images.decode import DecodedImage, ImageError, decode_image, read_image_file
from cnnviz.images.inspection import DEFAULT_TOP_K, Prediction, predict, predict_batch
from cnnviz.images.preprocess import Preprocessed, preprocess

# One image is a few million multiply-adds: splitting it over threads costs more than it saves, and
# on a busy 2-core machine torch's default pool made single images 15-40x slower. With OpenMP,
# torch.set_num_threads sets the calling thread's count and the count that threads started later
# begin with, so a training thread sets its own when it starts (training.configure_cpu_threads) and
# the Train page times its estimate with the count a run will use.
INFERENCE_THREADS = 1


class ModelLike(Protocol):
    """What prediction needs from a loaded checkpoint."""

    model: nn.Module

    @property
    def dataset(self) -> str: ...

    @property
    def classes(self) -> Sequence[str]: ...

    @property
    def mean(self) -> Sequence[float]: ...

    @property
    def std(self) -> Sequence[float]: ...


@dataclass(frozen=True)
class ImagePrediction:
    """One image's result: a prediction, or the sentence saying why there is none."""

    source: str  # file name or "upload"
    prediction: Prediction | None = None
    preprocessed: Preprocessed | None = None
    error: str | None = None

    def to_json(self, top_k: int = DEFAULT_TOP_K) -> dict[str, Any]:
        """``{"file", "label", "probability", "top": [[label, probability], ...]}`` or
        ``{"file", "error"}``."""
        if self.prediction is None:
            return {"file": self.source, "error": self.error}
        return {
            "file": self.source,
            "label": self.prediction.label,
            "probability": round(self.prediction.probability, 6),
            "top": [[label, round(p, 6)] for label, p in self.prediction.top(top_k)],
        }


def predict_image(loaded: ModelLike, image: bytes | DecodedImage, source: str = "upload") -> ImagePrediction:
    """Decode (if bytes), preprocess for the model's dataset, predict. Bad images give ``error``."""
    try:
        decoded = decode_image(image) if isinstance(image, bytes | bytearray) else image
        prepared = preprocess(decoded, loaded.dataset, loaded.mean, loaded.std)
    except ImageError as err:
        return ImagePrediction(source, error=str(err))
    prediction = predict(loaded.model, prepared.tensor, loaded.classes)
    return ImagePrediction(source, prediction, prepared)


def predict_files(loaded: ModelLike, paths: Iterable[str | os.PathLike]) -> list[ImagePrediction]:
    """One result per file, in order; a file that cannot be used gets an error and the rest go on."""
    results = []
    for path in paths:
        try:
            decoded = read_image_file(path)
        except ImageError as err:
            results.append(ImagePrediction(str(path), error=str(err)))
            continue
        results.append(predict_image(loaded, decoded, str(path)))
    return results


@dataclass(frozen=True)
class StagedAccuracy:
    """How a model does on staged phone photos of MNIST test digits."""

    correct: int
    total: int
    seconds_per_photo: float  # decoding + preprocessing + prediction
    wrong: list[tuple[int, int, str]] = field(default_factory=list)  # (test index, label, predicted)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def staged_photo_accuracy(loaded: ModelLike, count: int = 500, seed: int = 0) -> StagedAccuracy:
    """Stage ``count`` MNIST test digits as phone photos, run them through the whole pipeline
    (JPEG decoding, EXIF, the MNIST-style preprocessing) and count the right predictions."""
    from cnnviz.images.staged_photos import stage_photo_set  # reads MNIST: only when asked

    if loaded.dataset != "mnist":
        raise ValueError("Staged photos are handwritten digits: choose an MNIST model.")
    photos = stage_photo_set(count, seed)
    start = time.perf_counter()
    tensors, labels, wrong = [], [], []
    for photo in photos:
        try:
            prepared = preprocess(decode_image(photo.jpeg), "mnist", loaded.mean, loaded.std)
        except ImageError:
            wrong.append((photo.test_index, photo.label, "(no digit found)"))
            continue
        tensors.append(prepared.tensor)
        labels.append(photo)
    predictions = predict_batch(loaded.model, torch.cat(tensors), loaded.classes) if tensors else []
    seconds = (time.perf_counter() - start) / max(1, len(photos))
    correct = 0
    for photo, prediction in zip(labels, predictions, strict=True):
        if prediction.label == loaded.classes[photo.label]:
            correct += 1
        else:
            wrong.append((photo.test_index, photo.label, prediction.label))
    return StagedAccuracy(correct, len(photos), seconds, wrong)
