"""An exercise as plain text, for the command line: the question, its grids of numbers, the choices,
and (when asked) the answer with its explanation."""

from __future__ import annotations

import numpy as np

from cnnviz.exercises.model import Exercise, Picture, format_number


def grid_text(picture: Picture) -> str:
    """A picture's values in aligned columns, the outlined window's cells in [brackets]."""
    values = np.asarray(picture.values)
    cells = [[format_number(v) for v in row] for row in values]
    if picture.outline is not None:
        (top, left), (bottom, right) = picture.outline
        for r in range(top, bottom + 1):
            for c in range(left, right + 1):
                cells[r][c] = f"[{cells[r][c]}]"
    width = max(len(c) for row in cells for c in row)
    return "\n".join("  " + " ".join(c.rjust(width) for c in row) for row in cells)


SHADES = " .:-=+*#%@"  # from the smallest value to the largest


def shade_text(values: np.ndarray) -> str:
    """A large grid (a 28x28 digit) as shades, two characters a cell, smallest blank, largest '@'."""
    values = np.asarray(values, dtype=np.float64)
    low, span = values.min(), float(np.ptp(values)) or 1.0
    levels = np.rint((values - low) / span * (len(SHADES) - 1)).astype(int)
    return "\n".join("  " + "".join(SHADES[v] * 2 for v in row) for row in levels)


def exercise_text(exercise: Exercise, number: int, answers: bool = False) -> str:
    """Exercise ``number`` (counted from 1) as lines of text."""
    lines = [f"{number}. {exercise.title}", exercise.question]
    for picture in exercise.pictures:
        shape = "x".join(str(s) for s in np.shape(picture.values))
        if max(np.shape(picture.values)) > 12:
            lines.append(f"{picture.title} ({shape}), shaded from the smallest value (blank) to the largest:")
            lines.append(shade_text(picture.values))
            continue
        lines.append(f"{picture.title} ({shape}):" + (" the window in [brackets]" if picture.outline else ""))
        lines.append(grid_text(picture))
    if exercise.choices:
        lines.append("Choices: " + ", ".join(f"{i}. {c}" for i, c in enumerate(exercise.choices, 1)))
    if exercise.tolerance:
        lines.append(exercise.tolerance)
    if answers:
        lines.append(f"Answer: {exercise.answer_text}")
        lines.append(exercise.explanation)
    return "\n".join(lines)
