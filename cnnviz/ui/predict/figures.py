"""Figures of the inspect-and-predict page: probabilities, feature-map grids, the architecture strip."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import hex_to_rgb, sequential

from cnnviz.images.inspection import LayerSummary, Prediction
from cnnviz.ui.panels import in_rows, tile_grid

PREDICTED_COLOUR = "#2f6fdf"
TOP_COLOUR = "#8fb1ee"
OTHER_COLOUR = "#c9cfda"
MAP_GAP = 1  # px of empty space between feature maps in a grid
MAPS_PER_ROW = 12
MAP_COLOURS = "Viridis"
GRID_WIDTH_PX = 900  # feature-map grids are drawn at about this width
GAP_RGB = (255, 255, 255)


def _colour_table(name: str = MAP_COLOURS, size: int = 256) -> np.ndarray:
    """(size, 3) uint8: a Plotly colour scale sampled evenly, for drawing maps as images."""
    stops = np.array([hex_to_rgb(c) for c in getattr(sequential, name)], dtype=np.float64)  # (S, 3)
    positions = np.linspace(0.0, 1.0, len(stops))
    samples = np.linspace(0.0, 1.0, size)
    table = np.stack([np.interp(samples, positions, stops[:, k]) for k in range(3)], axis=1)  # (size, 3)
    return table.round().astype(np.uint8)


COLOUR_TABLE = _colour_table()
PART_COLOURS = {"Conv2d": "#2f6fdf", "BatchNorm2d": "#7d8ba6", "ReLU": "#e08a2e", "MaxPool2d": "#2e9e6a",
                "AvgPool2d": "#2e9e6a", "Linear": "#8a4fd1"}


def probability_bars(prediction: Prediction, top_k: int) -> go.Figure:
    """Every class's probability as a bar; the top k coloured, the logits in the labels."""
    probabilities = prediction.probabilities.tolist()
    logits = prediction.logits.tolist()
    top = {prediction.classes.index(label) for label, _ in prediction.top(top_k)}
    colours = [PREDICTED_COLOUR if i == prediction.index else TOP_COLOUR if i in top else OTHER_COLOUR
               for i in range(len(probabilities))]
    # Built as one dict: Plotly validates it once, many times faster than go.Bar + update_layout
    # (this figure is redrawn for every image a student gives the page).
    return go.Figure({
        "data": [{
            "type": "bar", "x": probabilities, "y": list(prediction.classes), "orientation": "h",
            "marker": {"color": colours}, "textposition": "outside", "cliponaxis": False,
            "text": [f"{p:.1%}  (logit {z:.2f})" for p, z in zip(probabilities, logits, strict=True)],
            "hovertemplate": "%{y}: probability %{x:.4f}<extra></extra>",
        }],
        "layout": {
            "height": 40 + 26 * len(probabilities), "margin": {"l": 10, "r": 10, "t": 10, "b": 30},
            "xaxis": {"range": [0, 1.45], "tickformat": ".0%", "tickvals": [0, 0.25, 0.5, 0.75, 1.0],
                      "title": {"text": "probability (softmax of the logits)"}},
            "yaxis": {"autorange": "reversed", "type": "category"}, "bargap": 0.25,
        },
    })


def tile_maps(maps: torch.Tensor, per_row: int = MAPS_PER_ROW, shared_scale: bool = True) -> np.ndarray:
    """(C, H, W) maps side by side in rows, NaN between them; each map scaled to 0..1 on its own
    unless ``shared_scale``.

    Returns:
        (rows * (H + gap) - gap, per_row * (W + gap) - gap) float32.
    """
    values = maps.detach().float().numpy()
    if not shared_scale:
        low = values.min(axis=(1, 2), keepdims=True)
        high = values.max(axis=(1, 2), keepdims=True)
        values = (values - low) / np.maximum(high - low, 1e-12)
    return tile_grid(in_rows(values, per_row), MAP_GAP).array


def feature_map_image(
    maps: torch.Tensor, shared_scale: bool, per_row: int = MAPS_PER_ROW
) -> tuple[np.ndarray, float, float]:
    """All channels of one layer's output as one picture at one pixel per value (an image is far
    quicker to send and draw than a chart of dozens of heatmaps; the browser scales it up, see
    :func:`grid_display_width`): dark purple low, yellow high, white gaps.

    Returns:
        (H, W, 3) uint8, and the lowest and highest value of the layer.
    """
    canvas = tile_maps(maps, per_row, shared_scale)  # NaN in the gaps
    low, high = float(maps.min()), float(maps.max())
    scaled = (canvas - low) / max(high - low, 1e-12) if shared_scale else canvas
    indices = np.clip(np.nan_to_num(scaled, nan=0.0) * 255, 0, 255).astype(np.uint8)
    rgb = COLOUR_TABLE[indices]  # (h, w, 3)
    rgb[np.isnan(canvas)] = GAP_RGB
    return rgb, low, high


def grid_display_width(width: int) -> int:
    """Screen width in px for a picture ``width`` values wide: a whole number of screen pixels per
    value, about ``GRID_WIDTH_PX`` in all (never smaller than the picture)."""
    return width * max(1, GRID_WIDTH_PX // width)


def single_map(values: torch.Tensor, title: str) -> go.Figure:
    """One (H, W) feature map large, with its values on hover."""
    return go.Figure({
        "data": [{"type": "heatmap", "z": values.detach().float().numpy(), "colorscale": MAP_COLOURS,
                  "colorbar": {"thickness": 12},
                  "hovertemplate": "row %{y}, column %{x}: %{z:.3f}<extra></extra>"}],
        "layout": {"height": 300, "title": {"text": title, "font": {"size": 13}},
                   "margin": {"l": 0, "r": 0, "t": 36, "b": 0},
                   "xaxis": {"visible": False, "constrain": "domain"},
                   "yaxis": {"visible": False, "autorange": "reversed", "scaleanchor": "x"}},
    })


SHORT_NAMES = {"BatchNorm2d": "BatchNorm", "MaxPool2d": "MaxPool", "AvgPool2d": "AvgPool",
               "AdaptiveAvgPool2d": "GlobalAvg", "ResidualBlock": "Residual"}
CROWDED_STRIP = 14  # layers: beyond this the labels are turned so that they do not overlap


def architecture_strip(summaries: Sequence[LayerSummary], input_shape: Sequence[int]) -> go.Figure:
    """The layers left to right as boxes labelled with their kind and output shape."""
    kinds = ["Input", *(s.kind for s in summaries)]
    outputs = [tuple(input_shape), *(s.output_shape for s in summaries)]
    shapes = [" x ".join(map(str, shape)) for shape in outputs]
    params = [0, *(s.parameters for s in summaries)]
    x = list(range(len(kinds)))
    crowded = len(kinds) > CROWDED_STRIP
    angle, size = (-40, 10) if crowded else (0, 11)
    labels = [{"x": i, "y": 0, "yshift": 26, "text": SHORT_NAMES.get(kind, kind), "textangle": angle,
               "xanchor": "left" if crowded else "center", "yanchor": "bottom", "showarrow": False,
               "font": {"size": size}} for i, kind in zip(x, kinds, strict=True)]
    shape_labels = [{"x": i, "y": 0, "yshift": -26, "text": shape, "textangle": angle,
                     "xanchor": "right" if crowded else "center", "yanchor": "top", "showarrow": False,
                     "font": {"size": size, "color": "#4a5468"}} for i, shape in zip(x, shapes, strict=True)]
    return go.Figure({
        "data": [{
            "type": "scatter", "x": x, "y": [0] * len(x), "mode": "markers",
            "marker": {"symbol": "square", "size": 30 if crowded else 42,
                       "line": {"width": 1, "color": "#1d2433"},
                       "color": [PART_COLOURS.get(kind, "#b9c2d3") for kind in kinds]},
            "customdata": [[kind, shape, p] for kind, shape, p in zip(kinds, shapes, params, strict=True)],
            "hovertemplate": "%{customdata[0]}<br>output %{customdata[1]}<br>%{customdata[2]:,} parameters"
                             "<extra></extra>",
        }],
        "layout": {
            "annotations": shape_labels + labels, "height": 230 if crowded else 150,
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0}, "showlegend": False,
            "xaxis": {"visible": False, "range": [-1.6 if crowded else -0.8, len(x) - 0.2]},
            "yaxis": {"visible": False, "range": [-1, 1]},
        },
    })
