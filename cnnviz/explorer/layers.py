"""The layers of a SpecNet numbered as the model summary numbers them, and every layer's real output.

Layer ``n`` is the n-th child of ``model.features`` followed by ``model.classifier`` (the order of
:func:`cnnviz.networks.summary.summarize_model`'s rows, and of ``--layer`` on the command line).

:func:`trace` runs the layers in that order, as ``nn.Sequential`` runs them. (``SpecNet.forward`` runs a
ReLU followed by a max pool as pool-then-ReLU, for speed; the numbers after the pair are the same, and
only this order has the ReLU's own full-size output to show.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnviz.networks.build import SpecNet, eval_mode


@dataclass(frozen=True)
class NetLayer:
    """One numbered layer of a model."""

    number: int  # 0, 1, ... over features then classifier: the summary's "layer" column
    part: str  # "features" or "classifier"
    index: int  # position in its part
    module: nn.Module
    token: str  # the spec token it came from ("" when added automatically)

    @property
    def kind(self) -> str:
        """The module's class name: "Conv2d", "ReLU", "Linear", ..."""
        return type(self.module).__name__

    @property
    def name(self) -> str:
        """"3 · MaxPool2d (M)": number, kind and token, as the pages label a layer."""
        return f"{self.number} · {self.kind}" + (f" ({self.token})" if self.token else "")


def net_layers(model: SpecNet) -> list[NetLayer]:
    """Every layer of ``model``, numbered from 0 (features first, then the classifier)."""
    layers: list[NetLayer] = []
    for part, sequential, tokens in (("features", model.features, model.feature_tokens),
                                     ("classifier", model.classifier, model.classifier_tokens)):
        for index, module in enumerate(sequential):
            layers.append(NetLayer(len(layers), part, index, module, tokens[index]))
    return layers


def find_layer(model: SpecNet, number: int) -> NetLayer:
    """Layer ``number`` of ``model``; ValueError with the valid range when there is none."""
    layers = net_layers(model)
    if not 0 <= number < len(layers):
        raise ValueError(f"Layer {number} does not exist: this model has layers 0 to {len(layers) - 1}.")
    return layers[number]


@dataclass(frozen=True)
class Trace:
    """One image through the model: its input and every numbered layer's output (batch dimension kept)."""

    input: torch.Tensor  # (1, C, H, W), normalized as the model was trained
    outputs: tuple[torch.Tensor, ...]  # outputs[n]: layer n's output, (1, C, H, W) or (1, D)

    def layer_input(self, number: int) -> torch.Tensor:
        """What layer ``number`` received: the input image for layer 0, else the layer before's output."""
        return self.input if number == 0 else self.outputs[number - 1]


def trace(model: SpecNet, image: torch.Tensor) -> Trace:
    """Run one normalized image ((1, C, H, W) or (C, H, W)) through every layer, in eval mode, keeping a
    copy of each layer's output (in-place ReLUs would overwrite the layer before's)."""
    x = torch.as_tensor(image, dtype=torch.float32)
    x = x.unsqueeze(0) if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[0] != 1 or tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ValueError(f"Expected one image of shape {tuple(model.input_shape)}, got {tuple(x.shape)}.")
    outputs = []
    with eval_mode(model), torch.no_grad():
        hidden = x
        for layer in net_layers(model):
            hidden = layer.module(hidden.clone())
            outputs.append(hidden)
    return Trace(x, tuple(outputs))
