"""The teacher's sets, read once per change of the folder (a file added, edited or removed)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cnnviz.exercises.teacher_sets import SetProblem, TeacherSet, load_teacher_sets


@st.cache_resource(show_spinner=False, max_entries=4)
def _loaded(folder: str, stamp: tuple) -> list[TeacherSet | SetProblem]:
    return load_teacher_sets(Path(folder))


def teacher_sets(folder: Path) -> list[TeacherSet | SetProblem]:
    """The sets of ``folder``, read again when any ``*.toml`` in it changes (name, size or time)."""
    try:
        stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.toml")))
    except OSError:
        stamp = ()
    return _loaded(str(folder), stamp)
