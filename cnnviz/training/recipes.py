"""The tuned training settings of each preset, and the preset to use when none is named."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cnnviz.runtime import resolve_device
from cnnviz.training.config import TrainConfig
from cnnviz.training.presets import CUSTOM_PRESET, NET_PRESETS, TRAIN_PAGE_CHOICES, NetPreset

# The preset that reaches a good accuracy soonest, per (dataset, device type).
FASTEST_PRESET: dict[tuple[str, str], str] = {
    (preset.dataset, device): preset.name
    for preset in NET_PRESETS.values() if preset.dataset is not None
    for device in preset.fastest_on
}


def find_preset(name: str) -> NetPreset:
    """The record of a preset (or of the custom net), with a friendly error for an unknown name."""
    if name == CUSTOM_PRESET.name:
        return CUSTOM_PRESET
    if name not in NET_PRESETS:
        raise ValueError(f"Unknown preset {name!r}: choose one of {', '.join(TRAIN_PAGE_CHOICES)}.")
    return NET_PRESETS[name]


def recipe(preset: str, **overrides: Any) -> TrainConfig:
    """The tuned training settings for a preset, with any field overridden."""
    record = find_preset(preset)
    config = TrainConfig(spec=record.spec, **record.recipe)
    if record.dataset is not None:
        config = replace(config, dataset=record.dataset)
    return replace(config, **overrides)


def fastest_preset(dataset: str, device: str = "auto") -> str:
    """The preset ``train`` and ``bench train`` use when none is named, for ``device`` as resolved."""
    return FASTEST_PRESET[dataset, resolve_device(device).type]


def default_preset(dataset: str) -> str:
    """The preset the Train page opens on for ``dataset``."""
    return next(preset.name for preset in NET_PRESETS.values() if preset.default_for == dataset)
