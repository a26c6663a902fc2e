"""Plotly figures for the training page: learning curves, confusion matrix, first-layer filters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from cnnviz.training.progress import HistoryPoint
from cnnviz.ui.panels import in_rows, tile_grid

TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#ff7f0e"
RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


MARK_COLOR = "#5a6275"


def learning_curves(
    history: Sequence[HistoryPoint], epochs: int | None = None,
    window_losses: Sequence[tuple[float, float]] = (), mark_epoch: float | None = None,
) -> go.Figure:
    """Loss and accuracy, training vs validation, against epochs (one point per validation point), and
    under them a thin line of ``window_losses``, (epoch, mean training loss of a few steps) pairs: the
    live view has them from the first steps on, long before the first validation point.
    ``mark_epoch`` draws a dashed vertical line at that moment on both charts (the time slider's).

    Built as one dict (two x/y axis pairs side by side) rather than with ``make_subplots``: the live
    view redraws it every two seconds while a run trains, and this is many times cheaper."""
    x = [h.epoch for h in history]
    curves = (  # (axis, label, name, color, values)
        ("", "loss", "training", TRAIN_COLOR, [h.train_loss for h in history]),
        ("", "loss", "validation", VAL_COLOR, [h.val_loss for h in history]),
        ("2", "accuracy", "training", TRAIN_COLOR, [h.train_accuracy for h in history]),
        ("2", "accuracy", "validation", VAL_COLOR, [h.val_accuracy for h in history]),
    )
    traces = []
    if window_losses:
        traces.append({
            "type": "scatter", "x": [e for e, _ in window_losses], "y": [v for _, v in window_losses],
            "mode": "lines", "name": "training loss, every few steps",
            "line": {"color": TRAIN_COLOR, "width": 1}, "opacity": 0.45, "xaxis": "x", "yaxis": "y",
            "hovertemplate": "epoch %{x:.3f}<br>training loss %{y:.4f}<extra></extra>",
        })
    for axis, label, name, color, values in curves:
        if all(v is None for v in values):
            continue
        traces.append({
            "type": "scatter", "x": x, "y": values, "mode": "lines+markers", "name": f"{name} {label}",
            "line": {"color": color}, "legendgroup": name, "showlegend": axis == "",
            "xaxis": "x" + axis, "yaxis": "y" + axis,
            "hovertemplate": f"epoch %{{x:.2f}}<br>{name} {label} %{{y:.4f}}<extra></extra>",
        })
    x_range = [0, epochs] if epochs else None
    title = {"font": {"size": 16}, "showarrow": False, "xanchor": "center", "yanchor": "bottom",
             "xref": "paper", "yref": "paper", "y": 1.0}
    marks = [] if mark_epoch is None else [
        {"type": "line", "xref": axis, "yref": "paper", "x0": mark_epoch, "x1": mark_epoch, "y0": 0, "y1": 1,
         "line": {"color": MARK_COLOR, "width": 2, "dash": "dash"}} for axis in ("x", "x2")]
    return go.Figure({"data": traces, "layout": {
        "height": 340, "shapes": marks, "margin": {"l": 40, "r": 45, "t": 40, "b": 40},
        "legend": {"orientation": "h", "y": -0.25},
        "xaxis": {"domain": [0, 0.42], "anchor": "y", "title": {"text": "epoch"}, "range": x_range},
        "yaxis": {"anchor": "x"},
        "xaxis2": {"domain": [0.54, 1], "anchor": "y2", "title": {"text": "epoch"}, "range": x_range},
        # On the right: between the two plots its labels ran over the loss plot in a narrow column.
        "yaxis2": {"anchor": "x2", "range": [0, 1], "tickformat": ".0%", "side": "right"},
        "annotations": [{**title, "text": "Loss", "x": 0.23}, {**title, "text": "Accuracy", "x": 0.77}],
    }})


# What the run comparison can overlay: its label -> (the HistoryPoint field, the one it falls back on
# for a run that held nothing out for validation).
COMPARED = {
    "validation accuracy": ("val_accuracy", "train_accuracy"),
    "validation loss": ("val_loss", "train_loss"),
    "training accuracy": ("train_accuracy", "train_accuracy"),
    "training loss": ("train_loss", "train_loss"),
}


def compare_runs(runs: Sequence[tuple[str, Sequence[HistoryPoint]]], shown: str = "validation accuracy",
                 ) -> go.Figure:
    """One number of several runs on one chart, like a lab notebook: ``shown`` is a :data:`COMPARED`
    label; a run without validation points shows its training number, and says so."""
    field, fallback = COMPARED[shown]
    figure = go.Figure()
    for i, (label, history) in enumerate(runs):
        use = field if any(getattr(h, field) is not None for h in history) else fallback
        figure.add_trace(go.Scatter(
            x=[h.epoch for h in history], y=[getattr(h, use) for h in history], mode="lines+markers",
            name=label if use == field else f"{label} (training)",
            line={"color": RUN_COLORS[i % len(RUN_COLORS)]},
        ))
    # ".3~%": 9.5%, never 10% twice on a narrow range
    yaxis = {"tickformat": ".3~%"} if "accuracy" in shown else {}
    figure.update_layout(height=320, xaxis_title="epoch", yaxis_title=shown, showlegend=True,
                         yaxis=yaxis, margin={"l": 40, "r": 10, "t": 20, "b": 40},
                         legend={"orientation": "h", "y": -0.3})
    return figure


def confusion_heatmap(matrix: torch.Tensor, classes: Sequence[str]) -> go.Figure:
    """Counts with the true class down the side and the predicted class along the top."""
    counts = matrix.numpy()
    figure = go.Figure(go.Heatmap(
        z=counts, x=list(classes), y=list(classes), colorscale="Blues", showscale=False,
        text=counts, texttemplate="%{text}",
        hovertemplate="true %{y}, predicted %{x}: %{z} images<extra></extra>",
    ))
    # dtick 1: every class named; in a narrow column Plotly otherwise names every second or third
    figure.update_layout(height=420,
                         xaxis={"title": "predicted", "side": "top", "type": "category", "dtick": 1},
                         yaxis={"title": "true", "autorange": "reversed", "type": "category", "dtick": 1},
                         margin={"l": 60, "r": 10, "t": 60, "b": 10})
    return figure


def filter_grid(filters: torch.Tensor, per_row: int = 8) -> go.Figure:
    """First-layer filters (out, C, k, k) scaled 0..1: grayscale for one channel, RGB for three."""
    channels = filters.shape[1]
    tiles = []
    for tile in filters.permute(0, 2, 3, 1).numpy():  # (k, k, C) each
        tile = np.repeat(tile, 3, axis=2) if channels == 1 else tile[:, :, :3]
        tiles.append((tile * 255).astype(np.uint8))
    grid = in_rows(tiles, per_row)
    # white gaps, also after the last row and column
    canvas = tile_grid(grid, fill=255, dtype=np.uint8, columns=per_row, gap_after=True).array
    rows = len(grid)
    return go.Figure({
        "data": [{"type": "image", "z": canvas, "hoverinfo": "skip"}],
        "layout": {"height": max(120, 40 * rows + 20), "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
                   "xaxis": {"visible": False}, "yaxis": {"visible": False}},
    })
