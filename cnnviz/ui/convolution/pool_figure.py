"""The pooling animation of the convolution page: the window slides over the ReLU'd feature map,
its values show with the winner boxed (max) or their sum (average), and the pooled map fills in."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from cnnviz.convolution.pooling import MAX, PoolSteps
from cnnviz.ui.convolution.layout import (
    BOTTOM_TITLE_Y,
    CURSOR_COLOR,
    DOMAINS,
    EQUATION_FONT,
    FRAME_PREFIX,
    INPUT_AXES,
    MAX_TEXT_SIDE,
    OUTPUT_AXES,
    PAD_FILL,
    POOL_SCALE,
    PRODUCT_AXES,
    TEXT_AXES,
    TOP_TITLE_Y,
    WINDOW_COLOR,
    output_slot,
    padding_shapes,
    page_layout,
    written,
)
from cnnviz.ui.panels import Moving, animated_figure, fix_range, heatmap, squares, title

EQUATION_LINES = 3


def build_pooling_figure(
    steps: PoolSteps, positions: list[tuple[int, int]] | tuple[tuple[int, int], ...], height: int = 620
) -> go.Figure:
    """Pooling over channel 0 animated: the window, its values with the winner, the output filling in."""
    window_h, window_w = steps.window
    top, bottom, left, right = steps.pad
    padded = steps.padded[0]
    shown = np.where(np.isfinite(padded), padded, np.nan).astype(np.float32)  # -inf padding drawn empty
    out_h, out_w = steps.output.shape[1:]
    low, high = float(np.nanmin(shown)), float(np.nanmax(shown))
    high = high if high > low else low + 1.0  # an all-zero map is drawn in the colour of its lowest value
    frames = _pooling_frames(steps, positions)
    traces = [
        heatmap(
            shown, INPUT_AXES, POOL_SCALE, max(padded.shape) <= MAX_TEXT_SIDE, "input", zmin=low, zmax=high
        ),
        *_moving_traces(out_h, out_w, low, high),
    ]
    layout = page_layout(height)
    layout["xaxis2"]["visible"] = layout["yaxis2"]["visible"] = False
    layout["yaxis5"]["range"] = [EQUATION_LINES - 0.5, -0.5]
    fix_range(layout, "", *shown.shape)
    fix_range(layout, "3", out_h, out_w)
    fix_range(layout, "4", window_h, window_w)
    layout["shapes"] = [output_slot(out_h, out_w)] + padding_shapes(
        padded.shape[0] - top - bottom, padded.shape[1] - left - right, steps.pad, INPUT_AXES
    )
    mode = steps.mode  # "max" or "average", as the titles write it
    never_wins = " (padding in orange, never wins)" if any(steps.pad) and steps.mode == MAX else ""
    layout["annotations"] = [
        title(
            "feature map" + never_wins,
            DOMAINS[""][0],
            TOP_TITLE_Y,
        ),
        title(f"{mode}-pooled {out_h}x{out_w}", DOMAINS["3"][0], TOP_TITLE_Y),
        title("values in the window", DOMAINS["4"][0], BOTTOM_TITLE_Y),
        title(f"{mode} of the window", DOMAINS["5"][0], BOTTOM_TITLE_Y),
    ]
    labels = [f"({row},{col})" for row, col in positions]
    return animated_figure(traces, frames, labels, layout, FRAME_PREFIX)


def _pooling_frames(
    steps: PoolSteps, positions: list[tuple[int, int]] | tuple[tuple[int, int], ...]
) -> list[dict[str, dict]]:
    """Per frame, the new values of each moving trace (see :func:`_moving_traces`)."""
    window_h, window_w = steps.window
    out_h, out_w = steps.output.shape[1:]
    output = steps.output[0].astype(np.float32)
    values = steps.windows[0].astype(np.float32)  # (Ho, Wo, kH, kW)
    frames = []
    for row, col in positions:
        filled = np.full(out_h * out_w, np.nan, dtype=np.float32)
        done = row * out_w + col + 1
        filled[:done] = output.reshape(-1)[:done]
        window_x, window_y = squares(steps.tap_rows(row), steps.tap_cols(col), True)
        cursor_x, cursor_y = squares(np.array([row]), np.array([col]), True)
        window_values = np.where(np.isfinite(values[row, col]), values[row, col], np.nan).astype(np.float32)
        window_padding = np.where(np.isfinite(values[row, col]), np.nan, 0.0).astype(np.float32)
        if steps.mode == MAX:
            win_r, win_c = steps.winners[0, row, col]
            mark_x, mark_y = squares(
                np.array([win_r - row * steps.stride[0]]), np.array([win_c - col * steps.stride[1]]), True
            )
            padded = "padded " if any(steps.pad) else ""
            equation = [  # each line at most EQUATION_CHARS, so it fits at 800 px
                f"output ({row},{col}) = max = <b>{written(output[row, col])}</b>",
                f"winner (boxed): {padded}row {win_r}, col {win_c}",
                "backward: gradient to the winner only",
            ]
        else:
            mark_x, mark_y = [], []
            count = window_h * window_w
            total = float(steps.windows[0, row, col].sum())
            equation = [
                f"output ({row},{col}) = sum / {count}" + (", padding = 0" if any(steps.pad) else ""),
                f"  = {written(total)} / {count} = <b>{written(output[row, col])}</b>",
                f"backward: 1/{count} of the gradient each",
            ]
        assert len(equation) == EQUATION_LINES
        frames.append({
            "window": {"x": window_x, "y": window_y},
            "output": {"z": filled.reshape(out_h, out_w)},
            "cursor": {"x": cursor_x, "y": cursor_y},
            "window values": {"z": window_values},
            "window padding": {"z": window_padding},
            "winner": {"x": mark_x, "y": mark_y},
            "equation": {"text": equation},
        })
    return frames


def _moving_traces(out_h: int, out_w: int, low: float, high: float) -> list[Moving]:
    """The traces each frame updates, in drawing order: the window on the feature map, the pooled
    map filling in and its cursor, the window's values and padding cells, the winner, the equation."""
    line = {"mode": "lines", "hoverinfo": "skip"}
    return [
        Moving("window", "scatter", lambda v: go.Scatter(
            x=v["x"], y=v["y"], line={"color": WINDOW_COLOR, "width": 3},
            xaxis=INPUT_AXES[0], yaxis=INPUT_AXES[1], name="window", **line,
        )),
        Moving("output", "heatmap", lambda v: heatmap(
            v["z"], OUTPUT_AXES, POOL_SCALE, max(out_h, out_w) <= MAX_TEXT_SIDE, "output",
            zmin=low, zmax=high,
        )),
        Moving("cursor", "scatter", lambda v: go.Scatter(
            x=v["x"], y=v["y"], line={"color": WINDOW_COLOR, "width": 3},  # the window's colour
            xaxis=OUTPUT_AXES[0], yaxis=OUTPUT_AXES[1], name="current output", **line,
        )),
        Moving("window values", "heatmap", lambda v: heatmap(
            v["z"], PRODUCT_AXES, POOL_SCALE, True, "window values", zmin=low, zmax=high,
        )),
        # the window's padding cells: -inf, which never wins, drawn in the padding's orange
        Moving("window padding", "heatmap", lambda v: go.Heatmap(
            z=v["z"], xaxis=PRODUCT_AXES[0], yaxis=PRODUCT_AXES[1],
            colorscale=[[0.0, PAD_FILL], [1.0, PAD_FILL]], showscale=False, xgap=1, ygap=1,
            texttemplate="pad", textfont={"size": 11},
            hovertemplate="padding (-inf): never the maximum<extra></extra>", hoverongaps=False,
            name="window padding",
        )),
        Moving("winner", "scatter", lambda v: go.Scatter(
            x=v["x"], y=v["y"], line={"color": CURSOR_COLOR, "width": 4},
            xaxis=PRODUCT_AXES[0], yaxis=PRODUCT_AXES[1], name="winner", **line,
        )),
        Moving("equation", "scatter", lambda v: go.Scatter(
            x=[0.0] * EQUATION_LINES, y=list(range(EQUATION_LINES)), mode="text", text=v["text"],
            textposition="middle right", xaxis=TEXT_AXES[0], yaxis=TEXT_AXES[1],
            textfont={"size": EQUATION_FONT, "family": "monospace"}, hoverinfo="skip",
        )),
    ]
