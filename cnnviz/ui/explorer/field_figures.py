"""Where a picked cell looks on the input: its receptive field outlined, and beside it the pixels
whose gradient for that one cell is not zero (the effective footprint). Plain pictures with square
pixels (nothing to click), drawn at a whole multiple of the input's size."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from cnnviz.networks.receptive_field import Box

SIDE_PX = 224  # about this many screen pixels for the input's side
OUTLINE_RGB = (232, 69, 60)  # the pick colour
PADDING_RGB = (226, 230, 238)  # the zero padding around the image, where a field may reach
FOOTPRINT_RGB = np.array(OUTLINE_RGB, dtype=np.float32)
DIM = 0.3  # brightness kept outside the footprint


def footprint_rgb(rgb: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """The input dimmed outside the footprint and tinted red inside it ((H, W, 3) uint8)."""
    base = rgb.astype(np.float32)
    out = np.where(footprint[:, :, None], 0.45 * base + 0.55 * FOOTPRINT_RGB, base * DIM)
    return out.clip(0, 255).astype(np.uint8)


def field_pictures(rgb: np.ndarray, box: Box, arithmetic: Box, footprint: np.ndarray) -> list[Image.Image]:
    """The input with the cell's field outlined (a thin outline where the arithmetic field reaches past
    the image, into the padding, drawn grey), and the gradient footprint inside the same outline."""
    height, width = rgb.shape[:2]
    pad = max(0, -arithmetic.top, -arithmetic.left, arithmetic.bottom - height + 1,
              arithmetic.right - width + 1)
    scale = max(1, SIDE_PX // (max(height, width) + 2 * pad))
    pictures = []
    for pixels in (rgb, footprint_rgb(rgb, footprint)):
        canvas = np.empty((height + 2 * pad, width + 2 * pad, 3), dtype=np.uint8)
        canvas[:] = PADDING_RGB
        canvas[pad:pad + height, pad:pad + width] = pixels
        picture = Image.fromarray(canvas.repeat(scale, axis=0).repeat(scale, axis=1))
        draw = ImageDraw.Draw(picture)
        for outline, line in ((arithmetic, 1), (box, 3)):
            if outline.is_empty or (line == 1 and outline == box):
                continue
            draw.rectangle([(outline.left + pad) * scale, (outline.top + pad) * scale,
                            (outline.right + pad + 1) * scale - 1, (outline.bottom + pad + 1) * scale - 1],
                           outline=OUTLINE_RGB, width=line)
        pictures.append(picture)
    return pictures
