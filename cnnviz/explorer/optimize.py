"""An optimized image: the picture gradient ascent on the input makes one channel (or unit) fire most.

From seeded noise, :func:`optimize_image` changes the input image (in the model's normalized units) so
the channel's mean, or its centre cell, grows. Three regularizers keep a 28x28 or 32x32 result legible
rather than high-frequency noise: each step sees the image shifted by a random jitter of up to
:data:`JITTER` pixels (a pattern must work wherever it lands; less for a field under 8 pixels), every
:data:`BLUR_EVERY` steps the image is blurred a little (half a binomial 3x3 blur), and the pixels are
clamped to what the normalization of 0..255 allows. The blurs stop for the last quarter of the steps,
which sharpen what the blurred ones found (a 5x5 field's best pattern is sharp). When the layer ends
in a ReLU (or a ReLU then a max pool), the ReLU is left out of the ascent (the same order of images,
and a gradient where it is off).

The activation reported is that of the final uint8 image, normalized again: the picture shown.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.explorer.layers import find_layer, net_layers
from cnnviz.explorer.top_images import TestSet, layer_maxima
from cnnviz.networks.build import SpecNet, eval_mode
from cnnviz.networks.receptive_field import layer_fields

OBJECTIVES = ("mean", "centre")
# Tuned by eye and by the activation reached on both shipped models (layers 2 to the logits, 64 to 160
# steps, blurs every 1 to 4 steps); a total-variation penalty lowered the activation and kept CIFAR's
# stripes.
STEPS = 64
LEARNING_RATE = 0.15  # Adam, in normalized units
JITTER = 2  # pixels of random shift per step
BLUR_EVERY = 4  # steps between blurs
BLUR_UNTIL = 0.75  # share of the steps with blurs: the last ones sharpen what the blurred ones found
BLUR_WEIGHT = 0.5  # each blur mixes this share of the pixel's binomial 3x3 average into it
NOISE = 0.1  # the starting image: mid grey plus uniform noise of this amplitude (0..1 pixel range)


@dataclass(frozen=True)
class OptimizedImage:
    """The result of :func:`optimize_image`: an image made, not found in any dataset."""

    pixels: np.ndarray  # (H, W) one channel or (H, W, 3) colour, uint8
    activation: float  # the objective on this uint8 image
    dataset_mean: float | None  # the same objective's mean over the test images (None: not asked)
    dataset_std: float | None  # and its standard deviation over them
    start_activation: float  # the objective on the starting noise
    layer: int
    channel: int
    objective: str  # "mean" or "centre"
    seed: int
    steps: int

    def to_json(self) -> dict[str, object]:
        return {"layer": self.layer, "channel": self.channel, "objective": self.objective,
                "seed": self.seed, "steps": self.steps, "activation": self.activation,
                "start_activation": self.start_activation, "dataset_mean": self.dataset_mean,
                "dataset_std": self.dataset_std}


def _objective(output: torch.Tensor, channel: int, objective: str) -> torch.Tensor:
    """The number to maximise, per image of the batch."""
    if output.dim() == 4:
        maps = output[:, channel]
        if objective == "centre":
            return maps[:, maps.shape[1] // 2, maps.shape[2] // 2]
        return maps.mean(dim=(1, 2))
    return output.reshape(output.shape[0], -1)[:, channel]


def _channels(model: SpecNet, layer: int) -> int:
    with eval_mode(model), torch.no_grad():
        hidden = torch.zeros(1, *model.input_shape)
        for entry in net_layers(model)[: layer + 1]:
            hidden = entry.module(hidden)
    return int(hidden.shape[1])


def _ascent_modules(modules: list[nn.Module]) -> list[nn.Module]:
    """The layers to climb through: without a final ReLU (or dropout), also one under a final max pool
    (max pool and ReLU commute). Both are monotone: the same images score highest, and the gradient
    does not vanish where the ReLU is still off."""
    ascent = list(modules)
    while len(ascent) > 1:
        if isinstance(ascent[-1], (nn.ReLU, nn.Dropout, nn.Dropout2d)):
            ascent.pop()
        elif len(ascent) > 2 and isinstance(ascent[-1], nn.MaxPool2d) and isinstance(ascent[-2], nn.ReLU):
            del ascent[-2]
        else:
            break
    return ascent


def _jitter(model: SpecNet, layer: int) -> int:
    """:data:`JITTER`, or less for a small receptive field: a shift of half a 5x5 field moves the pattern
    out of its own cell's view."""
    geometry = layer_fields(model)[layer]
    return JITTER if geometry is None else min(JITTER, geometry.size // 4)


def _blur(image: torch.Tensor) -> torch.Tensor:
    """A light blur of each channel (edges repeated): (1 - w) of each pixel plus w of its binomial 3x3
    average."""
    channels = image.shape[1]
    binomial = torch.tensor([1.0, 2.0, 1.0])
    kernel = torch.outer(binomial, binomial) / 16 * BLUR_WEIGHT  # zero response to a checkerboard
    kernel[1, 1] += 1 - BLUR_WEIGHT
    kernel = kernel.expand(channels, 1, 3, 3)
    return F.conv2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels)


def optimize_image(model: SpecNet, layer: int, channel: int, mean: Sequence[float], std: Sequence[float],
                   *, objective: str = "mean", seed: int = 0, steps: int = STEPS,
                   images: TestSet | None = None, key: Hashable | None = None) -> OptimizedImage:
    """Gradient ascent on the input, from seeded noise, for ``channel`` of ``layer`` (a dense layer's
    unit, or a class of the last layer).

    Args:
        mean, std: the model's normalization (per input channel).
        objective: "mean" (the channel's mean over its map) or "centre" (its centre cell).
        images: when given, the objective's mean over them is reported (from
            :func:`~cnnviz.explorer.top_images.layer_maxima`, cached under ``key`` with the top images).

    Raises:
        ValueError: for an unknown objective, layer or channel.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"Unknown objective {objective!r}: choose 'mean' or 'centre'.")
    if steps < 0:
        raise ValueError("The number of steps cannot be negative.")
    find_layer(model, layer)
    channels = _channels(model, layer)
    if not 0 <= channel < channels:
        raise ValueError(f"Channel {channel} does not exist: layer {layer} has 0 to {channels - 1}.")
    modules = [entry.module for entry in net_layers(model)[: layer + 1]]
    ascent = _ascent_modules(modules)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    low, high = (0 - mean_t) / std_t, (1 - mean_t) / std_t
    generator = torch.Generator().manual_seed(seed)
    start = 0.5 + NOISE * (2 * torch.rand(1, *model.input_shape, generator=generator) - 1)
    image = ((start - mean_t) / std_t).requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=LEARNING_RATE)
    jitter = _jitter(model, layer)
    with eval_mode(model):
        start_activation = _evaluate(modules, start, mean_t, std_t, channel, objective)
        for step in range(steps):
            dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
            hidden = torch.roll(image, shifts=(dy, dx), dims=(2, 3))
            for module in ascent:
                hidden = module(hidden)
            loss = -_objective(hidden, channel, objective).sum()
            # the image's gradient only: the model's own parameters (shared by every session) get none
            (image.grad,) = torch.autograd.grad(loss, [image])
            optimizer.step()
            with torch.no_grad():
                if (step + 1) % BLUR_EVERY == 0 and step < steps * BLUR_UNTIL:
                    image.copy_(_blur(image))
                image.copy_(torch.maximum(torch.minimum(image, high), low))
        pixels01 = (image.detach() * std_t + mean_t).clamp(0, 1)
        activation = _evaluate(modules, pixels01, mean_t, std_t, channel, objective)
    uint8 = (pixels01[0] * 255).round().to(torch.uint8).numpy()
    display = uint8[0] if uint8.shape[0] == 1 else np.transpose(uint8, (1, 2, 0))
    dataset_mean = dataset_std = None
    if images is not None:
        spread = layer_maxima(model, images, layer, key=key).stats[objective]
        dataset_mean, dataset_std = float(spread[0][channel]), float(spread[1][channel])
    return OptimizedImage(np.ascontiguousarray(display), activation, dataset_mean, dataset_std,
                          start_activation, layer, channel, objective, seed, steps)


def _evaluate(modules: list[nn.Module], pixels01: torch.Tensor, mean_t: torch.Tensor, std_t: torch.Tensor,
              channel: int, objective: str) -> float:
    """The objective of the real layer on an image of 0..1 pixels, quantized to uint8 as shown."""
    quantized = (pixels01 * 255).round() / 255
    with torch.no_grad():
        hidden = (quantized - mean_t) / std_t
        for module in modules:
            hidden = module(hidden)
    return float(_objective(hidden, channel, objective)[0])
