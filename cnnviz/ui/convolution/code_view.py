"""The Convolution page's "PyTorch code for this map": the lines that compute the map it shows."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cnnviz.convolution.steps import ConvSteps
from cnnviz.convolution.torch_code import conv_code
from cnnviz.ui.widgets import kept

STYLE_LABELS = {"functional": "F.conv2d (a function)", "module": "nn.Conv2d (a layer with these weights)"}
OPEN_KEY = "conv_code_open"
CODE_LINES_SHOWN = 40  # longer code scrolls in a box of CODE_HEIGHT pixels
CODE_HEIGHT = 640


def show_torch_code(pixels: np.ndarray, padding: int | str | tuple, steps: ConvSteps) -> None:
    """An expander with the PyTorch code that computes ``steps``' feature maps from the unpadded
    input ``pixels`` (C, H, W) and the page's ``padding``; the code is written only while it is open.
    """
    expander = st.expander("PyTorch code for this map", icon=":material/code:", key=OPEN_KEY,
                           on_change="rerun")
    with expander:
        if not expander.open:
            return
        style = st.radio("Write it with", tuple(STYLE_LABELS), format_func=STYLE_LABELS.get,
                         key=kept("conv_code_style"), horizontal=True)
        try:
            code = conv_code(pixels, steps.weight, steps.bias, stride=steps.stride, padding=padding,
                             dilation=steps.dilation, groups=getattr(steps, "groups", 1), style=style)
        except ValueError as err:
            st.warning(str(err), icon=":material/block:")
            return
        st.caption("Every number of the input and the kernels is written out exactly, so the map it prints "
                   "is the one above (PyTorch prints 4 decimals). It needs only PyTorch; the copy button "
                   "is at the top right of the code.")
        long = code.count("\n") > CODE_LINES_SHOWN
        st.code(code, language="python", height=CODE_HEIGHT if long else "content")
