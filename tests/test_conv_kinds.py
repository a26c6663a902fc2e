"""Grouped, depthwise and 1x1 convolution, true (flipped) convolution and per-axis stride and padding,
every number checked against PyTorch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.convolution.arithmetic import output_shape
from cnnviz.convolution.channels import (
    ConvParameters,
    conv_parameters,
    divisors,
    group_mask,
    separable_parameters,
)
from cnnviz.convolution.kernels import binary_picture
from cnnviz.convolution.scene import ConvSettings
from cnnviz.convolution.steps import convolve_steps, flip_kernels
from tests.conftest import REPO


@st.composite
def grouped_settings(draw):
    groups = draw(st.integers(1, 4))
    per_group, kernels_per_group = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 10))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    image = rng.normal(size=(groups * per_group, h, w))
    weight = rng.normal(size=(groups * kernels_per_group, per_group, kh, kw))
    bias = rng.normal(size=groups * kernels_per_group)
    return image, weight, bias, (sh, sw), (ph, pw), (dh, dw), groups


def _torch_conv(image, weight, bias, stride, padding, dilation, groups=1) -> np.ndarray:
    return F.conv2d(torch.from_numpy(image)[None], torch.from_numpy(np.ascontiguousarray(weight)),
                    None if bias is None else torch.from_numpy(bias), stride=stride, padding=padding,
                    dilation=dilation, groups=groups)[0].numpy()


@settings(max_examples=120, deadline=None)
@given(grouped_settings(), st.data())
def test_grouped_steps_equal_torch_and_each_step_holds_only_its_groups_channels(setting, data):
    image, weight, bias, stride, padding, dilation, groups = setting
    steps = convolve_steps(image, weight, bias, stride, padding, dilation, groups)
    expected = _torch_conv(image, weight, bias, stride, padding, dilation, groups)
    assert steps.output.shape == expected.shape
    np.testing.assert_allclose(steps.output, expected, rtol=1e-9, atol=1e-9)
    assert (steps.sizes[0].output, steps.sizes[1].output) == expected.shape[1:]
    # one step: the window over the group's channels only, and the products torch would sum
    k = data.draw(st.integers(0, weight.shape[0] - 1))
    row = data.draw(st.integers(0, steps.output_size[0] - 1))
    col = data.draw(st.integers(0, steps.output_size[1] - 1))
    step = steps.step(k, row, col)
    per_group = image.shape[0] // groups
    group = k // (weight.shape[0] // groups)
    channels = list(range(group * per_group, (group + 1) * per_group))
    assert list(steps.input_channels(k)) == channels
    padded = np.pad(image, ((0, 0), (padding[0],) * 2, (padding[1],) * 2))
    np.testing.assert_array_equal(step.inputs, padded[channels][:, step.rows][:, :, step.cols])
    np.testing.assert_allclose(step.products, step.inputs * weight[k])
    assert step.value == pytest.approx(float(expected[k, row, col]), abs=1e-9)


def test_groups_that_do_not_divide_are_refused_with_a_reason():
    image = np.zeros((4, 5, 5))
    with pytest.raises(ValueError, match="3 groups cannot split 4 input channels"):
        convolve_steps(image, np.zeros((3, 1, 3, 3)), groups=3)
    with pytest.raises(ValueError, match="2 groups cannot split 3 kernels"):
        convolve_steps(image, np.zeros((3, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match="each kernel sees 4/2 = 2 input channel"):
        convolve_steps(image, np.zeros((2, 4, 3, 3)), groups=2)
    with pytest.raises(ValueError, match="at least 1"):
        convolve_steps(image, np.zeros((2, 4, 3, 3)), groups=0)
    # torch refuses the same settings
    with pytest.raises(RuntimeError):
        F.conv2d(torch.zeros(1, 4, 5, 5), torch.zeros(3, 1, 3, 3), groups=3)


def test_group_mask_is_which_channels_each_torch_kernel_reads():
    # a kernel reads channel c exactly when changing channel c changes that kernel's output
    for channels, kernels in ((4, 4), (4, 8), (3, 3), (6, 2)):
        for groups in divisors(np.gcd(channels, kernels)):
            mask = group_mask(channels, kernels, groups)
            weight = torch.ones(kernels, channels // groups, 1, 1, dtype=torch.float64)
            for c in range(channels):
                x = torch.zeros(1, channels, 2, 2, dtype=torch.float64)
                x[0, c] = 1.0
                reads = F.conv2d(x, weight, groups=groups)[0, :, 0, 0] != 0
                assert reads.tolist() == mask[:, c].tolist()
    assert divisors(4) == [1, 2, 4] and divisors(3) == [1, 3]


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5),
       st.booleans())
def test_parameter_counts_equal_torch_numel(groups, per_group, kernels_per_group, kh, kw, bias):
    channels, kernels = groups * per_group, groups * kernels_per_group
    layer, ordinary = conv_parameters(channels, kernels, (kh, kw), groups, bias)
    grouped_torch = nn.Conv2d(channels, kernels, (kh, kw), groups=groups, bias=bias)
    plain_torch = nn.Conv2d(channels, kernels, (kh, kw), bias=bias)
    assert layer.total == sum(p.numel() for p in grouped_torch.parameters())
    assert ordinary.total == sum(p.numel() for p in plain_torch.parameters())
    assert layer.weights == grouped_torch.weight.numel() and ordinary.groups == 1
    # multiply-adds of one output cell: the products behind one value of convolve_steps
    weight = grouped_torch.weight.detach().double().numpy()
    steps = convolve_steps(np.ones((channels, kh + 1, kw + 1)), weight, None, 1, 0, 1, groups)
    assert layer.mult_adds_per_cell == steps.step(0, 0, 0).products.size
    assert str(layer.total if bias else layer.weights) in layer.formula


def test_depthwise_separable_counts_and_maps_equal_torch():
    channels, kernels = 4, 8
    counts = separable_parameters(channels, kernels, 3)
    depthwise = nn.Conv2d(channels, channels, 3, groups=channels)
    pointwise = nn.Conv2d(channels, kernels, 1)
    assert counts.depthwise.total == sum(p.numel() for p in depthwise.parameters()) == 40
    assert counts.pointwise.total == sum(p.numel() for p in pointwise.parameters()) == 40
    ordinary = nn.Conv2d(channels, kernels, 3)
    assert counts.ordinary.total == sum(p.numel() for p in ordinary.parameters()) == 296
    assert counts.mult_adds_per_pixel == 4 * 9 + 8 * 4
    assert counts.ordinary_mult_adds_per_pixel == 8 * 36
    rng = np.random.default_rng(3)
    image = rng.normal(size=(channels, 9, 9))
    dw_w, pw_w = rng.normal(size=(channels, 1, 3, 3)), rng.normal(size=(kernels, channels, 1, 1))
    first = convolve_steps(image, dw_w, None, 1, 1, 1, groups=channels)
    second = convolve_steps(first.output, pw_w)
    expected = F.conv2d(F.conv2d(torch.from_numpy(image)[None], torch.from_numpy(dw_w), padding=1,
                                 groups=channels), torch.from_numpy(pw_w))[0].numpy()
    np.testing.assert_allclose(second.output, expected, rtol=1e-9, atol=1e-9)


def _true_convolution(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The definition, written apart from the library: y[i, j] = sum over m, n of x[i - m, j - n] k[m, n],
    for the outputs where the whole kernel lies on the image ("valid"), indexed from the top-left one."""
    kh, kw = kernel.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            ci, cj = i + kh - 1, j + kw - 1  # full-convolution index of this output
            out[i, j] = sum(image[ci - m, cj - n] * kernel[m, n] for m in range(kh) for n in range(kw))
    return out


@settings(max_examples=80, deadline=None)
@given(grouped_settings())
def test_flipped_settings_equal_torch_with_the_flipped_weight(setting):
    image, weight, bias, stride, padding, dilation, groups = setting
    flip = ConvSettings(weight.shape[2], weight.shape[3], stride, padding, 1, ("custom",),
                        custom="\n".join(" ".join(f"{v:.6f}" for v in row) for row in weight[0, 0]),
                        bias=float(bias[0]), flip=True)
    steps = flip.convolve(image[:1])
    written = flip.weight(1)
    np.testing.assert_array_equal(steps.weight, written[:, :, ::-1, ::-1])  # the steps show the flipped one
    expected = _torch_conv(image[:1], torch.flip(torch.from_numpy(written), (2, 3)).numpy(),
                           np.array([float(bias[0])]), stride, padding, 1)
    np.testing.assert_allclose(steps.output, expected, rtol=1e-9, atol=1e-9)
    # flipping a grouped bank kernel by kernel is what torch.flip does to the whole weight
    np.testing.assert_allclose(
        convolve_steps(image, flip_kernels(weight), bias, stride, padding, dilation, groups).output,
        _torch_conv(image, torch.flip(torch.from_numpy(weight), (2, 3)).numpy(), bias, stride, padding,
                    dilation, groups), rtol=1e-9, atol=1e-9)


def test_true_convolution_from_its_definition_on_a_small_case():
    image = np.arange(30, dtype=np.float64).reshape(5, 6) ** 1.5
    kernel = np.array([[1.0, 2.0, 0.0], [-1.0, 0.5, 3.0]])  # 2x3, not symmetric: the flip shows
    custom = "1 2 0\n-1 0.5 3"
    true = ConvSettings(2, 3, kernels=("custom",), custom=custom, flip=True).convolve(image[None])
    np.testing.assert_allclose(true.output[0], _true_convolution(image, kernel), rtol=1e-12)
    plain = ConvSettings(2, 3, kernels=("custom",), custom=custom).convolve(image[None])
    assert not np.allclose(plain.output[0], true.output[0])  # cross-correlation differs from it
    # on a symmetric kernel (the X detector) both are the same
    x = binary_picture("X 7x7")  # (1, 7, 7)
    flipped, plain = ConvSettings(flip=True).convolve(x), ConvSettings().convolve(x)
    np.testing.assert_array_equal(flipped.output, plain.output)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 3), st.integers(0, 3), st.integers(1, 5),
       st.integers(1, 5), st.integers(6, 14), st.integers(6, 14))
def test_per_axis_stride_and_padding_give_torchs_sizes_and_maps(sh, sw, ph, pw, kh, kw, h, w):
    settings_ = ConvSettings(kh, kw, (sh, sw), (str(ph), pw), 1, ("random",))
    assert settings_.stride == ((sh, sw) if sh != sw else sh)
    image = np.random.default_rng(h * 31 + w).random((1, h, w))
    steps = settings_.convolve(image)
    expected = _torch_conv(image, settings_.weight(1), np.zeros(1), (sh, sw), (ph, pw), 1)
    np.testing.assert_allclose(steps.output, expected, rtol=1e-9, atol=1e-9)
    height, width = output_shape(h, w, (kh, kw), (sh, sw), (ph, pw))
    assert (height.output, width.output) == expected.shape[1:]
    # each axis's formula carries its own numbers
    assert height.formula.startswith(f"floor(({h} + 2*{ph} - 1*({kh}-1) - 1) / {sh})")
    assert width.formula.startswith(f"floor(({w} + 2*{pw} - 1*({kw}-1) - 1) / {sw})")
    assert height.formula.endswith(f"= {height.output}") and width.formula.endswith(f"= {width.output}")


def test_per_axis_settings_read_text_and_refuse_nonsense():
    assert ConvSettings(stride=(2, 2), padding=("1", 1)) == ConvSettings(stride=2, padding=1)
    assert ConvSettings(padding=("same", "0")).padding == ("same", 0)
    with pytest.raises(ValueError, match="pair"):
        ConvSettings(stride=(1, 2, 3))
    with pytest.raises(ValueError, match="stride must be a whole number"):
        ConvSettings(stride="two")
    with pytest.raises(ValueError, match="Padding must be"):
        ConvSettings(padding=(1, "lots"))


def test_conv_parameters_refuses_groups_that_do_not_divide():
    with pytest.raises(ValueError, match="cannot split"):
        ConvParameters(4, 6, (3, 3), 4)
    layer, ordinary = conv_parameters(4, 4, 3, 2)
    assert layer.formula == "4 kernels x 4/2 = 2 channels x 3x3 = 72 weights + 4 biases = 76"
    assert ordinary.formula == "4 kernels x 4 channels x 3x3 = 144 weights + 4 biases = 148"


def _conv_size(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnviz", "conv-size", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


@pytest.mark.slow  # a fresh Python importing torch: 4-12 s on the shared machine
def test_cli_conv_size_counts_parameters_with_and_without_groups():
    result = _conv_size("--input", "28", "--kernel", "3", "--padding", "1", "--in-channels", "4",
                        "--out-channels", "8", "--groups", "2")
    assert result.returncode == 0, result.stderr
    grouped = nn.Conv2d(4, 8, 3, padding=1, groups=2)
    plain = nn.Conv2d(4, 8, 3, padding=1)
    out_h, out_w = grouped(torch.zeros(1, 4, 28, 28)).shape[2:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"convolution output: {out_h} x {out_w} (height x width)"
    grouped_total = sum(p.numel() for p in grouped.parameters())
    plain_total = sum(p.numel() for p in plain.parameters())
    weights, plain_weights = grouped.weight.numel(), plain.weight.numel()
    assert (f"parameters (groups 2): 8 kernels x 4/2 = 2 channels x 3x3 = {weights} weights + 8 biases = "
            f"{grouped_total}") in lines
    assert (f"ordinary convolution (groups 1): 8 kernels x 4 channels x 3x3 = {plain_weights} weights "
            f"+ 8 biases = {plain_total}") in lines
    assert "multiply-adds per output cell: 18 (ordinary: 36)" in lines


def test_cli_conv_size_refuses_groups_that_do_not_divide_before_printing(capsys):
    from cnnviz.cli import main  # in process: the test above runs the real command once

    assert main(["conv-size", "--input", "32", "--kernel", "3", "--in-channels", "3", "--groups", "3"]) == 0
    depthwise = sum(p.numel() for p in nn.Conv2d(3, 3, 3, groups=3).parameters())
    printed = capsys.readouterr().out
    assert f"3 kernels x 3/3 = 1 channel x 3x3 = 27 weights + 3 biases = {depthwise}" in printed
    assert main(["conv-size", "--input", "28", "--kernel", "3", "--in-channels", "4", "--groups", "3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: 3 groups cannot split 4 input channels")
    assert main(["conv-size", "--input", "28", "--kernel", "3", "--groups", "2"]) == 2
    assert "--in-channels" in capsys.readouterr().err


def test_cli_conv_size_transposed_with_groups_counts_the_transposed_layer(capsys):
    from cnnviz.cli import main

    args = ["conv-size", "--input", "4", "--kernel", "3", "--stride", "2", "--padding", "1",
            "--output-padding", "1", "--transposed", "--in-channels", "8", "--out-channels", "4",
            "--groups", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    layer = torch.nn.ConvTranspose2d(8, 4, 3, 2, 1, 1, groups=2)
    out_h, out_w = layer(torch.zeros(1, 8, 4, 4)).shape[2:]
    assert f"output: {out_h} x {out_w}" in printed
    assert f"= {sum(p.numel() for p in layer.parameters())}\n" in printed
