"""One step of a picked cell's computation, from the layer's own module and its real input.

Each function takes the module, what it received (``(1, C, H, W)`` or ``(1, D)``, the model's own
numbers) and the output cell, and returns the step's record (:mod:`cnnviz.explorer.cell_terms`). The
arithmetic runs in float64 on the model's float32 inputs, so the terms add up to the result exactly
and the result equals the layer's own output to float32 rounding.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from cnnviz.explorer.cell_terms import (
    AvgPoolStep,
    BatchNormStep,
    Cell,
    ConvChannel,
    ConvStep,
    DropoutStep,
    FlattenStep,
    LinearStep,
    LinearTerm,
    MaxPoolStep,
    ReluStep,
    ResidualStep,
    Rest,
)


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _matrix(array: np.ndarray) -> tuple:
    return tuple(tuple(float(v) for v in row) for row in array)


def _mask(array: np.ndarray) -> tuple:
    return tuple(tuple(bool(v) for v in row) for row in array)


def _numpy(x: torch.Tensor) -> np.ndarray:
    """The one image of a batch as float64."""
    return x[0].detach().to(torch.float64).numpy()


def conv_pad_before(conv: nn.Conv2d) -> tuple[int, int]:
    """Zeros above and left of the input. PyTorch's ``padding="same"`` pads ``dilation * (kernel - 1)``
    in all, half (rounded down) before and the rest after: an even kernel gets one more zero after."""
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return 0, 0
        return tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))
    return _pair(conv.padding)


def _window_positions(index: int, stride: int, before: int, size: int, dilation: int) -> np.ndarray:
    return index * stride - before + dilation * np.arange(size)


def _window(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """``x[:, rows, cols]`` (C, len(rows), len(cols)) with ``fill`` outside the map, and the padding mask."""
    height, width = x.shape[-2:]
    inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
    window = x[:, np.clip(rows, 0, height - 1)[:, None], np.clip(cols, 0, width - 1)[None, :]]
    return np.where(inside[None], window, fill), ~inside


def _top(values: np.ndarray, count: int) -> tuple[np.ndarray, Rest | None]:
    """Indices of the ``count`` largest |values|, largest first (ties: lower index first), and the rest."""
    order = np.argsort(-np.abs(values), kind="stable")
    shown, others = order[:max(count, 0)], order[max(count, 0):]
    return shown, (Rest(len(others), float(values[others].sum())) if len(others) else None)


def conv_step(conv: nn.Conv2d, x: torch.Tensor, layer: int, cell: Cell, source: str,
              top_channels: int) -> ConvStep:
    """Output ``cell`` of ``conv`` over its input ``x``: per input channel window * kernel slice."""
    if conv.groups != 1 or conv.padding_mode != "zeros":
        raise ValueError("The explorer explains convolutions with groups=1 and zero padding only.")
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    top, left = conv_pad_before(conv)
    rows = _window_positions(cell.row, sh, top, kh, dh)
    cols = _window_positions(cell.col, sw, left, kw, dw)
    windows, padding = _window(_numpy(x), rows, cols, 0.0)
    kernels = conv.weight[cell.channel].detach().to(torch.float64).numpy()
    products = windows * kernels
    partial = products.sum(axis=(1, 2))
    shown, rest = _top(partial, top_channels)
    bias = None if conv.bias is None else float(conv.bias[cell.channel])
    channels = tuple(ConvChannel(int(c), _matrix(windows[c]), _matrix(kernels[c]), _matrix(products[c]),
                                 float(partial[c])) for c in shown)
    return ConvStep(
        layer=layer, cell=cell, source=source, rows=tuple(int(r) for r in rows),
        cols=tuple(int(c) for c in cols), padding=_mask(padding), kernel_size=(kh, kw), stride=(sh, sw),
        dilation=(dh, dw), pad_before=(top, left), in_channels=int(windows.shape[0]), channels=channels,
        rest=rest, bias=bias, result=float(partial.sum() + (bias or 0.0)),
    )


def batchnorm_step(norm: nn.BatchNorm2d, x: torch.Tensor, layer: int, cell: Cell) -> BatchNormStep:
    """``(x - running mean) / sqrt(running var + eps) * weight + bias`` at ``cell``."""
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError("The explorer explains BatchNorm layers that keep running statistics only.")
    c = cell.channel
    value = float(x[0, c, cell.row, cell.col])
    mean, var = float(norm.running_mean[c]), float(norm.running_var[c])
    weight = 1.0 if norm.weight is None else float(norm.weight[c])
    bias = 0.0 if norm.bias is None else float(norm.bias[c])
    result = (value - mean) / math.sqrt(var + norm.eps) * weight + bias
    return BatchNormStep(layer, cell, value, mean, var, float(norm.eps), weight, bias, result)


def cell_value(x: torch.Tensor, cell: Cell) -> float:
    """The value of a (1, C, H, W) or (1, D) tensor at ``cell``."""
    return float(x[0, cell.channel, cell.row, cell.col] if x.dim() == 4 else x[0, cell.channel])


def relu_step(x: torch.Tensor, layer: int, cell: Cell) -> ReluStep:
    value = cell_value(x, cell)
    return ReluStep(layer, cell, value, max(0.0, value))


def dropout_step(dropout: nn.Dropout, x: torch.Tensor, layer: int, cell: Cell) -> DropoutStep:
    value = cell_value(x, cell)
    return DropoutStep(layer, cell, float(dropout.p), value, value)


def maxpool_step(pool: nn.MaxPool2d, x: torch.Tensor, layer: int, cell: Cell) -> MaxPoolStep:
    """The window of the layer below and its first maximum in row-major order (PyTorch's winner)."""
    (kh, kw), (sh, sw) = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size)
    (ph, pw), (dh, dw) = _pair(pool.padding), _pair(pool.dilation)
    rows = _window_positions(cell.row, sh, ph, kh, dh)
    cols = _window_positions(cell.col, sw, pw, kw, dw)
    windows, padding = _window(_numpy(x)[cell.channel:cell.channel + 1], rows, cols, -math.inf)
    window = windows[0]
    i, j = np.unravel_index(int(np.argmax(window)), window.shape)  # argmax: the first maximum
    return MaxPoolStep(layer, cell, tuple(int(r) for r in rows), tuple(int(c) for c in cols), _matrix(window),
                       _mask(padding), (int(rows[i]), int(cols[j])), float(window[i, j]))


def avgpool_step(pool: nn.AvgPool2d | nn.AdaptiveAvgPool2d, x: torch.Tensor, layer: int,
                 cell: Cell) -> AvgPoolStep:
    """The window of the layer below and its mean (adaptive pools: PyTorch's floor/ceil windows)."""
    height, width = x.shape[-2:]
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        out_h, out_w = _pair(pool.output_size)
        out_h, out_w = out_h or height, out_w or width
        rows = np.arange(cell.row * height // out_h, -(-(cell.row + 1) * height // out_h))
        cols = np.arange(cell.col * width // out_w, -(-(cell.col + 1) * width // out_w))
        windows, padding = _window(_numpy(x)[cell.channel:cell.channel + 1], rows, cols, 0.0)
        divisor = rows.size * cols.size
    else:
        (kh, kw), (sh, sw) = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size)
        ph, pw = _pair(pool.padding)
        rows = _window_positions(cell.row, sh, ph, kh, 1)
        cols = _window_positions(cell.col, sw, pw, kw, 1)
        windows, padding = _window(_numpy(x)[cell.channel:cell.channel + 1], rows, cols, 0.0)
        # With count_include_pad the padding counts, but never past the padded map's edge.
        in_pad = ((rows >= -ph) & (rows < height + ph))[:, None] & ((cols >= -pw) & (cols < width + pw))[None]
        counted = in_pad if pool.count_include_pad else ~padding
        divisor = pool.divisor_override or int(counted.sum())
    total = float(windows[0].sum())
    return AvgPoolStep(layer, cell, tuple(int(r) for r in rows), tuple(int(c) for c in cols),
                       _matrix(windows[0]), _mask(padding), total, int(divisor), total / divisor)


def unflatten(index: int, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Which (channel, row, col) of a (C, H, W) map position ``index`` of its flattened vector is."""
    if len(shape) == 1:
        return index, 0, 0
    channel, row, col = np.unravel_index(index, shape)
    return int(channel), int(row), int(col)


def flatten_step(x: torch.Tensor, layer: int, cell: Cell) -> FlattenStep:
    source = unflatten(cell.channel, tuple(x.shape[1:]))
    value = float(x[0][source] if x.dim() == 4 else x[0, cell.channel])
    return FlattenStep(layer, cell, source, value)


def linear_step(linear: nn.Linear, x: torch.Tensor, layer: int, cell: Cell, top_terms: int,
                flat_shape: tuple[int, ...] | None) -> LinearStep:
    """A dense unit's dot product; ``flat_shape`` (C, H, W) names the flattened map its inputs come from."""
    inputs = _numpy(x)
    weights = linear.weight[cell.channel].detach().to(torch.float64).numpy()
    products = inputs * weights
    shown, rest = _top(products, top_terms)
    terms = tuple(LinearTerm(int(i), float(inputs[i]), float(weights[i]), float(products[i]),
                             unflatten(int(i), flat_shape) if flat_shape else None) for i in shown)
    bias = None if linear.bias is None else float(linear.bias[cell.channel])
    return LinearStep(layer, cell, int(inputs.shape[0]), terms, rest, bias,
                      float(products.sum() + (bias or 0.0)))


def residual_step(block: nn.Module, x: torch.Tensor, layer: int, cell: Cell,
                  top_channels: int) -> ResidualStep:
    """``shortcut(x) + ReLU(BN(conv2(h)))``: the body's own intermediate map h is computed from its
    submodules (conv, BN, ReLU, conv, BN, ReLU) on the block's real input."""
    body = list(block.body)
    hidden = body[2](body[1](body[0](x)))
    second = body[3](hidden)
    normed = body[4](second.clone())
    body_conv = conv_step(body[3], hidden, layer, cell, "the block's own map ReLU(BN(conv1(x)))",
                          top_channels)
    body_norm = batchnorm_step(body[4], second, layer, cell)
    body_relu = relu_step(normed, layer, cell)
    shortcut_conv = shortcut_norm = shortcut_x = None
    if isinstance(block.shortcut, nn.Identity):
        shortcut = shortcut_x = cell_value(x, cell)
    else:
        conv, norm = block.shortcut[0], block.shortcut[1]
        shortcut_conv = conv_step(conv, x, layer, cell, "the block's input (1x1 shortcut)", top_channels)
        shortcut_norm = batchnorm_step(norm, conv(x), layer, cell)
        shortcut = float(block.shortcut(x)[0, cell.channel, cell.row, cell.col])
    return ResidualStep(layer, cell, body_conv, body_norm, body_relu, shortcut_x, shortcut_conv,
                        shortcut_norm, shortcut, shortcut + body_relu.result)
