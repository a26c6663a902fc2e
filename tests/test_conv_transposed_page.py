"""The Convolution page's transposed-convolution lesson: AppTest (the maps it draws for settings set
through its widgets equal torch) and a real browser at 1400 and 800 px."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from cnnviz.convolution.transposed import autograd_input_gradient
from cnnviz.ui.navigation import PAGES
from cnnviz.ui.plotly_wire import decode_typed_array
from tests.conftest import REPO, assert_no_exception, open_page, save_screenshot, wait_until_idle

PAGE = next(spec for spec in PAGES if spec.url_path == "convolution")
LESSON = "Transposed convolution"
SCREENSHOTS = Path("/tmp/r20-transposed")


def _open_lesson() -> AppTest:
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    app.switch_page(str(PAGE.path))
    app.run()
    app.radio(key="conv_lesson").set_value(LESSON).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _charts(app: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def _last_frame(figure: dict, trace_name: str) -> np.ndarray:
    """The values the last frame gives the trace named ``trace_name``."""
    index = next(i for i, trace in enumerate(figure["data"]) if trace.get("name") == trace_name)
    frame = figure["frames"][-1]
    return decode_typed_array(frame["data"][frame["traces"].index(index)]["z"])


def test_the_lessons_maps_equal_conv_transpose2d_for_the_settings_set_through_the_widgets():
    app = _open_lesson()
    grid = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    app.text_area(key="tconv_input").set_value("1 -2 0.5\n3, 0, -1").run()
    app.selectbox(key="tconv_kernel").set_value("1, 2, 3, ... (shows the flip)").run()
    app.number_input(key="tconv_kernel_w").set_value(2).run()
    app.number_input(key="tconv_bias").set_value(0.5).run()
    for key, value in (("stride_h", 2), ("stride_w", 3), ("padding_h", 1), ("output_padding_h", 1),
                       ("dilation_w", 2)):
        app.number_input(key=f"tconv_{key}").set_value(value).run()
    assert not app.exception and not app.warning, [w.value for w in app.warning]
    kernel = np.arange(1.0, 7.0).reshape(3, 2)
    expected = F.conv_transpose2d(
        torch.from_numpy(grid)[None, None], torch.from_numpy(kernel)[None, None],
        torch.tensor([0.5], dtype=torch.float64),
        stride=(2, 3), padding=(1, 0), output_padding=(1, 0), dilation=(1, 2),
    )[0, 0].numpy()
    slide, scatter, gradient = _charts(app)
    output = _last_frame(slide, "output")
    assert output.shape == expected.shape == (4, 9)  # (2-1)*2 - 2 + 2 + 1 + 1, (3-1)*3 + 2*1 + 1
    np.testing.assert_allclose(output, expected, rtol=1e-6, atol=1e-6)  # float32 on the wire
    np.testing.assert_allclose(_last_frame(scatter, "output so far"), expected, rtol=1e-6, atol=1e-6)
    text = " ".join(m.value for m in app.markdown)
    assert "(2 - 1)*2 - 2*1 + 1*(3 - 1) + 1 + 1 = 4" in text
    assert "(3 - 1)*3 - 2*0 + 2*(2 - 1) + 0 + 1 = 9" in text
    # the gradient link: the map without its bias beside torch.autograd of the strided conv2d
    ours, autograd = (decode_typed_array(trace["z"]) for trace in gradient["data"])
    np.testing.assert_allclose(ours, expected - 0.5, atol=1e-6)
    torch_grad = autograd_input_gradient(grid[None], kernel[None, None], (4, 9), (2, 3), (1, 0), (1, 2))[0]
    np.testing.assert_allclose(autograd, torch_grad, atol=1e-6)
    assert "Largest difference: **0**" in text or "float64 rounding" in text


def test_bad_input_and_impossible_settings_get_one_sentence():
    app = _open_lesson()
    app.text_area(key="tconv_input").set_value("1 2\n3").run()
    assert not app.exception
    assert any("same number of values" in w.value for w in app.warning)
    app.text_area(key="tconv_input").set_value("1 2\n3 4").run()
    app.number_input(key="tconv_output_padding_w").set_value(2).run()  # stride 2, dilation 1: too large
    assert not app.exception
    assert any("must be smaller than the stride (2) or the dilation (1)" in w.value for w in app.warning)
    app.number_input(key="tconv_output_padding_w").set_value(1).run()
    app.number_input(key="tconv_padding_h").set_value(3).run()  # (2-1)*2 - 6 + 2 + 1 = -1
    assert any("would come out -1 cells" in w.value for w in app.warning)
    app.number_input(key="tconv_padding_h").set_value(0).run()
    assert not app.warning and len(_charts(app)) == 3
    assert not any("no gradient to compare" in i.value for i in app.info)
    app.number_input(key="tconv_output_padding_w").set_value(0).run()
    app.number_input(key="tconv_stride_w").set_value(1).run()
    app.number_input(key="tconv_dilation_w").set_value(2).run()
    app.number_input(key="tconv_output_padding_w").set_value(1).run()  # allowed (below the dilation) ...
    assert not app.warning
    assert any("no gradient to compare" in i.value for i in app.info)  # ... but no conv2d maps back


@pytest.mark.browser
def test_the_lesson_in_a_real_browser_at_1400_and_800_px(app_server, browser_page):
    page = browser_page
    open_page(page, f"{app_server}/convolution")
    page.get_by_test_id("stMain").get_by_text(LESSON, exact=True).first.click()
    wait_until_idle(page)
    assert_no_exception(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1400, 800):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(800)
        charts = page.get_by_test_id("stPlotlyChart")
        assert charts.count() == 3
        for index in range(3):  # nothing cut off: every chart inside the window
            box = charts.nth(index).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        path = save_screenshot(page, f"conv-transposed-lesson-{width}")
        shutil.copy(path, SCREENSHOTS / path.name)
    assert_no_exception(page)
