"""Each preprocessing step on real images: bundled test-set samples and staged phone photos."""

from __future__ import annotations

import inspect
import io
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from cnnviz.datasets import files as data
from cnnviz.datasets.samples import list_samples, load_sample
from cnnviz.images import preprocess as pp
from cnnviz.images.decode import ImageError, decode_array, decode_image
from cnnviz.images.staged_photos import PhotoStyle, StagedPhoto, stage_photo, stage_photo_set
from cnnviz.training.step import normalization_tensors
from cnnviz.training.step import normalize as step_normalize

MNIST_SAMPLES = list_samples("mnist")
CIFAR_SAMPLES = list_samples("cifar10")


@dataclass(frozen=True)
class Staged:
    photo: StagedPhoto
    gray: np.ndarray  # (H, W) 0..1, decoded and upright
    ink: np.ndarray  # clean_background(1 - gray)


@pytest.fixture(scope="module")
def photos() -> list[StagedPhoto]:
    if not data.is_available("mnist"):
        pytest.skip("MNIST is not in the data directory")
    return stage_photo_set(20, seed=11)


@pytest.fixture(scope="module")
def staged(photos) -> list[Staged]:
    result = []
    for photo in photos:
        gray = np.asarray(decode_image(photo.jpeg).image.convert("L"), dtype=np.float32) / 255
        result.append(Staged(photo, gray, pp.clean_background(1 - gray)))
    return result


def mnist_pixels(sample) -> np.ndarray:
    return load_sample(sample)[0].numpy()  # (28, 28) uint8


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(image.shape)
    mass = image.sum()
    return float((rows * image).sum() / mass), float((cols * image).sum() / mass)


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Boxes as (left, top, right, bottom)."""
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area(a) + area(b) - inter)


# --- MNIST-style: whole pipeline -----------------------------------------------------------------

def test_bundled_mnist_digits_come_out_nearly_as_they_went_in() -> None:
    correlations = []
    for sample in MNIST_SAMPLES:
        original = mnist_pixels(sample)
        result = pp.preprocess(decode_array(original), "mnist")
        assert not result.inverted
        assert result.pixels.shape == (1, 28, 28) and result.pixels.dtype == torch.uint8
        assert result.tensor.shape == (1, 1, 28, 28)
        correlations.append(np.corrcoef(result.pixels[0].numpy().ravel(), original.ravel())[0, 1])
    assert np.median(correlations) > 0.95, sorted(correlations)[:5]


def test_black_on_white_gives_the_white_on_black_result() -> None:
    for sample in MNIST_SAMPLES[::5]:
        original = mnist_pixels(sample)
        plain = pp.preprocess(decode_array(original), "mnist")
        flipped = pp.preprocess(decode_array(255 - original), "mnist")
        assert flipped.inverted and not plain.inverted
        # The same digit, up to float rounding: at most one gray level apart in a few pixels.
        difference = (flipped.pixels.int() - plain.pixels.int()).abs()
        assert difference.max() <= 1 and (difference > 0).sum() <= 3


def test_steps_are_named_small_images_in_order(photos) -> None:
    result = pp.preprocess(decode_image(photos[0].jpeg), "mnist")
    assert [s.key for s in result.steps] == [
        "original", "grayscale", "inverted", "cleaned", "cropped", "scaled", "centred", "normalized"]
    for step in result.steps:
        assert step.image.dtype == np.uint8 and max(step.image.shape[:2]) <= pp.STEP_DISPLAY_SIDE
        assert step.title and step.description.endswith(".")
    assert result.step("inverted").title == "Inverted"


# --- MNIST-style: each step on staged photos -----------------------------------------------------

def test_inversion_is_detected_on_photos_of_ink_and_of_chalk(staged) -> None:
    for item in staged:
        assert pp.ink_is_dark(item.gray), item.photo.test_index
        assert not pp.ink_is_dark(1 - item.gray), item.photo.test_index  # chalk on a blackboard
    for sample in MNIST_SAMPLES:
        assert not pp.ink_is_dark(mnist_pixels(sample) / 255.0)


def test_background_cleanup_keeps_the_digit_and_only_the_digit(staged) -> None:
    naive_outside_shares = []
    for item in staged:
        photo, gray, ink = item.photo, item.gray, item.ink
        left, top, right, bottom = photo.digit_box
        margin = 4
        inside = np.zeros(ink.shape, dtype=bool)
        inside[max(0, top - margin):bottom + margin, max(0, left - margin):right + margin] = True
        assert ink.max() == 1.0
        assert ink[~inside].sum() == 0, f"photo {photo.test_index}: marks left outside the digit"
        assert ink[inside].mean() > 0.1
        # Without the cleanup, uneven light and paper put much of the "ink" outside the digit.
        naive = (1 - gray) - (1 - gray).min()
        naive_outside_shares.append(naive[~inside].sum() / naive.sum())
    assert np.mean(naive_outside_shares) > 0.5


def test_crop_finds_the_digit_where_it_was_staged(staged) -> None:
    overlaps = []
    for item in staged:
        photo = item.photo
        top, bottom, left, right = pp.ink_bounding_box(item.ink)
        staged_left, staged_top, staged_right, staged_bottom = photo.digit_box
        margin = 3
        assert staged_left - margin <= left < right <= staged_right + margin, photo.test_index
        assert staged_top - margin <= top < bottom <= staged_bottom + margin, photo.test_index
        overlaps.append(box_iou((left, top, right, bottom), photo.digit_box))
    # Stray dots of a few MNIST digits are dropped as specks, so their box may be smaller.
    assert np.mean(np.array(overlaps) > 0.8) >= 0.9, sorted(overlaps)[:5]


def test_scaling_makes_the_longer_side_20_and_keeps_the_aspect_ratio(staged) -> None:
    for item in staged:
        ink = item.ink
        top, bottom, left, right = pp.ink_bounding_box(ink)
        digit = ink[top:bottom, left:right]
        scaled = pp.scale_longer_side(digit, 20)
        height, width = digit.shape
        assert max(scaled.shape) == 20
        assert scaled.shape == (max(1, round(height * 20 / max(height, width))),
                                max(1, round(width * 20 / max(height, width))))
        # Shrinking averages areas: the mean ink stays (up to the rounding of the new size).
        assert abs(scaled.mean() - digit.mean()) < 0.05 * digit.mean() + 0.01
    tall = np.ones((100, 10), dtype=np.float32)
    assert pp.scale_longer_side(tall, 20).shape == (20, 2)
    tiny = np.ones((5, 3), dtype=np.float32)
    assert pp.scale_longer_side(tiny, 20).shape == (20, 12)


def test_centring_by_mass_as_mnist_was_made() -> None:
    # MNIST's own digits: their centres of mass average (14.0, 14.0) -- the target used.
    centres = np.array([centre_of_mass(mnist_pixels(s).astype(float)) for s in MNIST_SAMPLES])
    assert np.abs(centres.mean(axis=0) - pp.MNIST_CENTRE).max() < 0.15
    blob = np.zeros((14, 10), dtype=np.float32)
    blob[:3, :] = 1.0  # all the mass at the top: centred by mass, not by box
    framed, (row, col) = pp.centre_by_mass(blob, 28, 14.0)
    assert (row, col) == pytest.approx(centre_of_mass(framed))
    assert abs(row - 14.0) <= 0.5 and abs(col - 14.0) <= 0.5
    assert framed.sum() == blob.sum()  # nothing cut off
    edge = np.zeros((20, 20), dtype=np.float32)
    edge[:, 0] = 1.0  # the mass wants to move past the frame: the digit stays whole
    framed, _ = pp.centre_by_mass(edge, 28, 14.0)
    assert framed.sum() == edge.sum()


def test_normalization_equals_torchvision() -> None:
    pixels = torch.from_numpy(mnist_pixels(MNIST_SAMPLES[0])).unsqueeze(0)
    expected = TF.normalize(pixels.float() / 255, data.MNIST_MEAN, data.MNIST_STD).unsqueeze(0)
    torch.testing.assert_close(pp.normalize_image(pixels, data.MNIST_MEAN, data.MNIST_STD), expected)
    rgb = load_sample(CIFAR_SAMPLES[0])
    expected = TF.normalize(rgb.float() / 255, data.CIFAR10_MEAN, data.CIFAR10_STD).unsqueeze(0)
    torch.testing.assert_close(pp.normalize_image(rgb, data.CIFAR10_MEAN, data.CIFAR10_STD), expected)


def test_an_image_is_normalized_exactly_as_training_normalizes_its_batches() -> None:
    for name, sample in (("mnist", MNIST_SAMPLES[0]), ("cifar10", CIFAR_SAMPLES[0])):
        info = data.dataset_info(name)
        pixels = load_sample(sample)  # (C, H, W) uint8
        mean, std = normalization_tensors(info, torch.device("cpu"))
        one = pp.normalize_image(pixels, info.mean, info.std)
        assert torch.equal(one, step_normalize(pixels[None], mean, std))
    # The defaults are the datasets' own statistics, not a copy of them.
    assert inspect.signature(pp.preprocess_digit).parameters["mean"].default is data.DATASETS["mnist"].mean
    assert inspect.signature(pp.preprocess_photo).parameters["std"].default is data.DATASETS["cifar10"].std


def test_staged_photos_become_the_digit_they_show(photos) -> None:
    """The 28 x 28 result of a photo looks like the pipeline's result of the clean test digit."""
    test = data.load_dataset("mnist", "test")
    correlations = []
    for photo in photos:
        from_photo = pp.preprocess(decode_image(photo.jpeg), "mnist").pixels[0].numpy().astype(float)
        clean = pp.preprocess(decode_array(test.images[photo.test_index, 0].numpy()), "mnist")
        correlations.append(np.corrcoef(from_photo.ravel(), clean.pixels[0].numpy().ravel())[0, 1])
    assert np.median(correlations) > 0.75, sorted(correlations)


def test_blank_pictures_get_one_sentence() -> None:
    rng = np.random.default_rng(0)
    blank_page, _, _ = stage_photo(np.zeros((28, 28), np.uint8), rng, PhotoStyle(shadow_probability=0))
    cases = {
        "white": Image.new("RGB", (300, 200), "white"),
        "black": Image.new("L", (28, 28), 0),
        "one pixel": Image.new("RGB", (1, 1), (40, 90, 200)),
        "blank paper photo": decode_image(blank_page).image,
    }
    for name, image in cases.items():
        with pytest.raises(ImageError, match="blank") as info:
            pp.preprocess(image, "mnist")
        assert "\n" not in str(info.value), name


def test_odd_inputs_still_give_a_28_by_28_digit() -> None:
    dot = Image.new("L", (3, 3), 255)
    dot.putpixel((1, 1), 0)  # a single black pixel on white
    result = pp.preprocess(dot, "mnist")
    assert result.inverted and result.pixels.shape == (1, 28, 28) and result.pixels.max() == 255
    rgba = np.zeros((80, 80, 4), dtype=np.uint8)  # a canvas: black strokes, transparent elsewhere
    rgba[10:70, 38:44] = [0, 0, 0, 255]
    result = pp.preprocess(rgba, "mnist")
    assert result.inverted
    rows = np.flatnonzero(result.pixels[0].numpy().max(axis=1))
    assert rows[-1] - rows[0] + 1 == 20  # a "1": 20 px tall


# --- CIFAR-style ---------------------------------------------------------------------------------

def test_cifar_samples_pass_through_unchanged() -> None:
    for sample in CIFAR_SAMPLES[:10]:
        pixels = load_sample(sample)
        image = Image.fromarray(pixels.permute(1, 2, 0).numpy())
        result = pp.preprocess(image, "cifar10")
        torch.testing.assert_close(result.pixels, pixels, rtol=0, atol=0)
        expected = pp.normalize_image(pixels, data.CIFAR10_MEAN, data.CIFAR10_STD)
        torch.testing.assert_close(result.tensor, expected)
        assert [s.key for s in result.steps] == ["original", "cropped", "resized", "normalized"]


def test_an_enlarged_photo_shrinks_back_to_nearly_itself() -> None:
    errors = []
    for sample in CIFAR_SAMPLES[:10]:
        pixels = load_sample(sample).permute(1, 2, 0).numpy()  # (32, 32, 3)
        big = Image.fromarray(pixels).resize((256, 256), Image.Resampling.NEAREST)
        jpeg = io.BytesIO()
        big.save(jpeg, "JPEG", quality=95)
        result = pp.preprocess(decode_image(jpeg.getvalue()), "cifar10")
        errors.append(np.abs(result.pixels.permute(1, 2, 0).numpy().astype(int) - pixels).mean())
    assert np.mean(errors) < 6, errors


def test_centre_crop_of_a_wide_photo() -> None:
    assert pp.centre_square(200, 100) == (50, 0, 150, 100)
    assert pp.centre_square(101, 300) == (0, 99, 101, 200)
    wide = np.zeros((100, 300, 3), dtype=np.uint8)
    wide[:, 100:200] = [200, 40, 40]  # red centre, black sides that the crop must drop
    result = pp.preprocess(wide, "cifar10")
    assert (result.pixels.permute(1, 2, 0).numpy() == [200, 40, 40]).all()
    assert result.step("cropped").description.startswith("The middle 100 x 100")


def test_cifar_gray_and_transparent_inputs_become_rgb() -> None:
    gray = pp.preprocess(Image.new("L", (64, 48), 90), "cifar10")
    assert gray.pixels.shape == (3, 32, 32) and (gray.pixels == 90).all()
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)  # fully transparent: white paper
    assert (pp.preprocess(rgba, "cifar10").pixels == 255).all()
    one = pp.preprocess(Image.new("RGB", (1, 1), (10, 200, 30)), "cifar10")
    assert (one.pixels.permute(1, 2, 0) == torch.tensor([10, 200, 30], dtype=torch.uint8)).all()


def test_prepare_dataset_pixels() -> None:
    pixels = load_sample(MNIST_SAMPLES[3])
    result = pp.prepare_dataset_pixels(pixels, "mnist")
    torch.testing.assert_close(result.tensor, pp.normalize_image(pixels, data.MNIST_MEAN, data.MNIST_STD))
    with pytest.raises(ValueError, match="is \\(3, 32, 32\\)"):
        pp.prepare_dataset_pixels(pixels, "cifar10")


def test_a_checkpoint_mean_and_std_are_used() -> None:
    pixels = load_sample(MNIST_SAMPLES[0])
    result = pp.preprocess(decode_array(pixels[0].numpy()), "mnist", mean=(0.5,), std=(0.5,))
    torch.testing.assert_close(result.tensor, result.pixels.float().unsqueeze(0) / 127.5 - 1)


def test_a_picture_that_is_not_one_digit_is_answered_with_a_doubt() -> None:
    digits = [load_sample(s)[0].numpy() for s in MNIST_SAMPLES[:16]]
    sheet = 255 - np.block([[digits[4 * r + c] for c in range(4)] for r in range(4)])  # 16 digits on paper
    many = pp.preprocess(decode_array(sheet), "mnist")
    assert many.doubt is not None and "separate marks" in many.doubt and "one digit" in many.doubt
    rng = np.random.default_rng(0)
    scene = (rng.random((48, 64)) * 255).astype(np.uint8)  # texture everywhere: a room, not a digit
    filled = pp.preprocess(decode_array(scene), "mnist")
    assert filled.doubt is not None and "fill the whole frame" in filled.doubt
    assert filled.step("cropped").image.shape[:2] == pp._display(np.zeros((48, 64))).shape[:2]  # all of it


def test_one_digit_raises_no_doubt(photos) -> None:
    for sample in MNIST_SAMPLES:
        digit = load_sample(sample)[0].numpy()
        assert pp.preprocess(decode_array(255 - digit), "mnist").doubt is None, sample.caption
    for photo in photos:
        assert pp.preprocess(decode_image(photo.jpeg), "mnist").doubt is None
