"""The data behind the map of what a network learned: which test images, their penultimate features
before training (from the run's snapshots) and after (the final model), and one point's details.

The Train page and ``python -m cnnviz replay`` draw from it; :mod:`cnnviz.replay.projection` turns the
features into 2-D points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnviz.datasets.files import LabeledImages
from cnnviz.images.inspection import predict
from cnnviz.images.preprocess import normalize_image
from cnnviz.replay.projection import NEIGHBOURS, nearest_neighbours
from cnnviz.training.features import PROJECTION_IMAGES, penultimate_features, projection_sample
from cnnviz.training.snapshots import RunSnapshots


@dataclass(frozen=True)
class LearnedMap:
    """The test images on the map and what the network's last layer reads for each."""

    indices: torch.Tensor  # (P,) int64 test-set indices, sorted
    labels: torch.Tensor  # (P,) int64 their true classes
    pixels: torch.Tensor  # (P, C, H, W) uint8 the images themselves
    after: torch.Tensor  # (P, D) float32 penultimate features of the final model
    before: torch.Tensor | None  # (P, D) float32 the same at step 0, when the run kept snapshots

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def map_indices(test_labels: torch.Tensor, snapshots: RunSnapshots | None,
                count: int = PROJECTION_IMAGES) -> torch.Tensor:
    """The test images of the map: those the snapshots' "before" map used, else a balanced seeded
    sample (:func:`projection_sample`).

    Raises:
        ValueError: when the snapshots name test images the test set does not have.
    """
    kept = None if snapshots is None else snapshots.projection_indices
    if kept is None or snapshots.projection_before is None:
        return projection_sample(test_labels, count=count)
    if len(kept) and (int(kept.min()) < 0 or int(kept.max()) >= len(test_labels)):
        raise ValueError("The run's map names test images this test set does not have; was it trained on "
                         "another dataset?")
    return kept.to(torch.int64)


def learned_map(model: nn.Module, test: LabeledImages, mean: Sequence[float], std: Sequence[float],
                snapshots: RunSnapshots | None = None, count: int = PROJECTION_IMAGES) -> LearnedMap:
    """The map's images and their features after training (and before, from ``snapshots``)."""
    indices = map_indices(test.labels, snapshots, count)
    pixels = test.images[indices]
    after = penultimate_features(model, pixels, mean, std)
    before = None
    if snapshots is not None and snapshots.projection_before is not None:
        if snapshots.projection_before.shape[1] != after.shape[1]:
            raise ValueError("The run's map before training has features of another width than its model.")
        before = snapshots.projection_before.float()
    return LearnedMap(indices, test.labels[indices], pixels, after, before)


@dataclass(frozen=True)
class PointDetails:
    """One point of the map: the final model's answer and its nearest neighbours in feature space."""

    position: int  # in the map (0..P-1)
    test_index: int
    label: int  # its true class
    top: list[tuple[str, float]]  # the final model's three most probable classes (name, probability)
    neighbours_after: list[int]  # positions in the map, nearest first, by the final model's features
    neighbours_before: list[int] | None  # the same by the features before training


def point_details(model: nn.Module, learned: LearnedMap, position: int, classes: Sequence[str],
                  mean: Sequence[float], std: Sequence[float], k: int = NEIGHBOURS) -> PointDetails:
    """The answer (top 3, with the model's test-time augmentation, as Predict gives it) and the ``k``
    nearest neighbours of the map's point ``position``.

    Raises:
        ValueError: for a position that is not on the map.
    """
    if not 0 <= position < len(learned):
        raise ValueError(f"Point {position} is not on the map: it has points 0 to {len(learned) - 1}.")
    answer = predict(model, normalize_image(learned.pixels[position], mean, std), classes)
    before = None
    if learned.before is not None:
        before = nearest_neighbours(learned.before, position, k).tolist()
    return PointDetails(position, int(learned.indices[position]), int(learned.labels[position]),
                        answer.top(3), nearest_neighbours(learned.after, position, k).tolist(), before)
