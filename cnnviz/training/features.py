"""What the classifier's last layer reads: the penultimate features of images, and the sample of test
images the map of what a network learned (``cnnviz.replay.projection``) shows.

The features are the input of the classifier's last ``nn.Linear``: for the shipped MNIST net the 128
ReLU outputs of its hidden dense layer, for the CIFAR-10 net the 192 channel means of its global pool.
They are computed like :func:`cnnviz.training.evaluate.predict_logits` (eval mode, inference mode, in
batches, on the model's device) but on the image alone, without test-time augmentation, and in float32
(no autocast): a point of the map is one image as the network sees it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnviz.networks.build import eval_mode, run_features
from cnnviz.training.evaluate import EVAL_BATCH_SIZE
from cnnviz.training.step import normalize, to_memory_format

PROJECTION_IMAGES = 2000  # test images on the map


def last_linear_index(classifier: nn.Sequential) -> int:
    """The position in ``classifier`` of its last ``nn.Linear``.

    Raises:
        ValueError: when the classifier has no Linear layer.
    """
    for index in range(len(classifier) - 1, -1, -1):
        if isinstance(classifier[index], nn.Linear):
            return index
    raise ValueError("This network's classifier has no dense (Linear) layer, so it has no penultimate "
                     "features to map.")


def _channel_tensor(values: Sequence[float] | torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)  # (1, C, 1, 1)


@torch.inference_mode()
def penultimate_features(
    model: nn.Module, images_uint8: torch.Tensor, mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor, batch_size: int | None = None,
) -> torch.Tensor:
    """(N, D) float32 on the CPU: the input of the classifier's last Linear layer for each image.

    Args:
        model: a network with ``features`` and ``classifier`` Sequentials (a SpecNet).
        images_uint8: (N, C, H, W) uint8 pixels.
        mean, std: the model's channel means and standard deviations (a tuple, or a tensor of C values).
        batch_size: images per forward pass (default: :data:`EVAL_BATCH_SIZE` for the device).

    Raises:
        ValueError: for images that are not (N, C, H, W) uint8, or a classifier without a Linear layer.
    """
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
        raise ValueError("The images must be uint8 pixels shaped (N, C, H, W).")
    head = model.classifier[:last_linear_index(model.classifier)]
    device = next(model.parameters()).device
    batch_size = batch_size or EVAL_BATCH_SIZE.get(device.type, 1000)
    mean_t, std_t = _channel_tensor(mean, device), _channel_tensor(std, device)
    outputs = []
    with eval_mode(model):
        for start in range(0, len(images_uint8), batch_size):
            batch = normalize(images_uint8[start:start + batch_size].to(device), mean_t, std_t)
            features = head(run_features(model.features, to_memory_format(batch, device)))
            outputs.append(features.float().reshape(len(batch), -1).cpu())  # (n, D)
    if not outputs:
        width = model.classifier[last_linear_index(model.classifier)].in_features
        return torch.empty(0, width)
    return torch.cat(outputs)


def projection_sample(labels: torch.Tensor, count: int = PROJECTION_IMAGES, seed: int = 0) -> torch.Tensor:
    """(count,) int64 sorted indices into ``labels``: a seeded sample with the same number of images of
    each class where possible (a class with too few gives all it has, the others make up the rest); every
    index when ``count`` is at least ``len(labels)``.

    Raises:
        ValueError: ``count`` below 1.
    """
    if count < 1:
        raise ValueError("The map needs at least one image.")
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if count >= len(labels):
        return torch.arange(len(labels), dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    # Shuffle, then rank each image within its class (0 for the first of its class, ...): taking the
    # images of rank 0, then rank 1, ... gives every class the same count until a class runs out.
    order = torch.randperm(len(labels), generator=generator)
    shuffled = labels[order]
    by_class = torch.argsort(shuffled, stable=True)
    sorted_labels = shuffled[by_class]
    starts = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    rank = torch.empty_like(order)
    rank[by_class] = torch.arange(len(labels)) - starts
    # Within one rank the classes come in shuffled order (``order`` breaks the tie): at the last rank
    # taken, which classes get one more image is seeded too.
    chosen = order[torch.argsort(rank, stable=True)[:count]]
    return torch.sort(chosen).values
