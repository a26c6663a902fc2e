"""A picked cell's real computation: its value and the chain of operations that made it.

:func:`explain_cell` walks back from the picked layer (BatchNorm, ReLU, dropout, a max pool's winner,
flatten) to the convolution, dense layer, residual block or average pool that produced the number,
or to the input image, and records each step with its own numbers, taken from the model's own
forward pass (:func:`cnnviz.explorer.layers.trace`). The records are in
:mod:`cnnviz.explorer.cell_terms`; :func:`explanation_text` is the command line's rendering.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnviz.explorer import cell_math
from cnnviz.explorer.cell_terms import (
    Cell,
    CellExplanation,
    InputStep,
    Softmax,
    Step,
)
from cnnviz.explorer.layers import NetLayer, Trace, find_layer, net_layers, trace
from cnnviz.images.inspection import softmax_explained
from cnnviz.networks.build import ResidualBlock, SpecNet, eval_mode

__all__ = ["Cell", "CellExplanation", "check_cell", "explain_cell"]


def check_cell(model: SpecNet, traced: Trace, cell: Cell) -> None:
    """ValueError with one sentence naming the valid ranges when ``cell`` is not in its layer."""
    layer = find_layer(model, cell.layer)
    name = f"Layer {layer.number} ({layer.kind}" + (f" {layer.token})" if layer.token else ")")
    shape = tuple(traced.outputs[cell.layer].shape[1:])
    if len(shape) == 1:
        if not 0 <= cell.channel < shape[0] or cell.row != 0 or cell.col != 0:
            raise ValueError(f"{name} has {shape[0]} units: pick channel (unit) 0 to "
                             f"{shape[0] - 1}, with row 0 and column 0.")
        return
    channels, height, width = shape
    if not (0 <= cell.channel < channels and 0 <= cell.row < height and 0 <= cell.col < width):
        raise ValueError(f"{name} has {channels} channels of {height}x{width}: pick channel 0 "
                         f"to {channels - 1}, row 0 to {height - 1} and column 0 to {width - 1}.")


def explain_cell(model: SpecNet, trace_or_image: Trace | torch.Tensor, cell: Cell, top_channels: int = 4,
                 top_terms: int = 8, classes: Sequence[str] | None = None) -> CellExplanation:
    """The picked cell's value and every step that made it, each with the model's own numbers.

    Args:
        trace_or_image: the image's :class:`Trace` (the page has one already), or the normalized image.
        top_channels: input channels of a convolution shown in full (the largest |partial sum|).
        top_terms: terms of a dense layer's dot product shown one by one (the largest |weight * x|).
        classes: the class names, for the logits' softmax.
    Raises:
        ValueError: the cell is not in the model (one sentence with the valid ranges).
    """
    traced = trace_or_image if isinstance(trace_or_image, Trace) else trace(model, trace_or_image)
    check_cell(model, traced, cell)
    layers = net_layers(model)
    steps: list[Step] = []
    current: Cell | None = cell
    with eval_mode(model), torch.no_grad():
        while current is not None:
            if current.layer < 0:
                steps.append(InputStep(-1, current, cell_math.cell_value(traced.input, current)))
                break
            step, current = _explain_layer(layers, traced, current, top_channels, top_terms)
            steps.append(step)
    steps.reverse()
    output = traced.outputs[cell.layer]
    softmax = _softmax(output[0], cell.channel, classes) if cell.layer == len(layers) - 1 else None
    return CellExplanation(cell, layers[cell.layer].name, layers[cell.layer].kind, tuple(output.shape[1:]),
                           cell_math.cell_value(output, cell), tuple(steps), softmax)


def _explain_layer(layers: list[NetLayer], traced: Trace, cell: Cell, top_channels: int,
                   top_terms: int) -> tuple[Step, Cell | None]:
    """One layer's step and the cell of the layer below the chain continues at (None: it stops)."""
    module, number = layers[cell.layer].module, cell.layer
    x = traced.layer_input(number)
    below = Cell(number - 1, cell.channel, cell.row, cell.col)
    if isinstance(module, nn.Conv2d):
        source = "the input image" if number == 0 else f"layer {number - 1}'s output"
        return cell_math.conv_step(module, x, number, cell, source, top_channels), None
    if isinstance(module, nn.BatchNorm2d):
        return cell_math.batchnorm_step(module, x, number, cell), below
    if isinstance(module, nn.ReLU):
        return cell_math.relu_step(x, number, cell), below
    if isinstance(module, nn.Dropout):
        return cell_math.dropout_step(module, x, number, cell), below
    if isinstance(module, nn.MaxPool2d):
        step = cell_math.maxpool_step(module, x, number, cell)
        return step, Cell(number - 1, cell.channel, *step.winner)
    if isinstance(module, nn.AvgPool2d | nn.AdaptiveAvgPool2d):
        return cell_math.avgpool_step(module, x, number, cell), None
    if isinstance(module, ResidualBlock):
        return cell_math.residual_step(module, x, number, cell, top_channels), None
    if isinstance(module, nn.Flatten):
        step = cell_math.flatten_step(x, number, cell)
        return step, Cell(number - 1, *step.source)
    if isinstance(module, nn.Linear):
        flat_shape = _flat_shape(layers, traced, number)
        return cell_math.linear_step(module, x, number, cell, top_terms, flat_shape), None
    raise ValueError(f"The explorer cannot explain a {type(module).__name__} layer yet.")


def _flat_shape(layers: list[NetLayer], traced: Trace, number: int) -> tuple[int, ...] | None:
    """The (C, H, W) map a dense layer's inputs were flattened from, when its input is a Flatten's
    output (through dropout); None for a dense layer fed by another dense layer."""
    below = number - 1
    while below >= 0 and isinstance(layers[below].module, nn.Dropout):
        below -= 1
    if below < 0 or not isinstance(layers[below].module, nn.Flatten):
        return None
    shape = tuple(traced.layer_input(below).shape[1:])
    return shape if len(shape) == 3 else None


def _softmax(logits: torch.Tensor, index: int, classes: Sequence[str] | None) -> Softmax:
    values = logits.detach().to(torch.float64)
    top = float(values.max())
    exps = torch.exp(values - top)
    label = str(classes[index]) if classes is not None and index < len(classes) else str(index)
    return Softmax(index, label, tuple(float(v) for v in values), top, float(exps.sum()),
                   float(exps[index] / exps.sum()), softmax_explained(logits, index))
