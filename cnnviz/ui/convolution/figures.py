"""Plotly figures of the convolution page: the sliding kernel animated in the browser, and two maps
side by side (ReLU before/after, max-pooling gradient routing). The pooling animation is in
:mod:`cnnviz.ui.convolution.pool_figure`.

Each animation is one figure whose frames change only the traces that move (window outline,
output map, products grid, equation), as float32 arrays; the browser plays them with no
Streamlit rerun.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from cnnviz.convolution.steps import ConvSteps
from cnnviz.ui.convolution.figure_text import equation_lines, kernel_texts, product_texts
from cnnviz.ui.convolution.layout import (
    BOTTOM_TITLE_Y,
    CELL_FONT,
    DIVERGING,
    DOMAINS,
    EQUATION_FONT,
    FRAME_PREFIX,
    INPUT_AXES,
    KERNEL_AXES,
    MAX_TEXT_SIDE,
    OUTPUT_AXES,
    PRODUCT_AXES,
    TEXT_AXES,
    TOP_TITLE_Y,
    WINDOW_COLOR,
    denoised,
    output_slot,
    padding_shapes,
    page_layout,
)
from cnnviz.ui.panels import (
    GAP,
    Moving,
    animated_figure,
    fix_range,
    heatmap,
    label_tiles,
    png_source,
    squares,
    tile_grid,
    title,
)


def build_convolution_figure(
    steps: ConvSteps,
    positions: list[tuple[int, int]] | tuple[tuple[int, int], ...],
    *,
    input_rgb: np.ndarray | None = None,
    channel_names: list[str] | None = None,
    fill_reading_order: bool = True,
    height: int = 760,
    kernel_format: str = ".3~g",
) -> go.Figure:
    """The animated convolution: padded input with the moving window, kernels, output maps filling
    in, and for the current step the products grid and the "sum + bias = output" equation.

    Args:
        steps: every step of the convolution.
        positions: output cells (row, col) to show as frames, in reading order.
        input_rgb: (Hp, Wp, 3) uint8 picture of the padded input for RGB mode; None draws channel 0
            as a grayscale heatmap with its numbers.
        channel_names: labels of the input channels (e.g. ["R", "G", "B"]).
        fill_reading_order: each frame shows every output cell up to the current one in reading
            order (frames spread over the whole map); False shows only the cells of the frames so
            far (every step of a region).
        kernel_format: how the kernel's numbers are written (".2f" keeps learned weights short).
    """
    kernels, channels, kernel_h, kernel_w = steps.weight.shape
    padded_h, padded_w = steps.padded.shape[1:]
    out_h, out_w = steps.output_size
    top, bottom, left, right = steps.pad
    channel_names = channel_names or [f"ch {c + 1}" for c in range(channels)]

    kernel_tiles = tile_grid([[steps.weight[k, c] for c in range(channels)] for k in range(kernels)])
    output = denoised(steps.output).astype(np.float32)  # (K, Ho, Wo)
    out_tiles = tile_grid([[output[k] for k in range(kernels)]])  # the maps side by side
    products = steps.products.astype(np.float32)  # (K, Ho, Wo, C, kH, kW)
    frames = _convolution_frames(
        steps, output, products, out_tiles.origins[0], positions, fill_reading_order, channel_names
    )
    first = frames[0]
    kernel_trace, kernel_factor = _kernel_trace(steps, kernel_tiles.array, kernel_format)
    traces = [
        _input_trace(steps, input_rgb),
        *_rgb_hover_trace(steps, input_rgb, channel_names),
        kernel_trace,
        *_moving_traces(steps, output, products, first),
    ]

    layout = page_layout(height)
    layout["yaxis5"]["range"] = [len(first["equation"]["text"]) - 0.5, -0.5]
    fix_range(layout, "", padded_h, padded_w)
    fix_range(layout, "2", *kernel_tiles.array.shape)
    fix_range(layout, "3", *first["output"]["z"].shape)
    slots = [output_slot(out_h, out_w, left_col) for _, left_col in out_tiles.origins[0]]
    fix_range(layout, "4", *first["products"]["z"].shape)
    kernel_names = [f"k{k + 1}" for k in range(kernels)] if kernels > 1 else None
    slice_names = channel_names if channels > 1 else None
    kernel_shape = (kernel_h, kernel_w)
    label_tiles(layout, "2", kernel_tiles, kernel_shape, kernel_names, slice_names)
    label_tiles(layout, "4", kernel_tiles, kernel_shape, kernel_names, slice_names, rows_on_right=True)
    if kernels > 1:
        label_tiles(layout, "3", out_tiles, (out_h, out_w), None, [f"map {k + 1}" for k in range(kernels)])
    layout["shapes"] = slots + padding_shapes(
        padded_h - top - bottom, padded_w - left - right, steps.pad, INPUT_AXES
    )
    if not fill_reading_order:  # every step of a region: the region outlined on each output map
        layout["shapes"] += region_shapes(positions, [left_col for _, left_col in out_tiles.origins[0]])
    pad_text = "padding in orange" if any(steps.pad) else "no padding"
    layout["annotations"] = [
        title(f"input {padded_h - top - bottom}x{padded_w - left - right} ({pad_text})", DOMAINS[""][0],
              TOP_TITLE_Y),
        title(
            "kernel"
            + ("s" if kernels > 1 else "")
            + kernel_factor
            + (" (" + " | ".join(channel_names) + ")" if channels > 1 else ""),
            DOMAINS["2"][0],
            TOP_TITLE_Y,
        ),
        title(f"output {out_h}x{out_w}" + (f" x {kernels} maps" if kernels > 1 else ""), DOMAINS["3"][0],
              TOP_TITLE_Y),
        title("input, = input x weight" if "text" in first["products"] else "input x kernel, this step",
              DOMAINS["4"][0], BOTTOM_TITLE_Y),
        title("sum + bias = output", DOMAINS["5"][0], BOTTOM_TITLE_Y),
    ]
    labels = [f"({row},{col})" for row, col in positions]
    return animated_figure(traces, frames, labels, layout, FRAME_PREFIX)


def region_shapes(
    positions: list[tuple[int, int]] | tuple[tuple[int, int], ...], map_lefts: list[int]
) -> list[dict]:
    """A dashed outline, in the window's colour, around the output cells the frames visit, on each
    output map (``map_lefts``: the first column of each map in the tiled output panel)."""
    rows, cols = [row for row, _ in positions], [col for _, col in positions]
    return [
        {
            "type": "rect", "xref": OUTPUT_AXES[0], "yref": OUTPUT_AXES[1], "layer": "above",
            "x0": left + min(cols) - 0.5, "x1": left + max(cols) + 0.5,
            "y0": min(rows) - 0.5, "y1": max(rows) + 0.5,
            "line": {"color": WINDOW_COLOR, "width": 2, "dash": "dash"},
        }
        for left in map_lefts
    ]


def _input_trace(steps: ConvSteps, input_rgb: np.ndarray | None) -> go.Image | go.Heatmap:
    """The padded input: a picture in RGB mode, else channel 0 with its numbers while they fit."""
    if input_rgb is not None:
        return go.Image(source=png_source(input_rgb), xaxis="x", yaxis="y", name="input", hoverinfo="skip")
    padded = steps.padded[0]
    return heatmap(  # on a fixed 0..1 scale: a dark picture must look dark
        padded,
        INPUT_AXES,
        "gray",
        max(padded.shape) <= MAX_TEXT_SIDE,
        "input",
        zmin=min(0.0, float(padded.min())),
        zmax=max(1.0, float(padded.max())),
    )


def _rgb_hover_trace(
    steps: ConvSteps, input_rgb: np.ndarray | None, channel_names: list[str]
) -> list[go.Heatmap]:
    """Over an RGB picture, an invisible map whose hover gives each cell's R, G and B values (the
    numbers the kernel multiplies; a picture trace has no hover of its own)."""
    if input_rgb is None:
        return []
    values = steps.padded.transpose(1, 2, 0).astype(np.float32)  # (C, Hp, Wp) -> (Hp, Wp, C)
    named = ", ".join(f"{name} %{{customdata[{c}]:.3f}}" for c, name in enumerate(channel_names))
    return [go.Heatmap(
        z=np.zeros(values.shape[:2], dtype=np.float32), customdata=values, xaxis=INPUT_AXES[0],
        yaxis=INPUT_AXES[1], opacity=0.0, showscale=False, colorscale="gray", name="input values",
        hovertemplate="row %{y}, column %{x}: " + named + "<extra>input</extra>",
    )]


def _kernel_trace(
    steps: ConvSteps, tiled: np.ndarray, number_format: str = ".3~g"
) -> tuple[go.Heatmap, str]:
    """Every kernel's slices tiled (a row per kernel, a column per input channel), with the numbers
    written in when they fit at 800 px; and the factor the title names (" x 1/16") when the cells
    hold whole numbers of a fraction."""
    limit = float(np.abs(steps.weight).max()) or 1.0
    trace = heatmap(tiled, KERNEL_AXES, DIVERGING, False, "kernel", zmid=0.0, zmin=-limit, zmax=limit,
                    number_format=number_format)
    written_in = kernel_texts(tiled, number_format)
    if written_in is None:
        return trace, ""
    texts, factor, font = written_in
    trace.update(text=texts, texttemplate="%{text}", textfont={"size": font})
    return trace, factor


def _convolution_frames(
    steps: ConvSteps,
    output: np.ndarray,
    products: np.ndarray,
    map_origins: list[tuple[int, int]],
    positions: list[tuple[int, int]] | tuple[tuple[int, int], ...],
    fill_reading_order: bool,
    channel_names: list[str],
) -> list[dict[str, dict]]:
    """Per frame, the new values of each moving trace (see :func:`_moving_traces`)."""
    kernels, channels = steps.weight.shape[:2]
    out_h, out_w = steps.output_size
    one_box = steps.dilation == (1, 1)
    frames = []
    computed = np.zeros((out_h, out_w), dtype=bool)
    texts = product_texts(steps, positions)
    for (row, col), text in zip(positions, texts, strict=True):
        if fill_reading_order:
            computed.reshape(-1)[: row * out_w + col + 1] = True  # every cell up to this one
        else:
            computed[row, col] = True
        output_z = tile_grid([[np.where(computed, output[k], np.nan) for k in range(kernels)]]).array
        window_x, window_y = squares(steps.tap_rows(row), steps.tap_cols(col), one_box)
        cursor_x, cursor_y = [], []
        for map_top, map_left in map_origins:
            xs, ys = squares(np.array([map_top + row]), np.array([map_left + col]), True)
            cursor_x += [*xs, None]
            cursor_y += [*ys, None]
        product_z = tile_grid(
            [[products[k, row, col, c] for c in range(channels)] for k in range(kernels)]
        ).array
        frames.append({
            "window": {"x": window_x, "y": window_y},
            "output": {"z": output_z},
            "cursor": {"x": cursor_x, "y": cursor_y},
            "products": {"z": product_z, **({"text": text} if text else {})},
            "equation": {"text": equation_lines(steps, row, col, channel_names)},
        })
    return frames


def _moving_traces(
    steps: ConvSteps, output: np.ndarray, products: np.ndarray, first: dict[str, dict]
) -> list[Moving]:
    """The traces each frame updates, in drawing order: the window on the input, the output maps
    filling in, the cursor on the current output cell, this step's products and its equation."""
    kernels, channels, kernel_h, kernel_w = steps.weight.shape
    out_h, out_w = steps.output_size
    out_limit = float(np.abs(output).max()) or 1.0
    product_limit = float(np.abs(products).max()) or 1.0
    show_output_text = max(out_h, kernels * (out_w + GAP) - GAP) <= MAX_TEXT_SIDE
    lines = len(first["equation"]["text"])

    def products_trace(v: dict) -> go.Heatmap:
        trace = heatmap(v["z"], PRODUCT_AXES, DIVERGING, False, "product",
                        zmid=0.0, zmin=-product_limit, zmax=product_limit)
        if "text" in v:  # the input under each tap, and its product
            trace.update(text=v["text"], texttemplate="%{text}", textfont={"size": CELL_FONT},
                         hovertemplate="row %{y}, column %{x}: input, = product: %{text}<extra></extra>")
        return trace

    return [
        Moving("window", "scatter", lambda v: go.Scatter(
            x=v["x"], y=v["y"], mode="lines", line={"color": WINDOW_COLOR, "width": 3},
            xaxis=INPUT_AXES[0], yaxis=INPUT_AXES[1], hoverinfo="skip", name="window",
        )),
        Moving("output", "heatmap", lambda v: heatmap(
            v["z"], OUTPUT_AXES, DIVERGING, show_output_text, "output",
            zmid=0.0, zmin=-out_limit, zmax=out_limit,
        )),
        Moving("cursor", "scatter", lambda v: go.Scatter(
            # the window's colour: the cell it computes is outlined like the window that computes it
            x=v["x"], y=v["y"], mode="lines", line={"color": WINDOW_COLOR, "width": 3},
            xaxis=OUTPUT_AXES[0], yaxis=OUTPUT_AXES[1], hoverinfo="skip", name="current output",
        )),
        Moving("products", "heatmap", products_trace),
        Moving("equation", "scatter", lambda v: go.Scatter(
            x=[0.0] * lines, y=list(range(lines)), mode="text", text=v["text"],
            textposition="middle right", xaxis=TEXT_AXES[0], yaxis=TEXT_AXES[1],
            textfont={"size": EQUATION_FONT, "family": "monospace"}, hoverinfo="skip", name="equation",
        )),
    ]


def build_before_after_figure(
    before: np.ndarray, after: np.ndarray, titles: tuple[str, str], height: int = 360
) -> go.Figure:
    """Two maps side by side on one colour scale (ReLU before/after, gradient upstream/at input)."""
    before, after = denoised(before), denoised(after)
    limit = float(max(np.abs(before).max(), np.abs(after).max())) or 1.0
    show_text = max(*before.shape, *after.shape) <= MAX_TEXT_SIDE
    layout = page_layout(height)
    for suffix, domain in (("", [0.0, 0.47]), ("2", [0.53, 1.0])):
        layout[f"xaxis{suffix}"]["domain"] = domain
        layout[f"yaxis{suffix}"]["domain"] = [0.0, 0.9]
    for suffix in ("3", "4", "5"):
        layout.pop(f"xaxis{suffix}")
        layout.pop(f"yaxis{suffix}")
    layout["margin"] = {"l": 10, "r": 10, "t": 30, "b": 10}
    fix_range(layout, "", *before.shape)
    fix_range(layout, "2", *after.shape)
    layout["annotations"] = [title(titles[0], [0.0, 0.47], 0.92), title(titles[1], [0.53, 1.0], 0.92)]
    data = [
        heatmap(before, INPUT_AXES, DIVERGING, show_text, titles[0], zmid=0, zmin=-limit, zmax=limit),
        heatmap(after, KERNEL_AXES, DIVERGING, show_text, titles[1], zmid=0, zmin=-limit, zmax=limit),
    ]
    return go.Figure(data=data, layout=layout)
