"""Inspect and predict: a student's own image goes through the network, layer by layer."""

import streamlit as st
import torch

from cnnviz import pages
from cnnviz.images.inspection import predict, softmax_explained
from cnnviz.images.predict import INFERENCE_THREADS
from cnnviz.training.results import first_layer_filters
from cnnviz.ui.predict import parts, views
from cnnviz.ui.predict.figures import probability_bars
from cnnviz.ui.training.figures import filter_grid
from cnnviz.ui.widgets import crisp_images, kept, markdown_text

STEP_COLUMNS = 8
CHART = {"width": "stretch", "config": {"displayModeBar": False}}
VIEWS = ("How your image was prepared", "Where it looked (Grad-CAM)", "Layer by layer",
         "First-layer filters")

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
    seen = "your image and for its mirror image" if loaded.model.tta.mirror else "your image"
    if loaded.model.tta.shift:
        seen += ", and for the same moved one pixel up-left and one pixel down-right"
    st.caption(f"This model answers with the average of its outputs for {seen} (test-time augmentation); "
               "the feature maps and Grad-CAM below are those of your image.")

prepared = parts.choose_input(loaded)
if prepared is None:
    st.stop()
prediction = predict(loaded.model, prepared.tensor, loaded.classes)
views.forget_choices_of_another_image(choice.label, prepared.pixels)

st.subheader("What the network answers")
left, right = st.columns([5, 6], gap="medium")  # the top-k table needs about 230 px
with left:
    st.metric(pages.PREDICTION_LABEL, prediction.label, f"{prediction.probability:.1%} sure",
              delta_color="off", delta_arrow="off")
    if prepared.doubt:
        st.warning(prepared.doubt, icon=":material/help:")
    top_k = st.slider("Top k", 1, len(loaded.classes), min(3, len(loaded.classes)), key=kept("predict_top_k"))
    st.dataframe([{"class": c, "logit": round(float(prediction.logits[loaded.classes.index(c)]), 3),
                   "probability": round(p, 4)} for c, p in prediction.top(top_k)],
                 hide_index=True, key="predict_top_table")
    st.caption(softmax_explained(prediction.logits, prediction.index))
    smoothing = parts.smoothing_note(loaded.metadata, len(loaded.classes))
    if smoothing:
        st.caption(smoothing)
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
        views.grad_cam_view(loaded, prepared)

with layers_tab:
    if layers_tab.open:
        views.layers_view(loaded, choice.label, prepared)

with filters_tab:
    if filters_tab.open:
        filters = first_layer_filters(loaded.model)
        if filters is None:
            st.info("This model has no convolution, so it has no filters to show.")
        else:
            st.markdown(f"**The {len(filters)} first-layer filters** (bright = large weight): each slid over "
                        "the input to make one map of the first layer.")
            st.plotly_chart(filter_grid(filters, per_row=12), key="predict_filters", **CHART)
