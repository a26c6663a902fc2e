"""PyTorch lines that compute a convolution's output map: code a student can copy and run.

:func:`conv_code` writes self-contained Python (only ``torch``) that builds the input, the kernels and
the biases with every number written out exactly, computes the map with ``F.conv2d`` /
``F.conv_transpose2d`` or with an ``nn.Conv2d`` / ``nn.ConvTranspose2d`` layer whose weights are set to
these, and prints it. Numbers that are whole multiples of a small fraction (pixels k/255, a preset
kernel divided by 3 for RGB, a Gaussian's k/16) are written as whole numbers and one division, which
gives the same float64 values; any other number is written with ``repr``, which reads back exactly.
"""

from __future__ import annotations

import numpy as np

from cnnviz.convolution.arithmetic import AxisSize, output_shape, parse_padding

STYLES = ("functional", "module")
# Denominators tried, smallest first, for writing an array as whole numbers divided by one of them.
DENOMINATORS = (1, 2, 3, 4, 8, 9, 16, 27, 255, 765)
MAX_WHOLE = 10**6  # whole numbers above this are no easier to read than the decimal
PRINT_OPTIONS = "torch.set_printoptions(precision=4, sci_mode=False, linewidth=110)"


def conv_code(
    pixels: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    transposed: bool = False,
    output_padding: int | tuple[int, int] = 0,
    flip: bool = False,
    style: str = "functional",
) -> str:
    """Python code that computes this convolution's output map with PyTorch and prints it.

    Args:
        pixels: (C, H, W) the input, unpadded.
        weight: (K, C/groups, kH, kW) the kernels; for a transposed convolution PyTorch's own layout
            (C, K/groups, kH, kW).
        bias: (K,) or None.
        stride, dilation, output_padding: one number or a (height, width) pair.
        padding: zeros on each side, "same" or "valid", or a (height, width) pair of those (a
            transposed convolution takes numbers only). "same" is written as PyTorch spells it where
            PyTorch's ``padding="same"`` applies (stride 1 on both axes, "same" on both), else as the
            numbers it stands for, with an explicit ``F.pad`` when they are uneven.
        flip: a true convolution: the code turns the kernels by 180 degrees (``torch.flip``) first.
        style: "functional" (``F.conv2d``) or "module" (an ``nn.Conv2d`` layer).

    The output of the code (variable ``output``, (K, Ho, Wo)) equals ``F.conv2d`` / ``conv_transpose2d``
    of these tensors in float64. Raises ValueError with a friendly sentence when the setting cannot
    work.
    """
    if style not in STYLES:
        raise ValueError(f"The code style must be one of {', '.join(STYLES)}, not {style!r}.")
    image, kernels, biases = _arrays(pixels, weight, bias)
    layer = (_transposed_layer(image, kernels, stride, padding, dilation, groups, output_padding)
             if transposed else _conv_layer(image, kernels, stride, padding, dilation, groups))
    lines = ["import torch"]
    if style == "functional" or layer.pad:
        lines.append("import torch.nn.functional as F")
    if style == "module":
        lines.append("from torch import nn")
    lines += [
        "",
        tensor_code("image", image, "(C, H, W) the input"),
        tensor_code("weight", kernels, layer.weight_shape),
    ]
    if biases is not None:
        lines.append(tensor_code("bias", biases, "(K,) one per feature map"))
    lines.append("")
    if flip:
        lines.append("# A true convolution: each kernel turned by 180 degrees (up-down and left-right), then")
        lines.append("# slid as PyTorch's cross-correlation slides it.")
        lines.append("weight = torch.flip(weight, dims=(2, 3))")
    if layer.uneven_same:
        lines.append('# padding="same" with an even kernel: PyTorch puts the extra zero at the bottom/right')
        lines.append("# (and may warn that it pads a copy of the input).")
    if layer.pad:
        left, right, top, bottom = layer.pad
        lines.append(f"# Zeros added unevenly ({top} top, {bottom} bottom, {left} left, {right} right), "
                     "which PyTorch's padding argument cannot say:")
        lines.append(f"image = F.pad(image, ({left}, {right}, {top}, {bottom}))  # left, right, top, bottom")
    has_bias = biases is not None
    lines += _module_lines(layer, has_bias) if style == "module" else _functional_lines(layer, has_bias)
    lines += ["", PRINT_OPTIONS, "print(output)"]
    return "\n".join(lines) + "\n"


class _Layer:
    """The arguments of one PyTorch convolution call, written as Python text."""

    def __init__(
        self, transposed: bool, in_channels: int, out_channels: int, kernel: tuple[int, int],
        arguments: list[tuple[str, str]], groups: int, pad: tuple[int, int, int, int] | None,
    ) -> None:
        self.transposed = transposed
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel = kernel
        self.arguments = arguments  # (name, value text) after the tensors, e.g. ("stride", "2")
        self.groups = groups
        self.pad = pad  # (left, right, top, bottom) zeros F.pad adds first, or None
        self.uneven_same = False  # padding="same" that PyTorch splits unevenly

    @property
    def weight_shape(self) -> str:
        if self.transposed:
            return "(C, K/groups, kH, kW) PyTorch's layout for a transposed convolution"
        return "(K, C/groups, kH, kW) one kernel per feature map" if self.groups > 1 else \
            "(K, C, kH, kW) one kernel per feature map"


def _arrays(
    pixels: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    image = np.asarray(pixels, dtype=np.float64)
    kernels = np.asarray(weight, dtype=np.float64)
    if image.ndim != 3 or kernels.ndim != 4:
        raise ValueError("The input must be channels x height x width and the kernels count x channels x "
                         "height x width.")
    biases = None if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    if not (np.isfinite(image).all() and np.isfinite(kernels).all()
            and (biases is None or np.isfinite(biases).all())):
        raise ValueError("Every input, weight and bias value must be a finite number.")
    return image, kernels, biases


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, tuple | list) else (value, value)


def _text(pair: tuple) -> str:
    """One value when both axes agree, else the (height, width) pair, as Python text."""
    return repr(pair[0]) if pair[0] == pair[1] else repr(tuple(pair))


def _check_groups(channels: int, kernels: int, per_kernel: int, groups: int, transposed: bool) -> None:
    if not isinstance(groups, int | np.integer) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"Groups must be a whole number of at least 1, not {groups!r}.")
    if channels % groups or kernels % groups:
        raise ValueError(f"{groups} groups cannot split {channels} input channels and {kernels} kernels "
                         "evenly; pick groups that divide both.")
    expected = channels // groups
    if not transposed and per_kernel != expected:
        raise ValueError(f"Each kernel needs {expected} channel slice(s) (C/groups = {channels}/{groups}), "
                         f"not {per_kernel}.")


def _conv_layer(
    image: np.ndarray, weight: np.ndarray, stride, padding, dilation, groups: int,
) -> _Layer:
    channels, height, width = image.shape
    kernels, per_kernel, kernel_h, kernel_w = weight.shape
    _check_groups(channels, kernels, per_kernel, groups, transposed=False)
    modes = tuple(parse_padding(p) for p in _pair(padding))
    sizes = output_shape(height, width, (kernel_h, kernel_w), stride, modes, dilation)  # checks the fit
    strides = (sizes[0].stride, sizes[1].stride)
    dilations = (sizes[0].dilation, sizes[1].dilation)
    padding_text, pad = _padding_text(modes, sizes, strides)
    arguments = [("stride", _text(strides)), ("padding", padding_text), ("dilation", _text(dilations))]
    if groups > 1:
        arguments.append(("groups", str(groups)))
    layer = _Layer(False, channels, kernels, (kernel_h, kernel_w), arguments, groups, pad)
    layer.uneven_same = padding_text == '"same"' and not all(size.padding.symmetric for size in sizes)
    return layer


def _padding_text(
    modes: tuple, sizes: tuple[AxisSize, AxisSize], strides: tuple[int, int],
) -> tuple[str, tuple[int, int, int, int] | None]:
    """The padding argument PyTorch takes for these per-axis modes, and any uneven zeros to add first."""
    if modes == ("same", "same") and strides == (1, 1):
        return '"same"', None
    if modes == ("valid", "valid"):
        return '"valid"', None
    height, width = sizes[0].padding, sizes[1].padding
    if height.symmetric and width.symmetric:
        return _text((height.before, width.before)), None
    return "0", (width.before, width.after, height.before, height.after)


def _transposed_layer(
    image: np.ndarray, weight: np.ndarray, stride, padding, dilation, groups: int, output_padding,
) -> _Layer:
    channels, height, width = image.shape
    in_channels, per_group, kernel_h, kernel_w = weight.shape
    if in_channels != channels:
        raise ValueError(f"A transposed convolution's weight has one slice per input channel ({channels}), "
                         f"not {in_channels}: its layout is (C, K/groups, kH, kW).")
    _check_groups(channels, per_group * groups, per_group, groups, transposed=True)
    pads = tuple(0 if parse_padding(p) == "valid" else parse_padding(p) for p in _pair(padding))
    if any(isinstance(p, str) for p in pads):
        raise ValueError('A transposed convolution takes its padding as numbers, not "same".')
    strides, dilations, extras = _pair(stride), _pair(dilation), _pair(output_padding)
    for name, values, least in (("stride", strides, 1), ("dilation", dilations, 1), ("padding", pads, 0),
                                ("output padding", extras, 0)):
        if any(not isinstance(v, int | np.integer) or isinstance(v, bool) or v < least for v in values):
            raise ValueError(f"The {name} must be whole numbers of at least {least}, not {values!r}.")
    for axis, n, k, s, p, d, extra in zip(("height", "width"), (height, width), (kernel_h, kernel_w),
                                          strides, pads, dilations, extras, strict=True):
        if extra >= max(s, d):
            raise ValueError(f"The output padding ({extra}) must be smaller than the stride or the dilation "
                             f"along the {axis} ({s}, {d}).")
        out = (n - 1) * s - 2 * p + d * (k - 1) + extra + 1
        if out < 1:
            raise ValueError(f"The {axis} would be (n - 1) s - 2p + d (k - 1) + output_padding + 1 = "
                             f"({n} - 1)*{s} - 2*{p} + {d}*({k} - 1) + {extra} + 1 = {out}: "
                             "use less padding.")
    arguments = [("stride", _text(strides)), ("padding", _text(pads))]
    if extras != (0, 0):
        arguments.append(("output_padding", _text(extras)))
    if groups > 1:
        arguments.append(("groups", str(groups)))
    arguments.append(("dilation", _text(dilations)))
    return _Layer(True, channels, per_group * groups, (kernel_h, kernel_w), arguments, groups, None)


def _functional_lines(layer: _Layer, has_bias: bool) -> list[str]:
    function = "F.conv_transpose2d" if layer.transposed else "F.conv2d"
    options = ", ".join(f"{name}={value}" for name, value in layer.arguments)
    bias = "bias" if has_bias else "None"
    return ["# (K, Ho, Wo): one feature map per kernel",
            f"output = {function}(image[None], weight, {bias}, {options})[0]"]


def _module_lines(layer: _Layer, has_bias: bool) -> list[str]:
    kind = "nn.ConvTranspose2d" if layer.transposed else "nn.Conv2d"
    options = ", ".join(f"{name}={value}" for name, value in layer.arguments)
    lines = [
        f"conv = {kind}(",
        f"    {layer.in_channels}, {layer.out_channels}, kernel_size={_text(layer.kernel)}, {options},",
        f"    bias={has_bias}, dtype=torch.float64,",
        ")",
        "with torch.no_grad():",
        "    conv.weight.copy_(weight)  # these weights instead of random ones",
    ]
    if has_bias:
        lines.append("    conv.bias.copy_(bias)")
    lines += ["    output = conv(image[None])[0]  # (K, Ho, Wo): one feature map per kernel"]
    return lines


def tensor_code(name: str, values: np.ndarray, comment: str) -> str:
    """``name = torch.tensor([...], dtype=torch.float64)``, one row of numbers per line, aligned;
    whole numbers and one division where that gives exactly these values."""
    values = np.asarray(values, dtype=np.float64)
    denominator, numbers = _as_fraction(values)
    width = max(len(text) for text in numbers.flat)
    aligned = np.vectorize(lambda text: text.rjust(width), otypes=[object])(numbers)
    body = _nested(aligned, "")
    division = f" / {denominator}" if denominator != 1 else ""
    return f"{name} = torch.tensor({body}, dtype=torch.float64){division}  # {comment}"


def _as_fraction(values: np.ndarray) -> tuple[int, np.ndarray]:
    """The smallest denominator d of :data:`DENOMINATORS` with values == whole / d exactly (float64),
    and the numbers as text (whole numbers, or ``repr`` when no d fits)."""
    for denominator in DENOMINATORS:
        whole = np.round(values * denominator)
        if np.abs(whole).max(initial=0) <= MAX_WHOLE and np.array_equal(whole / denominator, values):
            return denominator, np.vectorize(lambda v: str(int(v)), otypes=[object])(whole)
    return 1, np.vectorize(lambda v: repr(float(v)), otypes=[object])(values)


def _nested(numbers: np.ndarray, indent: str) -> str:
    """Nested Python lists starting at column ``len(indent)``: a matrix one row per line, aligned under
    its first row; each outer level on lines of its own, indented one step more."""
    if numbers.ndim == 1:
        return "[" + ", ".join(numbers) + "]"
    if numbers.ndim == 2:
        return "[" + f",\n{indent} ".join(_nested(row, "") for row in numbers) + "]"
    inner = indent + "    "
    return "[\n" + "".join(f"{inner}{_nested(part, inner)},\n" for part in numbers) + indent + "]"
