"""The Convolution page's "Transposed convolution" lesson: its own small input, kernel and settings,
the output-size formula with the numbers, the sliding window over the stretched input, the scatter
view and the link to the gradient of a strided convolution."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cnnviz import pages
from cnnviz.convolution.frames import describe_frames, frame_positions
from cnnviz.convolution.kernels import CUSTOM, PRESETS, make_kernel, parse_kernel
from cnnviz.convolution.transposed import (
    INPUT,
    INSERTED,
    PADDING,
    autograd_input_gradient,
    conv2d_input_gradient,
    parse_input_grid,
    scatter_contributions,
    transposed_steps,
)
from cnnviz.convolution.transposed_sizes import TransposedAxis
from cnnviz.ui.convolution.code_view import show_torch_code
from cnnviz.ui.convolution.figures import build_before_after_figure
from cnnviz.ui.convolution.transposed_figures import build_scatter_figure, build_transposed_figure
from cnnviz.ui.widgets import kept

MAX_FRAMES = 64
ONES, COUNTING = "all ones", "1, 2, 3, ... (shows the flip)"
KERNELS = (ONES, COUNTING, "identity", "box blur", "Gaussian blur", "Sobel x", "Laplacian", "random", CUSTOM)
# (label, key, lowest, highest, default) of the settings set per axis
AXIS_SETTINGS = (
    ("Stride", pages.TCONV_STRIDE_KEY, 1, 3, 2),
    ("Padding", "tconv_padding", 0, 3, 0),
    ("Output padding", "tconv_output_padding", 0, 2, 0),
    ("Dilation", "tconv_dilation", 1, 2, 1),
)
CHART = {"width": "stretch", "config": {"displayModeBar": False}}


def _kernel(name: str, height: int, width: int, custom: str) -> np.ndarray:
    if name == ONES:
        return np.ones((height, width))
    if name == COUNTING:
        return np.arange(1.0, height * width + 1).reshape(height, width)
    if name == CUSTOM:
        return parse_kernel(custom)
    return make_kernel(name, height, width)


def _input_and_kernel() -> tuple[np.ndarray, np.ndarray, float]:
    """The input grid, the kernel and the bias; ValueError with the reason for text that is not one."""
    input_col, kernel_col = st.columns(2)
    text = input_col.text_area("Input: one row per line (at most 6x6)", "1 2 3\n4 5 6\n7 8 9",
                               key=kept("tconv_input"), height=130)
    name = kernel_col.selectbox("Kernel", KERNELS, key=kept("tconv_kernel"))
    if name == CUSTOM:
        custom = kernel_col.text_area("Custom kernel: one row per line", "1 2\n3 4", key=kept("tconv_custom"),
                                      height=80)
        height = width = 0
    else:
        custom = ""
        size_h, size_w = kernel_col.columns(2)
        height = size_h.number_input("Kernel height", 1, 4, 3, key=kept("tconv_kernel_h"))
        width = size_w.number_input("Kernel width", 1, 4, 3, key=kept("tconv_kernel_w"))
    if name in PRESETS:
        kernel_col.caption(f"**{name}**: {PRESETS[name].description}.")
    bias = kernel_col.number_input("Bias", -5.0, 5.0, 0.0, 0.5, format="%g", key=kept("tconv_bias"))
    return parse_input_grid(text), _kernel(name, int(height), int(width), custom), float(bias)


def _axis_settings() -> dict[str, tuple[int, int]]:
    """Stride, padding, output padding and dilation, each as a (height, width) pair."""
    values = {}
    for column, (label, key, low, high, default) in zip(st.columns(4), AXIS_SETTINGS, strict=True):
        column.markdown(f"**{label}**")
        pair = [column.number_input(axis, low, high, default, key=kept(f"{key}_{axis[0]}"),
                                    help=f"{label} along the {axis}")
                for axis in ("height", "width")]
        values[key.removeprefix("tconv_")] = (int(pair[0]), int(pair[1]))
    return values


def _show_sizes(sizes: tuple[TransposedAxis, TransposedAxis]) -> None:
    height, width = sizes
    st.latex(r"\text{out} = (n - 1)\,s - 2p + d\,(k - 1) + \text{op} + 1")
    st.caption("n: input size, s: stride, p: padding, d: dilation, k: kernel size, op: output padding; "
               "per axis.")
    st.markdown(f"**Output: {height.output} x {width.output}** (height x width)")
    for size in sizes:
        st.markdown(f"{size.axis.capitalize()}: `{size.formula}`")


def _cells(count: int, axis: str) -> str:
    """3, "height" -> "3 rows"; 1, "width" -> "1 column"."""
    noun = "row" if axis == "height" else "column"
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _slide_caption(steps, sizes: tuple[TransposedAxis, TransposedAxis]) -> str:
    height, width = sizes
    parts = []
    for size in sizes:
        side = "top/bottom" if size.axis == "height" else "left/right"
        edge = "bottom" if size.axis == "height" else "right"
        zeros = (f"{size.stride - 1} zero{'s' if size.stride != 2 else ''} between neighbours"
                 if size.stride > 1 else "no zeros inserted (stride 1)")
        border = (f"{size.border} zero{'s' if size.border != 1 else ''} of padding {side} "
                  f"(d(k-1) - p = {size.dilation}*({size.kernel}-1) - {size.padding})"
                  if size.border >= 0 else
                  f"{_cells(-size.border, size.axis)} of the stretched input cropped {side} "
                  f"(d(k-1) - p = {size.border} is negative)")
        extra = (f", plus {size.output_padding} more at the {edge} (output padding)"
                 if size.output_padding else "")
        along = "Along" if not parts else "along"
        parts.append(f"{along} the {size.axis}: {zeros}, {border}{extra}")
    return (
        f"**How the sliding view is built.** Cells framed in blue are your "
        f"**{steps.count(INPUT)} input cells** (the axes name their own row and column); slate cells are the "
        f"**{steps.count(INSERTED)} inserted zeros**; orange cells are the **{steps.count(PADDING)} zeros of "
        f"padding**. " + "; ".join(parts) + ". Then the kernel, turned 180°, slides with stride 1 "
        f"(dilation {height.dilation} x {width.dilation}), exactly as on the ordinary convolution lesson."
    )


def _show_gradient_link(image: np.ndarray, kernel: np.ndarray, settings: dict, sizes) -> None:
    st.subheader("Where it comes from: the gradient of a strided convolution")
    out_h, out_w = sizes[0].output, sizes[1].output
    rows, cols = image.shape
    st.markdown(
        "In backpropagation every output cell of a convolution sends its gradient back along the kernel's "
        "taps, onto exactly the input cells its window covered, each times its weight: that is the scatter "
        "above, so the gradient of a strided convolution with respect to its input *is* a transposed "
        "convolution with the same kernel, stride, padding and dilation (which is also why "
        "\"deconvolution\" is a misnomer: it does not undo the convolution). The output padding picks "
        "which input size to give back, since a stride-s convolution maps s different sizes to one output."
    )
    if any(o >= s for o, s in zip(settings["output_padding"], settings["stride"], strict=True)):
        st.info("With an output padding as large as the stride, no convolution of these settings maps back "
                "to your grid's size, so there is no gradient to compare; use an output padding below the "
                "stride.", icon=":material/info:")
        return
    weight = kernel[None, None]  # (1, 1, kH, kW): conv2d's layout is conv_transpose2d's read backwards
    args = ((out_h, out_w), settings["stride"], settings["padding"], settings["dilation"])
    ours = conv2d_input_gradient(image[None], weight, *args)[0]
    torch_grad = autograd_input_gradient(image[None], weight, *args)[0]
    difference = float(np.abs(ours - torch_grad).max())
    st.markdown(
        f"Here: a convolution with these settings turns a {out_h}x{out_w} input into a {rows}x{cols} "
        "output, the size of your grid. With your grid as the gradient arriving at that output, "
        "`torch.autograd.grad` gives the right-hand map; the transposed convolution above (without its "
        "bias) gives the left. "
        + (f"Largest difference: **{difference:.2g}**, float64 rounding in the last digits."
           if difference else "Largest difference: **0**.")
    )
    st.plotly_chart(
        build_before_after_figure(ours, torch_grad, ("transposed convolution (no bias)",
                                                     "autograd of conv2d w.r.t. its input")),
        key="tconv_gradient_chart", **CHART,
    )


def show_transposed_lesson() -> None:
    """The lesson: controls, the size formula, the sliding view, the scatter view and the gradient link."""
    st.subheader("Transposed convolution: from a small map to a larger one")
    st.markdown(
        "Decoders, segmentation networks and GAN generators grow a small map into a larger one with a "
        "**transposed convolution**. Two ways to see the same numbers: spread the input out with zeros "
        "and slide the (flipped) kernel over it, or let every input cell paste a copy of the kernel, "
        "scaled by its value, into the output."
    )
    with st.container(border=True):
        try:
            image, kernel, bias = _input_and_kernel()
        except ValueError as err:
            st.warning(str(err), icon=":material/block:")
            return
        settings = _axis_settings()
    args = (settings["stride"], settings["padding"], settings["output_padding"], settings["dilation"])
    try:
        steps = transposed_steps(image, kernel, [bias], *args)
    except ValueError as err:
        st.warning(str(err), icon=":material/block:")
        return
    scatter = scatter_contributions(image, kernel, [bias], *args)
    with st.container(border=True):
        _show_sizes(steps.sizes)

    st.subheader("1. Insert zeros, pad, slide the flipped kernel")
    st.markdown(_slide_caption(steps, steps.sizes))
    out_h, out_w = steps.steps.output_size
    positions = frame_positions(out_h, out_w, MAX_FRAMES)
    st.caption(describe_frames(positions, out_h, out_w))
    st.plotly_chart(build_transposed_figure(steps, positions), key="tconv_chart", **CHART)
    show_torch_code(steps.image, steps.weight, steps.steps.bias, key=pages.TCONV_CODE_KEY, transposed=True,
                    stride=settings["stride"], padding=settings["padding"],
                    output_padding=settings["output_padding"], dilation=settings["dilation"])

    st.subheader("2. Every input cell pastes value x kernel")
    st.markdown(
        "The same output, input cell by input cell: cell (i, j) multiplies the kernel (as it is, not "
        "flipped) by its value and adds it into the output with the kernel's corner at (i·s − p, j·s − p), "
        "taps d apart. Where pastes overlap they add up; parts that fall outside the output are cropped by "
        "the padding. Press ▶ Play: the last frame adds the bias and equals the map above."
    )
    cropped = scatter.cropped_cells()
    if cropped:
        listed = ", ".join(f"({i},{j})" for i, j in cropped)
        cells = "cells" if len(cropped) > 1 else "cell"
        st.caption(f"The padding crops the whole paste of input {cells} {listed}: it adds nothing to this "
                   "output.")
    st.plotly_chart(build_scatter_figure(scatter), key="tconv_scatter_chart", **CHART)
    _show_gradient_link(image, kernel, settings, steps.sizes)
