"""`python -m cnnviz bench conv`: how fast the convolution page computes and how much it sends.

Measured on the issue's case, a 64x64 RGB input with one 3x3 kernel, stride 1, padding 1:
the steps of all 4096 output cells, the animated figure (its frames bounded as on the page), the
size of that figure's JSON, and the server time of a page rerun after a control changes
(the page's functions with an empty cache, and a real rerun under Streamlit's AppTest).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import plotly.io as pio

from cnnviz.convolution.kernels import build_kernel_bank
from cnnviz.convolution.steps import convolve_steps, frame_positions, relu
from cnnviz.timing import median_ms
from cnnviz.ui.convolution.cache import make_conv_figure, make_pool_figure
from cnnviz.ui.convolution.figures import build_before_after_figure, build_convolution_figure
from cnnviz.ui.navigation import page_spec

BENCH_SIZE = 64
MAX_FRAMES = 64  # as on the page
TARGETS_MS = {"steps_ms": 100.0, "frames_ms": 100.0, "rerun_compute_ms": 300.0, "apptest_rerun_ms": 300.0}
TARGET_FIGURE_MB = 5.0
APP = Path(__file__).resolve().parents[3] / "app.py"


def _page_compute(pixels: np.ndarray, settings: tuple) -> None:
    """What the page computes on a rerun whose settings are not cached yet, serialisation included."""
    figure = make_conv_figure(pixels, settings, MAX_FRAMES)
    pool_figure, gradient = make_pool_figure(pixels, settings, ("max", 2, 2, 0), MAX_FRAMES)
    feature = convolve_steps(pixels, build_kernel_bank(settings[5], 3, 3, 3), None, 1, 1).output[0]
    figures = [
        figure,
        pool_figure,
        build_before_after_figure(feature, relu(feature), ("before", "after")),
        build_before_after_figure(*gradient, ("upstream", "input")),
    ]
    for each in figures:  # what st.plotly_chart does with every figure on every run
        pio.to_json(each.to_dict(), validate=False)


def _apptest_rerun_ms(repeat: int) -> float:
    """Server time of real page reruns, each after the stride changes (no cache hit)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    app.switch_page(str(page_spec("convolution").path))
    app.run()
    app.radio(key="conv_source").set_value("CIFAR-10 sample").run()
    app.radio(key="conv_channels").set_value("RGB (3-channel kernels)").run()
    app.selectbox(key="conv_padding").set_value("1").run()
    times = []
    for i in range(repeat + 1):
        st.cache_resource.clear()
        app.number_input(key="conv_bias").set_value(round(0.1 * (i + 1), 1))
        start = time.perf_counter()
        app.run()
        times.append((time.perf_counter() - start) * 1000)
        assert not app.exception, [e.value for e in app.exception]
    return statistics.median(times[1:])


def run_conv_bench(as_json: bool, repeat: int = 5) -> int:
    """Measure and print; returns 0 (the numbers are reported, not asserted)."""
    rng = np.random.default_rng(0)
    pixels = rng.random((3, BENCH_SIZE, BENCH_SIZE))  # (C, H, W) values in 0..1
    weight = build_kernel_bank(("Sobel x",), 3, 3, 3)  # (1, 3, 3, 3)
    steps = convolve_steps(pixels, weight, None, 1, 1)
    positions = frame_positions(*steps.output_size, MAX_FRAMES)
    rgb = (steps.padded.transpose(1, 2, 0) * 255).round().astype(np.uint8)  # (Hp, Wp, 3)
    figure = build_convolution_figure(steps, positions, input_rgb=rgb, channel_names=["R", "G", "B"])
    settings = (3, 3, 1, "1", 1, ("Sobel x",), "", 0.0)
    results = {
        "case": "64x64 RGB input, one 3x3 kernel, stride 1, padding 1",
        "output_cells": int(steps.sums.size),
        "frames": len(figure.frame_dicts),
        "steps_ms": median_ms(lambda: convolve_steps(pixels, weight, None, 1, 1), repeat),
        "frames_ms": median_ms(
            lambda: build_convolution_figure(
                convolve_steps(pixels, weight, None, 1, 1), positions, input_rgb=rgb
            ),
            repeat,
        ),
        "figure_mb": len(pio.to_json(figure, validate=False).encode()) / 2**20,
        "rerun_compute_ms": median_ms(lambda: _page_compute(pixels, settings), repeat),
        "apptest_rerun_ms": _apptest_rerun_ms(repeat),
    }
    results = {k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}
    if as_json:
        print(
            json.dumps({**results, "targets_ms": TARGETS_MS, "target_figure_mb": TARGET_FIGURE_MB}, indent=2)
        )
        return 0
    print(f"{results['case']}: {results['output_cells']} output cells, {results['frames']} animation frames")
    print(f"  steps of every output cell:        {results['steps_ms']:8.1f} ms  (target <= 100)")
    print(f"  steps + figure with all frames:    {results['frames_ms']:8.1f} ms  (target <= 100)")
    print(f"  figure JSON sent to the browser:   {results['figure_mb']:8.2f} MB  (target <= 5)")
    print(f"  page compute after a change:       {results['rerun_compute_ms']:8.1f} ms  (target <= 300)")
    print(f"  page rerun under AppTest:          {results['apptest_rerun_ms']:8.1f} ms  (target <= 300)")
    return 0
