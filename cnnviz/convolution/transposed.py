"""Transposed convolution written out two ways, both equal to ``torch.nn.functional.conv_transpose2d``.

1. **Stretch, pad, slide.** Put ``s - 1`` zeros between neighbouring input cells (per axis), pad
   the stretched input with ``d (k - 1) - p`` zeros on each side (a negative number crops instead)
   and ``output_padding`` more at the bottom/right, then slide the kernel *flipped* by 180 degrees
   over it at stride 1. The result is an ordinary :class:`ConvSteps`, so the page's step-by-step
   animation shows it unchanged; :class:`TransposedSteps` adds which cell of the stretched input
   is an input cell, an inserted zero or padding.
2. **Scatter.** Every input cell pastes ``value x kernel`` into the output, the kernel's corner at
   ``(i s - p, j s - p)``, taps ``d`` apart; overlapping pastes add up.

Per axis the output size is ``(n - 1) s - 2p + d (k - 1) + output_padding + 1``
(:mod:`cnnviz.convolution.transposed_sizes`). The same
operation is the gradient of a strided convolution with respect to its input
(:func:`conv2d_input_gradient`), which is where deep-learning libraries got it from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cnnviz.convolution.arithmetic import output_shape
from cnnviz.convolution.steps import ConvSteps, extract_windows
from cnnviz.convolution.transposed_sizes import TransposedAxis, pair, transposed_output_shape

MAX_INPUT_SIDE = 6  # a typed input grid: small enough to follow every paste by eye
MAX_INPUT_CHARS = 600
INPUT, INSERTED, PADDING = 0, 1, 2  # what each cell of the stretched, padded input is
CELL_KINDS = ("input cell", "inserted zero", "padding")


def parse_input_grid(text: str) -> np.ndarray:
    """Numbers typed one row per line (spaces or commas between them) -> an (H, W) input of at most
    :data:`MAX_INPUT_SIDE` a side; ValueError naming the row at fault."""
    if len(text) > MAX_INPUT_CHARS:
        raise ValueError(f"Keep the input to {MAX_INPUT_CHARS} characters: a "
                         f"{MAX_INPUT_SIDE}x{MAX_INPUT_SIDE} grid needs far fewer.")
    rows = []
    for number, line in enumerate(text.strip().splitlines(), start=1):
        tokens = [t for t in re.split(r"[\s,;]+", line.strip()) if t]
        if not tokens:
            continue
        try:
            rows.append([float(t) for t in tokens])
        except ValueError:
            raise ValueError(f"Row {number} of the input has something that is not a number: "
                             f"{line.strip()!r}.") from None
    if not rows:
        raise ValueError("Type the input as rows of numbers, one row per line.")
    if len({len(r) for r in rows}) != 1:
        raise ValueError("Every row of the input needs the same number of values; got rows of "
                         + ", ".join(str(len(r)) for r in rows) + ".")
    grid = np.array(rows, dtype=np.float64)
    if max(grid.shape) > MAX_INPUT_SIDE:
        raise ValueError(f"Keep the input at most {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}: every cell pastes a "
                         "whole kernel, and more would be too many to follow.")
    if not np.isfinite(grid).all() or np.abs(grid).max() > 1000:
        raise ValueError("Keep the input's numbers between -1000 and 1000.")
    return grid


def _axis_layout(size: TransposedAxis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along one axis of the stretched, padded input: each cell's kind, the input index it holds
    (-1 if none) and, for every stretched cell, where it lands (-1 when cropped)."""
    length = size.stretched + size.before + size.after
    stretched = np.arange(size.stretched) + size.before  # (n s - s + 1,) position after padding
    kinds = np.full(length, PADDING)
    sources = np.full(length, -1)
    kept = (stretched >= 0) & (stretched < length)
    positions = stretched[kept]
    originals = np.arange(size.stretched)[kept]
    is_input = originals % size.stride == 0
    kinds[positions] = np.where(is_input, INPUT, INSERTED)
    sources[positions[is_input]] = originals[is_input] // size.stride
    return kinds, sources, np.where(kept, stretched, -1)


@dataclass(frozen=True)
class TransposedSteps:
    """A transposed convolution as an ordinary convolution of the stretched, padded input."""

    image: np.ndarray  # (C, H, W) the input as given
    weight: np.ndarray  # (C, K, kH, kW) in PyTorch's conv_transpose2d layout
    sizes: tuple[TransposedAxis, TransposedAxis]
    steps: ConvSteps  # the flipped kernel sliding over the stretched input at stride 1
    kinds: np.ndarray  # (Hp, Wp) INPUT, INSERTED or PADDING for each cell of steps.padded
    source_rows: np.ndarray  # (Hp,) the input row a padded row holds, -1 for zeros
    source_cols: np.ndarray  # (Wp,) the input column a padded column holds, -1 for zeros

    @property
    def output(self) -> np.ndarray:
        """(K, Ho, Wo), equal to F.conv_transpose2d."""
        return self.steps.output

    @property
    def flipped(self) -> np.ndarray:
        """(K, C, kH, kW) the kernels as the sliding window uses them: turned 180 degrees."""
        return self.steps.weight

    def source(self, row: int, col: int) -> tuple[int, int] | None:
        """The input cell (row, col) that padded cell (row, col) holds, None for a zero."""
        if self.kinds[row, col] != INPUT:
            return None
        return int(self.source_rows[row]), int(self.source_cols[col])

    def count(self, kind: int) -> int:
        """How many cells of the stretched, padded input are of ``kind`` (INPUT, INSERTED, PADDING)."""
        return int((self.kinds == kind).sum())


def _prepare(image, weight, bias) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.asarray(image, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim == 2:
        weight = weight[None, None]  # (kH, kW) -> (1, 1, kH, kW)
    if image.ndim == 2:
        image = image[None]  # (H, W) -> (1, H, W)
    if image.ndim != 3 or weight.ndim != 4:
        raise ValueError(
            "The input must be channels x height x width and the kernels input channels x output "
            "channels x height x width."
        )
    if weight.shape[0] != image.shape[0]:
        raise ValueError(
            f"The input has {image.shape[0]} channel(s) but the kernels are laid out for "
            f"{weight.shape[0]}: a transposed convolution's weight is (input channels, output maps, kH, kW)."
        )
    outputs = weight.shape[1]
    bias = np.zeros(outputs) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    if bias.shape[0] != outputs:
        raise ValueError(f"There are {outputs} output maps but {bias.shape[0]} bias values.")
    return image, weight, bias


def _stretch(image: np.ndarray, sizes: tuple[TransposedAxis, TransposedAxis]) -> np.ndarray:
    """(C, H, W) -> (C, Hp, Wp): zeros between the cells, then the padding (or cropping) of each side."""
    height, width = sizes
    channels = image.shape[0]
    stretched = np.zeros((channels, height.stretched, width.stretched))
    stretched[:, :: height.stride, :: width.stride] = image
    pads = [(0, 0)]
    for size, axis in ((height, 1), (width, 2)):
        crop_before, crop_after = max(0, -size.before), max(0, -size.after)
        stretched = np.take(stretched, np.arange(crop_before, stretched.shape[axis] - crop_after), axis=axis)
        pads.append((max(0, size.before), max(0, size.after)))
    return np.pad(stretched, pads)


def transposed_steps(
    image: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    output_padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> TransposedSteps:
    """Every step of a 2-D transposed convolution as a stride-1 convolution; ValueError when impossible.

    Args:
        image: (C, H, W) input values (or (H, W) for one channel).
        weight: (C, K, kH, kW), PyTorch's conv_transpose2d layout: for each input channel, one
            kernel per output map; a (kH, kW) array is one kernel for one channel.
        bias: (K,) added to each output map (zeros if None).
        stride, padding, output_padding, dilation: ints or (height, width) pairs.
    """
    image, weight, bias = _prepare(image, weight, bias)
    kernel = weight.shape[2:]
    sizes = transposed_output_shape(image.shape[1], image.shape[2], kernel, stride, padding, output_padding,
                                    dilation)
    height, width = sizes
    padded = _stretch(image, sizes)  # (C, Hp, Wp)
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (K, C, kH, kW)
    dilation_hw = (height.dilation, width.dilation)
    windows = extract_windows(padded, kernel, (1, 1), dilation_hw, (height.output, width.output))
    windows = windows.transpose(1, 2, 0, 3, 4)  # (Ho, Wo, C, kH, kW)
    products = windows[None] * flipped[:, None, None]  # (K, Ho, Wo, C, kH, kW)
    sums = products.sum(axis=(3, 4, 5))  # (K, Ho, Wo)
    pad = (max(0, height.before), max(0, height.after), max(0, width.before), max(0, width.after))
    slide_sizes = output_shape(padded.shape[1], padded.shape[2], kernel, 1, 0, dilation_hw)
    steps = ConvSteps(padded, pad, flipped, bias, (1, 1), dilation_hw, slide_sizes, products, sums)
    row_kinds, source_rows, _ = _axis_layout(height)
    col_kinds, source_cols, _ = _axis_layout(width)
    kinds = np.maximum(row_kinds[:, None], col_kinds[None, :])  # padding beats inserted beats input
    return TransposedSteps(image, weight, sizes, steps, kinds, source_rows, source_cols)


@dataclass(frozen=True)
class ScatterSteps:
    """The scatter view: what every input cell pastes into the output."""

    image: np.ndarray  # (C, H, W)
    weight: np.ndarray  # (C, K, kH, kW)
    bias: np.ndarray  # (K,)
    sizes: tuple[TransposedAxis, TransposedAxis]
    contributions: np.ndarray  # (C, H, W, K, Ho, Wo): input cell (c, i, j)'s value x kernel, placed

    @property
    def output(self) -> np.ndarray:
        """(K, Ho, Wo) the sum of every contribution plus the bias: equal to F.conv_transpose2d."""
        return self.contributions.sum(axis=(0, 1, 2)) + self.bias[:, None, None]

    def footprint(self, row: int, col: int) -> tuple[np.ndarray, np.ndarray]:
        """Output rows and columns the kernel taps of input cell (row, col) land on (some may fall
        outside the output, where the padding crops them)."""
        height, width = self.sizes
        kernel_h, kernel_w = self.weight.shape[2:]
        rows = row * height.stride - height.padding + np.arange(kernel_h) * height.dilation
        cols = col * width.stride - width.padding + np.arange(kernel_w) * width.dilation
        return rows, cols

    def cropped_cells(self) -> list[tuple[int, int]]:
        """Input cells whose whole paste falls outside the output (the padding crops it away)."""
        height, width = self.sizes
        cropped = []
        for row, col in np.ndindex(*self.image.shape[1:]):
            rows, cols = self.footprint(row, col)
            lands_rows = ((rows >= 0) & (rows < height.output)).any()
            lands_cols = ((cols >= 0) & (cols < width.output)).any()
            if not (lands_rows and lands_cols):
                cropped.append((row, col))
        return cropped

    def running_total(self, count: int) -> np.ndarray:
        """(K, Ho, Wo) the output after the first ``count`` input cells (reading order, all channels)."""
        channels, rows, cols = self.image.shape
        flat = self.contributions.transpose(1, 2, 0, 3, 4, 5)  # (H, W, C, K, Ho, Wo)
        flat = flat.reshape(rows * cols, channels, *self.output.shape)
        return flat[:count].sum(axis=(0, 1))


def scatter_contributions(
    image: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    output_padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> ScatterSteps:
    """Each input cell's contribution to a transposed convolution: its value times every output map's
    kernel, the kernel's tap (a, b) landing on output (i s - p + a d, j s - p + b d); taps outside the
    output are cropped. Arguments as :func:`transposed_steps`."""
    image, weight, bias = _prepare(image, weight, bias)
    channels, rows, cols = image.shape
    outputs, kernel_h, kernel_w = weight.shape[1:]
    sizes = transposed_output_shape(rows, cols, (kernel_h, kernel_w), stride, padding, output_padding,
                                    dilation)
    height, width = sizes
    contributions = np.zeros((channels, rows, cols, outputs, height.output, width.output))
    scatter = ScatterSteps(image, weight, bias, sizes, contributions)
    for i in range(rows):
        for j in range(cols):
            out_rows, out_cols = scatter.footprint(i, j)
            keep_r = (out_rows >= 0) & (out_rows < height.output)
            keep_c = (out_cols >= 0) & (out_cols < width.output)
            pasted = image[:, i, j, None, None, None] * weight  # (C, K, kH, kW)
            block = pasted[:, :, keep_r][:, :, :, keep_c]
            contributions[:, i, j][np.ix_(range(channels), range(outputs), out_rows[keep_r],
                                          out_cols[keep_c])] = block
    return scatter


def gradient_output_padding(
    input_size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """The output_padding that makes a transposed convolution give back ``input_size``: the rows a
    stride-``stride`` convolution's last window leaves over, (n + 2p - d (k - 1) - 1) mod s."""
    return (input_size + 2 * padding - dilation * (kernel - 1) - 1) % stride


def conv2d_input_gradient(
    upstream: np.ndarray,
    weight: np.ndarray,
    input_size: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> np.ndarray:
    """The gradient of ``conv2d(x, weight, stride, padding, dilation)`` with respect to ``x``, computed
    as the transposed convolution of the upstream gradient with the same weight.

    Args:
        upstream: (K, Ho, Wo) the gradient arriving at the convolution's output.
        weight: (K, C, kH, kW) the convolution's kernels (conv2d layout, which is conv_transpose2d's
            layout read the other way: K in, C out).
        input_size: (H, W) of the convolution's input.
    Returns:
        (C, H, W).
    """
    weight = np.asarray(weight, dtype=np.float64)
    strides, paddings, dilations = pair(stride), pair(padding), pair(dilation)
    output_padding = tuple(
        gradient_output_padding(n, k, s, p, d)
        for n, k, s, p, d in zip(input_size, weight.shape[2:], strides, paddings, dilations, strict=True)
    )
    steps = transposed_steps(upstream, weight, None, strides, paddings, output_padding, dilations)
    return steps.steps.sums


def autograd_input_gradient(
    upstream: np.ndarray,
    weight: np.ndarray,
    input_size: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> np.ndarray:
    """The same gradient as :func:`conv2d_input_gradient`, from ``torch.autograd.grad`` (float64)."""
    weight_t = torch.as_tensor(np.asarray(weight, dtype=np.float64))
    x = torch.zeros((1, weight_t.shape[1], *input_size), dtype=torch.float64, requires_grad=True)
    out = F.conv2d(x, weight_t, stride=pair(stride), padding=pair(padding), dilation=pair(dilation))
    grad_out = torch.as_tensor(np.asarray(upstream, dtype=np.float64))[None]
    if grad_out.shape != out.shape:
        raise ValueError(
            f"The upstream gradient is {tuple(grad_out.shape[1:])} but the convolution's output is "
            f"{tuple(out.shape[1:])}; they must match."
        )
    # The gradient of sum(out * upstream) is the same vector-Jacobian product; passing grad_outputs
    # instead makes torch import sympy on first use (0.6 s holding the server's GIL, issue 20's load test).
    (grad,) = torch.autograd.grad((out * grad_out).sum(), x)
    return grad[0].numpy()
