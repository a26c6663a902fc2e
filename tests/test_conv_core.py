"""Convolution, pooling, ReLU and 1x1 convolution step by step, checked against PyTorch."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz.convolution.arithmetic import axis_output_size, output_shape, resolve_padding
from cnnviz.convolution.frames import describe_frames, frame_positions
from cnnviz.convolution.kernels import (
    MAX_CUSTOM_KERNEL_CHARS,
    MAX_KERNEL_SIDE,
    PRESET_NAMES,
    PRESETS,
    binary_picture,
    build_kernel_bank,
    format_kernel,
    make_kernel,
    parse_kernel,
)
from cnnviz.convolution.pooling import max_pool_gradient, pool_steps
from cnnviz.convolution.steps import convolve_steps, mix_channels, relu


@st.composite
def conv_settings(draw):
    channels = draw(st.integers(1, 3))
    kernels = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    # an input large enough that the window fits along both axes
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 12))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 12))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(channels, h, w))
    weight = rng.normal(size=(kernels, channels, kh, kw))
    bias = rng.normal(size=kernels)
    return image, weight, bias, (sh, sw), (ph, pw), (dh, dw)


@settings(max_examples=150, deadline=None)
@given(conv_settings())
def test_convolution_steps_equal_torch_conv2d(setting):
    image, weight, bias, stride, padding, dilation = setting
    steps = convolve_steps(image, weight, bias, stride, padding, dilation)
    expected = F.conv2d(
        torch.from_numpy(image)[None],
        torch.from_numpy(weight),
        torch.from_numpy(bias),
        stride=stride,
        padding=padding,
        dilation=dilation,
    )[0].numpy()
    assert steps.output.shape == expected.shape
    np.testing.assert_allclose(steps.output, expected, rtol=1e-10, atol=1e-10)
    # and the output size formula agrees with torch along both axes
    assert (steps.sizes[0].output, steps.sizes[1].output) == expected.shape[1:]


@settings(max_examples=60, deadline=None)
@given(conv_settings(), st.data())
def test_each_step_shows_its_window_products_and_sum(setting, data):
    image, weight, bias, stride, padding, dilation = setting
    steps = convolve_steps(image, weight, bias, stride, padding, dilation)
    k = data.draw(st.integers(0, weight.shape[0] - 1))
    row = data.draw(st.integers(0, steps.output_size[0] - 1))
    col = data.draw(st.integers(0, steps.output_size[1] - 1))
    step = steps.step(k, row, col)
    # the receptive field in padded coordinates, gaps of the dilation included
    np.testing.assert_array_equal(step.rows, row * stride[0] + np.arange(weight.shape[2]) * dilation[0])
    np.testing.assert_array_equal(step.cols, col * stride[1] + np.arange(weight.shape[3]) * dilation[1])
    padded = np.pad(image, ((0, 0), (padding[0],) * 2, (padding[1],) * 2))
    np.testing.assert_array_equal(step.inputs, padded[:, step.rows][:, :, step.cols])
    np.testing.assert_allclose(step.products, step.inputs * weight[k])
    assert step.total == pytest.approx(step.products.sum())
    assert step.value == pytest.approx(step.total + bias[k])
    assert step.value == pytest.approx(steps.output[k, row, col])


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kernel", [(3, 3), (4, 4), (2, 5)])
@pytest.mark.parametrize("dilation", [1, 2])
def test_same_padding_equals_torch_and_keeps_the_size(kernel, dilation):
    rng = np.random.default_rng(1)
    image, weight = rng.normal(size=(2, 9, 8)), rng.normal(size=(3, 2, *kernel))
    steps = convolve_steps(image, weight, None, 1, "same", dilation)
    expected = F.conv2d(
        torch.from_numpy(image)[None], torch.from_numpy(weight), padding="same", dilation=dilation
    )[0].numpy()
    assert steps.output_size == (9, 8)
    np.testing.assert_allclose(steps.output, expected, rtol=1e-10, atol=1e-10)


def test_alexnet_first_layer_gives_55():
    size = axis_output_size(227, 11, 4, 0)
    assert size.output == 55 and size.fits_exactly and not size.warning
    assert "floor(216/4) + 1 = 55" in size.formula


def test_four_and_a_half_rounds_down_and_names_the_uncovered_row():
    size = axis_output_size(10, 3, 2, 0)
    assert size.output == 4 and float(size.exact) == 4.5
    assert "4.5" in size.warning and "round down to 4" in size.warning
    assert size.uncovered == (9,)
    conv = F.conv2d(torch.zeros(1, 1, 10, 10), torch.zeros(1, 1, 3, 3), stride=2)
    assert conv.shape[-1] == size.output


def test_same_padding_odd_and_even_kernels():
    odd = resolve_padding("same", 5)
    assert (odd.before, odd.after) == (2, 2)
    even = resolve_padding("same", 4)
    assert (even.before, even.after) == (1, 2) and "even" in even.note
    assert axis_output_size(28, 4, 1, "same").output == 28
    assert resolve_padding("valid", 3).total == 0
    with pytest.raises(ValueError, match="stride 1"):
        resolve_padding("same", 3, stride=2)


def test_impossible_settings_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="fits nowhere"):
        axis_output_size(4, 3, 1, 0, dilation=2)  # spans 5 > 4
    with pytest.raises(ValueError, match="stride"):
        axis_output_size(8, 3, 0, 0)
    with pytest.raises(ValueError, match="Padding must be"):
        resolve_padding("some", 3)
    with pytest.raises(ValueError, match="at most half"):
        output_shape(8, 8, 2, 2, 2, pool=True)
    with pytest.raises(ValueError, match="pooling window spans 4 rows but the feature map is only 2 rows"):
        output_shape(2, 2, 4, 4, 0, pool=True)  # pooling has no kernel or dilation to blame


def test_long_lists_and_counts_read_as_english():
    size = axis_output_size(40, 1, 3, 0)  # windows at 0, 3, 6, ...: 26 inputs never used, 12 listed
    assert size.warning.endswith(": 1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17 and 14 more (counting from 0).")
    assert "d(k-1) = 1 extra cell," in resolve_padding("same", 2).note
    assert "about every 2nd cell" in describe_frames(frame_positions(10, 10, 50), 10, 10)
    assert "about every 3rd cell" in describe_frames(frame_positions(9, 9, 27), 9, 9)
    assert "about every 11th cell" in describe_frames(frame_positions(11, 11, 11), 11, 11)


def test_dilation_and_stride_gaps_are_listed_as_uncovered():
    size = axis_output_size(9, 2, 4, 0)  # windows at 0-1 and 4-5: 2, 3, 6, 7, 8 never used
    assert size.uncovered == (2, 3, 6, 7, 8)
    assert axis_output_size(9, 3, 1, 0, dilation=2).uncovered == ()


@st.composite
def pool_settings(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h, w = draw(st.integers(max(1, kh - 2 * ph), 10)), draw(st.integers(max(1, kw - 2 * pw), 10))
    channels = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    binary = draw(st.booleans())  # binary pictures have ties: the first maximum must win, as in torch
    rng = np.random.default_rng(seed)
    shape = (channels, h, w)
    image = rng.integers(0, 2, shape).astype(np.float64) if binary else rng.normal(size=shape)
    return image, (kh, kw), (sh, sw), (ph, pw)


@settings(max_examples=120, deadline=None)
@given(pool_settings())
def test_pooling_equals_torch_and_gradient_lands_on_the_max(setting):
    image, window, stride, padding = setting
    x = torch.from_numpy(image)[None].requires_grad_(True)
    expected = F.max_pool2d(x, window, stride, padding)
    steps = pool_steps(image, window, stride, padding, "max")
    np.testing.assert_array_equal(steps.output, expected[0].detach().numpy())
    upstream = np.random.default_rng(0).normal(size=steps.output.shape)
    expected.backward(torch.from_numpy(upstream)[None])
    np.testing.assert_allclose(max_pool_gradient(steps, upstream), x.grad[0].numpy(), rtol=1e-12, atol=1e-12)
    # each winner is a cell inside its window holding the window's maximum
    c, r, q = 0, steps.output.shape[1] - 1, steps.output.shape[2] - 1
    wr, wc = steps.winners[c, r, q]
    assert wr in steps.tap_rows(r) and wc in steps.tap_cols(q)
    assert steps.padded[c, wr, wc] == steps.output[c, r, q]

    average = pool_steps(image, window, stride, padding, "average")
    np.testing.assert_allclose(
        average.output, F.avg_pool2d(x.detach(), window, stride, padding)[0].numpy(), rtol=1e-12, atol=1e-12
    )


def test_relu_and_one_by_one_convolution_equal_torch():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(3, 5, 6))
    np.testing.assert_array_equal(relu(image), F.relu(torch.from_numpy(image)).numpy())
    weights, bias = rng.normal(size=(2, 3)), rng.normal(size=2)
    expected = F.conv2d(
        torch.from_numpy(image)[None], torch.from_numpy(weights)[:, :, None, None], torch.from_numpy(bias)
    )[0].numpy()
    np.testing.assert_allclose(mix_channels(image, weights, bias), expected, rtol=1e-12)


def test_presets_have_the_textbook_values():
    assert make_kernel("identity", 3, 3).tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    np.testing.assert_allclose(make_kernel("Gaussian blur", 3, 3) * 16, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    assert make_kernel("box blur", 2, 4).sum() == pytest.approx(1.0)
    assert make_kernel("Sobel x", 3, 3)[1].tolist() == [-2, 0, 2]
    assert (make_kernel("random", 3, 3) == make_kernel("random", 3, 3)).all()
    with pytest.raises(ValueError, match="3x3"):
        make_kernel("Sobel y", 5, 5)
    for name in PRESETS:
        if PRESETS[name].fixed is not None:
            assert make_kernel(name, 3, 3).shape == (3, 3)
    assert "custom" in PRESET_NAMES


def test_random_kernels_differ_by_kernel_and_channel_and_repeat_by_seed():
    bank = build_kernel_bank(["random", "random", "Sobel x"], 3, 3, channels=3)
    slices = [bank[k, c] for k in range(2) for c in range(3)]
    assert all(not np.array_equal(a, b) for i, a in enumerate(slices) for b in slices[i + 1:])
    assert np.array_equal(bank, build_kernel_bank(["random", "random", "Sobel x"], 3, 3, channels=3))
    np.testing.assert_allclose(bank[2], np.stack([make_kernel("Sobel x", 3, 3) / 3] * 3))
    assert np.array_equal(build_kernel_bank(["random"], 3, 3)[0, 0], make_kernel("random", 3, 3))


def test_laplacian_is_the_neighbours_minus_four_times_the_centre():
    dot = np.zeros((1, 5, 5))
    dot[0, 2, 2] = 1.0
    response = convolve_steps(dot, make_kernel("Laplacian", 3, 3)).output[0]  # 3x3, centred on the dot
    assert response[1, 1] == -4.0 and response[0, 1] == 1.0
    assert PRESETS["Laplacian"].description.startswith("its four neighbours minus 4 times the centre")


def test_x_detector_fires_at_the_centre_of_the_x():
    picture = binary_picture("X 5x5")
    response = convolve_steps(picture, make_kernel("X detector", 3, 3)).output[0]
    assert response.shape == (3, 3)
    assert np.unravel_index(response.argmax(), response.shape) == (1, 1)
    assert response[1, 1] == 5.0  # the five diagonal ones, no -1 cell lit


def test_custom_kernel_parsing():
    kernel = parse_kernel("1 2 3\n-1, 0.5, 1/4\n")
    np.testing.assert_allclose(kernel, [[1, 2, 3], [-1, 0.5, 0.25]])
    assert np.array_equal(parse_kernel(format_kernel(kernel)), kernel)
    for bad, message in [
        ("1 2\n3", "same number"),
        ("1 a", "not a number"),
        ("", "rows of numbers"),
        ("1/0", "not a number"),
        ("inf 1", "ordinary"),
        ("1e39 1", "between -1000 and 1000"),
        ("\n".join(["1 " * 8] * 8), "at most 7x7"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_kernel(bad)


def test_a_huge_paste_into_the_custom_kernel_is_refused_at_once():
    # the largest kernel, as numpy prints it, still parses
    widest = np.full((MAX_KERNEL_SIDE, MAX_KERNEL_SIDE), -1 / 9)
    printed = np.array2string(widest, separator=", ", max_line_width=200)
    assert len(printed) <= MAX_CUSTOM_KERNEL_CHARS
    printed_rows = printed.replace("],", "]\n")
    np.testing.assert_allclose(parse_kernel(printed_rows), widest, rtol=1e-7)
    text = "0.5 " * (20 * 2**20 // 4)  # a 20 MB paste: one endless row of numbers
    started = time.perf_counter()
    with pytest.raises(ValueError, match="is 20,971,520 characters long.*keep it to 1,000 characters"):
        parse_kernel(text)
    assert time.perf_counter() - started < 0.5


def test_frame_positions_cover_everything_or_spread_evenly():
    assert frame_positions(3, 4, 100) == [(r, c) for r in range(3) for c in range(4)]
    spread = frame_positions(64, 64, 100)
    assert len(spread) == 100 and spread[0] == (0, 0) and spread[-1] == (63, 63)
    assert spread == sorted(spread)


def run_cli(*args: str):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "cnnviz", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_conv_size_prints_size_formula_and_warning(capsys):
    from cnnviz.cli import main

    def conv_size(*args: str) -> str:
        assert main(["conv-size", *args]) == 0
        return capsys.readouterr().out

    out = conv_size("--input", "10", "--kernel", "3", "--stride", "2", "--padding", "0")
    assert "output: 4 x 4" in out and "floor(7/2) + 1 = 4" in out
    assert "4.5" in out and "never reach input row 9 (counting from 0)" in out
    alexnet = conv_size("--input", "227", "--kernel", "11", "--stride", "4", "--padding", "0")
    assert "output: 55 x 55" in alexnet and "note" not in alexnet
    same = conv_size("--input", "28", "--input-width", "20", "--kernel", "4", "--padding", "same")
    assert "output: 28 x 20" in same and "1 before and 2 after" in same
    assert conv_size("--input", "28", "--kernel", "2", "--pool").startswith("pooling output: 14 x 14")


def test_cli_conv_size_refuses_impossible_settings(capsys):
    from cnnviz.cli import main

    assert main(["conv-size", "--input", "8", "--kernel", "3", "--padding", "lots"]) == 2
    assert "Padding must be" in capsys.readouterr().err
    result = run_cli("conv-size", "--input", "3", "--kernel", "5", "--padding", "0")  # as a user runs it
    assert result.returncode == 2
    assert result.stderr.startswith("error: The window spans 5 rows") and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.bench
def test_bench_conv_reports_the_issue_case():
    import json

    result = run_cli("bench", "conv", "--json", "--repeat", "1")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["output_cells"] == 64 * 64 and report["frames"] == 64
    assert 0 < report["figure_mb"] <= report["target_figure_mb"]  # a size, not a time: safe to assert
    for key in ("steps_ms", "frames_ms", "rerun_compute_ms", "apptest_rerun_ms"):
        assert report[key] > 0


def test_settings_are_hashable_and_padding_text_is_read_once():
    from cnnviz.convolution.arithmetic import parse_padding
    from cnnviz.convolution.scene import ConvSettings, PoolSettings

    typed = ConvSettings(padding=" 1", kernels=["Sobel x"])
    same = ConvSettings(padding=1, kernels=("Sobel x",))
    assert typed == same and hash(typed) == hash(same)  # one cache key, however the padding was written
    assert ConvSettings(padding="SAME").padding == "same" and parse_padding("valid") == "valid"
    assert {PoolSettings(): 1}[PoolSettings("max", 2, 2, 0)] == 1
    with pytest.raises(ValueError, match="Padding must be"):
        ConvSettings(padding="lots")
    with pytest.raises(ValueError, match="Padding must be"):
        parse_padding("-1")


def test_scene_computes_once_what_every_figure_draws():
    from cnnviz.convolution.pooling import AVERAGE, MAX
    from cnnviz.convolution.scene import ConvScene, ConvSettings, PoolSettings

    image = np.random.default_rng(7).random((3, 12, 10))
    settings = ConvSettings(3, 3, 1, "1", 1, ("Sobel x", "random"), "", -0.25)
    scene = ConvScene.compute(image, settings, 64)
    bias = torch.full((2,), -0.25, dtype=torch.float64)
    weight = torch.from_numpy(settings.weight(3))
    expected = F.conv2d(torch.from_numpy(image)[None], weight, bias, padding=1)[0]
    np.testing.assert_allclose(scene.feature, expected[0].numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(scene.activated, F.relu(torch.from_numpy(scene.feature)).numpy())
    assert scene.max_frames == 64 and scene.too_many_steps  # 12x10 = 120 outputs
    spread, region = scene.frame_plan(), scene.frame_plan((2, 1))
    assert len(spread.positions) == 64 and spread.fill_reading_order
    assert region.positions[0] == (2, 1) and len(region.positions) == 64 and not region.fill_reading_order

    x = torch.from_numpy(scene.activated)[None, None].requires_grad_(True)  # what the pooling pools
    pooled = scene.pool(PoolSettings(MAX, 2, 2, 0))
    torch_pooled = F.max_pool2d(x, 2, 2)
    np.testing.assert_array_equal(pooled.steps.output, torch_pooled[0].detach().numpy())
    torch_pooled.sum().backward()
    upstream, at_input = pooled.gradient
    assert (upstream == 1).all()
    np.testing.assert_array_equal(at_input, x.grad[0, 0].numpy())
    assert len(pooled.positions) == 30  # 6x5 pooled cells, all shown
    average = scene.pool(PoolSettings(AVERAGE, 3, 1, 1))
    assert average.gradient is None
    np.testing.assert_allclose(average.steps.output, F.avg_pool2d(x.detach(), 3, 1, 1)[0].numpy(), rtol=1e-12)


def test_pooling_refuses_bad_arguments_with_a_sentence():
    steps = pool_steps(np.zeros((1, 4, 4)), 2)
    with pytest.raises(ValueError, match="one value per pooled cell"):
        max_pool_gradient(steps, np.ones((1, 3, 3)))
    with pytest.raises(ValueError, match="'max' or 'average', not 'avg'"):
        pool_steps(np.zeros((1, 4, 4)), 2, mode="avg")
