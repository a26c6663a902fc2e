"""The patch-whitening first layer of the airbench speed runs."""

from __future__ import annotations

import torch
from torch import nn

from cnnviz.networks.build import SpecNet

WHITENING_IMAGES = 5000  # enough patches for a stable 12x12 covariance
WHITENING_EPS = 5e-4


def whitening_layer(model: SpecNet, whiten: bool) -> nn.Conv2d | None:
    """The model's first layer when ``whiten`` asks for a whitening layer and its shape allows one
    (see :func:`init_whitening`); else None."""
    first = model.features[0] if len(model.features) else None
    return first if whiten and isinstance(first, nn.Conv2d) and _fits_whitening(first) else None


def _fits_whitening(conv: nn.Conv2d) -> bool:
    k = conv.kernel_size[0]
    dims = conv.in_channels * k * k
    return conv.kernel_size == (k, k) and conv.out_channels == 2 * dims and conv.stride == (1, 1)


def init_whitening(conv: nn.Conv2d, images: torch.Tensor) -> bool:
    """Make ``conv`` a frozen patch-whitening layer; returns False when its shape does not allow it.

    The idea (from the airbench speed runs): the first layer's filters are the eigenvectors of the
    covariance of image patches, scaled by 1/sqrt(eigenvalue), plus their negatives so a ReLU after
    it loses nothing. The network then starts from decorrelated inputs and learns much faster.

    Args:
        conv: a Conv2d with ``out_channels == 2 * in_channels * k * k``.
        images: normalized float images (N, C, H, W).
    """
    if not _fits_whitening(conv):
        return False
    k = conv.kernel_size[0]
    dims = conv.in_channels * k * k
    with torch.no_grad():
        patches = images.unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
        # One float64 copy of the patches, centred in place: for 5,000 CIFAR-10 images the float32
        # copy, the float64 one and the centred one took 1.15 GB at once; this takes 0.46 GB, and
        # computes the same numbers.
        patches = patches.permute(0, 2, 3, 1, 4, 5).to(torch.float64, memory_format=torch.contiguous_format)
        patches = patches.view(-1, dims)  # (P, C*k*k)
        patches -= patches.mean(dim=0)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + WHITENING_EPS)[:, None]).float()  # (dims, dims)
        filters = filters.reshape(dims, conv.in_channels, k, k)
        conv.weight.copy_(torch.cat([filters, -filters]))
        if conv.bias is not None:
            conv.bias.zero_()
    conv.weight.requires_grad_(False)
    return True
