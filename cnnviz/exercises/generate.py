"""Exercises from settings, and random ones from a seed: exercise ``i`` of seed ``s`` is drawn from its
own generator seeded (s, i), so the same seed gives the whole class the same exercises in the same order,
however far each student gets."""

from __future__ import annotations

from dataclasses import replace
from types import ModuleType
from typing import Any

import numpy as np

from cnnviz.exercises import kind_cell, kind_kernel, kind_params, kind_pool, kind_shape
from cnnviz.exercises.model import (
    CELL_VALUE,
    KINDS,
    OUTPUT_SHAPE,
    PARAMETERS,
    POOL_WINNER,
    WHICH_KERNEL,
    Exercise,
    SettingError,
    read_settings,
)

KIND_MODULES: dict[str, ModuleType] = {
    OUTPUT_SHAPE: kind_shape, WHICH_KERNEL: kind_kernel, POOL_WINNER: kind_pool, PARAMETERS: kind_params,
    CELL_VALUE: kind_cell,
}
MAX_SEED = 2**32 - 1
DEFAULT_SEED = 1  # the page's and the command line's: "seed 1" is the same exercises in both
DRAW_ATTEMPTS = 100  # a draw that does not fit (a window larger than the input) is drawn again


def kind_module(kind: Any) -> ModuleType:
    """The module of a kind; SettingError naming the kinds there are."""
    if kind not in KIND_MODULES:
        raise SettingError("kind", f"Unknown kind {kind!r}; the kinds are {', '.join(KINDS)}.")
    return KIND_MODULES[kind]


def build_exercise(kind: str, given: dict[str, Any]) -> Exercise:
    """The exercise of a kind with these settings (a teacher's fixed exercise); SettingError names the
    setting that is unknown, missing, of the wrong type or impossible."""
    module = kind_module(kind)
    exercise = module.build(read_settings(kind, module.FIELDS, given))
    # the settings as a teacher would write them (TOML has no "none"): these rebuild the same exercise
    return replace(exercise, settings={k: v for k, v in exercise.settings.items() if v is not None})


def check_seed(seed: Any) -> int:
    """A seed as a whole number from 0 to 2**32 - 1; ValueError otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"A seed is a whole number from 0 to {MAX_SEED:,}, not {seed!r}.")
    return seed


def draw_exercise(kind: str, seed: int, index: int) -> Exercise:
    """Random exercise ``index`` of a kind for a seed: the same three give the same exercise."""
    module = kind_module(kind)
    rng = np.random.default_rng([check_seed(seed), index])
    for _ in range(DRAW_ATTEMPTS):
        try:
            return build_exercise(kind, module.draw(rng))
        except SettingError:
            continue
    raise AssertionError(f"no {kind} exercise fits after {DRAW_ATTEMPTS} draws")  # the draws are made to fit


def random_exercise(seed: int, index: int, kinds: tuple[str, ...] = KINDS) -> Exercise:
    """Exercise ``index`` of a seed's random practice: the kinds take turns, in the order given."""
    if not kinds:
        raise ValueError("Pick at least one kind of exercise.")
    return draw_exercise(kinds[index % len(kinds)], seed, index)


def random_exercises(seed: int, count: int, kinds: tuple[str, ...] = KINDS) -> list[Exercise]:
    """The first ``count`` exercises of a seed's random practice."""
    return [random_exercise(seed, index, kinds) for index in range(count)]
