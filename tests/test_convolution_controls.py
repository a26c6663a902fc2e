"""The Convolution page's controls: a text per custom kernel and per colour channel, ReLU and pooling on
any feature map, step and speed buttons, and the output cell outlined at every frame; against torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from cnnviz.convolution.frames import frame_positions, plan_frames
from cnnviz.convolution.kernels import (
    binary_picture,
    build_kernel_bank,
    format_kernel,
    make_kernel,
    parse_kernel,
)
from cnnviz.convolution.pooling import AVERAGE, MAX
from cnnviz.convolution.scene import ConvScene, ConvSettings, PoolSettings
from cnnviz.convolution.steps import convolve_steps
from cnnviz.datasets import samples
from cnnviz.images.picture import to_picture
from cnnviz.ui.convolution.figures import build_convolution_figure
from cnnviz.ui.convolution.layout import WINDOW_COLOR
from cnnviz.ui.convolution.pool_figure import build_pooling_figure
from cnnviz.ui.navigation import PAGES
from cnnviz.ui.panels import FRAME_MS, PLAY_MENU, SPEED_MENU, SPEEDS, STEP_MENU
from cnnviz.ui.plotly_wire import decode_typed_array
from tests.conftest import REPO, assert_no_exception, open_page, wait_until_idle

PAGE = next(spec for spec in PAGES if spec.url_path == "convolution")
SCREENSHOTS = "/tmp/r20-controls"


def _conv(image: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    return F.conv2d(torch.from_numpy(image)[None], torch.from_numpy(weight), stride=stride,
                    padding=padding)[0].numpy()


# --- core: custom kernels per kernel and per channel ------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.data())
def test_custom_kernels_per_kernel_and_channel_equal_torch(data):
    kernel_h, kernel_w = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    stride, padding = data.draw(st.integers(1, 3)), data.draw(st.integers(0, 2))
    names = data.draw(st.lists(st.sampled_from(["custom", "custom", "identity", "random"]), min_size=1,
                               max_size=4))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    image = rng.random((3, 9, 8))
    weights = np.round(rng.normal(size=(len(names), 3, kernel_h, kernel_w)), 3)  # what the student types
    per_channel = [data.draw(st.booleans()) for _ in names]
    texts = tuple(
        "" if name != "custom" else tuple(format_kernel(w) for w in weights[k]) if per_channel[k]
        else format_kernel(weights[k, 0])
        for k, (name, w) in enumerate(zip(names, weights, strict=True))
    )
    scene = ConvScene.compute(
        image, ConvSettings(kernel_h, kernel_w, stride, padding, 1, tuple(names), custom_kernels=texts), 64
    )
    expected = np.stack([
        weights[k] if name == "custom" and per_channel[k]
        else np.repeat(weights[k, :1] / 3, 3, 0) if name == "custom"
        else build_kernel_bank([name] * (k + 1), kernel_h, kernel_w, 3)[k]
        for k, name in enumerate(names)
    ])  # (K, 3, kH, kW)
    np.testing.assert_allclose(scene.steps.weight, expected, rtol=1e-12)
    np.testing.assert_allclose(scene.steps.output, _conv(image, expected, stride, padding),
                               rtol=1e-9, atol=1e-9)


def test_each_custom_kernel_has_its_own_text_and_one_text_still_serves_all():
    texts = ("1 0\n0 1", "", "-1 2\n3 1/4")
    bank = build_kernel_bank(["custom", "box blur", "custom"], 2, 2, 1, texts)
    np.testing.assert_array_equal(bank[0, 0], parse_kernel(texts[0]))
    np.testing.assert_array_equal(bank[2, 0], [[-1, 2], [3, 0.25]])
    shared = build_kernel_bank(["custom", "custom"], 2, 2, 3, "1 2\n3 4")
    np.testing.assert_allclose(shared, np.full((2, 3, 2, 2), 1.0) * parse_kernel("1 2\n3 4") / 3)
    typed = ConvSettings(kernels=("custom",), custom_kernels=[["1", "2", "3"]])
    assert typed.custom_kernels == (("1", "2", "3"),)
    assert {typed: 1}[ConvSettings(kernels=("custom",), custom_kernels=(("1", "2", "3"),))]  # a cache key


@pytest.mark.parametrize(
    ("names", "texts", "channels", "message"),
    [
        (["Sobel x", "Sobel y", "custom"],
         ("", "", ("1 0 0\n0 1 0\n0 0 1", "0 0 0\n1 x 1\n0 0 0", "0 0 0\n" * 3)),
         3, r"Row 2 of custom kernel 3's G slice has something that is not a number: '1 x 1'"),
        (["custom", "custom"], ("1 2 3\n4 5 6\n7 8 9", "1 2 3\n\n4 5 6\n7 8"), 1,
         "Every row of custom kernel 2 needs the same number of values; row 4 has 2, row 1 has 3"),
        (["custom"], (("1 2 3\n4 5 6\n7 8 9",) * 2,), 3, "Custom kernel 1 has 2 channel slices but the input "
         "has 3 channels"),
        (["custom"], (("1",) * 3,), 3, "Custom kernel 1's R slice is 1x1 but the kernel size is 3x3"),
        (["custom", "custom"], ("1 2 3\n4 5 6\n7 8 9",), 1, "Type custom kernel 2 as rows of numbers"),
    ],
)
def test_a_bad_custom_kernel_is_named_with_its_row(names, texts, channels, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        build_kernel_bank(names, 3, 3, channels, texts)


# --- core: ReLU and pooling on any feature map ------------------------------------------------------

def test_relu_and_pooling_run_on_the_chosen_feature_map():
    image = np.random.default_rng(3).random((1, 11, 10))
    scene = ConvScene.compute(image, ConvSettings(kernels=("Sobel x", "Sobel y", "Laplacian"), bias=0.1), 64)
    for k in range(3):
        torch_map = F.conv2d(torch.from_numpy(image)[None], torch.from_numpy(scene.steps.weight),
                             torch.full((3,), 0.1, dtype=torch.float64))[0, k]
        before, after = scene.relu_map(k)
        np.testing.assert_allclose(before, torch_map.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(after, F.relu(torch.from_numpy(before)).numpy())
        x = torch.from_numpy(after)[None, None].requires_grad_(True)
        pooled = scene.pool(PoolSettings(MAX, 3, 2, 1), k)
        torch_pooled = F.max_pool2d(x, 3, 2, 1)
        np.testing.assert_array_equal(pooled.steps.output[0], torch_pooled[0, 0].detach().numpy())
        torch_pooled.sum().backward()
        np.testing.assert_array_equal(pooled.gradient[1], x.grad[0, 0].numpy())
        average = scene.pool(PoolSettings(AVERAGE, 2, 1, 0), k)
        np.testing.assert_allclose(average.steps.output[0], F.avg_pool2d(x.detach(), 2, 1)[0, 0].numpy(),
                                   rtol=1e-12)
    with pytest.raises(ValueError, match="no feature map 4; pick one of 1..3"):
        scene.relu_map(3)


# --- figures: the outlined output cell, the region, the step and speed buttons ----------------------

def _box(xs, ys) -> tuple[float, float, float, float]:
    xs, ys = decode_typed_array(xs), decode_typed_array(ys)
    return np.nanmin(xs), np.nanmax(xs), np.nanmin(ys), np.nanmax(ys)


def test_each_frame_outlines_its_output_cell_in_the_window_colour_on_every_map():
    image = np.random.default_rng(0).random((1, 8, 7))
    steps = convolve_steps(image, np.random.default_rng(1).normal(size=(2, 1, 3, 3)), padding=1, stride=2)
    out_h, out_w = steps.output_size
    positions = frame_positions(out_h, out_w, 100)
    figure = build_convolution_figure(steps, positions)
    cursor = figure.data[4]
    assert cursor.name == "current output" and cursor.line.color == WINDOW_COLOR == figure.data[2].line.color
    assert figure.data[2].name == "window"
    for frame, (row, col) in zip(figure.frame_dicts, positions, strict=True):
        xs = decode_typed_array(frame["data"][2]["x"])
        ys = decode_typed_array(frame["data"][2]["y"])
        for k, (start, stop) in enumerate(zip([0, *np.flatnonzero(np.isnan(xs)) + 1][:-1],
                                              np.flatnonzero(np.isnan(xs)), strict=True)):
            left = k * (out_w + 1)  # map k's first column in the tiled output panel
            assert (xs[start:stop].min(), xs[start:stop].max()) == (left + col - 0.5, left + col + 0.5)
            assert (ys[start:stop].min(), ys[start:stop].max()) == (row - 0.5, row + 0.5)
    pooled = pool_steps_of(steps.output[:1])
    pool_positions = frame_positions(*pooled.output.shape[1:], 100)
    pool_figure = build_pooling_figure(pooled, pool_positions)
    assert pool_figure.data[3].name == "current output" and pool_figure.data[3].line.color == WINDOW_COLOR
    for frame, (row, col) in zip(pool_figure.frame_dicts, pool_positions, strict=True):
        box = _box(frame["data"][2]["x"], frame["data"][2]["y"])
        assert box == (col - 0.5, col + 0.5, row - 0.5, row + 0.5)


def pool_steps_of(feature: np.ndarray):
    from cnnviz.convolution.pooling import pool_steps

    return pool_steps(np.maximum(feature, 0), 2, 1, 0, MAX)


def test_a_region_view_outlines_the_region_on_each_output_map():
    steps = convolve_steps(np.random.default_rng(2).random((1, 20, 20)), np.ones((2, 1, 3, 3)))
    plan = plan_frames(*steps.output_size, 16, (5, 9))  # 4x4 region from output cell (5, 9)
    figure = build_convolution_figure(steps, plan.positions, fill_reading_order=plan.fill_reading_order)
    outlines = [s for s in figure.layout.shapes if s.line.color == WINDOW_COLOR]
    out_w = steps.output_size[1]
    assert [(s.x0, s.x1, s.y0, s.y1, s.xref) for s in outlines] == [
        (left + 8.5, left + 12.5, 4.5, 8.5, "x3") for left in (0, out_w + 1)
    ]
    spread = build_convolution_figure(steps, frame_positions(*steps.output_size, 16))
    assert not [s for s in spread.layout.shapes if s.line.color == WINDOW_COLOR]


@pytest.mark.parametrize("kind", ["convolution", "pooling"])
def test_step_buttons_point_to_the_neighbouring_frames_and_speed_sets_play(kind):
    steps = convolve_steps(binary_picture("X 7x7"), make_kernel("X detector", 3, 3))
    positions = frame_positions(*steps.output_size, 100)
    if kind == "convolution":
        figure = build_convolution_figure(steps, positions)
    else:
        pooled = pool_steps_of(steps.output)
        positions = frame_positions(*pooled.output.shape[1:], 100)
        figure = build_pooling_figure(pooled, positions)
    spec = json.loads(figure.to_json())
    count = len(positions)
    assert count == len(spec["frames"]) > 2

    def targets(menu: dict) -> list[str]:
        return [button["args"][0][0] for button in menu["buttons"]]

    menus = spec["layout"]["updatemenus"]
    assert [b["label"] for b in menus[STEP_MENU]["buttons"]] == ["◀ −1", "+1 ▶"]
    assert targets(menus[STEP_MENU]) == ["0", "1"]
    for index, frame in enumerate(spec["frames"]):
        assert frame["name"] == str(index)
        frame_menus = frame["layout"]["updatemenus"]
        assert frame_menus[PLAY_MENU] == {} and frame_menus[SPEED_MENU] == {}  # left as the student set them
        assert targets(frame_menus[STEP_MENU]) == [str(max(0, index - 1)), str(min(count - 1, index + 1))]
    # each speed button rewrites the Play button's frame duration: the path leads to it
    play = menus[PLAY_MENU]["buttons"][0]
    assert play["label"] == "▶ Play" and play["args"][1]["frame"]["duration"] == FRAME_MS
    durations = []
    for button in menus[SPEED_MENU]["buttons"]:
        ((path, ms),) = button["args"][0].items()
        assert button["method"] == "relayout"
        assert path == f"updatemenus[{PLAY_MENU}].buttons[0].args[1].frame.duration"
        durations.append(ms)
    assert durations == list(SPEEDS.values()) and durations == sorted(durations, reverse=True)
    assert menus[SPEED_MENU]["active"] == durations.index(FRAME_MS)


# --- the page, through its widgets ------------------------------------------------------------------

def _open() -> AppTest:
    import streamlit as streamlit

    streamlit.cache_resource.clear()
    streamlit.cache_data.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    app.switch_page(str(PAGE.path))
    return app.run()


def _chart(app: AppTest, key: str) -> dict:
    return json.loads(next(c for c in app.get("plotly_chart") if c.proto.id.endswith(key) or key in
                           c.proto.id).proto.spec)


def _last_output(figure: dict) -> np.ndarray:
    return decode_typed_array(figure["frames"][-1]["data"][1]["z"])


def test_page_two_custom_kernels_each_with_their_own_text():
    app = _open()
    app.number_input(key="conv_kernel_count").set_value(3).run()
    app.selectbox(key="conv_preset_0").set_value("custom").run()
    app.selectbox(key="conv_preset_2").set_value("custom").run()
    app.text_area(key="conv_custom_0").set_value("1 0 0\n0 1 0\n0 0 1").run()
    app.text_area(key="conv_custom_2").set_value("0 0 1\n0 1 0\n1 0 -1/2").run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.warning
    weight = np.stack([
        parse_kernel("1 0 0\n0 1 0\n0 0 1"), make_kernel("Sobel x", 3, 3),
        parse_kernel("0 0 1\n0 1 0\n1 0 -0.5"),
    ])[:, None]
    expected = _conv(binary_picture("X 7x7"), weight)  # (3, 5, 5)
    shown = _last_output(_chart(app, "conv_chart"))
    for k in range(3):
        np.testing.assert_allclose(shown[:, k * 6 : k * 6 + 5], expected[k], rtol=1e-6)
    app.text_area(key="conv_custom_2").set_value("0 0 1\n0 one 0\n1 0 0").run()
    warnings = " ".join(w.value for w in app.warning)
    assert "Row 2 of custom kernel 3 has something that is not a number" in warnings


def test_page_rgb_custom_kernel_with_a_slice_per_colour():
    app = _open()
    app.radio(key="conv_source").set_value("CIFAR-10 sample").run()
    app.radio(key="conv_channels").set_value("RGB (3-channel kernels)").run()
    app.selectbox(key="conv_preset_0").set_value("custom").run()
    app.checkbox(key="conv_custom_rgb_0").check().run()
    slices = ("0 0 0\n0 2 0\n0 0 0", "0 0 0\n0 -2 0\n0 0 0", "0.1 0 0\n0 0 0\n0 0 -0.1")
    for name, text in zip("rgb", slices, strict=True):
        app.text_area(key=f"conv_custom_0_{name}").set_value(text)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.warning
    sample = samples.list_samples("cifar10")[0]
    assert app.selectbox(key="conv_sample_cifar10").value == sample
    pixels = to_picture(samples.load_sample(sample).numpy(), True).pixels  # (3, 32, 32) in 0..1
    weight = np.stack([parse_kernel(t) for t in slices])[None]  # (1, 3, 3, 3): red minus green
    np.testing.assert_allclose(_last_output(_chart(app, "conv_chart")), _conv(pixels, weight)[0],
                               rtol=1e-5, atol=1e-6)
    app.text_area(key="conv_custom_0_g").set_value("0 0 0\n0 -2 0").run()
    warnings = " ".join(w.value for w in app.warning)
    assert "Custom kernel 1's G slice is 2x3 but the kernel size is 3x3" in warnings


def test_page_relu_and_pooling_on_feature_map_3_equal_torch():
    app = _open()
    app.number_input(key="conv_kernel_count").set_value(3).run()
    app.radio(key="conv_feature_map").set_value(3).run()
    assert not app.exception, [e.value for e in app.exception]
    names = [app.selectbox(key=f"conv_preset_{k}").value for k in range(3)]
    weight = np.stack([make_kernel(n, 3, 3) for n in names])[:, None]
    feature = torch.from_numpy(_conv(binary_picture("X 7x7"), weight)[2])  # map 3 (Sobel y)
    negative = int((feature < 0).sum())
    assert negative > 0
    assert f"**{negative} of {feature.numel()}** cells of feature map 3 were negative" in " ".join(
        m.value for m in app.markdown)
    relu = _chart(app, "relu_chart")
    np.testing.assert_allclose(decode_typed_array(relu["data"][0]["z"]), feature.numpy(), rtol=1e-6)
    np.testing.assert_allclose(decode_typed_array(relu["data"][1]["z"]), F.relu(feature).numpy(), rtol=1e-6)
    x = F.relu(feature)[None, None].requires_grad_(True)
    pooled = F.max_pool2d(x, 2, 2)
    np.testing.assert_allclose(_last_output(_chart(app, "pool_chart")), pooled[0, 0].detach().numpy(),
                               rtol=1e-6)
    pooled.sum().backward()
    gradient = decode_typed_array(_chart(app, "grad_chart")["data"][1]["z"])
    np.testing.assert_allclose(gradient, x.grad[0, 0].numpy())
    app.radio(key="pool_mode").set_value("average").run()
    np.testing.assert_allclose(_last_output(_chart(app, "pool_chart")),
                               F.avg_pool2d(x.detach(), 2, 2)[0, 0].numpy(), rtol=1e-6)
    app.number_input(key="conv_kernel_count").set_value(1).run()  # map 3 is gone: back to map 1, no error
    assert not app.exception
    assert all(r.key != "conv_feature_map" for r in app.radio)  # one map: no picker
    assert "cells of feature map 1 were negative" in " ".join(m.value for m in app.markdown)
    app.number_input(key="conv_kernel_count").set_value(2).run()
    assert not app.exception and app.radio(key="conv_feature_map").value == 1


# --- the real browser -------------------------------------------------------------------------------

def _shown_step(page) -> str:
    label = page.locator("[data-testid='stPlotlyChart'] text.slider-label", has_text="output cell").first
    return label.text_content()


@pytest.mark.browser
@pytest.mark.parametrize("width", [1400, 800])
def test_step_and_speed_buttons_in_a_real_browser(app_server, browser, width):
    from pathlib import Path

    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    try:
        open_page(page, f"{app_server}/{PAGE.url_path}")
        assert_no_exception(page)
        chart = page.get_by_test_id("stPlotlyChart").first
        page.wait_for_function(
            "() => document.querySelector('.js-plotly-plot')?._transitionData?._frames?.length",
            timeout=20_000,
        )
        assert _shown_step(page).endswith("(0,0)")
        step = chart.locator(".updatemenu-button", has_text="+1")
        for expected in ("(0,1)", "(0,2)"):
            step.click()
            page.wait_for_function(
                "e => [...document.querySelectorAll('.js-plotly-plot text.slider-label')]"
                ".some(t => t.textContent.startsWith('output cell') && t.textContent.endsWith(e))",
                arg=expected, timeout=10_000,
            )
        chart.locator(".updatemenu-button", has_text="−1").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.js-plotly-plot text.slider-label')]"
            ".some(t => t.textContent.startsWith('output cell') && t.textContent.endsWith('(0,1)'))",
            timeout=10_000,
        )
        duration = ("() => document.querySelector('.js-plotly-plot')"
                    ".layout.updatemenus[0].buttons[0].args[1].frame.duration")
        assert page.evaluate(duration) == SPEEDS["normal"]
        chart.locator(".updatemenu-button", has_text="fast").click()
        page.wait_for_function(f"() => ({duration})() === {SPEEDS['fast']}", timeout=10_000)
        assert _shown_step(page).endswith("(0,1)")  # a new speed keeps the animation where it is
        wait_until_idle(page)
        assert_no_exception(page)
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        chart.evaluate("element => element.scrollIntoView({block: 'center'})")
        page.screenshot(path=f"{SCREENSHOTS}/conv-steps-{width}.png")
    finally:
        context.close()
