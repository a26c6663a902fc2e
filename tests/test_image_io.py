"""Decoding users' files: every odd and bad input kind of issue 5 gets a picture or one sentence."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz.datasets.samples import list_samples, load_sample
from cnnviz.images.attempt import Attempt
from cnnviz.images.decode import (
    ALLOWED_FORMATS,
    DECODE_BYTES_PER_ALLOWED_PIXEL,
    MAX_IMAGE_PIXELS,
    WORKING_MAX_SIDE,
    DecodedImage,
    ImageError,
    decode_array,
    decode_image,
    decode_memory,
    read_image_file,
)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def one_sentence(message: str) -> bool:
    return message.count("\n") == 0 and message.endswith(".") and "Traceback" not in message


def assert_refused(data: bytes, *words: str) -> str:
    with pytest.raises(ImageError) as info:
        decode_image(data)
    message = str(info.value)
    assert one_sentence(message), message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


# --- crafted headers of decompression bombs: a few dozen bytes that claim billions of pixels ---

def png_header(width: int, height: int, bit_depth: int = 8, color_type: int = 2) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)  # a few bytes of "pixels"; decoding would need far more
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def gif_header(width: int, height: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return screen + descriptor + b"\x02\x02\x44\x01\x00;"


def bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 14 + 40) + info + b"\x00" * 16


def jpeg_header(width: int, height: int) -> bytes:
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 8 + 3, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + sof0 + b"\xff\xd9"


def tiff_header(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height),
               (279, 4, 1, width * height)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHII", tag, kind, count, value)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def webp_header(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + \
        (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


BOMBS = {
    "png 50000x50000": png_header(50_000, 50_000),
    "png 30000x30000 16-bit": png_header(30_000, 30_000, bit_depth=16, color_type=0),
    "png 7000x7000 (between the limit and twice it)": png_header(7_000, 7_000),
    "gif 60000x60000": gif_header(60_000, 60_000),
    "bmp 40000x40000": bmp_header(40_000, 40_000),
    "jpeg 65000x65000": jpeg_header(65_000, 65_000),
    "tiff 40000x40000": tiff_header(40_000, 40_000),
    "webp 16384x16384": webp_header(16_384, 16_384),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_decompression_bombs_are_refused_from_the_header(name: str) -> None:
    data = BOMBS[name]
    assert len(data) < 200
    tracemalloc.start()
    message = assert_refused(data, "too large" if "60000" in name or "65000" in name else "pixels")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5 * 2**20, f"{peak} bytes allocated: the pixels were decoded"
    assert "smaller image" in message


_DECODE_PEAK_CHILD = """
import resource, sys
from cnnviz.images.decode import ImageError, decode_image
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode_image(data)
    outcome = "decoded"
except ImageError as err:
    outcome = str(err)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)  # KiB on Linux -> MiB
print(outcome)
"""


def test_a_small_float_tiff_of_many_pixels_is_refused_before_its_memory_is_taken(tmp_path) -> None:
    # 6000 x 6000 is under the 40 MP limit, but float pixels take 4 bytes each and their conversion
    # to 8 bits 8 more: over 1 GB of the server's memory for a file of a few hundred KB.
    path = tmp_path / "float.tif"
    Image.new("F", (6000, 6000)).save(path, compression="tiff_adobe_deflate")
    assert path.stat().st_size < 300_000
    child = subprocess.run([sys.executable, "-c", _DECODE_PEAK_CHILD, str(path)], check=True,
                           capture_output=True, text=True, cwd=Path(__file__).parents[1])
    growth_mb, message = child.stdout.splitlines()
    assert "6000 x 6000 pixels in mode 'F'" in message and "MB cnnviz allows" in message, message
    assert one_sentence(message) and "smaller" in message
    assert int(growth_mb) < 50, f"decoding took {growth_mb} MB more memory before refusing"


def test_the_decode_memory_bound_counts_bytes_per_pixel_of_the_mode() -> None:
    assert decode_memory("RGB", (100, 10)) == 3000
    assert decode_memory("L", (100, 10)) == 1000
    assert decode_memory("F", (100, 10)) == 1000 * (4 + 8)
    assert decode_memory("I;16", (100, 10)) == 1000 * (2 + 8)
    # 8-bit RGB at the pixel limit still decodes: the bound is what it needs
    assert decode_memory("RGB", (MAX_IMAGE_PIXELS, 1)) <= MAX_IMAGE_PIXELS * DECODE_BYTES_PER_ALLOWED_PIXEL
    small_float = encode(Image.new("F", (300, 200), 0.5), "TIFF")
    assert decode_image(small_float).size == (300, 200)
    with pytest.raises(ImageError, match="300 x 200 pixels in mode 'F'"):
        decode_image(small_float, max_pixels=300 * 200 * 3)


def test_an_attempt_keeps_the_picture_or_the_sentence() -> None:
    good = Attempt.of(lambda: decode_image(encode(Image.new("RGB", (8, 6), "white"), "PNG")))
    assert good.error is None and good.result().size == (8, 6)
    bad = Attempt.of(lambda: decode_image(b"not a picture"))
    assert bad.value is None and "not an image cnnviz can read" in bad.error
    with pytest.raises(ImageError, match="not an image cnnviz can read"):
        bad.result()


def test_a_lower_pixel_limit_is_honoured() -> None:
    data = encode(Image.new("RGB", (300, 200), "white"), "PNG")
    with pytest.raises(ImageError, match="300 x 200 pixels"):
        decode_image(data, max_pixels=50_000)
    assert decode_image(data, max_pixels=60_000).size == (300, 200)


def test_byte_limit() -> None:
    data = encode(Image.new("RGB", (64, 64), "white"), "PNG")
    with pytest.raises(ImageError, match="MB"):
        decode_image(data, max_bytes=len(data) - 1)
    assert decode_image(data, max_bytes=len(data)).size == (64, 64)


# --- not images, empty, truncated ---

@pytest.mark.parametrize(("data", "words"), [
    (b"", ("empty",)),
    (b"just some text, not a picture\n" * 20, ("not an image",)),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", ("PDF",)),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", ("SVG",)),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", ("HEIC",)),
    (b"PK\x03\x04" + b"\x00" * 60, ("ZIP",)),
    (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40, ("not an image",)),
    (bytes(range(256)) * 4, ("not an image",)),
])
def test_files_that_are_not_images(data: bytes, words: tuple[str, ...]) -> None:
    assert_refused(data, *words)


def test_image_formats_outside_the_allowed_list_are_named_and_refused() -> None:
    for fmt in ("PPM", "TGA", "ICO"):
        data = encode(Image.new("RGB", (16, 16), "red"), fmt)
        assert Image.open(io.BytesIO(data)).format == fmt  # Pillow could read it ...
        assert_refused(data, "does not accept" if fmt != "ICO" else "icon")  # ... cnnviz will not


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_truncated_files(fmt: str) -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    data = encode(noise, fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    assert decode_image(data).size == (160, 120)
    for cut in (12, len(data) // 2):
        assert_refused(data[:cut], "damaged")


def test_every_allowed_format_decodes_to_the_same_pixels() -> None:
    sample = load_sample(list_samples("cifar10")[0]).permute(1, 2, 0).numpy()  # (H, W, 3)
    image = Image.fromarray(sample)
    for fmt in ALLOWED_FORMATS:
        lossless = fmt in ("PNG", "BMP", "TIFF", "WEBP")
        params = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
        decoded = decode_image(encode(image, fmt, **params))
        assert decoded.source_format == fmt
        pixels = decoded.to_array()
        assert pixels.shape == sample.shape and pixels.dtype == np.uint8
        error = np.abs(pixels.astype(int) - sample).mean()
        if lossless:
            assert error == 0, fmt
        else:  # JPEG loses a little; GIF has only 256 colours
            assert error < 8, (fmt, error)


# --- odd but valid images ---

def test_16_bit_grayscale_is_rescaled_not_clipped() -> None:
    ramp = np.linspace(0, 65535, 256 * 64).reshape(64, 256).astype(np.uint16)
    for fmt in ("PNG", "TIFF"):
        decoded = decode_image(encode(Image.fromarray(ramp), fmt))
        assert decoded.source_mode.startswith("I;16")
        gray = decoded.to_array()[:, :, 0].astype(int)
        expected = np.round(ramp / 65535 * 255).astype(int)
        np.testing.assert_array_equal(gray, expected)
        assert (gray == 255).mean() < 0.01  # clipping would make half the ramp white


def test_16_bit_rgb_png_keeps_its_colours() -> None:
    # Pillow has no 48-bit mode; it hands such PNGs over as 8-bit RGB. Build one by hand.
    height, width = 4, 6
    rgb16 = np.zeros((height, width, 3), dtype=">u2")
    rgb16[..., 0] = 65535
    rgb16[..., 2] = 32896  # 128 * 257
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb16)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    pixels = decode_image(data).to_array()
    assert pixels.shape == (height, width, 3)
    assert (pixels == [255, 0, 128]).all()


def test_float_and_32_bit_tiffs() -> None:
    ramp = np.linspace(0.0, 1.0, 50 * 40, dtype=np.float32).reshape(40, 50)
    gray = decode_image(encode(Image.fromarray(ramp, mode="F"), "TIFF")).to_array()[:, :, 0]
    np.testing.assert_array_equal(gray, np.round(ramp * 255).astype(np.uint8))
    wide = (ramp * 1_000_000 - 500_000).astype(np.int32)
    gray = decode_image(encode(Image.fromarray(wide, mode="I"), "TIFF")).to_array()[:, :, 0]
    assert gray.min() == 0 and gray.max() == 255  # stretched, not clipped at 0 and 255


def test_cmyk_jpeg_and_tiff() -> None:
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # no cyan or black: red
    for fmt in ("JPEG", "TIFF"):
        decoded = decode_image(encode(cmyk, fmt, **({"quality": 95} if fmt == "JPEG" else {})))
        assert decoded.source_mode == "CMYK"
        red, green, blue = decoded.to_array()[15, 20].astype(int)
        assert red > 240 and green < 15 and blue < 15, (fmt, red, green, blue)


def test_palette_with_transparency_goes_on_white() -> None:
    palette_image = Image.new("P", (20, 10), 0)
    palette_image.putpalette([0, 0, 0, 200, 30, 30] + [0] * (254 * 3))
    palette_image.paste(1, (10, 0, 20, 10))  # right half: red, left half: index 0 = transparent black
    data = encode(palette_image, "PNG", transparency=0)
    decoded = decode_image(data)
    assert decoded.source_mode == "P"
    pixels = decoded.to_array()
    assert (pixels[:, :10] == 255).all(), "transparent pixels must be white, not their black colour"
    assert (pixels[:, 10:] == [200, 30, 30]).all()
    assert any("white" in note for note in decoded.notes)


def test_rgba_and_la_alpha_blended_on_white() -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., 2] = 255  # blue
    rgba[..., 3] = 128  # half transparent
    pixels = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG")).to_array()
    expected = np.round(np.array([255, 255, 255]) * (1 - 128 / 255) + np.array([0, 0, 255]) * 128 / 255)
    assert np.abs(pixels[5, 5].astype(int) - expected).max() <= 1
    la = Image.fromarray(np.stack([np.zeros((10, 10)), np.zeros((10, 10))], -1).astype(np.uint8), "LA")
    assert (decode_image(encode(la, "PNG")).to_array() == 255).all()  # fully transparent: white


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (24, 24), colour) for colour in ("red", "lime", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    decoded = decode_image(data)
    assert decoded.frame_count == 3
    assert (decoded.to_array() == [255, 0, 0]).all()
    assert "first frame of 3" in decoded.notes
    webp = encode(frames[1], "WEBP", save_all=True, append_images=[frames[2]], lossless=True)
    decoded = decode_image(webp)
    assert decoded.frame_count == 2 and (decoded.to_array() == [0, 255, 0]).all()


def test_exif_orientation_turns_the_photo_upright() -> None:
    upright = np.zeros((30, 60, 3), dtype=np.uint8)  # wide, with a white block top left
    upright[:10, :20] = 255
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # how a phone stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    decoded = decode_image(encode(stored, "JPEG", quality=95, exif=exif))
    assert decoded.source_size == (30, 60)
    assert decoded.size == (60, 30)
    pixels = decoded.to_array().mean(axis=2)
    assert pixels[:10, :20].mean() > 200 and pixels[15:, 30:].mean() < 30


def test_one_by_one_and_blank_images_decode() -> None:
    dot = decode_image(encode(Image.new("L", (1, 1), 77), "PNG"))
    assert dot.size == (1, 1) and (dot.to_array() == 77).all()
    blank = decode_image(encode(Image.new("RGB", (640, 480), "white"), "JPEG"))
    assert (blank.to_array() >= 254).all()
    binary = decode_image(encode(Image.new("1", (5, 5), 1), "BMP"))
    assert (binary.to_array() == 255).all()


def test_large_photos_are_reduced_for_work() -> None:
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (1500, 2000, 3), dtype=np.uint8))
    decoded = decode_image(encode(photo, "JPEG", quality=80))
    assert max(decoded.size) <= WORKING_MAX_SIDE and decoded.source_size == (2000, 1500)
    assert abs(decoded.size[0] / decoded.size[1] - 2000 / 1500) < 0.01
    full = decode_image(encode(photo, "PNG"), max_side=None)
    assert full.size == (2000, 1500)


def test_decode_array_for_canvas_drawings() -> None:
    stroke = np.zeros((50, 50, 4), dtype=np.uint8)
    stroke[20:30, 10:40] = [0, 0, 0, 255]  # black ink, the rest transparent
    pixels = decode_array(stroke).to_array()
    assert (pixels[25, 25] == 0).all() and (pixels[0, 0] == 255).all()
    gray = decode_array(np.full((4, 4), 0.5))
    assert (gray.to_array() == 128).all()
    with pytest.raises(ImageError, match="must be"):
        decode_array(np.zeros((4, 4, 2)))


def test_read_image_file(tmp_path) -> None:
    path = tmp_path / "digit.png"
    path.write_bytes(encode(Image.new("L", (28, 28), 0), "PNG"))
    assert isinstance(read_image_file(path), DecodedImage)
    with pytest.raises(ImageError, match="no file"):
        read_image_file(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="folder"):
        read_image_file(tmp_path)
    with pytest.raises(ImageError, match="MB"):
        read_image_file(path, max_bytes=10)


def test_importing_the_decoder_leaves_pillow_and_the_warning_filters_alone() -> None:
    code = ("import warnings\nimport numpy\nfrom PIL import Image\n"  # numpy adds filters of its own
            "limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)\n"
            "import cnnviz.images.decode\n"
            "assert Image.MAX_IMAGE_PIXELS == limit, Image.MAX_IMAGE_PIXELS\n"
            "assert warnings.filters == filters\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
    assert Image.MAX_IMAGE_PIXELS > MAX_IMAGE_PIXELS  # Pillow's own, larger guard is still in place


def test_the_pixel_limit_applies_per_call_where_pillow_only_warns() -> None:
    data = png_header(10_000, 10_000)  # 100 MP: over Pillow's warning limit, under its error limit
    assert Image.MAX_IMAGE_PIXELS < 10_000 * 10_000 < 2 * Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        assert_refused(data, "10000 x 10000 pixels", "40 megapixels", "smaller image")
        with pytest.raises(ImageError, match="300 x 200 pixels"):
            decode_image(encode(Image.new("RGB", (300, 200)), "PNG"), max_pixels=59_999)
