"""Uploaded pictures for the convolution page: shrunk with a note, turned gray by a 1x1 convolution."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cnnviz.images.picture import LUMINANCE_WEIGHTS, shrink, to_picture


def _encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_shrink_keeps_the_aspect_and_says_so():
    small, note = shrink(np.zeros((300, 150, 3), dtype=np.uint8), 64)
    assert small.shape == (64, 32, 3)
    # height x width, as the page writes the output sizes beside it
    assert "Your 300x150 picture (height x width) was shrunk to 64x32 pixels" in note
    same, note = shrink(np.zeros((20, 30, 3), dtype=np.uint8), 64)
    assert same.shape == (20, 30, 3) and note == ""


def test_grayscale_is_the_luminance_mix():
    rgb = np.random.default_rng(0).integers(0, 256, (3, 4, 5)).astype(np.uint8)
    picture = to_picture(rgb, rgb_mode=False)
    expected = np.tensordot(np.array(LUMINANCE_WEIGHTS), rgb / 255.0, axes=1)
    np.testing.assert_allclose(picture.pixels[0], expected)
    assert "1x1 convolution" in picture.note
    assert to_picture(rgb, rgb_mode=True).pixels.shape == (3, 4, 5)
