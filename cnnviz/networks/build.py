"""Networks built from a spec string: ``SpecNet`` = ``features`` (conv part) + ``classifier`` (dense part).

Each child of ``features`` is one layer the UI can show (Conv2d, BatchNorm2d, ReLU, pools, dropout,
residual blocks); ``features`` outputs (N, C, H, W). ``classifier`` flattens and ends in the logits.
The input is the normalized float batch ``(uint8 / 255 - mean) / std``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from cnnviz.convolution.arithmetic import output_length
from cnnviz.networks.spec import Conv, Dense, GlobalPool, LayerSpec, Pool, Residual, SpecError, parse_spec
from cnnviz.networks.spec import Dropout as DropoutSpec
from cnnviz.networks.tta import NO_TTA, TestTimeAugmentation


class ResidualBlock(nn.Module):
    """``shortcut(x) + ReLU(BN(conv(ReLU(BN(conv(x))))))`` with 3x3 "same" convolutions."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.body(x)


class Dropout(nn.Dropout):
    """``nn.Dropout`` that draws its masks from ``generator`` when one is set.

    PyTorch's own dropout draws from the global generator, which every thread of the process shares:
    on a server where two students train at once, each run's masks would depend on the other's.
    With a generator the masks are those the global CPU generator would give with the same seed.
    """

    generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.generator is None or not self.training or self.p == 0:
            return super().forward(x)
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator)
        return x * keep.div_(1 - self.p)


def initialize_parameters(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation of every conv and dense layer, drawn from ``generator``.

    The layers are visited in the order they were built, so a CPU generator seeded with s gives the
    weights ``torch.manual_seed(s)`` then :func:`build_model` gives, without touching the global
    generator that other threads share.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                bound = 1 / math.sqrt(module.weight[0].numel())
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run in eval mode (BatchNorm uses its running statistics, dropout is off), then restore."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def set_dropout_generator(model: nn.Module, generator: torch.Generator | None) -> None:
    """Make every dropout layer of ``model`` draw from ``generator`` (None: the global one)."""
    for module in model.modules():
        if isinstance(module, Dropout):
            module.generator = generator


class SpecNet(nn.Module):
    """A CNN built from a spec: ``forward(x) = classifier(features(x))``."""

    def __init__(
        self, spec: str, features: nn.Sequential, classifier: nn.Sequential,
        feature_tokens: list[str], classifier_tokens: list[str],
        input_shape: tuple[int, int, int], num_classes: int, tta: TestTimeAugmentation = NO_TTA,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.features = features
        self.classifier = classifier
        # The spec token each child came from ("" for the parts added automatically).
        self.feature_tokens = feature_tokens
        self.classifier_tokens = classifier_tokens
        self.input_shape = input_shape  # (C, H, W)
        self.num_classes = num_classes
        # The views its answers average over (see cnnviz.networks.tta; stored in the checkpoint).
        self.tta = tta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(run_features(self.features, x))


def run_features(features: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``features(x)``, except that a ReLU followed by a max pool runs as pool then ReLU.

    The two orders give the same numbers and the same gradients (taking the largest of four values
    and clipping it at zero is clipping all four, then taking the largest), but pooling first leaves
    the ReLU a quarter of the values: measured on a 2-core CPU, cifar10_speed trained 765 instead of
    727 images/s (5%).
    """
    children = list(features)
    index = 0
    while index < len(children):
        child = children[index]
        following = children[index + 1] if index + 1 < len(children) else None
        if isinstance(child, nn.ReLU) and isinstance(following, nn.MaxPool2d):
            x = child(following(x))
            index += 2
        else:
            x = child(x)
            index += 1
    return x


def build_model(
    spec: str, in_channels: int, num_classes: int, image_size: int, tta: TestTimeAugmentation = NO_TTA,
) -> SpecNet:
    """Build the network a spec describes for square images.

    Args:
        spec: e.g. "C32 C32 M D0.25 C64 C64 M D0.25 F128 D0.5" (see :mod:`cnnviz.networks.spec`).
        in_channels: 1 for MNIST, 3 for CIFAR-10.
        num_classes: size of the final Linear layer (the logits).
        image_size: height = width of the input images.
        tta: the views its answers average over (:func:`cnnviz.networks.tta.class_logits`).

    Raises:
        SpecError: when the spec does not parse or a layer does not fit the shape it receives.
    """
    layers = parse_spec(spec)
    if not 1 <= in_channels <= 4 or not 2 <= num_classes <= 1000 or not 1 <= image_size <= 512:
        raise ValueError("in_channels must be 1..4, num_classes 2..1000 and image_size 1..512.")
    features: list[nn.Module] = []
    feature_tokens: list[str] = []
    classifier: list[nn.Module] = []
    classifier_tokens: list[str] = []
    channels, size = in_channels, image_size
    flat: int | None = None  # set once the first dense layer has flattened the maps
    for index, layer in enumerate(layers):
        if flat is not None and isinstance(layer, Conv | Residual | Pool | GlobalPool):
            raise SpecError(
                f"Token {index + 1} '{layer.token}': convolution and pooling layers must come before "
                "the dense (F) layers.", layer.token, index,
            )
        added = _build_layer(layer, index, channels, size, flat)
        if flat is None and not isinstance(layer, Dense):
            features.extend(added.modules)
            feature_tokens.extend([layer.token] * len(added.modules))
        else:
            if flat is None:  # the first dense layer: flatten the (C, H, W) maps
                classifier.append(nn.Flatten())
                classifier_tokens.append("")
            classifier.extend(added.modules)
            classifier_tokens.extend([layer.token] * len(added.modules))
        channels, size = added.channels, added.size
        if isinstance(layer, Dense):
            flat = layer.units
    if flat is None:
        classifier.append(nn.Flatten())
        classifier_tokens.append("")
        flat = channels * size * size
    classifier.append(nn.Linear(flat, num_classes))
    classifier_tokens.append("")
    return SpecNet(
        spec=" ".join(spec.split()), features=nn.Sequential(*features), classifier=nn.Sequential(*classifier),
        feature_tokens=feature_tokens, classifier_tokens=classifier_tokens,
        input_shape=(in_channels, image_size, image_size), num_classes=num_classes, tta=tta,
    )


@dataclass
class _Built:
    modules: list[nn.Module]
    channels: int  # after the layer (units for dense layers)
    size: int  # spatial size after the layer (1 for dense layers)


def _build_layer(layer: LayerSpec, index: int, channels: int, size: int, flat: int | None) -> _Built:
    def fail(expected: str) -> SpecError:
        return SpecError(f"Token {index + 1} '{layer.token}': {expected}", layer.token, index)

    if isinstance(layer, Conv):
        return _build_conv(layer, channels, size, fail)
    if isinstance(layer, Residual):
        return _Built([ResidualBlock(channels, layer.filters)], layer.filters, size)
    if isinstance(layer, Pool):
        if layer.size > size:
            raise fail(f"a {layer.size}x{layer.size} pool does not fit the {size}x{size} maps it gets.")
        pool = nn.MaxPool2d(layer.size) if layer.kind == "max" else nn.AvgPool2d(layer.size)
        return _Built([pool], channels, size // layer.size)
    if isinstance(layer, GlobalPool):
        return _Built([nn.AdaptiveAvgPool2d(1)], channels, 1)
    if isinstance(layer, DropoutSpec):
        return _Built([Dropout(layer.rate)], channels, size)
    if isinstance(layer, Dense):
        inputs = flat if flat is not None else channels * size * size
        return _Built([nn.Linear(inputs, layer.units), nn.ReLU(inplace=True)], layer.units, 1)
    raise AssertionError(f"unhandled layer {layer!r}")


def _build_conv(layer: Conv, channels: int, size: int, fail: Callable[[str], SpecError]) -> _Built:
    # "same" with an even kernel needs one more zero after than before, which only PyTorch's own
    # padding="same" (stride 1) gives; k // 2 on both sides would grow the map by one.
    uneven_same = layer.padding is None and layer.stride == 1 and layer.kernel % 2 == 0
    padding = "same" if uneven_same else layer.pad
    out = size if uneven_same else output_length(size, layer.kernel, layer.stride, layer.pad)
    if out < 1:
        raise fail(f"a {layer.kernel}x{layer.kernel} kernel does not fit the {size}x{size} maps it gets.")
    # A bias before BatchNorm is cancelled by its mean subtraction, so BN layers go without.
    modules: list[nn.Module] = [
        nn.Conv2d(channels, layer.filters, layer.kernel, layer.stride, padding, bias=not layer.batch_norm)
    ]
    if layer.pool:
        # Pooling first leaves the BatchNorm and ReLU a quarter of the values (airbench's order).
        if layer.pool > out:
            raise fail(f"its {layer.pool}x{layer.pool} max pool does not fit the {out}x{out} maps "
                       "the convolution makes.")
        modules.append(nn.MaxPool2d(layer.pool))
        out //= layer.pool
    if layer.batch_norm:
        modules.append(nn.BatchNorm2d(layer.filters))
    modules.append(nn.ReLU(inplace=True))
    return _Built(modules, layer.filters, out)
