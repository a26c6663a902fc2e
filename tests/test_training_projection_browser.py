"""The map of what it learned in a real browser: train a tiny run, click a dot, see that image."""

from __future__ import annotations

from tests.conftest import assert_no_exception, open_page, save_screenshot, wait_until_idle
from tests.test_training_page import TINY_SPEC

# The centre of a point of the last trace drawn (on top of the others), in page pixels, from Plotly's
# own axes.
POINT_JS = """
(chart) => {
  const gd = chart.querySelector('.js-plotly-plot');
  const trace = gd._fullData[gd._fullData.length - 1];
  const xaxis = gd._fullLayout[trace.xaxis.replace('x', 'xaxis')];
  const yaxis = gd._fullLayout[trace.yaxis.replace('y', 'yaxis')];
  const box = gd.getBoundingClientRect();
  return {x: box.left + xaxis._offset + xaxis.l2p(trace.x[0]),
          y: box.top + yaxis._offset + yaxis.l2p(trace.y[0]), index: trace.customdata[0][1]};
}
"""


def test_a_click_on_the_map_shows_the_image_and_its_neighbours(app_server, browser_page):
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
    main.get_by_text("The map of what it learned").wait_for(timeout=180_000)
    wait_until_idle(page)
    assert_no_exception(page)
    chart = main.get_by_test_id("stPlotlyChart").filter(has_text="after training")
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    save_screenshot(page, "page-train-map", full_page=False)
    point = chart.element_handle().evaluate(POINT_JS)
    page.mouse.click(point["x"], point["y"])
    main.get_by_text(f"Test image {point['index']}", exact=True).wait_for(timeout=60_000)
    wait_until_idle(page)
    assert_no_exception(page)
    text = main.inner_text()
    assert "The trained network says" in text and "nearest neighbours" in text
    main.get_by_text("The trained network says").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    save_screenshot(page, "page-train-map-clicked", full_page=False)
    main.get_by_text("t-SNE", exact=True).click()  # the projection radio
    main.get_by_test_id("stPlotlyChart").filter(has_text="t-SNE 1").wait_for(timeout=120_000)
    wait_until_idle(page)
    assert_no_exception(page)
    main.get_by_test_id("stPlotlyChart").filter(has_text="t-SNE 1").scroll_into_view_if_needed()
    save_screenshot(page, "page-train-map-tsne", full_page=False)
