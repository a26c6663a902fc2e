"""What the Exercises page keeps in ``st.session_state`` (which survives a visit to another page): where
the student is in each set, what each checked exercise got, and the score."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import streamlit as st

from cnnviz import pages
from cnnviz.exercises.check import check_answer, reveal
from cnnviz.exercises.model import Exercise, Verdict
from cnnviz.exercises.score import Score
from cnnviz.exercises.teacher_sets import TeacherSet

POSITIONS_KEY = "ex_positions"  # set id -> index of the exercise shown
RESULTS_KEY = "ex_results"  # (set id, index) -> Result once checked
SCORE_KEY = "ex_score"
PROBLEM_KEY = "ex_problem"  # (set id, index) -> why the last typed answer could not be read
COUNTED_KEY = "ex_counted"  # (set id, index) of every exercise the score has counted


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    typed: str  # what the student answered ("" when the answer was shown)
    shown: bool  # "Show answer" was pressed


def score() -> Score:
    return st.session_state.setdefault(SCORE_KEY, Score())


def position(set_id: str) -> int:
    return st.session_state.setdefault(POSITIONS_KEY, {}).get(set_id, 0)


def move_to(set_id: str, index: int) -> None:
    st.session_state.setdefault(POSITIONS_KEY, {})[set_id] = index


def result(set_id: str, index: int) -> Result | None:
    return st.session_state.setdefault(RESULTS_KEY, {}).get((set_id, index))


def problem(set_id: str, index: int) -> str:
    return st.session_state.setdefault(PROBLEM_KEY, {}).get((set_id, index), "")


def teacher_set_id(chosen: TeacherSet) -> str:
    """A teacher's set by its file and its exercises: when the teacher edits the file during the class,
    the edited set starts afresh instead of showing old verdicts under changed exercises."""
    content = hashlib.sha256(repr([(e.kind, e.settings) for e in chosen.exercises]).encode()).hexdigest()
    return f"teacher:{chosen.path}:{content[:12]}"


def answer_key(set_id: str, index: int) -> str:
    """The answer box's widget key: one per exercise, so the next one starts empty."""
    return f"{pages.EXERCISE_ANSWER_PREFIX}{hashlib.sha256(set_id.encode()).hexdigest()[:10]}_{index}"


def _record(set_id: str, index: int, exercise: Exercise, outcome: Result) -> None:
    if result(set_id, index) is not None:
        return
    st.session_state[RESULTS_KEY][(set_id, index)] = outcome
    counted = st.session_state.setdefault(COUNTED_KEY, set())
    if (set_id, index) not in counted:  # an exercise counts once, also when the set is started again
        counted.add((set_id, index))
        score().record(exercise.kind, outcome.verdict.correct)


def start_again(set_id: str) -> None:
    """The "Start the set again" button's callback: back to the first exercise with every answer of the
    set cleared, so each can be tried again (the score keeps the first tries)."""
    for store in (st.session_state.setdefault(RESULTS_KEY, {}), st.session_state.setdefault(PROBLEM_KEY, {})):
        for key in [key for key in store if key[0] == set_id]:
            del store[key]
    prefix = answer_key(set_id, 0)[: -len("0")]
    for key in [key for key in st.session_state if isinstance(key, str) and key.startswith(prefix)]:
        del st.session_state[key]
    move_to(set_id, 0)


def check(set_id: str, index: int, exercise: Exercise) -> None:
    """The Check button's callback: a verdict, or a problem to show when the text is no answer."""
    typed = st.session_state.get(answer_key(set_id, index)) or ""
    problems = st.session_state.setdefault(PROBLEM_KEY, {})
    try:
        verdict = check_answer(exercise, typed)
    except ValueError as err:
        problems[(set_id, index)] = str(err) if typed else "Type (or pick) an answer first."
        return
    problems.pop((set_id, index), None)
    _record(set_id, index, exercise, Result(verdict, typed, shown=False))


def show_answer(set_id: str, index: int, exercise: Exercise) -> None:
    """The Show answer button's callback: the answer, counted as a wrong try."""
    st.session_state.setdefault(PROBLEM_KEY, {}).pop((set_id, index), None)
    _record(set_id, index, exercise, Result(reveal(exercise), "", shown=True))
