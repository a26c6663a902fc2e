"""A teacher's TOML sets: fixed and random exercises in file order, answers always computed, and each kind
of malformed file reported with the file and the right line, while the other files still load."""

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cnnviz.exercises.check import check_answer
from cnnviz.exercises.generate import draw_exercise
from cnnviz.exercises.model import OUTPUT_SHAPE, PARAMETERS, POOL_WINNER
from cnnviz.exercises.teacher_sets import (
    EXERCISES_DIR_ENV,
    SetProblem,
    TeacherSet,
    TeacherSetError,
    load_teacher_set,
    load_teacher_sets,
    parse_teacher_set,
    teacher_sets_dir,
)
from tests.conftest import REPO

GOOD = """\
title = "Week 3"
description = "Sizes first."

[[exercise]]
kind = "output_shape"
height = 28
kernel = 5
padding = 2

[[random]]
kind = "pool_winner"
count = 2
seed = 11

[[exercise]]
kind = "parameters"
layer = "conv2d"
in_channels = 3
out_channels = 16
kernel = 3
"""
MARK = "# <- here"


def marked_line(text: str) -> int:
    """The 1-based line holding the marker comment."""
    return next(number for number, line in enumerate(text.splitlines(), 1) if MARK in line)


def problem_of(text: str, name: str = "set.toml") -> SetProblem:
    with pytest.raises(TeacherSetError) as caught:
        parse_teacher_set(text, Path(name))
    return caught.value.problem


def test_a_set_keeps_the_files_order_and_computes_every_answer():
    loaded = parse_teacher_set(GOOD, Path("week3.toml"))
    assert (loaded.title, loaded.description) == ("Week 3", "Sizes first.")
    assert [e.kind for e in loaded.exercises] == [OUTPUT_SHAPE, POOL_WINNER, POOL_WINNER, PARAMETERS]
    out = F.conv2d(torch.zeros(1, 1, 28, 28), torch.zeros(1, 1, 5, 5), padding=2)
    assert loaded.exercises[0].answer == tuple(out.shape[-2:])
    assert list(loaded.exercises[1:3]) == [
        draw_exercise(POOL_WINNER, 11, i) for i in range(2)
    ]  # the seed's own
    assert loaded.exercises[3].answer == sum(p.numel() for p in torch.nn.Conv2d(3, 16, 3).parameters())
    assert check_answer(loaded.exercises[0], "28 x 28").correct


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('title = "x"\n[[exercise]]\nkind = "output_shape"\nheight = 28 28  # <- here\n', "not valid TOML"),
        ('title = "x"\n[[exercise]]\nkind = output_shape  # <- here\nheight = 2\n', "not valid TOML"),
        (
            'title = "x"\n[[exercise]]\nkind = "output_size"  # <- here\nheight = 5\n',
            "Unknown kind 'output_size'",
        ),
        ('title = "x"\n[[exercise]]  # <- here\nkind = "output_shape"\nkernel = 3\n', "needs 'height'"),
        (
            'title = "x"\n[[exercise]]\nkind = "output_shape"\nheight = 28\nkernel = "3"  # <- here\n',
            "whole number",
        ),
        (
            'title = "x"\n[[exercise]]\nkind = "output_shape"\nheight = 28\nkernel = 3\n\n'
            '[[exercise]]  # <- here\nkind = "output_shape"\nheight = 2\nkernel = 5\n',
            "fits nowhere",
        ),
        (
            'title = "x"\n[[exercise]]\nkind = "pool_winner"\nvalues = [\n  [1, 2],\n  [3, 4],\n]\n'
            "row = 3  # <- here\n",
            "does not exist",
        ),
        (
            'title = "x"\n[[exercise]]\nkind = "cell_value"\ninput = [[1, 2], [3, 4]]\nkernel = [[1]]\n'
            "answer = 4  # <- here\n",
            "Leave 'answer' out",
        ),
        (
            'title = "x"\n[[exercise]]\nkind = "parameters"\nlayer = "conv2d"\nin_channels = 3\n'
            "out_channels = 8\nkernel = 3\ngroups = 2  # <- here\n",
            "must divide",
        ),
        ('title = "x"\n[[random]]\nkind = "cell_value"\ncount = 0  # <- here\nseed = 1\n', "'count'"),
        ('title = "x"\n[[random]]\nkind = "cell_value"\ncount = 2\nseed = -1  # <- here\n', "'seed'"),
        ('title = "x"\n[[random]]  # <- here\nkind = "cell_value"\ncount = 2\n', "needs 'seed'"),
        (
            'title = "x"\nshuffle = true  # <- here\n[[random]]\nkind = "cell_value"\ncount = 2\nseed = 1\n',
            "'shuffle' is none of them",
        ),
        ('title = "x"\n[exercise]  # <- here\nkind = "cell_value"\n', "[[exercise]] table (two brackets)"),
        (
            'description = "no title"  # <- here\n[[random]]\nkind = "cell_value"\ncount = 2\nseed = 1\n',
            "needs a title",
        ),
    ],
)
def test_each_malformed_file_names_its_line(text, words):
    problem = problem_of(text, "week9.toml")
    assert problem.line == marked_line(text), (problem, text)
    assert words in problem.message, problem.message
    assert str(problem).startswith(f"week9.toml, line {problem.line}: ")


def test_a_key_inside_a_later_table_is_found_in_that_table():
    text = (
        GOOD
        + '\n[[exercise]]\nkind = "parameters"\nlayer = "linear"\nin_features = 10\nout_features = 2\n'
        + "kernel = 3  # <- here\n"
    )
    problem = problem_of(text)
    assert problem.line == marked_line(text) and "has no 'kernel'" in problem.message


def test_a_set_without_exercises_or_text_is_refused(tmp_path):
    assert "no exercises" in problem_of('title = "empty"\n').message
    binary = tmp_path / "photo.toml"
    binary.write_bytes(b"\xff\xfe\x00title")
    with pytest.raises(TeacherSetError, match="photo.toml: The file is not UTF-8 text"):
        load_teacher_set(binary)


def test_a_folder_offers_the_good_sets_and_reports_the_bad_one(tmp_path):
    (tmp_path / "a_week3.toml").write_text(GOOD)
    (tmp_path / "b_broken.toml").write_text(
        'title = "Broken"\n[[exercise]]\nkind = "pool_winner"\nwindow = 2\n'
    )
    (tmp_path / "c_more.toml").write_text(GOOD.replace("Week 3", "Week 4"))
    (tmp_path / "notes.txt").write_text("not a set")
    found = load_teacher_sets(tmp_path)
    assert [type(f) for f in found] == [TeacherSet, SetProblem, TeacherSet]
    assert [f.title for f in found if isinstance(f, TeacherSet)] == ["Week 3", "Week 4"]
    assert str(found[1]) == "b_broken.toml, line 2: A pool_winner exercise needs 'values'."
    assert "does not exist" in str(load_teacher_sets(tmp_path / "missing")[0])


def test_the_folder_comes_from_the_environment(tmp_path):
    assert teacher_sets_dir({}) is None and teacher_sets_dir({EXERCISES_DIR_ENV: " "}) is None
    assert teacher_sets_dir({EXERCISES_DIR_ENV: str(tmp_path)}) == tmp_path


def test_the_readme_example_set_loads(tmp_path):
    readme = (REPO / "README.md").read_text()
    example = re.search(r"```toml\n(title = .*?)```", readme, re.S)
    assert example, "the README's teacher part shows a complete example set"
    loaded = parse_teacher_set(example.group(1), Path("week3.toml"))
    kinds = {e.kind for e in loaded.exercises}
    assert len(kinds) == 5 and len(loaded.exercises) >= 5


def test_a_misspelt_setting_is_named_with_the_kinds_settings():
    text = 'title = "Week 3"\n\n[[exercise]]\nkind = "output_shape"\nheight = 28\nkernal = 3\n'
    with pytest.raises(TeacherSetError) as caught:
        parse_teacher_set(text, Path("week3.toml"))
    assert str(caught.value) == (
        "week3.toml, line 6: An exercise of kind output_shape has no setting 'kernal' (a typo?); "
        "its settings are height, width, kernel, stride, padding, dilation, pool.")
