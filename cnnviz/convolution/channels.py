"""How a convolution layer connects channels: groups, depthwise and 1x1, and what each costs.

An ordinary convolution gives every kernel a slice for every input channel. With ``groups = g``
the C input channels and the K kernels are split into g groups and kernel k sees only the C/g
channels of its group: g times fewer weights and multiply-adds. Groups = C is a *depthwise*
convolution (one channel per kernel); followed by a 1x1 convolution that mixes the channels
(*pointwise*) it is the depthwise-separable convolution of MobileNet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """ValueError with the reason when ``groups`` cannot split the channels (as PyTorch refuses)."""
    if not isinstance(groups, int | np.integer) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"Groups must be a whole number of at least 1, not {groups!r}.")
    for count, what in ((in_channels, "input channels"), (out_channels, "kernels (output channels)")):
        if count % groups:
            raise ValueError(
                f"{groups} groups cannot split {count} {what} evenly; pick groups that divide both the "
                f"input channels ({in_channels}) and the output channels ({out_channels})."
            )


def group_mask(in_channels: int, out_channels: int, groups: int) -> np.ndarray:
    """(K, C) True where kernel k sees input channel c; ValueError when the groups do not divide."""
    check_groups(in_channels, out_channels, groups)
    kernel_group = np.arange(out_channels) // (out_channels // groups)  # (K,)
    channel_group = np.arange(in_channels) // (in_channels // groups)  # (C,)
    return kernel_group[:, None] == channel_group[None, :]


def divisors(count: int) -> list[int]:
    """The group counts that split ``count`` channels evenly: 1, ..., count."""
    return [g for g in range(1, count + 1) if count % g == 0]


@dataclass(frozen=True)
class ConvParameters:
    """The learnable numbers of one convolution layer and the work of one output cell."""

    in_channels: int  # C
    out_channels: int  # K
    kernel: tuple[int, int]  # (kH, kW)
    groups: int = 1
    bias: bool = True

    def __post_init__(self) -> None:
        check_groups(self.in_channels, self.out_channels, self.groups)

    @property
    def per_kernel(self) -> int:
        """Input channels each kernel has a slice for: C / groups."""
        return self.in_channels // self.groups

    @property
    def weights(self) -> int:
        """K x C/groups x kH x kW."""
        return self.out_channels * self.per_kernel * self.kernel[0] * self.kernel[1]

    @property
    def biases(self) -> int:
        return self.out_channels if self.bias else 0

    @property
    def total(self) -> int:
        """What ``sum(p.numel() for p in nn.Conv2d(...).parameters())`` gives."""
        return self.weights + self.biases

    @property
    def mult_adds_per_cell(self) -> int:
        """Multiply-adds behind one output value (one cell of one feature map): C/groups x kH x kW."""
        return self.per_kernel * self.kernel[0] * self.kernel[1]

    @property
    def ordinary(self) -> ConvParameters:
        """The same layer without groups: every kernel sees every input channel."""
        return ConvParameters(self.in_channels, self.out_channels, self.kernel, 1, self.bias)

    @property
    def formula(self) -> str:
        """The count written out with the numbers: kernels x channels each x kH x kW (+ biases)."""
        channels = (f"{self.in_channels}/{self.groups} = {self.per_kernel}" if self.groups > 1
                    else f"{self.in_channels}")
        text = (f"{self.out_channels} kernels x {channels} channel{'s' if self.per_kernel > 1 else ''} "
                f"x {self.kernel[0]}x{self.kernel[1]} = {self.weights} weights")
        if self.bias:
            text += f" + {self.biases} biases = {self.total}"
        return text


def conv_parameters(
    in_channels: int, out_channels: int, kernel: int | tuple[int, int], groups: int = 1, bias: bool = True
) -> tuple[ConvParameters, ConvParameters]:
    """The parameters of a (grouped) convolution layer and of the ordinary one (groups 1) next to it.

    ValueError when the groups do not divide the channels.
    """
    size = (kernel, kernel) if isinstance(kernel, int) else (int(kernel[0]), int(kernel[1]))
    layer = ConvParameters(in_channels, out_channels, size, groups, bias)
    return layer, layer.ordinary


@dataclass(frozen=True)
class SeparableParameters:
    """A depthwise convolution (groups = C) followed by a pointwise 1x1 one, against one ordinary layer."""

    depthwise: ConvParameters
    pointwise: ConvParameters
    ordinary: ConvParameters

    @property
    def total(self) -> int:
        return self.depthwise.total + self.pointwise.total

    @property
    def mult_adds_per_pixel(self) -> int:
        """Multiply-adds per output pixel (all output channels): depthwise C x kH x kW + pointwise K x C."""
        return (self.depthwise.out_channels * self.depthwise.mult_adds_per_cell
                + self.pointwise.out_channels * self.pointwise.mult_adds_per_cell)

    @property
    def ordinary_mult_adds_per_pixel(self) -> int:
        return self.ordinary.out_channels * self.ordinary.mult_adds_per_cell


def separable_parameters(
    in_channels: int, out_channels: int, kernel: int | tuple[int, int], bias: bool = True
) -> SeparableParameters:
    """Depthwise (C kernels, one channel each) + pointwise (K kernels of 1x1xC), and the ordinary
    K-kernel layer that maps C channels to K with the same window."""
    depthwise, _ = conv_parameters(in_channels, in_channels, kernel, in_channels, bias)
    ordinary = ConvParameters(in_channels, out_channels, depthwise.kernel, 1, bias)
    pointwise = ConvParameters(in_channels, out_channels, (1, 1), 1, bias)
    return SeparableParameters(depthwise, pointwise, ordinary)
