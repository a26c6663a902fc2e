"""The tuned training settings of each preset architecture."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cnnviz.networks.build import PRESETS
from cnnviz.training.config import TrainConfig


def recipe(preset: str, **overrides: Any) -> TrainConfig:
    """The tuned training settings for a preset, with any field overridden."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}: choose one of {', '.join(PRESETS)}.")
    spec = PRESETS[preset]
    base = {
        "mnist_fast": dict(epochs=1, batch_size=128, optimizer="sgd", lr=0.1, weight_decay=5e-4,
                           label_smoothing=0.1),
        "cifar10_fast": dict(epochs=12, batch_size=256, optimizer="sgd", lr=0.2, weight_decay=5e-4,
                             label_smoothing=0.2, whiten=spec.spec.startswith("C24k2p0"), mirror_tta=True),
        "cifar10_speed": dict(epochs=9, batch_size=128, optimizer="sgd", lr=0.2, weight_decay=5e-4,
                              label_smoothing=0.2, shift=0, whiten=True, mirror_tta=True, shift_tta=True,
                              whiten_bias_epochs=1, dirac=True, batchnorm_scale=False, batchnorm_shift_lr=64,
                              lookahead_every=5, alternating_flip=True),
        "cifar10_gpu": dict(epochs=16, batch_size=1024, optimizer="sgd", lr=0.8, weight_decay=5e-4,
                            label_smoothing=0.2, shift=2, whiten=True, mirror_tta=True, shift_tta=True),
        "cifar10_wide": dict(epochs=16, batch_size=256, optimizer="sgd", lr=0.2, weight_decay=5e-4,
                             label_smoothing=0.2, whiten=True, mirror_tta=True),
        "vgg_classic": dict(epochs=15, batch_size=128, optimizer="adam", lr=2e-3, weight_decay=0.0,
                            label_smoothing=0.0),
    }[preset]
    config = TrainConfig(dataset=spec.dataset, spec=spec.spec, **base)
    return replace(config, **overrides)
