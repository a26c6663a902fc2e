"""Pictures a student brings, made ready for the animation: shrunk, and turned to gray when asked.

Decoding (formats, limits, odd modes) is :mod:`cnnviz.images.decode`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from cnnviz.images.decode import DecodedImage

LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601: how bright R, G and B look to people


@dataclass(frozen=True)
class Picture:
    """Pixel values scaled to 0..1 and a note about anything done to them."""

    pixels: np.ndarray  # (C, H, W) float64 in 0..1
    note: str = ""


def shrink(
    rgb: np.ndarray, max_side: int, original_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, str]:
    """Scale an (H, W, 3) uint8 picture so its longer side is at most ``max_side``; returns a note,
    which gives sizes as height x width like the rest of the page.

    ``original_size`` (width, height) is the size the note names when the picture was already
    reduced once (as the decoder does to large files); by default, the size of ``rgb``.
    """
    height, width = rgb.shape[:2]
    if max(height, width) <= max_side:
        return rgb, ""
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
    width, height = original_size or (width, height)
    return small, (  # height x width, as every size on the Convolution page is written
        f"Your {height}x{width} picture (height x width) was shrunk to {size[1]}x{size[0]} pixels so that "
        "every step stays quick to compute and draw."
    )


def upload_pixels(decoded: DecodedImage, max_side: int) -> tuple[np.ndarray, str]:
    """A decoded upload made ready for the animation: (C, H, W) uint8, one channel when the picture
    is gray (its three channels equal), shrunk to ``max_side``; and a note on all that was done."""
    width, height = decoded.source_size  # as stored; EXIF may have turned it a quarter turn since
    if (decoded.size[0] > decoded.size[1]) != (width > height) and decoded.size[0] != decoded.size[1]:
        width, height = height, width
    small, shrunk = shrink(decoded.to_array(), max_side, original_size=(width, height))
    notes = [shrunk] if shrunk else []
    read_notes = [n for n in decoded.notes if not n.startswith("reduced from")]  # said above, in full
    if read_notes:
        notes.append(f"While reading it: {'; '.join(read_notes)}.")
    chw = small.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    if (chw[0] == chw[1]).all() and (chw[1] == chw[2]).all():
        chw = chw[:1]
    return chw, " ".join(notes)


def to_picture(pixels_chw: np.ndarray, rgb_mode: bool, note: str = "") -> Picture:
    """(C, H, W) uint8 -> values in 0..1, gray (a 1x1 convolution with luminance weights) unless rgb_mode."""
    from cnnviz.convolution.steps import mix_channels

    values = np.asarray(pixels_chw, dtype=np.float64) / 255.0
    notes = [note] if note else []
    if rgb_mode and values.shape[0] == 1:
        notes.append("This picture is gray (one channel), so it is shown with one-channel kernels.")
    elif not rgb_mode and values.shape[0] == 3:
        values = mix_channels(values, np.array([LUMINANCE_WEIGHTS]))
        notes.append(
            "Grayscale mode: the colour picture was turned gray by a 1x1 convolution that mixes the "
            "channels as 0.299 R + 0.587 G + 0.114 B."
        )
    return Picture(values, " ".join(notes))
