"""Figures of the explorer: the whole network for one image (clickable maps), and one map large
(clickable cells), in the predict page's colours (Viridis, one scale per layer)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cnnviz.explorer.layers import NetLayer, Trace
from cnnviz.ui.panels import png_source
from cnnviz.ui.predict.figures import COLOUR_TABLE, MAP_COLOURS, OTHER_COLOUR, PREDICTED_COLOUR

SLOT = 40  # px: one map's square in the overview (a map is enlarged by a whole factor to fit)
SLOT_GAP = 4  # px between maps of one layer
INPUT_SLOT = 2 * SLOT + SLOT_GAP  # px: the input image is drawn larger
COLUMN_GAP = 16  # px between layers
MAPS_SHOWN = 8  # maps per layer in the overview; the rest are one "+N more" line
PICK_COLOUR = "#e8453c"  # the picked map and cell
BACKGROUND = 255
LABEL_TOP = 34  # px above the maps for the layer labels (two lines)
LABEL_BOTTOM = 46  # px below them for the shapes (up to three lines)
CROWDED = 26  # columns: beyond this the labels are turned
COLUMN_NAMES = {"Conv2d": "Conv", "BatchNorm2d": "BN", "MaxPool2d": "Pool", "AvgPool2d": "Avg",
                "AdaptiveAvgPool2d": "GAP", "ResidualBlock": "Res", "Linear": "Dense", "Flatten": "Flat",
                "Dropout": "Drop", "Dropout2d": "Drop"}  # short: a column may be 35 px wide
BARS_WIDTH = 150  # px: the output column, softmax bars with their class names and percentages
CLICK_MARKER_PX = 6  # screen px of a click marker; BAR_CLICKS markers along each output bar's row
BAR_CLICKS = 5
BAR_LENGTH = 60  # px: a probability of 1
OVERVIEW_WIDTH_PX = 900  # the overview is drawn about this wide on a laptop


@dataclass(frozen=True)
class Column:
    """One layer of the overview: what it shows and where."""

    number: int  # the layer (-1: the input image)
    label: str
    shape: str  # "16 x 14 x 14"
    left: int  # px from the overview's left edge
    width: int
    channels: range  # the channels (or units) drawn
    total: int  # channels (or units) in all


def shape_text(tensor: torch.Tensor) -> str:
    """(1, C, H, W) -> "C<br>HxW" (narrow enough for a column); (1, D) -> "D"."""
    shape = tuple(tensor.shape[1:])
    return f"{shape[0]}<br>{shape[1]}x{shape[2]}" if len(shape) == 3 else str(shape[0])


def first_shown(channels: int, picked: int | None) -> int:
    """The first channel of a layer's overview column: 0, or the block of ``MAPS_SHOWN`` that holds
    the picked channel (so the picked map is always on screen)."""
    if picked is None or channels <= MAPS_SHOWN:
        return 0
    return min(picked // MAPS_SHOWN * MAPS_SHOWN, channels - MAPS_SHOWN)


def _scaled(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Values -> Viridis colours on one scale ((..., 3) uint8)."""
    index = np.clip((values - low) / max(high - low, 1e-12) * 255, 0, 255).astype(np.uint8)
    return COLOUR_TABLE[index]


def _map_block(rgb: np.ndarray, slot: int = SLOT) -> np.ndarray:
    """An (H, W, 3) map enlarged by a whole factor and centred in a ``slot`` x ``slot`` square."""
    height, width = rgb.shape[:2]
    factor = max(1, slot // max(height, width))
    big = rgb.repeat(factor, axis=0).repeat(factor, axis=1)
    big = big[:slot, :slot]
    block = np.full((slot, slot, 3), BACKGROUND, dtype=np.uint8)
    top, left = (slot - big.shape[0]) // 2, (slot - big.shape[1]) // 2
    block[top:top + big.shape[0], left:left + big.shape[1]] = big
    return block


def unit_size(units: int, height: int, width: int = SLOT) -> int:
    """The largest square (px) in which ``units`` cells fit in rows of a ``width`` x ``height`` strip."""
    for size in range(width, 0, -1):
        if math.ceil(units / max(1, width // size)) * size <= height:
            return size
    return 1


def overview_figure(
    trace: Trace, layers: Sequence[NetLayer], input_rgb: np.ndarray, picked: tuple[int, int] | None,
    classes: Sequence[str] | None = None,
) -> dict:
    """Every layer's output side by side, the input first: up to ``MAPS_SHOWN`` maps per layer
    stacked (one colour scale per layer, dark purple low, yellow high), dense layers as a block of
    units, the output as its softmax bars. One picture (fast to send) under an invisible marker per
    map or unit, so a click reports ``customdata = [layer, channel]``; the picked one is outlined.

    Args:
        input_rgb: the input image as (H, W, 3) uint8, as the student sees it.
        picked: (layer, channel) to outline and keep in view.
        classes: the class names, for the output's bars.
    """
    height = MAPS_SHOWN * (SLOT + SLOT_GAP) - SLOT_GAP
    side = INPUT_SLOT
    input_block = np.full((height, side, 3), BACKGROUND, dtype=np.uint8)
    input_block[:side] = _map_block(input_rgb, side)
    parts = [(input_block, Column(-1, "Input", shape_text(trace.input), 0, side, range(0), 0), [])]
    left = side + COLUMN_GAP
    last = len(layers) - 1
    for layer, output in zip(layers, trace.outputs, strict=True):
        values = output[0].detach().float().numpy()  # (C, H, W) or (D,)
        label = f"{layer.number}<br>{COLUMN_NAMES.get(layer.kind, layer.kind)}"
        if values.ndim == 3:
            pick = picked[1] if picked and picked[0] == layer.number else None
            block, shown, points = _maps_column(values, layer.number, left, height, pick)
        elif layer.number == last and classes is not None and len(classes) == len(values):
            block, shown, points = _bars_column(values, layer.number, left, height)
            label = f"{layer.number}<br>Output"
        else:
            block, shown, points = _units_column(values, layer.number, left, height)
        column = Column(layer.number, label, shape_text(output), left, block.shape[1], shown, values.shape[0])
        parts.append((block, column, points))
        left += block.shape[1] + COLUMN_GAP
    figure = _assemble(parts, picked, height)
    if classes is not None and parts[-1][1].label.endswith("Output"):  # the softmax bars
        figure["data"].append(_bar_trace(trace.outputs[-1][0], parts[-1][1].left, height, classes))
        markers, column = figure["data"][1], parts[-1][1]
        for _x, y, layer, unit, _ in parts[-1][2]:  # a wide row: its centre is far from a click on its left
            for k in range(BAR_CLICKS):
                markers["x"].append(column.left + (k + 0.5) * column.width / BAR_CLICKS)
                markers["y"].append(y)
                markers["customdata"].append([layer, unit])
    return figure


def _maps_column(values: np.ndarray, number: int, left: int, height: int, pick: int | None):
    """Up to MAPS_SHOWN maps of a (C, H, W) output stacked, on the layer's colour scale."""
    low, high = float(values.min()), float(values.max())
    block = np.full((height, SLOT, 3), BACKGROUND, dtype=np.uint8)
    start = first_shown(values.shape[0], pick)
    shown = range(start, min(start + MAPS_SHOWN, values.shape[0]))
    points = []
    for slot, channel in enumerate(shown):
        top = slot * (SLOT + SLOT_GAP)
        block[top:top + SLOT] = _map_block(_scaled(values[channel], low, high))
        points.append((left + SLOT / 2, top + SLOT / 2, number, channel, SLOT))
    return block, shown, points


def _units_column(values: np.ndarray, number: int, left: int, height: int):
    """A (D,) output as a block of unit cells, in rows, on the layer's colour scale."""
    block = np.full((height, SLOT, 3), BACKGROUND, dtype=np.uint8)
    size = unit_size(len(values), height)
    per_row = SLOT // size
    colours = _scaled(values, float(values.min()), float(values.max()))  # (D, 3)
    points = []
    for unit in range(len(values)):
        top, offset = unit // per_row * size, unit % per_row * size
        block[top:top + size, offset:offset + size] = colours[unit]
        points.append((left + offset + size / 2, top + size / 2, number, unit, size))
    return block, range(len(values)), points


def _bar_rows(count: int, height: int) -> float:
    return min(height / count, SLOT)


def _bars_column(values: np.ndarray, number: int, left: int, height: int):
    """Room for the output's softmax bars (drawn as a bar trace), one click marker per class."""
    block = np.full((height, BARS_WIDTH, 3), BACKGROUND, dtype=np.uint8)
    step = _bar_rows(len(values), height)
    points = [(left + BARS_WIDTH / 2, (unit + 0.5) * step, number, unit, step) for unit in range(len(values))]
    return block, range(len(values)), points


def _bar_trace(logits: torch.Tensor, left: int, height: int, classes: Sequence[str]) -> dict:
    """The softmax of the logits as horizontal bars in the output's column, named and in percent."""
    probabilities = torch.softmax(logits.double(), dim=0).tolist()
    step = _bar_rows(len(probabilities), height)
    best = int(np.argmax(probabilities))
    return {
        "type": "bar", "orientation": "h", "base": left, "x": [p * BAR_LENGTH for p in probabilities],
        "y": [(unit + 0.5) * step for unit in range(len(probabilities))], "width": step * 0.7,
        "marker": {"color": [PREDICTED_COLOUR if i == best else OTHER_COLOUR for i in range(len(classes))]},
        "text": [f"{name}: {p:.0%}" for name, p in zip(classes, probabilities, strict=True)],
        "textposition": "outside", "cliponaxis": False, "textfont": {"size": 10}, "hoverinfo": "skip",
        "showlegend": False,
    }


def _assemble(parts: list[tuple[np.ndarray, Column, list]], picked, height: int) -> dict:
    """The overview's picture, labels, click markers and the picked map's outline as one figure."""
    columns = [column for _, column, _ in parts]
    points = [point for _, _, column_points in parts for point in column_points]
    width = columns[-1].left + columns[-1].width
    canvas = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    for block, column, _ in parts:
        canvas[:, column.left:column.left + column.width] = block
    crowded = len(columns) > CROWDED
    angle = -50 if crowded else 0
    annotations = []
    for column in columns:
        centre = column.left + column.width / 2
        annotations.append({"x": centre, "y": -0.5, "yshift": 6, "text": column.label, "textangle": angle,
                            "xanchor": "left" if crowded else "center", "yanchor": "bottom",
                            "showarrow": False, "font": {"size": 10}})
        annotations.append({"x": centre, "y": height - 0.5, "yshift": -4, "text": _shape_label(column),
                            "showarrow": False, "xanchor": "center", "yanchor": "top",
                            "font": {"size": 9, "color": "#4a5468"}})
    shapes = []
    for x, y, layer, channel, size in points:
        if picked == (layer, channel):
            half = size / 2 + 1.5
            shapes.append({"type": "rect", "x0": x - half, "x1": x + half, "y0": y - half, "y1": y + half,
                           "line": {"color": PICK_COLOUR, "width": 2.5}})
    top = LABEL_TOP + (40 if crowded else 0)
    return {
        "data": [
            {"type": "image", "source": png_source(canvas), "x0": 0, "y0": 0, "dx": 1, "dy": 1,
             "hoverinfo": "skip"},
            {"type": "scatter", "x": [p[0] for p in points], "y": [p[1] for p in points], "mode": "markers",
             # small, invisible (opacity 0 would not be clickable) markers: a click picks the nearest
             # centre within hoverdistance. Markers as big as the maps overlapped their neighbours'
             # once the figure was scaled down (a phone, a 20-layer net), and a tie picked the wrong map.
             "marker": {"symbol": "square", "size": CLICK_MARKER_PX, "opacity": 0.01, "color": "#fff"},
             "customdata": [[p[2], p[3]] for p in points], "showlegend": False,
             "hovertemplate": "layer %{customdata[0]}, channel %{customdata[1]}: click to pick"
                              "<extra></extra>"},
        ],
        "layout": {
            "height": overview_height(width, height) + top + LABEL_BOTTOM,
            "margin": {"l": 0, "r": 30 if crowded else 0, "t": top, "b": LABEL_BOTTOM},
            "xaxis": {"visible": False, "range": [-0.5, width - 0.5], "constrain": "domain"},
            # on a narrow screen the picture keeps its shape: the spare height goes below, not between
            "yaxis": {"visible": False, "range": [height - 0.5, -0.5], "scaleanchor": "x",
                      "constrain": "domain", "constraintoward": "top"},
            "annotations": annotations, "shapes": shapes, "dragmode": False, "hovermode": "closest",
            "hoverdistance": 30, "clickmode": "event+select", "bargap": 0,
        },
    }


def _shape_label(column: Column) -> str:
    """The shape under a column, and which of its maps are shown when not all are."""
    more = column.total - len(column.channels)
    if more <= 0 or column.number < 0:
        return column.shape
    if column.channels.start == 0:
        return f"{column.shape}<br>+{more}"
    return f"{column.shape}<br>{column.channels.start}-{column.channels.stop - 1}"


def overview_height(width: int, height: int) -> int:
    """Plot height in px: the picture about as wide as a laptop's page, neither tiny nor huge."""
    return int(min(max(OVERVIEW_WIDTH_PX * height / width, 260), 560))


def cell_map_figure(
    values: torch.Tensor, title: str, picked: tuple[int, int], low: float, high: float,
) -> dict:
    """One (H, W) map large on its layer's colour scale; every cell clickable (``customdata = [row,
    col, value]``), the picked one outlined."""
    z = values.detach().float().numpy()
    height, width = z.shape
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    row, col = picked
    side = 420 if max(height, width) > 4 else 260
    return {
        "data": [
            {"type": "heatmap", "z": z, "colorscale": MAP_COLOURS, "zmin": low, "zmax": high,
             "colorbar": {"thickness": 12}, "hoverinfo": "skip", "xgap": 0.5, "ygap": 0.5},
            {"type": "scatter", "x": cols.ravel().tolist(), "y": rows.ravel().tolist(), "mode": "markers",
             # small markers and no hover cut-off: a click picks the nearest cell centre, which on a
             # grid is the cell under the pointer at any scale (markers sized for 300 px overlapped
             # once the map was drawn smaller, and overlapping markers tie)
             "marker": {"symbol": "square", "size": CLICK_MARKER_PX, "opacity": 0.01, "color": "#000"},
             "customdata": np.stack([rows.ravel(), cols.ravel(), z.ravel()], axis=1).tolist(),
             "showlegend": False,
             "hovertemplate": "row %{customdata[0]}, column %{customdata[1]}: %{customdata[2]:.4f}"
                              "<extra></extra>"},
        ],
        "layout": {
            "height": side, "title": {"text": title, "font": {"size": 13}},
            "margin": {"l": 30, "r": 0, "t": 56, "b": 30},  # room for a two-line title
            "xaxis": {"range": [-0.5, width - 0.5], "constrain": "domain", "title": {"text": "column"},
                      "showgrid": False, "zeroline": False},
            "yaxis": {"range": [height - 0.5, -0.5], "scaleanchor": "x", "title": {"text": "row"},
                      "showgrid": False, "zeroline": False, "constrain": "domain"},
            "shapes": [{"type": "rect", "x0": col - 0.5, "x1": col + 0.5, "y0": row - 0.5, "y1": row + 0.5,
                        "line": {"color": PICK_COLOUR, "width": 3}}],
            "dragmode": False, "hovermode": "closest", "hoverdistance": -1, "clickmode": "event+select",
        },
    }


def units_figure(values: torch.Tensor, title: str, picked: int, low: float, high: float,
                 names: Sequence[str] | None = None) -> dict:
    """A dense layer's units as one row of cells (clickable: ``customdata = [unit, 0, value]``)."""
    z = values.detach().float().numpy().reshape(1, -1)  # (1, D)
    count = z.shape[1]
    ticks = {"tickvals": list(range(count)), "ticktext": list(names)} if names is not None else {}
    return {
        "data": [
            {"type": "heatmap", "z": z, "colorscale": MAP_COLOURS, "zmin": low, "zmax": high,
             "colorbar": {"thickness": 12}, "hoverinfo": "skip", "xgap": 0.5 if count <= 200 else 0},
            {"type": "scatter", "x": list(range(count)), "y": [0] * count, "mode": "markers",
             "marker": {"symbol": "square", "size": max(2, min(12, 400 // count)), "opacity": 0.01,
                        "color": "#fff"},
             "customdata": [[u, 0, float(z[0, u])] for u in range(count)], "showlegend": False,
             "hovertemplate": "unit %{customdata[0]}: %{customdata[2]:.4f}<extra></extra>"},
        ],
        "layout": {
            "height": 170, "title": {"text": title, "font": {"size": 13}},
            "margin": {"l": 10, "r": 0, "t": 40, "b": 40},
            "xaxis": {"range": [-0.5, count - 0.5], "title": {"text": "unit"}, "showgrid": False,
                      "zeroline": False, **ticks},
            "yaxis": {"visible": False, "range": [0.5, -0.5]},
            "shapes": [{"type": "rect", "x0": picked - 0.5, "x1": picked + 0.5, "y0": -0.5, "y1": 0.5,
                        "line": {"color": PICK_COLOUR, "width": 3}}],
            "dragmode": False, "hovermode": "closest", "clickmode": "event+select",
        },
    }
