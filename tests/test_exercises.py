"""Every kind of exercise accepts the answer torch gives and rejects an off-by-one one, over many seeds;
the same seed gives the same exercises; answers are read leniently."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.convolution.kernels import make_kernel
from cnnviz.exercises.answers import parse_choice, parse_count, parse_number, parse_pair
from cnnviz.exercises.check import check_answer, reveal
from cnnviz.exercises.generate import build_exercise, draw_exercise, random_exercise, random_exercises
from cnnviz.exercises.kind_cell import ABSOLUTE_TOLERANCE
from cnnviz.exercises.kind_kernel import load_picture, same_maps
from cnnviz.exercises.model import (
    CELL_VALUE,
    KINDS,
    OUTPUT_SHAPE,
    PARAMETERS,
    POOL_WINNER,
    WHICH_KERNEL,
    SettingError,
)
from cnnviz.exercises.score import Score

SEEDS = st.integers(0, 2**32 - 1)
INDICES = st.integers(0, 50)
EXAMPLES = settings(max_examples=40, deadline=None)


def accepted(exercise, text: str) -> bool:
    return check_answer(exercise, text).correct


def torch_shape(s: dict) -> tuple[int, int]:
    x = torch.zeros(1, 1, s["height"], s["width"])
    if s["pool"]:
        out = F.max_pool2d(x, s["kernel"], s["stride"], s["padding"])
    else:
        out = F.conv2d(
            x, torch.zeros(1, 1, s["kernel"], s["kernel"]), None, s["stride"], s["padding"], s["dilation"]
        )
    return tuple(out.shape[-2:])


@EXAMPLES
@given(SEEDS, INDICES)
def test_output_shape_accepts_torchs_shape_and_rejects_off_by_one(seed, index):
    exercise = draw_exercise(OUTPUT_SHAPE, seed, index)
    height, width = torch_shape(exercise.settings)
    for text in (f"{height}x{width}", f"{height} {width}", f"{height}, {width}", f"({height}, {width})"):
        assert accepted(exercise, text), (exercise.question, text)
    for h, w in ((height + 1, width), (height - 1, width), (height, width + 1), (height, width - 1)):
        verdict = check_answer(exercise, f"{h} x {w}")
        assert not verdict.correct and f"{height} x {width}" in verdict.message
    # the explanation writes the formula with the numbers, and the student's numbers beside it
    assert f"you wrote {height + 1}" in check_answer(exercise, f"{height + 1}x{width}").explanation
    assert "floor((" in exercise.explanation and f"= {height}" in exercise.explanation


@EXAMPLES
@given(SEEDS, INDICES)
def test_which_kernel_accepts_the_kernel_whose_conv2d_is_the_map(seed, index):
    exercise = draw_exercise(WHICH_KERNEL, seed, index)
    image = torch.from_numpy(load_picture(exercise.settings["picture"]))[None]  # (1, 1, H, W)
    shown = torch.from_numpy(exercise.pictures[1].values)
    kernels = {p.title.split(". ", 1)[1]: torch.from_numpy(p.values) for p in exercise.pictures[2:]}
    assert list(kernels) == list(exercise.choices)
    making = [
        name
        for name, kernel in kernels.items()
        if torch.allclose(
            F.conv2d(image, kernel[None, None], padding=exercise.settings["padding"])[0, 0], shown, atol=1e-9
        )
    ]
    assert len(making) == 1  # exactly one right answer
    right = making[0]
    assert accepted(exercise, right) and accepted(exercise, right.upper())
    assert accepted(exercise, str(exercise.choices.index(right) + 1))
    for other in exercise.choices:
        if other != right:
            verdict = check_answer(exercise, other)
            assert not verdict.correct and right in verdict.message


def torch_winner(s: dict) -> tuple[int, int]:
    values = torch.tensor(s["values"], dtype=torch.float64)[None, None]
    _, indices = F.max_pool2d(values, s["window"], s["stride"], s["padding"], return_indices=True)
    flat = int(indices[0, 0, s["row"], s["col"]])
    return divmod(flat, values.shape[-1])


@EXAMPLES
@given(SEEDS, INDICES)
def test_pool_winner_is_max_pool2ds_index(seed, index):
    exercise = draw_exercise(POOL_WINNER, seed, index)
    row, col = torch_winner(exercise.settings)
    assert accepted(exercise, f"{row}, {col}") and accepted(exercise, f"row {row} column {col}")
    for r, c in ((row + 1, col), (row - 1, col), (row, col + 1), (row, col - 1)):
        assert not accepted(exercise, f"{r} {c}")


def test_pool_ties_go_to_the_first_maximum_in_reading_order():
    given_map = [[1, 5, 2, 0], [5, 5, 1, 4], [2, 2, 3, 3], [0, 1, 3, 3]]
    for row, col in ((0, 0), (0, 1), (1, 0), (1, 1)):
        exercise = build_exercise(POOL_WINNER, {"values": given_map, "window": 2, "row": row, "col": col})
        winner = torch_winner(exercise.settings)
        assert exercise.answer == winner
    tied = build_exercise(POOL_WINNER, {"values": given_map, "window": 2, "row": 1, "col": 1})
    assert tied.answer == (2, 2) and "appears 4 times" in tied.explanation
    verdict = check_answer(tied, "3 3")
    assert not verdict.correct and "tie goes to the first" in verdict.message


def torch_parameters(s: dict) -> int:
    if s["layer"] == "conv2d":
        layer = nn.Conv2d(
            s["in_channels"], s["out_channels"], s["kernel"], groups=s.get("groups", 1), bias=s["bias"]
        )
    else:
        layer = nn.Linear(s["in_features"], s["out_features"], bias=s["bias"])
    return sum(p.numel() for p in layer.parameters())


@EXAMPLES
@given(SEEDS, INDICES)
def test_parameters_are_the_real_layers_numel(seed, index):
    exercise = draw_exercise(PARAMETERS, seed, index)
    count = torch_parameters(exercise.settings)
    assert accepted(exercise, str(count)) and accepted(exercise, f"{count:,}")
    assert not accepted(exercise, str(count + 1)) and not accepted(exercise, str(count - 1))


@pytest.mark.parametrize(
    ("settings", "wrong", "hint"),
    [
        ({"layer": "conv2d", "in_channels": 3, "out_channels": 16, "kernel": 3}, 432, "weights alone"),
        (
            {"layer": "conv2d", "in_channels": 3, "out_channels": 16, "kernel": 3},
            433,
            "one number per output",
        ),
        (
            {"layer": "conv2d", "in_channels": 8, "out_channels": 8, "kernel": 3, "groups": 8},
            584,
            "in_channels/groups",
        ),
    ],
)
def test_a_wrong_parameter_count_says_what_was_missed(settings, wrong, hint):
    exercise = build_exercise(PARAMETERS, settings)
    assert exercise.answer == torch_parameters({**exercise.settings})
    verdict = check_answer(exercise, str(wrong))
    assert not verdict.correct and hint in verdict.message, verdict.message


def torch_cell(s: dict) -> float:
    image = torch.tensor(s["input"], dtype=torch.float64)[None, None]
    kernel = torch.tensor(s["kernel"], dtype=torch.float64)[None, None]
    out = F.conv2d(image, kernel, torch.tensor([s["bias"]], dtype=torch.float64), s["stride"], s["padding"])
    return float(out[0, 0, s["row"], s["col"]])


@EXAMPLES
@given(SEEDS, INDICES)
def test_cell_value_is_conv2ds_cell(seed, index):
    exercise = draw_exercise(CELL_VALUE, seed, index)
    value = torch_cell(exercise.settings)
    assert exercise.answer == pytest.approx(value, abs=1e-9)
    assert accepted(exercise, f"{value:g}") and accepted(exercise, f"{value + ABSOLUTE_TOLERANCE / 2}")
    assert not accepted(exercise, f"{value + 1:g}") and not accepted(exercise, f"{value - 1:g}")
    assert not accepted(exercise, f"{value + 2 * ABSOLUTE_TOLERANCE}")


def test_cell_value_explanation_writes_every_product():
    exercise = build_exercise(
        CELL_VALUE,
        {
            "input": [[1, 2, 0], [0, 1, 3], [2, 1, 1]],
            "kernel": [[1, 0], [-1, 2]],
            "bias": 0.5,
            "row": 1,
            "col": 1,
        },
    )
    assert exercise.answer == pytest.approx(torch_cell(exercise.settings))  # 1*1 + 3*0 + 1*(-1) + 1*2 + 0.5
    assert (
        "1×1 + 3×0 + 1×(-1) + 1×2" in exercise.explanation
        and "plus the bias 0.5: 2.5" in exercise.explanation
    )
    verdict = check_answer(exercise, "2")
    assert not verdict.correct and "bias is still to be added" in verdict.message


@settings(max_examples=10, deadline=None)
@given(SEEDS)
def test_the_same_seed_gives_the_same_exercises(seed):
    first = random_exercises(seed, 10)
    assert first == random_exercises(seed, 10)
    assert [e.kind for e in first] == [*KINDS, *KINDS]  # the kinds take turns
    assert random_exercise(seed, 7) == first[7]  # exercise 7 does not depend on having drawn 0 to 6


def test_other_seeds_give_other_exercises():
    questions = {tuple(e.question for e in random_exercises(seed, 5)) for seed in range(6)}
    assert len(questions) == 6


@settings(max_examples=15, deadline=None)
@given(SEEDS, INDICES, st.sampled_from(KINDS))
def test_an_exercise_is_rebuilt_from_its_settings(seed, index, kind):
    exercise = draw_exercise(kind, seed, index)
    assert build_exercise(kind, exercise.settings) == exercise  # a teacher can copy the settings into a set


def test_a_shown_answer_is_wrong_and_the_score_counts_it():
    exercise = random_exercise(3, 0)
    shown = reveal(exercise)
    assert not shown.correct and exercise.answer_text in shown.message
    score = Score()
    score.record(OUTPUT_SHAPE, True)
    score.record(OUTPUT_SHAPE, False)
    score.record(CELL_VALUE, True)
    assert score.total == (2, 3)
    assert score.rows() == [("Predict the output shape", 1, 2), ("What is this cell's value?", 1, 1)]


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("28x28", (28, 28)),
        ("28 x 14", (28, 14)),
        ("28 28", (28, 28)),
        ("28, 28", (28, 28)),
        ("(7, 5)", (7, 5)),
        ("H = 3, W = 4", (3, 4)),
        ("row 2, column 3", (2, 3)),
        ("2;3", (2, 3)),
        ("  12×12 ", (12, 12)),
        ("[0, 1]", (0, 1)),
    ],
)
def test_pairs_are_read_leniently(text, pair):
    assert parse_pair(text) == pair


@pytest.mark.parametrize("text", ["28", "twenty eight", "28x28x3", "2.5 x 3", "", "   ", "x" * 500])
def test_text_that_is_no_pair_gets_one_sentence(text):
    with pytest.raises(ValueError) as caught:
        parse_pair(text)
    message = str(caught.value)
    assert message.endswith(".") and "Traceback" not in message and len(message) < 300


def test_numbers_counts_and_choices_are_read_leniently():
    assert parse_number("-2.5") == -2.5 and parse_number("7/2") == 3.5 and parse_number("−3") == -3
    assert (
        parse_count("1,234") == 1234
        and parse_count("1 234 567") == 1234567
        and parse_count("320 params") == 320
    )
    assert (
        parse_choice("sobel X", ("Sobel x", "Sobel y")) == "Sobel x" and parse_choice("2", ("a", "b")) == "b"
    )
    for bad, parse in (
        ("abc", parse_number),
        ("1/0", parse_number),
        ("nan", parse_number),
        ("12.5", parse_count),
        ("5", lambda t: parse_choice(t, ("a", "b"))),
    ):
        with pytest.raises(ValueError, match=r"\.$"):
            parse(bad)


@pytest.mark.parametrize(
    ("kind", "given", "key", "words"),
    [
        (OUTPUT_SHAPE, {"height": 3, "kernel": 5}, None, "fits nowhere"),
        (OUTPUT_SHAPE, {"height": 28, "kernel": "3"}, "kernel", "whole number"),
        (OUTPUT_SHAPE, {"height": 28, "kernel": 3, "strides": 2}, "strides", "no setting 'strides'"),
        (OUTPUT_SHAPE, {"kernel": 3}, None, "needs 'height'"),
        (
            PARAMETERS,
            {"layer": "conv2d", "in_channels": 3, "out_channels": 8, "kernel": 3, "groups": 2},
            "groups",
            "must divide",
        ),
        (
            PARAMETERS,
            {"layer": "linear", "in_features": 3, "out_features": 8, "kernel": 3},
            "kernel",
            "has no",
        ),
        (POOL_WINNER, {"values": [[1, 2], [3, 4]], "window": 2, "row": 1}, "row", "does not exist"),
        (POOL_WINNER, {"values": [[1, 2], [3]]}, "values", "same number of values"),
        (CELL_VALUE, {"input": [[1, 2], [3, 4]], "kernel": [[1, 0, 0]]}, None, "fits nowhere"),
        (
            WHICH_KERNEL,
            {"picture": "X 7x7", "kernel": "Sobel x", "choices": ["Sobel y", "Laplacian"]},
            "choices",
            "must include",
        ),
        (WHICH_KERNEL, {"picture": "mnist 99999", "kernel": "Sobel x"}, "picture", "no bundled MNIST image"),
    ],
)
def test_impossible_settings_name_the_setting(kind, given, key, words):
    with pytest.raises(SettingError) as caught:
        build_exercise(kind, given)
    assert caught.value.key == key and words in str(caught.value), str(caught.value)


def test_kernels_that_make_the_same_map_would_be_two_answers():
    image = load_picture("X 7x7")
    blank = np.zeros((1, 7, 7))
    maps = {
        name: F.conv2d(
            torch.from_numpy(picture)[None], torch.from_numpy(make_kernel(name, 3, 3))[None, None]
        )[0, 0].numpy()
        for name, picture in (("Sobel x", image), ("Laplacian", image))
    }
    assert same_maps(maps) is None
    blank_maps = {
        name: F.conv2d(torch.from_numpy(blank)[None], torch.from_numpy(make_kernel(name, 3, 3))[None, None])[
            0, 0
        ].numpy()
        for name in ("Sobel x", "Sobel y", "Laplacian")
    }
    assert same_maps(blank_maps) == ("Sobel x", "Sobel y")  # on a blank picture every map is 0


def test_a_square_shape_is_explained_once_and_wrong_sizes_get_a_hint():
    square = build_exercise(OUTPUT_SHAPE, {"height": 28, "kernel": 5, "stride": 2, "padding": 2})
    assert square.answer == torch_shape(square.settings) == (14, 14)
    assert square.explanation.count("floor((28 + 2*2") == 1 and "height and width:" in square.explanation
    assert "The padding counts too" in check_answer(square, "12x12").explanation  # (28 - 5) // 2 + 1
    assert "round it down" in check_answer(square, "15x15").explanation  # 27/2 + 1 = 14.5 rounded up
    wide = build_exercise(OUTPUT_SHAPE, {"height": 28, "width": 20, "kernel": 3})
    verdict = check_answer(wide, "28 x 18")
    assert (
        "height: you wrote 28, but" in verdict.explanation
        and "That is the input's height" in verdict.explanation
    )
    assert "width: you wrote 18, right" in verdict.explanation


def test_a_padded_input_shows_where_the_input_is():
    exercise = build_exercise(
        CELL_VALUE, {"input": [[1, 2], [3, 4]], "kernel": [[1, 1], [1, 1]], "padding": 1}
    )
    picture = exercise.pictures[0]
    assert picture.values.shape == (4, 4) and picture.frame == ((1, 1), (2, 2))
    assert picture.values[1:3, 1:3].tolist() == [[1, 2], [3, 4]] and picture.values.sum() == 10
    assert exercise.answer == torch_cell(exercise.settings) == 1.0  # the top-left window holds only the 1
