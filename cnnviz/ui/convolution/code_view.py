"""The Convolution page's "PyTorch code for this map": the lines that compute the map it shows."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from cnnviz import pages
from cnnviz.convolution.torch_code import conv_code
from cnnviz.ui.widgets import kept

STYLE_LABELS = {"functional": "F.conv2d (a function)", "module": "nn.Conv2d (a layer with these weights)"}
TRANSPOSED_LABELS = {"functional": "F.conv_transpose2d (a function)",
                     "module": "nn.ConvTranspose2d (a layer with these weights)"}
OPEN_KEY = pages.CONV_CODE_KEY + pages.CODE_OPEN_SUFFIX  # the main lesson's expander
CODE_LINES_SHOWN = 40  # longer code scrolls in a box of CODE_HEIGHT pixels
CODE_HEIGHT = 640


def show_torch_code(
    pixels: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *, key: str = pages.CONV_CODE_KEY,
    **settings: Any,
) -> None:
    """An expander with the PyTorch code that computes the map(s) shown from the unpadded input
    ``pixels`` (C, H, W), the kernels as written ``weight`` and ``bias``; ``settings`` are
    :func:`conv_code`'s (stride, padding, dilation, groups, transposed, output_padding, flip). The code
    is written only while the expander is open; ``key`` tells the page's expanders apart.
    """
    expander = st.expander("PyTorch code for this map", icon=":material/code:",
                           key=key + pages.CODE_OPEN_SUFFIX, on_change="rerun")
    with expander:
        if not expander.open:
            return
        style = st.radio("Write it with", tuple(STYLE_LABELS), key=kept(f"{key}_style"), horizontal=True,
                         format_func=(TRANSPOSED_LABELS if settings.get("transposed") else STYLE_LABELS).get)
        try:
            code = conv_code(pixels, weight, bias, style=style, **settings)
        except ValueError as err:
            st.warning(str(err), icon=":material/block:")
            return
        st.caption("Every number of the input and the kernels is written out exactly, so the map it prints "
                   "is the one above (PyTorch prints 4 decimals). It needs only PyTorch; the copy button "
                   "is at the top right of the code.")
        long = code.count("\n") > CODE_LINES_SHOWN
        st.code(code, language="python", height=CODE_HEIGHT if long else "content")
