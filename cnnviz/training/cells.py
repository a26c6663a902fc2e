"""What the network made of a few images at once: their top-3 answers and Grad-CAM, in one batch.

The clickable confusion matrix lists the images of one cell this way. The batch runs the features
up to the Grad-CAM layer once without gradients, then the rest of the net with a gradient on that
map: each image's logit of its own class depends only on its own map (eval mode: BatchNorm uses
its running statistics), so one backward pass of their sum gives every image's Grad-CAM gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.images.inspection import last_conv_layer
from cnnviz.networks.build import eval_mode
from cnnviz.networks.tta import class_logits

TOP_K = 3


@dataclass(frozen=True)
class ExplainedImages:
    """A batch of images with what the final network says about each."""

    top_classes: torch.Tensor  # (N, 3) int64 the most probable classes, most probable first
    top_probabilities: torch.Tensor  # (N, 3) float32 their softmax probabilities
    cam_classes: torch.Tensor  # (N,) int64 the class each heatmap explains
    heatmaps: torch.Tensor | None  # (N, H, W) float32 Grad-CAM in 0..1; None for a net without a conv


def explain_images(
    model: nn.Module, images: torch.Tensor, cam_classes: Sequence[int] | torch.Tensor | None = None,
) -> ExplainedImages:
    """Top-3 probabilities (with the model's test-time augmentation, as its answers are scored) and
    Grad-CAM at :func:`~cnnviz.images.inspection.last_conv_layer` for a normalized (N, C, H, W) batch.

    Args:
        cam_classes: the class each image's Grad-CAM explains; default its predicted class.
    """
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.dim() != 4:
        raise ValueError(f"Expected a batch of images (N, C, H, W), got {tuple(x.shape)}.")
    with eval_mode(model), torch.inference_mode():
        probabilities = torch.softmax(class_logits(model, x).float(), dim=1)  # (N, K)
    k = min(TOP_K, probabilities.shape[1])
    top_probabilities, top_classes = probabilities.topk(k, dim=1)
    targets = top_classes[:, 0] if cam_classes is None else torch.as_tensor(cam_classes, dtype=torch.long)
    if len(targets) != len(x):
        raise ValueError(f"{len(targets)} classes to explain for {len(x)} images: they must match.")
    if len(targets) and not (int(targets.min()) >= 0 and int(targets.max()) < probabilities.shape[1]):
        raise ValueError(f"Classes to explain must be 0 to {probabilities.shape[1] - 1}.")
    heatmaps = _batch_grad_cam(model, x, targets) if len(x) and _has_conv(model) else None
    return ExplainedImages(top_classes, top_probabilities, targets, heatmaps)


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.features.modules())


def _run(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # An in-place ReLU would overwrite the map the gradient is taken against.
    return layer(x.clone() if getattr(layer, "inplace", False) else x)


def _batch_grad_cam(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N, H, W) Grad-CAM heatmaps, as :func:`cnnviz.images.inspection.grad_cam` gives one by one."""
    layer = last_conv_layer(model)
    with eval_mode(model):
        with torch.no_grad():
            hidden = x
            for child in model.features[:layer + 1]:
                hidden = _run(child, hidden)
        with torch.enable_grad():
            feature_map = hidden.detach().requires_grad_(True)  # (N, C, h, w)
            hidden = feature_map
            for child in model.features[layer + 1:]:
                hidden = _run(child, hidden)
            logits = model.classifier(hidden)  # (N, K), no test-time views: Grad-CAM reads the image itself
            chosen = logits.gather(1, targets[:, None]).sum()
            (gradient,) = torch.autograd.grad(chosen, feature_map)
    weights = gradient.mean(dim=(2, 3))  # (N, C): global-average-pooled gradients
    coarse = F.relu((weights[:, :, None, None] * feature_map.detach()).sum(dim=1))  # (N, h, w)
    upsampled = F.interpolate(coarse[:, None], size=tuple(x.shape[-2:]), mode="bilinear",
                              align_corners=False)[:, 0]  # (N, H, W)
    peaks = upsampled.amax(dim=(1, 2), keepdim=True)
    return torch.where(peaks > 0, upsampled / peaks.clamp_min(1e-30), torch.zeros_like(upsampled))

