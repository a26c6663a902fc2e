"""The learned map's data: the snapshots' images and features before training, the final model's
after, and a point's neighbours in both, equal to brute force."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnviz.datasets.files import load_dataset
from cnnviz.networks.build import build_model
from cnnviz.replay.learned_map import learned_map, map_indices, point_details
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.features import penultimate_features, projection_sample
from cnnviz.training.snapshots import RunSnapshots

REPO = Path(__file__).resolve().parent.parent


def _snapshots(indices: torch.Tensor, before: torch.Tensor) -> RunSnapshots:
    return RunSnapshots(filters_layer=0, layers=[], map_layers=[], probe_pixels=None, probe_label="",
                        check_split="test", check_indices=torch.zeros(0, dtype=torch.int64),
                        check_labels=torch.zeros(0, dtype=torch.int64),
                        check_pixels=torch.zeros(0, 1, 28, 28, dtype=torch.uint8),
                        projection_indices=indices, projection_before=before)


def _nearest(features: torch.Tensor, position: int, k: int = 5) -> list[int]:
    distances = torch.cdist(features.double(), features.double())[position]
    distances[position] = float("inf")
    return distances.topk(k, largest=False).indices.tolist()


def test_the_map_keeps_the_runs_images_and_its_features_before(real_data_dir: Path) -> None:
    loaded = load_checkpoint(REPO / "models" / "mnist.pt")
    test = load_dataset("mnist", "test", data_dir=real_data_dir)
    indices = projection_sample(test.labels, count=300, seed=5)
    torch.manual_seed(0)
    untrained = build_model(loaded.spec, 1, 10, 28)
    before = penultimate_features(untrained, test.images[indices], loaded.mean, loaded.std)
    learned = learned_map(loaded.model, test, loaded.mean, loaded.std, _snapshots(indices, before))
    assert torch.equal(learned.indices, indices) and torch.equal(learned.labels, test.labels[indices])
    assert torch.equal(learned.pixels, test.images[indices]) and torch.equal(learned.before, before)
    torch.testing.assert_close(learned.after, penultimate_features(loaded.model, test.images[indices],
                                                                   loaded.mean, loaded.std))
    details = point_details(loaded.model, learned, 42, loaded.classes, loaded.mean, loaded.std)
    assert details.test_index == int(indices[42]) and details.label == int(test.labels[indices[42]])
    assert details.neighbours_after == _nearest(learned.after, 42)
    assert details.neighbours_before == _nearest(before, 42)
    with torch.no_grad():
        logits = loaded.model((test.images[indices[42]:indices[42] + 1].float() / 255 - loaded.mean[0])
                              / loaded.std[0])[0]
    top = torch.softmax(logits, dim=0).topk(3)
    assert [name for name, _ in details.top] == [loaded.classes[int(i)] for i in top.indices]
    assert [p for _, p in details.top] == pytest.approx(top.values.tolist(), abs=1e-5)


def test_without_snapshots_the_map_is_the_balanced_sample(real_data_dir: Path) -> None:
    test = load_dataset("mnist", "test", data_dir=real_data_dir)
    assert torch.equal(map_indices(test.labels, None), projection_sample(test.labels))
    outside = _snapshots(torch.tensor([3, 10_000]), torch.zeros(2, 128))
    with pytest.raises(ValueError, match="another dataset"):
        map_indices(test.labels, outside)
