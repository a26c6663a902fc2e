"""The panel kit of the app's figures: one grid tiler for every grid of maps, kernels or filters,
image panels (heatmaps, pictures, outlines, titles, fixed ranges) and animations whose moving
traces are declared once.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from cnnviz.ui.plotly_wire import AnimatedFigure

GAP = 1  # empty cells between tiled blocks (channels, kernels, feature maps, filters)
FRAME_MS = 450  # how long one step stays on screen while playing, at normal speed
SPEEDS = {"slow": 1200, "normal": FRAME_MS, "fast": 150}  # ms per step while playing
PLAY_MENU, STEP_MENU, SPEED_MENU = 0, 1, 2  # the animation's updatemenus
STEP_MENU_PAD_PX = 150  # the step buttons start this far right of Play/Pause's start, at any width
MAX_SLIDER_LABELS = 25
LABEL_FONT = {"size": 11, "color": "#5a6275"}


@dataclass(frozen=True)
class Tiling:
    """Where each block sits in a tiled array (rows of blocks with ``fill`` in the gaps)."""

    array: np.ndarray  # (rows, cols[, channels]); the fill (NaN for maps) in the gaps
    origins: list[list[tuple[int, int]]]  # [block row][block col] -> (row, col) of the block's corner


def tile_grid(
    blocks: Sequence[Sequence[np.ndarray]],
    gap: int = GAP,
    fill: float = np.nan,
    dtype: type = np.float32,
    columns: int | None = None,
    gap_after: bool = False,
) -> Tiling:
    """Lay blocks of one shape ((H, W) values or (H, W, 3) colours) out in rows, ``fill`` between them.

    Args:
        blocks: rows of blocks; the last row may be shorter (its empty slots keep the fill).
        columns: slots per row (default: the longest row's blocks).
        gap_after: a gap after the last row and column too.
    """
    block_h, block_w, *channels = np.shape(blocks[0][0])
    cols = max(len(row) for row in blocks) if columns is None else columns
    trim = 0 if gap_after else gap
    shape = (len(blocks) * (block_h + gap) - trim, cols * (block_w + gap) - trim, *channels)
    array = np.full(shape, fill, dtype=dtype)
    origins = []
    for r, block_row in enumerate(blocks):
        origins.append([])
        for c, block in enumerate(block_row):
            top, left = r * (block_h + gap), c * (block_w + gap)
            array[top : top + block_h, left : left + block_w] = block
            origins[-1].append((top, left))
    return Tiling(array, origins)


def in_rows(items: Sequence, per_row: int) -> list[Sequence]:
    """A list cut into rows of ``per_row`` (the last one shorter), for :func:`tile_grid`."""
    return [items[i : i + per_row] for i in range(0, len(items), per_row)]


def label_tiles(
    layout: dict, suffix: str, tiling: Tiling, block_shape: tuple[int, int],
    row_names: list[str] | None, col_names: list[str] | None, rows_on_right: bool = False,
) -> None:
    """Name the blocks of a tiled panel along its axes ("k1", "k2" down the side, "R G B" along
    the bottom), so several kernels or channels stay tellable apart when their cells carry no numbers."""
    block_h, block_w = block_shape
    if row_names:
        centres = [row[0][0] + (block_h - 1) / 2 for row in tiling.origins]
        layout[f"yaxis{suffix}"].update(showticklabels=True, tickvals=centres, ticktext=row_names,
                                        tickfont=LABEL_FONT, side="right" if rows_on_right else "left")
    if col_names:
        centres = [left + (block_w - 1) / 2 for _, left in tiling.origins[0]]
        layout[f"xaxis{suffix}"].update(showticklabels=True, tickvals=centres, ticktext=col_names,
                                        tickfont=LABEL_FONT)


def squares(rows: np.ndarray, cols: np.ndarray, one_box: bool) -> tuple[list, list]:
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


def png_source(rgb: np.ndarray) -> str:
    """(H, W, 3) uint8 -> a PNG data URI, far smaller than the pixels as JSON."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def heatmap(
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
    """A map drawn cell by cell on one axis pair, with its numbers written in when ``show_text``."""
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


def fix_range(layout: dict, suffix: str, height: int, width: int) -> None:
    """Pin an image axis pair to the whole map, so cells not computed yet (NaN) still take their place."""
    layout[f"xaxis{suffix}"].update(range=[-0.5, width - 0.5], autorange=False)
    layout[f"yaxis{suffix}"].update(range=[height - 0.5, -0.5], autorange=False)


def title(text: str, x_domain: list[float], y: float) -> dict:
    """A bold panel title centred over ``x_domain`` (paper coordinates), its foot at ``y``."""
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


def _jump(frame: int) -> list:
    """The ``animate`` arguments that show frame ``frame`` at once (a slider step, a step button)."""
    return [[str(frame)], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate",
                           "transition": {"duration": 0}}]


def step_buttons(frame: int, count: int) -> list[dict]:
    """The "-1" and "+1" buttons while frame ``frame`` of ``count`` shows: each animates to its
    neighbour (no further than the first and last). plotly.js has no "next frame" command, so every
    frame carries its own pair of buttons (see :func:`animated_figure`)."""
    return [
        {"label": "◀ −1", "method": "animate", "args": _jump(max(0, frame - 1))},
        {"label": "+1 ▶", "method": "animate", "args": _jump(min(count - 1, frame + 1))},
    ]


def speed_buttons(menu: int = PLAY_MENU) -> list[dict]:
    """Slow / normal / fast: each sets the frame duration of the Play button of updatemenu ``menu``
    in the browser (a relayout: no Streamlit rerun, the animation keeps its place)."""
    path = f"updatemenus[{menu}].buttons[0].args[1].frame.duration"
    return [{"label": label, "method": "relayout", "args": [{path: ms}]} for label, ms in SPEEDS.items()]


def animation_controls(labels: list[str], prefix: str) -> dict:
    """Play/pause, step -1/+1 and speed buttons and a step slider over frames "0", "1", ..., all
    handled by plotly.js."""
    play = {
        "frame": {"duration": FRAME_MS, "redraw": True},
        "fromcurrent": True,
        "transition": {"duration": 0},
        "mode": "immediate",
    }
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate", "transition": {"duration": 0}}
    row = {"type": "buttons", "direction": "left", "y": -0.04, "yanchor": "top", "pad": {"t": 0, "r": 10},
           "showactive": False}
    menus = [None] * 3
    menus[PLAY_MENU] = {**row, "x": 0.0, "xanchor": "left", "buttons": [
        {"label": "▶ Play", "method": "animate", "args": [None, play]},
        {"label": "❚❚ Pause", "method": "animate", "args": [[None], pause]},
    ]}
    menus[STEP_MENU] = {**row, "x": 0.0, "xanchor": "left", "pad": {"t": 0, "l": STEP_MENU_PAD_PX},
                        "buttons": step_buttons(0, len(labels))}
    # the speed in use stays highlighted; right-aligned, clear of the step buttons at 800 px
    menus[SPEED_MENU] = {**row, "x": 1.0, "xanchor": "right", "pad": {"t": 0, "r": 0}, "showactive": True,
                         "active": list(SPEEDS.values()).index(FRAME_MS), "buttons": speed_buttons()}
    return {
        "updatemenus": menus,
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
                "font": {"color": "rgba(0,0,0,0)"} if len(labels) > MAX_SLIDER_LABELS else {},
                "steps": [{"label": label, "method": "animate", "args": _jump(index)}
                          for index, label in enumerate(labels)],
            }
        ],
    }


@dataclass(frozen=True)
class Moving:
    """A trace the animation's frames update: each frame gives it new values under ``name``."""

    name: str
    kind: str  # its Plotly type ("scatter", "heatmap"), which every frame's update repeats
    draw: Callable[[dict], go.Scatter | go.Heatmap]  # the first frame's values -> the whole trace


def animated_figure(
    traces: Sequence[go.Scatter | go.Heatmap | go.Image | Moving],
    frames: list[dict[str, dict]],
    labels: list[str],
    layout: dict,
    prefix: str,
) -> AnimatedFigure:
    """A figure whose frames update only its :class:`Moving` traces.

    The trace indices each frame names are the places of the moving traces in ``traces``, so they
    follow the declaration and are never counted by hand.

    Args:
        traces: the figure's traces in drawing order; static ones as Plotly traces.
        frames: per frame, the new values of each moving trace by name ({"x": ..., "y": ...}).
        labels: the slider's label of each frame.
    """
    moving = [(index, trace) for index, trace in enumerate(traces) if isinstance(trace, Moving)]
    indices = [index for index, _ in moving]
    # each frame brings its own step buttons (its neighbours); the other menus ({}) stay as they are
    menus = range(SPEED_MENU + 1)
    frame_dicts = [
        {
            "name": str(number),
            "traces": indices,
            "data": [{"type": trace.kind, **values[trace.name]} for _, trace in moving],
            "layout": {"updatemenus": [
                {"buttons": step_buttons(number, len(frames))} if menu == STEP_MENU else {} for menu in menus
            ]},
        }
        for number, values in enumerate(frames)
    ]
    data = [trace.draw(frames[0][trace.name]) if isinstance(trace, Moving) else trace for trace in traces]
    layout.update(animation_controls(labels, prefix))
    return AnimatedFigure(data, layout, frame_dicts)
