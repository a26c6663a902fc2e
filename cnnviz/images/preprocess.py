"""Turn a user's picture into exactly what a network trained on MNIST or CIFAR-10 expects.

Each pipeline returns every intermediate step as a small image with a one-line explanation, so a
student can see why a prediction went right or wrong, and the final normalized tensor.

MNIST-style (a handwritten digit): grayscale, inversion when the ink is darker than the paper,
background cleanup (uneven light and paper texture removed), crop to the digit, longer side scaled
to 20 px keeping the aspect ratio, centred by centre of mass in a 28 x 28 frame -- the recipe by
which MNIST itself was made -- and normalization with MNIST's mean and standard deviation.

CIFAR-style (a photo): RGB, centre crop to a square, antialiased resize to 32 x 32, normalization.

Why this module is long: the MNIST pipeline is one recipe of six steps, each written out so a student
can see it; they share the step record and the explanations, and read best top to bottom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from cnnviz.datasets.files import DATASETS, dataset_info
from cnnviz.images.decode import DecodedImage, ImageError, decode_array
from cnnviz.training.step import normalize

MNIST_FRAME = 28  # px, the side of an MNIST image
MNIST_DIGIT_BOX = 20  # px, MNIST digits were scaled so that their longer side is 20
MNIST_CENTRE = 14.0  # the mean centre of mass of MNIST test digits, in pixel indices (row, col)
CIFAR_SIDE = 32  # px
STEP_DISPLAY_SIDE = 160  # px: larger step images are reduced for display
BACKGROUND_WORK_SIDE = 64  # px: the lighting is estimated on a reduced copy; it varies slowly
BACKGROUND_WINDOW = 0.25  # of the longer side: ink strokes thinner than this are not "background"
MIN_INK_CONTRAST = 0.08  # darkest ink / paper difference (0..1) below which a picture is blank
INK_FLOOR = 0.2  # of the strongest ink: weaker marks are paper texture, noise or shadow
INK_FULL = 0.6  # of the strongest ink: stronger marks are full ink, as MNIST's stroke cores are
MIN_BLOB_SHARE = 0.05  # marks with less than this share of the biggest mark's ink are dropped
LABEL_WORK_SIDE = 128  # px: marks are told apart on a reduced copy, fast enough for a 1024 px photo
MAX_DIGIT_PARTS = 3  # separate marks one handwritten digit may be made of (a broken 4, a 5's flag)
FILLED_FRAME = 0.95  # of each side: marks spanning this much of both sides fill the frame


@dataclass(frozen=True)
class Step:
    """One stage of a pipeline, as the page shows it."""

    key: str  # stable identifier: "grayscale", "inverted", ...
    title: str  # short caption: "Grayscale"
    description: str  # one sentence: what was done here, with this image's numbers
    image: np.ndarray  # (H, W) or (H, W, 3) uint8 for display; at most STEP_DISPLAY_SIDE a side


@dataclass(frozen=True)
class Preprocessed:
    """The network's input and how it was made."""

    dataset: str  # "mnist" or "cifar10"
    steps: tuple[Step, ...]
    pixels: torch.Tensor  # (C, H, W) uint8: the input before normalization, as in the dataset
    tensor: torch.Tensor  # (1, C, H, W) float32: (pixels / 255 - mean) / std
    inverted: bool = False  # MNIST: the colours were swapped (dark ink on light paper)
    doubt: str | None = None  # MNIST: one sentence when the picture does not look like one digit

    def step(self, key: str) -> Step:
        """The step with this key."""
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(key)


def preprocess(
    image: DecodedImage | Image.Image | np.ndarray,
    dataset: str,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Preprocessed:
    """Run the pipeline of ``dataset`` ("mnist" or "cifar10") on a user's picture.

    ``mean``/``std`` default to the dataset's (a checkpoint's own values may be passed instead).
    """
    info = dataset_info(dataset)
    if info.name == "mnist":
        return preprocess_digit(image, mean or info.mean, std or info.std)
    return preprocess_photo(image, mean or info.mean, std or info.std)


def prepare_dataset_pixels(
    pixels: torch.Tensor | np.ndarray,
    dataset: str,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Preprocessed:
    """A dataset image (a bundled sample) is already in the network's format: only normalize it.

    Args:
        pixels: (C, H, W) uint8 with the dataset's shape.
    """
    info = dataset_info(dataset)
    pixels = torch.as_tensor(np.asarray(pixels)).to(torch.uint8)
    if tuple(pixels.shape) != info.image_shape:
        raise ValueError(f"A {info.title} image is {info.image_shape} (C, H, W), not {tuple(pixels.shape)}.")
    tensor = normalize_image(pixels, mean or info.mean, std or info.std)
    steps = (
        Step("original", "Test-set image", f"Already a {info.title} image: nothing to prepare.",
             _display(_chw_to_hwc(pixels))),
        _normalized_step(tensor, mean or info.mean, std or info.std, _chw_to_hwc(pixels)),
    )
    return Preprocessed(info.name, steps, pixels, tensor)


def normalize_image(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(C, H, W) uint8 -> (1, C, H, W) float32 ``(pixels / 255 - mean) / std``, per channel: the
    training step's own normalization, of a batch of one image, so both sides compute the same."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)  # (1, C, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return normalize(pixels.unsqueeze(0), mean_t, std_t)


# --- MNIST-style ---------------------------------------------------------------------------------

def preprocess_digit(
    image: DecodedImage | Image.Image | np.ndarray,
    mean: Sequence[float] = DATASETS["mnist"].mean,
    std: Sequence[float] = DATASETS["mnist"].std,
) -> Preprocessed:
    """A picture of one handwritten digit, in any colours and light, to an MNIST-style input.

    Raises:
        ImageError: the picture is blank (no mark that stands out from the background).
    """
    rgb = _as_rgb_image(image)
    steps = [Step("original", "Your image", f"{rgb.width} x {rgb.height} pixels.", _display(rgb))]

    gray = np.asarray(rgb.convert("L"), dtype=np.float32) / 255.0  # (H, W) in 0..1
    steps.append(Step("grayscale", "Grayscale", "Colour dropped: MNIST digits are gray levels.",
                      _display(gray)))

    inverted = ink_is_dark(gray)
    ink_bright = 1.0 - gray if inverted else gray
    steps.append(Step(
        "inverted", "Inverted" if inverted else "Not inverted",
        "Dark ink on light paper: colours swapped, because MNIST digits are white on black."
        if inverted else "Light marks on a dark background already, as in MNIST: kept.",
        _display(ink_bright)))

    ink = clean_background(ink_bright)
    steps.append(Step("cleaned", "Background removed",
                      "Uneven light, paper texture and noise removed; the strongest ink set to white.",
                      _display(ink)))

    doubt = digit_doubt(ink)
    top, bottom, left, right = ink_bounding_box(ink)
    digit = ink[top:bottom, left:right]
    steps.append(Step("cropped", "Cropped to the digit",
                      f"The digit's box: {right - left} x {bottom - top} pixels.", _display(digit)))

    scaled = scale_longer_side(digit, MNIST_DIGIT_BOX)
    steps.append(Step("scaled", "Scaled to 20 px",
                      f"Longer side to 20 px, aspect ratio kept: {scaled.shape[1]} x {scaled.shape[0]}.",
                      _display(scaled)))

    framed, (row, col) = centre_by_mass(scaled, MNIST_FRAME, MNIST_CENTRE)
    pixels_hw = np.round(framed * 255.0).astype(np.uint8)  # (28, 28)
    steps.append(Step("centred", "Centred in 28 x 28",
                      f"Placed with its centre of mass at row {row:.1f}, column {col:.1f}: the middle, "
                      "as MNIST was made.", _display(pixels_hw)))

    pixels = torch.from_numpy(pixels_hw).unsqueeze(0)  # (1, 28, 28)
    tensor = normalize_image(pixels, mean, std)
    steps.append(_normalized_step(tensor, mean, std, pixels_hw))
    return Preprocessed("mnist", tuple(steps), pixels, tensor, inverted, doubt)


def digit_doubt(ink: np.ndarray) -> str | None:
    """One sentence when the cleaned marks (H, W) do not look like one digit, else None: more separate
    marks than a digit is made of (a page of writing, a scene), or marks that fill the whole frame
    (the crop to the digit then keeps everything)."""
    parts = int(label_components(ink > 0).max())
    top, bottom, left, right = ink_bounding_box(ink)
    height, width = ink.shape
    if parts > MAX_DIGIT_PARTS:
        reason = f"it has {parts} separate marks"
    elif bottom - top >= FILLED_FRAME * height and right - left >= FILLED_FRAME * width:
        reason = "its marks fill the whole frame"
    else:
        return None
    return (f"This does not look like one digit ({reason}), so the answer is the network's guess "
            "for the whole picture: frame one digit on plain paper.")


def ink_is_dark(gray: np.ndarray) -> bool:
    """True when the marks are darker than the background (ink on paper).

    The background is the most common brightness (the median); the marks are the few pixels
    furthest from it. Whichever side they lie further on is the ink's side.
    """
    low, median, high = np.percentile(gray, (0.5, 50.0, 99.5))
    return bool(median - low > high - median)


def clean_background(ink_bright: np.ndarray) -> np.ndarray:
    """Light marks on a dark, unevenly lit background -> marks in 0..1 on exact black.

    The background level is estimated on a reduced copy by a grey-level opening (a minimum then a
    maximum filter wider than any pen stroke), which keeps slow changes of light and removes the
    strokes; the marks are then measured relative to the local paper brightness (dividing out the
    light), scaled so the strongest ink is 1, and marks weaker than INK_FLOOR of it are dropped,
    as are specks far smaller than the main marks.

    Raises:
        ImageError: nothing stands out from the background.
    """
    background = estimate_background(ink_bright)
    paper_light = np.maximum(1.0 - background, 1e-3)  # how bright the paper is, in ink terms
    contrast = np.clip((ink_bright - background) / paper_light, 0.0, 1.0)
    # The strongest ink, measured on a slightly blurred copy so that one noisy pixel cannot set it.
    strongest = float(_filter(contrast, 3, np.mean).max())
    if strongest < MIN_INK_CONTRAST:
        raise ImageError("The image looks blank: no digit stands out from the background, "
                         "so draw or photograph one digit, dark on light or light on dark.")
    ink = np.clip((contrast / strongest - INK_FLOOR) / (INK_FULL - INK_FLOOR), 0.0, 1.0)
    return drop_specks(ink).astype(np.float32)


def estimate_background(image: np.ndarray) -> np.ndarray:
    """The slowly varying background level of an image whose marks are brighter than it."""
    height, width = image.shape
    scale = min(1.0, BACKGROUND_WORK_SIDE / max(height, width))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(image.astype(np.float32), mode="F").resize(small_size, Image.Resampling.BOX)
    window = max(3, int(BACKGROUND_WINDOW * max(small_size)) | 1)  # odd
    # Grey-level opening: the minimum removes bright strokes, the maximum restores the level.
    # Padding continues the slope at each edge (a point reflection), so that the opening keeps a
    # light gradient right up to the border instead of flattening it there.
    opened = _filter(_filter(np.asarray(small), window, np.min, "odd"), window, np.max, "odd")
    # A light blur hides the opening's flat steps; a wide one would lower the level at bright edges.
    smooth = _filter(opened, 3, np.mean)
    full = Image.fromarray(smooth.astype(np.float32), mode="F")
    return np.asarray(full.resize((width, height), Image.Resampling.BILINEAR))


def _filter(image: np.ndarray, window: int, reduce, edges: str = "even") -> np.ndarray:
    """Apply ``reduce`` (np.min, np.max, np.mean) over each odd ``window`` x ``window`` square,
    one axis then the other; edges are mirrored ("even") or continued by a point reflection ("odd").

    NumPy rather than torch here: torch's thread pool made these small steps 5x slower on a busy
    2-core machine.
    """
    pad = window // 2
    result = image.astype(np.float32)
    for axis in (0, 1):
        if result.shape[axis] > pad:
            widths = [(0, 0), (0, 0)]
            widths[axis] = (pad, pad)
            padded = np.pad(result, widths, mode="reflect", reflect_type=edges)
        else:  # too short to mirror: repeat the edge
            padded = np.pad(result, [(pad, pad) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=axis)
        result = reduce(windows, axis=-1)
    return result


def drop_specks(ink: np.ndarray) -> np.ndarray:
    """Remove connected marks whose ink is under MIN_BLOB_SHARE of the largest mark's, and marks
    touching the picture's edge with under half of it (the page's edge, a shadow, the table)."""
    labels = label_components(ink > 0)
    count = int(labels.max())
    if count <= 1:
        return ink
    mass = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=count + 1)
    mass[0] = 0.0
    keep = mass >= MIN_BLOB_SHARE * mass.max()
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    keep[edge_labels] &= mass[edge_labels] >= 0.5 * mass.max()
    keep[0] = False
    return np.where(keep[labels], ink, 0.0)


def label_components(mask: np.ndarray, max_side: int = LABEL_WORK_SIDE) -> np.ndarray:
    """Label 8-connected regions of a boolean mask 1..K (0: background).

    Labels are found on a copy reduced (by max-pooling) to at most ``max_side`` px, so marks closer
    than one reduced cell count as one; each round spreads the largest id one cell further inside
    its region, until nothing changes.
    """
    height, width = mask.shape
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.int64)
    cell = max(1, -(-max(height, width) // max_side))  # ceil
    padded = np.pad(mask, ((0, -height % cell), (0, -width % cell)))
    coarse_h, coarse_w = padded.shape[0] // cell, padded.shape[1] // cell
    inside = padded.reshape(coarse_h, cell, coarse_w, cell).any(axis=(1, 3))  # (h, w) max-pooled
    labels = np.where(inside, np.arange(1, coarse_h * coarse_w + 1).reshape(coarse_h, coarse_w), 0)
    while True:
        ring = np.pad(labels, 1)
        neighbours = [ring[dy:dy + coarse_h, dx:dx + coarse_w] for dy in range(3) for dx in range(3)]
        spread = np.where(inside, np.maximum.reduce(neighbours), 0)
        if np.array_equal(spread, labels):
            break
        labels = spread
    _, dense = np.unique(labels, return_inverse=True)  # 0 stays first: background
    dense = dense.reshape(coarse_h, coarse_w)
    if cell > 1:
        dense = dense[np.arange(height) // cell][:, np.arange(width) // cell]
    return np.where(mask, dense, 0).astype(np.int64)


def ink_bounding_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), bottom/right exclusive, of the pixels with any ink."""
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    if len(rows) == 0:
        raise ImageError("The image looks blank: no digit was found, so draw or photograph one digit.")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def scale_longer_side(image: np.ndarray, side: int) -> np.ndarray:
    """Resize (H, W) floats so that the longer side is ``side`` px, keeping the aspect ratio.

    Shrinking averages the covered area (as a camera pixel would); enlarging is bicubic.
    """
    height, width = image.shape
    factor = side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    if size == (width, height):
        return image.astype(np.float32)
    method = Image.Resampling.BOX if factor < 1 else Image.Resampling.BICUBIC
    resized = Image.fromarray(image.astype(np.float32), mode="F").resize(size, method)
    return np.clip(np.asarray(resized), 0.0, 1.0)


def centre_by_mass(image: np.ndarray, frame: int, centre: float) -> tuple[np.ndarray, tuple[float, float]]:
    """Paste (h, w) floats into a (frame, frame) black square, shifted by whole pixels so that the
    centre of mass lands on (centre, centre); the digit is kept inside the frame.

    Returns:
        The framed image and its centre of mass in the frame, (row, col).
    """
    height, width = image.shape
    mass = float(image.sum())
    rows, cols = np.arange(height), np.arange(width)
    row = float((image.sum(axis=1) * rows).sum() / mass) if mass > 0 else (height - 1) / 2
    col = float((image.sum(axis=0) * cols).sum() / mass) if mass > 0 else (width - 1) / 2
    top = int(np.clip(round(centre - row), 0, frame - height))
    left = int(np.clip(round(centre - col), 0, frame - width))
    framed = np.zeros((frame, frame), dtype=np.float32)
    framed[top:top + height, left:left + width] = image
    return framed, (row + top, col + left)


# --- CIFAR-style ---------------------------------------------------------------------------------

def preprocess_photo(
    image: DecodedImage | Image.Image | np.ndarray,
    mean: Sequence[float] = DATASETS["cifar10"].mean,
    std: Sequence[float] = DATASETS["cifar10"].std,
    side: int = CIFAR_SIDE,
) -> Preprocessed:
    """A photo to a CIFAR-style input: RGB, centre square, antialiased resize, normalization."""
    rgb = _as_rgb_image(image)
    steps = [Step("original", "Your image", f"{rgb.width} x {rgb.height} pixels, in RGB colour.",
                  _display(rgb))]

    box = centre_square(rgb.width, rgb.height)
    square = rgb.crop(box)
    steps.append(Step("cropped", "Centre square",
                      f"The middle {square.width} x {square.height} square: CIFAR-10 images are square.",
                      _display(square)))

    small = square if square.size == (side, side) else square.resize(
        (side, side), Image.Resampling.BICUBIC, reducing_gap=None)
    pixels_hw = np.asarray(small, dtype=np.uint8)  # (32, 32, 3)
    steps.append(Step("resized", f"{side} x {side}",
                      f"Resized to {side} x {side} pixels with antialiasing, the size of CIFAR-10 images.",
                      _display(pixels_hw)))

    pixels = torch.from_numpy(pixels_hw.copy()).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
    tensor = normalize_image(pixels, mean, std)
    steps.append(_normalized_step(tensor, mean, std, pixels_hw))
    return Preprocessed("cifar10", tuple(steps), pixels, tensor)


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of the largest centred square."""
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    return left, top, left + side, top + side


# --- shared --------------------------------------------------------------------------------------

def _as_rgb_image(image: DecodedImage | Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, DecodedImage):
        return image.image
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else decode_array(np.asarray(image)).image
    return decode_array(image).image


def _normalized_step(
    tensor: torch.Tensor, mean: Sequence[float], std: Sequence[float], pixels_hw: np.ndarray
) -> Step:
    means = ", ".join(f"{m:.4f}" for m in mean)
    stds = ", ".join(f"{s:.4f}" for s in std)
    return Step(
        "normalized", "Normalized",
        f"Each value (pixel / 255 - {means}) / {stds}: now from {float(tensor.min()):.2f} to "
        f"{float(tensor.max()):.2f}, as the network saw its training images.",
        _display(pixels_hw))


def _chw_to_hwc(pixels: torch.Tensor) -> np.ndarray:
    array = pixels.permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
    return array[:, :, 0] if array.shape[2] == 1 else array


def _display(image: Image.Image | np.ndarray) -> np.ndarray:
    """A uint8 copy for the page: reduced to STEP_DISPLAY_SIDE, or small ones enlarged by a whole
    factor without blurring, so that a 28 px digit shows its pixels."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            image = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
        image = Image.fromarray(image)
    longer = max(image.size)
    if longer > STEP_DISPLAY_SIDE:
        factor = STEP_DISPLAY_SIDE / longer
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        image = image.resize(size, Image.Resampling.BOX)
    elif longer * 2 <= STEP_DISPLAY_SIDE:
        factor = STEP_DISPLAY_SIDE // longer
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    return np.asarray(image)
