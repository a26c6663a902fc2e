"""What a trained model got right and wrong: confusion matrix, mistakes, first-layer filters."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.images.inspection import first_conv_filters
from cnnviz.training.whitening import whitening_layer


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
    return _scaled(weights)


def first_learned_filters(model: nn.Module, whiten: bool) -> tuple[torch.Tensor, bool] | None:
    """The filters of the first convolution the network learned, on the image, scaled 0..1 each, and
    whether they are seen through a whitening layer; None without a convolution.

    With a whitening first layer (``whiten`` and :func:`~cnnviz.training.whitening.whitening_layer`)
    those filters are computed from the data, not learned: the next convolution, the first learned
    one, is shown composed with it, the two as one filter on the image (out, C, k1 + k2 - 1, ...),
    the ReLU between them left out (see :func:`composed_filters`).
    """
    whitening = whitening_layer(model, whiten)
    if whitening is None:
        filters = first_layer_filters(model)
        return None if filters is None else (filters, False)
    learned = next((m for m in list(model.features)[1:] if isinstance(m, nn.Conv2d)), None)
    if learned is None or not _composable(whitening, learned):
        return None
    return _scaled(composed_filters(whitening, learned)), True


def composed_filters(first: nn.Conv2d, second: nn.Conv2d) -> torch.Tensor:
    """``second`` after ``first`` as one filter on ``first``'s input, (out, C, k1 + k2 - 1, ...): what
    ``second(first(x))`` computes without the biases and without anything between them."""
    # out[o, c, i + u, j + v] = sum over m of second[o, m, i, j] * first[m, c, u, v]: a transposed
    # convolution of the second layer's weights with the first's.
    return F.conv_transpose2d(second.weight.detach().float(), first.weight.detach().float())


def _composable(first: nn.Conv2d, second: nn.Conv2d) -> bool:
    plain = all(c.stride == (1, 1) and c.dilation == (1, 1) and c.groups == 1 for c in (first, second))
    return plain and second.in_channels == first.out_channels


def _scaled(weights: torch.Tensor) -> torch.Tensor:
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


def smoothed_loss_floor(smoothing: float, num_classes: int) -> float:
    """The lowest training loss label smoothing allows: the cross-entropy of a network that answers
    exactly the smoothed targets (1 - s + s/K for the true class, s/K for each other), their entropy."""
    if smoothing <= 0:
        return 0.0
    other = smoothing / num_classes
    true = 1 - smoothing + other
    return -(true * math.log(true) + (num_classes - 1) * other * math.log(other))
