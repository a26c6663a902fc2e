"""Pictures a student brings: decoded safely, shrunk for the animation, turned to gray when asked."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

UPLOAD_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
MAX_UPLOAD_PIXELS = 40_000_000  # a 40-megapixel photo is the most a demo machine should decode
LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601: how bright R, G and B look to people


@dataclass(frozen=True)
class Picture:
    """Pixel values scaled to 0..1 and a note about anything done to them."""

    pixels: np.ndarray  # (C, H, W) float64 in 0..1
    note: str = ""


def decode_upload(data: bytes) -> np.ndarray:
    """Image file bytes -> (H, W, 3) uint8 RGB; ValueError with one friendly sentence otherwise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = MAX_UPLOAD_PIXELS
            try:
                with Image.open(io.BytesIO(data), formats=list(UPLOAD_FORMATS)) as image:
                    image.load()
                    image = ImageOps.exif_transpose(image)
                    if image.mode in ("RGBA", "LA", "PA") or (
                        image.mode == "P" and "transparency" in image.info
                    ):
                        rgba = image.convert("RGBA")
                        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                        image = Image.alpha_composite(background, rgba)
                    elif image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                        values = np.asarray(image, dtype=np.float64)
                        span = values.max() - values.min() or 1.0
                        image = Image.fromarray(((values - values.min()) / span * 255).astype(np.uint8))
                    return np.asarray(image.convert("RGB")).copy()
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(
            "That picture is too large to open here; please use one under 40 megapixels."
        ) from None
    except Exception:  # Pillow raises many types for broken or foreign files
        raise ValueError(
            "That file could not be read as a picture; please upload a PNG, JPEG, GIF, BMP or WebP image."
        ) from None


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
