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
PLAIN_TILE = "#b9c2d3"  # a layer kind without a colour of its own (Flatten, Dropout, ...): dark text on it
# Boxes in a row that wraps: at any width every layer keeps its box and its shape, nothing overlaps.
STRIP_CSS = """<style>
.cnnviz-strip {display: flex; flex-wrap: wrap; gap: 0.6rem 0.35rem; align-items: flex-start;
  margin: 0.25rem 0 0.75rem 0;}
.cnnviz-layer {display: flex; flex-direction: column; align-items: center; min-width: 3.6rem;}
.cnnviz-tile {border: 1px solid #1d2433; border-radius: 0.3rem; padding: 0.3rem 0.4rem; color: #fff;
  font-size: 0.75rem; line-height: 1.15; text-align: center; white-space: nowrap;}
.cnnviz-tile.plain {color: #1d2433;}
.cnnviz-shape {font-size: 0.7rem; color: #4a5468; margin-top: 0.15rem; white-space: nowrap;}
</style>"""


def architecture_html(summaries: Sequence[LayerSummary], input_shape: Sequence[int]) -> str:
    """The layers in order as small boxes, each with its number (as the layer tabs number them), kind and
    output shape, in a row that wraps at the page's width; parameters on hover."""
    rows = [("Input", "input", tuple(input_shape), 0)]
    rows += [(SHORT_NAMES.get(s.kind, s.kind), f"layer {n}: {s.kind}", s.output_shape, s.parameters)
             for n, s in enumerate(summaries)]
    boxes = []
    for n, (short, kind, shape, parameters) in enumerate(rows):
        colour = PART_COLOURS.get(summaries[n - 1].kind, PLAIN_TILE) if n else PLAIN_TILE
        plain = " plain" if colour == PLAIN_TILE else ""
        number = f"{n - 1} · " if n else ""
        text = " x ".join(map(str, shape))
        boxes.append(f'<div class="cnnviz-layer" title="{kind}, output {text}, {parameters:,} parameters">'
                     f'<div class="cnnviz-tile{plain}" style="background:{colour}">{number}{short}</div>'
                     f'<div class="cnnviz-shape">{text}</div></div>')
    return STRIP_CSS + '<div class="cnnviz-strip">' + "".join(boxes) + "</div>"


DENSE_BARS = 16  # units: up to this many are bars with their names, more are a strip of cells
DENSE_ROW = 64  # cells per row of a strip of many units; 32 for up to DENSE_SHORT
DENSE_SHORT = 256


def dense_figure(values: torch.Tensor, title: str, names: Sequence[str] | None = None) -> go.Figure:
    """A dense layer's (D,) output: bars (with the class names for the logits) for a few units, else the
    units in rows of cells coloured by value, unit number and value on hover."""
    numbers = values.detach().float().numpy()
    layout = {"title": {"text": title, "font": {"size": 13}}, "margin": {"l": 0, "r": 0, "t": 36, "b": 0}}
    if len(numbers) <= DENSE_BARS:
        labels = list(names) if names is not None else [f"unit {i}" for i in range(len(numbers))]
        return go.Figure({
            "data": [{"type": "bar", "x": numbers.tolist(), "y": labels, "orientation": "h",
                      "marker": {"color": PART_COLOURS["Linear"]},
                      "hovertemplate": "%{y}: %{x:.4f}<extra></extra>"}],
            "layout": {**layout, "height": 60 + 22 * len(numbers),
                       "yaxis": {"autorange": "reversed", "type": "category"}},
        })
    width = DENSE_ROW // 2 if len(numbers) <= DENSE_SHORT else DENSE_ROW
    rows = -(-len(numbers) // width)  # ceil
    padded = np.full(rows * width, np.nan, dtype=np.float32)
    padded[:len(numbers)] = numbers
    units = np.arange(rows * width).reshape(rows, width)  # (rows, width): the unit in each cell
    return go.Figure({
        "data": [{"type": "heatmap", "z": padded.reshape(rows, width), "customdata": units,
                  "colorscale": MAP_COLOURS, "colorbar": {"thickness": 12}, "xgap": 1, "ygap": 1,
                  "hovertemplate": "unit %{customdata}: %{z:.4f}<extra></extra>"}],
        "layout": {**layout, "height": min(600, max(140, 60 + 18 * rows)),  # room for the colour bar
                   "xaxis": {"visible": False}, "yaxis": {"visible": False, "autorange": "reversed"}},
    })
