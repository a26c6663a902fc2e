"""Plotly figures for the training page: learning curves, confusion matrix, first-layer filters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#ff7f0e"
RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def learning_curves(history: Sequence[dict], epochs: int | None = None) -> go.Figure:
    """Loss and accuracy, training vs validation, against epochs (one point per validation point)."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.08)
    x = [h["epoch"] for h in history]
    for column, key, label in ((1, "loss", "loss"), (2, "accuracy", "accuracy")):
        for prefix, name, color in (("train_", "training", TRAIN_COLOR), ("val_", "validation", VAL_COLOR)):
            values = [h.get(prefix + key) for h in history]
            if all(v is None for v in values):
                continue
            figure.add_trace(go.Scatter(
                x=x, y=values, mode="lines+markers", name=f"{name} {label}", line={"color": color},
                legendgroup=name, showlegend=column == 1,
                hovertemplate=f"epoch %{{x:.2f}}<br>{name} {label} %{{y:.4f}}<extra></extra>",
            ), row=1, col=column)
    figure.update_xaxes(title_text="epoch", range=[0, epochs] if epochs else None)
    figure.update_yaxes(range=[0, 1], row=1, col=2, tickformat=".0%")
    figure.update_layout(height=340, margin={"l": 40, "r": 10, "t": 40, "b": 40},
                         legend={"orientation": "h", "y": -0.25})
    return figure


def compare_runs(runs: Sequence[tuple[str, Sequence[dict]]]) -> go.Figure:
    """Validation (else training) accuracy of several runs on one chart, like a lab notebook."""
    figure = go.Figure()
    for i, (label, history) in enumerate(runs):
        use_val = any(h.get("val_accuracy") is not None for h in history)
        key = "val_accuracy" if use_val else "train_accuracy"
        figure.add_trace(go.Scatter(
            x=[h["epoch"] for h in history], y=[h.get(key) for h in history], mode="lines+markers",
            name=f"{label} ({'validation' if use_val else 'training'})",
            line={"color": RUN_COLORS[i % len(RUN_COLORS)]},
        ))
    figure.update_layout(height=320, xaxis_title="epoch", yaxis_title="accuracy", showlegend=True,
                         yaxis={"tickformat": ".0%"}, margin={"l": 40, "r": 10, "t": 20, "b": 40},
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
    figure.update_layout(height=420, xaxis={"title": "predicted", "side": "top", "type": "category"},
                         yaxis={"title": "true", "autorange": "reversed", "type": "category"},
                         margin={"l": 60, "r": 10, "t": 60, "b": 10})
    return figure


def filter_grid(filters: torch.Tensor, per_row: int = 8) -> go.Figure:
    """First-layer filters (out, C, k, k) scaled 0..1: grayscale for one channel, RGB for three."""
    count, channels, k, _ = filters.shape
    rows = (count + per_row - 1) // per_row
    gap = 1
    canvas = np.full((rows * (k + gap), per_row * (k + gap), 3), 255, dtype=np.uint8)  # white gaps
    for i in range(count):
        r, c = divmod(i, per_row)
        tile = filters[i].permute(1, 2, 0).numpy()  # (k, k, C)
        tile = np.repeat(tile, 3, axis=2) if channels == 1 else tile[:, :, :3]
        top, left = r * (k + gap), c * (k + gap)
        canvas[top:top + k, left:left + k] = (tile * 255).astype(np.uint8)
    figure = go.Figure(go.Image(z=canvas, hoverinfo="skip"))
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(height=max(120, 40 * rows + 20), margin={"l": 0, "r": 0, "t": 0, "b": 0})
    return figure
