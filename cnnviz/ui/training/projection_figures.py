"""Plotly figure of the map of what a network learned: one scatter per moment (before / after
training), a colour per class, one legend entry per class for every panel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

# Plotly's D3 palette: ten colours a student tells apart; more classes cycle through them.
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MARKER_PX = 6
PANEL_GAP = 0.06  # of the figure's width, between two panels


def class_color(index: int) -> str:
    return CLASS_COLORS[index % len(CLASS_COLORS)]


def projection_map(panels: Sequence[tuple[str, torch.Tensor]], labels: torch.Tensor,
                   test_indices: torch.Tensor, classes: Sequence[str], axis_name: str) -> go.Figure:
    """Side-by-side scatters of the same images, one per (title, (P, 2) points) panel.

    Each point's ``customdata`` is [its position on the map, its test-set index], so a click tells the
    page which image it is; the legend toggles a class in every panel at once.
    """
    labels_np = labels.numpy()
    positions = np.arange(len(labels_np))
    width = (1 - PANEL_GAP * (len(panels) - 1)) / len(panels)
    traces, layout = [], {}
    for number, (title, points) in enumerate(panels):
        suffix = "" if number == 0 else str(number + 1)
        xy = points.numpy()
        for cls, name in enumerate(classes):
            mine = labels_np == cls
            if not mine.any():
                continue
            traces.append(go.Scatter(
                x=xy[mine, 0], y=xy[mine, 1], mode="markers", name=name, legendgroup=name,
                showlegend=number == 0, xaxis="x" + suffix, yaxis="y" + suffix,
                marker={"size": MARKER_PX, "color": class_color(cls), "opacity": 0.75},
                # a click selects one dot; the others stay readable instead of fading to ghosts
                selected={"marker": {"opacity": 1.0, "size": MARKER_PX * 2}},
                unselected={"marker": {"opacity": 0.45}},
                # plain lists: a numpy table goes as a typed array, whose rows a click reports as objects
                customdata=np.stack([positions[mine], test_indices.numpy()[mine]], axis=1).tolist(),
                hovertemplate=f"{name}<br>test image %{{customdata[1]}}<extra>{title}</extra>",
            ))
        left = number * (width + PANEL_GAP)
        layout["xaxis" + suffix] = {"domain": [left, left + width], "anchor": "y" + suffix, "zeroline": False,
                                    "title": {"text": f"{axis_name} 1"}, "showticklabels": False}
        layout["yaxis" + suffix] = {"anchor": "x" + suffix, "zeroline": False,
                                    "title": {"text": f"{axis_name} 2"}, "showticklabels": False}
        layout.setdefault("annotations", []).append({
            "text": title, "x": left + width / 2, "y": 1.0, "xref": "paper", "yref": "paper",
            "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 15}})
    layout.update({"height": 500, "margin": {"l": 30, "r": 10, "t": 36, "b": 40},
                   # under the axis titles ("PCA 1"), which it covered at -0.12
                   "legend": {"orientation": "h", "y": -0.2, "itemsizing": "constant"},
                   "hovermode": "closest"})  # Streamlit sets the click and drag modes of on_select
    return go.Figure(data=traces, layout=layout)
