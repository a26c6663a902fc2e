"""The optimized image: it raises its channel's activation far above the channel's mean over real test
images, for several channels of both shipped models; the activation reported is the model's own on the
returned pixels; seeded runs are reproducible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.explorer.layers import trace
from cnnviz.explorer.optimize import optimize_image
from cnnviz.explorer.top_images import TestSet, load_test_set
from cnnviz.images.preprocess import normalize_image
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import LoadedModel, load_checkpoint

SUBSET = 500  # real test images for the channel's mean
MIN_STDS = 2.5  # the optimized image's activation exceeds the test images' mean by this many stds
# (layer, channel, objective): a ReLU layer, a pool, dense units and a class of each shipped model
CASES = {"mnist": [(2, 5, "centre"), (5, 7, "mean"), (6, 3, "centre"), (9, 10, "mean"), (10, 4, "mean")],
         "cifar10": [(4, 5, "mean"), (9, 10, "centre"), (14, 3, "mean"), (16, 7, "mean"), (19, 2, "mean")]}


@pytest.fixture(scope="module", params=["mnist", "cifar10"])
def shipped(request: pytest.FixtureRequest, real_data_dir: Path) -> tuple[LoadedModel, TestSet]:
    loaded = load_checkpoint(MODELS_DIR / f"{request.param}.pt")
    full = load_test_set(loaded, data_dir=str(real_data_dir))
    return loaded, TestSet(full.pixels[:SUBSET], full.mean, full.std)


def _model_objective(loaded: LoadedModel, pixels: np.ndarray, layer: int, channel: int,
                     objective: str) -> float:
    chw = torch.from_numpy(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1).copy())
    output = trace(loaded.model, normalize_image(chw, loaded.mean, loaded.std)).outputs[layer][0, channel]
    if output.dim() == 0:
        return float(output)
    if objective == "centre":
        return float(output[output.shape[0] // 2, output.shape[1] // 2])
    return float(output.mean())


@pytest.mark.slow
def test_optimized_image_fires_its_channel_far_above_the_test_set(
        shipped: tuple[LoadedModel, TestSet]) -> None:
    loaded, images = shipped
    for layer, channel, objective in CASES[loaded.dataset]:
        result = optimize_image(loaded.model, layer, channel, loaded.mean, loaded.std, objective=objective,
                                images=images)
        assert result.pixels.dtype == np.uint8
        assert result.pixels.shape[:2] == tuple(loaded.input_shape[1:])
        assert result.activation == pytest.approx(
            _model_objective(loaded, result.pixels, layer, channel, objective), abs=1e-5)
        assert result.dataset_mean is not None and result.dataset_std is not None
        assert result.activation > result.dataset_mean + MIN_STDS * result.dataset_std
        assert result.activation > result.start_activation


def test_seeded_runs_are_reproducible(shipped: tuple[LoadedModel, TestSet]) -> None:
    loaded, _ = shipped
    layer = 5 if loaded.dataset == "mnist" else 4
    first = optimize_image(loaded.model, layer, 1, loaded.mean, loaded.std, seed=3, steps=12)
    again = optimize_image(loaded.model, layer, 1, loaded.mean, loaded.std, seed=3, steps=12)
    other = optimize_image(loaded.model, layer, 1, loaded.mean, loaded.std, seed=4, steps=12)
    assert np.array_equal(first.pixels, again.pixels) and first.activation == again.activation
    assert not np.array_equal(first.pixels, other.pixels)


def test_the_shared_model_gets_no_gradients(shipped: tuple[LoadedModel, TestSet]) -> None:
    loaded, _ = shipped
    optimize_image(loaded.model, 2, 0, loaded.mean, loaded.std, steps=3)
    assert all(p.grad is None for p in loaded.model.parameters())
    assert not loaded.model.training


def test_bad_requests_are_friendly(shipped: tuple[LoadedModel, TestSet]) -> None:
    loaded, _ = shipped
    with pytest.raises(ValueError, match="Unknown objective"):
        optimize_image(loaded.model, 2, 0, loaded.mean, loaded.std, objective="max")
    with pytest.raises(ValueError, match="Channel 999 does not exist"):
        optimize_image(loaded.model, 2, 999, loaded.mean, loaded.std)
    with pytest.raises(ValueError, match="Layer 99 does not exist"):
        optimize_image(loaded.model, 99, 0, loaded.mean, loaded.std)
