"""The preset networks, one record each: architecture, wording, tuned training settings, and the
dataset and devices it is the first choice for.

The records live with training, not in :mod:`cnnviz.networks`: a preset is an architecture *and* the
recipe that trains it, and which preset is fastest on a device is a fact about training runs. The
networks package stays about building a net from a spec string and knows no preset names. A recipe
is a plain mapping of :class:`~cnnviz.training.config.TrainConfig` field overrides, so this module
imports nothing of training and ``TrainConfig`` can take its default spec from here;
:mod:`cnnviz.training.recipes` turns a record into a ``TrainConfig``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class NetPreset:
    """A named architecture with the settings it was tuned with."""

    name: str
    dataset: str | None  # the dataset it was tuned for ("mnist" or "cifar10"); None: either
    spec: str  # the architecture (for the custom net: the spec its text box starts with)
    title: str  # the Train page's name for it
    description: str
    recipe: Mapping[str, Any]  # TrainConfig fields that differ from TrainConfig's defaults
    default_for: str | None = None  # the dataset whose Train page opens on it
    fastest_on: tuple[str, ...] = ()  # device types ("cpu", "cuda") where it reaches a good accuracy soonest


def _frozen(**settings: Any) -> Mapping[str, Any]:
    return MappingProxyType(settings)


NET_PRESETS: dict[str, NetPreset] = {
    preset.name: preset
    for preset in (
        NetPreset(
            "mnist_fast", "mnist", "C16k5s2p2n C32n M F128",
            "Fast MNIST net",
            "A 5x5 convolution with stride 2 (it halves the image at once), a 3x3 convolution and a "
            "max pool, each with BatchNorm, then one dense layer: 99% on MNIST in one epoch, "
            "about ten seconds on a laptop CPU.",
            _frozen(epochs=1, batch_size=128, label_smoothing=0.1),
            default_for="mnist", fastest_on=("cpu", "cuda"),
        ),
        NetPreset(
            "cifar10_fast", "cifar10", "C24k2p0 C32n M R32 C64n M R64 C128n M R128 G",
            "Fast CIFAR-10 ResNet",
            "A small residual network with BatchNorm in the spirit of the airbench speed runs: a "
            "2x2 patch-whitening layer, then widen, pool, add a residual block, three times; global "
            "average pooling before the classifier.",
            _frozen(epochs=12, lr=0.2, label_smoothing=0.2, whiten=True, mirror_tta=True),
            default_for="cifar10",
        ),
        NetPreset(
            "cifar10_speed", "cifar10", "C24k2p0 C32nm C32n C64nm C64n C128nm C128n G",
            "CIFAR-10 speed-run net",
            "The airbench speed runs' plain layout, narrow: the patch-whitening layer, then three "
            "groups of convolution, max pool, convolution (BatchNorm each), no shortcuts. As in the "
            "speed runs, each group pools straight after its first convolution, so that BatchNorm "
            "and ReLU work on a quarter of the values. Fewer layers than the ResNet, so more epochs "
            "fit in the same minutes on a CPU; its recipe adds the speed runs' training tricks.",
            _frozen(epochs=9, batch_size=128, lr=0.2, label_smoothing=0.2, shift=0, whiten=True,
                    mirror_tta=True, shift_tta=True, whiten_bias_epochs=1, dirac=True, batchnorm_scale=False,
                    batchnorm_shift_lr=64, lookahead_every=5, alternating_flip=True),
            fastest_on=("cpu",),
        ),
        NetPreset(
            "cifar10_gpu", "cifar10", "C24k2p0 C64n M C64n C256n M C256n C256n M C256n G",
            "CIFAR-10 speed-run net, GPU width",
            "The speed-run layout at the airbench widths (64, 256, 256 filters): six times the "
            "multiply-adds of the narrow net, which a GPU hardly notices. Made for a GPU: about 90% "
            "in under five seconds on an H100; on a laptop CPU each epoch takes minutes.",
            _frozen(epochs=16, batch_size=1024, lr=0.8, label_smoothing=0.2, shift=2, whiten=True,
                    mirror_tta=True, shift_tta=True),
            fastest_on=("cuda",),  # a GPU is bound by kernel launches on the narrow nets
        ),
        NetPreset(
            "cifar10_wide", "cifar10", "C24k2p0 C32n M R32 C96n M R96 C192n M R192 G",
            "Wider CIFAR-10 ResNet",
            "The fast CIFAR-10 ResNet with three times the filters in its two low-resolution stages, "
            "where extra filters cost little: slower to train, more accurate.",
            _frozen(epochs=16, lr=0.2, label_smoothing=0.2, whiten=True, mirror_tta=True),
        ),
        NetPreset(
            "vgg_classic", "cifar10", "C32 C32 M D0.25 C64 C64 M D0.25 F512 D0.5",
            "Classic VGG-like net",
            "The textbook design: pairs of 3x3 convolutions, max pooling, dropout, a big dense layer. "
            "No BatchNorm, so it learns more slowly.",
            _frozen(epochs=15, batch_size=128, optimizer="adam", lr=2e-3, weight_decay=0.0),
        ),
    )
}

# The net a student writes on the Train page; its description is the spec text box's help. Adam: it
# forgives a learning rate that does not suit the net.
CUSTOM_PRESET = NetPreset(
    "custom", None, "C32 C32 M D0.25 C64 C64 M D0.25 F128 D0.5",
    "Custom spec...",
    "C<n> conv (k5 kernel, s2 stride, p1 padding, n BatchNorm, m a 2x2 max pool straight after the conv, "
    "before BatchNorm and ReLU), R<n> residual block, M / A max / average pool, G global average pool, "
    "D0.25 dropout, F<n> dense. The final classifier layer is added for you.",
    _frozen(optimizer="adam", lr=2e-3, weight_decay=0.0),
)

TRAIN_PAGE_CHOICES = (*NET_PRESETS, CUSTOM_PRESET.name)  # the Train page's architecture list, in order
