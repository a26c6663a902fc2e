"""How many parameters has this layer? nn.Conv2d(in, out, k, groups, bias) or nn.Linear(in, out, bias),
counted as PyTorch counts them: the sum of numel() over the layer's parameters."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from cnnviz.exercises.answers import parse_count
from cnnviz.exercises.model import PARAMETERS, Exercise, Field, SettingError, Verdict, flag, one_of, whole

CONV, LINEAR = "conv2d", "linear"
FIELDS = {
    "layer": Field(one_of((CONV, LINEAR)), required=True),
    "in_channels": Field(whole(1, 4096)),
    "out_channels": Field(whole(1, 4096)),
    "kernel": Field(whole(1, 11)),
    "groups": Field(whole(1, 4096)),
    "in_features": Field(whole(1, 1_000_000)),
    "out_features": Field(whole(1, 1_000_000)),
    "bias": Field(flag, True),
}
NEEDS = {CONV: ("in_channels", "out_channels", "kernel"), LINEAR: ("in_features", "out_features")}
CONV_ONLY = ("in_channels", "out_channels", "kernel", "groups")


def draw(rng: np.random.Generator) -> dict[str, Any]:
    """A convolution three times in four (sometimes grouped or depthwise), else a linear layer."""
    bias = bool(rng.random() < 0.8)
    if rng.random() < 0.25:
        return {"layer": LINEAR, "in_features": int(rng.choice([784, 128, 512, 1568, 3136, 2048])),
                "out_features": int(rng.choice([10, 64, 128, 256])), "bias": bias}
    in_channels = int(rng.choice([1, 3, 8, 16, 32, 64]))
    out_channels = int(rng.choice([8, 16, 32, 64, 128]))
    groups = 1
    kind = rng.random()
    if kind < 0.15:  # depthwise: one kernel per input channel (times a multiplier)
        groups, out_channels = in_channels, in_channels * int(rng.choice([1, 2]))
    elif kind < 0.3 and in_channels % 4 == 0:
        groups = int(rng.choice([2, 4]))
    return {"layer": CONV, "in_channels": in_channels, "out_channels": out_channels,
            "kernel": int(rng.choice([1, 3, 3, 5, 7])), "groups": groups, "bias": bias}


def make_layer(settings: dict[str, Any], device: str = "meta") -> nn.Module:
    """The real torch layer (on the meta device by default: shapes without memory)."""
    if settings["layer"] == CONV:
        return nn.Conv2d(settings["in_channels"], settings["out_channels"], settings["kernel"],
                         groups=settings["groups"] or 1, bias=settings["bias"], device=device)
    return nn.Linear(settings["in_features"], settings["out_features"], bias=settings["bias"], device=device)


def _check(settings: dict[str, Any]) -> None:
    layer = settings["layer"]
    for key in NEEDS[layer]:
        if settings[key] is None:
            raise SettingError(None, f"A {layer} layer needs '{key}'.")
    for key in CONV_ONLY if layer == LINEAR else ("in_features", "out_features"):
        if settings[key] is not None:
            raise SettingError(key, f"A {layer} layer has no '{key}'.")
    groups = settings["groups"] or 1
    if layer == CONV and (settings["in_channels"] % groups or settings["out_channels"] % groups):
        cin, cout = settings["in_channels"], settings["out_channels"]
        raise SettingError("groups", f"groups = {groups} must divide both in_channels ({cin}) "
                                     f"and out_channels ({cout}).")


def build(settings: dict[str, Any]) -> Exercise:
    """The exercise, its answer counted on the real torch layer."""
    _check(settings)
    layer = make_layer(settings)
    total = sum(p.numel() for p in layer.parameters())
    bias = settings["bias"]
    if settings["layer"] == CONV:
        cin, cout, k = settings["in_channels"], settings["out_channels"], settings["kernel"]
        g = settings["groups"] or 1
        call = f"nn.Conv2d({cin}, {cout}, kernel_size={k}, groups={g}, bias={bias})"
        weights = cout * (cin // g) * k * k
        shape = f"out x in/groups x k x k = {cout} x {cin // g} x {k} x {k} = {weights:,}"
        seen = f" (each kernel sees {cin // g} of the {cin} input channels)" if g > 1 else ""
        out = cout
    else:
        fin, out = settings["in_features"], settings["out_features"]
        call = f"nn.Linear({fin}, {out}, bias={bias})"
        weights = out * fin
        shape, seen = f"out x in = {out} x {fin} = {weights:,}", ""
    assert weights + (out if bias else 0) == total
    explanation = (f"weight: {shape}{seen}; bias: " + (f"one per output, {out:,}" if bias else "none")
                   + f"; total {total:,}.")
    question = (f"How many learnable parameters (weights and biases) has {call}? "
                "(PyTorch counts them as sum(p.numel() for p in layer.parameters()).)")
    return Exercise(PARAMETERS, settings, question, total, f"{total:,}", explanation, example="1,234",
                    extra={"weights": weights, "ignored_groups": weights * (settings["groups"] or 1)})


def judge(exercise: Exercise, text: str) -> Verdict:
    typed = parse_count(text)
    if typed == exercise.answer:
        return Verdict(True, f"Right: {exercise.answer_text}.", exercise.explanation)
    extra = exercise.extra
    biases = exercise.answer - extra["weights"]
    hints = {extra["ignored_groups"] + biases: " With groups, each kernel sees only in_channels/groups "
                                               "input channels."}
    if biases:
        hints[extra["weights"]] = " That is the weights alone: the bias adds one number per output."
        hints[extra["weights"] + 1] = " The bias is one number per output, not one for the layer."
    hint = hints.get(typed, "")
    return Verdict(False, f"Not quite: you wrote {typed:,}, the layer has {exercise.answer_text}.{hint}",
                   exercise.explanation)

