"""One exercise on the page: its question and maps, the answer box, Check / Show answer, and the verdict
with the explanation once checked."""

from __future__ import annotations

import streamlit as st

from cnnviz.exercises.model import WHICH_KERNEL, Exercise, Picture
from cnnviz.ui.exercises import session
from cnnviz.ui.exercises.figures import grid_figure
from cnnviz.ui.widgets import markdown_text

CHART = {"width": "stretch", "config": {"displayModeBar": False, "staticPlot": False}}
PICTURES_PER_ROW = {WHICH_KERNEL: 2}


def show_pictures(pictures: tuple[Picture, ...], per_row: int) -> None:
    """The maps in rows of ``per_row`` columns (kernels of a which-kernel exercise four to a row)."""
    for start in range(0, len(pictures), per_row):
        row = pictures[start:start + per_row]
        for column, picture in zip(st.columns(per_row), row, strict=False):
            with column:
                st.plotly_chart(grid_figure(picture), **CHART)


def _pictures(exercise: Exercise) -> None:
    if exercise.kind == WHICH_KERNEL:
        show_pictures(exercise.pictures[:2], 2)
        show_pictures(exercise.pictures[2:], 4)
    elif exercise.pictures:
        show_pictures(exercise.pictures, 2)


def _answer_box(exercise: Exercise, key: str, done: bool) -> None:
    if exercise.kind == WHICH_KERNEL:
        st.radio("Your answer: the kernel that made the map", exercise.choices, index=None, key=key,
                 horizontal=True, disabled=done)
    else:
        st.text_input("Your answer", key=key, placeholder=f"for example {exercise.example}", disabled=done,
                      max_chars=200)
    if exercise.tolerance:
        st.caption(exercise.tolerance)


def show_exercise(set_id: str, index: int, exercise: Exercise, heading: str) -> None:
    """The exercise, its answer box and buttons, and the verdict once it has been checked."""
    st.subheader(heading)
    st.markdown(markdown_text(exercise.question))
    _pictures(exercise)
    outcome = session.result(set_id, index)
    key = session.answer_key(set_id, index)
    _answer_box(exercise, key, outcome is not None)
    check, reveal, _ = st.columns([1, 1, 3])
    check.button("Check", key=f"{key}_check", type="primary", disabled=outcome is not None,
                 on_click=session.check, args=(set_id, index, exercise))
    reveal.button("Show answer", key=f"{key}_show", disabled=outcome is not None,
                  on_click=session.show_answer, args=(set_id, index, exercise),
                  help="Shows the answer and the explanation; it counts as a wrong answer.")
    problem = session.problem(set_id, index)
    if problem:
        st.warning(problem, icon=":material/edit:")
    if outcome is None:
        return
    verdict = outcome.verdict
    if outcome.shown:
        st.info(markdown_text(verdict.message) + " (Shown, so it counts as not right.)",
                icon=":material/visibility:")
    elif verdict.correct:
        st.success(markdown_text(verdict.message), icon=":material/check_circle:")
    else:
        st.error(markdown_text(verdict.message), icon=":material/cancel:")
    st.code(verdict.explanation, language=None, wrap_lines=True)
    if exercise.solution_pictures:
        show_pictures(exercise.solution_pictures, 2)
