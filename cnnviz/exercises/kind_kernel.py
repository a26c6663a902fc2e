"""Which kernel made this map? A small picture (a binary one or a real MNIST digit), three or four 3x3
preset kernels, and the feature map of one of them; the student picks the kernel."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from cnnviz.convolution.kernels import BINARY_PICTURES, PRESETS, binary_picture, make_kernel
from cnnviz.convolution.steps import convolve_steps
from cnnviz.exercises.answers import parse_choice
from cnnviz.exercises.model import (
    WHICH_KERNEL,
    Exercise,
    Field,
    Picture,
    SettingError,
    Verdict,
    format_number,
    whole,
)

SIDE = 3
KERNELS = tuple(name for name in PRESETS if name != "random")  # every preset that has a 3x3 kernel
MNIST_PREFIX = "mnist "  # "mnist 7": the bundled MNIST test image number 7
NUMBERED_SIDE = 9  # pictures up to this size carry their numbers; a 28x28 digit is shown as shades


def _picture_name(key: str, value: Any) -> str:
    if isinstance(value, str) and (value in BINARY_PICTURES or value.startswith(MNIST_PREFIX)):
        return value
    raise SettingError(key, f"'{key}' must be one of {', '.join(map(repr, BINARY_PICTURES))} "
                            f"or 'mnist N' (a bundled MNIST test image), not {value!r}.")


def _kernel_name(key: str, value: Any) -> str:
    if value not in KERNELS:
        raise SettingError(key, f"'{key}' must be a kernel preset: {', '.join(KERNELS)}; not {value!r}.")
    return value


def _kernel_names(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not 2 <= len(value) <= 4 or len(set(map(str, value))) != len(value):
        raise SettingError(key, f"'{key}' must list 2 to 4 different kernel presets.")
    return [_kernel_name(key, name) for name in value]


FIELDS = {
    "picture": Field(_picture_name, required=True),
    "kernel": Field(_kernel_name, required=True),
    "choices": Field(_kernel_names),  # default: the kernel and three others that make other maps
    "padding": Field(whole(0, 1), 0),
}
DEFAULT_OTHERS = ("Sobel x", "Sobel y", "Laplacian", "box blur", "X detector")


@cache
def mnist_digits() -> dict[int, np.ndarray]:
    """The bundled MNIST test images by test-set number, as (1, 28, 28) values in [0, 1]."""
    from cnnviz.datasets.samples import list_samples, load_sample

    return {s.test_index: load_sample(s).numpy().astype(np.float64) / 255.0 for s in list_samples("mnist")}


def load_picture(name: str) -> np.ndarray:
    """(1, H, W) values of a binary picture or of a bundled MNIST digit ("mnist 3")."""
    if name in BINARY_PICTURES:
        return binary_picture(name)
    digits = mnist_digits()
    number = name[len(MNIST_PREFIX):].strip()
    if not number.isdecimal() or int(number) not in digits:
        listed = ", ".join(str(n) for n in sorted(digits)[:12])
        raise SettingError("picture", f"There is no bundled MNIST image {number!r}; there are {listed} ...")
    return digits[int(number)]


def draw(rng: np.random.Generator) -> dict[str, Any]:
    """A binary picture or a bundled digit, four kernels, one of them the answer."""
    if rng.random() < 0.6:
        picture = str(rng.choice(BINARY_PICTURES))
    else:
        picture = MNIST_PREFIX + str(int(rng.choice(sorted(mnist_digits()))))
    choices = [str(c) for c in rng.choice(KERNELS, size=4, replace=False)]
    return {"picture": picture, "kernel": choices[int(rng.integers(0, 4))], "choices": choices,
            "padding": int(rng.integers(0, 2))}


def _maps(image: np.ndarray, names: list[str], padding: int) -> dict[str, np.ndarray]:
    return {name: convolve_steps(image, make_kernel(name, SIDE, SIDE), padding=padding).output[0]
            for name in names}


def same_maps(maps: dict[str, np.ndarray]) -> tuple[str, str] | None:
    """Two kernels whose maps are equal (no preset pair is, on the shipped pictures), else None."""
    names = list(maps)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if np.allclose(maps[first], maps[second], atol=1e-9):
                return first, second
    return None


def build(settings: dict[str, Any]) -> Exercise:
    """The exercise; SettingError when two of the kernels make the same map (two right answers)."""
    image = load_picture(settings["picture"])
    kernel = settings["kernel"]
    choices = settings["choices"] or [kernel, *[k for k in DEFAULT_OTHERS if k != kernel][:3]]
    if kernel not in choices:
        raise SettingError("choices", f"'choices' must include the kernel that made the map, {kernel!r}.")
    maps = _maps(image, choices, settings["padding"])
    same = same_maps(maps)
    if same is not None:
        raise SettingError("choices", f"On {settings['picture']} the kernels {same[0]} and {same[1]} "
                           "make the same map, so there would be two right answers; pick others.")
    numbers = max(image.shape[1:]) <= NUMBERED_SIDE
    pictures = (Picture(f"Input: {settings['picture']}", image[0], numbers),
                Picture("The feature map", maps[kernel], numbers),
                *(Picture(f"{i}. {name}", make_kernel(name, SIDE, SIDE))
                  for i, name in enumerate(choices, 1)))
    question = (f"One of these {len(choices)} kernels slid over the input (stride 1, padding "
                f"{settings['padding']}) and made the feature map. Which one?")
    explanation = f"The map was made by {kernel}: {PRESETS[kernel].description}."
    return Exercise(WHICH_KERNEL, {**settings, "choices": choices}, question, kernel, kernel, explanation,
                    pictures, tuple(choices), example="a kernel's name or number", extra={"maps": maps})


def judge(exercise: Exercise, text: str) -> Verdict:
    picked = parse_choice(text, exercise.choices)
    if picked == exercise.answer:
        return Verdict(True, f"Right: {picked}.", exercise.explanation)
    maps = exercise.extra["maps"]
    gap = np.abs(maps[picked] - maps[exercise.answer])
    row, col = (int(i) for i in np.unravel_index(int(gap.argmax()), gap.shape))
    cell = (f" At row {row}, column {col} of the map (counting from 0) the map holds "
            f"{format_number(maps[exercise.answer][row, col])}; {picked} would give "
            f"{format_number(maps[picked][row, col])} there.")
    return Verdict(False, f"Not quite: not {picked}, the map was made by {exercise.answer}.",
                   exercise.explanation + cell)
