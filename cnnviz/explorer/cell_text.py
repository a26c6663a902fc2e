"""A short text rendering of a picked cell's computation, for the command line."""

from __future__ import annotations

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


def _num(value: float) -> str:
    return f"{value:.4f}"


def _rest(rest: Rest | None, what: str) -> list[str]:
    return [] if rest is None else [f"    the other {rest.count} {what}: {_num(rest.total)} in all"]


def _bias(bias: float | None) -> str:
    return "no bias" if bias is None else f"bias {_num(bias)}"


def _conv(step: ConvStep) -> list[str]:
    (kh, kw), rows, cols = step.kernel_size, step.rows, step.cols
    lines = [f"  conv {kh}x{kw}, stride {step.stride[0]}, over {step.source} rows {rows[0]}..{rows[-1]}, "
             f"columns {cols[0]}..{cols[-1]}" + (" (partly on the zero padding)" if any(
                 any(row) for row in step.padding) else "")]
    for channel in step.channels:
        lines.append(f"    input channel {channel.channel}: sum of window * kernel = "
                     f"{_num(channel.partial_sum)}")
    lines += _rest(step.rest, "input channels")
    lines.append(f"    {_bias(step.bias)}; total {_num(step.result)}")
    return lines


def _linear(step: LinearStep) -> list[str]:
    lines = [f"  dense: dot product of {step.in_features} inputs with the unit's weights"]
    for term in step.terms:
        where = "" if term.source is None else " (channel {}, row {}, column {})".format(*term.source)
        lines.append(f"    input {term.index}{where}: {_num(term.weight)} * {_num(term.x)} = "
                     f"{_num(term.product)}")
    lines += _rest(step.rest, "terms")
    lines.append(f"    {_bias(step.bias)}; total {_num(step.result)}")
    return lines


def _residual(step: ResidualStep) -> list[str]:
    lines = ["  residual block, body:"] + ["  " + line for line in _conv(step.body_conv)]
    lines += ["  " + _step(step.body_norm)[0], "  " + _step(step.body_relu)[0]]
    if step.shortcut_conv is None:
        lines.append(f"    shortcut: the block's input, {_num(step.shortcut)}")
    else:
        lines += ["    shortcut: 1x1 convolution + BatchNorm of the block's input"]
        lines += ["  " + line for line in _conv(step.shortcut_conv)] + ["  " + _step(step.shortcut_norm)[0]]
    lines.append(f"    shortcut + body = {_num(step.shortcut)} + {_num(step.body_relu.result)} = "
                 f"{_num(step.result)}")
    return lines


def _step(step: Step) -> list[str]:  # noqa: C901 - one short branch per kind of step
    if isinstance(step, ConvStep):
        return _conv(step)
    if isinstance(step, LinearStep):
        return _linear(step)
    if isinstance(step, ResidualStep):
        return _residual(step)
    if isinstance(step, BatchNormStep):
        return [f"  BatchNorm: {step.formula()}"]
    if isinstance(step, ReluStep):
        return [f"  ReLU: max(0, {_num(step.x)}) = {_num(step.result)}"]
    if isinstance(step, DropoutStep):
        return [f"  dropout (p = {step.p:g}): off when predicting, {_num(step.x)} passes unchanged"]
    if isinstance(step, MaxPoolStep):
        return [f"  max pool over rows {step.rows[0]}..{step.rows[-1]}, columns {step.cols[0]}.."
                f"{step.cols[-1]}: the largest is {_num(step.result)} at row {step.winner[0]}, "
                f"column {step.winner[1]}"]
    if isinstance(step, AvgPoolStep):
        return [f"  average pool over rows {step.rows[0]}..{step.rows[-1]}, columns {step.cols[0]}.."
                f"{step.cols[-1]}: {_num(step.total)} / {step.divisor} = {_num(step.result)}"]
    if isinstance(step, FlattenStep):
        return ["  flatten: unit {} is channel {}, row {}, column {} of the maps".format(
            step.cell.channel, *step.source) + f": {_num(step.result)}"]
    if isinstance(step, InputStep):
        return [f"  input image, channel {step.cell.channel}, row {step.cell.row}, column {step.cell.col}: "
                f"{_num(step.result)}"]
    raise AssertionError(f"unhandled step {step!r}")


def explanation_text(explanation: CellExplanation) -> str:
    """The value, then each step from the first operation to the picked layer, one to a few lines each."""
    cell = explanation.cell
    where = f"unit {cell.channel}" if len(explanation.shape) == 1 else (
        f"channel {cell.channel}, row {cell.row}, column {cell.col}")
    lines = [f"layer {explanation.layer_name}, {where}: {explanation.value:.6f}"]
    for step in explanation.steps:
        lines += [f"layer {step.layer}:" if step.layer >= 0 else "input:"] + _step(step)
    if explanation.softmax is not None:
        lines.append(f"softmax ({explanation.softmax.label}): {explanation.softmax.explained}")
    return "\n".join(lines)
