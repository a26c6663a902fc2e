"""What the convolution page computes, plain and behind Streamlit's caches.

One scene per picture and settings: the convolution is computed once, and the animation, the
ReLU figure and the pooling all draw from it. The plain functions (``make_*``) are what the
benchmark times; the page calls the cached ones, keyed by a string naming the picture plus the
settings, so a rerun that changes nothing recomputes nothing and the animation is not reset.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from cnnviz.convolution.frames import FramePlan
from cnnviz.convolution.scene import ConvScene, ConvSettings, PoolScene, PoolSettings
from cnnviz.images.attempt import Attempt
from cnnviz.images.decode import decode_image
from cnnviz.images.picture import upload_pixels
from cnnviz.ui.convolution.figures import build_convolution_figure
from cnnviz.ui.convolution.pool_figure import build_pooling_figure

CACHE_ENTRIES = 32
RGB_CHANNELS = ["R", "G", "B"]


def make_conv_figure(scene: ConvScene, plan: FramePlan) -> go.Figure:
    """The animation of the scene's convolution over the frames of ``plan``."""
    steps = scene.steps
    rgb, names = None, None
    if steps.padded.shape[0] == 3:
        # a picture's 0..1 as it is; a trained layer's normalized input (-2..2) stretched to fit the screen
        low, high = min(0.0, float(steps.padded.min())), max(1.0, float(steps.padded.max()))
        shown = (steps.padded - low) / (high - low)
        rgb = (shown * 255).round().astype(np.uint8).transpose(1, 2, 0)  # (Hp, Wp, 3)
        names = RGB_CHANNELS
    learned = scene.settings.learned is not None  # trained weights: long decimals, written to 2 places
    return build_convolution_figure(
        steps, plan.positions, input_rgb=rgb, channel_names=names, fill_reading_order=plan.fill_reading_order,
        kernel_format=".2f" if learned else ".3~g",
    )


def make_pool_view(scene: ConvScene, pool: PoolSettings, feature_map: int = 0) -> tuple[PoolScene, go.Figure]:
    """Pooling of the scene's feature map ``feature_map`` (from 0) after ReLU, and its animation;
    ValueError when it does not fit."""
    pooled = scene.pool(pool, feature_map)
    return pooled, build_pooling_figure(pooled.steps, pooled.positions)


def decoded_upload(
    digest: str, _data: bytes, max_side: int, max_bytes: int, max_pixels: int,
) -> tuple[np.ndarray, str]:
    """The uploaded file decoded and shrunk once per file (``digest`` names it), as (C, H, W) uint8 and
    a note; ImageError if unreadable or above the server's limits (cached too: not decoded again)."""
    return _decode_attempt(digest, _data, max_side, max_bytes, max_pixels).result()


@st.cache_data(max_entries=8, show_spinner="Reading your picture ...")
def _decode_attempt(
    digest: str, _data: bytes, max_side: int, max_bytes: int, max_pixels: int,
) -> Attempt[tuple[np.ndarray, str]]:
    return Attempt.of(lambda: upload_pixels(decode_image(_data, max_bytes=max_bytes, max_pixels=max_pixels),
                                            max_side))


@st.cache_resource(max_entries=CACHE_ENTRIES, show_spinner=False)
def conv_scene(picture_key: str, _pixels: np.ndarray, settings: ConvSettings, frame_limit: int) -> ConvScene:
    """The page's convolution of the picture ``picture_key`` names; ValueError (not cached) when it
    does not fit."""
    return ConvScene.compute(_pixels, settings, frame_limit)


@st.cache_resource(max_entries=CACHE_ENTRIES, show_spinner="Drawing every step ...")
def conv_figure(
    picture_key: str,
    settings: ConvSettings,
    region: tuple[int, int] | None,
    _scene: ConvScene,
    _plan: FramePlan,
) -> go.Figure:
    """The animation of ``_scene`` (the scene of ``picture_key`` and ``settings``) over ``_plan``, the
    scene's frame plan for ``region``: the region keys it, as hashing the plan's positions costs more."""
    return make_conv_figure(_scene, _plan)


@st.cache_resource(max_entries=CACHE_ENTRIES, show_spinner=False)
def pool_view(
    picture_key: str, settings: ConvSettings, pool: PoolSettings, _scene: ConvScene, feature_map: int = 0
) -> tuple[PoolScene, go.Figure]:
    """The pooling of map ``feature_map`` of ``_scene`` (the scene of ``picture_key`` and ``settings``)
    and its animation."""
    return make_pool_view(_scene, pool, feature_map)
