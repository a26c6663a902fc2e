"""The records of a picked cell's computation: one dataclass per kind of step, all plain data.

Every number is a Python float (matrices are tuples of tuples), so the page can draw tables and
figures from them and :meth:`CellExplanation.to_dict` gives JSON. The steps of an explanation run
forward: ``steps[0]`` is the convolution / dense layer / residual block (or the input image) the chain
starts from, ``steps[-1]`` the picked layer, whose ``result`` is the picked cell's value.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

Matrix = tuple[tuple[float, ...], ...]
Mask = tuple[tuple[bool, ...], ...]


@dataclass(frozen=True)
class Cell:
    """One number of a layer's output: ``layer`` as the summary numbers it, then channel, row, column.

    Dense layers (and the logits) have one number per unit: ``channel`` is the unit, row = col = 0.
    """

    layer: int
    channel: int
    row: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"layer {self.layer}, channel {self.channel}, row {self.row}, column {self.col}"


@dataclass(frozen=True)
class Rest:
    """The terms not shown one by one: how many, and what they add up to."""

    count: int
    total: float


@dataclass(frozen=True)
class ConvChannel:
    """One input channel's share of a convolution output: window * kernel slice, summed."""

    channel: int
    window: Matrix  # the layer below's values under the kernel (0.0 where the window is on padding)
    kernel: Matrix  # the learned weights for this (output channel, input channel)
    products: Matrix  # window * kernel, element by element
    partial_sum: float


@dataclass(frozen=True)
class ConvStep:
    """A Conv2d output cell: sum over input channels of window * kernel, plus the bias."""

    KIND: ClassVar[str] = "conv"
    layer: int
    cell: Cell  # the output cell at this layer (for a residual block's convs: the block's layer number)
    source: str  # where the windows are taken from: "the input image", "layer 3's output", ...
    rows: tuple[int, ...]  # input rows under the kernel (outside 0..H-1: padding)
    cols: tuple[int, ...]  # input columns under the kernel
    padding: Mask  # True where the window lies on the zero padding
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad_before: tuple[int, int]  # zeros added above and to the left (PyTorch "same", even kernel: one fewer)
    in_channels: int
    channels: tuple[ConvChannel, ...]  # the input channels with the largest |partial sum|, largest first
    rest: Rest | None  # the other input channels, None when every channel is shown
    bias: float | None  # None: the layer has no bias (it is followed by BatchNorm)
    result: float  # sum of all partial sums + bias


@dataclass(frozen=True)
class BatchNormStep:
    """``(x - mean) / sqrt(var + eps) * weight + bias`` with the running statistics (eval mode)."""

    KIND: ClassVar[str] = "batchnorm"
    layer: int
    cell: Cell
    x: float
    mean: float
    var: float
    eps: float
    weight: float
    bias: float
    result: float

    def formula(self) -> str:
        """The formula with its numbers."""
        return (f"({self.x:.4f} - {_signed(self.mean)}) / sqrt({self.var:.4f} + {self.eps:g}) * "
                f"{_signed(self.weight)} + {_signed(self.bias)} = {self.result:.4f}")


@dataclass(frozen=True)
class ReluStep:
    """``max(0, x)``."""

    KIND: ClassVar[str] = "relu"
    layer: int
    cell: Cell
    x: float
    result: float


@dataclass(frozen=True)
class DropoutStep:
    """Dropout in eval mode passes every value through unchanged."""

    KIND: ClassVar[str] = "dropout"
    layer: int
    cell: Cell
    p: float
    x: float
    result: float


@dataclass(frozen=True)
class MaxPoolStep:
    """The largest value of the window; the chain continues at the winner (the first maximum, as PyTorch)."""

    KIND: ClassVar[str] = "maxpool"
    layer: int
    cell: Cell
    rows: tuple[int, ...]  # rows of the layer below under the window
    cols: tuple[int, ...]
    window: Matrix  # -inf where the window lies on padding
    padding: Mask
    winner: tuple[int, int]  # (row, col) of the winner in the layer below
    result: float


@dataclass(frozen=True)
class AvgPoolStep:
    """The mean of the window (AvgPool2d or AdaptiveAvgPool2d); the chain stops here."""

    KIND: ClassVar[str] = "avgpool"
    layer: int
    cell: Cell
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    window: Matrix  # 0.0 where the window lies on padding
    padding: Mask
    total: float
    divisor: int
    result: float


@dataclass(frozen=True)
class FlattenStep:
    """A unit of the flattened vector is one (channel, row, col) of the maps before."""

    KIND: ClassVar[str] = "flatten"
    layer: int
    cell: Cell
    source: tuple[int, int, int]  # (channel, row, col) of the layer below
    result: float


@dataclass(frozen=True)
class LinearTerm:
    """One input's contribution to a dense unit: ``weight * x``."""

    index: int  # position in the layer's input vector
    x: float
    weight: float
    product: float
    source: tuple[int, int, int] | None  # (channel, row, col) it was flattened from (first dense layer)


@dataclass(frozen=True)
class LinearStep:
    """A dense unit: the dot product of its weights with the input vector, plus the bias."""

    KIND: ClassVar[str] = "linear"
    layer: int
    cell: Cell
    in_features: int
    terms: tuple[LinearTerm, ...]  # the largest |weight * x|, largest first
    rest: Rest | None
    bias: float | None
    result: float


@dataclass(frozen=True)
class ResidualStep:
    """A residual block: ``shortcut(x) + ReLU(BN(conv2(h)))`` with h = ReLU(BN(conv1(x))), the body's own
    intermediate map. The chain stops here (it has two paths)."""

    KIND: ClassVar[str] = "residual"
    layer: int
    cell: Cell
    body_conv: ConvStep  # the body's second convolution over h
    body_norm: BatchNormStep
    body_relu: ReluStep
    shortcut_x: float | None  # the block input at the cell (None with a 1x1 shortcut convolution)
    shortcut_conv: ConvStep | None  # 1x1 convolution when the channel count changes, else None (identity)
    shortcut_norm: BatchNormStep | None
    shortcut: float  # the shortcut's value
    result: float  # shortcut + body


@dataclass(frozen=True)
class InputStep:
    """The chain reached the normalized input image."""

    KIND: ClassVar[str] = "input"
    layer: int  # -1
    cell: Cell
    result: float


@dataclass(frozen=True)
class Softmax:
    """The probability of one logit: ``exp(logit - max) / sum(exp(logits - max))``."""

    index: int
    label: str
    logits: tuple[float, ...]
    max_logit: float
    exp_sum: float  # sum of exp(logits - max)
    probability: float
    explained: str  # the formula with its numbers, as the predict page says it


Step = (ConvStep | BatchNormStep | ReluStep | DropoutStep | MaxPoolStep | AvgPoolStep | FlattenStep
        | LinearStep | ResidualStep | InputStep)


@dataclass(frozen=True)
class CellExplanation:
    """A picked cell's value and the chain of operations that made it, each with its own numbers."""

    cell: Cell
    layer_name: str  # "3 · Conv2d (C32n)"
    kind: str  # the picked layer's class name
    shape: tuple[int, ...]  # the picked layer's output shape without the batch: (C, H, W) or (D,)
    value: float  # the model's own output at the cell
    steps: tuple[Step, ...]  # forward order; steps[-1].result is the value
    softmax: Softmax | None  # for the logits (the last layer)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (non-finite numbers, such as a max pool's padding, become None)."""
        return _plain(self)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"kind": value.KIND} if hasattr(value, "KIND") else {}
        out.update({f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)})
        return out
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _signed(value: float) -> str:
    """A number after an operator: ``(-0.5582)`` in brackets when negative, so no "- -" or "+ -"."""
    return f"({value:.4f})" if value < 0 else f"{value:.4f}"
