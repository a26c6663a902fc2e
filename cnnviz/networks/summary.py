"""A per-layer table of a SpecNet: type, output shape, parameters with their formula, multiply-adds,
receptive field."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from cnnviz.networks.build import ResidualBlock, SpecNet, build_model
from cnnviz.networks.receptive_field import layer_fields


@dataclass(frozen=True)
class LayerRow:
    """One row of the summary: a child of ``features`` or ``classifier``."""

    number: int  # 0, 1, ... over features then classifier: the layer number of --layer and the explorer
    index: int  # position in its part
    part: str  # "features" or "classifier"
    token: str  # the spec token it came from ("" when added automatically)
    kind: str  # "Conv2d", "ReLU", ...
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    formula: str  # how ``params`` is computed, e.g. "3*3*1*32 + 32"
    mult_adds: int  # multiply-adds for one image
    # The receptive field after this layer (cnnviz.networks.receptive_field): the side of the square of
    # input pixels one cell sees, the pixels between neighbouring cells' fields, and the centre of cell
    # (0, 0)'s field in input pixels. None for classifier layers, which see the whole image.
    rf_size: int | None
    rf_jump: int | None
    rf_start: float | None


@dataclass(frozen=True)
class ModelSummary:
    spec: str
    input_shape: tuple[int, int, int]
    layers: list[LayerRow]
    total_params: int
    trainable_params: int
    total_mult_adds: int
    total_activations: int  # numbers every layer outputs for one image: what training keeps in memory

    def to_dict(self) -> dict:
        """Plain JSON-ready types."""
        return {**asdict(self), "layers": [asdict(row) for row in self.layers]}


def summarize_spec(spec: str, input_shape: tuple[int, int, int], num_classes: int = 10) -> ModelSummary:
    """Build the model for a spec and summarize it (raises SpecError for a bad spec).

    The model is first built on PyTorch's "meta" device, which has shapes but no numbers, to count
    its parameters without allocating them. A net too big to train is summarized there; any other
    is built for real, because a meta forward pass costs about 2 s the first time in a process.
    """
    channels, height, width = input_shape
    if height != width:
        raise ValueError(f"Only square images are supported, got {height}x{width}.")
    with torch.device("meta"):
        skeleton = build_model(spec, channels, num_classes, height)
    if sum(p.numel() for p in skeleton.parameters()) > MAX_TRAIN_PARAMS:
        return summarize_model(skeleton)
    return summarize_model(build_model(spec, channels, num_classes, height))


def summarize_model(model: SpecNet) -> ModelSummary:
    """Run one zero image through the model and describe every child of its two parts."""
    x = torch.zeros(1, *model.input_shape, device=next(model.parameters()).device)
    fields = layer_fields(model)
    rows: list[LayerRow] = []
    with torch.no_grad():
        for part, sequential, tokens in (
            ("features", model.features, model.feature_tokens),
            ("classifier", model.classifier, model.classifier_tokens),
        ):
            for index, layer in enumerate(sequential):
                x_in = x
                was_training = layer.training
                layer.eval()  # BatchNorm on a batch of one
                x = layer(x)
                layer.train(was_training)
                params, formula = _params_formula(layer)
                field = fields[len(rows)]
                rows.append(LayerRow(
                    number=len(rows), index=index, part=part, token=tokens[index], kind=type(layer).__name__,
                    output_shape=tuple(x.shape[1:]), params=params, formula=formula,
                    mult_adds=_mult_adds(layer, x_in, x),
                    rf_size=field and field.size, rf_jump=field and field.jump,
                    rf_start=field and field.start,
                ))
    total = sum(p.numel() for p in model.parameters())
    assert total == sum(row.params for row in rows), "every parameter belongs to one row"
    return ModelSummary(
        spec=model.spec, input_shape=model.input_shape, layers=rows, total_params=total,
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total_mult_adds=sum(row.mult_adds for row in rows),
        total_activations=sum(math.prod(row.output_shape) for row in rows),
    )


def field_label(row: LayerRow) -> str:
    """The receptive field as a table shows it: "5x5", or "all" for a classifier layer (whole image)."""
    return "all" if row.rf_size is None else f"{row.rf_size}x{row.rf_size}"


# What a run on this app may cost, per image: about 10x the largest preset (cifar10_gpu: 2.0 M
# parameters, 118 M multiply-adds, 0.56 M activations), far beyond what these small pictures need.
MAX_TRAIN_PARAMS = 20_000_000
MAX_TRAIN_MULT_ADDS = 2_000_000_000
MAX_TRAIN_ACTIVATIONS = 5_000_000


def training_size_problem(summary: ModelSummary) -> str | None:
    """Why this net is too big to train here (one sentence for a student), or None when it is fine."""
    limits = [
        (summary.total_params, MAX_TRAIN_PARAMS, "parameters", "fewer filters or a smaller dense layer "
         "(a pool before the first F layer shrinks its input)"),
        (summary.total_mult_adds, MAX_TRAIN_MULT_ADDS, "multiply-adds per image", "fewer filters, or a "
         "pool or stride earlier so the later convolutions work on smaller maps"),
        (summary.total_activations, MAX_TRAIN_ACTIVATIONS, "activations per image (memory)",
         "fewer filters in the first layers, or a pool or stride earlier"),
    ]
    for value, limit, what, advice in limits:
        if value > limit:
            return (f"This network is too big to train here: {readable_count(value)} {what}, over the "
                    f"limit of {readable_count(limit)}. Try {advice}.")
    return None


def readable_count(count: int) -> str:
    """12,345 / 1.2 M / 3.4 G: as many digits as a person reads."""
    if count < 1_000_000:
        return f"{count:,}"
    if count < 1_000_000_000:
        return f"{count / 1e6:.1f} M"
    return f"{count / 1e9:.1f} G"


def _conv_formula(conv: nn.Conv2d) -> tuple[int, str]:
    kh, kw = conv.kernel_size
    count = kh * kw * conv.in_channels * conv.out_channels
    text = f"{kh}*{kw}*{conv.in_channels}*{conv.out_channels}"
    if conv.bias is not None:
        count += conv.out_channels
        text += f" + {conv.out_channels}"
    return count, text


def _params_formula(layer: nn.Module) -> tuple[int, str]:
    if isinstance(layer, nn.Conv2d):
        return _conv_formula(layer)
    if isinstance(layer, nn.Linear):
        return layer.in_features * layer.out_features + layer.out_features, \
            f"{layer.in_features}*{layer.out_features} + {layer.out_features}"
    if isinstance(layer, nn.BatchNorm2d):
        return 2 * layer.num_features, f"2*{layer.num_features}"  # a scale and a shift per channel
    if isinstance(layer, ResidualBlock):
        parts = [_params_formula(child) for child in layer.modules()
                 if isinstance(child, nn.Conv2d | nn.BatchNorm2d)]
        return sum(count for count, _ in parts), " + ".join(text for _, text in parts)
    return 0, "0"


def _mult_adds(layer: nn.Module, x_in: torch.Tensor, x_out: torch.Tensor) -> int:
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        out_h, out_w = x_out.shape[2:]
        return kh * kw * layer.in_channels // layer.groups * layer.out_channels * out_h * out_w
    if isinstance(layer, nn.Linear):
        return layer.in_features * layer.out_features
    if isinstance(layer, ResidualBlock):
        total, x = 0, x_in
        for child in (*layer.body, layer.shortcut):
            if child is layer.shortcut:
                x = x_in
            if isinstance(child, nn.Sequential):
                for sub in child:
                    y = sub(x)
                    total += _mult_adds(sub, x, y)
                    x = y
                continue
            y = child(x)
            total += _mult_adds(child, x, y)
            x = y
        return total
    return 0  # pooling, ReLU, BatchNorm, dropout: no multiply-adds of weights
