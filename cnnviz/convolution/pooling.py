"""Max and average pooling step by step, and where max pooling sends the gradient back.

Max pooling pads with minus infinity (padding never wins), average pooling pads with zeros that
count in the average, as ``max_pool2d`` and ``avg_pool2d`` (count_include_pad=True) do. A window's
winner is its first maximum in reading order, as PyTorch picks it, also when two values differ only
by rounding noise (0.1 + 0.2 against 0.3): those count as a tie.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnviz.convolution.arithmetic import AxisSize, output_shape
from cnnviz.convolution.steps import extract_windows, pad_input

MAX = "max"
AVERAGE = "average"  # spelled out as on the page ("avg" is only the network spec's short word)
POOL_MODES = (MAX, AVERAGE)
TIE = 1e-12  # values this close, relative to the map's largest magnitude, are equal for max pooling


@dataclass(frozen=True)
class PoolSteps:
    """Every window of a pooling layer over a (C, H, W) input."""

    mode: str  # MAX or AVERAGE
    padded: np.ndarray  # (C, Hp, Wp); -inf padding for max, 0 for average
    pad: tuple[int, int, int, int]  # (top, bottom, left, right)
    window: tuple[int, int]
    stride: tuple[int, int]
    sizes: tuple[AxisSize, AxisSize]
    windows: np.ndarray  # (C, Ho, Wo, kH, kW) the values in each window
    output: np.ndarray  # (C, Ho, Wo)
    winners: np.ndarray  # (C, Ho, Wo, 2) padded-input (row, col) of each window's max (max mode)

    def tap_rows(self, row: int) -> np.ndarray:
        return row * self.stride[0] + np.arange(self.window[0])

    def tap_cols(self, col: int) -> np.ndarray:
        return col * self.stride[1] + np.arange(self.window[1])


def pool_steps(
    image: np.ndarray,
    window: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | str | tuple = 0,
    mode: str = MAX,
) -> PoolSteps:
    """Every window of max or average pooling; ValueError with the reason when it does not fit.

    Args:
        image: (C, H, W).
        window: pooling window size; stride defaults to the window (non-overlapping windows).
    """
    if mode not in POOL_MODES:
        raise ValueError(f"Pooling is {MAX!r} or {AVERAGE!r}, not {mode!r}.")
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3:
        raise ValueError("The pooling input must be channels x height x width.")
    stride = window if stride is None else stride
    sizes = output_shape(image.shape[1], image.shape[2], window, stride, padding, 1, pool=True)
    height, width = sizes
    pad = (height.padding.before, height.padding.after, width.padding.before, width.padding.after)
    padded = pad_input(image, pad, -np.inf if mode == MAX else 0.0)
    window_hw = (height.kernel, width.kernel)
    stride_hw = (height.stride, width.stride)
    windows = extract_windows(padded, window_hw, stride_hw, (1, 1), (height.output, width.output))
    flat = windows.reshape(*windows.shape[:3], -1)  # (C, Ho, Wo, kH*kW)
    if mode == MAX:
        best = first_maximum(flat, TIE * float(np.abs(image).max(initial=0.0)))
        output = np.take_along_axis(flat, best[..., None], axis=-1)[..., 0]
        rows = np.arange(height.output)[:, None] * stride_hw[0] + best // window_hw[1]
        cols = np.arange(width.output)[None, :] * stride_hw[1] + best % window_hw[1]
        winners = np.stack([rows, cols], axis=-1)
    else:
        output = flat.mean(axis=-1)
        winners = np.zeros((*output.shape, 2), dtype=np.int64)
    return PoolSteps(mode, padded, pad, window_hw, stride_hw, sizes, windows, output, winners)


def first_maximum(values: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """Index along the last axis of the first value within ``tolerance`` of the largest: the first
    maximum in reading order, with values that differ only by rounding noise taken as tied."""
    largest = values.max(axis=-1, keepdims=True)
    return (values >= largest - tolerance).argmax(axis=-1)


def max_pool_gradient(steps: PoolSteps, upstream: np.ndarray) -> np.ndarray:
    """The gradient max pooling passes back to its input.

    Each output's upstream gradient lands only on the cell that won its window; cells that won
    several overlapping windows collect the sum, all other cells get 0.

    Args:
        upstream: (C, Ho, Wo) the gradient arriving at the pooled output.
    Returns:
        (C, H, W) the gradient at the (unpadded) input.
    """
    if steps.mode != MAX:
        raise ValueError("Gradient routing is shown for max pooling.")
    upstream = np.asarray(upstream, dtype=np.float64)
    if upstream.shape != steps.output.shape:
        raise ValueError(
            f"The upstream gradient must have the pooled output's shape {steps.output.shape} "
            f"(one value per pooled cell), not {upstream.shape}."
        )
    gradient = np.zeros(steps.padded.shape)
    channels = np.arange(upstream.shape[0])[:, None, None] * np.ones(upstream.shape, dtype=np.int64)
    np.add.at(gradient, (channels, steps.winners[..., 0], steps.winners[..., 1]), upstream)
    top, bottom, left, right = steps.pad
    return gradient[:, top : gradient.shape[1] - bottom, left : gradient.shape[2] - right]
