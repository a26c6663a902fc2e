"""Checking a typed answer: right or wrong, and the explanation with the student's numbers in it."""

from __future__ import annotations

from cnnviz.exercises.generate import kind_module
from cnnviz.exercises.model import Exercise, Verdict


def check_answer(exercise: Exercise, text: str) -> Verdict:
    """The verdict on ``text``; ValueError (one friendly sentence, no verdict) when it is no answer at all,
    such as "twenty" for a size: the page says so and the try does not count."""
    return kind_module(exercise.kind).judge(exercise, text)


def reveal(exercise: Exercise) -> Verdict:
    """The answer shown without a try ("Show answer"): it counts as wrong."""
    return Verdict(False, f"The answer is {exercise.answer_text}.", exercise.explanation)
