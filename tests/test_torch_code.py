"""The PyTorch code the Convolution page offers: run, it computes the page's own map (convolve_steps),
for ordinary, grouped, flipped and transposed convolutions, in both styles."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz.convolution.steps import convolve_steps
from cnnviz.convolution.torch_code import conv_code, tensor_code

PADDINGS = (0, 1, 2, "same", "valid")


def run_code(code: str) -> tuple[np.ndarray, str]:
    """The generated code run in a fresh namespace: its ``output`` and what it printed."""
    printed = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "conv_code.py", "exec"), namespace)  # noqa: S102
    return namespace["output"].numpy(), printed.getvalue()


def grouped_steps_output(image, weight, bias, stride, padding, dilation, groups) -> np.ndarray:
    """The page's arithmetic group by group: kernels of group g see channels of group g only."""
    per_channel, per_kernel = image.shape[0] // groups, weight.shape[0] // groups
    channel_groups = [slice(g * per_channel, (g + 1) * per_channel) for g in range(groups)]
    kernel_groups = [slice(g * per_kernel, (g + 1) * per_kernel) for g in range(groups)]
    return np.concatenate([
        convolve_steps(image[cs], weight[ks], bias[ks], stride, padding, dilation).output
        for cs, ks in zip(channel_groups, kernel_groups, strict=True)
    ])


def pad_or_crop(x: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Zeros added where a side's number is positive, rows or columns cut where it is negative."""
    x = np.pad(x, ((0, 0), (max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0))))
    rows = slice(max(-top, 0), x.shape[1] - max(-bottom, 0))
    cols = slice(max(-left, 0), x.shape[2] - max(-right, 0))
    return x[:, rows, cols]


def transposed_steps_output(image, weight, bias, stride, padding, dilation, output_padding, groups):
    """A transposed convolution as the sliding window: s - 1 zeros between input cells, d(k-1) - p
    zeros around (output_padding more at the bottom/right), then the kernel turned by 180 degrees
    with its input and output channels swapped, at stride 1."""
    channels, height, width = image.shape
    _, per_group, kernel_h, kernel_w = weight.shape
    (sh, sw), (ph, pw), (dh, dw), (oh, ow) = stride, padding, dilation, output_padding
    spread = np.zeros((channels, (height - 1) * sh + 1, (width - 1) * sw + 1))
    spread[:, ::sh, ::sw] = image
    qh, qw = dh * (kernel_h - 1) - ph, dw * (kernel_w - 1) - pw
    spread = pad_or_crop(spread, qh, qh + oh, qw, qw + ow)
    per_channel = channels // groups
    kernels = np.zeros((per_group * groups, per_channel, kernel_h, kernel_w))
    for g in range(groups):
        for c in range(per_channel):
            for k in range(per_group):
                kernels[g * per_group + k, c] = weight[g * per_channel + c, k, ::-1, ::-1]
    return grouped_steps_output(spread, kernels, bias, 1, 0, (dh, dw), groups)


def values(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    if kind == "pixels":
        return rng.integers(0, 256, shape) / 255.0
    if kind == "thirds":
        return rng.integers(-4, 5, shape) / 3.0
    return rng.normal(size=shape)


pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))


@settings(max_examples=80, deadline=None)
@given(
    channels_per_group=st.integers(1, 2), groups=st.integers(1, 3), kernels_per_group=st.integers(1, 2),
    size=st.tuples(st.integers(1, 7), st.integers(1, 7)), kernel=pairs, stride=pairs,
    padding=st.tuples(st.sampled_from(PADDINGS), st.sampled_from(PADDINGS)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), flip=st.booleans(),
    style=st.sampled_from(("functional", "module")), kind=st.sampled_from(("pixels", "thirds", "normal")),
    seed=st.integers(0, 2**16),
)
def test_the_code_computes_the_pages_map(channels_per_group, groups, kernels_per_group, size, kernel, stride,
                                         padding, dilation, flip, style, kind, seed):
    rng = np.random.default_rng(seed)
    channels, count = channels_per_group * groups, kernels_per_group * groups
    image = values(rng, (channels, *size), kind)
    weight = values(rng, (count, channels_per_group, *kernel), kind)
    bias = values(rng, (count,), kind)
    sliding = weight[..., ::-1, ::-1] if flip else weight
    try:
        expected = grouped_steps_output(image, sliding, bias, stride, padding, dilation, groups)
    except ValueError:  # the kernel does not fit, or "same" at stride 2: the code refuses it too
        with pytest.raises(ValueError):
            conv_code(image, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      flip=flip, style=style)
        return
    code = conv_code(image, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     flip=flip, style=style)
    output, printed = run_code(code)
    np.testing.assert_allclose(output, expected, rtol=0, atol=1e-9)
    assert printed.startswith("tensor(")
    assert ("torch.flip" in code) == flip
    same = padding == ("same", "same") and stride == (1, 1)
    assert ('padding="same"' in code) == same
    assert ("extra zero at the bottom/right" in code) == (same and any(
        dilation[axis] * (kernel[axis] - 1) % 2 for axis in (0, 1)))


@settings(max_examples=60, deadline=None)
@given(
    channels_per_group=st.integers(1, 2), groups=st.integers(1, 2), kernels_per_group=st.integers(1, 2),
    size=st.tuples(st.integers(1, 5), st.integers(1, 5)), kernel=pairs, stride=pairs,
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    extra=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    flip=st.booleans(), style=st.sampled_from(("functional", "module")), seed=st.integers(0, 2**16),
)
def test_the_code_of_a_transposed_convolution_computes_the_sliding_windows_map(
    channels_per_group, groups, kernels_per_group, size, kernel, stride, padding, dilation, extra, flip,
    style, seed,
):
    rng = np.random.default_rng(seed)
    channels = channels_per_group * groups
    image = values(rng, (channels, *size), "pixels")
    weight = values(rng, (channels, kernels_per_group, *kernel), "normal")  # (C, K/groups, kH, kW)
    bias = values(rng, (kernels_per_group * groups,), "normal")
    fits = all(e < max(s, d) and (n - 1) * s - 2 * p + d * (k - 1) + e + 1 >= 1
               for n, k, s, p, d, e in zip(size, kernel, stride, padding, dilation, extra, strict=True))
    arguments = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, transposed=True,
                     output_padding=extra, flip=flip, style=style)
    if not fits:
        with pytest.raises(ValueError):
            conv_code(image, weight, bias, **arguments)
        return
    sliding = weight[..., ::-1, ::-1] if flip else weight
    expected = transposed_steps_output(image, sliding, bias, stride, padding, dilation, extra, groups)
    torch_output = F.conv_transpose2d(
        torch.from_numpy(image)[None], torch.from_numpy(sliding.copy()), torch.from_numpy(bias), stride,
        padding, extra, groups, dilation)[0].numpy()
    np.testing.assert_allclose(expected, torch_output, rtol=0, atol=1e-9)  # the reference itself is right
    output, _ = run_code(conv_code(image, weight, bias, **arguments))
    np.testing.assert_allclose(output, expected, rtol=0, atol=1e-9)


def test_uneven_same_padding_at_a_stride_is_written_as_explicit_zeros():
    """'same' on the height of an even kernel next to stride 2 along the width: PyTorch's padding='same'
    refuses strides, so the code pads 0 above and 1 below itself."""
    rng = np.random.default_rng(0)
    image, weight, bias = rng.normal(size=(1, 5, 6)), rng.normal(size=(2, 1, 2, 3)), rng.normal(size=2)
    code = conv_code(image, weight, bias, stride=(1, 2), padding=("same", 1))
    assert "F.pad(image, (1, 1, 0, 1))" in code and 'padding="same"' not in code
    expected = convolve_steps(image, weight, bias, (1, 2), ("same", 1)).output
    np.testing.assert_allclose(run_code(code)[0], expected, rtol=0, atol=1e-12)


def test_numbers_are_written_exactly_and_readably():
    pixels = np.array([[0, 128, 255]]) / 255.0
    expected = "x = torch.tensor([[  0, 128, 255]], dtype=torch.float64) / 255  # c"
    assert tensor_code("x", pixels, "c") == expected
    thirds = np.array([-2, 0, 1]) / 3
    assert tensor_code("w", thirds, "c").endswith("/ 3  # c")
    odd = np.array([0.1, 1 / 7, -2.5e-12])
    text = tensor_code("b", odd, "c")
    assert repr(1 / 7) in text and "/ " not in text
    namespace: dict = {}
    exec(text, {"torch": torch}, namespace)  # noqa: S102
    assert namespace["b"].numpy().tolist() == odd.tolist()  # bit for bit


@pytest.mark.slow  # a fresh python importing torch: 11 s on the loaded 2-core CPU
def test_the_code_runs_alone_in_a_fresh_python(tmp_path):
    rng = np.random.default_rng(3)
    image, weight, bias = rng.integers(0, 256, (3, 6, 6)) / 255, rng.normal(size=(2, 3, 3, 3)), np.zeros(2)
    path = tmp_path / "conv.py"
    path.write_text(conv_code(image, weight, bias, padding="same", style="module"))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = convolve_steps(image, weight, bias, 1, "same").output
    first = float(done.stdout.split("[[[")[1].split(",")[0])
    assert first == pytest.approx(expected[0, 0, 0], abs=1e-4)  # printed to 4 decimals


@pytest.mark.parametrize(("arguments", "message"), [
    (dict(style="keras"), "code style must be one of functional, module"),
    (dict(groups=2), "2 groups cannot split 3 input channels"),
    (dict(transposed=True, padding="same"), 'takes its padding as numbers, not "same"'),
    (dict(transposed=True, stride=2, output_padding=2), "output padding \\(2\\) must be smaller"),
    (dict(padding="full"), 'Padding must be a whole number, "same" or "valid"'),
])
def test_bad_settings_get_one_sentence(arguments, message):
    with pytest.raises(ValueError, match=message):
        conv_code(np.zeros((3, 4, 4)), np.zeros((3, 3, 2, 2)), np.zeros(3), **arguments)
