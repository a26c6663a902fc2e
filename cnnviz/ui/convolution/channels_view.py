"""The Convolution page's lesson "Groups, depthwise and 1x1": how a layer connects channels.

On a picture with several channels (an RGB picture, or the four feature maps of the main lesson's
kernels on an MNIST digit): a grouped convolution and which input channels each kernel sees, with
its parameter count next to the ordinary convolution's; depthwise then pointwise (depthwise-
separable) and what it saves; a 1x1 convolution as channel mixing, one pixel's numbers written out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from cnnviz import pages
from cnnviz.convolution.channel_lesson import (
    FEATURE_KERNELS,
    LUMINANCE,
    feature_maps,
    grouped_layer,
    mix_pixel,
    separable_layer,
)
from cnnviz.convolution.channels import conv_parameters, divisors, group_mask
from cnnviz.datasets import samples
from cnnviz.ui.convolution.channel_figures import build_connections_figure, build_maps_figure
from cnnviz.ui.convolution.code_view import show_torch_code
from cnnviz.ui.widgets import kept, pixel_image

INPUTS = ("RGB picture (CIFAR-10, 3 channels)", "4 feature maps of an MNIST digit")
RGB_NAMES = ["R", "G", "B"]
CHART = {"width": "stretch", "config": {"displayModeBar": False}}


def show_channels_lesson() -> None:
    """Draw the lesson: the input's channels, grouped, depthwise-separable and 1x1 convolution."""
    st.markdown(
        "A picture often has several **channels**: R, G and B, or the feature maps of a layer. An ordinary "
        "kernel has one slice per input channel and adds all their products. This lesson changes *which* "
        "channels a kernel sees, and counts what that saves."
    )
    image, names, rgb = _lesson_input()
    seed = _show_grouped(image, names)
    _show_separable(image, names, seed)
    _show_mixing(image, names, rgb)


@st.cache_data(max_entries=16, show_spinner=False)
def _input_channels(dataset: str, index: int) -> np.ndarray:
    """(C, H, W) in 0..1 for an RGB sample, or (4, H, W) feature maps of an MNIST sample."""
    sample = samples.list_samples(dataset)[index]
    pixels = samples.load_sample(sample).numpy().astype(np.float64) / 255.0  # (C, H, W)
    return pixels if dataset == "cifar10" else feature_maps(pixels)


def _lesson_input() -> tuple[np.ndarray, list[str], bool]:
    choice = st.radio("Input", INPUTS, key=kept("chan_input"), horizontal=True)
    rgb = choice == INPUTS[0]
    dataset = "cifar10" if rgb else "mnist"
    options = samples.list_samples(dataset)
    index = st.selectbox("Sample", range(len(options)), format_func=lambda i: options[i].caption,
                         key=kept(f"chan_sample_{dataset}"))
    image = _input_channels(dataset, int(index))
    names = RGB_NAMES if rgb else list(FEATURE_KERNELS)
    if rgb:
        st.caption("The picture's three channels, each a map of values 0 to 1 (dark to light).")
    else:
        st.caption("The digit convolved with the main lesson's four 3x3 kernels (padding 1): four maps, "
                   "which a next layer reads as four input channels.")
    maps_at = st
    if rgb:  # the picture itself beside its three channels
        picture_col, maps_at = st.columns([1, 3], vertical_alignment="center")
        pixels = torch.from_numpy((image * 255).round().astype(np.uint8))  # (3, H, W)
        picture_col.image(pixel_image(pixels, 128), caption="the picture")
    maps_at.plotly_chart(build_maps_figure(image, names, "gray" if rgb else "RdBu_r"), key="chan_input_maps",
                         **CHART)
    return image, names, rgb


def _channel_list(names: list[str], seen: np.ndarray) -> str:
    return ", ".join(name for name, on in zip(names, seen, strict=True) if on)


def _parameter_table(channels: int, kernels: int, current: int) -> pd.DataFrame:
    """One row per possible group count: weights, and multiply-adds behind one output value."""
    rows = []
    for groups in divisors(channels):
        layer, ordinary = conv_parameters(channels, kernels, 3, groups, bias=False)
        name = {1: "1 (ordinary)", channels: f"{channels} (depthwise)"}.get(groups, str(groups))
        rows.append({"groups": name + (" ◀ shown" if groups == current else ""),
                     "channels each": layer.per_kernel,
                     "weights": f"{kernels} x {layer.per_kernel} x 3x3 = {layer.weights}",
                     "of ordinary": f"{layer.weights / ordinary.weights:.0%}",
                     "multiply-adds a value": layer.mult_adds_per_cell})
    return pd.DataFrame(rows).set_index("groups")


def _show_grouped(image: np.ndarray, names: list[str]) -> int:
    """The grouped layer; returns the kernel seed, which the separable layer uses too."""
    channels = image.shape[0]
    st.subheader("Grouped convolution: each kernel sees only its group's channels")
    group_col, seed_col = st.columns([2, 1])
    groups = group_col.radio("Groups", divisors(channels), key=kept(f"{pages.CHAN_GROUPS_PREFIX}{channels}"),
                             horizontal=True, help="The channels and the kernels are split into this many "
                                                   "groups.")
    seed = seed_col.number_input("Kernel seed", 0, 999, 0, key=kept("chan_seed"),
                                 help="The kernels are random numbers from this seed, rounded to one "
                                      "decimal.")
    layer = grouped_layer(image, channels, int(groups), int(seed))
    mask = group_mask(channels, channels, int(groups))
    per = layer.parameters.per_kernel
    if groups == 1:
        st.markdown(f"**{channels} kernels of 3x3, groups = 1 (ordinary):** every kernel has a slice for "
                    f"each of the {channels} input channels and adds all their products.")
    else:
        st.markdown(
            f"**{channels} kernels of 3x3, groups = {groups}:** the {channels} input channels and the "
            f"{channels} kernels are split into {groups} groups; each kernel has a slice only for the {per} "
            f"channel{'s' if per > 1 else ''} of its group: "
            + "; ".join(f"kernel {k + 1} sees {_channel_list(names, mask[k])}" for k in range(channels)) + "."
        )
    st.plotly_chart(build_connections_figure(layer.steps.weight, mask, names), key="chan_connections",
                    **CHART)
    st.plotly_chart(build_maps_figure(layer.steps.output, [f"output {k + 1}" for k in range(channels)]),
                    key="chan_grouped_maps", **CHART)
    show_torch_code(image, layer.steps.weight, None, key=pages.CHAN_GROUPED_CODE_KEY, padding=1,
                    groups=int(groups))
    ordinary = "" if groups == 1 else (
        f"; the ordinary convolution has {layer.ordinary.formula}. Each output value costs "
        f"{layer.parameters.mult_adds_per_cell} multiply-adds instead of {layer.ordinary.mult_adds_per_cell}")
    st.markdown(f"**Parameters:** {layer.parameters.formula}{ordinary}. (Biases, one per kernel, are left "
                "out here; `nn.Conv2d` adds them.)")
    st.table(_parameter_table(channels, channels, int(groups)))
    return int(seed)


def _show_separable(image: np.ndarray, names: list[str], seed: int) -> None:
    channels = image.shape[0]
    st.subheader("Depthwise-separable: one kernel per channel, then a 1x1 that mixes them")
    out = st.number_input("Output channels of the 1x1", 1, 8, 4, key=kept("chan_sep_out"))
    layer = separable_layer(image, int(out), seed)
    counts = layer.parameters
    st.markdown(
        f"**Depthwise** (groups = {channels}): each channel gets its own 3x3 kernel, nothing is mixed. "
        f"**Pointwise**: a 1x1 convolution makes {out} maps, each a weighted sum of the {channels} "
        "depthwise maps at every pixel. MobileNet is built from this pair."
    )
    st.plotly_chart(build_maps_figure(layer.depthwise.output, [f"depthwise on {n}" for n in names]),
                    key="chan_depthwise_maps", **CHART)
    weights = layer.pointwise.weight[:, :, 0, 0]  # (K, C)
    st.caption("The 1x1 kernels: a row per output map, one weight per depthwise map.")
    pointwise_names = [f"pointwise {k + 1}" for k in range(int(out))]
    table = pd.DataFrame(weights, columns=[f"depthwise on {n}" for n in names], index=pointwise_names)
    st.table(table.style.format("{:.1f}"))
    st.plotly_chart(build_maps_figure(layer.pointwise.output, pointwise_names), key="chan_pointwise_maps",
                    **CHART)
    saving = counts.ordinary.weights / counts.total
    st.markdown(
        f"**Parameters:** depthwise {counts.depthwise.formula}; pointwise {counts.pointwise.formula}; "
        f"together **{counts.total}**. One ordinary 3x3 layer from {channels} to {out} channels: "
        f"{counts.ordinary.formula}, **{saving:.1f} times as many**. Multiply-adds per output pixel: "
        f"{counts.mult_adds_per_pixel} against {counts.ordinary_mult_adds_per_pixel}."
    )


def _show_mixing(image: np.ndarray, names: list[str], rgb: bool) -> None:
    channels, height, width = image.shape
    st.subheader("1x1 convolution: mixing the channels at every pixel")
    st.markdown(
        "A 1x1 kernel has one weight per input channel and no neighbours: each output pixel is a weighted "
        "sum of the channels **at that pixel**. "
        + ("The defaults are the weights that turn RGB into gray (0.299 R + 0.587 G + 0.114 B); "
           "try your own." if rgb else "The defaults average the four maps; try your own.")
    )
    defaults = LUMINANCE if rgb else (0.25,) * channels
    weight_cols = st.columns(channels)
    weights = tuple(
        float(col.number_input(f"weight of {name}", -2.0, 2.0, defaults[c], 0.05, format="%g",
                               key=kept(f"chan_mix_{channels}_{c}")))
        for c, (col, name) in enumerate(zip(weight_cols, names, strict=True))
    )
    row_col, col_col = st.columns(2)
    row = int(row_col.number_input("Pixel row", 0, height - 1, height // 2, key=kept("chan_pixel_row")))
    col = int(col_col.number_input("Pixel column", 0, width - 1, width // 2, key=kept("chan_pixel_col")))
    steps = mix_pixel(image, weights)
    step = steps.step(0, row, col)
    terms = " + ".join(f"{w:g} x {x:.3f} ({name})"
                       for w, x, name in zip(weights, step.inputs[:, 0, 0], names, strict=True))
    products = " + ".join(f"{p:.3f}" for p in step.products[:, 0, 0])
    st.markdown(f"Pixel ({row}, {col}): `{terms}`  \n`= {products} = {step.value:.4f}`".replace("+ -", "- "))
    st.plotly_chart(build_maps_figure(np.concatenate([image, steps.output]), [*names, "1x1 output"],
                                      "gray" if rgb else "RdBu_r", marked=(row, col)),
                    key="chan_mix_maps", **CHART)
    show_torch_code(image, steps.weight, None, key="chan_mix_code")
