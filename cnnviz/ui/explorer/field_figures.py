"""Where a picked cell looks on the input: its receptive field outlined, and beside it the pixels
whose gradient for that one cell is not zero (the effective footprint)."""

from __future__ import annotations

import numpy as np

from cnnviz.networks.receptive_field import Box
from cnnviz.ui.explorer.figures import PICK_COLOUR
from cnnviz.ui.panels import png_source

UPSCALE = 8  # the input is sent 8x larger with square pixels (a 28 px image would be smoothed)
FOOTPRINT_RGB = np.array([232, 69, 60], dtype=np.float32)  # the footprint's tint: the pick colour
DIM = 0.25  # brightness of the pixels outside the footprint


def _image_trace(rgb: np.ndarray, axis: str) -> dict:
    big = rgb.repeat(UPSCALE, axis=0).repeat(UPSCALE, axis=1)
    step = 1 / UPSCALE
    return {"type": "image", "source": png_source(big), "x0": -0.5 + step / 2, "y0": -0.5 + step / 2,
            "dx": step, "dy": step, "xaxis": f"x{axis}", "yaxis": f"y{axis}", "hoverinfo": "skip"}


def _outline(box: Box, axis: str, dash: str = "solid") -> dict:
    return {"type": "rect", "xref": f"x{axis}", "yref": f"y{axis}", "x0": box.left - 0.5,
            "x1": box.right + 0.5, "y0": box.top - 0.5, "y1": box.bottom + 0.5,
            "line": {"color": PICK_COLOUR, "width": 2.5, "dash": dash}}


def footprint_rgb(rgb: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """The input dimmed outside the footprint and tinted inside it ((H, W, 3) uint8)."""
    base = rgb.astype(np.float32)
    inside = 0.45 * base + 0.55 * FOOTPRINT_RGB
    out = np.where(footprint[:, :, None], inside, base * DIM + 255 * (1 - DIM) * 0.15)
    return out.clip(0, 255).astype(np.uint8)


def field_figure(rgb: np.ndarray, box: Box, arithmetic: Box, footprint: np.ndarray) -> dict:
    """Two panels: the input with the cell's receptive field outlined (dashed where the arithmetic field
    reaches past the image, into the padding), and the gradient footprint inside the same outline."""
    height, width = rgb.shape[:2]
    shapes = []
    for axis in ("", "2"):
        if not box.is_empty:
            shapes.append(_outline(box, axis))
        if arithmetic != box:
            shapes.append(_outline(arithmetic, axis, "dot"))
    pad = max(0, -arithmetic.top, -arithmetic.left, arithmetic.bottom - height + 1,
              arithmetic.right - width + 1)
    extent = [-0.5 - pad, width - 0.5 + pad]
    axes = {}
    for axis, domain in (("", [0, 0.47]), ("2", [0.53, 1])):
        axes[f"xaxis{axis}"] = {"domain": domain, "range": extent, "visible": False, "anchor": f"y{axis}"}
        axes[f"yaxis{axis}"] = {"range": [height - 0.5 + pad, -0.5 - pad], "visible": False,
                                "scaleanchor": f"x{axis}", "anchor": f"x{axis}"}
    titles = [{"text": text, "x": x, "y": 1.0, "xref": "paper", "yref": "paper", "yanchor": "bottom",
               "showarrow": False, "font": {"size": 12}}
              for text, x in (("<b>receptive field</b>", 0.235), ("<b>gradient footprint</b>", 0.765))]
    return {
        "data": [_image_trace(rgb, ""), _image_trace(footprint_rgb(rgb, footprint), "2")],
        "layout": {"height": 300, "margin": {"l": 0, "r": 0, "t": 24, "b": 0}, "shapes": shapes,
                   "annotations": titles, "dragmode": False, **axes},
    }
