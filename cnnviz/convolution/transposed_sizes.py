"""Output-size arithmetic of a transposed convolution, one axis at a time, written out with the numbers.

Along one axis with input size n, kernel k, stride s, padding p, output padding op and dilation d,
PyTorch's ``conv_transpose2d`` gives ``(n - 1) s - 2p + d (k - 1) + op + 1`` cells. It refuses an
output padding that is not smaller than the stride or the dilation, and an output below one cell;
so do the functions here, with a sentence saying how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TransposedAxis:
    """The output size of a transposed convolution along one axis, and how it came about."""

    axis: str  # "height" or "width"
    input_size: int  # n
    kernel: int  # k
    stride: int  # s
    padding: int  # p
    output_padding: int
    dilation: int  # d
    output: int  # (n - 1) s - 2p + d (k - 1) + output_padding + 1
    formula: str  # the formula with the numbers filled in

    @property
    def stretched(self) -> int:
        """Input cells with ``s - 1`` zeros between neighbours: (n - 1) s + 1."""
        return (self.input_size - 1) * self.stride + 1

    @property
    def border(self) -> int:
        """Zeros padded on each side of the stretched input, d (k - 1) - p (negative: cells cropped)."""
        return self.dilation * (self.kernel - 1) - self.padding

    @property
    def before(self) -> int:
        """Padding at the top/left (negative: that many stretched cells cropped)."""
        return self.border

    @property
    def after(self) -> int:
        """Padding at the bottom/right: the border plus output_padding (negative: cropped)."""
        return self.border + self.output_padding


def _check_whole(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"The {name} must be a whole number of at least {minimum}, not {value!r}.")


def transposed_axis_size(
    input_size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
    axis: str = "height",
) -> TransposedAxis:
    """The output size along one axis with the formula written out; ValueError when PyTorch refuses it."""
    _check_whole(f"input {axis}", input_size, 1)
    _check_whole("kernel size", kernel, 1)
    _check_whole("stride", stride, 1)
    _check_whole("dilation", dilation, 1)
    _check_whole("padding", padding, 0)
    _check_whole("output padding", output_padding, 0)
    input_size, kernel, stride, padding, output_padding, dilation = (
        int(v) for v in (input_size, kernel, stride, padding, output_padding, dilation)
    )
    if output_padding >= stride and output_padding >= dilation:
        raise ValueError(
            f"The output padding ({output_padding}) along the {axis} must be smaller than the stride "
            f"({stride}) or the dilation ({dilation}), as PyTorch requires: it only picks one of the "
            f"input sizes a stride-{stride} convolution would map to the same size. "
            f"Use output padding {max(stride, dilation) - 1} or less."
        )
    output = (input_size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    formula = (
        f"({input_size} - 1)*{stride} - 2*{padding} + {dilation}*({kernel} - 1) + {output_padding} + 1 "
        f"= {output}"
    )
    if output < 1:
        raise ValueError(
            f"The {axis} would come out {output} cells ({formula}): the padding {padding} crops more than "
            f"the transposed convolution produces. Use padding "
            f"{((input_size - 1) * stride + dilation * (kernel - 1) + output_padding) // 2} or less, "
            "or a larger kernel or stride."
        )
    return TransposedAxis(axis, input_size, kernel, stride, padding, output_padding, dilation, output,
                          formula)


def pair(value) -> tuple:
    """An int as (int, int); a (height, width) pair as it is."""
    return tuple(value) if isinstance(value, tuple | list) else (value, value)


def transposed_output_shape(
    height: int,
    width: int,
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    output_padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> tuple[TransposedAxis, TransposedAxis]:
    """Height and width output sizes of a 2-D transposed convolution (int or (height, width) pairs)."""
    settings = zip(pair(kernel), pair(stride), pair(padding), pair(output_padding), pair(dilation),
                   strict=True)
    (kh, sh, ph, oh, dh), (kw, sw, pw, ow, dw) = settings
    return (
        transposed_axis_size(height, kh, sh, ph, oh, dh, "height"),
        transposed_axis_size(width, kw, sw, pw, ow, dw, "width"),
    )


def describe_transposed(sizes: tuple[TransposedAxis, TransposedAxis]) -> str:
    """Lines for people: the output size and each axis's formula with the numbers."""
    height, width = sizes
    lines = [f"output: {height.output} x {width.output} (height x width)"]
    for size in sizes:
        lines.append(f"{size.axis}: (n - 1)s - 2p + d(k - 1) + output_padding + 1 = {size.formula}")
        lines.append(
            f"  stretched input {size.stretched} ({size.stride - 1} zero(s) between cells), "
            + (f"{size.before} zero(s) of padding before and {size.after} after"
               if min(size.before, size.after) >= 0 else
               f"padding {size.before} before and {size.after} after (negative: cells cropped)")
        )
    return "\n".join(lines)
