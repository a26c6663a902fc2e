"""The convolution figures: frames update the right traces with the real numbers, and stay small."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from cnnviz.convolution.frames import frame_positions
from cnnviz.convolution.kernels import binary_picture, make_kernel
from cnnviz.convolution.pooling import pool_steps
from cnnviz.convolution.steps import convolve_steps
from cnnviz.ui.convolution.figures import build_convolution_figure
from cnnviz.ui.convolution.pool_figure import build_pooling_figure
from cnnviz.ui.panels import tile_grid
from cnnviz.ui.plotly_wire import decode_typed_array


def _frames(figure: go.Figure) -> tuple:
    """The figure's frames, validated by Plotly, as go.Frame objects."""
    return go.Figure(figure.to_dict()).frames


def _check_frames_match_traces(figure: go.Figure) -> None:
    for frame in _frames(figure):
        assert len(frame.traces) == len(frame.data)
        for index, update in zip(frame.traces, frame.data, strict=True):
            assert update.type == figure.data[index].type, f"frame updates trace {index} with a {update.type}"


@pytest.mark.parametrize("dilation", [1, 2])
def test_convolution_frames_show_each_step(dilation):
    rng = np.random.default_rng(0)
    image = rng.random((3, 9, 8))
    weight = rng.normal(size=(2, 3, 3, 3))
    steps = convolve_steps(image, weight, np.array([0.5, -1.0]), 1, 1, dilation)
    positions = frame_positions(*steps.output_size, 100)
    figure = build_convolution_figure(steps, positions, input_rgb=None)
    _check_frames_match_traces(figure)
    assert len(_frames(figure)) == steps.output_size[0] * steps.output_size[1]
    out_h, out_w = steps.output_size
    for frame, (row, col) in zip(_frames(figure)[::7], positions[::7], strict=True):
        window, output, _, products, equation = frame.data
        # the window outlines exactly the tapped cells of the padded input
        xs = decode_typed_array(window.x)
        ys = decode_typed_array(window.y)
        taps_r, taps_c = steps.tap_rows(row), steps.tap_cols(col)
        assert np.nanmin(xs) == taps_c[0] - 0.5 and np.nanmax(xs) == taps_c[-1] + 0.5
        assert np.nanmin(ys) == taps_r[0] - 0.5 and np.nanmax(ys) == taps_r[-1] + 0.5
        # the output filled in up to this cell, in reading order, for both kernels
        z = decode_typed_array(output.z)
        maps = [z[:, :out_w], z[:, out_w + 1 :]]
        done = row * out_w + col + 1
        for k, shown in enumerate(maps):
            flat = shown.reshape(-1)
            np.testing.assert_allclose(flat[:done], steps.output[k].reshape(-1)[:done], rtol=1e-6, atol=1e-6)
            assert np.isnan(flat[done:]).all()
        # the products grid holds this step's products, the equation its sum + bias = output
        expected = tile_grid([[steps.products[k, row, col, c] for c in range(3)] for k in range(2)]).array
        np.testing.assert_allclose(decode_typed_array(products.z), expected, rtol=1e-6, equal_nan=True)
        value = steps.output[1, row, col]
        assert f"<b>{value:.4g}</b>" in equation.text[-1]


def test_hand_countable_equation_writes_every_product():
    steps = convolve_steps(binary_picture("X 5x5"), make_kernel("X detector", 3, 3))
    figure = build_convolution_figure(steps, frame_positions(3, 3, 100))
    centre = _frames(figure)[4].data[4].text  # output (1, 1)
    assert centre[:2] == ("output cell (1,1)", "window: rows 1..3, cols 1..3")  # no padding: no "(padded)"
    padded = convolve_steps(binary_picture("X 5x5"), make_kernel("X detector", 3, 3), padding=1)
    assert padded.pad == (1, 1, 1, 1)
    first = _frames(build_convolution_figure(padded, frame_positions(5, 5, 100)))[0].data[4].text
    assert first[1] == "window: padded rows 0..2, cols 0..2"
    # a kernel row a line
    assert centre[2:5] == ("kernel 1: 1 + 0 + 1", "        + 0 + 1 + 0", "        + 1 + 0 + 1")
    assert centre[5].endswith("= <b>5</b>")
    negative = convolve_steps(binary_picture("X 5x5"), make_kernel("Laplacian", 3, 3))
    lines = _frames(build_convolution_figure(negative, frame_positions(3, 3, 100)))[0].data[4].text
    assert lines[2:5] == ("kernel 1: 0 + 0 + 0", "        + 0 - 4 + 0", "        + 0 + 0 + 0")  # "+ -": "-"


def test_large_input_figure_is_bounded():
    image = np.random.default_rng(1).random((3, 64, 64))
    weight = np.stack([make_kernel("Sobel x", 3, 3)] * 3)[None] / 3
    steps = convolve_steps(image, weight, None, 1, 1)
    rgb = (steps.padded.transpose(1, 2, 0) * 255).astype(np.uint8)  # (Hp, Wp, 3)
    figure = build_convolution_figure(steps, frame_positions(64, 64, 64), input_rgb=rgb)
    assert len(_frames(figure)) == 64
    assert len(pio.to_json(figure, validate=False)) < 5 * 2**20


@pytest.mark.parametrize("mode", ["max", "average"])
def test_pooling_frames(mode):
    feature = np.random.default_rng(2).random((1, 6, 7))
    steps = pool_steps(feature, 2, 2, 1, mode)
    figure = build_pooling_figure(steps, frame_positions(*steps.output.shape[1:], 100))
    _check_frames_match_traces(figure)
    assert len(_frames(figure)) == steps.output.shape[1] * steps.output.shape[2]
    last = decode_typed_array(_frames(figure)[-1].data[1].z)
    np.testing.assert_allclose(last, steps.output[0], rtol=1e-6)
    if mode == "max":  # the winner box sits on the window's maximum
        frame = _frames(figure)[3]
        row, col = divmod(3, steps.output.shape[2])
        values = decode_typed_array(frame.data[3].z)
        xs = decode_typed_array(frame.data[5].x)
        ys = decode_typed_array(frame.data[5].y)
        assert values[int(np.nanmin(ys) + 0.5), int(np.nanmin(xs) + 0.5)] == pytest.approx(
            steps.output[0, row, col]
        )


def test_heaviest_page_setting_stays_under_five_megabytes():
    from cnnviz.convolution.frames import frames_within_budget

    # the largest upload (64 px), four 1x1 kernels, padding 3: four 70x70 maps in every frame
    image = np.random.default_rng(3).random((3, 64, 64))
    steps = convolve_steps(image, np.random.default_rng(4).normal(size=(4, 3, 1, 1)), None, 1, 3)
    frames = frames_within_budget(steps, 64)
    assert 10 < frames < 64
    rgb = (steps.padded.transpose(1, 2, 0) * 255).astype(np.uint8)  # (Hp, Wp, 3)
    figure = build_convolution_figure(steps, frame_positions(*steps.output_size, frames), input_rgb=rgb)
    assert len(pio.to_json(figure, validate=False)) < 5 * 2**20


@pytest.mark.parametrize("builder", ["convolution", "pooling"])
def test_output_map_shows_its_final_size_before_it_fills(builder):
    feature = np.random.default_rng(3).random((1, 6, 7))
    if builder == "convolution":
        steps = convolve_steps(feature, np.ones((2, 1, 3, 3)), None, 1, 0)
        figure = build_convolution_figure(steps, frame_positions(*steps.output_size, 100))
        out_h, out_w = steps.output_size
        tiles = [(0, out_w), (out_w + 1, 2 * out_w + 1)]  # two maps side by side, one empty column apart
    else:
        steps = pool_steps(feature, 2, 2, 0, "max")
        figure = build_pooling_figure(steps, frame_positions(*steps.output.shape[1:], 100))
        out_h, out_w = steps.output.shape[1:]
        tiles = [(0, out_w)]
    slots = [s for s in figure.to_dict()["layout"]["shapes"] if s.get("xref") == "x3"]
    assert [(s["x0"] + 0.5, s["x1"] + 0.5) for s in slots] == tiles
    assert all((s["y0"], s["y1"]) == (-0.5, out_h - 0.5) for s in slots)


def test_max_pooling_window_marks_its_padding_cells():
    feature = np.random.default_rng(4).random((1, 4, 4))
    steps = pool_steps(feature, 3, 2, 1, "max")  # window (0,0) covers padded rows/cols 0..2: row 0, col 0 pad
    figure = build_pooling_figure(steps, frame_positions(*steps.output.shape[1:], 100))
    _check_frames_match_traces(figure)
    values, padding = (decode_typed_array(d.z) for d in _frames(figure)[0].data[3:5])
    assert np.isnan(values[0]).all() and np.isnan(values[:, 0]).all()  # padding: no number ...
    assert (padding[0] == 0).all() and (padding[:, 0] == 0).all()  # ... but an orange "pad" cell
    np.testing.assert_allclose(values[1:, 1:], feature[0, :2, :2], rtol=1e-6)
    assert np.isnan(padding[1:, 1:]).all()


def test_all_zero_feature_map_is_drawn_in_the_colour_of_zero():
    steps = pool_steps(np.zeros((1, 4, 4)), 2, 2, 0, "max")
    figure = build_pooling_figure(steps, frame_positions(2, 2, 100))
    input_trace = figure.data[0]
    assert input_trace.zmin == 0.0 and input_trace.zmax > 0.0  # not a degenerate 0..0 scale


def test_input_is_drawn_on_a_fixed_zero_to_one_scale():
    dark = np.full((1, 5, 5), 0.1)
    figure = build_convolution_figure(convolve_steps(dark, make_kernel("identity", 3, 3)), [(0, 0)])
    assert (figure.data[0].zmin, figure.data[0].zmax) == (0.0, 1.0)
    assert figure.data[0].texttemplate == "%{z:.3~g}"  # as many digits as the products


def test_several_kernels_and_channels_are_named_along_the_panels():
    rng = np.random.default_rng(5)
    steps = convolve_steps(rng.random((3, 8, 8)), rng.normal(size=(3, 3, 3, 3)), None, 1, 0)
    figure = build_convolution_figure(steps, [(0, 0)], channel_names=["R", "G", "B"]).to_dict()
    layout = figure["layout"]
    assert list(layout["yaxis2"]["ticktext"]) == ["k1", "k2", "k3"]
    assert list(layout["yaxis2"]["tickvals"]) == [1.0, 5.0, 9.0]  # the middle row of each 3x3 kernel
    assert list(layout["xaxis2"]["ticktext"]) == ["R", "G", "B"]
    assert list(layout["xaxis3"]["ticktext"]) == ["map 1", "map 2", "map 3"]
    assert "texttemplate" not in figure["data"][5]  # 11 rows of products: too many to write in
    single = build_convolution_figure(convolve_steps(rng.random((1, 8, 8)), np.ones((1, 1, 3, 3))), [(0, 0)])
    assert not single.to_dict()["layout"]["yaxis2"].get("showticklabels")  # one kernel needs no name


def test_frames_name_the_moving_traces_wherever_they_are_declared():
    from cnnviz.ui.panels import Moving, animated_figure

    traces = [
        go.Scatter(x=[0], y=[0]),
        Moving("dot", "scatter", lambda v: go.Scatter(x=v["x"], y=v["y"], name="dot")),
        go.Heatmap(z=[[1.0]]),
        Moving("map", "heatmap", lambda v: go.Heatmap(z=v["z"], name="map")),
    ]
    frames = [{"dot": {"x": [i], "y": [-i]}, "map": {"z": [[float(i)]]}} for i in range(3)]
    figure = animated_figure(traces, frames, ["one", "two", "three"], {}, "step: ")
    _check_frames_match_traces(figure)
    assert [frame.traces for frame in _frames(figure)] == [(1, 3)] * 3  # counted from the declaration
    # the moving traces are drawn from the first frame
    assert list(figure.data[1].x) == [0] and np.asarray(figure.data[3].z).tolist() == [[0.0]]
    assert decode_typed_array(_frames(figure)[2].data[0].y).tolist() == [-2]
    steps = figure.to_dict()["layout"]["sliders"][0]["steps"]
    assert [(s["label"], s["args"][0]) for s in steps] == [("one", ["0"]), ("two", ["1"]), ("three", ["2"])]


def test_one_tiler_lays_out_maps_kernels_and_filters():
    from cnnviz.ui.panels import in_rows

    tiling = tile_grid(in_rows([np.full((2, 3), float(v)) for v in range(5)], 2))  # 3 rows: 2, 2, 1
    assert tiling.array.shape == (3 * 3 - 1, 2 * 4 - 1) and tiling.array.dtype == np.float32
    assert tiling.origins == [[(0, 0), (0, 4)], [(3, 0), (3, 4)], [(6, 0)]]
    assert (tiling.array[3:5, 4:7] == 3).all() and np.isnan(tiling.array[6:, 3:]).all()  # gap, empty slot
    black = np.zeros((2, 2, 3), np.uint8)
    colours = tile_grid([[black]], fill=255, dtype=np.uint8, columns=3, gap_after=True)
    assert colours.array.shape == (3, 9, 3) and (colours.array[:, 2:] == 255).all()
    assert (colours.array[:2, :2] == 0).all()
