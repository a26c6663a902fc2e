"""The explorer's sections about the picked cell: where it looks on the input, and the way to the
Convolution page."""

from __future__ import annotations

import streamlit as st
from torch import nn

from cnnviz import pages
from cnnviz.explorer.cell_terms import Cell as ExplainedCell
from cnnviz.explorer.handoff import learned_convolution
from cnnviz.explorer.layers import NetLayer, Trace
from cnnviz.networks.receptive_field import cell_box, gradient_footprint, layer_fields
from cnnviz.ui.explorer import parts
from cnnviz.ui.explorer.field_figures import field_pictures
from cnnviz.ui.navigation import page_spec
from cnnviz.ui.widgets import crisp_images

CHART = {"width": "stretch", "config": {"displayModeBar": False}}


def as_explained(cell: parts.Cell) -> ExplainedCell:
    """The page's picked cell as ``explain_cell`` takes it."""
    return ExplainedCell(cell.layer, cell.channel, cell.row, cell.col)


def field_table(model: parts.Model, layers: list[NetLayer], picked: int) -> list[dict] | None:
    """Size, jump and start of every feature layer's field (None: the model has a layer without a rule)."""
    try:
        fields = layer_fields(model.loaded.model)
    except ValueError:
        return None
    rows = [{"layer": "input", "size": 1, "jump": 1, "start": 0.0, "": ""}]
    for layer, field in zip(layers, fields, strict=True):
        if field is not None:
            rows.append({"layer": layer.name, "size": field.size, "jump": field.jump, "start": field.start,
                         "": "◀ picked" if layer.number == picked else ""})
    return rows


def show_receptive_field(model: parts.Model, model_trace: Trace, layers: list[NetLayer],
                         cell: parts.Cell, rgb) -> None:
    """The input with the cell's field outlined, the gradient footprint beside it, the per-layer table."""
    loaded = model.loaded
    try:
        box = cell_box(loaded.model, cell.layer, cell.row, cell.col, clip=True)
        arithmetic = cell_box(loaded.model, cell.layer, cell.row, cell.col, clip=False)
    except ValueError as err:
        st.info(str(err))
        return
    key = ("footprint", model.key, parts.tensor_key(model_trace.input), cell)
    footprint = parts.cached_value(key, lambda: gradient_footprint(
        loaded.model, model_trace.input, cell.layer, cell.channel, cell.row, cell.col).numpy())
    left, right = st.columns([3, 2], gap="large")
    with left, crisp_images("explore_field"):
        st.image(field_pictures(rgb, box, arithmetic, footprint), output_format="PNG",
                 caption=["receptive field (outlined)", "gradient footprint (red: gradient not 0)"])
    with right:
        dense = layers[cell.layer].part == "classifier"
        if dense:
            st.markdown("A dense unit sees the **whole image** (every number of the flattened maps "
                        "feeds it).")
        else:
            st.markdown(f"This cell depends on input rows **{box.top} to {box.bottom}** and columns "
                        f"**{box.left} to {box.right}** ({box.height} x {box.width} pixels).")
            if arithmetic != box:
                st.caption(f"Its full field is {arithmetic.height} x {arithmetic.width} (thin outline): the "
                           "rest lies on the zero padding outside the image.")
        st.markdown(footprint_sentence(int(footprint.sum()), footprint.size))
    table = field_table(model, layers, cell.layer)
    if table is not None:  # full width: in the right-hand column its last columns were cut off
        with st.expander("Receptive field arithmetic, layer by layer"):
            st.caption("size' = size + (kernel - 1) x jump, jump' = jump x stride, start' = start + "
                       "((kernel - 1) / 2 - padding) x jump; start is the centre of cell (0, 0)'s field.")
            st.dataframe(table, hide_index=True, key="explore_field_table")


def footprint_sentence(count: int, pixels: int) -> str:
    """How many input pixels the cell's gradient reaches; an empty footprint says why (a ReLU that is
    off on the way, often the cell itself at 0, stops every gradient)."""
    if count == 0:
        return ("Its gradient is **0 on every input pixel**: a ReLU on the way is off (at 0, often this "
                "very cell), so no small change of the input moves this number. Pick a cell above 0 to "
                "see its footprint.")
    share = count / pixels
    shown = f"{share:.0%}" if share >= 0.01 else "under 1%"
    return (f"Its gradient is non-zero on **{count}** input pixels ({shown} of the image): inside the "
            "field, ReLUs that are off and max pools' losers pass no gradient.")


def _open_convolution(model: parts.Model, model_trace: Trace, cell: parts.Cell) -> None:
    loaded = model.loaded
    st.session_state[pages.CONVOLUTION_HANDOFF_KEY] = learned_convolution(
        loaded.model, model_trace, cell.layer, cell.channel, model_name=loaded.name,
        cell=(cell.row, cell.col))


def show_handoff(model: parts.Model, model_trace: Trace, layer: NetLayer, cell: parts.Cell) -> None:
    """"Open on the Convolution page" for a convolution; for any other layer a line saying why not."""
    if not isinstance(layer.module, nn.Conv2d):
        st.caption(f"The Convolution page animates a convolution: layer {layer.name} is not one. Pick a "
                   "Conv2d layer to watch its learned kernel slide over its real input there.")
        return
    if st.button("Open on the Convolution page", key="explore_open_convolution", icon=":material/grid_on:",
                 help=f"Watch channel {cell.channel}'s learned kernel slide over layer {layer.number}'s real "
                      "input, step by step."):
        try:
            _open_convolution(model, model_trace, cell)
        except ValueError as err:
            st.info(str(err))
            return
        st.switch_page(page_spec(pages.CONVOLUTION_PAGE).path)
