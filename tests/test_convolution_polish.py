"""The Convolution page's polish list (issue 20, item 4): float noise, pooling ties, the fit note,
sizes, and what the figures write, each checked against PyTorch or a brute-force count."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnviz.convolution.arithmetic import axis_output_size, output_shape
from cnnviz.convolution.frames import frame_positions
from cnnviz.convolution.pooling import MAX, max_pool_gradient, pool_steps
from cnnviz.convolution.scene import ConvScene, ConvSettings, PoolSettings
from cnnviz.convolution.steps import convolve_steps
from cnnviz.datasets import samples
from cnnviz.images.picture import to_picture
from cnnviz.ui.convolution.figures import build_before_after_figure, build_convolution_figure
from cnnviz.ui.convolution.layout import EQUATION_CHARS, cell_texts_fit, written
from cnnviz.ui.convolution.pool_figure import build_pooling_figure
from cnnviz.ui.plotly_wire import decode_typed_array


def _frames(figure: go.Figure) -> tuple:
    return go.Figure(figure.to_dict()).frames


def _flat_patch_picture(channels: int) -> np.ndarray:
    """(C, 6, 6): a flat 0.2 region and a flat 0.7 region; a Laplacian cancels to 0 inside each."""
    image = np.full((channels, 6, 6), 0.2)
    image[:, :, 3:] = 0.7
    return image


def _torch_conv(image: np.ndarray, steps) -> np.ndarray:
    return F.conv2d(torch.from_numpy(image)[None], torch.from_numpy(steps.weight),
                    torch.from_numpy(steps.bias))[0].numpy()


def test_cancelling_products_sum_to_exactly_zero_and_relu_counts_only_real_negatives():
    for channels in (1, 3):  # gray, and RGB where the preset is divided by 3 over R, G and B
        image = _flat_patch_picture(channels)
        steps = ConvSettings(kernels=("Laplacian",)).convolve(image)
        expected = _torch_conv(image, steps)
        plain = steps.products.sum(axis=(3, 4, 5))  # the sums as numpy adds them, noise and all
        noisy = (plain != 0) & (np.abs(plain) < 1e-14)
        assert noisy.any(), "the plain float64 sum should show the noise this test is about"
        np.testing.assert_allclose(steps.output, expected, rtol=0, atol=1e-14)
        assert (steps.output[noisy] == 0).all()
        really_negative = int((expected < -1e-9).sum())  # the mathematically negative cells
        assert int((steps.output < 0).sum()) == really_negative


def test_figures_write_zero_for_noise_never_5e17():
    image = _flat_patch_picture(1)
    steps = ConvSettings(kernels=("Laplacian",)).convolve(image)
    noise = np.zeros_like(steps.sums)
    noise[0, 0, 0], noise[0, 1, 0] = 5.551115123125783e-17, -5.551115123125783e-17
    noisy = dataclasses.replace(steps, sums=steps.sums + noise)  # as the sums were before the clean-up
    figure = build_convolution_figure(noisy, [(0, 0), (1, 0)])  # two cells on the flat 0.2 patch
    for frame in _frames(figure):
        equation = frame.data[4].text
        assert "e-17" not in " ".join(equation) and "-0" not in equation[-1].split("=")[-1]
        assert equation[-1] == "   = 0 + bias 0 = <b>0</b>"
    output = decode_typed_array(_frames(figure)[-1].data[1].z)
    assert output[0, 0] == 0 and output[1, 0] == 0
    before_after = build_before_after_figure(noisy.output[0], np.maximum(noisy.output[0], 0), ("a", "b"))
    assert decode_typed_array(before_after.data[0].z)[1, 0] == 0


def _torch_winners(image: np.ndarray, window, stride, padding) -> np.ndarray:
    """(C, Ho, Wo) flat index into each (unpadded) channel of the cell torch's max pooling picks."""
    _, indices = F.max_pool2d(torch.from_numpy(image)[None], window, stride, padding, return_indices=True)
    return indices[0].numpy()


def _our_winners(steps) -> np.ndarray:
    top, _, left, _ = steps.pad
    width = steps.padded.shape[2] - steps.pad[2] - steps.pad[3]
    return (steps.winners[..., 0] - top) * width + steps.winners[..., 1] - left


def test_max_pooling_ties_go_to_the_first_maximum_as_in_torch_also_through_noise():
    rng = np.random.default_rng(7)
    for window, stride, padding in [(2, 2, 0), (3, 1, 1), (2, 1, 1), (3, 2, 0)]:
        exact = rng.integers(0, 3, (2, 7, 8)) * 0.1  # few values: many exact ties
        noisy = exact + rng.choice([-1, 0, 1], exact.shape) * 5.551115123125783e-17  # 0.1+0.2 vs 0.3
        steps = pool_steps(noisy, window, stride, padding, MAX)
        # torch on the same values with the noise gone: the first maximum of every window
        np.testing.assert_array_equal(_our_winners(steps), _torch_winners(exact, window, stride, padding))
        expected = F.max_pool2d(torch.from_numpy(noisy)[None], window, stride, padding)[0].numpy()
        np.testing.assert_allclose(steps.output, expected, rtol=0, atol=1e-15)
        # the gradient goes where torch sends it on the tie-exact map
        x = torch.from_numpy(exact)[None].requires_grad_(True)
        upstream = rng.normal(size=steps.output.shape)
        F.max_pool2d(x, window, stride, padding).backward(torch.from_numpy(upstream)[None])
        np.testing.assert_allclose(max_pool_gradient(steps, upstream), x.grad[0].numpy(), atol=1e-12)


def test_pool_figure_boxes_the_first_maximum_of_a_noisy_tie():
    feature = np.array([[[0.3, 0.1 + 0.2], [0.0, 0.3]]])  # 0.30000000000000004 comes second
    steps = pool_steps(feature, 2, 2, 0, MAX)
    assert _torch_winners(np.round(feature, 12), 2, 2, 0)[0, 0, 0] == 0
    assert tuple(steps.winners[0, 0, 0]) == (0, 0)
    frame = _frames(build_pooling_figure(steps, [(0, 0)]))[0]
    xs, ys = decode_typed_array(frame.data[5].x), decode_typed_array(frame.data[5].y)
    assert (np.nanmin(ys) + 0.5, np.nanmin(xs) + 0.5) == (0, 0)  # the box around window cell (0, 0)
    assert frame.data[6].text[1] == "winner (boxed): row 0, col 0"


def test_page_scene_pools_exact_ties_where_the_convolution_cancelled():
    image = _flat_patch_picture(1)  # gray: its noise is +2.2e-16 as well as -5.6e-17
    scene = ConvScene.compute(image, ConvSettings(kernels=("Laplacian",)), 64)
    pooled = scene.pool(PoolSettings(MAX, 2, 2, 0))
    tie_exact = np.round(scene.activated[None], 12)  # what the map is, without float noise
    np.testing.assert_array_equal(_our_winners(pooled.steps), _torch_winners(tie_exact, 2, 2, 0))


def _covered_by_torch(n: int, kernel: int, stride: int, padding: int, dilation: int) -> set[int]:
    """Brute force: the input rows whose value reaches some output of F.conv2d (nonzero gradient)."""
    x = torch.ones(1, 1, n, 1, dtype=torch.float64, requires_grad=True)
    weight = torch.ones(1, 1, kernel, 1, dtype=torch.float64)
    F.conv2d(x, weight, stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1)).sum().backward()
    return {int(i) for i in torch.nonzero(x.grad[0, 0, :, 0]).flatten()}


def _numbers(text: str) -> list[int]:
    return [int(word) for word in re.findall(r"\d+", text)]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 2), st.integers(1, 3), st.integers(1, 14))
def test_left_out_note_names_exactly_the_rows_no_window_covers(kernel, stride, padding, dilation, n):
    assume(dilation * (kernel - 1) + 1 <= n + 2 * padding)
    size = axis_output_size(n, kernel, stride, padding, dilation)
    left_out = sorted(set(range(n)) - _covered_by_torch(n, kernel, stride, padding, dilation))
    assert list(size.uncovered) == left_out
    assert bool(size.warning) == bool(left_out)  # no note when only padding is left out
    named = []
    listing = r"(?:never reach input rows?|never covered by any window:) ([^(]*)\("
    for part in re.findall(listing, size.warning):
        named += _numbers(part)
    assert sorted(named) == left_out and all(0 <= row < n for row in named)
    if padding and left_out:  # the figure counts the padding: its numbers are given beside
        on_figure = re.findall(r"; ([^;]*) on the figure", size.warning)
        assert sorted(sum((_numbers(p) for p in on_figure), [])) == [row + padding for row in left_out]


def test_fit_note_wording_on_the_reviewed_cases():
    assert axis_output_size(28, 3, 2, 2).warning == ""  # was: "ends at input row 28" of a 28-row image
    assert axis_output_size(28, 3, 2, 1).warning == ""  # 13.5 rounded down, yet only padding left out
    note = axis_output_size(28, 3, 2, 0).warning
    assert "13.5 is not a whole number" in note
    assert note.endswith("never reach input row 27 (counting from 0).")
    columns = axis_output_size(9, 2, 4, 1, axis="width").warning
    assert columns == ("Input columns never covered by any window: 1, 2, 5 and 6 "
                       "(counting from 0; 2, 3, 6 and 7 on the figure, which counts the padding too).")


def test_pooling_padding_advice_makes_sense_for_every_window():
    for window in (1, 2, 3, 4):
        for padding in range(window // 2 + 1, 4):
            try:
                output_shape(8, 8, window, 1, padding, pool=True)
            except ValueError as err:
                message = str(err)
            else:
                raise AssertionError(f"padding {padding} on a {window}-window was accepted")
            assert "0 or less" not in message
            with pytest.raises(RuntimeError):  # torch refuses the same setting
                F.max_pool2d(torch.zeros(1, 1, 8, 8), window, 1, padding)
            advice = "set the padding to 0" if window == 1 else f"Use padding {window // 2} or less."
            assert advice in message
            F.max_pool2d(torch.zeros(1, 1, 8, 8), window, 1, window // 2)  # the advice torch accepts


def _plain(line: str) -> str:
    return re.sub(r"<[^>]+>", "", line)


def _equations(figure) -> list[list[str]]:
    return [list(frame.data[4].text) for frame in _frames(figure)]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3).map(lambda c: 3 if c == 3 else 1), st.integers(1, 4), st.integers(1, 7),
       st.integers(1, 4), st.sampled_from([0, 1, 3]), st.integers(1, 2), st.sampled_from([8, 20, 64]),
       st.integers(0, 2**31 - 1))
def test_every_text_of_the_convolution_figure_fits_at_800_px(channels, kernels, side, stride, padding,
                                                             dilation, n, seed):
    assume(dilation * (side - 1) + 1 <= n)
    rng = np.random.default_rng(seed)
    image = rng.random((channels, n, n))
    weight = rng.normal(size=(kernels, channels, side, side)) * rng.choice([1e-3, 1, 30])
    steps = convolve_steps(image, weight, rng.normal(size=kernels), stride, padding, dilation)
    out_h, out_w = steps.output_size
    names = ["R", "G", "B"] if channels == 3 else None  # as the page names them
    figure = build_convolution_figure(steps, [(0, 0), (out_h - 1, out_w - 1)], channel_names=names)
    for lines in _equations(figure):
        assert all(len(_plain(line)) <= EQUATION_CHARS for line in lines), lines
    kernel = next(trace for trace in figure.data if trace.name == "kernel")
    if kernel.text is not None:
        texts = [t for row in kernel.text for t in row]
        assert cell_texts_fit(texts, "2", (len(kernel.text), len(kernel.text[0])), font=kernel.textfont.size)
    for frame in _frames(figure):
        if frame.data[3].text is not None:
            texts = [t for row in frame.data[3].text for t in row]
            cells = (len(frame.data[3].text), len(frame.data[3].text[0]))
            assert cell_texts_fit(texts, "4", cells, lines=2 if "<br>" in texts[0] else 1)


def test_pooling_lines_fit_at_800_px_and_give_torch_numbers():
    feature = np.random.default_rng(4).random((1, 64, 64)) * 1000
    for mode in ("max", "average"):
        steps = pool_steps(feature, 3, 1, 1, mode)
        figure = build_pooling_figure(steps, frame_positions(*steps.output.shape[1:], 64))
        torch_pool = F.max_pool2d if mode == "max" else F.avg_pool2d
        expected = torch_pool(torch.from_numpy(feature)[None], 3, 1, 1)[0, 0].numpy()
        for frame, (row, col) in zip(_frames(figure), frame_positions(*steps.output.shape[1:], 64),
                                     strict=True):
            lines = frame.data[6].text
            assert all(len(_plain(line)) <= EQUATION_CHARS for line in lines), lines
            shown = float(re.search(r"<b>([^<]+)</b>", lines[0 if mode == "max" else 1]).group(1))
            assert shown == pytest.approx(expected[row, col], rel=5e-4)  # 4 significant digits


def test_gaussian_weights_are_written_as_whole_numbers_of_a_fraction():
    for side, denominator in ((3, 16), (5, 256)):
        for channels in (1, 3):
            steps = ConvSettings(side, side, kernels=("Gaussian blur",)).convolve(np.zeros((channels, 9, 9)))
            figure = build_convolution_figure(steps, [(0, 0)])
            kernel = next(trace for trace in figure.data if trace.name == "kernel")
            scale = denominator * channels  # RGB: the preset divided by 3 over R, G and B
            if channels == 3 and kernel.text is None:  # 11+ cells across 80 px: the hover has them
                assert "x 1/" not in figure.layout.annotations[1].text
                continue
            assert f"kernel x 1/{scale}" in figure.layout.annotations[1].text
            written_weights = np.array([[float(t) if t else np.nan for t in row] for row in kernel.text])
            tiled = decode_typed_array(kernel.z) if isinstance(kernel.z, dict) else np.asarray(kernel.z)
            np.testing.assert_allclose(written_weights / scale, tiled, rtol=1e-6, equal_nan=True)
            assert cell_texts_fit([t for row in kernel.text for t in row], "2",
                                  (len(kernel.text), len(kernel.text[0])), font=kernel.textfont.size)


def test_rgb_input_hover_gives_r_g_b_and_the_equation_names_each_channel():
    sample = samples.list_samples("cifar10")[0]
    pixels = to_picture(samples.load_sample(sample).numpy(), rgb_mode=True).pixels  # (3, 32, 32)
    steps = ConvSettings(kernels=("Sobel x",), padding=1).convolve(pixels)
    rgb = (steps.padded.transpose(1, 2, 0) * 255).astype(np.uint8)
    figure = build_convolution_figure(steps, [(5, 7)], input_rgb=rgb, channel_names=["R", "G", "B"])
    hover = next(trace for trace in figure.data if trace.name == "input values")
    assert all(f"{name} %{{customdata[{c}]" in hover.hovertemplate for c, name in enumerate("RGB"))
    np.testing.assert_allclose(np.asarray(hover.customdata), steps.padded.transpose(1, 2, 0), atol=1e-6)
    lines = _equations(figure)[0]
    named = re.search(r"R (\S+) \+ G (\S+) \+ B (\S+)", lines[3])
    assert lines[2] == "kernel 1: 3 x 9 products" and named, lines
    x = torch.from_numpy(pixels)[None]
    for c, value in enumerate(named.groups()):  # each channel's share: that channel convolved alone
        alone = F.conv2d(x[:, c : c + 1], torch.from_numpy(steps.weight[:, c : c + 1]), padding=1)
        assert float(value) == pytest.approx(float(alone[0, 0, 5, 7]), rel=5e-3, abs=1e-12)


def test_mnist_window_cells_show_their_input_numbers_beside_the_products():
    sample = samples.list_samples("mnist")[0]
    pixels = to_picture(samples.load_sample(sample).numpy(), rgb_mode=False).pixels  # (1, 28, 28)
    steps = ConvSettings(kernels=("Sobel x",)).convolve(pixels)
    positions = frame_positions(*steps.output_size, 64)
    figure = build_convolution_figure(steps, positions)
    assert "input, = input x weight" in figure.layout.annotations[3].text
    for frame, (row, col) in zip(_frames(figure), positions, strict=True):
        texts = frame.data[3].text
        assert texts is not None, "the window's inputs are not written out"
        under = steps.padded[0][steps.tap_rows(row)][:, steps.tap_cols(col)]
        product = (F.conv2d(torch.from_numpy(under)[None, None], torch.ones(1, 1, 1, 1, dtype=torch.float64))
                   [0, 0].numpy() * steps.weight[0, 0])  # input x weight, cell by cell
        for r in range(3):
            for c in range(3):
                value, result = texts[r][c].split("<br>= ")  # with 3 significant digits, or 2
                assert value in {written(under[r, c], 3), written(under[r, c], 2)}
                assert result in {written(product[r, c], 3), written(product[r, c], 2)}


def test_page_relu_count_is_the_number_of_really_negative_cells():
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO

    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("cnnviz/ui/convolution/page.py").run()
    app.radio(key="conv_source").set_value("CIFAR-10 sample")
    app.radio(key="conv_channels").set_value("RGB (3-channel kernels)")
    app.selectbox(key="conv_preset_0").set_value("Laplacian").run()
    assert not app.exception, [e.value for e in app.exception]
    sentence = next(m.value for m in app.markdown if "were negative" in m.value)
    negative, cells = (int(n) for n in re.search(r"\*\*(\d+) of (\d+)\*\*", sentence).groups())
    sample = samples.list_samples("cifar10")[0]  # the page's first CIFAR-10 sample
    pixels = to_picture(samples.load_sample(sample).numpy(), rgb_mode=True).pixels
    weight = ConvSettings(kernels=("Laplacian",)).weight(3)
    expected = F.conv2d(torch.from_numpy(pixels)[None], torch.from_numpy(weight))[0, 0].numpy()
    assert cells == expected.size
    assert negative == int((expected < -1e-12).sum())  # torch's own rounding noise left out


def test_learned_3x3_weights_are_written_with_two_decimals_where_they_fit():
    weight = np.random.default_rng(5).normal(size=(1, 1, 3, 3)) * 0.3  # like a trained first layer's
    steps = convolve_steps(np.zeros((1, 8, 8)), weight)
    figure = build_convolution_figure(steps, [(0, 0)], kernel_format=".2f")  # as the page asks for learned
    kernel = next(trace for trace in figure.data if trace.name == "kernel")
    assert kernel.text is not None
    assert cell_texts_fit([t for row in kernel.text for t in row], "2", (3, 3), font=kernel.textfont.size)
    shown = np.array([[float(t) for t in row] for row in kernel.text])
    np.testing.assert_allclose(shown, weight[0, 0], rtol=0, atol=0.005)  # 2 decimals
