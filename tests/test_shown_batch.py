"""What the network is shown: a few training images and the same images as the recipe augments them."""

from __future__ import annotations

import pytest
import torch

from cnnviz.datasets.files import load_dataset
from cnnviz.training.augment import ShownBatch, shown_batch
from cnnviz.training.recipes import recipe


def _moved(image: torch.Tensor, down: int, right: int) -> torch.Tensor:
    """(C, H, W) ``image`` with its content moved ``down`` and ``right`` pixels, zeros coming in."""
    _, h, w = image.shape
    out = torch.zeros_like(image)
    out[:, max(0, down):h + min(0, down), max(0, right):w + min(0, right)] = \
        image[:, max(0, -down):h - max(0, down), max(0, -right):w - max(0, right)]
    return out


def _check(batch: ShownBatch, images: torch.Tensor) -> None:
    assert torch.equal(batch.originals, images[batch.indices])
    for i in range(len(batch.indices)):
        expected = _moved(batch.originals[i], int(batch.down[i]), int(batch.right[i]))
        if batch.mirrored[i]:
            expected = expected.flip(-1)
        assert torch.equal(batch.augmented[i], expected), batch.describe(i)
        assert abs(int(batch.down[i])) <= batch.shift and abs(int(batch.right[i])) <= batch.shift


@pytest.fixture(scope="module")
def train_images(real_data_dir) -> dict[str, torch.Tensor]:
    return {name: load_dataset(name, "train", real_data_dir).images[:2_000] for name in ("mnist", "cifar10")}


@pytest.mark.parametrize(("preset", "shift", "flip"), [
    ("mnist_fast", 2, False), ("cifar10_fast", 4, True), ("cifar10_gpu", 2, True), ("cifar10_speed", 0, True),
])
def test_each_image_is_its_original_shifted_and_mirrored_as_it_says(preset, shift, flip, train_images):
    config = recipe(preset)
    images = train_images[config.dataset]
    moves, mirrors = set(), 0
    for seed in range(6):
        batch = shown_batch(config, images, k=16, seed=seed)
        assert (batch.shift, batch.flip) == (shift, flip)
        _check(batch, images)
        moves |= {(int(d), int(r)) for d, r in zip(batch.down, batch.right, strict=True)}
        mirrors += int(batch.mirrored.sum())
    if shift:  # the shifts do vary, both ways
        assert len(moves) > 10 and min(m[0] for m in moves) < 0 < max(m[0] for m in moves)
    else:
        assert moves == {(0, 0)}
    assert (mirrors > 0) == flip  # MNIST's recipe never mirrors: a mirrored 2 is no digit


def test_the_same_seed_shows_the_same_batch_and_another_seed_another(train_images) -> None:
    config = recipe("cifar10_fast")
    first, again, other = (shown_batch(config, train_images["cifar10"], seed=s) for s in (3, 3, 4))
    assert torch.equal(first.augmented, again.augmented) and torch.equal(first.indices, again.indices)
    assert not torch.equal(first.indices, other.indices)


def test_alternating_flips_mirror_the_other_half_in_the_next_epoch(train_images) -> None:
    config = recipe("cifar10_speed")
    even, odd = (shown_batch(config, train_images["cifar10"], k=16, seed=1, epoch=e) for e in (0, 1))
    assert even.alternating and torch.equal(even.indices, odd.indices)
    assert torch.equal(odd.mirrored, ~even.mirrored)
    _check(odd, train_images["cifar10"])


def test_descriptions_read_as_a_person_says_them(train_images) -> None:
    batch = shown_batch(recipe("cifar10_fast"), train_images["cifar10"], k=32, seed=0)
    for i in range(32):
        text = batch.describe(i)
        right, down = int(batch.right[i]), int(batch.down[i])
        assert (f"{abs(right)} {'right' if right > 0 else 'left'}" in text) == (right != 0)
        assert (f"{abs(down)} {'down' if down > 0 else 'up'}" in text) == (down != 0)
        assert text.endswith("mirrored") == bool(batch.mirrored[i])
    with pytest.raises(ValueError, match="Pick 1 to"):
        shown_batch(recipe("mnist_fast"), train_images["mnist"][:4], k=5)


@pytest.mark.slow
def test_the_train_page_shows_a_batch_and_new_batch_draws_another(monkeypatch, tmp_path, real_data_dir):
    from streamlit.testing.v1 import AppTest

    from cnnviz.ui.navigation import page_spec
    from tests.conftest import REPO

    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
    monkeypatch.setenv("CNNVIZ_MODELS_DIR", str(tmp_path))
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.run()
    app.switch_page(str(page_spec("train").path))
    app.run()
    assert not app.exception, [e.value for e in app.exception]

    def shown() -> tuple[list[str], list[str]]:
        blocks = [b for b in app.get("image") if len(b.proto.imgs) == 8]
        originals, augmented = ([img.caption for img in b.proto.imgs] for b in blocks[-2:])
        return originals, augmented

    config = recipe("mnist_fast")
    images = load_dataset("mnist", "train", real_data_dir).images
    expected = shown_batch(config, images, k=8, seed=0)
    originals, augmented = shown()
    assert augmented == [expected.describe(i) for i in range(8)]
    assert all("mirrored" not in text for text in augmented)
    app.button(key="train_new_batch").click().run()
    assert not app.exception
    again = shown_batch(config, images, k=8, seed=1)
    assert shown()[1] == [again.describe(i) for i in range(8)]
