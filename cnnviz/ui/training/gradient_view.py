"""Gradient flow: every layer's gradient and weight norms over a run, from its snapshots.

One line per layer that has weights, coloured from the input (light) to the output (dark), on a
log scale, so a deep plain net's vanishing gradients show as lines far below the last layers'.
"""

from __future__ import annotations

import plotly.colors
import plotly.graph_objects as go
import streamlit as st

from cnnviz.training.snapshots import RunSnapshots

COLORSCALE = "Viridis_r"  # light yellow at the input, dark purple at the output
HOW_TO_READ = (
    "Each line is one layer, light near the input and dark near the output; the scale is logarithmic, "
    "so each grid step is ten times more. In a deep plain net the first layers' gradients sit thousands "
    "of times below the last ones' (vanishing gradients: those layers hardly learn); with BatchNorm "
    "(`n` in the spec) every layer's output is rescaled and the lines stay close together, and a "
    "residual block (`R`) adds a shortcut the gradient passes through unchanged."
)


def gradient_flow_figure(run: RunSnapshots) -> go.Figure:
    """Gradient norms (left) and weight norms (right) of every layer with weights against the step.

    Gradients of step 0 (none taken yet) and of frozen layers (always 0) are left out: a log scale
    has no 0. BatchNorm layers are dotted, to tell them from the convolutions and dense layers."""
    steps = [s.step for s in run.snapshots]
    count = len(run.layers)
    shades = plotly.colors.sample_colorscale(COLORSCALE, [i / max(1, count - 1) for i in range(count)])
    traces = []
    for i, name in enumerate(run.layers):
        grads = [float(s.grad_norms[i]) for s in run.snapshots]
        weights = [float(s.weight_norms[i]) for s in run.snapshots]
        style = {"color": shades[i], "width": 1.5 if "BatchNorm" in name else 2.5,
                 "dash": "dot" if "BatchNorm" in name else "solid"}
        learned = [(x, g) for x, g in zip(steps, grads, strict=True) if g > 0]
        if learned:
            traces.append({
                "type": "scatter", "x": [x for x, _ in learned], "y": [g for _, g in learned],
                "mode": "lines+markers", "marker": {"size": 4}, "line": style, "name": name,
                "legendgroup": name, "xaxis": "x", "yaxis": "y",
                "hovertemplate": f"{name}<br>step %{{x}}<br>gradient norm %{{y:.3g}}<extra></extra>",
            })
        traces.append({
            "type": "scatter", "x": steps, "y": weights, "mode": "lines", "line": style, "name": name,
            "legendgroup": name, "showlegend": not learned, "xaxis": "x2", "yaxis": "y2",
            "hovertemplate": f"{name}<br>step %{{x}}<br>weight norm %{{y:.3g}}<extra></extra>",
        })
    title = {"font": {"size": 15}, "showarrow": False, "xanchor": "center", "yanchor": "bottom",
             "xref": "paper", "yref": "paper", "y": 1.0}
    return go.Figure({"data": traces, "layout": {
        "height": 380, "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
        "legend": {"orientation": "v", "font": {"size": 11}},
        "xaxis": {"domain": [0, 0.46], "anchor": "y", "title": {"text": "step"}},
        "yaxis": {"anchor": "x", "type": "log", "exponentformat": "power"},
        "xaxis2": {"domain": [0.54, 1], "anchor": "y2", "title": {"text": "step"}},
        "yaxis2": {"anchor": "x2", "type": "log", "exponentformat": "power"},
        "annotations": [{**title, "text": "Gradient norm per layer", "x": 0.23},
                        {**title, "text": "Weight norm per layer", "x": 0.77}],
    }})


def gradient_flow_block(run: RunSnapshots | None, key: str) -> None:
    """The gradient flow of a run with snapshots (nothing without them), with how to read it."""
    if run is None or len(run.snapshots) < 2 or not run.layers:
        return
    st.markdown("**Gradient flow**: how strongly each layer was told to change, step by step.")
    st.plotly_chart(gradient_flow_figure(run), key=key, config={"displayModeBar": False})
    st.caption(HOW_TO_READ)
