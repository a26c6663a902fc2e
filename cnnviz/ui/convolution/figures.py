"""Plotly figures of the convolution page: the sliding kernel animated in the browser, pooling,
ReLU before/after and max-pooling gradient routing.

Each animation is one figure whose frames change only the traces that move (window outline,
output map, products grid, equation), as float32 arrays; the browser plays them with no
Streamlit rerun.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from cnnviz.convolution.pooling import PoolSteps
from cnnviz.convolution.steps import ConvSteps

FRAME_MS = 450  # how long one step stays on screen while playing
MAX_TEXT_SIDE = 12  # write the numbers into the cells of a map while it is at most 12 cells across
PAD_FILL = "rgba(255, 170, 60, 0.55)"
SLOT_FILL = "#eef0f4"  # where output cells will appear
PAD_EDGE = "rgba(220, 110, 0, 0.9)"
WINDOW_COLOR = "#e8175d"
CURSOR_COLOR = "#00a676"
DIVERGING = "RdBu_r"
POOL_SCALE = "Blues"  # no green in it: the green cursor and winner box show on every cell
MAX_SLIDER_LABELS = 25
MAX_PRODUCT_TEXT_ROWS = 7
MAX_KERNEL_TEXT_SIDE = 7  # the kernel panel is narrow: numbers in the cells only while they fit
MAX_WRITTEN_TERMS = 9  # write every product of the sum out up to a 3x3 one-channel kernel
GAP = 1  # empty cells between tiled blocks (channels, kernels, feature maps)

# Axis slots of the figure: (x domain, y domain)
INPUT_AXES = ("x", "y")
KERNEL_AXES = ("x2", "y2")
OUTPUT_AXES = ("x3", "y3")
PRODUCT_AXES = ("x4", "y4")
TEXT_AXES = ("x5", "y5")


def typed_array(values) -> dict | list:
    """Numbers (None for a gap) -> plotly.js's typed-array spec: float32 bytes in base64.

    This is the compact form Plotly itself writes for numpy arrays (4 bytes a number instead of
    up to 20 characters), built directly since the frames skip Plotly's property machinery.
    """
    array = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    if array.size == 0:
        return []
    spec = {"dtype": "f4", "bdata": base64.b64encode(array.tobytes()).decode("ascii")}
    if array.ndim > 1:
        spec["shape"] = ", ".join(str(n) for n in array.shape)
    return spec


def decode_typed_array(spec: dict | list) -> np.ndarray:
    """The inverse of :func:`typed_array` (NaN where a gap was)."""
    if not isinstance(spec, dict):
        return np.asarray(spec, dtype=np.float64)
    values = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]))
    shape = spec.get("shape")
    return values.reshape([int(n) for n in shape.split(",")]) if shape else values


def _encode_frames(frames: list[dict]) -> list[dict]:
    """Every coordinate and colour array of the frames as a typed array."""
    for frame in frames:
        frame["data"] = [
            {key: typed_array(value) if key in ("x", "y", "z") else value for key, value in trace.items()}
            for trace in frame["data"]
        ]
    return frames


class AnimatedFigure(go.Figure):
    """A Plotly figure whose animation frames stay plain dicts of numpy arrays.

    Plotly validates a frame property by property (about a millisecond per array), which made
    building and serialising a 64-frame figure cost several hundred ms per page rerun. The data
    and layout here are validated as usual; the frames are built by this module from the same
    trace types, and the tests pass the whole figure through Plotly's validator.
    """

    def __init__(self, data: list, layout: dict, frames: list[dict]) -> None:
        super().__init__(data=data, layout=layout)
        self._animation_frames = _encode_frames(frames)

    @property
    def frame_dicts(self) -> list[dict]:
        """The frames: {"name", "traces", "data": [partial trace dicts]}."""
        return self._animation_frames

    def to_dict(self) -> dict:
        figure = super().to_dict()
        figure["frames"] = self._animation_frames
        return figure


@dataclass(frozen=True)
class Tiling:
    """Where each block sits in a tiled 2-D array (rows of blocks separated by NaN gaps)."""

    array: np.ndarray  # float32, NaN in the gaps
    origins: list[list[tuple[int, int]]]  # [block row][block col] -> (row, col) of the block's corner


def tile_blocks(blocks: list[list[np.ndarray]], gap: int = GAP) -> Tiling:
    """Lay 2-D blocks of one shape out in a grid, NaN between them."""
    block_h, block_w = blocks[0][0].shape
    rows, cols = len(blocks), len(blocks[0])
    array = np.full((rows * (block_h + gap) - gap, cols * (block_w + gap) - gap), np.nan, dtype=np.float32)
    origins = []
    for r, block_row in enumerate(blocks):
        origins.append([])
        for c, block in enumerate(block_row):
            top, left = r * (block_h + gap), c * (block_w + gap)
            array[top : top + block_h, left : left + block_w] = block
            origins[-1].append((top, left))
    return Tiling(array, origins)


def _label_tiles(
    layout: dict, suffix: str, tiling: Tiling, block_shape: tuple[int, int],
    row_names: list[str] | None, col_names: list[str] | None, rows_on_right: bool = False,
) -> None:
    """Name the blocks of a tiled panel along its axes ("k1", "k2" down the side, "R G B" along
    the bottom), so several kernels or channels stay tellable apart when their cells carry no numbers."""
    block_h, block_w = block_shape
    font = {"size": 11, "color": "#5a6275"}
    if row_names:
        centres = [row[0][0] + (block_h - 1) / 2 for row in tiling.origins]
        layout[f"yaxis{suffix}"].update(showticklabels=True, tickvals=centres, ticktext=row_names,
                                        tickfont=font, side="right" if rows_on_right else "left")
    if col_names:
        centres = [left + (block_w - 1) / 2 for _, left in tiling.origins[0]]
        layout[f"xaxis{suffix}"].update(showticklabels=True, tickvals=centres, ticktext=col_names,
                                        tickfont=font)


def _squares(rows: np.ndarray, cols: np.ndarray, one_box: bool) -> tuple[list, list]:
    """Outline of the cells at rows x cols: one rectangle, or one square per cell (dilated windows)."""
    if one_box:
        top, bottom, left, right = rows[0] - 0.5, rows[-1] + 0.5, cols[0] - 0.5, cols[-1] + 0.5
        return [left, right, right, left, left], [top, top, bottom, bottom, top]
    xs, ys = [], []
    for r in rows:
        for c in cols:
            xs += [c - 0.5, c + 0.5, c + 0.5, c - 0.5, c - 0.5, None]
            ys += [r - 0.5, r - 0.5, r + 0.5, r + 0.5, r - 0.5, None]
    return xs, ys


def _png_source(rgb: np.ndarray) -> str:
    """(H, W, 3) uint8 -> a PNG data URI, far smaller than the pixels as JSON."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _heatmap(
    z: np.ndarray,
    axes: tuple[str, str],
    colorscale: str,
    show_text: bool,
    name: str,
    zmid: float | None = None,
    zmin: float | None = None,
    zmax: float | None = None,
    number_format: str = ".3~g",
) -> go.Heatmap:
    text_kwargs = {"texttemplate": f"%{{z:{number_format}}}", "textfont": {"size": 11}} if show_text else {}
    return go.Heatmap(
        z=np.asarray(z, dtype=np.float32),
        xaxis=axes[0],
        yaxis=axes[1],
        colorscale=colorscale,
        showscale=False,
        zmid=zmid,
        zmin=zmin,
        zmax=zmax,
        name=name,
        xgap=1,
        ygap=1,
        hovertemplate="row %{y}, column %{x}: %{z:.4g}<extra>" + name + "</extra>",
        hoverongaps=False,
        **text_kwargs,
    )


def _padding_shapes(
    height: int, width: int, pad: tuple[int, int, int, int], axes: tuple[str, str]
) -> list[dict]:
    """Translucent orange strips over the zero padding and a dashed line around the real input."""
    top, bottom, left, right = pad
    padded_h, padded_w = height + top + bottom, width + left + right
    ref = {"xref": axes[0], "yref": axes[1], "layer": "above"}
    strips = [
        (-0.5, -0.5, padded_w - 0.5, top - 0.5),  # top
        (-0.5, top + height - 0.5, padded_w - 0.5, padded_h - 0.5),  # bottom
        (-0.5, top - 0.5, left - 0.5, top + height - 0.5),  # left
        (left + width - 0.5, top - 0.5, padded_w - 0.5, top + height - 0.5),  # right
    ]
    shapes = [
        {
            "type": "rect",
            "x0": x0,
            "y0": y0,
            "x1": x1,
            "y1": y1,
            "fillcolor": PAD_FILL,
            "line": {"width": 0},
            **ref,
        }
        for x0, y0, x1, y1 in strips
        if x1 > x0 and y1 > y0
    ]
    if any(pad):
        shapes.append(
            {
                "type": "rect",
                "x0": left - 0.5,
                "y0": top - 0.5,
                "x1": left + width - 0.5,
                "y1": top + height - 0.5,
                "line": {"color": PAD_EDGE, "width": 2, "dash": "dash"},
                **ref,
            }
        )
    return shapes


def _animation_controls(frame_names: list[str], labels: list[str], prefix: str) -> dict:
    """Play/pause buttons and a step slider, all handled by plotly.js in the browser."""
    play = {
        "frame": {"duration": FRAME_MS, "redraw": True},
        "fromcurrent": True,
        "transition": {"duration": 0},
        "mode": "immediate",
    }
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate", "transition": {"duration": 0}}
    return {
        "updatemenus": [
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": -0.04,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"t": 0, "r": 10},
                "showactive": False,
                "buttons": [
                    {"label": "▶ Play", "method": "animate", "args": [None, play]},
                    {"label": "❚❚ Pause", "method": "animate", "args": [[None], pause]},
                ],
            }
        ],
        "sliders": [
            {  # under the buttons, not beside them: on a narrow screen they would cover its start
                "active": 0,
                "x": 0.0,
                "len": 1.0,
                "y": -0.02,
                "yanchor": "top",
                "pad": {"t": 44},
                "currentvalue": {
                    "prefix": prefix, "xanchor": "right", "font": {"size": 13, "color": "#1d2433"},
                },
                # with many steps the tick labels would overlap: the current value says where we are
                "font": {"color": "rgba(0,0,0,0)"} if len(frame_names) > MAX_SLIDER_LABELS else {},
                "steps": [
                    {
                        "label": label,
                        "method": "animate",
                        "args": [
                            [name],
                            {
                                "frame": {"duration": 0, "redraw": True},
                                "mode": "immediate",
                                "transition": {"duration": 0},
                            },
                        ],
                    }
                    for name, label in zip(frame_names, labels, strict=True)
                ],
            }
        ],
    }


def _fix_range(layout: dict, suffix: str, height: int, width: int) -> None:
    """Pin an image axis pair to the whole map, so cells not computed yet (NaN) still take their place."""
    layout[f"xaxis{suffix}"].update(range=[-0.5, width - 0.5], autorange=False)
    layout[f"yaxis{suffix}"].update(range=[height - 0.5, -0.5], autorange=False)


def _base_layout(height: int) -> dict:
    image_axis = {
        "showgrid": False,
        "zeroline": False,
        "constrain": "domain",
        "ticks": "",
        "showticklabels": False,
    }
    layout = {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 130},
        "plot_bgcolor": "white",
        "showlegend": False,
        "hovermode": "closest",
    }
    domains = {
        "": ([0.0, 0.36], [0.44, 1.0]),
        "2": ([0.40, 0.58], [0.44, 1.0]),
        "3": ([0.62, 1.0], [0.44, 1.0]),
        "4": ([0.0, 0.36], [0.0, 0.34]),
        "5": ([0.40, 1.0], [0.0, 0.34]),
    }
    for suffix, (x_domain, y_domain) in domains.items():
        layout[f"xaxis{suffix}"] = {**image_axis, "domain": x_domain, "anchor": f"y{suffix}"}
        layout[f"yaxis{suffix}"] = {
            **image_axis,
            "domain": y_domain,
            "anchor": f"x{suffix}",
            "autorange": "reversed",
            "scaleanchor": f"x{suffix}",
        }
    layout["yaxis5"] = {
        **image_axis,
        "domain": domains["5"][1],
        "anchor": "x5",
        "range": [-0.5, 6.5],
        "autorange": False,
        "visible": False,
    }
    layout["xaxis5"] = {
        **image_axis,
        "domain": domains["5"][0],
        "anchor": "y5",
        "range": [0, 1],
        "visible": False,
    }
    return layout


def _title(text: str, x_domain: list[float], y: float) -> dict:
    return {
        "text": f"<b>{text}</b>",
        "xref": "paper",
        "yref": "paper",
        "x": sum(x_domain) / 2,
        "y": y,
        "xanchor": "center",
        "yanchor": "bottom",
        "showarrow": False,
        "font": {"size": 13},
    }


def _output_slot(out_h: int, out_w: int, left_col: int = 0) -> dict:
    """A light rectangle under an output map, so its final size shows before its cells fill in."""
    return {
        "type": "rect",
        "xref": "x3",
        "yref": "y3",
        "layer": "below",
        "line": {"width": 0},
        "fillcolor": SLOT_FILL,
        "x0": left_col - 0.5,
        "y0": -0.5,
        "x1": left_col + out_w - 0.5,
        "y1": out_h - 0.5,
    }


def build_convolution_figure(
    steps: ConvSteps,
    positions: list[tuple[int, int]],
    *,
    input_rgb: np.ndarray | None = None,
    channel_names: list[str] | None = None,
    fill_reading_order: bool = True,
    height: int = 760,
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
    """
    kernels, channels, kernel_h, kernel_w = steps.weight.shape
    padded_h, padded_w = steps.padded.shape[1:]
    out_h, out_w = steps.output_size
    top, bottom, left, right = steps.pad
    channel_names = channel_names or [f"ch {c + 1}" for c in range(channels)]
    one_box = steps.dilation == (1, 1)

    # static: the input, its padding, the kernels
    if input_rgb is not None:
        input_trace = go.Image(
            source=_png_source(input_rgb), xaxis="x", yaxis="y", name="input", hoverinfo="skip"
        )
    else:
        input_trace = _heatmap(  # on a fixed 0..1 scale: a dark picture must look dark
            steps.padded[0],
            INPUT_AXES,
            "gray",
            max(padded_h, padded_w) <= MAX_TEXT_SIDE,
            "input",
            zmin=min(0.0, float(steps.padded[0].min())),
            zmax=max(1.0, float(steps.padded[0].max())),
        )
    kernel_tiles = tile_blocks([[steps.weight[k, c] for c in range(channels)] for k in range(kernels)])
    kernel_limit = float(np.abs(steps.weight).max()) or 1.0
    kernel_trace = _heatmap(
        kernel_tiles.array,
        KERNEL_AXES,
        DIVERGING,
        max(kernel_tiles.array.shape) <= MAX_KERNEL_TEXT_SIDE,
        "kernel",
        zmid=0.0,
        zmin=-kernel_limit,
        zmax=kernel_limit,
    )

    # moving parts, one entry per frame
    output = steps.output.astype(np.float32)  # (K, Ho, Wo)
    out_limit = float(np.abs(output).max()) or 1.0
    out_tiles = tile_blocks([[output[k] for k in range(kernels)]])  # the maps side by side
    products = steps.products.astype(np.float32)
    product_limit = float(np.abs(products).max()) or 1.0
    show_output_text = max(out_h, kernels * (out_w + GAP) - GAP) <= MAX_TEXT_SIDE
    frames, names, labels = [], [], []
    computed = np.zeros((out_h, out_w), dtype=bool)
    for index, (row, col) in enumerate(positions):
        if fill_reading_order:
            computed.reshape(-1)[: row * out_w + col + 1] = True  # every cell up to this one
        else:
            computed[row, col] = True
        output_z = tile_blocks([[np.where(computed, output[k], np.nan) for k in range(kernels)]]).array
        window_x, window_y = _squares(steps.tap_rows(row), steps.tap_cols(col), one_box)
        cursor_x, cursor_y = [], []
        for top_left in out_tiles.origins[0]:
            xs, ys = _squares(np.array([top_left[0] + row]), np.array([top_left[1] + col]), True)
            cursor_x += [*xs, None]
            cursor_y += [*ys, None]
        product_z = tile_blocks(
            [[products[k, row, col, c] for c in range(channels)] for k in range(kernels)]
        ).array
        frames.append(
            {
                "name": str(index),
                "traces": [2, 3, 4, 5, 6],
                "data": [
                    {"type": "scatter", "x": window_x, "y": window_y},
                    {"type": "heatmap", "z": output_z},
                    {"type": "scatter", "x": cursor_x, "y": cursor_y},
                    {"type": "heatmap", "z": product_z},
                    {"type": "scatter", "text": _equation_lines(steps, row, col)},
                ],
            }
        )
        names.append(str(index))
        labels.append(f"({row},{col})")

    first = frames[0]["data"]
    data = [
        input_trace,
        kernel_trace,
        go.Scatter(
            x=first[0]["x"],
            y=first[0]["y"],
            mode="lines",
            line={"color": WINDOW_COLOR, "width": 3},
            xaxis="x",
            yaxis="y",
            hoverinfo="skip",
            name="window",
        ),
        _heatmap(
            first[1]["z"],
            OUTPUT_AXES,
            DIVERGING,
            show_output_text,
            "output",
            zmid=0.0,
            zmin=-out_limit,
            zmax=out_limit,
        ),
        go.Scatter(
            x=first[2]["x"],
            y=first[2]["y"],
            mode="lines",
            line={"color": CURSOR_COLOR, "width": 3},
            xaxis="x3",
            yaxis="y3",
            hoverinfo="skip",
            name="current output",
        ),
        _heatmap(
            first[3]["z"],
            PRODUCT_AXES,
            DIVERGING,
            # the panel is about twice as wide as it is high: numbers fit 12 cells across, 7 down
            kernels * (kernel_h + GAP) - GAP <= MAX_PRODUCT_TEXT_ROWS
            and channels * (kernel_w + GAP) - GAP <= MAX_TEXT_SIDE,
            "product",
            zmid=0.0,
            zmin=-product_limit,
            zmax=product_limit,
        ),
        go.Scatter(
            x=[0.0] * len(first[4]["text"]),
            y=list(range(len(first[4]["text"]))),
            mode="text",
            text=first[4]["text"],
            textposition="middle right",
            xaxis="x5",
            yaxis="y5",
            textfont={"size": 13, "family": "monospace"},
            hoverinfo="skip",
            name="equation",
        ),
    ]
    layout = _base_layout(height)
    layout["yaxis5"]["range"] = [len(first[4]["text"]) - 0.5, -0.5]
    _fix_range(layout, "", padded_h, padded_w)
    _fix_range(layout, "2", *kernel_tiles.array.shape)
    _fix_range(layout, "3", *first[1]["z"].shape)
    slots = [_output_slot(out_h, out_w, left_col) for _, left_col in out_tiles.origins[0]]
    _fix_range(layout, "4", *first[3]["z"].shape)
    kernel_names = [f"k{k + 1}" for k in range(kernels)] if kernels > 1 else None
    slice_names = channel_names if channels > 1 else None
    kernel_shape = (kernel_h, kernel_w)
    _label_tiles(layout, "2", kernel_tiles, kernel_shape, kernel_names, slice_names)
    _label_tiles(layout, "4", kernel_tiles, kernel_shape, kernel_names, slice_names, rows_on_right=True)
    if kernels > 1:
        _label_tiles(layout, "3", out_tiles, (out_h, out_w), None, [f"map {k + 1}" for k in range(kernels)])
    layout["shapes"] = slots + _padding_shapes(
        padded_h - top - bottom, padded_w - left - right, steps.pad, INPUT_AXES
    )
    pad_text = "padding in orange" if any(steps.pad) else "no padding"
    layout["annotations"] = [
        _title(f"input {padded_h - top - bottom}x{padded_w - left - right} ({pad_text})", [0, 0.36], 1.0),
        _title(
            "kernel"
            + ("s" if kernels > 1 else "")
            + (" (" + " | ".join(channel_names) + ")" if channels > 1 else ""),
            [0.40, 0.58],
            1.0,
        ),
        _title(f"output {out_h}x{out_w}" + (f" x {kernels} maps" if kernels > 1 else ""), [0.62, 1.0], 1.0),
        _title("input x kernel, this step", [0, 0.36], 0.35),
        _title("sum + bias = output", [0.40, 1.0], 0.35),
    ]
    layout.update(_animation_controls(names, labels, "output cell (row, col): "))
    return AnimatedFigure(data, layout, frames)


def _equation_lines(steps: ConvSteps, row: int, col: int) -> list[str]:
    """One line per kernel: how output (row, col) comes out of its products."""
    kernels, channels, kernel_h, kernel_w = steps.weight.shape
    rows, cols = steps.tap_rows(row), steps.tap_cols(col)
    lines = [
        f"output cell ({row},{col})",
        f"window: rows {rows[0]}..{rows[-1]}, cols {cols[0]}..{cols[-1]} (padded)",
    ]
    count = channels * kernel_h * kernel_w
    per_line = kernel_w if 2 <= kernel_w <= 4 else 3  # a kernel row per line: short enough for a phone
    for k in range(kernels):
        total = float(steps.sums[k, row, col])
        bias = float(steps.bias[k])
        terms = [f"{t + 0.0:.3g}" for t in steps.products[k, row, col].reshape(-1)]  # (C*kH*kW,)
        if count <= MAX_WRITTEN_TERMS:
            chunks = [" + ".join(terms[i:i + per_line]) for i in range(0, count, per_line)]
            written = [f"kernel {k + 1}: {chunks[0]}", *(f"        + {chunk}" for chunk in chunks[1:])]
            lines += [line.replace("+ -", "- ") for line in written]
        else:
            lines.append(f"kernel {k + 1}: sum of the {count} products")
        lines.append(f"   = {total:.4g};   {total:.4g} + bias {bias:.4g} = <b>{total + bias:.4g}</b>")
    return lines


def build_pooling_figure(steps: PoolSteps, positions: list[tuple[int, int]], height: int = 620) -> go.Figure:
    """Pooling over channel 0 animated: the window, its values with the winner, the output filling in."""
    window_h, window_w = steps.window
    top, bottom, left, right = steps.pad
    padded = steps.padded[0]
    shown = np.where(np.isfinite(padded), padded, np.nan).astype(np.float32)  # -inf padding drawn empty
    out_h, out_w = steps.output.shape[1:]
    output = steps.output[0].astype(np.float32)
    values = steps.windows[0].astype(np.float32)  # (Ho, Wo, kH, kW)
    show_input_text = max(padded.shape) <= MAX_TEXT_SIDE
    low, high = float(np.nanmin(shown)), float(np.nanmax(shown))
    high = high if high > low else low + 1.0  # an all-zero map is drawn in the colour of its lowest value
    frames, names, labels = [], [], []
    for index, (row, col) in enumerate(positions):
        filled = np.full(out_h * out_w, np.nan, dtype=np.float32)
        done = row * out_w + col + 1
        filled[:done] = output.reshape(-1)[:done]
        window_x, window_y = _squares(steps.tap_rows(row), steps.tap_cols(col), True)
        cursor_x, cursor_y = _squares(np.array([row]), np.array([col]), True)
        window_values = np.where(np.isfinite(values[row, col]), values[row, col], np.nan).astype(np.float32)
        window_padding = np.where(np.isfinite(values[row, col]), np.nan, 0.0).astype(np.float32)
        if steps.mode == "max":
            win_r, win_c = steps.winners[0, row, col]
            mark_x, mark_y = _squares(
                np.array([win_r - row * steps.stride[0]]), np.array([win_c - col * steps.stride[1]]), True
            )
            equation = [
                f"output ({row},{col}) = max of the {window_h}x{window_w} window = "
                f"<b>{output[row, col]:.4g}</b>",
                f"winner at padded row {win_r}, column {win_c} (boxed)",
                "backward: its gradient goes to that cell only",
            ]
        else:
            mark_x, mark_y = [], []
            count = window_h * window_w
            equation = [
                f"output ({row},{col}) = sum / {count} = {float(values[row, col].sum()):.4g} / {count} = "
                f"<b>{output[row, col]:.4g}</b>",
                "padding zeros count in the average" if any(steps.pad) else "",
                f"backward: each window cell gets 1/{count} of its gradient",
            ]
        frames.append(
            {
                "name": str(index),
                "traces": [1, 2, 3, 4, 5, 6, 7],
                "data": [
                    {"type": "scatter", "x": window_x, "y": window_y},
                    {"type": "heatmap", "z": filled.reshape(out_h, out_w)},
                    {"type": "scatter", "x": cursor_x, "y": cursor_y},
                    {"type": "heatmap", "z": window_values},
                    {"type": "heatmap", "z": window_padding},
                    {"type": "scatter", "x": mark_x, "y": mark_y},
                    {"type": "scatter", "text": equation},
                ],
            }
        )
        names.append(str(index))
        labels.append(f"({row},{col})")
    first = frames[0]["data"]
    line = {"mode": "lines", "hoverinfo": "skip"}
    data = [
        _heatmap(
            shown,
            INPUT_AXES,
            POOL_SCALE,
            show_input_text,
            "input",
            zmin=low,
            zmax=high,
        ),
        go.Scatter(
            x=first[0]["x"],
            y=first[0]["y"],
            line={"color": WINDOW_COLOR, "width": 3},
            xaxis="x",
            yaxis="y",
            name="window",
            **line,
        ),
        _heatmap(
            first[1]["z"],
            OUTPUT_AXES,
            POOL_SCALE,
            max(out_h, out_w) <= MAX_TEXT_SIDE,
            "output",
            zmin=low,
            zmax=high,
        ),
        go.Scatter(
            x=first[2]["x"],
            y=first[2]["y"],
            line={"color": CURSOR_COLOR, "width": 3},
            xaxis="x3",
            yaxis="y3",
            name="current output",
            **line,
        ),
        _heatmap(
            first[3]["z"],
            PRODUCT_AXES,
            POOL_SCALE,
            True,
            "window values",
            zmin=low,
            zmax=high,
        ),
        go.Heatmap(  # the window's padding cells: -inf, which never wins, drawn in the padding's orange
            z=first[4]["z"],
            xaxis=PRODUCT_AXES[0],
            yaxis=PRODUCT_AXES[1],
            colorscale=[[0.0, PAD_FILL], [1.0, PAD_FILL]],
            showscale=False,
            xgap=1,
            ygap=1,
            texttemplate="pad",
            textfont={"size": 11},
            hovertemplate="padding (-inf): never the maximum<extra></extra>",
            hoverongaps=False,
            name="window padding",
        ),
        go.Scatter(
            x=first[5]["x"],
            y=first[5]["y"],
            line={"color": CURSOR_COLOR, "width": 4},
            xaxis="x4",
            yaxis="y4",
            name="winner",
            **line,
        ),
        go.Scatter(
            x=[0.0] * 3,
            y=[0, 1, 2],
            mode="text",
            text=first[6]["text"],
            textposition="middle right",
            xaxis="x5",
            yaxis="y5",
            textfont={"size": 13, "family": "monospace"},
            hoverinfo="skip",
        ),
    ]
    layout = _base_layout(height)
    layout["xaxis2"]["visible"] = layout["yaxis2"]["visible"] = False
    layout["yaxis5"]["range"] = [2.5, -0.5]
    _fix_range(layout, "", *shown.shape)
    _fix_range(layout, "3", out_h, out_w)
    _fix_range(layout, "4", window_h, window_w)
    layout["shapes"] = [_output_slot(out_h, out_w)] + _padding_shapes(
        padded.shape[0] - top - bottom, padded.shape[1] - left - right, steps.pad, INPUT_AXES
    )
    mode = "max" if steps.mode == "max" else "average"
    layout["annotations"] = [
        _title(
            "feature map" + (" (padding in orange, never wins)" if any(steps.pad) and mode == "max" else ""),
            [0, 0.36],
            1.0,
        ),
        _title(f"{mode}-pooled {out_h}x{out_w}", [0.62, 1.0], 1.0),
        _title("values in the window", [0, 0.36], 0.35),
        _title(f"{mode} of the window", [0.40, 1.0], 0.35),
    ]
    layout.update(_animation_controls(names, labels, "output cell (row, col): "))
    return AnimatedFigure(data, layout, frames)


def build_before_after_figure(
    before: np.ndarray, after: np.ndarray, titles: tuple[str, str], height: int = 360
) -> go.Figure:
    """Two maps side by side on one colour scale (ReLU before/after, gradient upstream/at input)."""
    limit = float(max(np.abs(before).max(), np.abs(after).max())) or 1.0
    show_text = max(*before.shape, *after.shape) <= MAX_TEXT_SIDE
    layout = _base_layout(height)
    for suffix, domain in (("", [0.0, 0.47]), ("2", [0.53, 1.0])):
        layout[f"xaxis{suffix}"]["domain"] = domain
        layout[f"yaxis{suffix}"]["domain"] = [0.0, 0.9]
    for suffix in ("3", "4", "5"):
        layout.pop(f"xaxis{suffix}")
        layout.pop(f"yaxis{suffix}")
    layout["margin"] = {"l": 10, "r": 10, "t": 30, "b": 10}
    _fix_range(layout, "", *before.shape)
    _fix_range(layout, "2", *after.shape)
    layout["annotations"] = [_title(titles[0], [0.0, 0.47], 0.92), _title(titles[1], [0.53, 1.0], 0.92)]
    data = [
        _heatmap(before, INPUT_AXES, DIVERGING, show_text, titles[0], zmid=0, zmin=-limit, zmax=limit),
        _heatmap(after, KERNEL_AXES, DIVERGING, show_text, titles[1], zmid=0, zmin=-limit, zmax=limit),
    ]
    return go.Figure(data=data, layout=layout)
