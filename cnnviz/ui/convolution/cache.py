"""What the convolution page computes, plain and behind Streamlit's caches.

The plain functions (``compute_*``/``make_*``) are what the benchmark times; the page calls the
cached ones, keyed by a string naming the picture plus the settings, so a rerun that changes
nothing recomputes nothing and the animation is not reset.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from cnnviz.convolution.kernels import build_kernel_bank
from cnnviz.convolution.pooling import max_pool_gradient, pool_steps
from cnnviz.convolution.steps import ConvSteps, convolve_steps, frame_positions, region_positions, relu
from cnnviz.images.decode import decode_image
from cnnviz.images.picture import upload_pixels
from cnnviz.ui.convolution.figures import build_convolution_figure, build_pooling_figure

# (kernel_h, kernel_w, stride, padding "0".."3"/"same"/"valid", dilation, kernel names, custom text, bias)
ConvSettings = tuple[int, int, int, str, int, tuple[str, ...], str, float]
# (mode, window, stride, padding)
PoolSettings = tuple[str, int, int, int]
CACHE_ENTRIES = 32


def compute_conv_steps(pixels: np.ndarray, settings: ConvSettings) -> ConvSteps:
    """Every step of the page's convolution; ValueError with the reason when it does not fit."""
    kernel_h, kernel_w, stride, padding, dilation, names, custom, bias = settings
    weight = build_kernel_bank(names, kernel_h, kernel_w, pixels.shape[0], custom)  # (K, C, kH, kW)
    padding_value: int | str = int(padding) if padding.isdigit() else padding
    return convolve_steps(pixels, weight, np.full(len(names), bias), stride, padding_value, dilation)


def make_conv_figure(
    pixels: np.ndarray, settings: ConvSettings, max_frames: int, region: tuple[int, int] | None = None
) -> go.Figure:
    """The animation: ``max_frames`` cells spread over the map, or every cell of a square region
    (side sqrt(max_frames)) whose top-left output cell is ``region``."""
    steps = compute_conv_steps(pixels, settings)
    if region is None:
        positions = frame_positions(*steps.output_size, max_frames)
    else:
        positions = region_positions(*steps.output_size, *region, region_side(max_frames))
    rgb = None
    if steps.padded.shape[0] == 3:
        rgb = (np.clip(steps.padded, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)  # (Hp, Wp, 3)
    names = ["R", "G", "B"] if steps.padded.shape[0] == 3 else None
    return build_convolution_figure(
        steps, positions, input_rgb=rgb, channel_names=names, fill_reading_order=region is None
    )


def region_side(max_frames: int) -> int:
    """The side of the square output region animated step by step: 8 for 64 frames."""
    return max(1, int(max_frames**0.5))


def make_pool_figure(
    pixels: np.ndarray, settings: ConvSettings, pool: PoolSettings, max_frames: int
) -> tuple[go.Figure, tuple[np.ndarray, np.ndarray] | None]:
    """Pooling of feature map 1 after ReLU, and for max pooling the (upstream, input) gradients."""
    mode, window, stride, padding = pool
    feature = relu(compute_conv_steps(pixels, settings).output[:1])  # (1, Ho, Wo)
    steps = pool_steps(feature, window, stride, padding, mode)
    figure = build_pooling_figure(steps, frame_positions(*steps.output.shape[1:], max_frames))
    if mode != "max":
        return figure, None
    upstream = np.ones_like(steps.output)
    return figure, (upstream[0], max_pool_gradient(steps, upstream)[0])


@st.cache_data(max_entries=8, show_spinner="Reading your picture ...")
def decoded_upload(
    digest: str, _data: bytes, max_side: int, max_bytes: int, max_pixels: int,
) -> tuple[np.ndarray, str]:
    """The uploaded file decoded and shrunk once per file (``digest`` names it), as (C, H, W) uint8 and
    a note; ImageError if unreadable or above the server's limits."""
    return upload_pixels(decode_image(_data, max_bytes=max_bytes, max_pixels=max_pixels), max_side)


@st.cache_resource(max_entries=CACHE_ENTRIES, show_spinner=False)
def conv_steps_for(picture_key: str, _pixels: np.ndarray, settings: ConvSettings) -> ConvSteps:
    return compute_conv_steps(_pixels, settings)


@st.cache_resource(max_entries=CACHE_ENTRIES, show_spinner="Drawing every step ...")
def conv_figure(
    picture_key: str,
    _pixels: np.ndarray,
    settings: ConvSettings,
    max_frames: int,
    region: tuple[int, int] | None,
) -> go.Figure:
    return make_conv_figure(_pixels, settings, max_frames, region)


@st.cache_resource(max_entries=CACHE_ENTRIES, show_spinner=False)
def pool_figure_and_gradient(
    picture_key: str, _pixels: np.ndarray, settings: ConvSettings, pool: PoolSettings, max_frames: int
):
    return make_pool_figure(_pixels, settings, pool, max_frames)
