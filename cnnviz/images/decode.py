"""Decode a user's image (an upload, a camera shot, a drawing) into a plain 8-bit RGB picture.

The hosted demo gets everything, so decoding is defensive:

- only the formats cnnviz promises are tried (PNG, JPEG, WebP, BMP, GIF, TIFF);
- the byte size and the pixel count are limited, and the pixel count is checked from the header,
  before a single pixel is decoded (decompression bombs);
- every failure is an :class:`ImageError` with one sentence that says what to do.

What comes out is what a person sees: EXIF orientation applied, transparency composited on white,
palettes, CMYK and 16-bit pixels converted, the first frame of an animation.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageMode, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
ALLOWED_FORMATS_TEXT = "PNG, JPEG, WebP, BMP, GIF or TIFF"
# File name endings for upload widgets (they check names only; decode_image checks the content).
UPLOAD_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")
# The largest file accepted, in MB of 2**20 bytes, as Streamlit counts server.maxUploadSize (which
# .streamlit/config.toml sets to the same number): a phone photo is 2-8 MB. Hosts lower it per server.
MAX_UPLOAD_MB = 10
MAX_IMAGE_BYTES = MAX_UPLOAD_MB * 2**20
MAX_IMAGE_PIXELS = 40_000_000  # 40 MP, about 7300 x 5500: more than a phone camera, far below a bomb
# The memory a decode may need, as a multiple of its pixel limit: 3 bytes a pixel, what 8-bit RGB at
# the pixel limit takes. A tiny deflated float TIFF of 6000 x 6000 is under the pixel limit, yet its
# pixels take 4 bytes each and their conversion to 8 bits works on 8-byte floats.
DECODE_BYTES_PER_ALLOWED_PIXEL = 3
FLOAT_WORK_BYTES = 8  # per pixel: 16-bit, 32-bit and float pixels are converted through float64
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
WORKING_MAX_SIDE = 1024  # px: larger pictures are reduced after decoding; 28 or 32 px is the goal
BACKGROUND_RGB = (255, 255, 255)  # transparency is composited on white paper

# decode_image compares the size in the header with its own max_pixels before a pixel is decoded,
# so the limit applies per call and Pillow's process-wide Image.MAX_IMAGE_PIXELS is left alone.
# Pillow's own guard (a warning above its limit, an error above twice it) stays a backstop for
# headers far beyond any limit.

# Formats people upload that Pillow is not asked to read, recognised by their first bytes so the
# message can name them.
_KNOWN_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"%PDF", 0, "a PDF document"),
    (b"<svg", 0, "an SVG drawing"),
    (b"<?xml", 0, "an XML file (an SVG drawing?)"),
    (b"ftypheic", 4, "a HEIC photo (iPhone)"),
    (b"ftypheix", 4, "a HEIC photo (iPhone)"),
    (b"ftypmif1", 4, "a HEIF photo"),
    (b"ftypavif", 4, "an AVIF image"),
    (b"PK\x03\x04", 0, "a ZIP archive (or an Office document)"),
    (b"\x00\x00\x01\x00", 0, "a Windows icon"),
)


_ALLOWED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"RIFF", "WebP"),
)


class ImageError(ValueError):
    """The bytes are not an image cnnviz can use; the message is one sentence for a person."""


@dataclass(frozen=True)
class DecodedImage:
    """A user's image as it is shown: 8-bit RGB, upright, transparency on white, first frame."""

    image: Image.Image  # mode "RGB", at most WORKING_MAX_SIDE px a side
    source_format: str  # "PNG", "JPEG", ... ("array" for pixels handed over directly)
    source_mode: str  # Pillow's mode before conversion: "RGBA", "P", "CMYK", "I;16", ...
    source_size: tuple[int, int]  # (width, height) as stored in the file, before orientation
    frame_count: int = 1
    notes: tuple[str, ...] = field(default=())  # what was done to it, one phrase each

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of :attr:`image`."""
        return self.image.size

    def to_array(self) -> np.ndarray:
        """The pixels as an (H, W, 3) uint8 array."""
        return np.asarray(self.image)


def decode_image(
    data: bytes,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_side: int | None = WORKING_MAX_SIDE,
) -> DecodedImage:
    """Decode the bytes of an image file into an upright 8-bit RGB picture.

    Args:
        data: the whole file.
        max_bytes: larger files are refused before decoding.
        max_pixels: pictures with more pixels (width x height in the header) are refused before
            their pixels are decoded.
        max_side: the result is reduced (antialiased, aspect ratio kept) so that neither side
            exceeds this; None keeps the full size.

    Returns:
        The picture and what was done to it.

    Raises:
        ImageError: with one sentence, for anything that is not a usable image.
    """
    if not data:
        raise ImageError("The file is empty: choose an image file (" + ALLOWED_FORMATS_TEXT + ").")
    if len(data) > max_bytes:
        raise ImageError(
            f"The file is {len(data) / 2**20:.1f} MB, more than the {max_bytes / 2**20:.0f} MB "
            "cnnviz accepts: use a smaller image."
        )
    image = _open_header(data, max_pixels)
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(_too_many_pixels_message((width, height), max_pixels))
        if width < 1 or height < 1:
            raise ImageError("The image has no pixels (its width or height is 0).")
        if decode_memory(image.mode, (width, height)) > max_pixels * DECODE_BYTES_PER_ALLOWED_PIXEL:
            raise ImageError(_too_much_memory_message(image.mode, (width, height), max_pixels))
        source_format = image.format or "unknown"
        frame_count = int(getattr(image, "n_frames", 1) or 1)
        source_mode = image.mode
        notes = [f"first frame of {frame_count}"] if frame_count > 1 else []
        rgb = _decode_pixels(image, source_format, max_side, max_pixels, notes)

    rgb = _limit_side(rgb, max_side, notes)
    return DecodedImage(rgb, source_format, source_mode, (width, height), frame_count, tuple(notes))


def decode_memory(mode: str, size: tuple[int, int]) -> int:
    """The bytes decoding a picture of this Pillow mode and (width, height) needs, from its header:
    the pixels as stored, plus a float64 copy for modes converted to 8 bits by scaling."""
    try:
        mode_info = ImageMode.getmode(mode)
        stored = np.dtype(mode_info.typestr).itemsize * len(mode_info.bands)
    except (KeyError, TypeError):
        stored = 4  # a mode Pillow does not describe: as much as RGBA
    work = FLOAT_WORK_BYTES if mode in _HIGH_DEPTH_MODES else 0
    return size[0] * size[1] * (stored + work)


def _open_header(data: bytes, max_pixels: int) -> Image.Image:
    """Pillow's lazy open: the header is read, no pixel is decoded yet."""
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageError(_not_an_image_message(data)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_too_many_pixels_message(None, max_pixels)) from None
    except Exception as err:  # noqa: BLE001 - any decoder failure on a header means a broken file
        raise ImageError(f"The image file is damaged and cannot be read ({_short(err)}).") from None


def _decode_pixels(
    image: Image.Image, source_format: str, max_side: int | None, max_pixels: int, notes: list[str],
) -> Image.Image:
    """The first frame's pixels, upright and in RGB, as a picture that outlives ``image``'s file."""
    header_size = image.size  # draft() below may reduce image.size
    if max_side is not None and source_format == "JPEG":
        # JPEG can decode at 1/2, 1/4 or 1/8 scale directly, which makes a 12 MP photo fast.
        image.draft("RGB", (max_side, max_side))
    try:
        image.seek(0)
        image.load()
        upright = _apply_exif_orientation(image, notes)
        rgb = _to_rgb(upright, notes)
        return image.copy() if rgb is image else rgb  # closing the file would release these pixels
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_too_many_pixels_message(header_size, max_pixels)) from None
    except Exception as err:  # noqa: BLE001 - truncated data, bad chunks, decoder errors
        raise ImageError(
            f"The {source_format} file is damaged or incomplete (was the upload cut off?): "
            f"{_short(err)}."
        ) from None


def read_image_file(path: str | os.PathLike, **limits) -> DecodedImage:
    """Read and decode an image file; the size limit is checked before the file is read, and again
    while it is read, since a device or a pipe (``/dev/zero``) has no size to check beforehand.

    Keyword arguments are passed to :func:`decode_image`.

    Raises:
        ImageError: the file is missing, unreadable, too large or not a usable image.
    """
    path = Path(path)
    max_bytes = limits.get("max_bytes", MAX_IMAGE_BYTES)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(f"{path.name} is {size / 2**20:.1f} MB, {_more_than_accepted(max_bytes)}")
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)  # one byte more than allowed tells that there is more
        if len(data) > max_bytes:
            raise ImageError(f"{path} holds {_more_than_accepted(max_bytes)}")
    except FileNotFoundError:
        raise ImageError(f"There is no file {path}.") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image file.") from None
    except OSError as err:
        raise ImageError(f"{path} cannot be read ({err.strerror or err}).") from None
    return decode_image(data, **limits)


def decode_array(pixels: np.ndarray, *, max_side: int | None = WORKING_MAX_SIDE) -> DecodedImage:
    """Turn pixels handed over as an array (a drawing canvas, a dataset sample) into RGB.

    Args:
        pixels: (H, W) gray, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA; uint8, or floats in 0..1.

    Raises:
        ImageError: the array has another shape, no pixels, or too many.
    """
    array = np.asarray(pixels)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4), not {array.shape}.")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError("The image has no pixels (its width or height is 0).")
    if array.shape[0] * array.shape[1] > MAX_IMAGE_PIXELS:
        raise ImageError(_too_many_pixels_message((array.shape[1], array.shape[0]), MAX_IMAGE_PIXELS))
    if array.dtype != np.uint8:
        scale = 255.0 if array.dtype.kind == "f" and np.nanmax(array, initial=0) <= 1.0 else 1.0
        array = np.clip(np.nan_to_num(array.astype(np.float64) * scale), 0, 255).round().astype(np.uint8)
    image = Image.fromarray(array)
    notes: list[str] = []
    rgb = _to_rgb(image, notes)
    rgb = _limit_side(rgb, max_side, notes)
    return DecodedImage(rgb, "array", image.mode, image.size, 1, tuple(notes))


def _apply_exif_orientation(image: Image.Image, notes: list[str]) -> Image.Image:
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the picture unusable
        return image
    if orientation in (None, 1):
        return image
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001
        notes.append("EXIF orientation unreadable, used as stored")
        return image
    notes.append(f"turned upright (EXIF orientation {orientation})")
    return upright


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """Any Pillow mode to 8-bit RGB, the way a person would see it on white paper."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _HIGH_DEPTH_MODES:
        return Image.fromarray(_high_depth_to_uint8(image, notes)).convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
        return image.convert("RGB")
    if mode == "P":
        has_alpha = "transparency" in image.info or image.palette.mode == "RGBA"
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
        notes.append("palette colours expanded")
        if mode == "RGB":
            return image
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode in ("L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        if alpha.min() < 255:
            notes.append("transparent parts put on white")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND_RGB, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # "1", "L", "YCbCr", "LAB", "HSV", "RGBX", ...


def _high_depth_to_uint8(image: Image.Image, notes: list[str]) -> np.ndarray:
    """16-bit, 32-bit integer or float pixels to 0..255 by scaling, never by clipping.

    One float64 copy is worked on in place (what :func:`decode_memory` counts)."""
    values = np.array(image, dtype=np.float64)  # (H, W)
    np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= 65535 and high > 255):
        values /= 65535.0
        values *= 255.0
        notes.append("16-bit values scaled to 8 bits")
    elif image.mode == "F" and low >= 0 and high <= 1.0:
        values *= 255.0
        notes.append("floating-point values 0..1 scaled to 8 bits")
    elif low >= 0 and high <= 255:
        pass
    else:
        if high > low:
            values -= low
            values /= high - low
            values *= 255.0
        else:
            values[:] = 0.0
        notes.append(f"values {low:g}..{high:g} stretched to 8 bits")
    np.round(values, out=values)
    np.clip(values, 0, 255, out=values)
    return values.astype(np.uint8)


def _limit_side(image: Image.Image, max_side: int | None, notes: list[str]) -> Image.Image:
    if max_side is None or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    notes.append(f"reduced from {image.width}x{image.height} to {size[0]}x{size[1]}")
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _not_an_image_message(data: bytes) -> str:
    for signature, fmt in _ALLOWED_SIGNATURES:
        if data.startswith(signature) and (fmt != "WebP" or data[8:12] == b"WEBP"):
            return (f"This looks like a {fmt} file, but it is damaged or incomplete "
                    "(was the upload cut off?): try saving it again.")
    head = data[:64].lstrip()
    for signature, offset, what in _KNOWN_SIGNATURES:
        if head[offset:offset + len(signature)].lower() == signature.lower():
            return f"This file is {what}, which cnnviz cannot read: use {ALLOWED_FORMATS_TEXT}."
    try:
        fmt = Image.open(io.BytesIO(data)).format  # any format Pillow knows, only to name it
    except Exception:  # noqa: BLE001
        fmt = None
    if fmt:
        return f"This is a {fmt} image, which cnnviz does not accept: use {ALLOWED_FORMATS_TEXT}."
    return f"This file is not an image cnnviz can read: use {ALLOWED_FORMATS_TEXT}."


def _more_than_accepted(max_bytes: int) -> str:
    return f"more than the {max_bytes / 2**20:.0f} MB cnnviz accepts: use a smaller image."


def _too_many_pixels_message(size: tuple[int, int] | None, max_pixels: int) -> str:
    limit = f"{max_pixels:,} pixels" + (f" ({max_pixels / 1e6:g} megapixels)" if max_pixels >= 1e6 else "")
    if size is None:
        return f"The image is far too large (over {limit}): use a smaller image."
    width, height = size
    return (f"The image is {width} x {height} pixels, more than the {limit} cnnviz accepts: "
            "use a smaller image.")


def _too_much_memory_message(mode: str, size: tuple[int, int], max_pixels: int) -> str:
    width, height = size
    need = decode_memory(mode, size) / 2**20
    limit = max_pixels * DECODE_BYTES_PER_ALLOWED_PIXEL / 2**20
    return (f"The image is {width} x {height} pixels in mode {mode!r}, which need {need:.0f} MB to decode, "
            f"more than the {limit:.0f} MB cnnviz allows: use a smaller or 8-bit image.")


def _short(err: BaseException) -> str:
    text = str(err).strip().rstrip(".") or type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."
