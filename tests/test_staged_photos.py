"""The staged phone photos of real MNIST test digits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cnnviz.datasets import files as data
from cnnviz.images.decode import decode_image
from cnnviz.images.staged_photos import PhotoStyle, stage_photo_set


@pytest.fixture(scope="module")
def photos():
    if not data.is_available("mnist"):
        pytest.skip("MNIST is not in the data directory")
    return stage_photo_set(8, seed=5)


def test_same_seed_same_bytes_other_seed_other_photos(photos) -> None:
    again = stage_photo_set(8, seed=5)
    assert [p.jpeg for p in again] == [p.jpeg for p in photos]
    other = stage_photo_set(8, seed=6)
    assert [p.test_index for p in other] != [p.test_index for p in photos]


def test_labels_are_the_test_sets(photos) -> None:
    test = data.load_dataset("mnist", "test")
    for photo in photos:
        assert photo.label == int(test.labels[photo.test_index])


def test_photos_look_like_phone_photos_of_ink_on_paper(photos) -> None:
    style = PhotoStyle()
    orientations = set()
    for photo in photos:
        stored = Image.open(io.BytesIO(photo.jpeg))
        assert stored.format == "JPEG"
        orientations.add(photo.orientation)
        assert stored.getexif().get(0x0112) == photo.orientation
        upright = decode_image(photo.jpeg)
        assert upright.size == (style.width, style.height)
        gray = np.asarray(upright.image.convert("L"), dtype=float)
        left, top, right, bottom = photo.digit_box
        outside = np.ones(gray.shape, dtype=bool)
        outside[top:bottom, left:right] = False
        paper = gray[outside]
        assert np.percentile(gray[~outside], 2) < np.percentile(paper, 2) - 40  # dark ink
        # Uneven light: the brightest and darkest tenths of the paper differ clearly.
        assert np.percentile(paper, 95) - np.percentile(paper, 5) > 10
        # Off-centre: the digit's middle is rarely the photo's middle.
        centre_x = (left + right) / 2
        assert 0 < centre_x < style.width
    assert len(orientations) > 1  # some are stored sideways with an EXIF tag
