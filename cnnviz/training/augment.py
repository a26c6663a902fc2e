"""Data augmentation on uint8 batches, on any device: shifts, mirrors, one epoch at a time."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnviz.datasets.files import dataset_info
from cnnviz.training.config import TrainConfig
from cnnviz.training.prepare import Schedule
from cnnviz.training.tricks import alternating_mirror


def random_crop_flip(
    images: torch.Tensor, pad: int, flip: bool, generator: torch.Generator,
    mirror: torch.Tensor | None = None, crops: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Shift every image by up to ``pad`` pixels each way (zero fill), and mirror half when ``flip``
    (the images ``mirror``, a bool mask, says when given; a random half otherwise).

    ``crops``, when given, is the (dy, dx) pair of (N,) int64 crop corners in the padded image (0 to
    ``2 * pad``) instead of random ones: the content moves ``pad - dy`` pixels down, ``pad - dx`` right.
    Works on uint8 batches on any device with one gather, so the CPU and GPU run the same code.
    """
    n, c, h, w = images.shape
    device = images.device
    if pad > 0:
        padded = F.pad(images, (pad, pad, pad, pad))  # (N, C, H + 2p, W + 2p)
        if crops is None:
            dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
            dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        else:
            dy, dx = (corner.to(device) for corner in crops)
        rows = dy[:, None] + torch.arange(h, device=device)  # (N, H)
        cols = dx[:, None] + torch.arange(w, device=device)  # (N, W)
        images = padded[
            torch.arange(n, device=device)[:, None, None, None],
            torch.arange(c, device=device)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]  # (N, C, H, W)
    if flip:
        if mirror is None:
            mirror = torch.rand(n, generator=generator, device=device) < 0.5
        images = torch.where(mirror[:, None, None, None], images.flip(3), images)
    return images


def shuffled_epoch(
    images: torch.Tensor, labels: torch.Tensor, shift: int, flip: bool, generator: torch.Generator,
    chunk: int = 10_000, mirror: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's images in a fresh random order, each shifted and mirrored at random (or mirrored
    where ``mirror``, a bool mask over ``images``, says).

    Augmenting the whole epoch at once (in chunks, to bound the gather's index memory) leaves each
    step a plain slice: a GPU training a small net is bound by how many kernels a step launches.
    """
    order = torch.randperm(len(labels), generator=generator, device=labels.device)
    if shift == 0 and not flip:
        return images[order], labels[order]
    shuffled = torch.cat([
        random_crop_flip(images[order[start:start + chunk]], shift, flip, generator,
                         None if mirror is None else mirror[order[start:start + chunk]])
        for start in range(0, len(order), chunk)
    ])
    return shuffled, labels[order]


@dataclass(frozen=True)
class ShownBatch:
    """A few training images as they are, and as a recipe's augmentation shows them to the network."""

    indices: torch.Tensor  # (k,) int64 positions in the training images given
    originals: torch.Tensor  # (k, C, H, W) uint8
    augmented: torch.Tensor  # (k, C, H, W) uint8, what one training step sees
    right: torch.Tensor  # (k,) int64 pixels the content moved right (negative: left)
    down: torch.Tensor  # (k,) int64 pixels it moved down (negative: up)
    mirrored: torch.Tensor  # (k,) bool mirrored left to right (after the shift)
    shift: int  # the recipe's largest shift (0: none)
    flip: bool  # whether the recipe mirrors at all
    alternating: bool  # mirrored by halves that swap every epoch, not at random

    def describe(self, i: int) -> str:
        """'shifted 2 right, 1 up, mirrored', or 'as it is'."""
        moves = [f"{abs(n)} {word[n > 0]}" for n, word in ((int(self.right[i]), ("left", "right")),
                                                          (int(self.down[i]), ("up", "down"))) if n]
        words = ["shifted " + ", ".join(moves)] if moves else []
        words += ["mirrored"] if self.mirrored[i] else []
        return ", ".join(words) or "as it is"


def shown_batch(
    config: TrainConfig, images: torch.Tensor, k: int = 8, seed: int = 0, epoch: int = 0,
) -> ShownBatch:
    """``k`` of ``images`` (uint8 (N, C, H, W) training images), picked with ``seed``, and the same
    images as ``config``'s recipe augments them in ``epoch``: shifted with zero fill by
    :func:`random_crop_flip` and mirrored at random, or by alternating halves (``alternating_flip``).

    Raises:
        ValueError: ``k`` is below 1 or there are fewer than ``k`` images.
    """
    if not 1 <= k <= len(images):
        raise ValueError(f"Pick 1 to {len(images)} images to show, not {k}.")
    schedule = Schedule.of(config, dataset_info(config.dataset), len(images))
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(images), generator=generator)[:k]
    originals = images[indices]
    pad = schedule.shift
    corners = torch.randint(0, 2 * pad + 1, (2, k), generator=generator)  # (dy, dx) in the padded image
    mirror = torch.zeros(k, dtype=torch.bool)
    if schedule.flip:
        mirror = torch.rand(k, generator=generator) < 0.5
        if config.alternating_flip:
            mirror = alternating_mirror(mirror, epoch)
    augmented = random_crop_flip(originals, pad, schedule.flip, generator, mirror=mirror,
                                 crops=(corners[0], corners[1]))
    return ShownBatch(indices=indices, originals=originals, augmented=augmented, right=pad - corners[1],
                      down=pad - corners[0], mirrored=mirror, shift=pad, flip=schedule.flip,
                      alternating=schedule.flip and config.alternating_flip)
