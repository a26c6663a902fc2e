"""Predict the output shape: input size, kernel, stride, padding and dilation (or a pooling window) given;
the student types height and width and gets the formula with the numbers filled in."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from cnnviz.convolution.arithmetic import AxisSize, output_shape
from cnnviz.exercises.answers import parse_pair
from cnnviz.exercises.model import OUTPUT_SHAPE, Exercise, Field, SettingError, Verdict, flag, whole

FIELDS = {
    "height": Field(whole(1, 512), required=True),
    "width": Field(whole(1, 512)),  # default: the height (a square input)
    "kernel": Field(whole(1, 11), required=True),
    "stride": Field(whole(1, 8)),  # default: 1, or the window for pooling
    "padding": Field(whole(0, 10), 0),
    "dilation": Field(whole(1, 5), 1),
    "pool": Field(flag, False),
}
FORMULA = "out = floor((n + 2p - d(k-1) - 1) / s) + 1 on each axis:\n"
# the Convolution page's notes give a padded figure's row numbers too; this exercise shows no figure
FIGURE_NOTE = re.compile(r"; [^;()]+ on the figure, which counts the padding too")
SIZES = (5, 6, 7, 8, 9, 10, 12, 14, 16, 28, 32, 64, 224)


def draw(rng: np.random.Generator) -> dict[str, Any]:
    """Random settings, a pooling window one time in four."""
    height = int(rng.choice(SIZES))
    width = height if rng.random() < 0.7 else int(rng.choice(SIZES))
    if rng.random() < 0.25:
        kernel = int(rng.integers(2, 4))
        stride = kernel if rng.random() < 0.7 else int(rng.integers(1, kernel + 1))
        return {"height": height, "width": width, "kernel": kernel, "stride": stride,
                "padding": int(rng.integers(0, kernel // 2 + 1)), "pool": True}
    return {"height": height, "width": width, "kernel": int(rng.choice([1, 2, 3, 3, 3, 5, 5, 7])),
            "stride": int(rng.choice([1, 1, 2, 2, 3])), "padding": int(rng.integers(0, 4)),
            "dilation": int(rng.choice([1, 1, 1, 2, 3]))}


def build(settings: dict[str, Any]) -> Exercise:
    """The exercise of these settings; SettingError when the window fits nowhere."""
    pool = settings["pool"]
    width = settings["width"] or settings["height"]
    stride = settings["stride"] or (settings["kernel"] if pool else 1)
    if pool and settings["dilation"] != 1:
        raise SettingError("dilation", "A pooling exercise has no dilation; leave 'dilation' out.")
    try:
        sizes = output_shape(settings["height"], width, settings["kernel"], stride, settings["padding"],
                             settings["dilation"], pool=pool)
    except ValueError as err:
        raise SettingError(None, str(err)) from None
    kernel = settings["kernel"]
    layer = (f"Max pooling with a {kernel}x{kernel} window" if pool
             else f"A convolution with a {kernel}x{kernel} kernel")
    dilation = "" if pool else f", dilation {settings['dilation']}"
    source = "a feature map" if pool else "an input"  # as the explanation's note names it
    question = (f"{layer}, stride {stride}, padding {settings['padding']}{dilation} gets {source} of "
                f"{settings['height']} x {width} (height x width). What is the output's height x width?")
    height_size, width_size = sizes
    answer = (height_size.output, width_size.output)
    return Exercise(OUTPUT_SHAPE, {**settings, "width": width, "stride": stride}, question, answer,
                    f"{answer[0]} x {answer[1]}",
                    FORMULA + "\n".join(_lines(sizes, None)),
                    example="28x28", extra={"sizes": sizes})


def _hint(size: AxisSize, typed: int) -> str:
    p = size.padding.total
    if typed == int(np.ceil(float(size.exact))):
        return " The division is not whole: frameworks round it down (floor), not up."
    if typed == (size.input_size - size.span) // size.stride + 1 and p:
        return f" The padding counts too: it adds {p} to the {size.axis}."
    if size.dilation > 1 and typed == (size.input_size + p - size.kernel) // size.stride + 1:
        return (f" With dilation {size.dilation} the window spans d(k-1)+1 = {size.span} cells, "
                f"not {size.kernel}.")
    if typed == size.input_size:
        steps = size.input_size + p - size.span
        return (f" That is the input's {size.axis}: the window has to fit inside the padded input, which "
                f"leaves n + 2p - d(k-1) - 1 = {steps} steps to divide by the stride.")
    return ""


def _lines(sizes: tuple[AxisSize, AxisSize], typed: tuple[int, int] | None) -> list[str]:
    """Each axis's formula (with the student's number when given) and its notes; a square input with the
    same numbers on both axes gets one line, not the same line twice."""
    height, width = sizes
    same = height.formula == width.formula and (typed is None or typed[0] == typed[1])
    shown = [(height, "height and width" if same else "height")] + ([] if same else [(width, "width")])
    lines = []
    for number, (size, name) in enumerate(shown):
        if typed is None:
            lines.append(f"{name}: {size.formula}")
        elif typed[number] == size.output:
            lines.append(f"{name}: you wrote {typed[number]}, right: {size.formula}")
        else:
            hint = _hint(size, typed[number])
            lines.append(f"{name}: you wrote {typed[number]}, but {size.formula}.{hint}")
    lines += [FIGURE_NOTE.sub("", size.warning) for size, _ in shown if size.warning]
    if same and height.warning:
        lines.append("The same holds for the columns.")
    return lines


def judge(exercise: Exercise, text: str) -> Verdict:
    typed = parse_pair(text)
    sizes = exercise.extra["sizes"]
    right = typed == exercise.answer
    message = (f"Right: {exercise.answer_text}." if right
               else f"Not quite: you wrote {typed[0]} x {typed[1]}, the output is {exercise.answer_text}.")
    return Verdict(right, message, FORMULA + "\n".join(_lines(sizes, typed)))
