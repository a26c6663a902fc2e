"""Test-time augmentation: a network answers with the mean of its logits over several views of an
image (the image, its mirror image, the image moved a pixel), the views it saw in training.

A :class:`~cnnviz.networks.build.SpecNet` takes its :class:`TestTimeAugmentation` as a constructor
argument and the checkpoint stores it; every answer (evaluation, predictions) goes through
:func:`class_logits`. Training steps never use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TestTimeAugmentation:
    """The views a network's answer averages over (none: the image alone)."""

    __test__ = False  # a library record, not a test class for pytest to collect

    mirror: bool = False  # the image and its mirror image (for nets trained with random flips)
    shift: bool = False  # also the image moved one pixel up-left and one pixel down-right

    @property
    def active(self) -> bool:
        """True when the answer averages over more than the image itself."""
        return self.mirror or self.shift


NO_TTA = TestTimeAugmentation()


def augmentation_of(model: nn.Module) -> TestTimeAugmentation:
    """The test-time augmentation ``model`` answers with: a SpecNet's record (``model.tta``); a network
    of another class (inspection works with any ``features`` + ``classifier`` net) has none unless it
    was given a ``tta`` record too."""
    tta = getattr(model, "tta", NO_TTA)
    assert isinstance(tta, TestTimeAugmentation), f"model.tta is a {type(tta).__name__}"
    return tta


def class_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The network's answer for a normalized batch: its logits, averaged over the views of its
    test-time augmentation.

    ``mirror``: the mean of the logits of the images and of their mirror images.
    ``shift``: half that, half the mean over the images moved one pixel up-left and one pixel
    down-right (edges reflected): the small moves the net saw in training.
    """
    tta = augmentation_of(model)
    logits = _mirror_mean(model, images, tta.mirror)
    if tta.shift:
        moved = [_mirror_mean(model, shift_image(images, step), tta.mirror) for step in (-1, 1)]
        logits = logits / 2 + (moved[0] + moved[1]) / 4
    return logits


def shift_image(images: torch.Tensor, step: int) -> torch.Tensor:
    """(N, C, H, W) images moved ``step`` (-1 or 1) pixels along both axes, the edge reflected."""
    height, width = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    return padded[..., 1 - step:1 - step + height, 1 - step:1 - step + width]


def _mirror_mean(model: nn.Module, images: torch.Tensor, mirror: bool) -> torch.Tensor:
    logits = model(images)
    if mirror:
        logits = (logits + model(images.flip(-1))) / 2
    return logits
