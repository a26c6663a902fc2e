"""The Grad-CAM and layer-by-layer tabs of the inspect-and-predict page."""

from __future__ import annotations

import streamlit as st
import torch

from cnnviz.explorer.layers import net_layers
from cnnviz.images.inspection import (
    LayerActivation,
    cam_layers,
    heatmap_overlay,
    inspect_image,
    layer_summaries,
    network_activations,
)
from cnnviz.images.preprocess import Preprocessed
from cnnviz.training.checkpoint import LoadedModel
from cnnviz.ui.predict.figures import (
    architecture_html,
    dense_figure,
    feature_map_image,
    grid_display_width,
    single_map,
)
from cnnviz.ui.widgets import crisp_images, kept, pixel_image

CHART = {"width": "stretch", "config": {"displayModeBar": False}}
CAM_CLASS_KEY = "predict_cam_class"
CAM_LAYER_KEY = "predict_cam_layer"
PREDICTED = "predicted class"
HIDDEN_KINDS = ("BatchNorm2d", "Dropout", "Dropout2d", "Identity")  # outputs nearly equal to the layer before
# A phone is narrower than a grid drawn GRID_WIDTH_PX wide: shrink it to the column, keeping its shape.
FIT_MAPS_CSS = ("<style>[class*='st-key-crisp_predict_maps'] * {max-width: 100%;} "
                "[class*='st-key-crisp_predict_maps'] img {height: auto;}</style>")


def forget_choices_of_another_image(model_label: str, pixels: torch.Tensor) -> None:
    """The explained class belongs to one image of one model, the Grad-CAM layer to one model: a new
    image starts from the predicted class again, a new model from its last convolutional layer."""
    image = (model_label, hash(pixels.numpy().tobytes()))
    if st.session_state.get("predict_cam_image") != image:
        st.session_state["predict_cam_image"] = image
        st.session_state[CAM_CLASS_KEY] = PREDICTED
    if st.session_state.get("predict_cam_model") != model_label:
        st.session_state["predict_cam_model"] = model_label
        st.session_state.pop(CAM_LAYER_KEY, None)


def grad_cam_view(loaded: LoadedModel, prepared: Preprocessed) -> None:
    """Where the network looked: a class and a layer to pick, the heat map over the input."""
    layers = cam_layers(loaded.model)
    if not layers:
        st.info("Grad-CAM needs a convolutional layer's feature maps: it weighs each map by how much it "
                "raised the class's score and lays the result over the image. This network has only dense "
                "layers, whose numbers have no place on the image, so there is no map to show; their "
                "outputs are in the Layer by layer tab.")
        return
    names = {layer.number: layer.name for layer in net_layers(loaded.model)}
    sizes = {s.index: s.output_shape[1:] for s in layer_summaries(loaded.model, loaded.input_shape)
             if s.part == "features"}
    left, right = st.columns([1, 1], gap="medium")  # room for the layer names in the select box
    with left:
        choice = st.selectbox("Explain the class", [PREDICTED, *loaded.classes], key=kept(CAM_CLASS_KEY))
        layer = st.selectbox("At the output of layer", layers, index=len(layers) - 1, key=kept(CAM_LAYER_KEY),
                             format_func=lambda n: f"{names[n]}: {sizes[n][0]} x {sizes[n][1]}")
        cam_class = loaded.classes.index(choice) if choice in loaded.classes else None
        cam = inspect_image(loaded.model, prepared.tensor, loaded.classes, cam_class=cam_class,
                            cam_layer=layer).grad_cam
        height, width = tuple(cam.coarse.shape)
        last_height, last_width = sizes[layers[-1]]
        st.caption(f"Red and yellow: the parts of the input that raised the score of "
                   f"**{loaded.classes[cam.class_index]}** most, from the gradients at layer "
                   f"{names[cam.layer_index]}'s {height} x {width} feature maps.")
        sharper = ("earlier layers are sharper and answer more to edges and textures than to the class"
                   if any(sizes[n] != sizes[layers[-1]] for n in layers)
                   else "earlier layers answer more to edges and textures than to the class")  # all one size
        st.caption("The last convolutional layer is the usual choice: its maps are the most specific to the "
                   f"class, but coarse ({last_height} x {last_width} here); {sharper}.")
    with right:
        pixels = prepared.pixels.permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
        overlay = heatmap_overlay(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels, cam.heatmap)
        overlay_chw = torch.from_numpy(overlay).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
        st.image([pixel_image(prepared.pixels, 196), pixel_image(overlay_chw, 196)],
                 caption=["the network's input", f"Grad-CAM for {loaded.classes[cam.class_index]}"],
                 output_format="PNG")  # square pixels: JPEG would smear their edges


def layers_view(loaded: LoadedModel, model_label: str, prepared: Preprocessed) -> None:
    """The architecture, then one tab per layer: its feature maps, or a dense layer's numbers."""
    st.html(architecture_html(layer_summaries(loaded.model, loaded.input_shape), loaded.input_shape))
    every = network_activations(loaded.model, prepared.tensor)
    activations = [a for a in every if a.kind not in HIDDEN_KINDS]
    if any(a.is_map for a in activations):
        shared = st.toggle("One colour scale per layer (off: each map stretched to its own min..max)",
                           value=True, key=kept("predict_shared_scale"))
    else:
        shared = True
        st.info("This network has no convolution, so it makes no feature maps: each of its layers is a row "
                "of numbers, one per unit, shown below.")
    layer_tabs = st.tabs([a.name for a in activations], key=kept(f"predict_layer_{model_label}"),
                         on_change="rerun")
    logits = activations[-1].index
    for tab, activation in zip(layer_tabs, activations, strict=True):
        if not tab.open:
            continue
        with tab:
            if activation.is_map:
                _maps(activation, shared, model_label)
            else:
                _dense(activation, loaded.classes if activation.index == logits else None)


def _maps(activation: LayerActivation, shared: bool, model_label: str) -> None:
    picture, low, high = feature_map_image(activation.values, shared)
    channels, height, width = activation.shape
    scale = (f"dark purple = {low:.2f}, yellow = {high:.2f}" if shared
             else "each map from its own lowest (dark purple) to highest (yellow) value")
    st.html(FIT_MAPS_CSS)
    with crisp_images("predict_maps"):
        # PNG: one pixel per value, enlarged by the browser; JPEG would shift every colour
        st.image(picture, width=grid_display_width(picture.shape[1]), output_format="PNG",
                 caption=f"Output of layer {activation.name}: {channels} feature maps of "
                 f"{height} x {width}, numbered left to right from 0; {scale}.")
    pick, chart = st.columns([1, 3])
    channel = pick.number_input("Look closer: channel", 0, channels - 1, 0,
                                key=f"predict_channel_{model_label}_{activation.index}",
                                help="One feature map large, with its values (point at a cell).")
    chart.plotly_chart(single_map(activation.values[channel], f"{activation.name}, channel {channel}"),
                       key="predict_single_map", **CHART)


def _dense(activation: LayerActivation, classes: list[str] | None) -> None:
    (units,) = activation.shape
    title = f"{activation.name}: {units} units" + (", the logits" if classes else "")
    st.plotly_chart(dense_figure(activation.values, title, classes), key="predict_dense", **CHART)
    what = ("the scores the softmax turns into probabilities" if classes
            else "the maps of the layer before laid out in one row" if activation.kind == "Flatten"
            else "one number per unit: every unit sees every number of the layer before")
    st.caption(f"Output of layer {activation.name}: {units} numbers, {what}.")
