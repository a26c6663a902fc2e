"""Fixes from a student's review of the Convolution lab (issue 20): each test fails without its fix."""

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
SYMMETRIC = "looks the same turned by 180°"


def _open() -> AppTest:
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    app.switch_page(str(PAGE.path))
    return app.run()


def _flip_view(app: AppTest) -> dict:
    figures = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return next(f for f in figures if "as written" in json.dumps(f["layout"]))


def _captions(app: AppTest) -> str:
    return " ".join(c.value for c in app.caption)


def test_flip_says_so_when_the_kernel_is_symmetric_and_shows_one_that_changes():
    app = _open()
    app.toggle(key="conv_flip").set_value(True).run()  # the default: the X detector, symmetric
    assert not app.exception, [e.value for e in app.exception]
    assert SYMMETRIC in _captions(app)
    x = make_kernel("X detector", 3, 3)
    figure = _flip_view(app)
    np.testing.assert_array_equal(decode_typed_array(figure["data"][1]["z"]), x[::-1, ::-1])
    # the map is the plain cross-correlation's: the flip changes nothing for this kernel
    image = torch.from_numpy(binary_picture("X 7x7"))[None]  # (1, 1, 7, 7)
    flipped = F.conv2d(image, torch.flip(torch.from_numpy(x), (0, 1))[None, None])
    assert torch.equal(flipped, F.conv2d(image, torch.from_numpy(x)[None, None]))

    app.number_input(key="conv_kernel_count").set_value(2).run()
    app.selectbox(key="conv_preset_1").set_value("Sobel x").run()  # kernel 1 symmetric, kernel 2 not
    assert not app.exception, [e.value for e in app.exception]
    assert SYMMETRIC not in _captions(app)
    figure = _flip_view(app)
    sobel = make_kernel("Sobel x", 3, 3)
    assert "kernel 2 as written" in json.dumps(figure["layout"])
    np.testing.assert_array_equal(decode_typed_array(figure["data"][0]["z"]), sobel)
    np.testing.assert_array_equal(decode_typed_array(figure["data"][1]["z"]), sobel[::-1, ::-1])


def test_exercise_maps_use_the_convolution_pages_colours():
    from cnnviz.exercises.model import Picture
    from cnnviz.ui.convolution.figures import build_before_after_figure
    from cnnviz.ui.exercises.figures import grid_figure

    kernel = make_kernel("Sobel x", 3, 3)
    exercise = grid_figure(Picture("2. Sobel x", kernel)).to_plotly_json()["data"][0]
    page = build_before_after_figure(kernel, kernel, ("a", "b")).to_plotly_json()["data"][0]
    assert exercise["colorscale"] == page["colorscale"]  # +1 is the same colour on both pages
    assert exercise["zmid"] == page["zmid"] == 0


def test_one_window_is_not_one_windows():
    from cnnviz.convolution.arithmetic import axis_output_size

    size = axis_output_size(3, 2, 2, 0)  # a 2x2 pool, stride 2, on the 3x3 map of the tiny picture
    assert size.output == F.max_pool2d(torch.zeros(1, 1, 3, 3), 2, 2).shape[-1] == 1
    assert "round down to 1 window," in size.warning and "1 windows" not in size.warning
    assert "round down to 4 windows," in axis_output_size(10, 3, 2, 0).warning


def test_home_says_where_every_page_comes_in_the_order_of_the_menu():
    import streamlit as st

    st.cache_resource.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not app.exception, [e.value for e in app.exception]
    start = next(m.value for m in app.markdown if m.value.startswith("New to CNNs? Start with"))
    order = [start.index(f"**{spec.title}**") for spec in PAGES]  # Exercises right after Convolution
    assert order == sorted(order), start


def test_a_negative_parameter_count_is_refused_not_marked():
    import pytest

    from cnnviz.exercises.check import check_answer
    from cnnviz.exercises.generate import random_exercises
    from cnnviz.exercises.kind_params import make_layer

    exercise = random_exercises(1, 1, ("parameters",))[0]
    count = sum(p.numel() for p in make_layer(exercise.settings).parameters())  # PyTorch's own count
    assert check_answer(exercise, str(count)).correct
    assert check_answer(exercise, f"+{count}").correct
    with pytest.raises(ValueError, match="never negative"):
        check_answer(exercise, f"-{count}")


def test_the_pooling_fit_note_names_the_feature_map_not_the_input():
    from cnnviz.convolution.arithmetic import output_shape

    # the page's default: the X detector's 5x5 map, pooled 2x2 with stride 2
    feature_map = F.conv2d(torch.from_numpy(binary_picture("X 7x7"))[None],
                           torch.from_numpy(make_kernel("X detector", 3, 3))[None, None])
    height, width = output_shape(*feature_map.shape[-2:], 2, 2, 0, pool=True)
    assert (height.output, width.output) == F.max_pool2d(feature_map, 2, 2).shape[-2:]
    assert height.warning.endswith("never reach feature map row 4 (counting from 0).")
    assert width.warning.endswith("never reach feature map column 4 (counting from 0).")
    gaps = output_shape(9, 9, 2, 4, 0, pool=True)[0].warning  # stride 4 skips rows between windows
    assert F.max_pool2d(torch.zeros(1, 1, 9, 9), 2, 4).shape[-1] == 2  # windows on rows 0-1 and 4-5
    assert "never reach feature map rows 6, 7 and 8" in gaps
    assert "Feature map rows never covered by any window: 2 and 3 (counting from 0)." in gaps
    assert output_shape(5, 5, 2, 2)[0].warning.endswith("never reach input row 4 (counting from 0).")


def test_the_output_shape_exercise_names_no_figure_it_does_not_show():
    from cnnviz.exercises.check import check_answer, reveal
    from cnnviz.exercises.generate import build_exercise

    settings = {"height": 12, "kernel": 3, "stride": 3, "padding": 1, "pool": True}
    exercise = build_exercise("output_shape", settings)
    assert not exercise.pictures  # nothing drawn: "on the figure" would point at nothing
    assert "gets a feature map of 12 x 12" in exercise.question  # what the note below calls it
    torch_shape = tuple(F.max_pool2d(torch.zeros(1, 1, 12, 12), 3, 3, 1).shape[-2:])
    assert exercise.answer == torch_shape == (4, 4)
    for verdict in (reveal(exercise), check_answer(exercise, "28 by 28")):
        assert "never reach feature map row 11 (counting from 0)." in verdict.explanation
        assert "figure" not in verdict.explanation


def test_explore_draws_kernels_in_the_convolution_pages_colours(real_data_dir, monkeypatch):
    from cnnviz.ui.convolution.layout import DIVERGING
    from tests.test_explorer_page import chart, pick
    from tests.test_explorer_page import page as explorer_page

    app = explorer_page.__wrapped__(real_data_dir, monkeypatch)  # the explorer's own fixture, called
    pick(app, 3, 5, 6, 8)  # a Conv2d over 16 channels: kernels and products drawn
    figure = chart(app, "explore_step_0")
    drawn = [t for t in figure["data"] if t["name"] in ("kernel", "product")]
    from plotly.colors import get_colorscale

    page_scale = json.loads(json.dumps(get_colorscale(DIVERGING)))  # the Convolution page's kernels
    assert page_scale[0][1] == "rgb(5,48,97)" and page_scale[-1][1] == "rgb(103,0,31)"  # low blue, high red
    colours = [colour for _, colour in page_scale]
    assert drawn and all([c for _, c in t["colorscale"]] == colours for t in drawn)
