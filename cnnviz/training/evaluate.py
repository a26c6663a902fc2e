"""Scoring a model on a labelled set, in batches, with its test-time augmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.datasets.files import DatasetInfo
from cnnviz.networks.tta import class_logits
from cnnviz.training.step import autocast_for, normalization_tensors, normalize, to_memory_format

# Images per evaluation batch. On a CPU small batches stay in the caches: measured on a 2-core CPU,
# cifar10_speed scored ~2,600 images/s in batches of 100 against ~1,700 in batches of 1,000.
EVAL_BATCH_SIZE = {"cpu": 100, "cuda": 1000}


@torch.inference_mode()
def predict_logits(
    model: nn.Module, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
    batch_size: int | None = None, views: bool = True,
) -> torch.Tensor:
    """Logits (N, classes) for uint8 images, computed on the model's device in eval mode, in batches of
    ``batch_size`` (default: :data:`EVAL_BATCH_SIZE` for the device); averaged over the model's test-time
    augmentation, or with ``views=False`` the plain forward pass of each image alone."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batch_size = batch_size or EVAL_BATCH_SIZE.get(device.type, 1000)
    mean, std = mean.to(device), std.to(device)
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = normalize(images[start:start + batch_size].to(device, non_blocking=True), mean, std)
        with autocast_for(device):
            batch = to_memory_format(batch, device)
            outputs.append((class_logits(model, batch) if views else model(batch)).float())
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0, 0)


def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo,
) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy loss, accuracy (0..1) and predicted classes on a labelled set."""
    mean, std = normalization_tensors(info, next(model.parameters()).device)
    logits = predict_logits(model, images, mean, std)
    labels = labels.to(logits.device)
    loss = F.cross_entropy(logits, labels).item()
    predictions = logits.argmax(dim=1)
    return loss, (predictions == labels).float().mean().item(), predictions.cpu()
