"""Figures of a picked cell's computation: a convolution's windows, kernels and products per input
channel, and a pool's window with its winner, every number written in its cell."""

from __future__ import annotations

import math

import numpy as np

from cnnviz.explorer.cell_terms import AvgPoolStep, ConvStep, MaxPoolStep
from cnnviz.ui.convolution.layout import DIVERGING
from cnnviz.ui.explorer.figures import PICK_COLOUR

PANEL_PX = 34  # px per cell of a window or kernel
PANEL_GAP = 0.06  # of the width between the three panels of a channel
KERNEL_COLOURS = DIVERGING  # positive weights red, negative blue, 0 white (zmid 0), as the Convolution page
WINDOW_COLOURS = "Greys"
PADDING_COLOUR = "#eceff4"  # a window's cells outside the map
TEXT_LIMIT = 7  # cells a side beyond which the numbers are left out (they would not fit)


def _panel(
    z: list, axis: int, colours: str, name: str, mid: float | None, text: bool, fmt: str = ".2f",
) -> dict:
    values = np.asarray(z, dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.nan)
    suffix = "" if axis == 1 else str(axis)
    trace = {"type": "heatmap", "z": values.tolist(), "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
             "colorscale": colours, "showscale": False, "xgap": 1, "ygap": 1, "name": name,
             "hovertemplate": f"{name}: %{{z:.4f}}<extra></extra>", "hoverongaps": False}
    if colours == WINDOW_COLOURS:
        trace["reversescale"] = True  # dark low, bright high: as the images and maps look
    if mid is not None:
        bound = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
        trace.update(zmin=-bound or -1.0, zmax=bound or 1.0)
    if text:
        trace.update(texttemplate=f"%{{z:{fmt}}}", textfont={"size": 10})
    return trace


def _padding(mask: np.ndarray, axis: int, text: bool) -> dict:
    """The window's cells on the zero padding: light grey, marked "0"."""
    suffix = "" if axis == 1 else str(axis)
    z = np.where(mask, 0.0, np.nan)
    trace = {"type": "heatmap", "z": z.tolist(), "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
             "colorscale": [[0, PADDING_COLOUR], [1, PADDING_COLOUR]], "showscale": False, "xgap": 1,
             "ygap": 1, "name": "padding", "hovertemplate": "zero padding<extra></extra>",
             "hoverongaps": False}
    if text:
        trace.update(texttemplate="0", textfont={"size": 10, "color": "#7d8596"})
    return trace


def conv_figure(step: ConvStep) -> dict:
    """One row per shown input channel: the window of the layer below (grey, padding blank), the
    learned kernel slice (red positive, blue negative) and their products, numbers written in."""
    kh, kw = step.kernel_size
    text = max(kh, kw) <= TEXT_LIMIT
    rows = len(step.channels)
    data, layout, annotations = [], {}, []
    width = (1 - 2 * PANEL_GAP) / 3
    row_height = 1 / rows
    colour_input = step.source == "the input image" and step.in_channels == 3  # name R, G, B
    for r, channel in enumerate(step.channels):
        window = np.where(np.asarray(step.padding), np.nan, np.asarray(channel.window))
        for c, (z, colours, name, mid) in enumerate((
            (window, WINDOW_COLOURS, "window", None), (channel.kernel, KERNEL_COLOURS, "kernel", 0.0),
            (channel.products, KERNEL_COLOURS, "product", 0.0),
        )):
            axis = r * 3 + c + 1
            suffix = "" if axis == 1 else str(axis)
            values = z.tolist() if isinstance(z, np.ndarray) else z
            data.append(_panel(values, axis, colours, name, mid, text))
            if c == 0 and np.asarray(step.padding).any():
                data.append(_padding(np.asarray(step.padding), axis, text))
            x0 = c * (width + PANEL_GAP)
            top = 1 - r * row_height
            layout[f"xaxis{suffix}"] = {"domain": [x0, x0 + width], "visible": False, "anchor": f"y{suffix}"}
            layout[f"yaxis{suffix}"] = {"domain": [top - row_height * 0.78, top - row_height * 0.08],
                                        "visible": False, "autorange": "reversed", "anchor": f"x{suffix}"}
            if r == 0:
                annotations.append({"text": f"<b>{('window', 'kernel', 'window x kernel')[c]}</b>",
                                    "x": x0 + width / 2, "y": 1, "xref": "paper", "yref": "paper",
                                    "yanchor": "bottom", "showarrow": False, "font": {"size": 12}})
        colour = f" ({'RGB'[channel.channel]})" if colour_input else ""
        title = f"input channel {channel.channel}{colour}: sum = {channel.partial_sum:.4f}"
        annotations.append({"text": title,
                            "x": 1, "y": 1 - r * row_height - row_height * 0.80, "xref": "paper",
                            "yref": "paper", "xanchor": "right", "yanchor": "top", "showarrow": False,
                            "font": {"size": 11, "color": "#4a5468"}})
    panel_rows = max(kh, 3)
    layout.update({"height": 30 + rows * (panel_rows * PANEL_PX * 0.75 + 40),
                   "margin": {"l": 0, "r": 0, "t": 24, "b": 0}, "annotations": annotations,
                   "dragmode": False})
    return {"data": data, "layout": layout}


def pool_figure(step: MaxPoolStep | AvgPoolStep) -> dict:
    """A pool's window on the layer below, numbers written in; a max pool's winner outlined."""
    window = np.asarray(step.window, dtype=np.float64)
    window = np.where(np.asarray(step.padding) | ~np.isfinite(window), np.nan, window)
    height, width = window.shape
    text = max(height, width) <= TEXT_LIMIT + 2
    trace = _panel(window.tolist(), 1, "Viridis", "value", None, text, ".3f")
    trace.update(x=[str(c) for c in step.cols], y=[str(r) for r in step.rows])
    shapes = []
    if isinstance(step, MaxPoolStep):
        r, c = step.rows.index(step.winner[0]), step.cols.index(step.winner[1])
        shapes.append({"type": "rect", "x0": c - 0.5, "x1": c + 0.5, "y0": r - 0.5, "y1": r + 0.5,
                       "line": {"color": PICK_COLOUR, "width": 3}})
    side = min(320, max(120, PANEL_PX * max(height, width) + 50))
    return {"data": [trace], "layout": {
        "height": side, "width": int(side * math.sqrt(width / height)) + 40,
        "margin": {"l": 40, "r": 0, "t": 10, "b": 40}, "shapes": shapes, "dragmode": False,
        "xaxis": {"title": {"text": "column"}, "type": "category"},  # a longer title is cut at the edge
        "yaxis": {"title": {"text": "row"}, "type": "category", "autorange": "reversed"},
    }}
