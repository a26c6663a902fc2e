"""Uploaded pictures: decoded safely, shrunk with a note, turned gray by a 1x1 convolution."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cnnviz.image_input import LUMINANCE_WEIGHTS, decode_upload, shrink, to_picture


def _encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_rgba_transparency_becomes_white_and_jpeg_decodes():
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red, but fully transparent except one pixel
    rgba[0, 0, 3] = 255
    pixels = decode_upload(_encode(Image.fromarray(rgba, "RGBA")))
    assert pixels.shape == (4, 5, 3)
    assert pixels[0, 0].tolist() == [200, 0, 0] and pixels[1, 1].tolist() == [255, 255, 255]
    jpeg = decode_upload(_encode(Image.new("RGB", (8, 6), (10, 120, 240)), "JPEG"))
    assert jpeg.shape == (6, 8, 3) and abs(int(jpeg[3, 3, 2]) - 240) < 8


def test_sixteen_bit_pictures_are_rescaled_not_clipped():
    values = np.linspace(0, 60000, 12, dtype=np.uint16).reshape(3, 4)
    pixels = decode_upload(_encode(Image.fromarray(values)))
    assert pixels[..., 0].min() == 0 and pixels[..., 0].max() == 255


@pytest.mark.parametrize("data", [b"", b"hello", b"\x89PNG\r\n\x1a\n broken", b"%PDF-1.4"])
def test_broken_or_foreign_files_get_one_sentence(data):
    with pytest.raises(ValueError, match="could not be read as a picture"):
        decode_upload(data)


def test_huge_pictures_are_refused_before_decoding():
    data = _encode(Image.new("L", (8000, 6000)))  # 48 megapixels, tiny as a PNG
    with pytest.raises(ValueError, match="too large"):
        decode_upload(data)


def test_shrink_keeps_the_aspect_and_says_so():
    small, note = shrink(np.zeros((300, 150, 3), dtype=np.uint8), 64)
    assert small.shape == (64, 32, 3) and "150x300" in note and "32x64" in note
    same, note = shrink(np.zeros((20, 30, 3), dtype=np.uint8), 64)
    assert same.shape == (20, 30, 3) and note == ""


def test_grayscale_is_the_luminance_mix():
    rgb = np.random.default_rng(0).integers(0, 256, (3, 4, 5)).astype(np.uint8)
    picture = to_picture(rgb, rgb_mode=False)
    expected = np.tensordot(np.array(LUMINANCE_WEIGHTS), rgb / 255.0, axes=1)
    np.testing.assert_allclose(picture.pixels[0], expected)
    assert "1x1 convolution" in picture.note
    assert to_picture(rgb, rgb_mode=True).pixels.shape == (3, 4, 5)
