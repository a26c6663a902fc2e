"""The convolution page: AppTest (controls change the figure) and a real browser (the animation plays)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.convolution.kernels import binary_picture, make_kernel
from cnnviz.ui.navigation import PAGES
from cnnviz.ui.plotly_wire import decode_typed_array
from tests.conftest import REPO, assert_no_exception, open_page, save_screenshot, wait_until_idle

PAGE = next(spec for spec in PAGES if spec.url_path == "convolution")


def _open() -> AppTest:
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    app.switch_page(str(PAGE.path))
    return app.run()


def _figure(app: AppTest, index: int = 0) -> dict:
    return json.loads(app.get("plotly_chart")[index].proto.spec)


def test_default_page_animates_every_step_of_the_x_detector():
    app = _open()
    assert not app.exception, [e.value for e in app.exception]
    assert PAGES[0] is PAGE, "the convolution page comes first"
    figure = _figure(app)
    assert len(figure["frames"]) == 25  # 7x7 X picture, 3x3 kernel, stride 1, no padding: 5x5 outputs
    assert [b["label"] for b in figure["layout"]["updatemenus"][0]["buttons"]] == ["▶ Play", "❚❚ Pause"]
    assert len(figure["layout"]["sliders"][0]["steps"]) == 25
    # the last frame shows the whole feature map, equal to the X detector slid over the X by torch
    import torch
    import torch.nn.functional as F

    last = decode_typed_array(figure["frames"][-1]["data"][1]["z"])
    expected = F.conv2d(
        torch.from_numpy(binary_picture("X 7x7"))[None],
        torch.from_numpy(make_kernel("X detector", 3, 3))[None, None],
    )[0, 0].numpy()
    np.testing.assert_allclose(last, expected, rtol=1e-6)
    assert "floor(4/1) + 1 = 5" in " ".join(m.value for m in app.markdown)


def test_controls_change_the_figure_and_bad_settings_are_explained():
    app = _open()
    app.number_input(key="conv_stride").set_value(2).run()
    assert not app.exception
    assert len(_figure(app)["frames"]) == 9  # floor((7 - 3)/2) + 1 = 3 per axis
    app.selectbox(key="conv_padding").set_value("same").run()
    assert not app.exception
    warning = " ".join(w.value for w in app.warning)
    assert "stride 1" in warning  # "same" at stride 2 is refused with the reason, no figure
    app.number_input(key="conv_stride").set_value(1).run()
    app.number_input(key="conv_kernel_count").set_value(2).run()
    assert not app.exception and not app.warning
    figure = _figure(app)
    assert len(figure["frames"]) == 49  # "same": 7x7 outputs
    assert "kernel 2" in " ".join(figure["frames"][0]["data"][4]["text"])
    app.number_input(key="conv_kernel_h").set_value(7).run()
    app.number_input(key="conv_dilation").set_value(2).run()
    assert not app.exception
    assert "3x3" in " ".join(w.value for w in app.warning)  # the X detector only comes in 3x3


def test_rgb_sample_large_input_is_bounded_and_pooling_works():
    app = _open()
    app.radio(key="conv_source").set_value("CIFAR-10 sample").run()
    app.radio(key="conv_channels").set_value("RGB (3-channel kernels)").run()
    app.selectbox(key="conv_preset_0").set_value("Sobel x").run()
    app.selectbox(key="conv_padding").set_value("1").run()
    assert not app.exception, [e.value for e in app.exception]
    figure = _figure(app)
    assert len(figure["frames"]) == 64  # 32x32 = 1024 outputs, bounded to 64 frames
    assert any("evenly spread" in c.value for c in app.caption)
    assert figure["data"][0]["type"] == "image"
    app.radio(key="pool_mode").set_value("average").run()
    app.number_input(key="pool_padding").set_value(2).run()
    assert not app.exception
    assert "at most half" in " ".join(w.value for w in app.warning)


def test_upload_of_a_broken_file_gets_one_friendly_sentence():
    app = _open()
    app.radio(key="conv_source").set_value("your picture").run()
    app.file_uploader(key="conv_upload").set_value(("notes.png", b"this is not a picture", "image/png")).run()
    assert not app.exception
    assert any("not an image cnnviz can read" in w.value and "PNG, JPEG" in w.value for w in app.warning)


def test_a_broken_upload_is_decoded_once_and_its_sentence_kept_for_every_rerun(monkeypatch):
    from cnnviz.ui.convolution import cache

    decodes = []
    real_decode = cache.decode_image

    def counted_decode(*args, **kwargs):
        decodes.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(cache, "decode_image", counted_decode)  # the real decoder, counted
    app = _open()
    app.radio(key="conv_source").set_value("your picture").run()
    app.file_uploader(key="conv_upload").set_value(("notes.png", b"not a picture, twice", "image/png")).run()
    for _ in range(2):
        app.run()
        assert not app.exception
        assert any("not an image cnnviz can read" in w.value for w in app.warning)
    assert len(decodes) == 1


@pytest.mark.browser
def test_animation_plays_in_a_real_browser(app_server, browser_page):
    open_page(browser_page, f"{app_server}/{PAGE.url_path}")
    assert_no_exception(browser_page)
    chart = browser_page.get_by_test_id("stPlotlyChart").first
    chart.wait_for()
    frames = browser_page.wait_for_function(  # plotly.js draws after Streamlit says the script is done
        "() => document.querySelector('.js-plotly-plot')?._transitionData?._frames?.length",
        timeout=20_000,
    ).json_value()
    assert frames == 25
    play = chart.locator(".updatemenu-button", has_text="Play")
    assert play.count() == 1
    current = chart.locator("text.slider-label", has_text="output cell")  # the slider's current value
    assert "(0,0)" in current.text_content()
    play.click()
    # 450 ms per frame: the slider's value moves on within seconds, even on a busy machine
    browser_page.wait_for_function(
        """() => [...document.querySelectorAll('.js-plotly-plot text.slider-label')]
                 .some(t => t.textContent.startsWith('output cell') && !t.textContent.endsWith('(0,0)'))""",
        timeout=20_000,
    )
    chart.locator(".updatemenu-button", has_text="Pause").click()
    wait_until_idle(browser_page)
    assert_no_exception(browser_page)
    chart.evaluate("element => element.scrollIntoView({block: 'center'})")
    save_screenshot(browser_page, "page-convolution-playing", full_page=False)


def test_uploaded_picture_is_shrunk_with_a_note():
    import io

    from PIL import Image

    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    app = _open()
    app.radio(key="conv_source").set_value("your picture").run()
    app.file_uploader(key="conv_upload").set_value(("photo.png", buffer.getvalue(), "image/png")).run()
    assert not app.exception, [e.value for e in app.exception]
    captions = " ".join(c.value for c in app.caption)
    assert "120x200 picture (height x width) was shrunk to 38x64" in captions
    assert "1x1 convolution" in captions  # grayscale mode mixed the colour channels
    assert len(_figure(app)["frames"]) == 64  # 62x36 outputs, bounded


def test_upload_notes_give_the_original_size_and_what_reading_did():
    import io

    from PIL import Image

    gray = np.tile(np.linspace(0, 60000, 3000, dtype=np.uint16), (40, 1))  # 3000x40, 16-bit gray, with alpha
    picture = Image.fromarray(gray).convert("I;16")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    app = _open()
    app.radio(key="conv_source").set_value("your picture")
    app.radio(key="conv_channels").set_value("RGB (3-channel kernels)").run()
    app.file_uploader(key="conv_upload").set_value(("wide.png", buffer.getvalue(), "image/png")).run()
    assert not app.exception, [e.value for e in app.exception]
    captions = " ".join(c.value for c in app.caption)
    # the file's size, not 1024's
    assert "Your 40x3000 picture (height x width) was shrunk to 1x64 pixels" in captions
    assert "16-bit values scaled to 8 bits" in captions
    assert "gray (one channel)" in captions and "1x1 convolution" not in captions
    assert "RGB mode" not in captions  # a gray picture gets one-channel kernels


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"conv_picture": "X 5x5", "conv_kernel_h": 7, "conv_kernel_w": 7, "conv_preset_0": "box blur"},
            "fits nowhere",
        ),
        (
            {
                "conv_kernel_h": 4,
                "conv_kernel_w": 2,
                "conv_preset_0": "Gaussian blur",
                "conv_padding": "same",
            },
            None,
        ),
        ({"conv_dilation": 3, "conv_stride": 3, "conv_padding": "2"}, None),
        # a 1x1 feature map cannot be pooled with a 2x2 window: said so below the convolution
        ({"conv_dilation": 3, "conv_stride": 3, "conv_padding": "1"}, "the feature map is only 1 row "),
        ({"conv_preset_0": "custom", "conv_custom_0": "1 2\n3"}, "same number of values"),
        ({"conv_preset_0": "custom", "conv_custom_0": "1 0 -1\n2 0 -2"}, "kernel 1 is 2x3"),
        ({"conv_preset_0": "custom", "conv_kernel_h": 2, "conv_custom_0": "1 0 -1\n2 0 -2"}, None),
        ({"conv_kernel_count": 4, "conv_channels": "RGB (3-channel kernels)"}, None),
        ({"pool_window": 4, "pool_stride": 1, "pool_mode": "average"}, None),
    ],
)
def test_odd_settings_never_raise(changes, message):
    app = _open()
    for key, value in changes.items():
        widget = next(
            w
            for kind in ("number_input", "selectbox", "radio", "text_area")
            for w in getattr(app, kind)
            if w.key == key
        )
        widget.set_value(value)
        app.run()  # some widgets (the custom kernel box) appear only after a choice
    assert not app.exception, [e.value for e in app.exception]
    warnings = " ".join(w.value for w in app.warning)
    if message is None:
        assert not warnings, warnings
        assert app.get("plotly_chart")
    else:
        assert message in warnings


def test_region_of_interest_animates_every_step_of_a_block():
    app = _open()
    app.radio(key="conv_source").set_value("MNIST sample").run()
    app.selectbox(key="conv_preset_0").set_value("Sobel x").run()
    app.radio(key="conv_large_view").set_value("every step of a 8x8 region").run()
    app.number_input(key="conv_region_top").set_value(10).run()
    app.number_input(key="conv_region_left").set_value(18).run()  # 26x26 output: the last 8 columns
    assert not app.exception, [e.value for e in app.exception]
    figure = _figure(app)
    assert len(figure["frames"]) == 8 * 8
    assert figure["layout"]["sliders"][0]["steps"][0]["label"] == "(10,18)"
    last = decode_typed_array(figure["frames"][-1]["data"][1]["z"])
    assert np.isfinite(last).sum() == 64 and np.isfinite(last[10:18, 18:26]).all()
    assert any("rows 10..17 and columns 18..25" in c.value for c in app.caption)


def test_the_page_title_fits_every_lesson():
    """The title is the lab's, not the first lesson's, whichever lesson is picked."""
    from cnnviz import pages

    app = _open()
    for lesson in pages.CONV_LESSONS:
        app.radio(key=pages.CONV_LESSON_KEY).set_value(lesson).run()
        assert not app.exception, [e.value for e in app.exception]
        assert [t.value for t in app.title] == ["The convolution lab"]


def test_the_pooling_controls_are_not_labelled_like_the_convolutions():
    app = _open()
    labels = [n.label for n in app.number_input]
    assert labels.count("Stride") == 1 and "Pool stride" in labels and "Pool padding" in labels
    assert app.number_input(key="pool_stride").label == "Pool stride"
