"""Figures of the lesson "Groups, depthwise and 1x1": which input channels each kernel sees (the
kernel bank laid out kernel by channel, the slices a kernel does not have greyed out), and rows of
maps with their names."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from cnnviz.ui.convolution.layout import DIVERGING
from cnnviz.ui.panels import GAP, LABEL_FONT, heatmap, in_rows, label_tiles, squares, tile_grid

MAPS_PER_ROW = 4  # four 28x28 or 32x32 maps side by side stay readable at 800 px (five in one row)
NOT_SEEN = "#eceef2"
AXES = ("x", "y")


def _image_layout(height: int, rows: int, cols: int) -> dict:
    axis = {"showgrid": False, "zeroline": False, "showticklabels": False, "ticks": "", "constrain": "domain"}
    return {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "plot_bgcolor": "white",
        "showlegend": False,
        "xaxis": {**axis, "range": [-0.5, cols - 0.5], "autorange": False},
        "yaxis": {**axis, "range": [rows - 0.5, -0.5], "autorange": False, "scaleanchor": "x"},
    }


def build_connections_figure(
    weight: np.ndarray, mask: np.ndarray, channel_names: list[str], height: int = 340
) -> go.Figure:
    """The kernels of a grouped layer as a grid: a row per kernel, a column per input channel.

    Args:
        weight: (K, C/groups, kH, kW) the layer's kernels.
        mask: (K, C) True where kernel k has a slice for input channel c (``channels.group_mask``).
    """
    kernels, channels = mask.shape
    kernel_h, kernel_w = weight.shape[2:]
    blank = np.full((kernel_h, kernel_w), np.nan)
    blocks = []
    for k in range(kernels):
        slices = iter(weight[k])
        blocks.append([next(slices) if mask[k, c] else blank for c in range(channels)])
    tiles = tile_grid(blocks)
    rows, cols = tiles.array.shape
    limit = float(np.abs(weight).max()) or 1.0
    layout = _image_layout(height, rows, cols)
    layout["margin"] = {"l": 70, "r": 10, "t": 10, "b": 30}
    label_tiles(layout, "", tiles, (kernel_h, kernel_w), [f"kernel {k + 1}" for k in range(kernels)],
                channel_names)
    layout["shapes"] = [
        {"type": "rect", "xref": "x", "yref": "y", "x0": left - 0.5, "x1": left + kernel_w - 0.5,
         "y0": top - 0.5, "y1": top + kernel_h - 0.5, "fillcolor": NOT_SEEN, "line": {"width": 0},
         "layer": "below"}
        for k, row in enumerate(tiles.origins) for c, (top, left) in enumerate(row) if not mask[k, c]
    ]
    layout["annotations"] = [
        {"x": left + (kernel_w - 1) / 2, "y": top + (kernel_h - 1) / 2, "xref": "x", "yref": "y",
         "text": "not seen", "showarrow": False, "font": {"size": 10, "color": "#8a90a0"}}
        for k, row in enumerate(tiles.origins) for c, (top, left) in enumerate(row) if not mask[k, c]
    ]
    show_text = kernel_h * kernel_w <= 9 and cols <= 4 * (3 + GAP)
    trace = heatmap(tiles.array, AXES, DIVERGING, show_text, "weight", zmid=0.0, zmin=-limit, zmax=limit,
                    number_format=".1f")
    return go.Figure(data=[trace], layout=layout)


def build_maps_figure(
    maps: np.ndarray,
    names: list[str],
    colorscale: str = DIVERGING,
    marked: tuple[int, int] | None = None,
    row_height: int = 185,
) -> go.Figure:
    """(N, H, W) maps in rows of four (five in one row), each named above, on one colour scale
    (centred on 0 for DIVERGING); ``marked`` outlines one pixel (row, col) on every map."""
    count, map_h, map_w = maps.shape
    per_row = count if count <= MAPS_PER_ROW + 1 else MAPS_PER_ROW
    rows = in_rows(list(maps), per_row)
    tiles = tile_grid(rows, gap=3, columns=per_row)
    height, width = tiles.array.shape
    layout = _image_layout(row_height * len(rows) + 20, height, width)
    layout["margin"]["t"] = 24
    layout["yaxis"]["range"] = [height - 0.5, -3.5]  # room for the names above the top row
    limit = float(np.abs(maps).max()) or 1.0
    scale = {"zmid": 0.0, "zmin": -limit, "zmax": limit} if colorscale == DIVERGING else {
        "zmin": min(0.0, float(maps.min())), "zmax": max(1.0, float(maps.max()))}
    origins = [origin for row in tiles.origins for origin in row]
    layout["annotations"] = [
        {"x": left + (map_w - 1) / 2, "y": top - 0.7, "xref": "x", "yref": "y", "text": name,
         "showarrow": False, "yanchor": "bottom", "font": LABEL_FONT}
        for (top, left), name in zip(origins, names, strict=True)
    ]
    maps_trace = heatmap(tiles.array, AXES, colorscale, False, "value", **scale)
    maps_trace.update(xgap=0, ygap=0)  # 3-4 px cells: a 1 px gap would grid the picture over
    data = [maps_trace]
    if marked is not None:
        xs, ys = [], []
        for top, left in origins:
            box_x, box_y = squares(np.array([top + marked[0]]), np.array([left + marked[1]]), True)
            xs += [*box_x, None]
            ys += [*box_y, None]
        data.append(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#f2a900", "width": 2},
                               hoverinfo="skip", name="pixel"))
    return go.Figure(data=data, layout=layout)
