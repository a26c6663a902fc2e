"""The convolution lab: a kernel slides over a picture and every number shows; three lessons."""

import hashlib

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from cnnviz import pages
from cnnviz.convolution.arithmetic import AxisSize
from cnnviz.convolution.frames import describe_frames, region_side
from cnnviz.convolution.kernels import (
    BINARY_PICTURES,
    CHANNEL_NAMES,
    CUSTOM,
    MAX_KERNEL_SIDE,
    PRESET_NAMES,
    PRESETS,
    CustomText,
    binary_picture,
)
from cnnviz.convolution.pooling import POOL_MODES
from cnnviz.convolution.scene import ConvSettings, PoolSettings
from cnnviz.datasets import samples
from cnnviz.images.decode import UPLOAD_EXTENSIONS
from cnnviz.images.picture import Picture, to_picture
from cnnviz.ui.convolution.cache import conv_figure, conv_scene, decoded_upload, pool_view
from cnnviz.ui.convolution.channels_view import show_channels_lesson
from cnnviz.ui.convolution.code_view import show_torch_code
from cnnviz.ui.convolution.figures import build_before_after_figure
from cnnviz.ui.convolution.learned_view import (
    Convolved,
    channel_caption,
    first_layer_kernel,
    handoff,
    handoff_controls,
    picked_region,
    show_channel_sum,
)
from cnnviz.ui.convolution.transposed_view import show_transposed_lesson
from cnnviz.ui.host import upload_limit_mb, upload_limits
from cnnviz.ui.widgets import kept

MAX_INPUT_SIDE = 64
MAX_FRAMES = 64
SOURCES = ("tiny binary picture", "MNIST sample", "CIFAR-10 sample", "your picture")
DEFAULT_KERNELS = ("X detector", "Sobel x", "Sobel y", "Laplacian")
PADDINGS = ("0", "1", "2", "3", "same", "valid")
KERNEL_SOURCES = ("presets or your own", "a trained model's first layer")
LESSONS = pages.CONV_LESSONS
CHART = {"width": "stretch", "config": {"displayModeBar": False}}
SHARPEN_TEXT = "0 -1 0\n-1 5 -1\n0 -1 0"
RED_MINUS_GREEN = ("0 0 0\n0 1 0\n0 0 0", "0 0 0\n0 -1 0\n0 0 0", "0 0 0\n0 0 0\n0 0 0")  # R, G, B slices

st.title("The convolution lab")
lesson = st.radio("Lesson", LESSONS, key=kept(pages.CONV_LESSON_KEY), horizontal=True)
if lesson == LESSONS[1]:
    show_transposed_lesson()
    st.stop()
if lesson == LESSONS[2]:
    show_channels_lesson()
    st.stop()
st.markdown(
    "A **kernel** (a small grid of weights) slides over the picture. At every stop it multiplies "
    "each weight with the pixel under it and adds the products and a **bias**: that sum is one cell "
    "of the **feature map**. Press ▶ Play, or drag the slider to any step."
)


def choose_picture() -> tuple[str, Picture] | None:
    """The input widgets; returns a cache key and the picture, or None when there is none yet."""
    source = st.radio("Input", SOURCES, key=kept("conv_source"), horizontal=True)
    rgb = (
        st.radio("Channels", ("grayscale", "RGB (3-channel kernels)"), key=kept("conv_channels"),
                 horizontal=True)
        != "grayscale"
    )
    if source == "tiny binary picture":
        name = st.selectbox("Picture", BINARY_PICTURES, index=1, key=kept("conv_picture"))
        return f"binary:{name}:{rgb}", to_picture(binary_picture(name) * 255, rgb)
    if source == "your picture":
        upload = st.file_uploader(
            "Your picture", type=list(UPLOAD_EXTENSIONS), key="conv_upload", max_upload_size=upload_limit_mb()
        )
        if upload is None:
            st.info("Upload a picture to see the kernel slide over it.")
            return None
        data = upload.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        try:
            chw, note = decoded_upload(digest, data, MAX_INPUT_SIDE, **upload_limits())
        except ValueError as err:
            st.warning(str(err))
            return None
        return f"upload:{digest}:{rgb}", to_picture(chw, rgb, note)
    dataset = "mnist" if source == "MNIST sample" else "cifar10"
    options = samples.list_samples(dataset)
    sample = st.selectbox("Sample", options, format_func=lambda s: s.caption,
                          key=kept(f"conv_sample_{dataset}"))
    return f"{sample.path}:{rgb}", to_picture(samples.load_sample(sample).numpy(), rgb)


def kernel_controls(rgb_picture: bool) -> dict | None:
    """The kernel column: presets (or the student's own) or a trained model's first-layer filter."""
    source = st.radio("Kernel from", KERNEL_SOURCES, key=kept("conv_kernel_source"), horizontal=True)
    if source == KERNEL_SOURCES[1]:
        picked = first_layer_kernel(rgb_picture)
        if picked is None:
            return None
        kernel, layer = picked
        _, kernel_h, kernel_w = kernel.shape
        st.markdown(f"**{kernel.name}**: {kernel_h}x{kernel_w}, bias {layer['bias']:.4g}")
        return {"kernel_h": kernel_h, "kernel_w": kernel_w, "names": ("learned",), "custom": (),
                "bias": layer["bias"], "learned": kernel, "layer": layer}
    size_h, size_w = st.columns(2)
    kernel_h = size_h.number_input("Kernel height", 1, MAX_KERNEL_SIDE, 3, key=kept("conv_kernel_h"))
    kernel_w = size_w.number_input("Kernel width", 1, MAX_KERNEL_SIDE, 3, key=kept("conv_kernel_w"))
    count = st.number_input("Number of kernels (one feature map each)", 1, 4, 1,
                            key=kept(pages.CONV_KERNEL_COUNT_KEY))
    names = tuple(
        st.selectbox(
            f"Kernel {i + 1}",
            PRESET_NAMES,
            index=PRESET_NAMES.index(DEFAULT_KERNELS[i]),
            key=kept(f"{pages.CONV_PRESET_PREFIX}{i}"),
            format_func=str.capitalize,
        )
        for i in range(count)
    )
    bias = st.number_input("Bias", -5.0, 5.0, 0.0, 0.1, format="%g",  # 0.123 shows whole
                           key=kept("conv_bias"))
    return {"kernel_h": kernel_h, "kernel_w": kernel_w, "names": names, "custom": (), "bias": bias,
            "learned": None, "layer": None}


def custom_kernel_text(index: int, rgb_picture: bool) -> CustomText:
    """The text boxes of custom kernel ``index`` (from 0), the whole width under the kernel column: one
    for every channel, or in RGB mode one slice per colour channel when the student asks for it."""
    st.markdown(f"**Kernel {index + 1} (custom)**: one row of weights per line, e.g. `1 0 -1` or `1/9`")
    per_channel = rgb_picture and st.checkbox(
        "One slice per colour channel (R, G, B)", key=kept(f"conv_custom_rgb_{index}"),
        help="Type each colour's weights: e.g. +1 in R and -1 in G detects red against green.",
    )
    columns = st.columns(3)
    if not per_channel:
        label = "Every channel (divided by 3)" if rgb_picture else f"Kernel {index + 1}"
        return columns[0].text_area(label, SHARPEN_TEXT, key=kept(f"{pages.CONV_CUSTOM_PREFIX}{index}"))
    return tuple(
        column.text_area(f"{name} slice", RED_MINUS_GREEN[c], key=kept(f"conv_custom_{index}_{name.lower()}"))
        for c, (column, name) in enumerate(zip(columns, CHANNEL_NAMES, strict=True))
    )


def slide_controls(
    layer: dict | None, choices: DeltaGenerator
) -> tuple[int | tuple[int, int], str | tuple[str, str], int, bool]:
    """Stride, padding (one for both axes, or per axis), dilation and the flip of a true convolution;
    a trained layer's own as the defaults (kept per model). The two choices go in ``choices``, a row
    wide enough for their labels."""
    suffix = "" if layer is None else f"_learned_{layer['suffix']}"
    paddings = PADDINGS
    if layer is not None and str(layer["padding"]) not in paddings:
        paddings = (*PADDINGS, str(layer["padding"]))
    per_axis = choices.checkbox("Separate height and width", key=kept("conv_per_axis" + suffix),
                                 help="A stride and a padding for the rows, others for the columns.")
    flip = choices.toggle("True convolution (flip the kernel)", key=kept(pages.CONV_FLIP_KEY))
    if flip:
        choices.caption("The kernel is turned by 180° before it slides, as in the mathematical definition. "
                         "Frameworks skip the flip: the kernel is learned, so a flipped kernel is just "
                         "another kernel, and cross-correlation saves the flip.")
    axes = (", height", ", width") if per_axis else ("",)
    strides = [st.number_input(f"Stride{axis}", 1, 4, 1 if layer is None else min(4, layer["stride"]),
                               key=kept(pages.CONV_STRIDE_KEY + suffix + ("_w" if axis == ", width" else "")))
               for axis in axes]
    pads = [st.selectbox(f"Padding{axis} (zeros on each side)", paddings,
                         index=0 if layer is None else paddings.index(str(layer["padding"])),
                         key=kept(pages.CONV_PADDING_KEY + suffix + ("_w" if axis == ", width" else "")))
            for axis in axes]
    dilation = st.number_input("Dilation (gap between taps)", 1, 3,
                               1 if layer is None else min(3, layer["dilation"]),
                               key=kept("conv_dilation" + suffix))
    if layer is not None:
        st.caption("Set to the first layer's own stride, padding and dilation; change them to see what "
                   "they do.")
    stride = int(strides[0]) if len(strides) == 1 else (int(strides[0]), int(strides[1]))
    padding = pads[0] if len(pads) == 1 else (pads[0], pads[1])
    return stride, padding, int(dilation), flip


def preset_controls() -> Convolved | None:
    """The picture, kernel and sliding controls; None when there is nothing to convolve yet."""
    with st.container(border=True):
        input_col, kernel_col, slide_col = st.columns([1.3, 1.2, 1])
        choices = st.container()  # under the three columns: room for the labels at 800 px
        with input_col:
            chosen = choose_picture()
        with kernel_col:
            kernel = kernel_controls(chosen is not None and chosen[1].pixels.shape[0] == 3)
        with slide_col:
            layer = None if kernel is None else kernel["layer"]
            stride, padding, dilation, flip = slide_controls(layer, choices)
            for name in () if kernel is None else kernel["names"]:
                if name in PRESETS:
                    st.caption(f"**{name}**: {PRESETS[name].description}.")
        if kernel is not None and CUSTOM in kernel["names"]:
            rgb = chosen is not None and chosen[1].pixels.shape[0] == 3
            kernel["custom"] = tuple(custom_kernel_text(i, rgb) if name == CUSTOM else ""
                                     for i, name in enumerate(kernel["names"]))
    if chosen is None or kernel is None:
        return None
    picture_key, picture = chosen
    if picture.note:
        st.caption(picture.note)
    if picture.pixels.shape[0] == 3 and kernel["learned"] is None:
        st.caption(
            "RGB mode: each kernel has one slice per colour channel (R, G, B). A preset, or a custom kernel "
            "typed once, is put on every slice divided by 3, so it acts on the channel average (a random "
            "kernel draws every slice anew; a custom kernel can get one slice per colour); the sum runs "
            "over all 3 x kH x kW products."
        )
    settings = ConvSettings(int(kernel["kernel_h"]), int(kernel["kernel_w"]), stride, padding, dilation,
                            kernel["names"], "", float(kernel["bias"]), kernel["learned"],
                            custom_kernels=kernel["custom"], flip=flip)
    return Convolved(picture_key, picture.pixels, settings)


learned = handoff()
if learned is not None:
    convolved, whole = handoff_controls(learned)
    st.caption(channel_caption(learned, convolved))
else:
    convolved = whole = preset_controls()
    if convolved is None:
        st.stop()
picture_key, settings = convolved.key, convolved.settings


def show_sizes(sizes: tuple[AxisSize, AxisSize]) -> None:
    """The formula with the numbers of each axis, and any note on padding or fit."""
    height, width = sizes
    st.markdown(f"**Output: {height.output} x {width.output}** (height x width)")
    for size in sizes:
        st.markdown(f"{size.axis.capitalize()}: `{size.formula}`")
        if size.padding.note:
            st.caption(size.padding.note)
        if size.warning:
            st.info(size.warning, icon=":material/straighten:")


def show_flip(written: np.ndarray, sliding: np.ndarray) -> None:
    """The first kernel slice that the 180° turn changes, as written beside as it slides; where every
    kernel is symmetric (most presets are), one sentence says so, or the toggle would seem to do nothing."""
    changed = [(k, c) for k in range(written.shape[0]) for c in range(written.shape[1])
               if not np.array_equal(written[k, c], sliding[k, c])]
    kernel, channel = changed[0] if changed else (0, 0)
    if not changed:
        st.caption("Every kernel here looks the same turned by 180° (it is symmetric), so the flip changes "
                   "nothing: the map is the one without the flip. Pick Sobel x or type a kernel of your own "
                   "to see the difference.")
    slice_name = f" ({CHANNEL_NAMES[channel]} slice)" if written.shape[1] == 3 else ""
    titles = (f"kernel {kernel + 1}{slice_name} as written", "turned 180°: what slides")
    st.plotly_chart(build_before_after_figure(written[kernel, channel], sliding[kernel, channel], titles,
                                              height=230), key="flip_chart", **CHART)


with st.container(border=True):
    st.latex(r"\text{out} = \left\lfloor \frac{n + 2p - d\,(k-1) - 1}{s} \right\rfloor + 1")
    try:
        scene = conv_scene(picture_key, convolved.pixels, settings, MAX_FRAMES)
        feature_scene = scene if whole is convolved else conv_scene(whole.key, whole.pixels, whole.settings,
                                                                    MAX_FRAMES)
    except ValueError as err:
        st.warning(str(err), icon=":material/block:")
        st.stop()
    show_sizes(scene.steps.sizes)

out_h, out_w = scene.steps.output_size
max_frames = scene.max_frames  # fewer than MAX_FRAMES when several large maps fill each frame
region = None
if scene.too_many_steps:
    side = region_side(max_frames)
    picked = picked_region(learned, side, (out_h, out_w))  # the explorer's cell: its region first
    view = st.radio(
        f"The output has {out_h * out_w} cells, more than the {max_frames} steps one animation "
        "shows quickly. Show",
        ("steps spread over the whole map", f"every step of a {side}x{side} region"),
        index=0 if picked is None else 1,
        key=kept("conv_large_view"),
        horizontal=True,
    )
    if view.startswith("every"):
        top_col, left_col = st.columns(2)
        first_row = top_col.number_input(
            "Region's first output row",
            0,
            max(0, out_h - side),
            max(0, out_h - side) // 2 if picked is None else picked[0],
            key=kept("conv_region_top"),
        )
        first_col = left_col.number_input(
            "Region's first output column",
            0,
            max(0, out_w - side),
            max(0, out_w - side) // 2 if picked is None else picked[1],
            key=kept("conv_region_left"),
        )
        region = (int(first_row), int(first_col))
plan = scene.frame_plan(region)
st.caption(describe_frames(plan.positions, out_h, out_w, region=region is not None))
if settings.flip:  # the animation below slides the flipped kernel
    show_flip(settings.weight(convolved.pixels.shape[0]), scene.steps.weight)
st.plotly_chart(conv_figure(picture_key, settings, region, scene, plan), key="conv_chart", **CHART)
show_torch_code(convolved.pixels, settings.weight(convolved.pixels.shape[0]), scene.steps.bias,
                stride=scene.steps.stride, padding=settings.padding, dilation=scene.steps.dilation,
                flip=settings.flip)

if learned is not None and learned.channels > 1:
    show_channel_sum(learned, convolved.channel)

def pick_feature_map(settings: ConvSettings, maps: int) -> int:
    """The feature map (from 0) that ReLU and pooling take: a picker when there are several."""
    if maps == 1:
        return 0
    if st.session_state.get(pages.CONV_FEATURE_MAP_KEY, 1) > maps:  # fewer kernels than before: back to map 1
        st.session_state[pages.CONV_FEATURE_MAP_KEY] = 1
    names = settings.kernels
    return st.radio(
        "Feature map", range(1, maps + 1), key=kept(pages.CONV_FEATURE_MAP_KEY), horizontal=True,
        format_func=lambda k: f"{k} ({names[k - 1]})" if k <= len(names) else str(k),
        help="ReLU, the count of negative cells and the pooling below all run on this map.",
    ) - 1


st.subheader("ReLU: negative responses become zero")
feature_map = pick_feature_map(whole.settings, feature_scene.steps.output.shape[0])
before, after = feature_scene.relu_map(feature_map)
map_name = (f"feature map {feature_map + 1}" if learned is None
            else f"layer {learned.layer_number}'s output channel")
st.markdown(
    f"ReLU keeps positive values and replaces negative ones by 0: **{int((before < 0).sum())} of "
    f"{before.size}** cells of {map_name} were negative."
)
if learned is not None:
    st.caption("ReLU and pooling here are the page's own lesson on this real map; the model's own next "
               "layers (BatchNorm, ReLU, pooling) are on the explorer page.")
st.plotly_chart(
    build_before_after_figure(before, after, ("before ReLU", "after ReLU")), key="relu_chart", **CHART
)

st.subheader("Pooling: keep the strongest response in each window")
mode_col, window_col, stride_col, pad_col = st.columns(4)
mode = mode_col.radio("Pooling", POOL_MODES, key=kept("pool_mode"), horizontal=True)
window = window_col.number_input("Window", 1, 4, 2, key=kept("pool_window"))
pool_stride = stride_col.number_input("Pool stride", 1, 4, 2, key=kept("pool_stride"))
pool_padding = pad_col.number_input("Pool padding", 0, 2, 0, key=kept("pool_padding"))
st.caption(f"Pooling runs on {map_name} after ReLU. It has no weights: it only picks (max) or averages.")
pool = PoolSettings(mode, int(window), int(pool_stride), int(pool_padding))
try:
    pooled, pool_fig = pool_view(whole.key, whole.settings, pool, feature_scene, feature_map)
except ValueError as err:
    st.warning(str(err), icon=":material/block:")
    st.stop()
show_sizes(pooled.steps.sizes)
st.plotly_chart(pool_fig, key="pool_chart", **CHART)
if pooled.gradient is not None:
    st.markdown(
        "**Backward pass of max pooling.** Every pooled cell sends a gradient of 1 back; it lands only "
        "on the cell that won its window (a cell that won two overlapping windows gets 2), the rest get 0."
    )
    st.plotly_chart(
        build_before_after_figure(
            *pooled.gradient, ("gradient arriving (1 per pooled cell)", "gradient at the feature map")
        ),
        key="grad_chart",
        **CHART,
    )
