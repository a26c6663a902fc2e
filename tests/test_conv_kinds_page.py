"""The Convolution page's per-axis stride and padding, the true-convolution toggle, and the lesson
"Groups, depthwise and 1x1": the maps the page draws equal torch's for settings set through the widgets."""

from __future__ import annotations

import json

import numpy as np
import pytest
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


def _tiles(figure: dict, count: int, shape: tuple[int, int], gap: int = 3, per_row: int = 4) -> np.ndarray:
    """(count, H, W) maps cut back out of a figure that tiles them in rows of ``per_row``."""
    z = decode_typed_array(figure["data"][0]["z"])
    h, w = shape
    return np.stack([z[(i // per_row) * (h + gap):(i // per_row) * (h + gap) + h,
                       (i % per_row) * (w + gap):(i % per_row) * (w + gap) + w] for i in range(count)])


def _lesson(app: AppTest, channel_input: str) -> AppTest:
    app.radio(key="conv_lesson").set_value("Groups, depthwise and 1x1").run()
    app.radio(key="chan_input").set_value(channel_input).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _chart(app: AppTest, name: str) -> dict:
    chart = next(c for c in app.get("plotly_chart") if c.proto.id.endswith(name))
    return json.loads(chart.proto.spec)


def test_lesson_grouped_and_separable_maps_of_mnist_feature_maps_equal_torch():
    from cnnviz.convolution.channel_lesson import FEATURE_KERNELS, seeded_kernels
    from cnnviz.convolution.kernels import build_kernel_bank
    from cnnviz.datasets import samples

    app = _lesson(_open(), "4 feature maps of an MNIST digit")
    app.radio(key="chan_groups_4").set_value(2).run()
    app.number_input(key="chan_seed").set_value(7).run()
    assert not app.exception, [e.value for e in app.exception]
    digit = samples.load_sample(samples.list_samples("mnist")[0]).double()[None] / 255  # (1, 1, 28, 28)
    bank = torch.from_numpy(build_kernel_bank(FEATURE_KERNELS, 3, 3, 1, ""))  # (4, 1, 3, 3)
    maps = F.conv2d(digit, bank, padding=1)  # the lesson's input: (1, 4, 28, 28)
    shown_input = _tiles(_chart(app, "chan_input_maps"), 4, (28, 28))
    np.testing.assert_allclose(shown_input, maps[0].numpy(), atol=1e-5)
    weight = torch.from_numpy(seeded_kernels(4, 2, 7))  # 4 kernels of 4/2 = 2 slices
    grouped = F.conv2d(maps, weight, padding=1, groups=2)[0].numpy()
    np.testing.assert_allclose(_tiles(_chart(app, "chan_grouped_maps"), 4, (28, 28)), grouped, atol=1e-4)
    # the connection grid: kernel 1 and 2 have slices for channels 1-2 only, kernels 3 and 4 for 3-4
    connections = decode_typed_array(_chart(app, "chan_connections")["data"][0]["z"])  # 4x4 blocks of 3x3
    for k in range(4):
        for c in range(4):
            block = connections[k * 4:k * 4 + 3, c * 4:c * 4 + 3]
            if c // 2 == k // 2:
                np.testing.assert_allclose(block, weight[k, c % 2].numpy(), atol=1e-6)
            else:
                assert np.isnan(block).all()
    markdown = " ".join(m.value for m in app.markdown)
    params = sum(p.numel() for p in torch.nn.Conv2d(4, 4, 3, groups=2, bias=False).parameters())
    ordinary = sum(p.numel() for p in torch.nn.Conv2d(4, 4, 3, bias=False).parameters())
    assert f"= {params} weights" in markdown and f"= {ordinary} weights" in markdown
    assert "kernel 1 sees X detector, Sobel x; kernel 2 sees X detector, Sobel x; kernel 3 sees Sobel y" \
        in markdown
    # depthwise then pointwise, with the same seed
    app.number_input(key="chan_sep_out").set_value(3).run()
    depthwise = F.conv2d(maps, torch.from_numpy(seeded_kernels(4, 1, 7)), padding=1, groups=4)
    pointwise = F.conv2d(depthwise, torch.from_numpy(seeded_kernels(3, 4, 8, side=1)))[0].numpy()
    np.testing.assert_allclose(_tiles(_chart(app, "chan_depthwise_maps"), 4, (28, 28)), depthwise[0].numpy(),
                               atol=1e-4)
    np.testing.assert_allclose(_tiles(_chart(app, "chan_pointwise_maps"), 3, (28, 28)), pointwise, atol=1e-4)
    separable = sum(p.numel() for p in torch.nn.Conv2d(4, 4, 3, groups=4, bias=False).parameters()) + sum(
        p.numel() for p in torch.nn.Conv2d(4, 3, 1, bias=False).parameters())
    assert f"together **{separable}**" in " ".join(m.value for m in app.markdown)


def test_lesson_one_by_one_mixing_of_rgb_with_the_students_weights_equals_torch():
    from cnnviz.datasets import samples

    app = _lesson(_open(), "RGB picture (CIFAR-10, 3 channels)")
    assert [app.number_input(key=f"chan_mix_3_{c}").value for c in range(3)] == [0.299, 0.587, 0.114]
    for c, value in enumerate((0.5, -1.0, 0.25)):
        app.number_input(key=f"chan_mix_3_{c}").set_value(value).run()
    app.number_input(key="chan_pixel_row").set_value(3).run()
    app.number_input(key="chan_pixel_col").set_value(20).run()
    assert not app.exception, [e.value for e in app.exception]
    picture = samples.load_sample(samples.list_samples("cifar10")[0]).double()[None] / 255  # (1, 3, 32, 32)
    mixed = F.conv2d(picture, torch.tensor([0.5, -1.0, 0.25], dtype=torch.float64)[None, :, None, None])
    mix_maps = _tiles(_chart(app, "chan_mix_maps"), 4, (32, 32))
    np.testing.assert_allclose(mix_maps[3], mixed[0, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(mix_maps[:3], picture[0].numpy(), atol=1e-6)
    line = next(m.value for m in app.markdown if m.value.startswith("Pixel (3, 20)"))
    r, g, b = picture[0, :, 3, 20].tolist()
    assert f"0.5 x {r:.3f} (R) - 1 x {g:.3f} (G) + 0.25 x {b:.3f} (B)" in line
    assert line.endswith(f"= {float(mixed[0, 0, 3, 20]):.4f}`")


def _assert_fits(page, width: int) -> None:
    """No chart, table or text block of the main column runs past the window's right edge."""
    overflow = page.evaluate(
        """(width) => [...document.querySelectorAll(
              "[data-testid=stMain] [data-testid=stPlotlyChart], "
              + "[data-testid=stMain] [data-testid=stDataFrame], "
              + "[data-testid=stMain] [data-testid=stMarkdownContainer]")]
            .map(e => e.getBoundingClientRect()).filter(r => r.width > 0 && r.right > width + 1)
            .map(r => Math.round(r.right))""", width)
    assert not overflow, overflow


@pytest.mark.browser
def test_lesson_and_new_controls_in_a_real_browser_at_1400_and_800_px(app_server, browser_page):
    from tests.conftest import assert_no_exception, open_page, save_screenshot, wait_until_idle

    open_page(browser_page, f"{app_server}/{PAGE.url_path}")
    main = browser_page.get_by_test_id("stMain")
    main.get_by_text("Separate height and width").click()
    wait_until_idle(browser_page)
    main.get_by_text("True convolution (flip the kernel)").click()
    wait_until_idle(browser_page)
    assert_no_exception(browser_page)
    assert main.get_by_text("Stride, width").count() == 1
    for width in (1400, 800):
        browser_page.set_viewport_size({"width": width, "height": 1000})
        wait_until_idle(browser_page)
        _assert_fits(browser_page, width)
        save_screenshot(browser_page, f"conv-kinds-controls-{width}")
    main.get_by_text("Groups, depthwise and 1x1").click()
    wait_until_idle(browser_page)
    main.get_by_text("4 feature maps of an MNIST digit").click()
    wait_until_idle(browser_page)
    main.locator("[data-testid=stRadio]", has_text="Groups").get_by_text("2", exact=True).click()
    wait_until_idle(browser_page)
    assert_no_exception(browser_page)
    # the input, the kernel grid, the grouped, depthwise, pointwise and mixed maps
    assert browser_page.locator(".js-plotly-plot").count() == 6
    for width in (1400, 800):
        browser_page.set_viewport_size({"width": width, "height": 1000})
        wait_until_idle(browser_page)
        _assert_fits(browser_page, width)
        save_screenshot(browser_page, f"conv-kinds-lesson-{width}")
    main.get_by_text("RGB picture (CIFAR-10, 3 channels)").click()  # at 800 px
    wait_until_idle(browser_page)
    assert_no_exception(browser_page)
    _assert_fits(browser_page, 800)
    save_screenshot(browser_page, "conv-kinds-lesson-rgb-800")
