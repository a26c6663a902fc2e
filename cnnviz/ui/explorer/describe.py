"""One sentence per layer kind: what the picked layer does to the numbers it receives."""

from __future__ import annotations

from torch import nn

from cnnviz.explorer.layers import NetLayer, Trace


def _pair(value) -> str:
    first, second = (value, value) if isinstance(value, int) else tuple(value)
    return f"{first}" if first == second else f"{first} x {second}"


def _square(value) -> str:
    """A window's size written out: 2 -> "2 x 2" (a student reads "each 2 window" as nothing)."""
    first, second = (value, value) if isinstance(value, int) else tuple(value)
    return f"{first} x {second}"


def describe_layer(layer: NetLayer, trace: Trace) -> str:
    """What ``layer`` computes, with its sizes: "A convolution: 32 kernels of 16 x 3 x 3 ..."."""
    module = layer.module
    shape_in = " x ".join(map(str, trace.layer_input(layer.number).shape[1:]))
    shape_out = " x ".join(map(str, trace.outputs[layer.number].shape[1:]))
    sizes = f"({shape_in} in, {shape_out} out)"
    if isinstance(module, nn.Conv2d):
        k = " x ".join(map(str, module.kernel_size))
        bias = "plus a bias" if module.bias is not None else "no bias (the BatchNorm after it shifts instead)"
        return (f"**A convolution** {sizes}: {module.out_channels} kernels of {module.in_channels} x {k}, "
                f"stride {_pair(module.stride)}, padding {_pair(module.padding)}, {bias}. Each number is "
                "the sum of a kernel times the window of the layer below, over every input channel.")
    if isinstance(module, nn.BatchNorm2d):
        return (f"**Batch normalization** {sizes}: each channel's value minus its running mean, divided by "
                "the square root of its running variance (plus a small eps), times a learned weight plus a "
                "learned shift.")
    if isinstance(module, nn.ReLU):
        return f"**ReLU** {sizes}: negative numbers become 0, the rest pass unchanged."
    if isinstance(module, nn.MaxPool2d):
        return (f"**Max pooling** {sizes}: the largest of each {_square(module.kernel_size)} window, "
                f"stride {_pair(module.stride)}.")
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AvgPool2d):
        return f"**Average pooling** {sizes}: the mean of each channel's window (global: the whole map)."
    if isinstance(module, nn.Dropout | nn.Dropout2d):
        return f"**Dropout** {sizes}: active only while training; here every number passes unchanged."
    if isinstance(module, nn.Flatten):
        return f"**Flatten** {sizes}: the maps laid end to end as one list of numbers, channel by channel."
    if isinstance(module, nn.Linear):
        dense = (f"**A dense layer** {sizes}: each unit is a weighted sum of all {module.in_features} inputs "
                 "plus a bias.")
        if layer.number == len(trace.outputs) - 1:  # its value is a logit, not the percentage shown above
            dense += (f" This is the output layer: its {module.out_features} numbers are the logits, one per "
                      "class; the softmax below turns them into the probabilities.")
        return dense
    if layer.kind == "ResidualBlock":
        return (f"**A residual block** {sizes}: two convolutions (each with BatchNorm and ReLU) and the "
                "block's input added back on (the shortcut).")
    return f"**{layer.kind}** {sizes}."
