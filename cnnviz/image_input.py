"""Pictures a student brings, made ready for the animation: shrunk, and turned to gray when asked.

Decoding (formats, limits, odd modes) is :mod:`cnnviz.image_io`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601: how bright R, G and B look to people


@dataclass(frozen=True)
class Picture:
    """Pixel values scaled to 0..1 and a note about anything done to them."""

    pixels: np.ndarray  # (C, H, W) float64 in 0..1
    note: str = ""


def shrink(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, str]:
    """Scale an (H, W, 3) uint8 picture so its longer side is at most ``max_side``; returns a note."""
    height, width = rgb.shape[:2]
    if max(height, width) <= max_side:
        return rgb, ""
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
    return small, (
        f"Your {width}x{height} picture was shrunk to {size[0]}x{size[1]} pixels so that every step "
        "stays quick to compute and draw."
    )


def to_picture(pixels_chw: np.ndarray, rgb_mode: bool, note: str = "") -> Picture:
    """(C, H, W) uint8 -> values in 0..1, gray (a 1x1 convolution with luminance weights) unless rgb_mode."""
    from cnnviz.conv_steps import mix_channels

    values = np.asarray(pixels_chw, dtype=np.float64) / 255.0
    notes = [note] if note else []
    if rgb_mode and values.shape[0] == 1:
        notes.append("This picture has one channel, so it is shown in grayscale with one-channel kernels.")
    elif not rgb_mode and values.shape[0] == 3:
        values = mix_channels(values, np.array([LUMINANCE_WEIGHTS]))
        notes.append(
            "Grayscale mode: the colour picture was turned gray by a 1x1 convolution that mixes the "
            "channels as 0.299 R + 0.587 G + 0.114 B."
        )
    return Picture(values, " ".join(notes))
