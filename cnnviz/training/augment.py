"""Data augmentation on uint8 batches, on any device: shifts, mirrors, one epoch at a time."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(
    images: torch.Tensor, pad: int, flip: bool, generator: torch.Generator,
    mirror: torch.Tensor | None = None,
) -> torch.Tensor:
    """Shift every image by up to ``pad`` pixels each way (zero fill), and mirror half when ``flip``
    (the images ``mirror``, a bool mask, says when given; a random half otherwise).

    Works on uint8 batches on any device with one gather, so the CPU and GPU run the same code.
    """
    n, c, h, w = images.shape
    device = images.device
    if pad > 0:
        padded = F.pad(images, (pad, pad, pad, pad))  # (N, C, H + 2p, W + 2p)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
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
