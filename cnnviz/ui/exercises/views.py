"""One exercise on the page: its question and maps, the answer box, Check / Show answer, and the verdict
with the explanation once checked."""

from __future__ import annotations

import streamlit as st

from cnnviz import pages
from cnnviz.exercises.model import WHICH_KERNEL, Exercise, Picture
from cnnviz.ui.exercises import session
from cnnviz.ui.exercises.figures import figure_size, grid_figure
from cnnviz.ui.widgets import markdown_text

CHART = {"config": {"displayModeBar": False}}


def show_pictures(pictures: tuple[Picture, ...]) -> None:
    """The maps side by side, each at its own size, wrapping onto the next line where the page is narrow
    (the four kernels of a which-kernel exercise: one row at 1400 px, two at 800)."""
    with st.container(horizontal=True, wrap=True, gap="medium"):
        for picture in pictures:
            st.plotly_chart(grid_figure(picture), width=figure_size(picture)[0], **CHART)


def _pictures(exercise: Exercise) -> None:
    if exercise.kind == WHICH_KERNEL:
        show_pictures(exercise.pictures[:2])  # the input and its map, then the kernels on their own line
        show_pictures(exercise.pictures[2:])
    elif exercise.pictures:
        show_pictures(exercise.pictures)


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
    buttons = st.container(horizontal=True)
    buttons.button("Check", key=key + pages.CHECK_SUFFIX, type="primary", disabled=outcome is not None,
                     on_click=session.check, args=(set_id, index, exercise))
    buttons.button("Show answer", key=key + pages.SHOW_ANSWER_SUFFIX, disabled=outcome is not None,
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
        show_pictures(exercise.solution_pictures)
