"""A trained convolution layer as the Convolution page runs it: the real input of the layer (the layer
before's output for one image), the learned kernel of one output channel, its bias, stride, padding
and dilation.

Built from a model and a trace by :func:`cnnviz.explorer.handoff.learned_convolution` (the explorer's
"open on the Convolution page"); this module holds numbers only, so the convolution package never
imports the networks or the explorer (they import it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from cnnviz.convolution.arithmetic import Padding, resolve_padding
from cnnviz.convolution.steps import ConvSteps, convolve_steps


@dataclass(frozen=True, eq=False)
class LearnedConvolution:
    """One output channel of a trained Conv2d layer on one image, everything its animation needs.

    ``output`` (the layer's own output at that channel) is what :meth:`steps` must reproduce.
    """

    label: str  # "layer 3 (Conv2d C32n) of MNIST (shipped)"
    model_name: str
    layer_number: int  # as the summary and ``--layer`` number it
    out_channel: int  # the picked output channel (feature map) of the layer
    input: np.ndarray  # (C, H, W) float32: what the layer received
    kernels: np.ndarray  # (C, k, k) float32: the learned weights of ``out_channel``
    bias: float  # 0.0 when the layer has no bias
    stride: int
    padding: int | str  # zeros on each side, or "same" (PyTorch pads one more after for even kernels)
    dilation: int
    output: np.ndarray  # (Ho, Wo) float32: the layer's own output at ``out_channel``
    in_channel: int | None = None  # the input channel shown first; None: all channels summed
    cell: tuple[int, int] | None = None  # the output cell (row, column) picked on the explorer, if any

    def __post_init__(self) -> None:
        if self.input.ndim != 3 or self.kernels.ndim != 3 or self.kernels.shape[0] != self.input.shape[0]:
            raise ValueError(
                f"The input {tuple(self.input.shape)} and the kernels {tuple(self.kernels.shape)} must be "
                "(C, H, W) and (C, k, k) with the same number of channels C."
            )
        if self.in_channel is not None and not 0 <= self.in_channel < self.channels:
            raise ValueError(
                f"Input channel {self.in_channel} does not exist: this layer's input has channels "
                f"0 to {self.channels - 1}."
            )
        rows, cols = self.output.shape
        if self.cell is not None and not (0 <= self.cell[0] < rows and 0 <= self.cell[1] < cols):
            raise ValueError(f"Cell {self.cell} is not on the {rows}x{cols} output: pick row 0 to {rows - 1} "
                             f"and column 0 to {cols - 1}.")

    @property
    def channels(self) -> int:
        """How many input channels the layer has (C)."""
        return int(self.input.shape[0])

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.kernels.shape[1]), int(self.kernels.shape[2])

    def padding_sides(self) -> tuple[Padding, Padding]:
        """The zeros added along the height and the width (uneven for "same" with an even kernel)."""
        kernel_h, kernel_w = self.kernel_size
        return (resolve_padding(self.padding, kernel_h, self.stride, self.dilation),
                resolve_padding(self.padding, kernel_w, self.stride, self.dilation))

    def key(self) -> str:
        """A short name of these exact numbers, for caches: equal keys mean equal inputs and kernels."""
        digest = hashlib.sha256()
        for array in (self.input, self.kernels):
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        digest.update(repr((self.label, self.out_channel, self.bias, self.stride, self.padding,
                            self.dilation, self.cell)).encode())
        return digest.hexdigest()[:20]

    def steps(self, channel: int | None = None) -> ConvSteps:
        """Every step over all input channels (bias added: equals the layer's output), or over one
        ``channel`` alone (its partial sums, no bias: the bias is added once, after the channel sum)."""
        if channel is None:
            return convolve_steps(self.input, self.kernels[None], np.array([self.bias]), self.stride,
                                  self.padding, self.dilation)
        return convolve_steps(self.input[channel : channel + 1], self.kernels[None, channel : channel + 1],
                              None, self.stride, self.padding, self.dilation)

    def channel_sums(self) -> np.ndarray:
        """(C, Ho, Wo) float64: each input channel's partial sums; their sum plus the bias is the output."""
        steps = self.steps()
        return steps.products[0].sum(axis=(3, 4)).transpose(2, 0, 1)

    def strongest_channel(self, row: int, col: int) -> int:
        """The input channel whose partial sum at output cell (row, col) is largest in size."""
        return int(np.abs(self.channel_sums()[:, row, col]).argmax())


@dataclass(frozen=True)
class LearnedKernel:
    """A trained kernel as the page's settings hold it: its numbers as a tuple, so settings stay hashable."""

    name: str  # "filter 3 of layer 0 of MNIST (shipped)"
    shape: tuple[int, int, int]  # (C, kH, kW)
    values: tuple[float, ...]  # C * kH * kW weights in C-order

    @classmethod
    def of(cls, name: str, kernel: np.ndarray) -> LearnedKernel:
        """From a (C, kH, kW) array (float32 weights become the float64 they equal exactly)."""
        kernel = np.asarray(kernel, dtype=np.float64)
        if kernel.ndim != 3:
            raise ValueError(f"A learned kernel is channels x height x width, not {kernel.shape}.")
        return cls(name, (int(kernel.shape[0]), int(kernel.shape[1]), int(kernel.shape[2])),
                   tuple(float(v) for v in kernel.reshape(-1)))

    def array(self) -> np.ndarray:
        """(C, kH, kW) float64."""
        return np.array(self.values, dtype=np.float64).reshape(self.shape)

    def for_channels(self, channels: int) -> np.ndarray:
        """(channels, kH, kW): the kernel as is when the picture has its channels; summed over its
        slices on a one-channel picture (the same as running it on a colour picture whose channels are
        all equal to that gray); put on every slice divided by ``channels`` on a colour picture when
        the kernel has one slice (so it acts on the channel average, as the presets do)."""
        kernel = self.array()
        if kernel.shape[0] == channels:
            return kernel
        if channels == 1:
            return kernel.sum(axis=0, keepdims=True)
        if kernel.shape[0] == 1:
            return np.repeat(kernel / channels, channels, axis=0)
        raise ValueError(f"This kernel has {kernel.shape[0]} slices; the picture has {channels} channels.")
