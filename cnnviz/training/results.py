"""What a trained model got right and wrong: confusion matrix, mistakes, first-layer filters."""

from __future__ import annotations

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


def cell_members(
    predictions: torch.Tensor, labels: torch.Tensor, true_class: int, predicted_class: int,
) -> torch.Tensor:
    """(M,) int64 indices, in order, of exactly the images of true class ``true_class`` that were
    answered ``predicted_class``: one cell of :func:`confusion_matrix` (its count is M).

    Raises:
        ValueError: the two tensors differ in length, or a class is negative.
    """
    if predictions.shape != labels.shape:
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels: they must match.")
    if true_class < 0 or predicted_class < 0:
        raise ValueError("Classes are numbered from 0.")
    hits = (labels.long() == true_class) & (predictions.long() == predicted_class)
    return torch.nonzero(hits).flatten()
