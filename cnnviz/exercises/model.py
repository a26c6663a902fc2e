"""What an exercise is (its kind, the settings it was built from, the question, the pictures and the right
answer), what checking returns, and the reading of settings with an error that names the field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OUTPUT_SHAPE = "output_shape"
WHICH_KERNEL = "which_kernel"
POOL_WINNER = "pool_winner"
PARAMETERS = "parameters"
CELL_VALUE = "cell_value"
KINDS = (OUTPUT_SHAPE, WHICH_KERNEL, POOL_WINNER, PARAMETERS, CELL_VALUE)
KIND_TITLES = {
    OUTPUT_SHAPE: "Predict the output shape",
    WHICH_KERNEL: "Which kernel made this map?",
    POOL_WINNER: "Which cell wins this pooling window?",
    PARAMETERS: "How many parameters has this layer?",
    CELL_VALUE: "What is this cell's value?",
}
MAX_GRID_SIDE = 12  # a typed grid (a teacher's input or feature map) stays small enough to read cell by cell


@dataclass(frozen=True)
class Picture:
    """A grid of numbers the student looks at, with the cells to outline (a window) if any."""

    title: str
    values: np.ndarray  # (H, W)
    numbers: bool = True  # write each cell's value in it
    outline: tuple[tuple[int, int], tuple[int, int]] | None = None  # ((top, left), (bottom, right)) inclusive
    frame: tuple[tuple[int, int], tuple[int, int]] | None = None  # the input inside its padding, dashed


@dataclass(frozen=True)
class Exercise:
    """One question with everything needed to show it, check it and explain it."""

    kind: str
    settings: dict[str, Any]  # what it was built from, TOML-friendly: the same settings rebuild it
    question: str
    answer: Any  # the right answer: (H, W), (row, col), a count, a number or a kernel's name
    answer_text: str  # the right answer as a student would write it
    explanation: str  # how the right answer comes about, with the numbers
    pictures: tuple[Picture, ...] = field(default=(), compare=False)
    choices: tuple[str, ...] = ()  # the kernels to pick from (which_kernel)
    example: str = ""  # how an answer is typed, shown as the answer box's placeholder
    tolerance: str = ""  # how close a typed number must be, said to the student (cell_value)
    solution_pictures: tuple[Picture, ...] = field(default=(), compare=False)  # shown once checked
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # what the checking needs again

    @property
    def title(self) -> str:
        return KIND_TITLES[self.kind]


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one answer."""

    correct: bool
    message: str  # "Right: 28 x 28." or "Not quite: ..."
    explanation: str  # the exercise's explanation, with the student's numbers where they differ


class SettingError(ValueError):
    """A setting missing, of the wrong type or impossible; ``key`` names it (None: the whole table)."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Field:
    """One setting of a kind: how to read it, and its default (``REQUIRED`` if it has none)."""

    read: Callable[[str, Any], Any]
    default: Any = field(default=None)
    required: bool = False


def whole(minimum: int, maximum: int) -> Callable[[str, Any], int]:
    """A reader of a whole number in [minimum, maximum]."""

    def read(key: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SettingError(key, f"'{key}' must be a whole number, not {value!r}.")
        if not minimum <= value <= maximum:
            raise SettingError(key, f"'{key}' must be between {minimum} and {maximum}, not {value}.")
        return value

    return read


def flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingError(key, f"'{key}' must be true or false, not {value!r}.")
    return value


def number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise SettingError(key, f"'{key}' must be a number, not {value!r}.")
    return float(value)


def one_of(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def read(key: str, value: Any) -> str:
        if value not in options:
            raise SettingError(key, f"'{key}' must be one of {', '.join(map(repr, options))}, not {value!r}.")
        return value

    return read


def grid(key: str, value: Any) -> list[list[float]]:
    """A small rectangular grid of numbers, rows of equal length (a TOML array of arrays)."""
    rows_ok = isinstance(value, list) and value and all(isinstance(r, list) and r for r in value)
    numbers = rows_ok and all(isinstance(v, int | float) and not isinstance(v, bool)
                              for r in value for v in r)
    if not numbers:
        raise SettingError(key, f"'{key}' must be rows of numbers, such as [[1, 0], [0, 1]].")
    if len({len(r) for r in value}) != 1:
        raise SettingError(key, f"Every row of '{key}' needs the same number of values.")
    if max(len(value), len(value[0])) > MAX_GRID_SIDE:
        raise SettingError(key, f"Keep '{key}' at most {MAX_GRID_SIDE}x{MAX_GRID_SIDE}, so it can be read.")
    if not np.isfinite(np.asarray(value, dtype=np.float64)).all():
        raise SettingError(key, f"'{key}' must hold ordinary numbers (no inf or nan).")
    return [[float(v) for v in r] for r in value]


def read_settings(kind: str, fields: dict[str, Field], given: dict[str, Any]) -> dict[str, Any]:
    """The settings of one exercise, each read by its field, defaults filled in; SettingError names the
    first unknown, missing or wrong setting."""
    unknown = [key for key in given if key not in fields]
    if unknown:
        raise SettingError(unknown[0], f"An exercise of kind {kind} has no setting '{unknown[0]}' (a typo?); "
                                       f"its settings are {', '.join(fields)}.")
    settings = {}
    for key, spec in fields.items():
        if key in given:
            settings[key] = spec.read(key, given[key])
        elif spec.required:
            raise SettingError(None, f"A {kind} exercise needs '{key}'.")
        else:
            settings[key] = spec.default
    return settings


def to_int(values: np.ndarray) -> list[list[Any]]:
    """A grid as TOML-friendly lists, whole numbers as ints (so settings print as a teacher writes them)."""
    return [[int(v) if float(v).is_integer() else float(v) for v in row] for row in np.asarray(values)]


def format_number(value: float) -> str:
    """A number as short as it can be written exactly enough: 3, -2.5, 0.1111."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"
