"""Top images of a channel: equal to brute force (every image through ``trace``, its argmax) on real
test images of both shipped models; ties; the cache; crops to the strongest cell's receptive field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.explorer import top_images as top
from cnnviz.explorer.layers import trace
from cnnviz.networks.receptive_field import cell_box
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import LoadedModel, load_checkpoint

SUBSET = 300  # real test images per brute-force comparison


@pytest.fixture(scope="module", params=["mnist", "cifar10"])
def shipped(request: pytest.FixtureRequest, real_data_dir: Path) -> tuple[LoadedModel, top.TestSet]:
    loaded = load_checkpoint(MODELS_DIR / f"{request.param}.pt")
    full = top.load_test_set(loaded, data_dir=str(real_data_dir))
    return loaded, top.TestSet(full.pixels[:SUBSET], full.mean, full.std)


def _brute_force_maps(loaded: LoadedModel, images: top.TestSet, layer: int) -> list[torch.Tensor]:
    """Layer ``layer``'s output for each image, one image at a time through ``trace``."""
    return [trace(loaded.model, images.normalized(i, i + 1)).outputs[layer][0] for i in range(len(images))]


LAYERS = {"mnist": [0, 2, 5, 6, 8, 10], "cifar10": [1, 4, 6, 11, 16, 17, 19]}


@pytest.mark.slow
def test_top_images_equal_brute_force(shipped: tuple[LoadedModel, top.TestSet]) -> None:
    loaded, images = shipped
    for layer in LAYERS[loaded.dataset]:
        maps = _brute_force_maps(loaded, images, layer)
        channels = maps[0].shape[0]
        for channel in sorted({0, channels // 2, channels - 1}):
            strongest = np.array([float(m[channel].max()) for m in maps])
            found = top.top_images(loaded.model, images, layer, channel, k=9)
            expected = np.sort(strongest)[::-1][:9]
            assert [t.value for t in found] == pytest.approx(expected.tolist(), abs=1e-5)
            for t in found:
                assert t.value == pytest.approx(strongest[t.index], abs=1e-5)
                cell = maps[t.index][channel]
                if cell.dim() == 2:  # the reported cell holds that image's maximum
                    assert float(cell[t.row, t.col]) == pytest.approx(t.value, abs=1e-5)
                else:
                    assert t.row is None and t.col is None
            # the same images, where the brute-force values are not within float noise of each other
            kth = expected[-1]
            sure = {int(i) for i in np.flatnonzero(strongest > kth + 1e-4)}
            assert sure <= {t.index for t in found}


def test_ties_keep_the_lower_index_and_the_first_cell(shipped: tuple[LoadedModel, top.TestSet]) -> None:
    loaded, images = shipped
    blank = torch.zeros_like(images.pixels[:1])
    # image 5 is a copy of image 2, images 0, 3 and 7 are blank: equal inputs give equal maxima
    pixels = images.pixels[:10].clone()
    pixels[5] = pixels[2]
    pixels[[0, 3, 7]] = blank
    tied = top.TestSet(pixels, images.mean, images.std)
    layer = 2 if loaded.dataset == "mnist" else 4
    maps = _brute_force_maps(loaded, tied, layer)
    for channel in range(maps[0].shape[0]):
        found = top.top_images(loaded.model, tied, layer, channel, k=10)
        order = [t.index for t in found]
        assert order.index(2) < order.index(5) and found[order.index(2)].value == found[order.index(5)].value
        assert order.index(0) < order.index(3) < order.index(7)
        for t in found:  # the first cell in row-major order that holds the maximum
            flat = maps[t.index][channel].flatten()
            first = int(np.flatnonzero(flat.numpy() >= flat.max().item())[0])
            assert t.row * maps[0].shape[2] + t.col == first


def test_cache_per_model_key_and_layer(shipped: tuple[LoadedModel, top.TestSet]) -> None:
    loaded, images = shipped
    top.clear_cache()
    first = top.layer_maxima(loaded.model, images, 2, key="model-a")
    assert top.layer_maxima(loaded.model, images, 2, key="model-a") is first
    assert top.layer_maxima(loaded.model, images, 2, key=None) is not first
    for layer in range(3, 3 + top.CACHE_LAYERS):
        top.layer_maxima(loaded.model, images, layer, key="model-a")
    assert ("model-a", 2) not in top.cached_layers()  # the least recently used went first
    assert len(top.cached_layers()) == top.CACHE_LAYERS
    top.clear_cache()


def test_layer_statistics_equal_the_forward_pass(shipped: tuple[LoadedModel, top.TestSet]) -> None:
    loaded, images = shipped
    layer = 5 if loaded.dataset == "mnist" else 11
    maxima = top.layer_maxima(loaded.model, images, layer)
    maps = torch.stack(_brute_force_maps(loaded, images, layer))  # (N, C, H, W)
    means = maps.mean(dim=(2, 3))
    centres = maps[:, :, maps.shape[2] // 2, maps.shape[3] // 2]
    assert torch.allclose(maxima.stats["mean"][0], means.mean(0), atol=1e-5)
    assert torch.allclose(maxima.stats["mean"][1], means.std(0, unbiased=False), atol=1e-4)
    assert torch.allclose(maxima.stats["centre"][0], centres.mean(0), atol=1e-5)
    assert maxima.nbytes == len(images) * maxima.channels * 8


def test_crops_are_the_strongest_cells_receptive_field(shipped: tuple[LoadedModel, top.TestSet]) -> None:
    loaded, images = shipped
    layer = 5 if loaded.dataset == "mnist" else 4
    tops = top.top_images(loaded.model, images, layer, 1)
    for crop in top.crop_top_images(loaded.model, images, layer, tops):
        box = cell_box(loaded.model, layer, crop.top.row, crop.top.col, clip=True)
        assert crop.box == box
        rows, cols = box.slices()
        chw = images.pixels[crop.top.index, :, rows, cols].numpy()
        expected = chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0)
        assert np.array_equal(crop.pixels, expected)
        assert crop.centre is not None
        assert 0 <= crop.centre[0] <= box.height - 1 and 0 <= crop.centre[1] <= box.width - 1


def test_dense_crop_is_the_whole_image(shipped: tuple[LoadedModel, top.TestSet]) -> None:
    loaded, images = shipped
    last = len(loaded.model.features) + len(loaded.model.classifier) - 1
    best = top.top_images(loaded.model, images, last, 0, k=1)[0]
    crop = top.crop_top_image(loaded.model, images, last, best)
    assert crop.centre is None and crop.pixels.shape[:2] == images.pixels.shape[2:]


def test_bad_requests_are_friendly(shipped: tuple[LoadedModel, top.TestSet]) -> None:
    loaded, images = shipped
    with pytest.raises(ValueError, match="Layer 99 does not exist"):
        top.top_images(loaded.model, images, 99, 0)
    with pytest.raises(ValueError, match="Channel 500 does not exist"):
        top.top_images(loaded.model, images, 0, 500)
    with pytest.raises(ValueError, match="at least one"):
        top.top_images(loaded.model, images, 0, 0, k=0)


def test_background_computation_is_polled_and_cached(shipped: tuple[LoadedModel, top.TestSet]) -> None:
    import time

    loaded, images = shipped
    top.clear_cache()
    assert top.maxima_progress("background", 3) is None  # nothing under way
    assert top.layer_maxima_if_ready(loaded.model, images, 3, key="background", threads=2) is None
    deadline = time.monotonic() + 60
    while (ready := top.layer_maxima_if_ready(loaded.model, images, 3, key="background")) is None:
        assert time.monotonic() < deadline, "the background computation never finished"
        done = top.maxima_progress("background", 3)
        assert done is not None and 0.0 <= done <= 1.0  # under way: how far, never "not started"
        time.sleep(0.05)
    assert top.maxima_progress("background", 3) is None  # done
    assert top.layer_maxima(loaded.model, images, 3, key="background") is ready
    assert torch.equal(ready.values, top.layer_maxima(loaded.model, images, 3).values)
    # a failure comes back once, in the caller's thread, then the next call tries again
    broken = top.TestSet(images.pixels.repeat(1, 2, 1, 1), images.mean, images.std)  # channels twice
    assert top.layer_maxima_if_ready(loaded.model, broken, 3, key=("broken", loaded.dataset)) is None
    deadline = time.monotonic() + 60
    with pytest.raises(RuntimeError):
        while top.layer_maxima_if_ready(loaded.model, broken, 3, key=("broken", loaded.dataset)) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert top.layer_maxima_if_ready(loaded.model, broken, 3, key=("broken", loaded.dataset)) is None
    top.clear_cache()


def test_threads_and_batches_change_no_value(shipped: tuple[LoadedModel, top.TestSet]) -> None:
    """Two threads and another batch size give the same maxima and cells; the caller keeps its count."""
    loaded, images = shipped
    layer = 5 if loaded.dataset == "mnist" else 11
    before = torch.get_num_threads()
    one = top.layer_maxima(loaded.model, images, layer, threads=1)
    assert torch.get_num_threads() == before
    two = top.layer_maxima(loaded.model, images, layer, threads=2, batch_size=64)
    assert torch.get_num_threads() == before
    assert torch.allclose(one.values, two.values, atol=1e-5, rtol=0)
    moved = (one.positions != two.positions).nonzero().tolist()  # else a cell whose value is the maximum
    maps = _brute_force_maps(loaded, images, layer) if moved else []
    for index, channel in moved:
        flat = maps[index][channel].flatten()
        assert float(flat[int(two.positions[index, channel])]) == pytest.approx(float(flat.max()), abs=1e-5)
