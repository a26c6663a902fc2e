"""The Convolution page's figure layout: five panels on their axis pairs, its colours, the
orange padding strips and the slots where output maps fill in."""

from __future__ import annotations

import numpy as np

MAX_TEXT_SIDE = 12  # write the numbers into the cells of a map while it is at most 12 cells across
PAD_FILL = "rgba(255, 170, 60, 0.55)"
SLOT_FILL = "#eef0f4"  # where output cells will appear
PAD_EDGE = "rgba(220, 110, 0, 0.9)"
WINDOW_COLOR = "#e8175d"  # the window on the input and the output cell it computes
CURSOR_COLOR = "#00a676"  # the winner of a max-pooling window
DIVERGING = "RdBu_r"
POOL_SCALE = "Blues"  # no green or pink in it: the outlines and the green winner box show on every cell

# Axis slots of the figure: (x axis, y axis), and each slot's (x domain, y domain) by axis suffix
INPUT_AXES = ("x", "y")
KERNEL_AXES = ("x2", "y2")
OUTPUT_AXES = ("x3", "y3")
PRODUCT_AXES = ("x4", "y4")
TEXT_AXES = ("x5", "y5")
DOMAINS = {
    "": ([0.0, 0.36], [0.44, 1.0]),  # input (top left)
    "2": ([0.40, 0.58], [0.44, 1.0]),  # kernels
    "3": ([0.62, 1.0], [0.44, 1.0]),  # output maps
    "4": ([0.0, 0.36], [0.0, 0.34]),  # this step's products (bottom left)
    "5": ([0.40, 1.0], [0.0, 0.34]),  # the equation
}
TOP_TITLE_Y, BOTTOM_TITLE_Y = 1.0, 0.35

# What must fit at 800 px wide, the narrowest screen the page is made for: there the chart is 468 px
# wide beside the sidebar (measured in Chromium), its plot area about 430 px after the margins.
NARROW_PLOT_PX = 430
PLOT_HEIGHT_PX = 590  # at every width: the figure's 760 px less its margins
CHAR_EM = 0.6  # a digit's (or a monospace character's) width in font sizes, measured in Chromium
EQUATION_FONT = 11
CELL_FONT = 10  # numbers written into cells
SMALL_CELL_FONT = 9  # the narrow kernel panel's, where 10 px would not fit (a 5x5 Gaussian's 36)
EQUATION_CHARS = int(NARROW_PLOT_PX * (DOMAINS["5"][0][1] - DOMAINS["5"][0][0]) / (CHAR_EM * EQUATION_FONT))
FRAME_PREFIX = "output cell (row, col): "  # the slider names each frame's output cell
NOISE = 1e-12  # a number this small next to the largest of its panel is rounding noise: shown as 0


def written(value: float, digits: int = 4, scale: float = 1.0) -> str:
    """``value`` with ``digits`` significant digits, 0 (never -0 or 5.551e-17) when it is rounding
    noise next to ``scale``, the largest magnitude it is shown beside."""
    value = 0.0 if abs(value) <= NOISE * scale else value
    return f"{value + 0.0:.{digits}g}"


def cell_texts_fit(
    texts: list[str], suffix: str, cells: tuple[int, int], lines: int = 1, font: int = CELL_FONT
) -> bool:
    """Whether the longest of ``texts`` (``lines`` lines per cell, split at <br>) in ``font`` px fits
    a cell of the panel on axes ``suffix`` at 800 px wide; ``cells`` (down, across): its cells are
    square, as large as both the panel's width and its height allow."""
    (x0, x1), (y0, y1) = DOMAINS[suffix]
    cell = min(NARROW_PLOT_PX * (x1 - x0) / max(1, cells[1]), PLOT_HEIGHT_PX * (y1 - y0) / max(1, cells[0]))
    longest = max((len(line) for text in texts for line in text.split("<br>")), default=0)
    return longest * CHAR_EM * font <= cell - 3 and lines * font * 1.25 <= cell - 3


def denoised(values: np.ndarray) -> np.ndarray:
    """A map to draw: cells that are rounding noise next to its largest cell set to exactly 0 (the
    cells' text and hover then read 0); NaN (cells not computed yet) stays."""
    values = np.asarray(values, dtype=np.float64)
    scale = float(np.nanmax(np.abs(values), initial=0.0)) if np.isfinite(values).any() else 0.0
    return np.where(np.abs(values) <= NOISE * scale, 0.0, values)


def padding_shapes(
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


def page_layout(height: int) -> dict:
    """The five panels (input, kernels, output above; products and equation below) on their axes."""
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
    for suffix, (x_domain, y_domain) in DOMAINS.items():
        layout[f"xaxis{suffix}"] = {**image_axis, "domain": list(x_domain), "anchor": f"y{suffix}"}
        layout[f"yaxis{suffix}"] = {
            **image_axis,
            "domain": list(y_domain),
            "anchor": f"x{suffix}",
            "autorange": "reversed",
            "scaleanchor": f"x{suffix}",
        }
    layout["yaxis5"] = {
        **image_axis,
        "domain": list(DOMAINS["5"][1]),
        "anchor": "x5",
        "range": [-0.5, 6.5],
        "autorange": False,
        "visible": False,
    }
    layout["xaxis5"] = {
        **image_axis,
        "domain": list(DOMAINS["5"][0]),
        "anchor": "y5",
        "range": [0, 1],
        "visible": False,
    }
    return layout


def output_slot(out_h: int, out_w: int, left_col: int = 0) -> dict:
    """A light rectangle under an output map, so its final size shows before its cells fill in."""
    return {
        "type": "rect",
        "xref": OUTPUT_AXES[0],
        "yref": OUTPUT_AXES[1],
        "layer": "below",
        "line": {"width": 0},
        "fillcolor": SLOT_FILL,
        "x0": left_col - 0.5,
        "y0": -0.5,
        "x1": left_col + out_w - 0.5,
        "y1": out_h - 0.5,
    }
