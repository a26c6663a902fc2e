"""The explorer in a real browser: a click on a map picks its layer and channel, a click on a cell of
the large map picks that cell, and the value, the arithmetic and the receptive field's outline follow."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from cnnviz import pages
from cnnviz.datasets.files import load_dataset
from cnnviz.images.preprocess import prepare_dataset_pixels
from cnnviz.networks.receptive_field import cell_box
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import load_checkpoint
from tests.conftest import assert_no_exception, open_page, save_screenshot, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
MNIST_MODEL = MODELS_DIR / "mnist.pt"
SHOTS = Path("/work/shots/explorer")


def plot_point(page, chart_key: str, x: float, y: float) -> tuple[float, float]:
    """Screen coordinates of data point (x, y) of a chart, from Plotly's own axes (``_offset``, not the
    plot area's margin: an axis with a fixed aspect ratio is narrower than the plot area), after
    scrolling the chart into view."""
    page.locator(f".st-key-{chart_key} .js-plotly-plot").scroll_into_view_if_needed()
    return tuple(page.evaluate(
        """([key, x, y]) => {
            const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
            const r = gd.getBoundingClientRect(), L = gd._fullLayout;
            return [r.left + L.xaxis._offset + L.xaxis.l2p(x), r.top + L.yaxis._offset + L.yaxis.l2p(y)];
        }""", [chart_key, x, y]))


def overview_point(page, layer: int, channel: int) -> tuple[float, float]:
    """Where the overview draws the map of (layer, channel): its click marker's data coordinates."""
    x, y = page.evaluate(
        """([layer, channel]) => {
            const gd = document.querySelector('.st-key-explore_overview .js-plotly-plot');
            const t = gd.data[1], k = t.customdata.findIndex(c => c[0] === layer && c[1] === channel);
            return [t.x[k], t.y[k]];
        }""", [layer, channel])
    return plot_point(page, "explore_overview", x, y)


def number(page, key: str) -> int:
    return int(page.locator(f".st-key-{key} input").input_value())


def main_text(page) -> str:
    return page.get_by_test_id("stMain").inner_text()


def shown_value(page) -> float:
    metric = page.get_by_test_id("stMetric").filter(has_text=pages.EXPLORE_VALUE_LABEL)
    return float(metric.get_by_test_id("stMetricValue").inner_text())


def expected_value(layer: int, channel: int, row: int, col: int) -> float:
    loaded = load_checkpoint(MNIST_MODEL)
    test = load_dataset("mnist", "test", download=False)
    image = prepare_dataset_pixels(test.images[0], "mnist", loaded.mean, loaded.std).tensor
    model = loaded.model.eval()
    with torch.no_grad():
        return float(model.features[: layer + 1](image)[0, channel, row, col])  # nn.Sequential's own run


def keep_shot(page, name: str) -> None:
    path = save_screenshot(page, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / f"{name}.png")


@pytest.mark.skipif(not MNIST_MODEL.is_file(), reason="models/mnist.pt is missing")
def test_click_a_map_then_a_cell(app_server, browser_page, real_data_dir) -> None:
    page = browser_page
    open_page(page, f"{app_server}/{pages.EXPLORE_PAGE}")
    assert_no_exception(page)
    loaded = load_checkpoint(MNIST_MODEL)

    # A click on the overview's map of layer 3, channel 2 picks it (the row and column move to its middle).
    page.mouse.click(*overview_point(page, 3, 2))
    wait_until_idle(page)
    assert (number(page, pages.EXPLORE_LAYER_KEY), number(page, pages.EXPLORE_CHANNEL_KEY)) == (3, 2)
    assert (number(page, pages.EXPLORE_ROW_KEY), number(page, pages.EXPLORE_COL_KEY)) == (7, 7)
    assert shown_value(page) == pytest.approx(expected_value(3, 2, 7, 7), abs=1e-4)
    before = main_text(page)
    field = page.locator(".st-key-crisp_explore_field img").first
    outlined = field.get_attribute("src")

    # A click on cell (row 2, column 11) of the large map picks that cell.
    page.mouse.click(*plot_point(page, "explore_map", 11, 2))
    wait_until_idle(page)
    assert_no_exception(page)
    assert (number(page, pages.EXPLORE_ROW_KEY), number(page, pages.EXPLORE_COL_KEY)) == (2, 11)
    value = expected_value(3, 2, 2, 11)
    assert shown_value(page) == pytest.approx(value, abs=1e-4)
    text = main_text(page)
    sums = re.search(r"Sum: .*= ([-\d.]+)", text)
    assert sums and float(sums.group(1)) == pytest.approx(value, abs=1e-4)  # the arithmetic's total
    assert sums.group(0) not in before
    box = cell_box(loaded.model, 3, 2, 11)
    assert f"rows {box.top} to {box.bottom}" in text and f"columns {box.left} to {box.right}" in text
    assert field.get_attribute("src") != outlined  # the outline was redrawn around the new field

    page.get_by_test_id("stMain").get_by_role("button", name="Find the 9").click()
    # the page shows progress and polls until the layer's maxima are ready (no page run waits)
    page.get_by_test_id("stMain").get_by_text(pages.TOP_IMAGES_DONE_TEXT).first.wait_for(timeout=60_000)
    wait_until_idle(page)
    assert pages.TOP_IMAGES_DONE_TEXT in main_text(page)
    assert_no_exception(page)
    keep_shot(page, "explorer-1400")
    page.set_viewport_size({"width": 800, "height": 1000})
    page.wait_for_timeout(800)
    keep_shot(page, "explorer-800")

    # Layer 3 is a convolution: its learned kernel and real input go to the Convolution page.
    page.get_by_test_id("stMain").get_by_role("button", name="Open on the Convolution page").click()
    page.wait_for_url(f"**/{pages.CONVOLUTION_PAGE}")
    wait_until_idle(page)
    assert_no_exception(page)


@pytest.mark.skipif(not (MODELS_DIR / "cifar10.pt").is_file(), reason="models/cifar10.pt is missing")
def test_a_phone_click_picks_the_map_under_the_finger(app_server, browser, real_data_dir) -> None:
    """At 412 px the CIFAR-10 net's 20 layers are drawn about a third of their size: click markers as
    big as the maps covered their neighbours, and every click picked the next layer's map."""
    context = browser.new_context(viewport={"width": 412, "height": 900})
    page = context.new_page()
    try:
        open_page(page, f"{app_server}/{pages.EXPLORE_PAGE}")
        page.locator(f".st-key-{pages.EXPLORE_MODEL_KEY}").click()
        page.get_by_role("option").filter(has_text="cifar10").first.click()
        wait_until_idle(page)
        for layer, channel in ((3, 3), (7, 1), (12, 0), (16, 5), (19, 4)):  # 19: a class's softmax bar
            page.mouse.click(*overview_point(page, layer, channel))
            wait_until_idle(page)
            page.wait_for_timeout(400)  # two quick clicks on one chart would be a double click
            assert (number(page, pages.EXPLORE_LAYER_KEY), number(page, pages.EXPLORE_CHANNEL_KEY)) == (
                layer, channel)
        assert_no_exception(page)
    finally:
        context.close()


def test_at_800_px_a_click_picks_the_cell_under_it(app_server, browser, real_data_dir) -> None:
    """The large map is drawn about 230 px wide beside the arithmetic at 800 px: click markers sized for
    300 px overlapped, and a click on the centre of row 2 picked row 3."""
    context = browser.new_context(viewport={"width": 800, "height": 1000})
    page = context.new_page()
    try:
        open_page(page, f"{app_server}/{pages.EXPLORE_PAGE}")
        for row, col, dx, dy in ((2, 11, 0, 0), (5, 3, 0.4, 0.4), (13, 0, 0.3, -0.3), (9, 9, -0.4, -0.4)):
            page.mouse.click(*plot_point(page, "explore_map", col + dx, row + dy))
            wait_until_idle(page)
            page.wait_for_timeout(400)  # two quick clicks on one chart would be a double click
            assert (number(page, pages.EXPLORE_ROW_KEY), number(page, pages.EXPLORE_COL_KEY)) == (row, col)
            assert shown_value(page) == pytest.approx(expected_value(0, 0, row, col), abs=1e-4)
        assert_no_exception(page)
    finally:
        context.close()
