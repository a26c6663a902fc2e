"""The Convolution page's "PyTorch code for this map" (AppTest): the code it shows, run, gives the
page's own feature map."""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.ui.convolution.code_view import OPEN_KEY
from cnnviz.ui.navigation import PAGES
from cnnviz.ui.plotly_wire import decode_typed_array
from tests.conftest import REPO

PAGE = next(spec for spec in PAGES if spec.url_path == "convolution")


def _open() -> AppTest:
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=90)
    app.run()
    app.switch_page(str(PAGE.path))
    return app.run()


def _run_code(text: str) -> np.ndarray:
    """Run the code a page shows; its ``output``, (K, Ho, Wo)."""
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(text, "page_code.py", "exec"), namespace)  # noqa: S102
    return namespace["output"].numpy()


def _run_shown_code(app: AppTest) -> np.ndarray:
    assert len(app.code) == 1
    return _run_code(app.code[0].value)


def _page_feature_map(app: AppTest) -> np.ndarray:
    """Feature map 1 as the page draws it before ReLU."""
    chart = next(json.loads(c.proto.spec) for c in app.get("plotly_chart")
                 if json.loads(c.proto.spec)["data"][0].get("name") == "before ReLU")
    return np.asarray(decode_typed_array(chart["data"][0]["z"]), dtype=np.float64)


def _page_output_size(app: AppTest) -> tuple[int, int]:
    text = " ".join(m.value for m in app.markdown)
    height, width = re.search(r"\*\*Output: (\d+) x (\d+)\*\*", text).groups()
    return int(height), int(width)


def test_the_code_is_written_only_when_its_expander_opens():
    app = _open()
    assert not app.exception
    assert [e.label for e in app.expander] == ["PyTorch code for this map"] and not app.code
    app.session_state[OPEN_KEY] = True
    app.run()
    assert not app.exception and len(app.code) == 1 and app.code[0].language == "python"


@pytest.mark.parametrize("setting", ["default", "mnist_two_kernels_same_module", "cifar_rgb_strided"])
def test_the_code_shown_gives_the_pages_map(setting):
    app = _open()
    if setting == "mnist_two_kernels_same_module":
        app.radio(key="conv_source").set_value("MNIST sample").run()
        app.number_input(key="conv_kernel_count").set_value(2).run()
        app.selectbox(key="conv_padding").set_value("same").run()
    elif setting == "cifar_rgb_strided":
        app.radio(key="conv_source").set_value("CIFAR-10 sample").run()
        app.radio(key="conv_channels").set_value("RGB (3-channel kernels)").run()
        app.selectbox(key="conv_preset_0").set_value("Sobel x").run()
        app.number_input(key="conv_stride").set_value(2).run()
        app.selectbox(key="conv_padding").set_value("1").run()
        app.number_input(key="conv_dilation").set_value(2).run()
    app.session_state[OPEN_KEY] = True
    app.run()
    if setting == "mnist_two_kernels_same_module":
        app.radio(key="conv_code_style").set_value("module").run()
    assert not app.exception and not app.warning
    code = app.code[0].value
    output = _run_shown_code(app)
    # The figure travels as float32: the page's map to float32's precision.
    np.testing.assert_allclose(output[0], _page_feature_map(app), rtol=1e-6, atol=1e-6)
    assert output.shape[1:] == _page_output_size(app)
    if setting == "mnist_two_kernels_same_module":
        assert output.shape[0] == 2 and "nn.Conv2d(" in code and 'padding="same"' in code
        assert "/ 255" in code  # the sample's pixels, written as whole numbers
    if setting == "cifar_rgb_strided":
        assert "stride=2, padding=1, dilation=2" in code and "F.conv2d(" in code
        assert code.count("[[") >= 3  # three colour channels


def test_a_true_convolutions_code_flips_the_kernel_as_written_and_gives_the_pages_map():
    app = _open()
    app.selectbox(key="conv_preset_0").set_value("Sobel x").run()
    app.toggle(key="conv_flip").set_value(True).run()
    app.session_state[OPEN_KEY] = True
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    code = app.code[0].value
    assert "torch.flip" in code
    np.testing.assert_allclose(_run_shown_code(app)[0], _page_feature_map(app), atol=1e-6)


def test_the_lessons_code_gives_the_lessons_maps():
    from tests.test_conv_kinds_page import _chart, _lesson, _tiles
    from tests.test_conv_transposed_page import _last_frame

    app = _open()
    app.radio(key="conv_lesson").set_value("Transposed convolution").run()
    app.number_input(key="tconv_stride_h").set_value(2).run()
    app.session_state["tconv_code_open"] = True
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    code = app.code[0].value
    assert "conv_transpose2d" in code
    chart = next(c for c in app.get("plotly_chart") if c.proto.id.endswith("tconv_chart"))
    figure = json.loads(chart.proto.spec)
    np.testing.assert_allclose(_run_code(code)[0], _last_frame(figure, "output"), atol=1e-6)

    app = _lesson(app, "4 feature maps of an MNIST digit")
    app.radio(key="chan_groups_4").set_value(2).run()
    app.session_state["chan_grouped_code_open"] = True
    app.session_state["chan_mix_code_open"] = True
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    grouped, mixed = (c.value for c in app.code)
    assert "groups=2" in grouped
    np.testing.assert_allclose(_run_code(grouped), _tiles(_chart(app, "chan_grouped_maps"), 4, (28, 28)),
                               atol=1e-4)
    shown_input = _tiles(_chart(app, "chan_input_maps"), 4, (28, 28))
    weights = np.array([app.number_input(key=f"chan_mix_4_{c}").value for c in range(4)])
    np.testing.assert_allclose(_run_code(mixed)[0], np.einsum("c,chw->hw", weights, shown_input), atol=1e-4)
