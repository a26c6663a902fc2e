"""The small numbered maps of an exercise (an input, a kernel, a feature map) as Plotly heatmaps, with
the asked-about window outlined; square cells, rows and columns numbered from 0."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from cnnviz.exercises.model import Picture
from cnnviz.ui.panels import heatmap

WINDOW_COLOR = "#e8590c"
CELL_PX = 40  # a numbered cell is tall enough for "-0.125" at 11 px
SHADED_CELL_PX = 8  # a 28x28 digit without numbers
MAX_TICKED_SIDE = 12  # beyond this the row and column numbers would crowd


def figure_height(picture: Picture) -> int:
    """Pixels for the whole figure: the rows, the title and the column numbers."""
    rows = np.shape(picture.values)[0]
    return 70 + rows * (CELL_PX if picture.numbers else SHADED_CELL_PX)


def grid_figure(picture: Picture) -> go.Figure:
    """One picture as a heatmap: numbers in the cells when ``picture.numbers``, the window outlined."""
    values = np.asarray(picture.values, dtype=np.float64)
    rows, cols = values.shape
    signed = values.min() < 0
    trace = heatmap(values, ("x", "y"), "RdBu" if signed else "Blues", picture.numbers, picture.title,
                    zmid=0.0 if signed else None, number_format=".4~g")
    ticked = max(rows, cols) <= MAX_TICKED_SIDE
    ticks = ({"tickmode": "linear", "dtick": 1, "tickfont": {"size": 10}} if ticked
             else {"showticklabels": False})
    layout = {
        "title": {"text": f"<b>{picture.title}</b>", "font": {"size": 13}, "x": 0.5, "xanchor": "center"},
        "height": figure_height(picture),
        "margin": {"l": 28, "r": 8, "t": 30, "b": 24},
        "xaxis": {"range": [-0.5, cols - 0.5], "showgrid": False, "zeroline": False,
                  "constrain": "domain", **ticks},
        "yaxis": {"range": [rows - 0.5, -0.5], "scaleanchor": "x", "showgrid": False, "zeroline": False,
                  "constrain": "domain", **ticks},
        "plot_bgcolor": "white",
    }
    figure = go.Figure(trace, layout)
    if picture.outline is not None:
        (top, left), (bottom, right) = picture.outline
        figure.add_shape(type="rect", x0=left - 0.5, x1=right + 0.5, y0=top - 0.5, y1=bottom + 0.5,
                         line={"color": WINDOW_COLOR, "width": 4})
    return figure
