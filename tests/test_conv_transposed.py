"""Transposed convolution, both ways (stretch-pad-slide and scatter), against torch's conv_transpose2d;
its size arithmetic; its link to the gradient of a strided convolution; the conv-size command."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz.convolution.transposed import (
    INPUT,
    INSERTED,
    PADDING,
    autograd_input_gradient,
    conv2d_input_gradient,
    gradient_output_padding,
    scatter_contributions,
    transposed_steps,
)
from cnnviz.convolution.transposed_sizes import transposed_output_shape
from tests.test_cli import cli

pairs = st.tuples


@st.composite
def transposed_settings(draw) -> dict:
    """Sizes 1..6, kernel 1..4, stride 1..3, padding 0..3, dilation 1..2, output_padding 0..2 per axis;
    1..3 input channels and 1..3 kernels. Some are impossible: torch raises there, and so must we."""
    return {
        "channels": draw(st.integers(1, 3)),
        "kernels": draw(st.integers(1, 3)),
        "size": draw(pairs(st.integers(1, 6), st.integers(1, 6))),
        "kernel": draw(pairs(st.integers(1, 4), st.integers(1, 4))),
        "stride": draw(pairs(st.integers(1, 3), st.integers(1, 3))),
        "padding": draw(pairs(st.integers(0, 3), st.integers(0, 3))),
        "output_padding": draw(pairs(st.integers(0, 2), st.integers(0, 2))),
        "dilation": draw(pairs(st.integers(1, 2), st.integers(1, 2))),
        "seed": draw(st.integers(0, 2**16)),
    }


def _tensors(s: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(s["seed"])
    image = rng.normal(size=(s["channels"], *s["size"]))
    weight = rng.normal(size=(s["channels"], s["kernels"], *s["kernel"]))  # conv_transpose2d layout
    bias = rng.normal(size=s["kernels"])
    return image, weight, bias


def _torch(image, weight, bias, s: dict) -> np.ndarray:
    return F.conv_transpose2d(
        torch.from_numpy(image)[None], torch.from_numpy(weight), torch.from_numpy(bias),
        stride=s["stride"], padding=s["padding"], output_padding=s["output_padding"], dilation=s["dilation"],
    )[0].numpy()


def _args(s: dict) -> tuple:
    return s["stride"], s["padding"], s["output_padding"], s["dilation"]


@settings(max_examples=250, deadline=None)
@given(transposed_settings())
def test_both_views_equal_conv_transpose2d_and_refuse_exactly_what_torch_refuses(s):
    image, weight, bias = _tensors(s)
    try:
        expected = _torch(image, weight, bias, s)
    except RuntimeError:
        expected = None
    if expected is None:
        for compute in (transposed_steps, scatter_contributions):
            with pytest.raises(ValueError):
                compute(image, weight, bias, *_args(s))
        with pytest.raises(ValueError):
            transposed_output_shape(*s["size"], s["kernel"], *_args(s))
        return
    steps = transposed_steps(image, weight, bias, *_args(s))
    scatter = scatter_contributions(image, weight, bias, *_args(s))
    for row, col in scatter.cropped_cells():  # a cell whose paste the padding crops adds nothing
        assert not scatter.contributions[:, row, col].any()
    assert steps.output.shape == expected.shape
    np.testing.assert_allclose(steps.output, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(scatter.output, expected, rtol=0, atol=1e-9)
    height, width = transposed_output_shape(*s["size"], s["kernel"], *_args(s))
    assert (height.output, width.output) == expected.shape[1:]
    assert height.formula.endswith(f"= {expected.shape[1]}")
    assert width.formula.endswith(f"= {expected.shape[2]}")


@settings(max_examples=120, deadline=None)
@given(transposed_settings())
def test_the_stretched_input_holds_each_input_cell_once_between_inserted_zeros_and_padding(s):
    image, weight, bias = _tensors(s)
    try:
        steps = transposed_steps(image, weight, bias, *_args(s))
    except ValueError:
        return
    padded = steps.steps.padded  # (C, Hp, Wp)
    seen = set()
    for row, col in np.ndindex(*steps.kinds.shape):
        source = steps.source(row, col)
        if source is None:
            assert steps.kinds[row, col] in (INSERTED, PADDING)
            assert not padded[:, row, col].any()
        else:
            np.testing.assert_array_equal(padded[:, row, col], image[:, source[0], source[1]])
            seen.add(source)
    height, width = steps.sizes
    assert len(seen) == steps.count(INPUT)  # no input cell appears twice
    # without cropping every input cell is there, with (s - 1) zeros between neighbours
    if height.before >= 0 and height.after >= 0 and width.before >= 0 and width.after >= 0:
        rows, cols = s["size"]
        assert steps.count(INPUT) == rows * cols
        stretched = height.stretched * width.stretched
        assert steps.count(INSERTED) == stretched - rows * cols
    # the kernels the window slides are the transposed weight turned 180 degrees
    np.testing.assert_array_equal(steps.flipped, np.flip(weight, axis=(2, 3)).transpose(1, 0, 2, 3))


def test_the_scatter_view_pastes_value_times_kernel_at_i_s_minus_p():
    image = np.arange(1.0, 7.0).reshape(1, 2, 3)
    weight = np.array([[1.0, 2.0], [3.0, 4.0]])[None, None]
    scatter = scatter_contributions(image, weight, stride=(2, 3), padding=(0, 1))
    for i, j in np.ndindex(2, 3):
        rows, cols = scatter.footprint(i, j)
        assert list(rows) == [2 * i, 2 * i + 1] and list(cols) == [3 * j - 1, 3 * j]
        pasted = scatter.contributions[0, i, j, 0]
        for a, b in np.ndindex(2, 2):
            if 0 <= cols[b] < pasted.shape[1]:
                assert pasted[rows[a], cols[b]] == image[0, i, j] * weight[0, 0, a, b]
        inside = int(((cols >= 0) & (cols < pasted.shape[1])).sum())
        assert inside == (1 if j in (0, 2) else 2)  # the padding crops column -1 and column 6 away
        assert np.count_nonzero(pasted) == 2 * inside
    assert scatter.cropped_cells() == []
    np.testing.assert_allclose(scatter.running_total(6)[0], scatter.output[0])
    np.testing.assert_allclose(scatter.running_total(1)[0], scatter.contributions[0, 0, 0, 0])
    # padding 3 > d(k - 1) = 2 crops input rows 0 and 2 away: their pastes land on rows -3..-1 and 1..3
    cropped = scatter_contributions(np.ones((1, 3, 3)), np.ones((1, 1, 3, 3)), stride=2, padding=(3, 0))
    assert cropped.output.shape == (1, 1, 7)
    assert cropped.cropped_cells() == [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (2, 2)]


@settings(max_examples=60, deadline=None)
@given(
    channels=st.integers(1, 3), kernels=st.integers(1, 3),
    size=pairs(st.integers(1, 9), st.integers(1, 9)), kernel=pairs(st.integers(1, 4), st.integers(1, 4)),
    stride=pairs(st.integers(1, 3), st.integers(1, 3)), padding=pairs(st.integers(0, 2), st.integers(0, 2)),
    dilation=pairs(st.integers(1, 2), st.integers(1, 2)), seed=st.integers(0, 2**16),
)
def test_transposed_convolution_of_the_upstream_gradient_is_autograd_of_a_strided_conv2d(
    channels, kernels, size, kernel, stride, padding, dilation, seed
):
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(kernels, channels, *kernel))  # conv2d layout
    x = torch.zeros((1, channels, *size), dtype=torch.float64, requires_grad=True)
    try:
        out = F.conv2d(x, torch.from_numpy(weight), stride=stride, padding=padding, dilation=dilation)
    except RuntimeError:
        return  # the kernel does not fit this input: no convolution, no gradient
    upstream = rng.normal(size=tuple(out.shape[1:]))
    (expected,) = torch.autograd.grad(out, x, grad_outputs=torch.from_numpy(upstream)[None])
    ours = conv2d_input_gradient(upstream, weight, size, stride, padding, dilation)
    np.testing.assert_allclose(ours, expected[0].numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        autograd_input_gradient(upstream, weight, size, stride, padding, dilation), expected[0].numpy()
    )
    for n, k, s, p, d in zip(size, kernel, stride, padding, dilation, strict=True):
        assert 0 <= gradient_output_padding(n, k, s, p, d) < s


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"stride": 2, "output_padding": 2}, "must be smaller than the stride (2) or the dilation (1)"),
        ({"padding": 3}, "would come out -2 cells"),
        ({"padding": -1}, "at least 0"),
        ({"stride": 0}, "at least 1"),
    ],
)
def test_impossible_settings_get_one_sentence_where_torch_raises(settings, message):
    image, weight = np.ones((1, 2, 2)), np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError, match=re.escape(message)):
        transposed_steps(image, weight, **settings)
    with pytest.raises(RuntimeError):
        F.conv_transpose2d(torch.from_numpy(image)[None], torch.from_numpy(weight), **settings)


def test_wrong_layouts_are_explained():
    with pytest.raises(ValueError, match="laid out for 2"):
        transposed_steps(np.ones((1, 3, 3)), np.ones((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="1 output maps but 2 bias"):
        scatter_contributions(np.ones((1, 3, 3)), np.ones((1, 1, 3, 3)), bias=[1.0, 2.0])


def test_conv_size_transposed_prints_the_formula_with_the_numbers(capsys):
    result = cli(capsys, "conv-size", "--input", "4", "--input-width", "3", "--kernel", "3", "--stride", "2",
                 "--padding", "1", "--output-padding", "1", "--transposed")
    assert result.returncode == 0, result.stderr
    expected = F.conv_transpose2d(torch.ones(1, 1, 4, 3), torch.ones(1, 1, 3, 3), stride=2, padding=1,
                                  output_padding=1).shape[2:]
    assert result.stdout.startswith(f"transposed convolution output: {expected[0]} x {expected[1]}")
    assert "(4 - 1)*2 - 2*1 + 1*(3 - 1) + 1 + 1 = 8" in result.stdout
    assert "(3 - 1)*2 - 2*1 + 1*(3 - 1) + 1 + 1 = 6" in result.stdout


def test_conv_size_transposed_refuses_what_torch_refuses_in_one_sentence(capsys):
    result = cli(capsys, "conv-size", "--input", "3", "--kernel", "3", "--stride", "2",
                 "--output-padding", "2", "--transposed")
    assert result.returncode == 2
    assert result.stderr.startswith("error: The output padding (2)") and "Traceback" not in result.stderr
