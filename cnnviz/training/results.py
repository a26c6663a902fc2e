"""What a trained model got right and wrong: confusion matrix, mistakes, first-layer filters."""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnviz.images.inspection import first_conv_filters


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) int64 counts; row = true class, column = predicted class."""
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def misclassified(predictions: torch.Tensor, labels: torch.Tensor, limit: int = 24) -> list[int]:
    """Indices of the first ``limit`` wrongly classified images."""
    return torch.nonzero(predictions != labels).flatten()[:limit].tolist()


def first_layer_filters(model: nn.Module) -> torch.Tensor | None:
    """The first convolution's filters scaled to 0..1 each, as (out, C, k, k); None without a conv."""
    try:
        _, weights = first_conv_filters(model)
    except ValueError:
        return None
    weights = weights.float().cpu()  # (out, C, k, k)
    low = weights.amin(dim=(1, 2, 3), keepdim=True)
    high = weights.amax(dim=(1, 2, 3), keepdim=True)
    return (weights - low) / (high - low).clamp_min(1e-12)


def smoothed_loss_floor(smoothing: float, num_classes: int) -> float:
    """The lowest training loss label smoothing allows: the cross-entropy of a network that answers
    exactly the smoothed targets (1 - s + s/K for the true class, s/K for each other), their entropy."""
    if smoothing <= 0:
        return 0.0
    other = smoothing / num_classes
    true = 1 - smoothing + other
    return -(true * math.log(true) + (num_classes - 1) * other * math.log(other))
