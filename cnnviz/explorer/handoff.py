"""From the explorer to the Convolution page: a trained Conv2d layer's real input and learned kernel
(:func:`learned_convolution`), and a model's first-layer kernels for the page's kernel picker
(:func:`first_layer_kernels`)."""

from __future__ import annotations

import numpy as np
from torch import nn

from cnnviz.convolution.learned import LearnedConvolution
from cnnviz.explorer.layers import NetLayer, Trace, find_layer
from cnnviz.networks.build import SpecNet


def _conv_layer(model: SpecNet, layer_number: int) -> NetLayer:
    layer = find_layer(model, layer_number)
    if not isinstance(layer.module, nn.Conv2d):
        article = "an" if layer.kind[0] in "AEIOU" else "a"
        raise ValueError(
            f"Layer {layer_number} is {article} {layer.kind}: only convolution layers have kernels."
        )
    return layer


def layer_padding(conv: nn.Conv2d) -> int | str:
    """A Conv2d's padding as the Convolution page takes it: a number on each side, or "same"/"valid"."""
    if isinstance(conv.padding, str):
        return conv.padding
    top, left = conv.padding
    if top != left or conv.stride[0] != conv.stride[1] or conv.dilation[0] != conv.dilation[1]:
        raise ValueError("The Convolution page shows square layers only (the same padding, stride and "
                         "dilation along the height and the width).")
    if conv.groups != 1 or conv.padding_mode != "zeros":
        raise ValueError("The Convolution page shows plain convolutions only (zero padding, no groups).")
    return int(top)


def learned_convolution(
    model: SpecNet,
    trace: Trace,
    layer_number: int,
    out_channel: int,
    in_channel: int | None = None,
    model_name: str = "",
    cell: tuple[int, int] | None = None,
) -> LearnedConvolution:
    """Output channel ``out_channel`` of Conv2d layer ``layer_number`` on the image of ``trace``: its
    real input (the layer before's output), learned kernel and bias, stride, padding and dilation.

    ``in_channel`` is the input channel the page shows first (None: all channels summed); ``cell`` the
    output (row, column) the explorer picked, which the page's sum over the channels starts on.
    ValueError with one sentence for a layer that is not a convolution or a channel that does not exist.
    """
    layer = _conv_layer(model, layer_number)
    conv: nn.Conv2d = layer.module
    if not 0 <= out_channel < conv.out_channels:
        raise ValueError(f"Channel {out_channel} does not exist: layer {layer_number} has channels 0 to "
                         f"{conv.out_channels - 1}.")
    padding = layer_padding(conv)
    weight = conv.weight.detach()[out_channel].cpu().numpy().astype(np.float32)  # (C, k, k)
    bias = 0.0 if conv.bias is None else float(conv.bias.detach()[out_channel])
    received = trace.layer_input(layer_number)[0].detach().cpu().numpy().astype(np.float32)  # (C, H, W)
    output = trace.outputs[layer_number][0, out_channel].detach().cpu().numpy().astype(np.float32)
    name = model_name or "the model"
    token = f" {layer.token}" if layer.token else ""
    label = f"layer {layer_number} (Conv2d{token}) of {name}"
    return LearnedConvolution(label, model_name, layer_number, out_channel, received, weight, bias,
                              int(conv.stride[0]), padding, int(conv.dilation[0]), output, in_channel,
                              None if cell is None else (int(cell[0]), int(cell[1])))


def first_conv(model: SpecNet) -> nn.Conv2d:
    """The model's first Conv2d (inside a residual block when the model starts with one): the one that
    sees the input image; ValueError when there is none (a dense-only spec such as "F64")."""
    for module in model.features.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise ValueError("This model has no convolution layer, so it has no kernels to pick.")


def first_layer_kernels(model: SpecNet) -> list[np.ndarray]:
    """The learned kernels of the model's first Conv2d layer, one (C, k, k) float32 array per filter."""
    weight = first_conv(model).weight.detach().cpu().numpy().astype(np.float32)  # (K, C, k, k)
    return list(weight)
