"""Real MNIST test digits staged as phone photos of handwriting on paper, for tests and benchmarks.

MNIST digits are white on black, centred and clean; a student's photo is dark ink on paper,
off-centre, lit unevenly, a little blurred and tilted, noisy, and saved as JPEG (sometimes stored
sideways with an EXIF orientation tag, as phones do). :func:`stage_photo` turns one real test
digit into such a photo, deterministically from a seed, so that the preprocessing can be tested
and its accuracy measured on pictures whose true label is known.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from cnnviz.datasets.files import load_dataset

# EXIF orientation -> how a phone stores the upright picture (Pillow's transposes).
_STORED_SIDEWAYS = {
    6: Image.Transpose.ROTATE_90,  # shown after turning 90 degrees clockwise
    8: Image.Transpose.ROTATE_270,
    3: Image.Transpose.ROTATE_180,
}


@dataclass(frozen=True)
class PhotoStyle:
    """How much a staged photo differs from a clean MNIST digit; each range is drawn uniformly."""

    width: int = 640  # px of the upright photo
    height: int = 480
    digit_height: tuple[float, float] = (0.25, 0.6)  # height of the written digit / photo height
    rotation_deg: tuple[float, float] = (-12.0, 12.0)
    stroke_cut: tuple[float, float] = (0.15, 0.4)  # where MNIST's soft stroke becomes ink: higher is thinner
    paper_brightness: tuple[float, float] = (185.0, 250.0)  # 0..255 under full light
    ink_brightness: tuple[float, float] = (10.0, 80.0)  # black, blue or pencil
    darkest_light: tuple[float, float] = (0.5, 0.9)  # illumination of the darkest corner / brightest
    shadow_probability: float = 0.3  # a soft shadow across the page (a hand, the phone)
    blur_radius: tuple[float, float] = (0.3, 1.5)  # px, Gaussian
    noise_sigma: tuple[float, float] = (2.0, 7.0)  # sensor noise, 0..255 units
    jpeg_quality: tuple[int, int] = (55, 92)
    sideways_probability: float = 0.25  # stored turned, with an EXIF orientation tag


@dataclass(frozen=True)
class StagedPhoto:
    """One staged photo and the truth about it."""

    jpeg: bytes
    label: int
    test_index: int  # position in MNIST's test split
    digit_box: tuple[int, int, int, int]  # (left, top, right, bottom) of the digit, upright photo
    orientation: int  # the EXIF orientation tag written (1: stored upright)


def stage_photo(
    digit: np.ndarray, rng: np.random.Generator, style: PhotoStyle = PhotoStyle()
) -> tuple[bytes, tuple[int, int, int, int], int]:
    """Render one MNIST digit as a JPEG photo of handwriting.

    Args:
        digit: (28, 28) uint8, white on black, as in MNIST.
        rng: the source of every random choice.
        style: the ranges the choices are drawn from.

    Returns:
        The JPEG bytes, the digit's box (left, top, right, bottom) in the upright photo, and the
        EXIF orientation written.
    """
    assert digit.shape == (28, 28), digit.shape
    width, height = style.width, style.height

    # The pen stroke: MNIST's soft strokes, enlarged, sharpened into ink, tilted.
    digit_px = rng.uniform(*style.digit_height) * height
    side = max(8, round(28 * digit_px / 20))  # MNIST digits are 20 px tall in a 28 px frame
    stroke = Image.fromarray(digit.astype(np.float32) / 255.0, mode="F")
    stroke = stroke.resize((side, side), Image.Resampling.BICUBIC)
    stroke = stroke.rotate(rng.uniform(*style.rotation_deg), Image.Resampling.BICUBIC, expand=True)
    cut = rng.uniform(*style.stroke_cut)
    ink = np.clip((np.asarray(stroke) - cut) / 0.4, 0.0, 1.0)  # (h, w), 1 where the pen was
    ink = _trim(ink)
    ink_h, ink_w = ink.shape
    if ink_h >= height or ink_w >= width:
        scale = 0.9 * min(height / ink_h, width / ink_w)
        ink = np.asarray(Image.fromarray(ink.astype(np.float32), mode="F").resize(
            (max(1, int(ink_w * scale)), max(1, int(ink_h * scale))), Image.Resampling.BILINEAR))
        ink_h, ink_w = ink.shape

    # Anywhere on the page, with a small margin: photos are rarely centred.
    margin = 0.04 * min(width, height)
    left = int(rng.uniform(margin, max(margin, width - ink_w - margin)))
    top = int(rng.uniform(margin, max(margin, height - ink_h - margin)))
    coverage = np.zeros((height, width), dtype=np.float64)
    coverage[top:top + ink_h, left:left + ink_w] = ink * rng.uniform(0.85, 1.0)

    paper = rng.uniform(*style.paper_brightness) * _tint(rng, warm=True)  # (3,)
    ink_rgb = rng.uniform(*style.ink_brightness) * _tint(rng, warm=False)
    texture = 1.0 + 0.03 * _smooth_noise(rng, height, width, cells=12)
    page = paper[None, None, :] * texture[:, :, None]  # (H, W, 3)
    picture = page * (1.0 - coverage[:, :, None]) + ink_rgb[None, None, :] * coverage[:, :, None]
    picture *= _lighting(rng, height, width, style)[:, :, None]

    image = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*style.blur_radius)))
    noise = rng.normal(0, rng.uniform(*style.noise_sigma), (height, width, 3))
    noisy = np.asarray(image).astype(np.float64) + noise
    image = Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8))

    orientation = 1
    if rng.random() < style.sideways_probability:
        orientation = int(rng.choice(list(_STORED_SIDEWAYS)))
        image = image.transpose(_STORED_SIDEWAYS[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(*style.jpeg_quality, endpoint=True)), exif=exif)
    return buffer.getvalue(), (left, top, left + ink_w, top + ink_h), orientation


def stage_photo_set(
    count: int = 100,
    seed: int = 0,
    style: PhotoStyle = PhotoStyle(),
    data_dir: str | os.PathLike | None = None,
) -> list[StagedPhoto]:
    """Stage ``count`` MNIST test digits, chosen at random by ``seed``, as photos.

    The same seed gives the same digits and byte-identical JPEGs.
    """
    test = load_dataset("mnist", "test", data_dir)
    rng = np.random.default_rng(seed)
    indices = rng.permutation(len(test))[:count]
    photos = []
    for index in indices.tolist():
        digit = test.images[index, 0].numpy()
        jpeg, box, orientation = stage_photo(digit, rng, style)
        photos.append(StagedPhoto(jpeg, int(test.labels[index]), index, box, orientation))
    return photos


def _trim(ink: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    if len(rows) == 0:
        return ink
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _tint(rng: np.random.Generator, warm: bool) -> np.ndarray:
    """Per-channel factors near 1: warm paper, or black/blue ink."""
    if warm:
        return np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 0.98)])
    blue = rng.random() < 0.4
    return np.array([1.0, 1.0, rng.uniform(1.8, 2.8) if blue else 1.0])


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Noise in -1..1 that varies over about 1/cells of the picture."""
    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((width, height), Image.Resampling.BICUBIC))


def _lighting(rng: np.random.Generator, height: int, width: int, style: PhotoStyle) -> np.ndarray:
    """Illumination in (0, 1]: a gradient from a window, a vignette, sometimes a soft shadow."""
    ys, xs = np.mgrid[0:height, 0:width]
    ys = ys / height - 0.5
    xs = xs / width - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    light = np.cos(angle) * xs + np.sin(angle) * ys  # -0.7 .. 0.7
    light = light - 0.6 * rng.uniform(0.2, 1.0) * (xs**2 + ys**2)
    if rng.random() < style.shadow_probability:
        edge_angle = rng.uniform(0, 2 * np.pi)
        distance = np.cos(edge_angle) * xs + np.sin(edge_angle) * ys - rng.uniform(0.2, 0.45)
        light = light - rng.uniform(0.1, 0.3) / (1 + np.exp(-distance / 0.03))
    light = (light - light.min()) / (light.max() - light.min())
    darkest = rng.uniform(*style.darkest_light)
    return darkest + (1 - darkest) * light
