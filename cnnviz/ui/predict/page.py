"""Inspect and predict: a student's own image goes through the network, layer by layer."""

import streamlit as st
import torch

from cnnviz import pages
from cnnviz.images.inspection import (
    Inspection,
    heatmap_overlay,
    inspect_image,
    layer_summaries,
    predict,
    softmax_explained,
)
from cnnviz.images.predict import INFERENCE_THREADS
from cnnviz.training.results import first_layer_filters
from cnnviz.ui.predict import parts
from cnnviz.ui.predict.figures import (
    architecture_strip,
    feature_map_image,
    grid_display_width,
    probability_bars,
    single_map,
)
from cnnviz.ui.training.figures import filter_grid
from cnnviz.ui.widgets import crisp_images, kept, markdown_text, pixel_image

STEP_COLUMNS = 8
CHART = {"width": "stretch", "config": {"displayModeBar": False}}
VIEWS = ("How your image was prepared", "Where it looked (Grad-CAM)", "Layer by layer",
         "First-layer filters")
HIDDEN_KINDS = ("BatchNorm2d", "Dropout", "Dropout2d", "Identity")  # maps nearly equal to the layer before

torch.set_num_threads(INFERENCE_THREADS)  # this thread and threads started after it (cnnviz.images.predict)

st.title("Inspect and predict")
st.markdown("Give the network a picture and watch it go through, layer by layer: how it was prepared, "
            "what each layer made of it, where the network looked, and what it answered.")

choices = parts.model_choices()
if not choices:
    st.warning("There is no model yet: train one on the Train page, or put a .pt file in models/.")
    st.stop()
choice = st.selectbox("Model", choices, format_func=lambda c: c.label, key=kept("predict_model"))
try:
    loaded = parts.load_choice(choice)
except ValueError as err:
    st.error(markdown_text(str(err)))  # it names the file, which anyone may have put in models/
    st.stop()
accuracy = f", {loaded.test_accuracy:.2%} right on the test set" if loaded.test_accuracy else ""
# A file's name and spec are anyone's text, shown as typed; a run of this session is named by the page.
name = loaded.name if loaded.path is None else markdown_text(loaded.name)
st.caption(f"{name}: {markdown_text(loaded.spec)} on {loaded.dataset.upper()}{accuracy}.")
if loaded.model.tta.active:
    views = "your image and for its mirror image" if loaded.model.tta.mirror else "your image"
    if loaded.model.tta.shift:
        views += ", and for the same moved one pixel up-left and one pixel down-right"
    st.caption(f"This model answers with the average of its outputs for {views} (test-time augmentation); "
               "the feature maps and Grad-CAM below are those of your image.")

prepared = parts.choose_input(loaded)
if prepared is None:
    st.stop()
prediction = predict(loaded.model, prepared.tensor, loaded.classes)
cam_key = f"predict_cam_class_{loaded.dataset}"


def inspected() -> Inspection:
    """Feature maps and Grad-CAM (one backward pass, no weights changed): only for the tabs that
    show them, not on every upload."""
    cam_choice = st.session_state.get(cam_key, "predicted class")
    cam_class = loaded.classes.index(cam_choice) if cam_choice in loaded.classes else None
    return inspect_image(loaded.model, prepared.tensor, loaded.classes, cam_class=cam_class)


st.subheader("What the network answers")
left, right = st.columns([1, 2], gap="large")
with left:
    st.metric(pages.PREDICTION_LABEL, prediction.label, f"{prediction.probability:.1%} sure",
              delta_color="off", delta_arrow="off")
    top_k = st.slider("Top k", 1, len(loaded.classes), min(3, len(loaded.classes)), key=kept("predict_top_k"))
    st.dataframe([{"class": c, "logit": round(float(prediction.logits[loaded.classes.index(c)]), 3),
                   "probability": round(p, 4)} for c, p in prediction.top(top_k)],
                 hide_index=True, key="predict_top_table")
    st.caption(softmax_explained(prediction.logits, prediction.index))
with right:
    st.plotly_chart(probability_bars(prediction, top_k), key="predict_bars", **CHART)

# Only the open tab's content is computed and sent: on a class's hosted demo every upload redraws
# this page, and the closed tabs would cost as much again.
prepared_tab, cam_tab, layers_tab, filters_tab = st.tabs(list(VIEWS), key=kept("predict_view"),
                                                         on_change="rerun")

with prepared_tab:
    if prepared_tab.open:
        st.markdown("How your image was turned into the network's input, step by step.")
        with crisp_images("predict_steps"):
            columns = st.columns(max(len(prepared.steps), STEP_COLUMNS))  # equal sizes for 2 steps or 8
            for column, step in zip(columns, prepared.steps, strict=False):
                column.image(parts.square_frame(step.image), caption=f"{step.title}: {step.description}",
                             width="stretch")

with cam_tab:
    if cam_tab.open:
        left, right = st.columns([1, 2], gap="large")
        with left:
            st.selectbox("Explain the class", ["predicted class", *loaded.classes], key=kept(cam_key))
            cam = inspected().grad_cam
            st.caption(f"Red and yellow: the parts of the input that raised the score of "
                       f"**{loaded.classes[cam.class_index]}** most, from the gradients at layer "
                       f"{cam.layer_index}'s {tuple(cam.coarse.shape)[0]} x {tuple(cam.coarse.shape)[1]} "
                       "feature maps.")
        with right:
            pixels = prepared.pixels.permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
            overlay = heatmap_overlay(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels, cam.heatmap)
            overlay_chw = torch.from_numpy(overlay).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
            st.image([pixel_image(prepared.pixels, 196), pixel_image(overlay_chw, 196)],
                     caption=["the network's input", f"Grad-CAM for {loaded.classes[cam.class_index]}"],
                     output_format="PNG")  # square pixels: JPEG would smear their edges

with layers_tab:
    if layers_tab.open:
        st.plotly_chart(architecture_strip(layer_summaries(loaded.model, loaded.input_shape),
                                           loaded.input_shape), key="predict_architecture", **CHART)
        shared = st.toggle("One colour scale per layer (off: each map stretched to its own min..max)",
                           value=True, key=kept("predict_shared_scale"))
        shown = [a for a in inspected().activations if a.kind not in HIDDEN_KINDS]
        layer_tabs = st.tabs([a.name for a in shown], key=kept(f"predict_layer_{choice.label}"),
                             on_change="rerun")
        for tab, activation in zip(layer_tabs, shown, strict=True):
            if not tab.open:
                continue
            picture, low, high = feature_map_image(activation.values, shared)
            channels, height, width = activation.shape
            scale = (f"dark purple = {low:.2f}, yellow = {high:.2f}" if shared
                     else "each map from its own lowest (dark purple) to highest (yellow) value")
            with tab, crisp_images("predict_maps"):
                # PNG: one pixel per value, enlarged by the browser; JPEG would shift every colour
                st.image(picture, width=grid_display_width(picture.shape[1]), output_format="PNG",
                         caption=f"Output of layer {activation.name}: {channels} feature maps of "
                         f"{height} x {width}, numbered left to right from 0; {scale}.")
                pick, chart = st.columns([1, 3])
                channel = pick.number_input("Look closer: channel", 0, channels - 1, 0,
                                            key=f"predict_channel_{choice.label}_{activation.index}",
                                            help="One feature map large, with its values (point at a cell).")
                title = f"{activation.name}, channel {channel}"
                chart.plotly_chart(single_map(activation.values[channel], title), key="predict_single_map",
                                   **CHART)

with filters_tab:
    if filters_tab.open:
        filters = first_layer_filters(loaded.model)
        if filters is None:
            st.info("This model has no convolution, so it has no filters to show.")
        else:
            st.markdown(f"**The {len(filters)} first-layer filters** (bright = large weight): each slid over "
                        "the input to make one map of the first layer.")
            st.plotly_chart(filter_grid(filters, per_row=12), key="predict_filters", **CHART)
