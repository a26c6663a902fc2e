"""Exercises: test yourself on what the Convolution page shows; every answer is checked and explained."""

import os

import streamlit as st

from cnnviz import pages
from cnnviz.exercises.generate import DEFAULT_SEED, MAX_SEED, random_exercise
from cnnviz.exercises.model import KIND_TITLES, KINDS
from cnnviz.exercises.teacher_sets import EXERCISES_DIR_ENV, SetProblem, TeacherSet, teacher_sets_dir
from cnnviz.ui.exercises import session
from cnnviz.ui.exercises.cache import teacher_sets
from cnnviz.ui.exercises.views import show_exercise
from cnnviz.ui.widgets import kept, markdown_text

RANDOM_PRACTICE = "Random practice"

st.title("Exercises")
st.markdown(
    "Work it out, type your answer, press **Check**: you see at once whether it is right, and how the "
    "answer comes about, with the numbers. Rows and columns count from 0, as in PyTorch."
)

folder = teacher_sets_dir(os.environ)
found = teacher_sets(folder) if folder is not None else []
problems = [markdown_text(str(entry)) for entry in found if isinstance(entry, SetProblem)]
if len(problems) == 1:
    st.warning(f"This exercise set cannot be offered: {problems[0]}", icon=":material/error:")
elif problems:  # one box for them all: the exercise stays near the top of a student's screen
    listed = "\n".join(f"- {problem}" for problem in problems)
    st.warning(f"{len(problems)} exercise sets cannot be offered:\n\n{listed}", icon=":material/error:")
sets: dict[str, TeacherSet] = {}
for entry in found:
    if not isinstance(entry, SetProblem):  # two files with one title are told apart by their names
        taken = entry.title in sets or entry.title == RANDOM_PRACTICE
        sets[f"{entry.title} ({entry.path.name})" if taken else entry.title] = entry
choice = st.selectbox("Exercise set", [RANDOM_PRACTICE, *sets], key=kept(pages.EXERCISE_SET_KEY))

if choice == RANDOM_PRACTICE:
    seed_column, kinds_column = st.columns([1, 3])
    # defaults through the state: kept() sets it too
    st.session_state.setdefault(pages.EXERCISE_SEED_KEY, DEFAULT_SEED)
    st.session_state.setdefault(pages.EXERCISE_KINDS_KEY, list(KINDS))
    seed = seed_column.number_input("Seed", 0, MAX_SEED, step=1, key=kept(pages.EXERCISE_SEED_KEY),
                                    help="The same seed gives everyone the same exercises: a teacher can "
                                         "give the class one.")
    kinds = kinds_column.multiselect("Kinds", KINDS, format_func=KIND_TITLES.get,
                                     key=kept(pages.EXERCISE_KINDS_KEY))
    if not kinds:
        st.caption("No kind picked: all five take turns.")
    # the kinds in one fixed order, not the order they were clicked: one seed, one list for the class
    kinds = [kind for kind in KINDS if kind in kinds] or list(KINDS)
    set_id = f"random:{seed}:{','.join(kinds)}"
    index = session.position(set_id)
    exercise = random_exercise(int(seed), index, tuple(kinds))
    heading = f"Exercise {index + 1}: {exercise.title}"
    last = False
else:
    chosen = sets[choice]
    if chosen.description:
        st.caption(markdown_text(chosen.description))
    set_id = session.teacher_set_id(chosen)
    index = min(session.position(set_id), len(chosen.exercises) - 1)
    exercise = chosen.exercises[index]
    heading = f"Exercise {index + 1} of {len(chosen.exercises)}: {exercise.title}"
    last = index == len(chosen.exercises) - 1

show_exercise(set_id, index, exercise, heading)
if not last:
    st.button("Next exercise", key=pages.EXERCISE_NEXT_KEY, on_click=session.move_to,
              args=(set_id, index + 1))
else:
    st.button("Start the set again", key="ex_again", on_click=session.start_again, args=(set_id,),
              help="Your answers are cleared so you can try each exercise again; the score keeps your "
                   "first tries.")

st.subheader("Your score")
right, tried = session.score().total
if not tried:
    st.caption("Nothing checked yet. Each exercise counts once, at its first Check; a shown answer counts "
               "as wrong.")
else:
    st.markdown(f"**{right} of {tried} {pages.SCORE_TEXT}.")
    st.table({"Kind": [r[0] for r in session.score().rows()], "Right": [r[1] for r in session.score().rows()],
              "Tried": [r[2] for r in session.score().rows()]})
if folder is None:
    st.caption(f"Teachers: put exercise sets (TOML files) in a folder and point {EXERCISES_DIR_ENV} at it; "
               "see the README.")
