"""Limits a teacher sets for a hosted class demo, read from environment variables or secrets.

Every limit has a default that suits one student on a laptop. A host changes one with an
environment variable (``CNNVIZ_MAX_TRAININGS=1``) or in ``.streamlit/secrets.toml`` under a
``[cnnviz]`` table (``max_trainings = 1``); the environment wins over the secrets file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from cnnviz.images.decode import MAX_IMAGE_PIXELS, MAX_UPLOAD_MB
from cnnviz.pages import PAGE_NAMES
from cnnviz.training.memory import MB, default_training_memory

ENV_PREFIX = "CNNVIZ_"
SECRETS_TABLE = "cnnviz"
CPU_TRAININGS = 2  # concurrent runs on a CPU-only server; each gets a share of the cores


@dataclass(frozen=True)
class HostLimits:
    """What one server allows. ``None`` means no limit beyond the app's own."""

    max_upload_mb: int = MAX_UPLOAD_MB  # largest image file a student may upload (<= server.maxUploadSize)
    max_image_pixels: int = MAX_IMAGE_PIXELS  # width x height read from the header, checked before decoding
    max_trainings: int | None = None  # concurrent training runs; None = one per GPU, else CPU_TRAININGS
    max_queue: int = 30  # runs that may wait for a slot; beyond this a student is asked to retry later
    max_epochs: int = 30  # per training run
    max_train_images: int | None = None  # training images per run (None = the whole training set)
    # Memory all training runs together may use at their predicted peak, in MB (None: half the RAM on a
    # CPU, 80% of the GPU's memory); each run may use its share of it (this / training_slots).
    training_memory_mb: int | None = None
    pages: tuple[str, ...] = PAGE_NAMES  # url paths of the enabled pages (the home page is always on)
    max_saves_per_session: int = 5  # models one student may save from the Train page
    max_saved_models: int = 50  # .pt files the saved-models folder may hold, all students together
    max_saved_mb: int = 500  # their total size in megabytes

    def training_slots(self, gpu_count: int) -> int:
        """Concurrent training runs: the host's number, else one per GPU, else a few on the CPU."""
        if self.max_trainings is not None:
            return self.max_trainings
        return gpu_count if gpu_count > 0 else CPU_TRAININGS

    def run_memory_budget(self, gpu_count: int) -> int:
        """Bytes one run may use at its peak: the training memory shared by the training slots."""
        total = (self.training_memory_mb * MB if self.training_memory_mb is not None
                 else default_training_memory(gpu_count))
        return total // self.training_slots(gpu_count)

    def check_training(self, epochs: int, train_images: int | None, dataset_train_size: int) -> None:
        """Raise ValueError when a run asks for more than this server allows."""
        if epochs > self.max_epochs:
            raise ValueError(f"This server allows at most {self.max_epochs} epochs per run.")
        asked = dataset_train_size if train_images is None else min(train_images, dataset_train_size)
        if self.max_train_images is not None and asked > self.max_train_images:
            raise ValueError(
                f"This server allows at most {self.max_train_images:,} training images per run: "
                "choose fewer."
            )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


def _optional_positive_int(text: str) -> int | None:
    return None if text.strip().lower() in ("", "none", "all") else _positive_int(text)


def _page_list(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    if any(name not in PAGE_NAMES for name in names):
        raise ValueError
    return names


PARSERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "max_upload_mb": (_positive_int, "a whole number of megabytes, at least 1"),
    "max_image_pixels": (_positive_int, "a whole number of pixels, at least 1"),
    "max_trainings": (_optional_positive_int, "a whole number, at least 1 (or 'none' for the default)"),
    "max_queue": (_positive_int, "a whole number, at least 1"),
    "max_epochs": (_positive_int, "a whole number, at least 1"),
    "max_train_images": (_optional_positive_int, "a whole number, at least 1 (or 'all')"),
    "training_memory_mb": (_optional_positive_int, "a whole number of megabytes, at least 1 (or 'none')"),
    "pages": (_page_list, f"a comma-separated list of {', '.join(PAGE_NAMES)}"),
    "max_saves_per_session": (_positive_int, "a whole number, at least 1"),
    "max_saved_models": (_positive_int, "a whole number, at least 1"),
    "max_saved_mb": (_positive_int, "a whole number of megabytes, at least 1"),
}


def env_name(field_name: str) -> str:
    """``max_upload_mb`` -> ``CNNVIZ_MAX_UPLOAD_MB``."""
    return ENV_PREFIX + field_name.upper()


def load_limits(
    environ: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None,
) -> HostLimits:
    """The limits from the environment (``CNNVIZ_*``), then the secrets' ``[cnnviz]`` table, then defaults.

    A value that cannot be understood raises ValueError naming the setting and what it expects, so a
    host sees the typo at start-up instead of a class finding it later.
    """
    environ = os.environ if environ is None else environ
    table = dict((secrets or {}).get(SECRETS_TABLE, {}) or {})
    unknown = set(table) - set(PARSERS)
    if unknown:
        raise ValueError(f"Unknown cnnviz setting(s) in secrets.toml: {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(PARSERS)}.")
    values: dict[str, Any] = {}
    for item in fields(HostLimits):
        parse, expected = PARSERS[item.name]
        source, raw = env_name(item.name), environ.get(env_name(item.name))
        if raw is None and item.name in table:
            source, raw = f"[{SECRETS_TABLE}] {item.name} in secrets.toml", table[item.name]
            if isinstance(raw, list):
                raw = ",".join(str(v) for v in raw)
        if raw is None:
            continue
        try:
            values[item.name] = parse(str(raw))
        except ValueError:
            raise ValueError(f"{source} is {raw!r}: expected {expected}.") from None
    return HostLimits(**values)
