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
    # Runs one client (a browser, by its session cookie, else its IP address) may have training or
    # waiting at once, so that one student with many tabs cannot take every place in line.
    max_runs_per_client: int = 2  # one training, one waiting
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


def _whole(highest: int) -> Callable[[str], int]:
    """A parser of whole numbers from 1 to ``highest``."""
    def parse(text: str) -> int:
        value = int(text)
        if not 1 <= value <= highest:
            raise ValueError
        return value
    return parse


def _optional_whole(highest: int) -> Callable[[str], int | None]:
    """Like :func:`_whole`, with ``none``/``all`` (or nothing) for the default."""
    whole = _whole(highest)
    return lambda text: None if text.strip().lower() in ("", "none", "all") else whole(text)


def _page_list(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    if any(name not in PAGE_NAMES for name in names):
        raise ValueError
    return names


# The highest value of each numeric setting: beyond it a setting makes no sense, or breaks a widget.
HIGHEST = {
    "max_upload_mb": 200,  # Streamlit's own default server.maxUploadSize
    # Pillow refuses a header over 2 x its Image.MAX_IMAGE_PIXELS (179 M) by itself, whatever the host says
    "max_image_pixels": 100_000_000,
    "max_trainings": 64,
    "max_queue": 1000,
    "max_runs_per_client": 100,
    "max_epochs": 200,  # as TrainConfig.validate allows
    "max_train_images": 60_000,  # the largest training set (MNIST)
    "training_memory_mb": 4_000_000,  # 4 TB: more than any one machine holds
    "max_saves_per_session": 1000,
    "max_saved_models": 100_000,
    "max_saved_mb": 10_000_000,  # 10 TB
}


def _range(name: str) -> str:
    return f"at least 1 and at most {HIGHEST[name]:,}"


PARSERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "max_upload_mb": (_whole(HIGHEST["max_upload_mb"]),
                      f"a whole number of megabytes, {_range('max_upload_mb')}"),
    "max_image_pixels": (_whole(HIGHEST["max_image_pixels"]),
                         f"a whole number of pixels, {_range('max_image_pixels')}"),
    "max_trainings": (_optional_whole(HIGHEST["max_trainings"]),
                      f"a whole number, {_range('max_trainings')} (or 'none' for the default)"),
    "max_queue": (_whole(HIGHEST["max_queue"]), f"a whole number, {_range('max_queue')}"),
    "max_runs_per_client": (_whole(HIGHEST["max_runs_per_client"]),
                            f"a whole number, {_range('max_runs_per_client')}"),
    "max_epochs": (_whole(HIGHEST["max_epochs"]), f"a whole number, {_range('max_epochs')}"),
    "max_train_images": (_optional_whole(HIGHEST["max_train_images"]),
                         f"a whole number, {_range('max_train_images')} (or 'all')"),
    "training_memory_mb": (_optional_whole(HIGHEST["training_memory_mb"]),
                           f"a whole number of megabytes, {_range('training_memory_mb')} (or 'none')"),
    "pages": (_page_list, f"a comma-separated list of {', '.join(PAGE_NAMES)}"),
    "max_saves_per_session": (_whole(HIGHEST["max_saves_per_session"]),
                              f"a whole number, {_range('max_saves_per_session')}"),
    "max_saved_models": (_whole(HIGHEST["max_saved_models"]),
                         f"a whole number, {_range('max_saved_models')}"),
    "max_saved_mb": (_whole(HIGHEST["max_saved_mb"]),
                     f"a whole number of megabytes, {_range('max_saved_mb')}"),
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
