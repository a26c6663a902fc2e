"""What the Convolution page computes, named: its settings and the scene its figures draw from.

The settings are frozen (hashable, so they key a cache); a scene holds the convolution's steps
computed once, with everything the page's figures read from them: how many frames the animation
may have, any feature map before and after ReLU, and the pooling of that map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnviz.convolution.arithmetic import parse_padding
from cnnviz.convolution.frames import FramePlan, frame_positions, frames_within_budget, plan_frames
from cnnviz.convolution.kernels import CustomText, build_kernel_bank
from cnnviz.convolution.learned import LearnedConvolution, LearnedKernel
from cnnviz.convolution.pooling import MAX, PoolSteps, max_pool_gradient, pool_steps
from cnnviz.convolution.steps import ConvSteps, convolve_steps, flip_kernels, relu


def _read_stride(text: str) -> int:
    if not text.strip().isdecimal():
        raise ValueError(f"The stride must be a whole number of at least 1, not {text!r}.")
    return int(text)


def _per_axis(value, read):
    """One value, or a (height, width) pair read element by element; an equal pair becomes one value,
    so the same layer set either way is the same (hashable) setting."""
    if not isinstance(value, tuple | list):
        return read(value) if isinstance(value, str) else value
    if len(value) != 2:
        raise ValueError(f"Give one value or a (height, width) pair, not {len(value)} values.")
    height, width = (read(v) if isinstance(v, str) else v for v in value)
    return height if height == width else (height, width)


@dataclass(frozen=True)
class ConvSettings:
    """One convolution layer as the page sets it: every kernel shares size, stride, padding, bias."""

    kernel_h: int = 3
    kernel_w: int = 3
    stride: int | tuple[int, int] = 1  # one step for both axes, or (height, width)
    padding: int | str | tuple = 0  # zeros on each side, "same" or "valid", or (height, width) of those;
    # text such as "1" is read once here
    dilation: int = 1
    kernels: tuple[str, ...] = ("X detector",)  # preset names (or "custom"), one feature map each
    custom: str = ""  # rows of numbers: the text of every custom kernel when custom_kernels is empty
    bias: float = 0.0  # added to every feature map
    learned: LearnedKernel | None = None  # a trained model's kernel, used instead of ``kernels``
    # one entry per kernel, for those that are "custom": a text for every channel, or a tuple of a
    # text per input channel (R, G, B); empty: every custom kernel takes ``custom``
    custom_kernels: tuple[CustomText, ...] = ()
    flip: bool = False  # a true convolution: the kernels turned by 180 degrees before they slide

    def __post_init__(self) -> None:
        object.__setattr__(self, "stride", _per_axis(self.stride, _read_stride))
        object.__setattr__(self, "padding", _per_axis(self.padding, parse_padding))
        object.__setattr__(self, "kernels", tuple(self.kernels))
        object.__setattr__(self, "custom_kernels", tuple(
            text if isinstance(text, str) else tuple(text) for text in self.custom_kernels
        ))

    @classmethod
    def of_learned(cls, learned: LearnedConvolution, channel: int | None = None) -> ConvSettings:
        """A trained layer's settings: its learned kernel over all input channels with its bias, or over
        input ``channel`` alone without it (the bias is added once, after the channels are summed)."""
        kernels = learned.kernels if channel is None else learned.kernels[channel : channel + 1]
        kernel_h, kernel_w = learned.kernel_size
        name = learned.label if channel is None else f"{learned.label}, input channel {channel}"
        return cls(kernel_h, kernel_w, learned.stride, learned.padding, learned.dilation, ("learned",),
                   bias=learned.bias if channel is None else 0.0, learned=LearnedKernel.of(name, kernels))

    def weight(self, channels: int) -> np.ndarray:
        """(K, C, kH, kW) the kernels for a ``channels``-channel input; ValueError when one cannot be made."""
        if self.learned is not None:
            return self.learned.for_channels(channels)[None]
        return build_kernel_bank(self.kernels, self.kernel_h, self.kernel_w, channels,
                                 self.custom_kernels or self.custom)

    def sliding_weight(self, channels: int) -> np.ndarray:
        """(K, C, kH, kW) the kernels as they slide: :meth:`weight`, flipped for a true convolution."""
        weight = self.weight(channels)
        return flip_kernels(weight) if self.flip else weight

    def convolve(self, pixels: np.ndarray) -> ConvSteps:
        """Every step over (C, H, W) ``pixels``; ValueError with the reason when the setting does not fit.

        With ``flip`` the steps hold the flipped kernels: what the window multiplies with."""
        weight = self.sliding_weight(pixels.shape[0])
        bias = np.full(weight.shape[0], self.bias)
        return convolve_steps(pixels, weight, bias, self.stride, self.padding, self.dilation)


@dataclass(frozen=True)
class PoolSettings:
    """The pooling layer as the page sets it (it pools one feature map after ReLU)."""

    mode: str = MAX  # pooling.MAX or pooling.AVERAGE
    window: int = 2
    stride: int = 2
    padding: int = 0


@dataclass(frozen=True)
class PoolScene:
    """A pooling of the scene's ReLU'd feature map, the frames of its animation, and (max pooling)
    the gradient it routes back."""

    settings: PoolSettings
    steps: PoolSteps
    positions: tuple[tuple[int, int], ...]
    gradient: tuple[np.ndarray, np.ndarray] | None  # (arriving at the output, at the feature map); max only


@dataclass(frozen=True)
class ConvScene:
    """The page's convolution computed once, and what its figures take from it."""

    settings: ConvSettings
    steps: ConvSteps
    frame_limit: int  # the most frames an animation shows
    max_frames: int  # frames of the convolution animation: fewer when several large maps fill each frame
    feature: np.ndarray  # (Ho, Wo) feature map 1
    activated: np.ndarray  # (Ho, Wo) relu(feature)

    @classmethod
    def compute(cls, pixels: np.ndarray, settings: ConvSettings, frame_limit: int) -> ConvScene:
        """Convolve (C, H, W) ``pixels``; ValueError with the reason when the setting does not fit."""
        steps = settings.convolve(pixels)
        feature = steps.output[0]
        max_frames = frames_within_budget(steps, frame_limit)
        return cls(settings, steps, frame_limit, max_frames, feature, relu(feature))

    @property
    def too_many_steps(self) -> bool:
        """More output cells than frames: the animation spreads its frames or shows a region."""
        out_h, out_w = self.steps.output_size
        return out_h * out_w > self.max_frames

    def frame_plan(self, region: tuple[int, int] | None = None) -> FramePlan:
        """The animation's frames: spread over the map, or every cell of the region from ``region``."""
        return plan_frames(*self.steps.output_size, self.max_frames, region)

    def relu_map(self, feature_map: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Feature map ``feature_map`` (from 0) before and after ReLU, each (Ho, Wo)."""
        if not 0 <= feature_map < self.steps.output.shape[0]:
            raise ValueError(
                f"There is no feature map {feature_map + 1}; pick one of 1..{self.steps.output.shape[0]}."
            )
        if feature_map == 0:
            return self.feature, self.activated
        feature = self.steps.output[feature_map]
        return feature, relu(feature)

    def pool(self, settings: PoolSettings, feature_map: int = 0) -> PoolScene:
        """Pool feature map ``feature_map`` (from 0) after ReLU; ValueError with the reason when the
        window does not fit."""
        feature = self.relu_map(feature_map)[1][None]  # (1, Ho, Wo)
        steps = pool_steps(feature, settings.window, settings.stride, settings.padding, settings.mode)
        positions = tuple(frame_positions(*steps.output.shape[1:], self.frame_limit))
        gradient = None
        if settings.mode == MAX:
            upstream = np.ones_like(steps.output)
            gradient = (upstream[0], max_pool_gradient(steps, upstream)[0])
        return PoolScene(settings, steps, positions, gradient)
