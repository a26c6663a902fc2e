"""What is this cell's value? A small input and kernel, one output cell; the student types the number,
accepted within a stated tolerance, and the explanation writes every product out."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnviz.convolution.steps import convolve_steps
from cnnviz.exercises.answers import parse_number
from cnnviz.exercises.model import (
    CELL_VALUE,
    Exercise,
    Field,
    Picture,
    SettingError,
    Verdict,
    format_number,
    grid,
    number,
    to_int,
    whole,
)

ABSOLUTE_TOLERANCE = 0.01
RELATIVE_TOLERANCE = 1e-6
TOLERANCE_TEXT = (f"Answers within {ABSOLUTE_TOLERANCE:g} of the exact value are accepted "
                  "(within one part in a million for values over 10,000).")
PADDING_NOTE = " The dashed line marks the input; the cells outside it are the padding's zeros."
FIELDS = {
    "input": Field(grid, required=True),
    "kernel": Field(grid, required=True),
    "bias": Field(number, 0.0),
    "stride": Field(whole(1, 3), 1),
    "padding": Field(whole(0, 2), 0),
    "row": Field(whole(0, 30), 0),  # the output cell asked about
    "col": Field(whole(0, 30), 0),
}


def accepted(typed: float, right: float) -> bool:
    """Whether a typed value counts as right: within 0.01, or 1e-6 relative for large values."""
    return abs(typed - right) <= max(ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE * abs(right))


def draw(rng: np.random.Generator) -> dict[str, Any]:
    """Whole numbers small enough to add up by hand."""
    side = int(rng.integers(4, 7))
    kernel = int(rng.choice([2, 3, 3]))
    stride, padding = int(rng.choice([1, 1, 2])), int(rng.choice([0, 0, 1]))
    out = (side + 2 * padding - kernel) // stride + 1
    return {"input": to_int(rng.integers(0, 4, size=(side, side))),
            "kernel": to_int(rng.integers(-1, 3, size=(kernel, kernel))), "bias": int(rng.integers(-2, 3)),
            "stride": stride, "padding": padding, "row": int(rng.integers(0, out)),
            "col": int(rng.integers(0, out))}


def _term(value: float, weight: float) -> str:
    def shown(v: float) -> str:
        return f"({format_number(v)})" if v < 0 else format_number(v)

    return f"{shown(value)}×{shown(weight)}"


def build(settings: dict[str, Any]) -> Exercise:
    """The exercise; SettingError when the kernel does not fit or the cell does not exist."""
    image = np.asarray(settings["input"], dtype=np.float64)
    kernel = np.asarray(settings["kernel"], dtype=np.float64)
    if max(kernel.shape) > 5:
        raise SettingError("kernel", "Keep the kernel at most 5x5, so the sum can be done by hand.")
    try:
        steps = convolve_steps(image[None], kernel, np.array([settings["bias"]]), settings["stride"],
                               settings["padding"])
    except ValueError as err:
        raise SettingError(None, str(err)) from None
    out_h, out_w = steps.output_size
    for key, value, size in (("row", settings["row"], out_h), ("col", settings["col"], out_w)):
        if value >= size:
            raise SettingError(key, f"The output has {size} {'rows' if key == 'row' else 'columns'} "
                                    f"(0 to {size - 1}), so '{key}' = {value} does not exist.")
    step = steps.step(0, settings["row"], settings["col"])
    terms = " + ".join(_term(v, w) for v, w in zip(step.inputs[0].ravel(), kernel.ravel(), strict=True))
    flat = step.products[0].ravel()
    products = format_number(flat[0]) + "".join(
        f" - {format_number(-p)}" if p < 0 else f" + {format_number(p)}" for p in flat[1:])
    pad = settings["padding"]
    where = "padded input" if pad else "input"
    explanation = (f"The window covers rows {step.rows[0]} to {step.rows[-1]} and columns {step.cols[0]} to "
                   f"{step.cols[-1]} of the {where}. Input × weight, cell by cell: {terms} = {products} = "
                   f"{format_number(step.total)}; plus the bias {format_number(step.bias)}: "
                   f"{format_number(step.value)}.")
    padded = steps.padded[0]
    title = f"Input with padding {pad}" if pad else "Input"
    frame = ((pad, pad), (pad + image.shape[0] - 1, pad + image.shape[1] - 1)) if pad else None
    outline = ((int(step.rows[0]), int(step.cols[0])), (int(step.rows[-1]), int(step.cols[-1])))
    question = (f"The kernel slides over the input with stride {settings['stride']}, padding {pad} and bias "
                f"{format_number(settings['bias'])}. The output is {out_h} x {out_w}. What is the value of "
                f"output cell (row {settings['row']}, column {settings['col']}), counting from 0?"
                + (PADDING_NOTE if pad else ""))
    return Exercise(CELL_VALUE, settings, question, step.value, format_number(step.value), explanation,
                    (Picture(title, padded, frame=frame), Picture("Kernel", kernel)), example="-3 or 2.5",
                    tolerance=TOLERANCE_TEXT,
                    solution_pictures=(Picture("The window of that cell", padded, True, outline, frame),),
                    extra={"sum": step.total})


def judge(exercise: Exercise, text: str) -> Verdict:
    typed = parse_number(text)
    if accepted(typed, exercise.answer):
        return Verdict(True, f"Right: {exercise.answer_text}.", exercise.explanation)
    hint = ""
    if exercise.extra["sum"] != exercise.answer and accepted(typed, exercise.extra["sum"]):
        hint = " That is the sum of the products: the bias is still to be added."
    return Verdict(False, f"Not quite: you wrote {format_number(typed)}, the value is {exercise.answer_text}."
                   + hint, exercise.explanation)
