"""The Convolution page on trained kernels: the hand-off from the explorer (a layer's real input and
learned kernel, one input channel at a time and then their sum) and the picker of a trained model's
first-layer filters."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from cnnviz import pages
from cnnviz.convolution.learned import LearnedConvolution, LearnedKernel
from cnnviz.convolution.scene import ConvSettings
from cnnviz.explorer.handoff import first_conv, first_layer_kernels, layer_padding
from cnnviz.ui.convolution.figures import build_before_after_figure
from cnnviz.ui.host import enabled_pages
from cnnviz.ui.predict.parts import load_choice, model_choices
from cnnviz.ui.widgets import crisp_images, kept

MAX_ANIMATED_CHANNELS = 3  # the animation runs on all channels at once up to RGB; beyond, one at a time
TOP_CHANNELS = 8  # channels listed one by one in a cell's sum; the rest as one line
THUMB_PX = 30  # about this wide on screen, a whole number of pixels per weight
THUMB_MARGIN = 3
SEEDED_KEY = "conv_handoff_seeded"  # the hand-off whose picked cell already placed the animated region
REGION_KEYS = ("conv_large_view", "conv_region_top", "conv_region_left")  # the page's region widgets


@dataclass(frozen=True)
class Convolved:
    """What the page convolves: a cache key naming the input, the (C, H, W) input and the settings."""

    key: str
    pixels: np.ndarray
    settings: ConvSettings
    channel: int | None = None  # a trained layer's one input channel; None: all of them (or a picture)


def handoff() -> LearnedConvolution | None:
    """The trained layer the explorer handed over, if any."""
    learned = st.session_state.get(pages.CONVOLUTION_HANDOFF_KEY)
    return learned if isinstance(learned, LearnedConvolution) else None


def _explorer_page():
    return next((spec for spec in enabled_pages() if spec.url_path == pages.EXPLORE_PAGE), None)


def _back_to_presets() -> None:
    for key in (pages.CONVOLUTION_HANDOFF_KEY, SEEDED_KEY, *REGION_KEYS):  # a layer's region fits no preset
        st.session_state.pop(key, None)


def handoff_controls(learned: LearnedConvolution) -> tuple[Convolved, Convolved]:
    """The banner, the way back and the channel choice; returns what the animation runs on and the
    whole layer (all channels, bias added: the layer's real output) that ReLU and pooling take."""
    name = learned.model_name or "the model"
    picked = ""
    if learned.cell is not None:
        row, col = learned.cell
        value = float(learned.output[row, col])
        picked = (f" The cell you picked, row {row}, column {col}, is **{value:.4f}**: its sum over the "
                  "input channels is written out below.")
    with st.container(border=True):
        st.info(
            f"Running on **layer {learned.layer_number} of {name}**: its real input and learned kernel "
            f"(output channel {learned.out_channel}).{picked}",
            icon=":material/model_training:",
        )
        back_col, presets_col = st.columns(2)
        explorer = _explorer_page()
        if explorer is not None and back_col.button("Back to the explorer", icon=":material/arrow_back:",
                                                    key="conv_back_to_explorer"):
            st.switch_page(explorer.path)
        presets_col.button("Back to the presets", icon=":material/grid_on:", key="conv_back_to_presets",
                           on_click=_back_to_presets)
        channels = learned.channels
        kernel_h, kernel_w = learned.kernel_size
        st.caption(_input_sentence(learned) + f" Kernel {kernel_h}x{kernel_w}, stride {learned.stride}, "
                   f"padding {learned.padding}, dilation {learned.dilation}, bias {learned.bias:.4g}.")
        full = Convolved(f"learned:{learned.key()}:all", learned.input, ConvSettings.of_learned(learned))
        if channels == 1:
            return full, full
        key = learned.key()
        views = ("one input channel at a time", f"all {channels} channels at once")
        if channels <= MAX_ANIMATED_CHANNELS:  # the RGB input of a CIFAR model's first layer
            default = 1 if learned.in_channel is None else 0
            view = st.radio("Animate", views, index=default, key=f"conv_learned_view_{key}", horizontal=True)
            if view == views[1]:
                return full, full
        first = learned.in_channel
        if first is None:  # the picked cell's strongest input channel, else the first one
            first = 0 if learned.cell is None else learned.strongest_channel(*learned.cell)
        channel = st.number_input(
            f"Input channel (0 to {channels - 1})", 0, channels - 1, first,
            key=f"conv_learned_channel_{key}",
            help=None if learned.cell is None else "It starts on the input channel that adds most to the "
                                                  "cell you picked.",
        )
        channel = int(channel)
        one = Convolved(f"learned:{key}:{channel}", learned.input[channel : channel + 1],
                        ConvSettings.of_learned(learned, channel), channel)
        return one, full


def picked_region(learned: LearnedConvolution | None, side: int,
                  output_size: tuple[int, int]) -> tuple[int, int] | None:
    """On a map too large to animate every step: the first row and column of the side x side region
    around the cell picked on the explorer (the page's defaults, so the animation passes that cell), or
    None. A new hand-off forgets the region widgets' old values, so these defaults take effect."""
    if learned is None or learned.cell is None:
        return None
    if st.session_state.get(SEEDED_KEY) != learned.key():
        st.session_state[SEEDED_KEY] = learned.key()
        for key in REGION_KEYS:
            st.session_state.pop(key, None)
    starts = (min(max(0, at - side // 2), max(0, size - side)) for at, size in zip(learned.cell, output_size,
                                                                                  strict=True))
    return next(starts), next(starts)


def _input_sentence(learned: LearnedConvolution) -> str:
    channels = learned.channels
    height, width = learned.input.shape[1:]
    maps = f"{channels} map{'s' if channels > 1 else ''} of {height}x{width}"
    if learned.layer_number == 0:
        return f"Input: the image as the model saw it (normalized), {maps}."
    return f"Input: what layer {learned.layer_number - 1} gave for this image, {maps}."


def channel_caption(learned: LearnedConvolution, convolved: Convolved) -> str:
    """One line over the animation on what it shows."""
    if convolved.pixels.shape[0] == learned.channels:
        which = "its one input channel" if learned.channels == 1 else f"all {learned.channels} input channels"
        return (f"The animation runs on {which} with the real bias: its "
                f"output is layer {learned.layer_number}'s output channel {learned.out_channel}.")
    return ("The animation runs on one input channel with its slice of the kernel: its output is that "
            "channel's partial sums. The layer adds the partial sums of all channels and the bias once, "
            "below.")


def show_channel_sum(learned: LearnedConvolution, channel: int | None) -> None:
    """The sum over the input channels: the picked channel's partial sums beside the layer's output,
    and one cell's sum written out (the channels contributing most, the rest as one line)."""
    partial = learned.channel_sums()  # (C, Ho, Wo)
    output = partial.sum(axis=0) + learned.bias
    channels = learned.channels
    shown = 0 if channel is None else channel
    st.subheader(f"The sum over all {channels} input channels")
    st.markdown(
        f"Every input channel gives a map of partial sums. Layer {learned.layer_number} adds the "
        f"{channels} maps and the bias **{learned.bias:.4g}**: that is its output channel "
        f"{learned.out_channel}, the same numbers as the model's own forward pass. Both maps share one "
        "colour scale: one channel alone is only a part of the sum."
    )
    st.plotly_chart(
        build_before_after_figure(
            partial[shown], output,
            (f"input channel {shown} alone (no bias)", f"all {channels} channels + bias = layer output"),
            height=400,
        ),
        key="conv_sum_chart", width="stretch", config={"displayModeBar": False},
    )
    out_h, out_w = output.shape
    best = learned.cell or np.unravel_index(int(np.abs(output).argmax()), output.shape)
    row_col, col_col = st.columns(2)
    row = int(row_col.number_input(f"Output row (0 to {out_h - 1})", 0, out_h - 1, int(best[0]),
                                   key=f"conv_sum_row_{learned.key()}"))
    col = int(col_col.number_input(f"Output column (0 to {out_w - 1})", 0, out_w - 1, int(best[1]),
                                   key=f"conv_sum_col_{learned.key()}"))
    colours = learned.layer_number == 0 and channels == 3  # the image's own R, G, B
    table = cell_sum_table(partial[:, row, col], learned.bias, ("R", "G", "B") if colours else None)
    st.dataframe(table, hide_index=True, key="conv_sum_table", height=35 * (len(table) + 1) + 3,
                 column_config={"value": st.column_config.NumberColumn(format="%.6g")})
    picked = " (the cell you picked on the explorer)" if learned.cell == (row, col) else ""
    st.caption(
        f"Output ({row}, {col}){picked} = **{output[row, col]:.6g}**; the model's own forward pass gave "
        f"{float(learned.output[row, col]):.6g}."
    )


def cell_sum_table(partial: np.ndarray, bias: float, names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One cell's sum: the channels that contribute most, the others as one line, the bias, the total."""
    order = np.argsort(-np.abs(partial), kind="stable")
    rows = [(f"input channel {c}" + (f" ({names[c]})" if names else ""), float(partial[c]))
            for c in order[:TOP_CHANNELS]]
    rest = order[TOP_CHANNELS:]
    if len(rest):
        rows.append((f"the other {len(rest)} channels", float(partial[rest].sum())))
    rows += [("bias", float(bias)), ("= output", float(partial.sum() + bias))]
    return pd.DataFrame(rows, columns=["term", "value"])


def _thumbnail(kernel: np.ndarray) -> Image.Image:
    """A (C, k, k) kernel as a small picture: gray (or RGB) with 0 at mid-gray, on its own scale."""
    limit = float(np.abs(kernel).max()) or 1.0
    shown = ((kernel / limit + 1) * 127.5).round().astype(np.uint8)
    image = Image.fromarray(shown[0] if shown.shape[0] != 3 else shown.transpose(1, 2, 0))
    side = kernel.shape[1] * max(1, THUMB_PX // kernel.shape[1])
    framed = Image.new(image.mode, (side + 2 * THUMB_MARGIN, side + 2 * THUMB_MARGIN), "white")
    framed.paste(image.resize((side, side), Image.Resampling.NEAREST), (THUMB_MARGIN, THUMB_MARGIN))
    return framed  # white around each filter: side by side they stay apart


def first_layer_kernel(rgb_picture: bool) -> tuple[LearnedKernel, dict[str, object]] | None:
    """The model and filter pickers; returns the chosen kernel and its layer's stride, padding,
    dilation and bias (the defaults of the page's controls), or None (with a sentence) when there is none."""
    choices = model_choices()
    if not choices:
        st.info("No trained model is here yet: train one on the Train page.")
        return None
    choice = st.selectbox("Model", choices, format_func=lambda c: c.label, key=kept("conv_learned_model"))
    try:
        loaded = load_choice(choice)
        kernels = first_layer_kernels(loaded.model)
        conv = first_conv(loaded.model)
        padding = layer_padding(conv)
    except ValueError as err:
        st.warning(str(err))
        return None
    with crisp_images("conv_filters"):
        st.image([_thumbnail(k) for k in kernels], caption=[str(i) for i in range(len(kernels))])
    if kernels[0].shape[0] == 3:
        st.caption("Its filters in colour: mid-gray is 0; a colour means the filter weighs that colour "
                   "positively, its opposite negatively (each filter on its own scale).")
    else:
        st.caption("Its filters: gray is 0, light positive, dark negative (each on its own scale).")
    suffix = hashlib.sha1(choice.label.encode()).hexdigest()[:8]
    index = int(st.selectbox(f"Filter of its first layer (0 to {len(kernels) - 1}, pictured above)",
                             range(len(kernels)), key=kept(f"conv_learned_filter_{suffix}")))
    kernel = kernels[index]
    bias = 0.0 if conv.bias is None else float(conv.bias.detach()[index])
    st.caption(_kernel_channels_line(kernel.shape[0], rgb_picture))
    learned = LearnedKernel.of(f"filter {index} of {loaded.name}'s first layer", kernel)
    with st.expander("Its weights as the page uses them"):  # the figure's kernel panel is narrow on a phone
        used = learned.for_channels(3 if rgb_picture else 1)
        for name, weights in zip(("R", "G", "B") if len(used) == 3 else ("",), used, strict=True):
            if name:
                st.caption(f"{name} slice")
            st.dataframe(pd.DataFrame(np.round(weights, 4)), key=f"conv_learned_weights_{name}")
    layer = {"stride": int(conv.stride[0]), "padding": padding, "dilation": int(conv.dilation[0]),
             "bias": bias, "suffix": suffix}
    return learned, layer


def _kernel_channels_line(kernel_channels: int, rgb_picture: bool) -> str:
    """What the page does with a kernel whose channels differ from the picture's, in one line."""
    scale = ("Pixels here run 0 to 1; the model saw them normalized, so its own numbers differ by a "
             "scale and an offset.")
    if kernel_channels == 3 and not rgb_picture:
        return ("This kernel has R, G and B slices; on the gray picture the page uses their sum (the same as "
                "the kernel on a colour picture whose R = G = B). Choose RGB to run each slice on its "
                "colour. " + scale)
    if kernel_channels == 1 and rgb_picture:
        return ("This kernel has one slice; on the colour picture each of R, G, B gets it divided by 3, so "
                "it acts on the channel average. " + scale)
    return scale
