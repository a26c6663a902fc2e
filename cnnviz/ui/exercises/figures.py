"""The small numbered maps of an exercise (an input, a kernel, a feature map) as Plotly heatmaps, with
the asked-about window outlined; square cells, rows and columns numbered from 0."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from cnnviz.exercises.model import Picture
from cnnviz.ui.convolution.layout import DIVERGING
from cnnviz.ui.panels import heatmap

WINDOW_COLOR = "#e8590c"
FRAME_COLOR = "#5a6275"
CELL_PX = 38  # a numbered cell is wide enough for "-0.125" at 11 px
SHADED_CELL_PX = 9  # a 28x28 digit without numbers
MAX_WIDTH = 430  # at 800 px the page's column is about 470 px wide: a figure never needs more
MAX_TICKED_SIDE = 12  # beyond this the row and column numbers would crowd
MARGIN = {"l": 28, "r": 8, "t": 30, "b": 24}


def figure_size(picture: Picture) -> tuple[int, int]:
    """(width, height) in pixels: square cells, the numbers readable, at most MAX_WIDTH wide."""
    rows, cols = np.shape(picture.values)
    cell = CELL_PX if picture.numbers else SHADED_CELL_PX
    cell = min(cell, (MAX_WIDTH - MARGIN["l"] - MARGIN["r"]) // cols)
    width = MARGIN["l"] + MARGIN["r"] + cols * cell
    return max(width, 150), MARGIN["t"] + MARGIN["b"] + rows * cell  # 150: room for a title


def grid_figure(picture: Picture) -> go.Figure:
    """One picture as a heatmap: numbers in the cells when ``picture.numbers``, the window outlined."""
    values = np.asarray(picture.values, dtype=np.float64)
    rows, cols = values.shape
    width, height = figure_size(picture)
    signed = values.min() < 0
    # signed maps and kernels in the Convolution page's colours (positive red, negative blue): a student
    # coming from that page reads them the same way
    trace = heatmap(values, ("x", "y"), DIVERGING if signed else "Blues", picture.numbers, picture.title,
                    zmid=0.0 if signed else None, number_format=".4~g")
    ticked = max(rows, cols) <= MAX_TICKED_SIDE
    ticks = ({"tickmode": "linear", "dtick": 1, "tickfont": {"size": 10}} if ticked
             else {"showticklabels": False})
    layout = {
        "title": {"text": f"<b>{picture.title}</b>", "font": {"size": 13}, "x": 0.5, "xanchor": "center"},
        "width": width,
        "height": height,
        "margin": MARGIN,
        "xaxis": {"range": [-0.5, cols - 0.5], "showgrid": False, "zeroline": False, **ticks},
        "yaxis": {"range": [rows - 0.5, -0.5], "scaleanchor": "x", "showgrid": False, "zeroline": False,
                  "constrain": "domain", **ticks},
        "plot_bgcolor": "white",
    }
    figure = go.Figure(trace, layout)
    if picture.frame is not None:
        (top, left), (bottom, right) = picture.frame
        figure.add_shape(type="rect", x0=left - 0.5, x1=right + 0.5, y0=top - 0.5, y1=bottom + 0.5,
                         line={"color": FRAME_COLOR, "width": 2, "dash": "dash"})
    if picture.outline is not None:
        (top, left), (bottom, right) = picture.outline
        figure.add_shape(type="rect", x0=left - 0.5, x1=right + 0.5, y0=top - 0.5, y1=bottom + 0.5,
                         line={"color": WINDOW_COLOR, "width": 4})
    return figure
