"""What the convolution figure writes: the kernels' numbers, the input and product in each cell
of the window, and the "sum + bias = output" equation; all of it sized to fit at 800 px wide."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from cnnviz.convolution.steps import ConvSteps
from cnnviz.ui.convolution.layout import CELL_FONT, EQUATION_CHARS, SMALL_CELL_FONT, cell_texts_fit, written
from cnnviz.ui.panels import tile_grid

MAX_WRITTEN_TERMS = 9  # write every product of the sum out up to a 3x3 one-channel kernel
MAX_NAMED_CHANNELS = 3  # the sum per channel (R + G + B) fits one line up to 3 channels
MAX_DENOMINATOR = 1024  # kernels of whole numbers over at most this (Gaussian 7x7: /4096 is not) are
# written as whole numbers with the fraction in the title: "1 2 1" and "x 1/16" fit where "0.0625" does not


def kernel_texts(tiled: np.ndarray, number_format: str = ".3~g") -> tuple[list[list[str]], str, int] | None:
    """The numbers to write into the tiled kernels' cells, the factor the title names (" x 1/16")
    and the font size; None when no way of writing them fits at 800 px (the hover has them).

    Whole numbers of a fraction first (a Gaussian's 1 2 1 / 2 4 2 / 1 2 1 and "x 1/16"), then
    ``number_format``'s digits, then 2 significant digits.
    """
    denominator = _common_denominator(tiled[np.isfinite(tiled)])
    digits = number_format.replace("~", "")  # the d3 format as Python writes it
    for scale, text_format, factor in (
        (denominator, "d", f" x 1/{denominator}" if denominator and denominator > 1 else ""),
        (1, digits, ""),
        (1, ".2g", ""),
        (1, "short", ""),  # "-.08": a learned 3x3 kernel's weights still fit at 800 px
    ):
        if not scale:
            continue
        texts = [["" if np.isnan(v) else _weight_text(v, scale, text_format) for v in row]
                 for row in tiled.astype(np.float64)]
        for font in (CELL_FONT, SMALL_CELL_FONT):
            if cell_texts_fit([t for row in texts for t in row], "2", tiled.shape[:2], font=font):
                return texts, factor, font
    return None


def _weight_text(value: float, scale: int, text_format: str) -> str:
    """One kernel cell: a whole number of 1/scale ("d"), a Python format, or "short": 2 decimals
    without the leading zero (-0.075 -> "-.08") below 1, 2 significant digits above."""
    if text_format == "d":
        return str(round(value * scale))
    if text_format == "short":
        if abs(value) >= 1:
            return format(value, ".2g")
        rounded = round(value, 2) + 0.0
        return "0" if rounded == 0 else format(rounded, ".2f").replace("0.", ".", 1)
    return format(value + 0.0, text_format)


def _common_denominator(values: np.ndarray) -> int | None:
    """The smallest d <= MAX_DENOMINATOR that makes every value a whole number of 1/d (3 digits at
    most), or None."""
    denominators = np.arange(1, MAX_DENOMINATOR + 1)
    scaled = denominators[:, None] * values.reshape(1, -1)  # (D, n)
    whole = np.flatnonzero((np.abs(scaled - np.round(scaled)) <= 1e-9).all(axis=1))
    if not whole.size or np.abs(scaled[whole[0]]).max(initial=0) >= 1000:
        return None
    return int(denominators[whole[0]])


def product_texts(
    steps: ConvSteps, positions: list[tuple[int, int]] | tuple[tuple[int, int], ...]
) -> list[list[list[str]] | None]:
    """Per frame, the text of the products panel's cells: the input value under each tap and, below,
    its product with the weight ("0.996<br>= 0.0623"), with as many digits as fit at 800 px; or the
    products alone; or None (too many cells: the hover has the numbers)."""
    kernels, channels = steps.weight.shape[:2]
    per_frame = []
    for row, col in positions:
        inputs = steps.padded[:, steps.tap_rows(row)][:, :, steps.tap_cols(col)]  # (C, kH, kW)
        blocks = [[np.stack([inputs[c], steps.products[k, row, col, c]], axis=-1) for c in range(channels)]
                  for k in range(kernels)]
        per_frame.append(tile_grid(blocks, dtype=np.float64).array)  # (rows, cols, 2): input, product
    cells = per_frame[0].shape[:2] if per_frame else (1, 1)
    for digits, both in ((3, True), (2, True), (3, False), (2, False)):
        if not cell_texts_fit(["0<br>= 0" if both else "0"], "4", cells, lines=2 if both else 1):
            continue  # not even one digit fits: no need to write them all out
        texts = [[[_cell_text(cell, digits, both) for cell in line] for line in tiled] for tiled in per_frame]
        flat = [t for frame in texts for line in frame for t in line]
        if cell_texts_fit(flat, "4", cells, lines=2 if both else 1):
            return texts
    return [None] * len(positions)


def _cell_text(cell: np.ndarray, digits: int, both: bool) -> str:
    """ "0.996<br>= 0.0623" (input, product) or the product alone; "" in the gaps between blocks."""
    value, product = cell
    if np.isnan(product):
        return ""
    return f"{written(value, digits)}<br>= {written(product, digits)}" if both else written(product, digits)


def equation_lines(
    steps: ConvSteps, row: int, col: int, channel_names: list[str] | None = None
) -> list[str]:
    """One line per kernel (and one per kernel's channels): how output (row, col) comes out of its
    products; every line at most EQUATION_CHARS long, so it fits at 800 px."""
    kernels, channels, kernel_h, kernel_w = steps.weight.shape
    rows, cols = steps.tap_rows(row), steps.tap_cols(col)
    padded = "padded " if any(steps.pad) else ""  # "(padded)" with padding 0 puzzled
    lines = [
        f"output cell ({row},{col})",
        f"window: {padded}rows {rows[0]}..{rows[-1]}, cols {cols[0]}..{cols[-1]}",
    ]
    count = channels * kernel_h * kernel_w
    per_line = kernel_w if 2 <= kernel_w <= 4 else 3  # a kernel row per line: short enough for a phone
    names = channel_names or [f"ch {c + 1}" for c in range(channels)]
    for k in range(kernels):
        products = steps.products[k, row, col]  # (C, kH, kW)
        total = float(steps.sums[k, row, col])
        bias = float(steps.bias[k])
        scale = float(np.abs(products).sum())  # what the sum's noise is relative to
        if 1 < channels <= MAX_NAMED_CHANNELS:  # the sum per channel, named: R 0.241 + G 0.3 + B 0.1
            per_channel = [float(p.sum()) for p in products]
            lines.append(f"kernel {k + 1}: {channels} x {kernel_h * kernel_w} products")
            lines += _fitting(lambda digits, values=per_channel, scale=scale: ["  " + " + ".join(
                f"{name} {written(v, digits, scale)}" for name, v in zip(names, values, strict=True))])
        elif count <= MAX_WRITTEN_TERMS:
            def spelled(digits: int, k: int = k, products: np.ndarray = products) -> list[str]:
                terms = [written(t, digits) for t in products.reshape(-1)]  # (C*kH*kW,)
                chunks = [" + ".join(terms[i:i + per_line]) for i in range(0, count, per_line)]
                rows = [f"kernel {k + 1}: {chunks[0]}", *(f"        + {chunk}" for chunk in chunks[1:])]
                return [line.replace("+ -", "- ") for line in rows]

            lines += _fitting(spelled)
        else:
            lines.append(f"kernel {k + 1}: sum of the {count} products")
        lines.append(_result_line(total, bias, scale))
    return lines


def _result_line(total: float, bias: float, scale: float) -> str:
    """ "   = 0.7239 + bias 0 = <b>0.7239</b>" with 4 significant digits, fewer where 4 would not fit."""
    return _fitting(lambda digits: [
        f"   = {written(total, digits, scale)} + bias {written(bias, digits)} = "
        f"<b>{written(total + bias, digits, scale + abs(bias))}</b>"
    ], most=4)[0]


def _fitting(make: Callable[[int], list[str]], most: int = 3) -> list[str]:
    """The lines ``make(digits)`` writes with the most significant digits (``most`` down to 1) at which
    every line fits EQUATION_CHARS (tags such as <b> take no room)."""
    for digits in range(most, 0, -1):
        lines = make(digits)
        if all(len(re.sub(r"<[^>]+>", "", line)) <= EQUATION_CHARS for line in lines):
            break
    return lines
