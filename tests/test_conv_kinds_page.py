"""The Convolution page's per-axis stride and padding, the true-convolution toggle, and the lesson
"Groups, depthwise and 1x1": the maps the page draws equal torch's for settings set through the widgets."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from cnnviz.convolution.kernels import binary_picture, make_kernel
from cnnviz.ui.navigation import PAGES
from cnnviz.ui.plotly_wire import decode_typed_array
from tests.conftest import REPO

PAGE = next(spec for spec in PAGES if spec.url_path == "convolution")


def _open() -> AppTest:
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    app.switch_page(str(PAGE.path))
    return app.run()


def _figures(app: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def _conv_figure(app: AppTest) -> dict:
    return next(f for f in _figures(app) if f.get("frames"))  # the animation: the only one with frames


def _last_map(figure: dict) -> np.ndarray:
    return decode_typed_array(figure["frames"][-1]["data"][1]["z"])  # frame traces: window, output, ...


def test_separate_height_and_width_strides_and_paddings_equal_torch():
    app = _open()
    assert "conv_stride_w" not in [w.key for w in app.number_input]  # one stride until asked for two
    app.checkbox(key="conv_per_axis").check().run()
    app.number_input(key="conv_stride_w").set_value(2).run()
    app.selectbox(key="conv_padding").set_value("1").run()
    app.selectbox(key="conv_padding_w").set_value("0").run()
    assert not app.exception, [e.value for e in app.exception]
    labels = [w.label for w in app.number_input]
    assert "Stride, height" in labels and "Stride, width" in labels
    expected = F.conv2d(torch.from_numpy(binary_picture("X 7x7"))[None],
                        torch.from_numpy(make_kernel("X detector", 3, 3))[None, None],
                        stride=(1, 2), padding=(1, 0))[0, 0].numpy()
    figure = _conv_figure(app)
    assert len(figure["frames"]) == expected.size == 7 * 3
    np.testing.assert_allclose(_last_map(figure), expected, rtol=1e-6)
    markdown = " ".join(m.value for m in app.markdown)
    assert "Output: 7 x 3" in markdown
    assert "floor((7 + 2*1 - 1*(3-1) - 1) / 1) + 1" in markdown  # height: its own padding and stride
    assert "floor((7 + 2*0 - 1*(3-1) - 1) / 2) + 1" in markdown  # width: its own
    app.checkbox(key="conv_per_axis").uncheck().run()  # back to one stride for both: padding 1, stride 1
    assert len(_conv_figure(app)["frames"]) == 49 and not app.exception


def test_true_convolution_flips_the_kernel_the_animation_slides():
    app = _open()
    app.radio(key="conv_source").set_value("MNIST sample").run()
    app.selectbox(key="conv_preset_0").set_value("Sobel x").run()
    app.radio(key="conv_large_view").set_value("every step of a 8x8 region").run()
    app.toggle(key="conv_flip").set_value(True).run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("a flipped kernel is just another kernel" in c.value for c in app.caption)
    figures = _figures(app)
    sobel = make_kernel("Sobel x", 3, 3)
    flip_view = figures[0]  # kernel as written beside the kernel that slides
    np.testing.assert_allclose(decode_typed_array(flip_view["data"][0]["z"]), sobel)
    np.testing.assert_allclose(decode_typed_array(flip_view["data"][1]["z"]), sobel[::-1, ::-1])
    figure = _conv_figure(app)
    np.testing.assert_allclose(decode_typed_array(figure["data"][1]["z"]), sobel[::-1, ::-1])  # kernel panel
    from cnnviz.datasets import samples

    image = samples.load_sample(samples.list_samples("mnist")[0]).double() / 255  # (1, 28, 28) in 0..1
    expected = F.conv2d(image[None], torch.flip(torch.from_numpy(sobel), (0, 1))[None, None])[0, 0].numpy()
    first_row = int(app.number_input(key="conv_region_top").value)
    first_col = int(app.number_input(key="conv_region_left").value)
    block = (slice(first_row, first_row + 8), slice(first_col, first_col + 8))
    region = _last_map(figure)[block]
    np.testing.assert_allclose(region, expected[block], atol=1e-5)
    plain = F.conv2d(image[None], torch.from_numpy(sobel)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(region, -plain[block], atol=1e-5)  # Sobel x turned 180 degrees is -Sobel x
