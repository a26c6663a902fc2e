"""What a trained network does with one image: probabilities, every feature map, Grad-CAM, filters.

Works with any model that has ``features`` (an ``nn.Sequential`` of conv/pool/ReLU/BN/residual
layers, (N, C, H, W) in and out) and ``classifier`` (an ``nn.Sequential`` ending in logits), with
``forward(x) = classifier(features(x))`` -- the interface of :mod:`cnnviz.networks.build`.

:func:`inspect_image` does everything in one pass: the features run layer by layer (keeping each
output), the classifier gives the logits, and one backward pass from the chosen class's logit to the
last convolutional feature map gives Grad-CAM (Selvaraju et al., 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.networks.build import eval_mode
from cnnviz.networks.tta import augmentation_of, class_logits

DEFAULT_TOP_K = 5
# Layers that change values one by one (no mixing across positions): Grad-CAM reads the last conv
# layer's output after these, i.e. after its batch norm and ReLU, before any pooling.
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
                nn.BatchNorm2d, nn.Identity, nn.Dropout, nn.Dropout2d)


@dataclass(frozen=True)
class LayerActivation:
    """The output of one layer for one image: a child of ``model.features``, or of ``model.classifier``
    (:func:`network_activations`)."""

    index: int  # the layer's number: its position in model.features, then on over model.classifier
    name: str  # "2 · ReLU"
    kind: str  # the module's class name: "Conv2d", "ReLU", "MaxPool2d", "Linear", ...
    values: torch.Tensor  # (C, H, W) float32 in the features, (D,) in a dense layer; detached

    @property
    def is_map(self) -> bool:
        """True for a stack of feature maps (C, H, W), False for a dense layer's D numbers."""
        return self.values.dim() == 3

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)


@dataclass(frozen=True)
class Prediction:
    """The network's answer for one image."""

    logits: torch.Tensor  # (K,) float32
    probabilities: torch.Tensor  # (K,) float32, softmax of the logits, sums to 1
    classes: tuple[str, ...]  # the K class names

    @property
    def index(self) -> int:
        """The predicted class index."""
        return int(self.probabilities.argmax())

    @property
    def label(self) -> str:
        """The predicted class name (for MNIST the digit)."""
        return self.classes[self.index]

    @property
    def probability(self) -> float:
        return float(self.probabilities[self.index])

    def top(self, k: int = DEFAULT_TOP_K) -> list[tuple[str, float]]:
        """The k most probable classes as (name, probability), most probable first."""
        values, indices = self.probabilities.topk(min(k, len(self.classes)))
        return [(self.classes[int(i)], float(v)) for v, i in zip(values, indices, strict=True)]


@dataclass(frozen=True)
class GradCam:
    """Where the evidence for one class lies, per Grad-CAM."""

    class_index: int
    layer_index: int  # the child of model.features whose output was used
    weights: torch.Tensor  # (C,) mean gradient of the class logit per channel of that output
    coarse: torch.Tensor  # (h, w) ReLU(sum_c weight_c * map_c), at the feature map's resolution
    heatmap: torch.Tensor  # (H, W) in 0..1: coarse scaled to the input size, divided by its maximum


@dataclass(frozen=True)
class Inspection:
    """Everything the inspect page shows about one image."""

    prediction: Prediction
    activations: tuple[LayerActivation, ...]
    grad_cam: GradCam


def inspect_image(
    model: nn.Module,
    image: torch.Tensor,
    classes: Sequence[str] | None = None,
    cam_class: int | None = None,
    cam_layer: int | None = None,
) -> Inspection:
    """Predict one image and collect every feature map and Grad-CAM, in one forward/backward pass.

    Args:
        model: a network with ``features`` and ``classifier``; its train/eval mode is restored.
        image: (1, C, H, W) or (C, H, W), normalized as the model was trained.
        classes: class names; default "0", "1", ...
        cam_class: the class Grad-CAM explains; default the predicted one.
        cam_layer: the child of ``model.features`` whose output Grad-CAM uses; default
            :func:`last_conv_layer`.
    """
    x = _as_batch(image)
    layer = last_conv_layer(model) if cam_layer is None else cam_layer
    if not 0 <= layer < len(model.features):
        raise ValueError(f"Layer {layer} does not exist: choose 0 to {len(model.features) - 1}.")
    activations: list[LayerActivation] = []
    with eval_mode(model), torch.no_grad():
        hidden = x
        for index, child in enumerate(model.features[:layer + 1]):
            hidden = _run_layer(child, hidden)
            activations.append(_activation(index, child, hidden))
    # Only the layers after the Grad-CAM map need gradients; none are kept on the parameters.
    with eval_mode(model), torch.enable_grad():
        feature_map = hidden.detach().requires_grad_(True)
        hidden = feature_map
        for index, child in enumerate(model.features[layer + 1:], start=layer + 1):
            hidden = _run_layer(child, hidden)
            activations.append(_activation(index, child, hidden.detach()))
        logits = model.classifier(hidden)[0]  # (K,)
        answer = logits.detach()
        if augmentation_of(model).active:  # the answer also sees the mirror / shifted images
            with torch.no_grad():
                answer = class_logits(model, x)[0]
        prediction = _prediction(answer, classes)
        target = prediction.index if cam_class is None else _check_class(cam_class, len(logits))
        (gradient,) = torch.autograd.grad(logits[target], feature_map)
    cam = _grad_cam(feature_map.detach()[0], gradient[0], target, layer, x.shape[-2:])
    return Inspection(prediction, tuple(activations), cam)


def predict(model: nn.Module, image: torch.Tensor, classes: Sequence[str] | None = None) -> Prediction:
    """Logits and softmax probabilities for one image ((1, C, H, W) or (C, H, W), normalized)."""
    with eval_mode(model), torch.inference_mode():
        logits = class_logits(model, _as_batch(image))[0]
    return _prediction(logits, classes)


def predict_batch(
    model: nn.Module, images: torch.Tensor, classes: Sequence[str] | None = None
) -> list[Prediction]:
    """One :class:`Prediction` per image of a normalized (N, C, H, W) batch."""
    with eval_mode(model), torch.inference_mode():
        logits = class_logits(model, images)
    return [_prediction(row, classes) for row in logits]


def layer_activations(model: nn.Module, image: torch.Tensor) -> list[LayerActivation]:
    """The output of every child of ``model.features`` for one image."""
    activations = []
    with eval_mode(model), torch.inference_mode():
        hidden = _as_batch(image)
        for index, child in enumerate(model.features):
            hidden = _run_layer(child, hidden)
            activations.append(_activation(index, child, hidden))
    return activations


def network_activations(model: nn.Module, image: torch.Tensor) -> list[LayerActivation]:
    """The output of every layer for one image: each child of ``model.features``, then of
    ``model.classifier`` (flatten, dense layers, their ReLUs, the logits), numbered on from the
    features as :func:`cnnviz.explorer.layers.net_layers` numbers them."""
    activations = []
    with eval_mode(model), torch.inference_mode():
        hidden = _as_batch(image)
        children = [*model.features, *model.classifier]
        for index, child in enumerate(children):
            hidden = _run_layer(child, hidden)
            activations.append(_activation(index, child, hidden))
    return activations


def cam_layers(model: nn.Module) -> list[int]:
    """The children of ``model.features`` whose output Grad-CAM can use, in order: each layer holding
    a convolution, moved past the batch norm and activation that directly follow it (the
    rectified map). Empty for a network without a convolution; the last is :func:`last_conv_layer`."""
    children = list(model.features)
    layers = []
    for index, child in enumerate(children):
        if not any(isinstance(m, nn.Conv2d) for m in child.modules()):
            continue
        while index + 1 < len(children) and isinstance(children[index + 1], _ELEMENTWISE):
            index += 1
        if index not in layers:
            layers.append(index)
    return layers


def grad_cam(
    model: nn.Module, image: torch.Tensor, class_index: int | None = None, layer: int | None = None
) -> GradCam:
    """Grad-CAM of one class (default: the predicted one) for one image."""
    return inspect_image(model, image, cam_class=class_index, cam_layer=layer).grad_cam


def last_conv_layer(model: nn.Module) -> int:
    """The index in ``model.features`` of the last layer holding a convolution, moved past the
    batch norm and activation that directly follow it (Grad-CAM uses the rectified map).

    Raises:
        ValueError: ``model.features`` has no convolution.
    """
    layers = cam_layers(model)
    if not layers:
        raise ValueError("This model has no convolutional layer, so Grad-CAM cannot be computed.")
    return layers[-1]


@dataclass(frozen=True)
class LayerSummary:
    """One layer of the architecture strip."""

    part: str  # "features" or "classifier"
    index: int  # position in that part
    kind: str  # "Conv2d", "ReLU", "Linear", ...
    output_shape: tuple[int, ...]  # one image: (C, H, W) in the features, (D,) in the classifier
    parameters: int  # trainable numbers in this layer


def layer_summaries(model: nn.Module, input_shape: Sequence[int]) -> list[LayerSummary]:
    """Every layer of ``features`` then ``classifier`` with its output shape for one (C, H, W) input."""
    summaries = []
    with eval_mode(model), torch.inference_mode():
        hidden = torch.zeros(1, *input_shape)
        for part in ("features", "classifier"):
            for index, child in enumerate(getattr(model, part)):
                hidden = child(hidden)
                count = sum(p.numel() for p in child.parameters() if p.requires_grad)
                shape = tuple(hidden.shape[1:])  # without the batch dimension
                summaries.append(LayerSummary(part, index, type(child).__name__, shape, count))
    return summaries


def first_conv_filters(model: nn.Module) -> tuple[str, torch.Tensor]:
    """The first convolution of ``model.features``: its name and its weights (out, in, kH, kW).

    Raises:
        ValueError: ``model.features`` has no convolution.
    """
    for name, module in model.features.named_modules():
        if isinstance(module, nn.Conv2d):
            return f"features.{name}", module.weight.detach().clone()
    raise ValueError("This model has no convolutional layer, so it has no filters to show.")


def softmax_explained(logits: torch.Tensor, index: int) -> str:
    """One line with the numbers: how a probability comes from the logits."""
    exps = torch.exp(logits.double() - logits.double().max())
    share = float(exps[index] / exps.sum())
    return (f"p = exp({float(logits[index]):.2f}) / sum of exp(logits) = {share:.4f}: the logits are "
            "raised to e and divided by their sum, so the probabilities are positive and add up to 1.")


def heatmap_overlay(base: np.ndarray, heatmap: torch.Tensor | np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """Blend a 0..1 heatmap (H, W), coloured dark blue -> red -> yellow, over an image.

    Args:
        base: (H, W) or (H, W, 3) uint8, the same size as the heatmap.
    Returns:
        (H, W, 3) uint8.
    """
    heat = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    rgb = base if base.ndim == 3 else np.repeat(base[:, :, None], 3, axis=2)
    assert rgb.shape[:2] == heat.shape, (rgb.shape, heat.shape)
    colour = np.stack([np.clip(2 * heat, 0, 1),  # red rises first
                       np.clip(2 * heat - 1, 0, 1),  # then green: yellow at the top
                       np.clip(0.6 - 2 * heat, 0, 1) * (heat > 0.05)], axis=2) * 255.0  # (H, W, 3)
    alpha = opacity * np.clip(heat * 3, 0, 1)[:, :, None]
    return np.round(rgb * (1 - alpha) + colour * alpha).astype(np.uint8)


# --- helpers -------------------------------------------------------------------------------------

def _as_batch(image: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(image, dtype=torch.float32)
    if x.dim() == 3:
        x = x.unsqueeze(0)  # (C, H, W) -> (1, C, H, W)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"Expected one image (1, C, H, W) or (C, H, W), got {tuple(x.shape)}.")
    return x


def _run_layer(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # An in-place layer (ReLU(inplace=True)) would overwrite the kept output of the layer before.
    if getattr(layer, "inplace", False):
        x = x.clone()
    return layer(x)


def _activation(index: int, layer: nn.Module, output: torch.Tensor) -> LayerActivation:
    kind = type(layer).__name__
    return LayerActivation(index, f"{index} · {kind}", kind, output[0].detach().clone())


def _prediction(logits: torch.Tensor, classes: Sequence[str] | None) -> Prediction:
    logits = logits.detach().to(torch.float32)
    names = tuple(classes) if classes is not None else tuple(str(i) for i in range(len(logits)))
    if len(names) != len(logits):
        raise ValueError(f"The model has {len(logits)} outputs but {len(names)} class names were given.")
    return Prediction(logits.clone(), torch.softmax(logits, dim=0), names)


def _check_class(index: int, count: int) -> int:
    if not 0 <= index < count:
        raise ValueError(f"Class {index} does not exist: choose 0 to {count - 1}.")
    return int(index)


def _grad_cam(
    feature_map: torch.Tensor, gradient: torch.Tensor, class_index: int, layer: int, size: Sequence[int]
) -> GradCam:
    """feature_map, gradient: (C, h, w)."""
    weights = gradient.mean(dim=(1, 2))  # (C,): global-average-pooled gradients
    coarse = F.relu((weights[:, None, None] * feature_map).sum(dim=0))  # (h, w)
    upsampled = F.interpolate(coarse[None, None], size=tuple(size), mode="bilinear",
                              align_corners=False)[0, 0]  # (H, W)
    peak = float(upsampled.max())
    heatmap = upsampled / peak if peak > 0 else torch.zeros_like(upsampled)
    return GradCam(class_index, layer, weights, coarse, heatmap)
