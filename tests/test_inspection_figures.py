"""Figures of the inspect-and-predict page: the numbers they draw are the model's numbers."""

from __future__ import annotations

import numpy as np
import torch

from cnnviz.images.inspection import Prediction, layer_summaries
from cnnviz.networks.build import build_model
from cnnviz.ui.predict.figures import (
    COLOUR_TABLE,
    GAP_RGB,
    GRID_WIDTH_PX,
    MAP_GAP,
    architecture_html,
    dense_figure,
    feature_map_image,
    grid_display_width,
    probability_bars,
    tile_maps,
)


def test_tile_maps_places_every_channel_and_scales_per_map() -> None:
    maps = torch.arange(5 * 2 * 3, dtype=torch.float32).reshape(5, 2, 3)  # (C, H, W)
    shared = tile_maps(maps, per_row=2, shared_scale=True)
    assert shared.shape == (3 * (2 + MAP_GAP) - MAP_GAP, 2 * (3 + MAP_GAP) - MAP_GAP)
    for channel in range(5):
        row, col = divmod(channel, 2)
        top, left = row * (2 + MAP_GAP), col * (3 + MAP_GAP)
        np.testing.assert_array_equal(shared[top:top + 2, left:left + 3], maps[channel].numpy())
    assert np.isnan(shared[2]).all() and np.isnan(shared[-2:, -3:]).all()  # gaps and the empty slot
    own = tile_maps(maps, per_row=2, shared_scale=False)
    np.testing.assert_allclose(own[:2, :3], (maps[0] - maps[0].min()).numpy() / 5.0)


def test_feature_map_image_colours_low_to_high() -> None:
    maps = torch.tensor([[[-2.0, 0.0], [1.0, 6.0]], [[3.0, 3.0], [3.0, 3.0]]])  # (2, 2, 2)
    picture, low, high = feature_map_image(maps, shared_scale=True, per_row=2)
    assert (low, high) == (-2.0, 6.0)
    assert picture.shape == (2, 5, 3)  # one pixel per value, a one-pixel gap between the maps
    np.testing.assert_array_equal(picture[0, 0], COLOUR_TABLE[0])  # the lowest value
    np.testing.assert_array_equal(picture[1, 1], COLOUR_TABLE[255])  # the highest
    np.testing.assert_array_equal(picture[0, 2], GAP_RGB)
    np.testing.assert_array_equal(picture[0, 3], COLOUR_TABLE[int((3 + 2) / 8 * 255)])
    assert grid_display_width(5) % 5 == 0 and GRID_WIDTH_PX - 5 < grid_display_width(5) <= GRID_WIDTH_PX
    assert grid_display_width(2000) == 2000


def test_probability_bars_show_every_class_with_its_logit() -> None:
    logits = torch.tensor([0.5, 3.0, -1.0])
    prediction = Prediction(logits, torch.softmax(logits, 0), ("cat", "dog", "frog"))
    bars = probability_bars(prediction, top_k=2).data[0]
    np.testing.assert_allclose(bars.x, torch.softmax(logits, 0).numpy(), rtol=1e-6)
    assert list(bars.y) == ["cat", "dog", "frog"] and "logit 3.00" in bars.text[1]
    assert bars.marker.color[1] != bars.marker.color[0] != bars.marker.color[2]  # predicted, top-2, rest


def test_architecture_lists_every_layer_with_its_number_and_shape() -> None:
    import re

    model = build_model("C8 M F16", 1, 10, 28)
    summaries = layer_summaries(model, (1, 28, 28))
    strip = architecture_html(summaries, (1, 28, 28))
    shapes = re.findall(r'class="cnnviz-shape">([^<]*)<', strip)
    tiles = re.findall(r'class="cnnviz-tile[^"]*"[^>]*>([^<]*)<', strip)
    assert shapes == ["1 x 28 x 28", *(" x ".join(map(str, s.output_shape)) for s in summaries)]
    assert shapes[-1] == "10" and tiles[0] == "Input" and tiles[1] == "0 · Conv2d"
    assert tiles[-1] == f"{len(summaries) - 1} · Linear"
    parameters = [int(p.replace(",", "")) for p in re.findall(r"([\d,]+) parameters", strip)]
    assert parameters[1:] == [s.parameters for s in summaries]


def test_dense_figure_bars_for_the_logits_and_cells_for_many_units() -> None:
    logits = torch.tensor([0.5, 3.0, -1.0])
    bars = dense_figure(logits, "logits", ["cat", "dog", "frog"]).data[0]
    assert list(bars.y) == ["cat", "dog", "frog"]
    np.testing.assert_allclose(bars.x, logits.numpy())
    many = torch.arange(100, dtype=torch.float32)
    cells = dense_figure(many, "100 units").data[0]
    z = np.asarray(cells.z, dtype=float)
    assert z.shape == (4, 32) and np.isnan(z[3, 4:]).all()
    np.testing.assert_allclose(z.ravel()[:100], many.numpy())
    assert np.asarray(cells.customdata)[2, 3] == 67  # the unit's number in each cell
    assert np.asarray(dense_figure(torch.zeros(1568), "flat").data[0].z).shape == (25, 64)
