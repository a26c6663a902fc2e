"""Explore the network: one image through every layer, and one picked number's real arithmetic."""

import streamlit as st
import torch

from cnnviz import pages
from cnnviz.explorer.cell import explain_cell
from cnnviz.images.predict import INFERENCE_THREADS
from cnnviz.ui.explorer import parts, sections
from cnnviz.ui.explorer.computation import show_explanation
from cnnviz.ui.explorer.describe import describe_layer
from cnnviz.ui.explorer.excite import show_excite
from cnnviz.ui.explorer.figures import cell_map_figure, overview_figure, units_figure
from cnnviz.ui.predict.parts import smoothing_note
from cnnviz.ui.widgets import crisp_images, markdown_text, pixel_image

CHART = {"width": "stretch", "config": {"displayModeBar": False}}

torch.set_num_threads(INFERENCE_THREADS)

st.title("Explore the network")
st.markdown("Follow one number through a trained network: see every layer's maps for one image, click "
            "any map and any cell, and see the real arithmetic that produced that number.")

top_left, top_right = st.columns([2, 1], gap="large")
with top_left:
    model = parts.choose_model()
    if model is None:
        st.stop()
    loaded = model.loaded
    name = loaded.name if loaded.path is None else markdown_text(loaded.name)
    st.caption(f"{name}: {markdown_text(loaded.spec)} on {loaded.dataset.upper()}.")
    chosen = parts.choose_image(loaded)
if chosen is None:
    st.stop()
prepared, what = chosen
layers = parts.layer_choices(model)
trace = parts.model_trace(model, prepared)
logits = trace.outputs[-1][0]
probabilities = torch.softmax(logits, dim=0)
answer = int(probabilities.argmax())
with top_right, crisp_images("explore_input"):
    st.image(pixel_image(prepared.pixels, 168), caption=f"The network's input: {what}.", output_format="PNG")
    st.markdown(f"It answers **{loaded.classes[answer]}** ({float(probabilities[answer]):.1%}).")
    smoothing = smoothing_note(loaded.metadata, len(loaded.classes))
    if smoothing:  # why a clean test image gets 92%, not 100%: the first question of a class
        st.caption(smoothing)
if loaded.model.tta.active:
    st.caption("This model averages its answers over shifted or mirrored copies (test-time augmentation); "
               "everything here is the image itself, once through the network.")

st.subheader("The whole network")
st.caption("Every layer's output, left to right, on one colour scale per layer (dark purple = the layer's "
           "lowest value, yellow = its highest). Under each layer: its channels and their height x width, "
           "and +N for the maps not drawn (type a channel below to see them). Dense layers are blocks of "
           "units; the output is its probabilities. **Click a map to pick it.**")
cell = parts.picked_cell(trace, layers)  # before the overview: a typed channel moves its column into view
input_rgb = parts.input_rgb(prepared)
overview = parts.cached_figure(("overview", model.key, parts.image_key(prepared), cell.layer, cell.channel),
                               lambda: overview_figure(trace, layers, input_rgb, (cell.layer, cell.channel),
                                                       loaded.classes))
st.plotly_chart(overview, key=parts.OVERVIEW_KEY, on_select=parts.on_overview_click,
                selection_mode="points", **CHART)

layer = layers[cell.layer]
output = trace.outputs[cell.layer]
value = float(output[0, cell.channel, cell.row, cell.col] if output.dim() == 4 else output[0, cell.channel])
low, high = float(output.min()), float(output.max())
st.subheader(f"One number: layer {layer.name}")
parts.cell_inputs(trace, layers, cell)
map_column, math_column = st.columns([3, 2], gap="large")
with map_column:
    if output.dim() == 4:
        # two lines: one was cut off beside the arithmetic at 800 px ("channel 3: 31 x")
        title = f"Layer {layer.name},<br>channel {cell.channel}: {output.shape[2]} x {output.shape[3]}"
        figure = cell_map_figure(output[0, cell.channel], title, (cell.row, cell.col), low, high)
    else:
        names = loaded.classes if cell.layer == len(layers) - 1 else None
        title = f"Layer {layer.name}: {output.shape[1]} units"
        figure = units_figure(output[0], title, cell.channel, low, high, names)
    st.plotly_chart(figure, key=parts.MAP_KEY, on_select=parts.on_map_click, selection_mode="points", **CHART)
    st.caption("Click a cell to pick it (or type its row and column above)." if output.dim() == 4
               else "Click a unit to pick it (or type its number above).")
with math_column:
    where = (f"channel {cell.channel}, row {cell.row}, column {cell.col}" if output.dim() == 4
             else f"unit {cell.channel}")
    st.metric(pages.EXPLORE_VALUE_LABEL, f"{value:.4f}", help=f"Layer {layer.number}, {where}.")
    st.markdown(describe_layer(layer, trace))
    sections.show_handoff(model, trace, layer, cell)

st.subheader("How this number was computed")
explained = parts.cached_value(("explanation", model.key, parts.image_key(prepared), cell),
                               lambda: explain_cell(loaded.model, trace, sections.as_explained(cell),
                                                    classes=loaded.classes))
show_explanation(explained)

st.subheader("Where on the input it looks")
sections.show_receptive_field(model, trace, layers, cell, input_rgb)

st.subheader("What makes it fire")
show_excite(model, cell)
