"""A real browser trains a tiny run and clicks cells of its confusion matrix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnviz import pages
from tests.conftest import assert_no_exception, open_page, wait_until_idle

TINY_SPEC = "C8n M C16n M F32"
SHOTS = Path("/tmp/r19-click")


def _cell_centre(page, chart, true: float, said: float) -> tuple[float, float]:
    """The page coordinates of cell (true, said), from Plotly's own axes (category axes: the class's
    position; the rows run downwards); fractions reach away from the centre."""
    return chart.evaluate("""(el, [row, col]) => {
        const gd = el.querySelector('.js-plotly-plot');
        const L = gd._fullLayout, box = gd.getBoundingClientRect();
        return [box.left + L._size.l + L.xaxis.l2p(col), box.top + L._size.t + L.yaxis.l2p(row)];
    }""", [true, said])


def _counts(chart) -> list[list[int]]:
    """The matrix as Plotly drew it (its full data holds the decoded counts)."""
    return chart.evaluate("el => Array.from(el.querySelector('.js-plotly-plot')._fullData[0].z, "
                          "row => Array.from(row, Number))")


def _click(page, chart, true: int, said: int, off: float = 0.0) -> None:
    """Click cell (true, said), ``off`` of a cell up and to the left of its centre."""
    x, y = _cell_centre(page, chart, true - off, said - off)
    page.mouse.click(x, y)
    wait_until_idle(page)
    assert_no_exception(page)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_function("Array.from(document.images).every(img => img.complete && img.naturalWidth > 0)",
                           timeout=20_000)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.mark.browser
def test_clicking_a_confusion_cell_lists_its_images(app_server, browser_page):
    page = browser_page
    open_page(page, f"{app_server}/train")
    main = page.get_by_test_id("stMain")
    main.get_by_test_id("stSelectbox").filter(has_text="Architecture").click()
    page.get_by_role("option", name="Custom spec...").click()
    wait_until_idle(page)
    spec_box = main.get_by_label("Spec", exact=True).and_(main.get_by_test_id("stTextInputField"))
    spec_box.fill(TINY_SPEC)
    spec_box.press("Enter")
    wait_until_idle(page)
    main.get_by_test_id("stSelectbox").filter(has_text="Training images").click()
    page.get_by_role("option", name="2,000").click()
    wait_until_idle(page)
    main.get_by_role("button", name="Train", exact=True).click()
    main.get_by_text("Results on the test set").wait_for(timeout=180_000)
    wait_until_idle(page)
    assert_no_exception(page)

    chart = main.locator(f".st-key-{pages.TRAIN_CONFUSION_KEY}").get_by_test_id("stPlotlyChart")
    chart.scroll_into_view_if_needed()
    counts = _counts(chart)
    _click(page, chart, 3, 3)
    text = main.inner_text()
    assert f"{counts[3][3]:,} images of a 3 answered 3 (right)" in text, text[:3000]
    listed = text.count("test #")
    assert listed == min(24, counts[3][3])
    # an off-diagonal cell that has images: the least frequent mistake, not the one shown at first
    wrong = sorted((counts[t][p], t, p) for t in range(10) for p in range(10) if t != p and counts[t][p])
    count, true, said = wrong[0]
    _click(page, chart, true, said, off=0.35)  # near the cell's corner, not its centre
    text = main.inner_text()
    plural = "s" if count != 1 else ""
    assert f"{count:,} image{plural} of a {true} answered {said} (wrong)" in text, text[:3000]
    assert text.count("test #") == min(24, count)
    chart.scroll_into_view_if_needed()
    _shot(page, "confusion-click-1400")
    page.set_viewport_size({"width": 800, "height": 1000})
    wait_until_idle(page)
    chart.scroll_into_view_if_needed()
    _shot(page, "confusion-click-800")
    # at 800 px the cells are smaller: a click still finds its cell
    _click(page, chart, 3, 3)
    assert f"{counts[3][3]:,} images of a 3 answered 3 (right)" in main.inner_text()
    main.get_by_text("answered 3 (right)").scroll_into_view_if_needed()
    _shot(page, "confusion-list-800")
    # the run took snapshots, so its gradient flow is drawn under the results
    page.set_viewport_size({"width": 1400, "height": 1000})
    wait_until_idle(page)
    flow = main.get_by_text("Gradient flow", exact=False).first
    flow.scroll_into_view_if_needed()
    page.mouse.wheel(0, 200)
    page.wait_for_timeout(500)
    _shot(page, "gradient-flow-1400")
    main.get_by_text("What the network is shown").click()
    main.get_by_text("As this step sees them").scroll_into_view_if_needed()
    page.mouse.wheel(0, 250)  # the augmented row under its heading
    page.wait_for_timeout(500)
    _shot(page, "shown-batch-1400")
    assert_no_exception(page)
