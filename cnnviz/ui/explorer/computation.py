"""The picked cell's real computation on the page: each step of ``explain_cell`` as a figure, a
formula or a short table, with the model's own numbers."""

from __future__ import annotations

import streamlit as st

from cnnviz.explorer.cell_terms import (
    AvgPoolStep,
    BatchNormStep,
    CellExplanation,
    ConvStep,
    DropoutStep,
    FlattenStep,
    InputStep,
    LinearStep,
    MaxPoolStep,
    ReluStep,
    ResidualStep,
    Rest,
    Step,
)
from cnnviz.ui.explorer.step_figures import conv_figure, pool_figure

CHART = {"width": "stretch", "config": {"displayModeBar": False}}


def _n(value: float) -> str:
    return f"{value:.4f}"


def signed_sum(values: list[float]) -> str:
    """Numbers added up as a student writes them: "0.0827 - 0.0323 + 0.0503", not "+ -0.0323"."""
    text = ""
    for i, value in enumerate(values):
        sign = ("-" if value < 0 else "") if i == 0 else (" - " if value < 0 else " + ")
        text += f"{sign}{abs(value):.4f}"
    return text


def _rest(rest: Rest | None, what: str) -> str:
    return "" if rest is None else f" + the other {rest.count} {what} ({_n(rest.total)} in all)"


def _bias(bias: float | None) -> str:
    return " (no bias: the BatchNorm after it shifts instead)" if bias is None else f" + bias {_n(bias)}"


def show_conv(step: ConvStep, key: str) -> None:
    """The windows, kernel slices and products of the channels that contribute most, then the sum."""
    (kh, kw), rows, cols = step.kernel_size, step.rows, step.cols
    on_padding = any(any(r) for r in step.padding)
    padded = " Grey cells marked 0 lie on the zero padding around the map." if on_padding else ""
    shown = len(step.channels)
    which = (f"the {shown} of its {step.in_channels} input channels that add most (largest |sum|)"
             if step.rest is not None else "its one input channel" if step.in_channels == 1
             else "each of its 3 input channels (the image's red, green and blue)"
             if step.source == "the input image" and step.in_channels == 3
             else f"each of its {step.in_channels} input channels")
    st.markdown(f"**Convolution** (layer {step.layer}): a {kh} x {kw} kernel, stride {step.stride[0]}, over "
                f"{step.source}, rows {rows[0]} to {rows[-1]}, columns {cols[0]} to {cols[-1]}; shown for "
                f"{which}.{padded}")
    st.plotly_chart(conv_figure(step), key=key, **CHART)
    sums = signed_sum([c.partial_sum for c in step.channels])
    st.markdown(f"Sum: {sums}{_rest(step.rest, 'channels')}{_bias(step.bias)} = **{_n(step.result)}**")


def show_linear(step: LinearStep) -> None:
    """The dot product's largest terms as a table, then the rest, the bias and the total."""
    st.markdown(f"**Dense layer** (layer {step.layer}): {step.in_features} inputs times this unit's weights; "
                f"the {len(step.terms)} largest terms (by |weight x input|):")
    rows = []
    for term in step.terms:
        where = "" if term.source is None else "channel {}, row {}, col {}".format(*term.source)
        rows.append({"input": term.index, "from": where, "input value": round(term.x, 4),
                     "weight": round(term.weight, 4), "weight x input": round(term.product, 4)})
    numbers = {name: st.column_config.NumberColumn(format="%.4f")
               for name in ("input value", "weight", "weight x input")}  # one format: 0.034 read as 0.0340
    hidden = {"from": None} if all(t.source is None for t in step.terms) else {}
    st.dataframe(rows, hide_index=True, key=f"explore_terms_{step.layer}", column_config=numbers | hidden)
    shown = sum(t.product for t in step.terms)
    st.markdown(f"Sum: {_n(shown)} (these){_rest(step.rest, 'terms')}{_bias(step.bias)} = "
                f"**{_n(step.result)}**")


def show_residual(step: ResidualStep, key: str) -> None:
    """The block's body (its second convolution, BatchNorm, ReLU), its shortcut, and their sum."""
    st.markdown(f"**Residual block** (layer {step.layer}): the body's second convolution over the body's "
                "own first map, then BatchNorm and ReLU; then the shortcut is added.")
    show_conv(step.body_conv, key)
    st.markdown(_line(step.body_norm))
    st.markdown(_line(step.body_relu))
    if step.shortcut_conv is None:
        st.markdown(f"Shortcut: the block's input itself, {_n(step.shortcut)}.")
    else:
        st.markdown("Shortcut: a 1 x 1 convolution and BatchNorm of the block's input (the channel count "
                    "changes).")
        show_conv(step.shortcut_conv, key + "_shortcut")
        st.markdown(_line(step.shortcut_norm))
    st.markdown(f"Shortcut + body = {_n(step.shortcut)} + {_n(step.body_relu.result)} = "
                f"**{_n(step.result)}**")


def _line(step: Step) -> str:  # noqa: C901 - one short sentence per kind of step
    """One sentence for the steps that are one formula."""
    if isinstance(step, BatchNormStep):
        return (f"**BatchNorm** (layer {step.layer}): (x - running mean) / sqrt(running variance + eps) "
                f"x weight + shift = {step.formula()}")
    if isinstance(step, ReluStep):
        return f"**ReLU** (layer {step.layer}): max(0, {_n(step.x)}) = **{_n(step.result)}**"
    if isinstance(step, DropoutStep):
        return (f"**Dropout** (layer {step.layer}, p = {step.p:g}): off when predicting, so {_n(step.x)} "
                "passes unchanged.")
    if isinstance(step, FlattenStep):
        return ("**Flatten** (layer {}): unit {} of the list is channel {}, row {}, column {} of the maps "
                "before: {}").format(step.layer, step.cell.channel, *step.source, f"**{_n(step.result)}**")
    if isinstance(step, InputStep):
        return (f"**The input image** (normalized), channel {step.cell.channel}, row {step.cell.row}, column "
                f"{step.cell.col}: **{_n(step.result)}**")
    if isinstance(step, MaxPoolStep):
        below = "the input image" if step.layer == 0 else f"layer {step.layer - 1}'s output"
        return (f"**Max pool** (layer {step.layer}): the largest of its window on {below}, "
                f"**{_n(step.result)}**, "
                f"at row {step.winner[0]}, column {step.winner[1]} (outlined); the chain goes on from there.")
    if isinstance(step, AvgPoolStep):
        return (f"**Average pool** (layer {step.layer}): the window's sum {_n(step.total)} / {step.divisor} "
                f"values = **{_n(step.result)}**")
    raise AssertionError(f"no sentence for {type(step).__name__}")


def show_explanation(explanation: CellExplanation) -> None:
    """Every step, first operation to the picked layer, then the softmax for an output unit."""
    st.caption("From where the number starts to the picked layer, with the model's own numbers "
               "(eval mode: BatchNorm uses its running statistics, dropout is off).")
    for index, step in enumerate(explanation.steps):
        key = f"explore_step_{index}"
        if isinstance(step, ConvStep):
            show_conv(step, key)
        elif isinstance(step, LinearStep):
            show_linear(step)
        elif isinstance(step, ResidualStep):
            show_residual(step, key)
        else:
            st.markdown(_line(step))
            if isinstance(step, MaxPoolStep | AvgPoolStep):
                st.plotly_chart(pool_figure(step), key=key, width="content",
                                config={"displayModeBar": False})
    if explanation.softmax is not None:
        softmax = explanation.softmax
        st.markdown(f"**Softmax** ({softmax.label}): exp({_n(softmax.logits[softmax.index])} - "
                    f"{_n(softmax.max_logit)}) / {_n(softmax.exp_sum)} = **{softmax.probability:.4f}**. "
                    "(Each logit minus the largest, raised to e, over the sum of all of them.)")
