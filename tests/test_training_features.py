"""The penultimate features equal the last Linear layer's input in the model's own forward pass; the
map's sample is balanced, seeded and sorted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnviz.datasets.files import load_dataset
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.features import last_linear_index, penultimate_features, projection_sample
from cnnviz.training.step import normalize

REPO = Path(__file__).resolve().parent.parent


def _hooked_features(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The input the last Linear layer receives in ``model(batch)``, caught by a forward hook."""
    seen: list[torch.Tensor] = []
    last = model.classifier[last_linear_index(model.classifier)]
    handle = last.register_forward_hook(lambda _module, inputs, _output: seen.append(inputs[0].clone()))
    try:
        model.eval()
        with torch.no_grad():
            model(batch)
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_features_equal_the_last_linear_layers_input(name: str, real_data_dir: Path) -> None:
    loaded = load_checkpoint(REPO / "models" / f"{name}.pt")
    images = load_dataset(loaded.dataset, "test", data_dir=real_data_dir).images[:250]
    features = penultimate_features(loaded.model, images, loaded.mean, loaded.std, batch_size=64)
    mean = torch.tensor(loaded.mean).view(1, -1, 1, 1)
    std = torch.tensor(loaded.std).view(1, -1, 1, 1)
    expected = _hooked_features(loaded.model, normalize(images, mean, std))
    assert features.dtype == torch.float32
    assert features.shape == expected.shape == (250, loaded.model.classifier[-1].in_features)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
    # The last layer applied to them gives the model's logits: they are what the answer is read from.
    with torch.no_grad():
        logits = loaded.model.classifier[-1](features)
        torch.testing.assert_close(logits, loaded.model(normalize(images, mean, std)), atol=1e-4, rtol=1e-4)


def test_features_reject_float_images() -> None:
    loaded = load_checkpoint(REPO / "models" / "mnist.pt")
    with pytest.raises(ValueError, match="uint8"):
        penultimate_features(loaded.model, torch.zeros(2, 1, 28, 28), loaded.mean, loaded.std)


def test_sample_is_balanced_seeded_and_sorted(real_data_dir: Path) -> None:
    labels = load_dataset("mnist", "test", data_dir=real_data_dir).labels
    sample = projection_sample(labels, count=2000, seed=0)
    assert sample.dtype == torch.int64 and sample.shape == (2000,)
    assert torch.equal(sample, torch.sort(sample).values) and len(set(sample.tolist())) == 2000
    assert torch.bincount(labels[sample], minlength=10).tolist() == [200] * 10
    assert torch.equal(sample, projection_sample(labels, count=2000, seed=0))
    assert not torch.equal(sample, projection_sample(labels, count=2000, seed=1))


def test_sample_makes_up_for_a_small_class() -> None:
    labels = torch.tensor([0] * 50 + [1] * 3 + [2] * 50)
    sample = projection_sample(labels, count=31, seed=4)
    counts = torch.bincount(labels[sample], minlength=3).tolist()
    assert counts[1] == 3 and sorted(counts[::2]) == [14, 14]
    assert torch.equal(projection_sample(labels, count=500), torch.arange(103))
    with pytest.raises(ValueError):
        projection_sample(labels, count=0)
