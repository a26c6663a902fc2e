"""The Convolution page's polish list (issue 20, item 4): float noise, pooling ties, the fit note,
sizes, and what the figures write, each checked against PyTorch or a brute-force count."""

from __future__ import annotations

import dataclasses

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from cnnviz.convolution.scene import ConvSettings
from cnnviz.ui.convolution.figures import build_before_after_figure, build_convolution_figure
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
        assert equation[-1].endswith("= <b>0</b>") and equation[-1].startswith("   = 0;")
    output = decode_typed_array(_frames(figure)[-1].data[1].z)
    assert output[0, 0] == 0 and output[1, 0] == 0
    before_after = build_before_after_figure(noisy.output[0], np.maximum(noisy.output[0], 0), ("a", "b"))
    assert decode_typed_array(before_after.data[0].z)[1, 0] == 0
