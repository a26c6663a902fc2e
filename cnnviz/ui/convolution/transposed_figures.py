"""Figures of the transposed-convolution lesson: the page's sliding-window animation over the
stretched input (inserted zeros greyed, padding orange, input cells labelled with their own row and
column), and the scatter view, where every input cell pastes its value times the kernel.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from cnnviz.convolution.transposed import INPUT, INSERTED, ScatterSteps, TransposedSteps
from cnnviz.ui.convolution.figures import build_convolution_figure
from cnnviz.ui.convolution.layout import (
    DIVERGING,
    INPUT_AXES,
    KERNEL_AXES,
    MAX_TEXT_SIDE,
    OUTPUT_AXES,
    WINDOW_COLOR,
    output_slot,
    page_layout,
)
from cnnviz.ui.panels import LABEL_FONT, Moving, animated_figure, fix_range, heatmap, squares, title

INSERTED_FILL = "rgba(120, 130, 150, 0.75)"  # slate over the black zero: unlike the orange padding
INPUT_EDGE = "#2f6fdf"
SCATTER_PREFIX = "input cell (row, col): "
SCATTER_DOMAINS = {"": [0.0, 0.26], "2": [0.31, 0.64], "3": [0.69, 1.0]}


def cell_kind_shapes(steps: TransposedSteps) -> list[dict]:
    """A slate square over every inserted zero of the stretched input, a blue frame round every input
    cell (the padding has its orange strips already)."""
    ref = {"xref": INPUT_AXES[0], "yref": INPUT_AXES[1], "layer": "above"}
    looks = {INSERTED: {"fillcolor": INSERTED_FILL, "line": {"width": 0}},
             INPUT: {"line": {"color": INPUT_EDGE, "width": 2}}}
    shapes = []
    for kind, look in looks.items():
        rows, cols = np.nonzero(steps.kinds == kind)
        shapes += [
            {"type": "rect", "x0": c - 0.4, "y0": r - 0.4, "x1": c + 0.4, "y1": r + 0.4, **look, **ref}
            if kind == INPUT else
            {"type": "rect", "x0": c - 0.5, "y0": r - 0.5, "x1": c + 0.5, "y1": r + 0.5, **look, **ref}
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        ]
    return shapes


def _source_ticks(sources: np.ndarray) -> dict:
    """Axis ticks naming the input row (or column) each padded row holds; the zeros get none."""
    places = np.nonzero(sources >= 0)[0]
    return {"showticklabels": True, "tickvals": places.tolist(),
            "ticktext": [str(int(sources[p])) for p in places], "tickfont": LABEL_FONT}


def build_transposed_figure(steps: TransposedSteps, positions: list[tuple[int, int]]) -> go.Figure:
    """The page's convolution animation of the stretched, padded input, with the flipped kernel; the
    inserted zeros greyed and the input cells' own rows and columns along the input's axes."""
    figure = build_convolution_figure(steps.steps, positions)
    height, width = steps.sizes
    figure.layout.shapes = (*figure.layout.shapes, *cell_kind_shapes(steps))
    figure.layout.xaxis.update(**_source_ticks(steps.source_cols))
    figure.layout.yaxis.update(**_source_ticks(steps.source_rows))
    padded_h, padded_w = steps.steps.padded.shape[1:]
    rows, cols = steps.image.shape[1:]
    annotations = list(figure.layout.annotations)
    annotations[0].text = f"<b>input {rows}x{cols} → {padded_h}x{padded_w}</b>"  # short: 800 px wide
    annotations[1].text = "<b>flipped kernel</b>"
    figure.layout.annotations = annotations
    return figure


def _scatter_frames(scatter: ScatterSteps) -> tuple[list[dict], list[str]]:
    """One frame per input cell in reading order (its paste and the running total), then the bias."""
    _, rows, cols = scatter.image.shape
    out_h, out_w = scatter.output.shape[1:]
    one_box = scatter.sizes[0].dilation == 1 == scatter.sizes[1].dilation
    frames, labels = [], []
    for index, (i, j) in enumerate(np.ndindex(rows, cols)):
        pasted = scatter.contributions[0, i, j, 0]  # (Ho, Wo)
        out_rows, out_cols = scatter.footprint(i, j)
        mask = np.zeros((out_h, out_w), dtype=bool)
        inside_r = out_rows[(out_rows >= 0) & (out_rows < out_h)]
        inside_c = out_cols[(out_cols >= 0) & (out_cols < out_w)]
        mask[np.ix_(inside_r, inside_c)] = True
        # the box shows what lands inside the output; taps the padding crops away are not drawn
        box_x, box_y = squares(inside_r, inside_c, one_box) if mask.any() else ([], [])
        cell_x, cell_y = squares(np.array([i]), np.array([j]), True)
        frames.append({
            "cell": {"x": cell_x, "y": cell_y},
            "paste": {"z": np.where(mask, pasted, np.nan)},
            "box": {"x": box_x, "y": box_y},
            "box3": {"x": box_x, "y": box_y},
            "total": {"z": scatter.running_total(index + 1)[0]},
        })
        labels.append(f"({i},{j}) = {scatter.image[0, i, j]:.3g}")
    frames.append({
        "cell": {"x": [], "y": []},
        "paste": {"z": np.full((out_h, out_w), float(scatter.bias[0]))},
        "box": {"x": [], "y": []},
        "box3": {"x": [], "y": []},
        "total": {"z": scatter.output[0]},
    })
    labels.append(f"+ bias {float(scatter.bias[0]):.3g}")
    return frames, labels


def build_scatter_figure(scatter: ScatterSteps, height: int = 470) -> go.Figure:
    """Input | this cell's value x kernel, pasted | the output so far; one frame per input cell.

    Args:
        scatter: a one-channel, one-map transposed convolution's contributions.
    """
    _, rows, cols = scatter.image.shape
    out_h, out_w = scatter.output.shape[1:]
    frames, labels = _scatter_frames(scatter)
    limit = float(np.abs(scatter.output).max()) or 1.0
    paste_limit = float(np.abs(scatter.contributions).max()) or 1.0
    image = scatter.image[0]
    show_out = max(out_h, out_w) <= MAX_TEXT_SIDE
    outline = {"mode": "lines", "hoverinfo": "skip"}
    traces = [
        heatmap(image, INPUT_AXES, "gray", True, "input",
                zmin=min(0.0, float(image.min())), zmax=max(1.0, float(image.max()))),
        Moving("cell", "scatter", lambda v: go.Scatter(
            x=v["x"], y=v["y"], line={"color": WINDOW_COLOR, "width": 3}, xaxis="x", yaxis="y",
            name="input cell", **outline)),
        Moving("paste", "heatmap", lambda v: heatmap(
            v["z"], KERNEL_AXES, DIVERGING, show_out, "value x kernel", zmid=0.0, zmin=-paste_limit,
            zmax=paste_limit)),
        Moving("box", "scatter", lambda v: go.Scatter(
            x=v["x"], y=v["y"], line={"color": WINDOW_COLOR, "width": 3}, xaxis="x2", yaxis="y2",
            name="kernel footprint", **outline)),
        Moving("total", "heatmap", lambda v: heatmap(
            v["z"], OUTPUT_AXES, DIVERGING, show_out, "output so far", zmid=0.0, zmin=-limit, zmax=limit)),
        Moving("box3", "scatter", lambda v: go.Scatter(
            x=v["x"], y=v["y"], line={"color": WINDOW_COLOR, "width": 3}, xaxis="x3", yaxis="y3",
            name="kernel footprint", **outline)),
    ]
    layout = page_layout(height)
    for suffix in ("4", "5"):
        layout.pop(f"xaxis{suffix}")
        layout.pop(f"yaxis{suffix}")
    for suffix, domain in SCATTER_DOMAINS.items():
        layout[f"xaxis{suffix}"]["domain"] = domain
        layout[f"yaxis{suffix}"]["domain"] = [0.0, 0.9]
    layout["margin"] = {"l": 10, "r": 10, "t": 30, "b": 130}
    fix_range(layout, "", rows, cols)
    fix_range(layout, "2", out_h, out_w)
    fix_range(layout, "3", out_h, out_w)
    layout["annotations"] = [
        title("input", SCATTER_DOMAINS[""], 0.92),
        title("value x kernel", SCATTER_DOMAINS["2"], 0.92),
        title("sum so far", SCATTER_DOMAINS["3"], 0.92),
    ]
    layout["shapes"] = [{**output_slot(out_h, out_w), "xref": xref, "yref": yref}
                        for xref, yref in (KERNEL_AXES, OUTPUT_AXES)]
    return animated_figure(traces, frames, labels, layout, SCATTER_PREFIX)
