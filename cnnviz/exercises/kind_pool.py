"""Which cell wins this pooling window? A small feature map, one max-pooling window outlined; the student
gives the row and column of the winner. Ties go to the first maximum in reading order, as max_pool2d's
index says."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnviz.convolution.pooling import pool_steps
from cnnviz.exercises.answers import parse_pair
from cnnviz.exercises.model import (
    POOL_WINNER,
    Exercise,
    Field,
    Picture,
    SettingError,
    Verdict,
    format_number,
    grid,
    to_int,
    whole,
)

FIELDS = {
    "values": Field(grid, required=True),  # the feature map, rows of numbers
    "window": Field(whole(1, 5), 2),
    "stride": Field(whole(1, 5)),  # default: the window
    "padding": Field(whole(0, 2), 0),
    "row": Field(whole(0, 20), 0),  # the pooled output cell whose window is asked about
    "col": Field(whole(0, 20), 0),
}


def draw(rng: np.random.Generator) -> dict[str, Any]:
    """A 4x4 to 6x6 map of small whole numbers (ties happen), a 2x2 or 3x3 window."""
    side = int(rng.integers(4, 7))
    window = int(rng.choice([2, 2, 3]))
    stride = window if rng.random() < 0.7 else 1
    rows = (side - window) // stride + 1
    return {"values": to_int(rng.integers(0, 10, size=(side, side))), "window": window, "stride": stride,
            "row": int(rng.integers(0, rows)), "col": int(rng.integers(0, rows))}


def build(settings: dict[str, Any]) -> Exercise:
    """The exercise; SettingError when the window does not fit or the output cell does not exist."""
    values = np.asarray(settings["values"], dtype=np.float64)
    window, padding = settings["window"], settings["padding"]
    stride = settings["stride"] or window
    try:
        steps = pool_steps(values[None], window, stride, padding)
    except ValueError as err:
        raise SettingError(None, str(err)) from None
    out_h, out_w = steps.output.shape[1:]
    for key, value, size in (("row", settings["row"], out_h), ("col", settings["col"], out_w)):
        if value >= size:
            raise SettingError(key, f"The pooled output has {size} {'rows' if key == 'row' else 'columns'} "
                                    f"(0 to {size - 1}), so '{key}' = {value} does not exist.")
    row, col = settings["row"], settings["col"]
    top = row * stride - padding
    left = col * stride - padding
    winner = tuple(int(v) for v in steps.winners[0, row, col] - np.array([padding, padding]))
    bottom, right = min(top + window, values.shape[0]) - 1, min(left + window, values.shape[1]) - 1
    top, left = max(top, 0), max(left, 0)
    inside = values[top:bottom + 1, left:right + 1]
    best = inside.max()
    ties = [(top + r, left + c) for r, c in zip(*np.nonzero(inside == best), strict=True)]
    explanation = (f"The window covers rows {top} to {bottom} and columns {left} to {right}. Its largest "
                   f"value is {format_number(best)}, at row {winner[0]}, column {winner[1]}.")
    if len(ties) > 1:
        listed = ", ".join(f"({r}, {c})" for r, c in ties)
        explanation += (f" {format_number(best)} appears {len(ties)} times ({listed}): max_pool2d keeps "
                        "the first in reading order (row by row, left to right), the index its "
                        "return_indices gives.")
    outline = ((top, left), (bottom, right))
    question = (f"Max pooling with a {window}x{window} window, stride {stride}, padding {padding}. The "
                f"outlined window makes pooled cell (row {row}, column {col}). Which cell of the feature map "
                "wins? Type its row and column, counting from 0 (the top-left cell is 0, 0).")
    return Exercise(POOL_WINNER, {**settings, "stride": stride}, question, winner,
                    f"row {winner[0]}, column {winner[1]}", explanation,
                    (Picture("Feature map", values, True, outline),), example="2, 3",
                    extra={"ties": ties, "window": outline})


def judge(exercise: Exercise, text: str) -> Verdict:
    typed = parse_pair(text, "2, 3 or 2 3 (row, column)")
    if typed == exercise.answer:
        return Verdict(True, f"Right: {exercise.answer_text}.", exercise.explanation)
    (top, left), (bottom, right) = exercise.extra["window"]
    if typed in exercise.extra["ties"]:
        why = " That cell holds the maximum too, but a tie goes to the first maximum in reading order."
    elif not (top <= typed[0] <= bottom and left <= typed[1] <= right):
        why = f" Row {typed[0]}, column {typed[1]} is outside the window."
    else:
        why = ""
    return Verdict(False, f"Not quite: the winner is {exercise.answer_text}.{why}", exercise.explanation)
