"""Output-size arithmetic of convolution and pooling, one axis at a time, explained in words.

Along one axis with input size n, kernel size k, stride s, padding p (on each side) and
dilation d, every framework computes

    out = floor((n + 2p - d(k-1) - 1) / s) + 1

The functions here return that number together with the formula with the numbers filled in,
and say what happens when the division is not whole (the last rows are never covered) and why a
setting is impossible.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

PADDING_MODES = ("same", "valid")
AXIS_NOUNS = {"height": ("row", "rows"), "width": ("column", "columns")}


@dataclass(frozen=True)
class Padding:
    """Zero padding added on the two sides of one axis (``before`` = top or left)."""

    before: int
    after: int
    note: str = ""  # why the padding is what it is ("same" on an even kernel, ...)

    @property
    def total(self) -> int:
        return self.before + self.after

    @property
    def symmetric(self) -> bool:
        return self.before == self.after


@dataclass(frozen=True)
class AxisSize:
    """The output size along one axis, and how it came about."""

    axis: str  # "height" or "width"
    input_size: int  # n
    kernel: int  # k
    stride: int  # s
    padding: Padding  # p on each side (possibly uneven for "same" with an even kernel)
    dilation: int  # d
    output: int  # floor(...) + 1
    exact: Fraction  # (n + 2p - d(k-1) - 1)/s + 1 before rounding down
    uncovered: tuple[int, ...]  # input indices (0-based, unpadded) that no window touches
    formula: str  # the formula with the numbers filled in
    warning: str  # empty when the kernel fits exactly and every input cell is used

    @property
    def span(self) -> int:
        """How many input cells one window stretches over: d(k-1) + 1."""
        return self.dilation * (self.kernel - 1) + 1

    @property
    def fits_exactly(self) -> bool:
        return self.exact.denominator == 1

    def window_starts(self) -> list[int]:
        """First padded-input index of each window along this axis."""
        return [o * self.stride for o in range(self.output)]


def _check_positive(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"The {name} must be a whole number of at least {minimum}, not {value!r}.")


def parse_padding(padding: int | str) -> int | str:
    """Padding as a person gives it ("1", " same", "VALID", or a number) -> a number, "same" or "valid".

    The one reader of padding text: the page's choice, the command line and the core all pass
    through here. ValueError with a friendly sentence for anything else.
    """
    if not isinstance(padding, str):
        return padding
    mode = padding.strip().lower()
    if mode.isdecimal():
        return int(mode)
    if mode not in PADDING_MODES:
        raise ValueError(f'Padding must be a whole number, "same" or "valid", not {padding!r}.')
    return mode


def resolve_padding(
    padding: int | str, kernel: int, stride: int = 1, dilation: int = 1, pool: bool = False
) -> Padding:
    """Turn an integer or "same"/"valid" into the zeros added before and after along one axis.

    "same" keeps the output as large as the input at stride 1: the window needs d(k-1) extra
    cells in total, p = d(k-1)/2 on each side, which is whole for odd kernels. For an even kernel
    the total is odd and cannot be split evenly; PyTorch (and TensorFlow) then put the extra zero
    after (bottom/right).
    """
    _check_positive("kernel size", kernel)
    _check_positive("stride", stride)
    _check_positive("dilation", dilation)
    padding = parse_padding(padding)
    if padding == "valid":
        return Padding(0, 0, '"valid" means no padding: windows only where they fit inside the input.')
    if padding == "same":
        if stride != 1:
            raise ValueError(
                f'"same" padding keeps the size only at stride 1 (PyTorch refuses it at stride {stride}); '
                "give the padding as a number instead."
            )
        total = dilation * (kernel - 1)
        before, after = total // 2, total - total // 2
        if total % 2 == 0:
            note = f'"same": p = d(k-1)/2 = {dilation}*({kernel}-1)/2 = {before} on each side.'
        else:
            note = (
                f'"same" with an even kernel: the window needs d(k-1) = {total} extra '
                f'{"cell" if total == 1 else "cells"}, an odd number, '
                f"so it cannot be split evenly: {before} before and {after} after (PyTorch and TensorFlow "
                "put the extra zero at the bottom/right)."
            )
            if pool:
                raise ValueError(
                    f'"same" pooling with an even window ({kernel}) needs uneven padding '
                    f"({before} and {after}), which pooling layers do not support; "
                    "use an odd window or a number."
                )
        return Padding(before, after, note)
    _check_positive("padding", padding, minimum=0)
    return Padding(padding, padding)


def output_length(input_size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """``floor((n + 2p - d(k - 1) - 1) / s) + 1``: the number of windows along one axis (below 1 when
    the window does not fit)."""
    return (input_size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def axis_output_size(
    input_size: int,
    kernel: int,
    stride: int = 1,
    padding: int | str = 0,
    dilation: int = 1,
    axis: str = "height",
    pool: bool = False,
) -> AxisSize:
    """The output size along one axis with the explanation; ValueError when impossible.

    Args:
        input_size: n, the number of input rows (axis="height") or columns (axis="width").
        padding: zeros on each side, or "same"/"valid".
        pool: True for a pooling window, which PyTorch allows at most half a window of padding.
    """
    _check_positive(f"input {axis}", input_size)
    pad = resolve_padding(padding, kernel, stride, dilation, pool)
    singular, plural = AXIS_NOUNS.get(axis, ("cell", "cells"))
    span = dilation * (kernel - 1) + 1
    padded = input_size + pad.total
    if pool and max(pad.before, pad.after) * 2 > span:
        most = span // 2
        advice = (f"Use padding {most} or less." if most else
                  f"A window 1 {singular} {'high' if axis == 'height' else 'wide'} takes no padding: "
                  "set the padding to 0, or use a larger window.")
        raise ValueError(
            f"Pooling padding can be at most half the window: {max(pad.before, pad.after)} is more than "
            f"{span}/2, so some windows would see only padding. {advice}"
        )
    if span > padded:
        padded_text = (
            f"{padded} {singular if padded == 1 else plural} along the {axis} "
            f"({input_size} + {pad.total} padding)"
        )
        if pool:
            raise ValueError(
                f"The pooling window spans {span} {plural} but the feature map is only {padded_text}, "
                "so it fits nowhere. Use a smaller window, or a smaller stride or kernel above so the "
                "feature map is larger."
            )
        taps = f"{kernel} taps with dilation {dilation}" if dilation > 1 else f"kernel size {kernel}"
        raise ValueError(
            f"The window spans {span} {plural} ({taps}) but the padded input is only {padded_text}, "
            "so it fits nowhere. Use a smaller kernel, less dilation or more padding."
        )
    numerator = padded - span  # n + 2p - d(k-1) - 1
    exact = Fraction(numerator, stride) + 1
    output = numerator // stride + 1

    pad_text = f"{pad.before}+{pad.after}" if not pad.symmetric else f"2*{pad.before}"
    formula = (
        f"floor(({input_size} + {pad_text} - {dilation}*({kernel}-1) - 1) / {stride}) + 1 "
        f"= floor({numerator}/{stride}) + 1 = {output}"
    )
    covered = {
        start + tap * dilation - pad.before
        for start in range(0, output * stride, stride)
        for tap in range(kernel)
    }
    uncovered = tuple(i for i in range(input_size) if i not in covered)

    reach = (output - 1) * stride + span - 1 - pad.before  # the last input index a window reaches
    source = "feature map" if pool else "input"  # what pooling slides over: the page's feature map
    warning = _left_out_note(axis, f"{numerator}/{stride}", output, exact, uncovered, reach, pad.before,
                             source)
    return AxisSize(
        axis, input_size, kernel, stride, pad, dilation, output, exact, uncovered, formula, warning
    )


def _left_out_note(
    axis: str, division: str, output: int, exact: Fraction, uncovered: tuple[int, ...], reach: int, top: int,
    source: str = "input",
) -> str:
    """The note on ``source`` cells no window covers ("input", or "feature map" for pooling), or ""
    when every cell is used.

    Cells past the last window (the division was not whole) and cells between the windows' taps (a
    stride or dilation larger than the window) are named apart. When only padding is left out, no
    note: no input cell is lost. Cells count from 0 as the page's hover and equation do; those count
    the padding too, so with padding the figure's number is given beside the input's.
    """
    singular, plural = AXIS_NOUNS.get(axis, ("cell", "cells"))
    tail = tuple(i for i in uncovered if i > reach)
    gaps = tuple(i for i in uncovered if i <= reach)
    notes = []
    if tail:  # only when the division is not whole: a whole one ends the last window at the end
        windows = "1 window" if output == 1 else f"{output} windows"
        notes.append(
            f"The {axis} does not fit exactly: (n + 2p - d(k-1) - 1)/s + 1 = {division} + 1 = "
            f"{float(exact):g} is not a whole number, so frameworks round down to {windows}, which "
            f"never reach {source} {_cells(tail, singular, plural, top)}."
        )
    if gaps:
        notes.append(f"{source.capitalize()} {plural} never covered by any window: "
                     f"{_cells(gaps, '', '', top)}.")
    return " ".join(notes)


def _cells(indices: tuple[int, ...], singular: str, plural: str, top: int) -> str:
    """ "row 27 (counting from 0)", "rows 26 and 27 (counting from 0; 27 and 28 on the figure, which
    counts the padding too)"; at most 12 listed."""
    def listed(numbers: list[int]) -> str:
        words = [str(i) for i in numbers[:12]]
        if len(numbers) > 12:
            return ", ".join(words) + f" and {len(numbers) - 12} more"
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]

    noun = (singular if len(indices) == 1 else plural) + " " if singular else ""
    where = "counting from 0"
    if top:
        where += f"; {listed([i + top for i in indices])} on the figure, which counts the padding too"
    return f"{noun}{listed(list(indices))} ({where})"


def output_shape(
    height: int,
    width: int,
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple[int | str, int | str] = 0,
    dilation: int | tuple[int, int] = 1,
    pool: bool = False,
) -> tuple[AxisSize, AxisSize]:
    """Height and width output sizes of a 2-D convolution (or pooling with pool=True)."""
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    return (
        axis_output_size(height, kh, sh, ph, dh, "height", pool),
        axis_output_size(width, kw, sw, pw, dw, "width", pool),
    )


def _pair(value):
    return tuple(value) if isinstance(value, tuple | list) else (value, value)


def describe(sizes: tuple[AxisSize, AxisSize]) -> str:
    """Several lines for people: the output size, each axis's formula, notes and warnings."""
    height, width = sizes
    lines = [f"output: {height.output} x {width.output} (height x width)"]
    for size in sizes:
        lines.append(f"{size.axis}: {size.formula}")
        if size.padding.note:
            lines.append(f"  {size.padding.note}")
        if size.warning:
            lines.append(f"  note: {size.warning}")
    return "\n".join(lines)
