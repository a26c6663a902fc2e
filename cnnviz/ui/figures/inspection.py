"""Figures of the inspect-and-predict page: probabilities, feature-map grids, the architecture strip."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from cnnviz.inspection import LayerSummary, Prediction

PREDICTED_COLOUR = "#2f6fdf"
TOP_COLOUR = "#8fb1ee"
OTHER_COLOUR = "#c9cfda"
MAP_GAP = 1  # px of empty space between feature maps in a grid
MAPS_PER_ROW = 12
MAP_COLOURS = "Viridis"
PART_COLOURS = {"Conv2d": "#2f6fdf", "BatchNorm2d": "#7d8ba6", "ReLU": "#e08a2e", "MaxPool2d": "#2e9e6a",
                "AvgPool2d": "#2e9e6a", "Linear": "#8a4fd1"}


def probability_bars(prediction: Prediction, top_k: int) -> go.Figure:
    """Every class's probability as a bar; the top k coloured, the logits in the labels."""
    probabilities = prediction.probabilities.tolist()
    logits = prediction.logits.tolist()
    top = {prediction.classes.index(label) for label, _ in prediction.top(top_k)}
    colours = [PREDICTED_COLOUR if i == prediction.index else TOP_COLOUR if i in top else OTHER_COLOUR
               for i in range(len(probabilities))]
    figure = go.Figure(go.Bar(
        x=probabilities, y=list(prediction.classes), orientation="h", marker_color=colours,
        text=[f"{p:.1%}  (logit {z:.2f})" for p, z in zip(probabilities, logits, strict=True)],
        textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: probability %{x:.4f}<extra></extra>",
    ))
    figure.update_layout(
        height=40 + 26 * len(probabilities), margin={"l": 10, "r": 10, "t": 10, "b": 30},
        xaxis={"range": [0, 1.45], "tickformat": ".0%", "tickvals": [0, 0.25, 0.5, 0.75, 1.0],
               "title": "probability (softmax of the logits)"},
        yaxis={"autorange": "reversed", "type": "category"}, bargap=0.25,
    )
    return figure


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
    count, height, width = values.shape
    per_row = min(per_row, count)
    rows = -(-count // per_row)  # ceil
    canvas = np.full((rows * (height + MAP_GAP) - MAP_GAP, per_row * (width + MAP_GAP) - MAP_GAP),
                     np.nan, dtype=np.float32)
    for channel in range(count):
        row, col = divmod(channel, per_row)
        top, left = row * (height + MAP_GAP), col * (width + MAP_GAP)
        canvas[top:top + height, left:left + width] = values[channel]
    return canvas


def feature_map_grid(maps: torch.Tensor, shared_scale: bool, per_row: int = MAPS_PER_ROW) -> go.Figure:
    """All channels of one layer's output as a grid of heatmaps; channel numbers on top of each."""
    count, height, width = maps.shape
    canvas = tile_maps(maps, per_row, shared_scale)
    per_row = min(per_row, count)
    colorbar = {"title": "value" if shared_scale else "0 = map's min, 1 = max", "thickness": 12}
    figure = go.Figure(go.Heatmap(
        z=canvas, colorscale=MAP_COLOURS, colorbar=colorbar, hoverongaps=False,
        hovertemplate="value %{z:.3f}<extra></extra>",
    ))
    label_step = max(1, count // 48)  # a label per map while they fit
    figure.update_layout(annotations=[
        {"x": (c % per_row) * (width + MAP_GAP), "y": (c // per_row) * (height + MAP_GAP),
         "text": str(c), "showarrow": False, "xanchor": "left", "yanchor": "top",
         "font": {"size": 9, "color": "white"}}
        for c in range(0, count, label_step)
    ])
    rows = canvas.shape[0]
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    cell = max(2.0, min(10.0, 900 / canvas.shape[1]))  # px per value on screen
    figure.update_layout(height=int(min(900, max(160, rows * cell + 20))),
                         margin={"l": 0, "r": 0, "t": 10, "b": 10})
    return figure


def single_map(values: torch.Tensor, title: str) -> go.Figure:
    """One (H, W) feature map large, with its values on hover."""
    figure = go.Figure(go.Heatmap(z=values.detach().float().numpy(), colorscale=MAP_COLOURS,
                                  colorbar={"thickness": 12},
                                  hovertemplate="row %{y}, column %{x}: %{z:.3f}<extra></extra>"))
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    figure.update_layout(height=300, title={"text": title, "font": {"size": 13}},
                         margin={"l": 0, "r": 0, "t": 36, "b": 0})
    return figure


def architecture_strip(summaries: Sequence[LayerSummary], input_shape: Sequence[int]) -> go.Figure:
    """The layers left to right as boxes labelled with their kind and output shape."""
    names = ["Input", *(s.kind for s in summaries)]
    shapes = [tuple(input_shape), *(s.output_shape for s in summaries)]
    params = [0, *(s.parameters for s in summaries)]
    x = list(range(len(names)))
    figure = go.Figure(go.Scatter(
        x=x, y=[0] * len(x), mode="markers+text", marker={
            "symbol": "square", "size": 46, "line": {"width": 1, "color": "#1d2433"},
            "color": [PART_COLOURS.get(n, "#b9c2d3") for n in names]},
        text=[n.replace("BatchNorm2d", "BatchNorm").replace("MaxPool2d", "MaxPool") for n in names],
        textposition="top center",
        customdata=[[" x ".join(map(str, s)), p] for s, p in zip(shapes, params, strict=True)],
        hovertemplate="%{text}<br>output %{customdata[0]}<br>%{customdata[1]:,} parameters<extra></extra>",
    ))
    figure.update_layout(annotations=[
        {"x": i, "y": 0, "yshift": -40, "text": " x ".join(map(str, shape)), "showarrow": False,
         "font": {"size": 11}} for i, shape in zip(x, shapes, strict=True)
    ])
    figure.update_xaxes(visible=False, range=[-0.6, len(x) - 0.4])
    figure.update_yaxes(visible=False, range=[-1, 1])
    figure.update_layout(height=150, margin={"l": 0, "r": 0, "t": 0, "b": 0}, showlegend=False)
    return figure
