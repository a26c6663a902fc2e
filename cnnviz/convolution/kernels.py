"""Kernels a student has heard of, tiny binary pictures to count by hand, and custom kernels typed in."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RANDOM_SEED = 0
MAX_KERNEL_SIDE = 7  # the page's kernel-size inputs go this far, and so may a custom kernel
MAX_CUSTOM_WEIGHT = 1000.0  # larger weights only overflow the float32 drawing, they teach nothing more
# A 7x7 kernel is 49 numbers: even as numpy prints them ("[[ 0.11111111,  0.11111111, ...") that is
# under 800 characters. Longer text is refused before it is split: a 20 MB paste took 7 s and 600 MB.
MAX_CUSTOM_KERNEL_CHARS = 1000


@dataclass(frozen=True)
class KernelPreset:
    name: str
    description: str  # what it does to a picture
    fixed: np.ndarray | None  # the kernel when it has one size only; None if it works at any size


def _gaussian(height: int, width: int) -> np.ndarray:
    # Binomial weights are the discrete Gaussian a textbook shows: [1, 2, 1] / 4 for size 3.
    rows = np.array([math.comb(height - 1, i) for i in range(height)], dtype=np.float64)
    cols = np.array([math.comb(width - 1, i) for i in range(width)], dtype=np.float64)
    kernel = np.outer(rows, cols)
    return kernel / kernel.sum()


PRESETS: dict[str, KernelPreset] = {
    p.name: p
    for p in [
        KernelPreset("identity", "a single 1 in the middle: the output copies the input", None),
        KernelPreset(
            "box blur", "all weights equal, summing to 1: each output is its window's average", None
        ),
        KernelPreset("Gaussian blur", "binomial weights, heavier in the middle: a softer blur", None),
        KernelPreset(
            "sharpen",
            "5 times the centre minus its four neighbours: edges get stronger",
            np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
        ),
        KernelPreset(
            "Sobel x",
            "right minus left: responds to vertical edges",
            np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
        ),
        KernelPreset(
            "Sobel y",
            "bottom minus top: responds to horizontal edges",
            np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
        ),
        KernelPreset(
            "Laplacian",
            "its four neighbours minus 4 times the centre: zero on flat areas, large on either side of "
            "an edge",
            np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
        ),
        KernelPreset(
            "emboss",
            "bottom-right minus top-left: a raised, lit-from-one-side look",
            np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64),
        ),
        KernelPreset(
            "X detector",
            "+1 on both diagonals, -1 elsewhere: largest where an X crosses",
            np.array([[1, -1, 1], [-1, 1, -1], [1, -1, 1]], dtype=np.float64),
        ),
        KernelPreset(
            "random",
            "random weights (seeded; each kernel and channel its own), like a layer before training",
            None,
        ),
    ]
}
CUSTOM = "custom"
PRESET_NAMES = (*PRESETS, CUSTOM)


def make_kernel(name: str, height: int, width: int, seed: int = RANDOM_SEED) -> np.ndarray:
    """The (height, width) kernel of a preset; ValueError if the preset has another size."""
    if name not in PRESETS:
        raise ValueError(f"Unknown kernel {name!r}; choose one of: {', '.join(PRESETS)}.")
    preset = PRESETS[name]
    if preset.fixed is not None:
        if preset.fixed.shape != (height, width):
            raise ValueError(
                f"The {name} kernel is {preset.fixed.shape[0]}x{preset.fixed.shape[1]}; set the kernel size "
                f"to 3x3, or pick identity, box blur, Gaussian blur or random, which come in any size."
            )
        return preset.fixed.copy()
    if name == "identity":
        kernel = np.zeros((height, width))
        kernel[(height - 1) // 2, (width - 1) // 2] = 1.0  # even sizes: the cell up-left of the middle
        return kernel
    if name == "box blur":
        return np.full((height, width), 1.0 / (height * width))
    if name == "Gaussian blur":
        return _gaussian(height, width)
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0.0, 1.0, (height, width)), 2)


def parse_kernel(text: str, label: str = "the custom kernel") -> np.ndarray:
    """Numbers typed one row per line, separated by spaces or commas -> a 2-D kernel.

    Fractions such as 1/9 are accepted. ValueError naming ``label`` (e.g. "custom kernel 2's G
    slice") and the line at fault otherwise, and for text longer than :data:`MAX_CUSTOM_KERNEL_CHARS`.
    """
    if len(text) > MAX_CUSTOM_KERNEL_CHARS:
        raise ValueError(
            f"{_capital(label)} is {len(text):,} characters long; a {MAX_KERNEL_SIDE}x{MAX_KERNEL_SIDE} "
            f"kernel needs far fewer, so keep it to {MAX_CUSTOM_KERNEL_CHARS:,} characters."
        )
    rows, line_numbers = [], []
    for line_number, line in enumerate(text.strip().splitlines(), start=1):
        tokens = [t for t in re.split(r"[\s,;]+", line.strip().strip("[]")) if t]
        if not tokens:
            continue
        try:
            rows.append([_parse_number(t) for t in tokens])
        except (ValueError, ZeroDivisionError):
            raise ValueError(
                f"Row {line_number} of {label} has something that is not a number: {line.strip()!r}."
            ) from None
        line_numbers.append(line_number)
    if not rows:
        raise ValueError(f"Type {label} as rows of numbers, one row per line.")
    ragged = next((i for i, row in enumerate(rows) if len(row) != len(rows[0])), None)
    if ragged is not None:
        raise ValueError(
            f"Every row of {label} needs the same number of values; row {line_numbers[ragged]} has "
            f"{len(rows[ragged])}, row {line_numbers[0]} has {len(rows[0])}."
        )
    kernel = np.array(rows, dtype=np.float64)
    if max(kernel.shape) > MAX_KERNEL_SIDE:
        raise ValueError(f"Keep {label} at most {MAX_KERNEL_SIDE}x{MAX_KERNEL_SIDE}.")
    if not np.isfinite(kernel).all():
        raise ValueError(f"{_capital(label)} must contain ordinary numbers (no inf or nan).")
    if np.abs(kernel).max() > MAX_CUSTOM_WEIGHT:
        raise ValueError(
            f"Keep the weights of {label} between -{MAX_CUSTOM_WEIGHT:g} and {MAX_CUSTOM_WEIGHT:g}: "
            "larger ones only make every output huge."
        )
    return kernel


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _parse_number(token: str) -> float:
    if "/" in token:
        numerator, denominator = token.split("/", 1)
        return float(numerator) / float(denominator)
    return float(token)


def format_kernel(kernel: np.ndarray) -> str:
    """The inverse of :func:`parse_kernel`: one row per line, trailing zeros trimmed."""
    return "\n".join(" ".join(f"{v:g}" for v in row) for row in np.asarray(kernel))


def binary_picture(name: str) -> np.ndarray:
    """A tiny 0/1 picture for counting by hand: "X 5x5", "X 7x7" or "O 7x7"; (1, H, W) float64."""
    if name == "X 5x5" or name == "X 7x7":
        size = int(name[-1])
        picture = np.eye(size) + np.fliplr(np.eye(size))
        return np.minimum(picture, 1.0)[None]
    if name == "O 7x7":
        picture = np.zeros((7, 7))
        picture[1:6, 1:6] = 1.0
        picture[2:5, 2:5] = 0.0
        return picture[None]
    raise ValueError(f"Unknown picture {name!r}; choose one of: {', '.join(BINARY_PICTURES)}.")


BINARY_PICTURES = ("X 5x5", "X 7x7", "O 7x7")


CustomText = str | tuple[str, ...]  # one text for every channel, or one text per input channel
CHANNEL_NAMES = ("R", "G", "B")  # a 3-channel input's slices, as the page names them


def channel_name(channel: int, channels: int) -> str:
    """How a kernel slice is named: "R", "G", "B" for a colour picture, else "channel 2"."""
    return CHANNEL_NAMES[channel] if channels == 3 else f"channel {channel + 1}"


def build_kernel_bank(
    names: list[str] | tuple[str, ...],
    height: int,
    width: int,
    channels: int = 1,
    custom: str | Sequence[CustomText] = "",
) -> np.ndarray:
    """One kernel per name, each repeated over the input channels and divided by their number.

    Dividing by the channel count makes a preset on an RGB picture act on the channel average,
    so "identity" still returns a picture in the input's range. A "random" kernel draws its own
    weights for every kernel and channel (seeded by its position), as a layer before training has.

    Args:
        custom: the texts of the "custom" kernels: one text shared by all of them, or one entry per
            kernel (ignored for presets). An entry is a text, put on every channel divided by their
            number like a preset, or a tuple of one text per input channel, the slices as typed.

    Returns:
        (K, C, height, width) float64.
    """
    if not names:
        raise ValueError("Pick at least one kernel.")
    kernels = []
    for index, name in enumerate(names):
        if name == "random":
            seeds = [RANDOM_SEED + index * channels + c for c in range(channels)]
            slices = np.stack([make_kernel(name, height, width, seed=seed) for seed in seeds])
            kernels.append(np.round(slices / channels, 2))  # (C, kH, kW)
        elif name == CUSTOM:
            text = custom if isinstance(custom, str) else custom[index] if index < len(custom) else ""
            kernels.append(_custom_slices(text, index, height, width, channels))  # (C, kH, kW)
        else:
            kernel = make_kernel(name, height, width)
            kernels.append(np.repeat(kernel[None] / channels, channels, axis=0))  # (C, kH, kW)
    return np.stack(kernels)  # (K, C, kH, kW)


def _custom_slices(text: CustomText, index: int, height: int, width: int, channels: int) -> np.ndarray:
    """Custom kernel ``index`` (from 0) as (C, kH, kW): one text on every channel divided by C, or one
    text per channel."""
    label = f"custom kernel {index + 1}"
    if isinstance(text, str):
        kernel = _sized(parse_kernel(text, label), label, height, width)
        return np.repeat(kernel[None] / channels, channels, axis=0)
    if len(text) != channels:
        raise ValueError(
            f"{_capital(label)} has {len(text)} channel slices but the input has {channels} "
            f"channel{'s' if channels > 1 else ''}; type one slice per channel."
        )
    slices = []
    for channel, slice_text in enumerate(text):
        slice_label = f"{label}'s {channel_name(channel, channels)} slice"
        slices.append(_sized(parse_kernel(slice_text, slice_label), slice_label, height, width))
    return np.stack(slices)


def _sized(kernel: np.ndarray, label: str, height: int, width: int) -> np.ndarray:
    if kernel.shape != (height, width):
        raise ValueError(
            f"{_capital(label)} is {kernel.shape[0]}x{kernel.shape[1]} but the kernel size is "
            f"{height}x{width}; make them match."
        )
    return kernel
