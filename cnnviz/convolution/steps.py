"""Convolution written out step by step: for every output cell, which input cells the kernel
covers, the element-wise products, their sum, the bias and the output value.

All numbers are float64 so they can be shown to the last digit; the assembled output equals
``torch.nn.functional.conv2d`` (what deep-learning libraries call convolution is, strictly,
cross-correlation: the kernel is not flipped; :func:`flip_kernels` gives the kernel a true
convolution slides). With ``groups`` the channels are split into groups, and each kernel sees only
its own group's channels, as in ``conv2d(..., groups=g)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnviz.convolution.arithmetic import AxisSize, output_shape
from cnnviz.convolution.channels import check_groups


@dataclass(frozen=True)
class ConvStep:
    """One output cell of one kernel."""

    kernel_index: int
    row: int  # output row
    col: int  # output column
    rows: np.ndarray  # (kH,) padded-input rows the kernel taps
    cols: np.ndarray  # (kW,) padded-input columns the kernel taps
    inputs: np.ndarray  # (C/groups, kH, kW) input values under the kernel, its group's channels only
    products: np.ndarray  # (C/groups, kH, kW) input * kernel weight
    total: float  # sum of the products
    bias: float
    value: float  # total + bias


@dataclass(frozen=True)
class ConvSteps:
    """Every step of a convolution, held as arrays so that any step is one index away."""

    padded: np.ndarray  # (C, Hp, Wp) the input with its zero padding
    pad: tuple[int, int, int, int]  # zeros added (top, bottom, left, right)
    weight: np.ndarray  # (K, C/groups, kH, kW)
    bias: np.ndarray  # (K,)
    stride: tuple[int, int]
    dilation: tuple[int, int]
    sizes: tuple[AxisSize, AxisSize]  # height and width arithmetic
    products: np.ndarray  # (K, Ho, Wo, C/groups, kH, kW)
    sums: np.ndarray  # (K, Ho, Wo) sum of the products, before the bias
    groups: int = 1  # kernel k sees the input channels of group k // (K/groups)

    @property
    def output(self) -> np.ndarray:
        """(K, Ho, Wo) the feature maps: sums + bias."""
        return self.sums + self.bias[:, None, None]

    @property
    def output_size(self) -> tuple[int, int]:
        return self.sums.shape[1], self.sums.shape[2]

    def input_channels(self, kernel_index: int) -> np.ndarray:
        """The input channels kernel ``kernel_index`` sees: all of them unless the layer is grouped."""
        per_group = self.weight.shape[1]
        group = kernel_index // (self.weight.shape[0] // self.groups)
        return np.arange(group * per_group, (group + 1) * per_group)

    def tap_rows(self, row: int) -> np.ndarray:
        """Padded-input rows the kernel covers for output row ``row``."""
        kernel_h = self.weight.shape[2]
        return row * self.stride[0] + np.arange(kernel_h) * self.dilation[0]

    def tap_cols(self, col: int) -> np.ndarray:
        """Padded-input columns the kernel covers for output column ``col``."""
        kernel_w = self.weight.shape[3]
        return col * self.stride[1] + np.arange(kernel_w) * self.dilation[1]

    def step(self, kernel_index: int, row: int, col: int) -> ConvStep:
        """The numbers behind output cell (row, col) of kernel ``kernel_index``."""
        rows, cols = self.tap_rows(row), self.tap_cols(col)
        inputs = self.padded[self.input_channels(kernel_index)][:, rows][:, :, cols]  # (C/groups, kH, kW)
        total = float(self.sums[kernel_index, row, col])
        bias = float(self.bias[kernel_index])
        return ConvStep(
            kernel_index,
            row,
            col,
            rows,
            cols,
            inputs,
            self.products[kernel_index, row, col],
            total,
            bias,
            total + bias,
        )


def pad_input(image: np.ndarray, pad: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """(C, H, W) -> (C, H + top + bottom, W + left + right) filled with ``value`` around."""
    top, bottom, left, right = pad
    return np.pad(image, ((0, 0), (top, bottom), (left, right)), constant_values=value)


def extract_windows(
    padded: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    output: tuple[int, int],
) -> np.ndarray:
    """(C, Hp, Wp) -> (C, Ho, Wo, kH, kW): the input values under each window, a view not a copy."""
    span_h = dilation[0] * (kernel[0] - 1) + 1
    span_w = dilation[1] * (kernel[1] - 1) + 1
    windows = sliding_window_view(padded, (span_h, span_w), axis=(1, 2))  # (C, Hp-span+1, Wp-span+1, sh, sw)
    windows = windows[:, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]
    return windows[:, : output[0], : output[1]]


def convolve_steps(
    image: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> ConvSteps:
    """Every step of a 2-D convolution; ValueError (with the reason) when the setting does not fit.

    Args:
        image: (C, H, W) input values.
        weight: (K, C/groups, kH, kW) one kernel per output feature map; a (kH, kW) array is one
            kernel for a one-channel input.
        bias: (K,) added to each feature map (zeros if None).
        padding: zeros per side, "same", "valid", or a (height, width) pair of those.
        groups: split the C input channels and the K kernels into this many groups; kernel k sees
            only the C/groups channels of its group (groups = C is a depthwise convolution).
    """
    image = np.asarray(image, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim == 2:
        weight = weight[None, None]  # (kH, kW) -> (1, 1, kH, kW)
    if image.ndim != 3 or weight.ndim != 4:
        raise ValueError(
            "The input must be channels x height x width and the kernels count x channels x height x width."
        )
    check_groups(image.shape[0], weight.shape[0], groups)
    if weight.shape[1] * groups != image.shape[0]:
        if groups > 1:
            channels = image.shape[0]
            raise ValueError(
                f"With {groups} groups each kernel sees {channels}/{groups} = {channels // groups} "
                f"input channel(s), but the kernels have {weight.shape[1]}."
            )
        raise ValueError(
            f"Each kernel has {weight.shape[1]} channel(s) but the input has {image.shape[0]}; "
            "a kernel needs one slice per input channel."
        )
    bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    if bias.shape[0] != weight.shape[0]:
        raise ValueError(f"There are {weight.shape[0]} kernels but {bias.shape[0]} bias values.")
    kernel = (weight.shape[2], weight.shape[3])
    sizes = output_shape(image.shape[1], image.shape[2], kernel, stride, padding, dilation)
    height, width = sizes
    pad = (height.padding.before, height.padding.after, width.padding.before, width.padding.after)
    padded = pad_input(image, pad)
    stride_hw = (height.stride, width.stride)
    dilation_hw = (height.dilation, width.dilation)
    windows = extract_windows(padded, kernel, stride_hw, dilation_hw, (height.output, width.output))
    kernels, per_group = weight.shape[:2]
    out_h, out_w = height.output, width.output
    windows = windows.reshape(groups, per_group, out_h, out_w, *kernel)  # (g, C/g, Ho, Wo, kH, kW)
    windows = windows.transpose(0, 2, 3, 1, 4, 5)  # (g, Ho, Wo, C/g, kH, kW)
    grouped = weight.reshape(groups, kernels // groups, per_group, *kernel)  # (g, K/g, C/g, kH, kW)
    products = windows[:, None] * grouped[:, :, None, None]  # (g, K/g, Ho, Wo, C/g, kH, kW)
    products = products.reshape(kernels, out_h, out_w, per_group, *kernel)  # (K, Ho, Wo, C/g, kH, kW)
    sums = clean_sums(products.sum(axis=(3, 4, 5)), products, axis=(3, 4, 5))  # (K, Ho, Wo)
    return ConvSteps(padded, pad, weight, bias, stride_hw, dilation_hw, sizes, products, sums, groups)


def flip_kernels(weight: np.ndarray) -> np.ndarray:
    """(..., kH, kW) -> each kernel turned by 180 degrees (flipped up-down and left-right).

    A true convolution, sum over m, n of x[i - m, j - n] k[m, n], is the cross-correlation that
    deep-learning libraries compute, slid with this flipped kernel.
    """
    return np.ascontiguousarray(np.asarray(weight)[..., ::-1, ::-1])


def clean_sums(sums: np.ndarray, products: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """The sums with their rounding noise around 0 made exactly 0.

    Products that cancel (a Laplacian on a flat patch, a kernel divided by 3 over R, G and B) leave
    a float64 sum such as 5.55e-17 instead of 0; the page would write it out and ReLU would count
    -5.55e-17 as negative. A sum of n products is off by at most n * eps * sum(|products|), so a sum
    within that bound of 0 is 0 (it differs from torch's by no more than torch's own rounding).

    Args:
        sums: the products summed over ``axis``.
        products: the terms, with the summed axes at ``axis``.
    """
    count = int(np.prod([products.shape[a] for a in axis]))
    bound = count * np.finfo(np.float64).eps * np.abs(products).sum(axis=axis)
    return np.where(np.abs(sums) <= bound, 0.0, sums)


def relu(feature_map: np.ndarray) -> np.ndarray:
    """max(0, x) cell by cell: negative responses become 0, positive ones pass unchanged."""
    return np.maximum(np.asarray(feature_map, dtype=np.float64), 0.0)


def mix_channels(image: np.ndarray, weights: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """A 1x1 convolution: each output channel is a weighted sum of the input channels at every pixel.

    Args:
        image: (C, H, W).
        weights: (K, C) one row of channel weights per output channel.
        bias: (K,) or None.
    Returns:
        (K, H, W), equal to conv2d with a (K, C, 1, 1) kernel.
    """
    image = np.asarray(image, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != image.shape[0]:
        raise ValueError(
            f"A 1x1 convolution needs one weight per input channel ({image.shape[0]}) "
            "for each output channel."
        )
    mixed = np.einsum("kc,chw->khw", weights, image)
    return mixed if bias is None else mixed + np.asarray(bias, dtype=np.float64)[:, None, None]
