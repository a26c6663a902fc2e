"""The numbers of the lesson "Groups, depthwise and 1x1": a multi-channel input a student knows, and
the grouped, depthwise-separable and 1x1 convolutions over it, step by step (float64, equal to
``conv2d(..., groups=g)``).

The input is either an RGB picture (3 channels) or the four feature maps that the main lesson's
preset kernels (X detector, Sobel x, Sobel y, Laplacian) make of an MNIST digit (4 channels).
The kernels of the grouped and separable layers are drawn from a seed and rounded to one decimal,
so that every weight can be read and the same seed gives the class the same layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnviz.convolution.channels import (
    ConvParameters,
    SeparableParameters,
    conv_parameters,
    separable_parameters,
)
from cnnviz.convolution.kernels import build_kernel_bank
from cnnviz.convolution.steps import ConvSteps, convolve_steps

FEATURE_KERNELS = ("X detector", "Sobel x", "Sobel y", "Laplacian")  # the main lesson's four presets
LUMINANCE = (0.299, 0.587, 0.114)  # RGB -> gray, the weights of ITU-R BT.601
KERNEL_SIDE = 3  # the lesson's kernels are 3x3 with padding 1: every map keeps the input's size


def feature_maps(gray: np.ndarray) -> np.ndarray:
    """(1, H, W) picture in 0..1 -> (4, H, W): the main lesson's preset kernels slid over it (padding 1)."""
    bank = build_kernel_bank(FEATURE_KERNELS, KERNEL_SIDE, KERNEL_SIDE, 1, "")  # (4, 1, 3, 3)
    return convolve_steps(gray, bank, None, 1, 1).output


def seeded_kernels(count: int, channels: int, seed: int, side: int = KERNEL_SIDE) -> np.ndarray:
    """(count, channels, side, side) weights from ``seed``, rounded to one decimal to stay readable."""
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0.0, 0.5, size=(count, channels, side, side)), 1)


@dataclass(frozen=True)
class GroupedLayer:
    """A grouped 3x3 convolution over the lesson's input, with its parameter count."""

    steps: ConvSteps  # weight (K, C/groups, 3, 3)
    parameters: ConvParameters
    ordinary: ConvParameters  # the same layer with groups 1


def grouped_layer(image: np.ndarray, out_channels: int, groups: int, seed: int) -> GroupedLayer:
    """``out_channels`` seeded 3x3 kernels of C/groups slices each over (C, H, W) ``image``, padding 1.

    ValueError when the groups do not divide the channels."""
    parameters, ordinary = conv_parameters(image.shape[0], out_channels, KERNEL_SIDE, groups, bias=False)
    weight = seeded_kernels(out_channels, parameters.per_kernel, seed)
    steps = convolve_steps(image, weight, None, 1, 1, 1, groups)
    return GroupedLayer(steps, parameters, ordinary)


@dataclass(frozen=True)
class SeparableLayer:
    """Depthwise 3x3 (one kernel per channel) then pointwise 1x1 (mixing the channels)."""

    depthwise: ConvSteps  # weight (C, 1, 3, 3), groups C
    pointwise: ConvSteps  # weight (K, C, 1, 1)
    parameters: SeparableParameters


def separable_layer(image: np.ndarray, out_channels: int, seed: int) -> SeparableLayer:
    """A depthwise-separable convolution of (C, H, W) ``image`` to ``out_channels`` maps; kernels from
    ``seed`` (the pointwise weights from ``seed + 1``)."""
    channels = image.shape[0]
    depthwise = convolve_steps(image, seeded_kernels(channels, 1, seed), None, 1, 1, 1, channels)
    mixing = seeded_kernels(out_channels, channels, seed + 1, side=1)  # (K, C, 1, 1)
    pointwise = convolve_steps(depthwise.output, mixing)
    counts = separable_parameters(channels, out_channels, KERNEL_SIDE, bias=False)
    return SeparableLayer(depthwise, pointwise, counts)


def mix_pixel(image: np.ndarray, weights: tuple[float, ...] | np.ndarray) -> ConvSteps:
    """A 1x1 convolution with one output channel: every pixel the weighted sum of its channels.

    ``steps.step(0, row, col).products`` are the terms weight x channel value of one pixel."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (image.shape[0],):
        raise ValueError(f"A 1x1 convolution needs one weight per input channel ({image.shape[0]}).")
    return convolve_steps(image, weights[None, :, None, None])  # (1, C, 1, 1)
