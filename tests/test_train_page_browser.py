"""The Train page in a real browser, on one tiny run trained once for the whole module (a run in the
browser is most of each test's time): the time machine (live, scrubbed, Play and Pause), a click on a
confusion cell, a click on the map and its t-SNE, and the page at a projector's 800 px. Screenshots at
1400 and 800 px."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from cnnviz import pages
from tests.conftest import assert_no_exception, open_page, save_screenshot, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TINY_SPEC = "C8n M C16n M F32"
SHOTS = Path("/tmp/r19-time")
MOMENT = re.compile(r"Snapshot (\d+) of (\d+): after ([\d,]+) training steps")
WIDE, NARROW = {"width": 1400, "height": 1000}, {"width": 800, "height": 1000}


def keep_shot(page, name: str, full_page: bool = True) -> None:
    path = save_screenshot(page, name, full_page=full_page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / f"{name}.png")


def moment(page) -> tuple[int, int]:
    """(snapshot number, of how many) as the time machine's caption says."""
    found = MOMENT.search(page.get_by_test_id("stMain").inner_text())
    assert found, "no snapshot caption on the page"
    return int(found.group(1)), int(found.group(2))


def wait_for_moment(page, number: int, timeout_s: float = 10.0) -> float:
    """Seconds until the caption says snapshot ``number``."""
    started = time.perf_counter()
    while moment(page)[0] != number:
        if time.perf_counter() - started > timeout_s:
            pytest.fail(f"the slider did not reach snapshot {number}: it shows {moment(page)}")
        page.wait_for_timeout(10)
    return time.perf_counter() - started


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
    page.wait_for_function("Array.from(document.images).every(img => img.complete && img.naturalWidth > 0)",
                           timeout=20_000)
    keep_shot(page, name, full_page=False)


@pytest.fixture(scope="module")
def trained(app_server, browser):
    """One browser tab whose Train page has trained a tiny run following test image 7 (the slider seen
    live while it trained); each test starts it at 1400 px."""
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
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
    probe = page.locator(".st-key-train_probe_index input")
    probe.fill("7")
    probe.press("Enter")
    main.get_by_text("Followed: test image 7 (labelled 9)").wait_for(timeout=20_000)
    wait_until_idle(page)
    keep_shot(page, "time-probe-picker", full_page=False)

    main.get_by_role("button", name="Train", exact=True).click()
    main.get_by_text("Watch it learn").wait_for(timeout=60_000)  # live while it trains
    if main.get_by_text("Results on the test set").count() == 0:
        page.locator(f".st-key-{pages.TRAIN_PLAY_KEY}").scroll_into_view_if_needed()
        keep_shot(page, "time-live-1400", full_page=False)
    main.get_by_text("Results on the test set").wait_for(timeout=180_000)
    wait_until_idle(page)
    assert_no_exception(page)
    yield page
    context.close()


@pytest.fixture
def page(trained):
    trained.set_viewport_size(WIDE)
    wait_until_idle(trained)
    return trained


def test_clicking_a_confusion_cell_lists_its_images(page):
    main = page.get_by_test_id("stMain")
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




def test_a_click_on_the_map_shows_the_image_and_its_neighbours(page):
    main = page.get_by_test_id("stMain")
    main.get_by_text("The map of what it learned").wait_for(timeout=180_000)
    wait_until_idle(page)
    assert_no_exception(page)
    chart = main.get_by_test_id("stPlotlyChart").filter(has_text="after training")
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    keep_shot(page, "page-train-map", full_page=False)
    point = chart.element_handle().evaluate(POINT_JS)
    page.mouse.click(point["x"], point["y"])
    main.get_by_text(f"Test image {point['index']}", exact=True).wait_for(timeout=60_000)
    wait_until_idle(page)
    assert_no_exception(page)
    text = main.inner_text()
    assert "The trained network says" in text and "nearest neighbours" in text
    main.get_by_text("The trained network says").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    keep_shot(page, "page-train-map-clicked", full_page=False)
    main.get_by_text("t-SNE", exact=True).click()  # the projection radio
    main.get_by_test_id("stPlotlyChart").filter(has_text="t-SNE 1").wait_for(timeout=120_000)
    wait_until_idle(page)
    assert_no_exception(page)
    main.get_by_test_id("stPlotlyChart").filter(has_text="t-SNE 1").scroll_into_view_if_needed()
    keep_shot(page, "page-train-map-tsne", full_page=False)


def test_scrub_and_play(page) -> None:
    main = page.get_by_test_id("stMain")
    number, count = moment(page)
    assert number == count >= 10  # a finished run opens at its end

    # Scrub: click along the slider's track; each click redraws the time machine at that moment.
    slider = main.get_by_test_id("stSlider").filter(has_text="Moment of the run")
    thumb = slider.get_by_role("slider")
    thumb.scroll_into_view_if_needed()
    redraws = []
    shown = [count]
    for fraction in (0.8, 0.6, 0.4, 0.2):
        box, knob = slider.bounding_box(), thumb.bounding_box()
        before = moment(page)[0]
        page.mouse.click(box["x"] + knob["width"] / 2 + fraction * (box["width"] - knob["width"]),
                         knob["y"] + knob["height"] / 2)
        started = time.perf_counter()
        while moment(page)[0] == before:
            assert time.perf_counter() - started < 10, f"a click on the track left snapshot {before}"
            page.wait_for_timeout(10)
        redraws.append(time.perf_counter() - started)
        wait_until_idle(page)
        shown.append(moment(page)[0])
    print(f"\nslider steps, click to the new caption in Chromium: "
          f"{', '.join(f'{s * 1000:.0f}' for s in redraws)} ms")
    assert shown == sorted(shown, reverse=True) and len(set(shown)) == len(shown), shown
    knob = thumb.bounding_box()  # drag the thumb past the track's start: the moment before the first step
    page.mouse.move(knob["x"] + knob["width"] / 2, knob["y"] + knob["height"] / 2)
    page.mouse.down()
    page.mouse.move(slider.bounding_box()["x"] - 40, knob["y"] + knob["height"] / 2, steps=8)
    page.mouse.up()
    wait_for_moment(page, 1)
    wait_until_idle(page)
    assert_no_exception(page)
    keep_shot(page, "time-start-1400")

    # Play moves on by itself, Pause holds.
    page.locator(f".st-key-{pages.TRAIN_PLAY_KEY} button").click()
    wait_for_moment(page, 4, timeout_s=15)
    page.locator(f".st-key-{pages.TRAIN_PLAY_KEY} button").filter(has_text="Pause").click()
    wait_until_idle(page)
    held = moment(page)[0]
    page.wait_for_timeout(2000)
    assert moment(page)[0] == held
    assert_no_exception(page)
    main.get_by_text("Watch it learn").scroll_into_view_if_needed()
    keep_shot(page, "time-paused-1400", full_page=False)
    keep_shot(page, "time-paused-1400-full")

    page.set_viewport_size({"width": 800, "height": 1000})
    wait_until_idle(page)
    page.wait_for_timeout(500)
    # Nothing runs past the page's right edge at 800 px (the probe's Grad-CAM, 168 px wide, did).
    past_edge = page.evaluate("""() => {
      const main = document.querySelector('[data-testid=stMain]');
      const edge = main.getBoundingClientRect().right;
      return [...main.querySelectorAll('img, .js-plotly-plot')].map(e => e.getBoundingClientRect())
        .filter(b => b.width > 0 && b.right > edge + 1).map(b => [Math.round(b.width), Math.round(b.right)]);
    }""")
    assert past_edge == [], f"wider than the page at 800 px (width, right edge): {past_edge}"
    main.get_by_text("Watch it learn").scroll_into_view_if_needed()
    keep_shot(page, "time-800", full_page=False)
    keep_shot(page, "time-800-full")
    assert_no_exception(page)


# Each image and chart of the main column whose right edge lies past the column's (cut off on screen).
OVERFLOWING = """() => {
  const column = document.querySelector('[data-testid=stMainBlockContainer]').getBoundingClientRect();
  const cut = [];
  for (const el of document.querySelectorAll(
      '[data-testid=stMain] img, [data-testid=stMain] [data-testid=stPlotlyChart]')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > column.right + 1) {
      const keyed = el.closest('[class*="st-key-"]');
      const key = keyed ? [...keyed.classList].find(c => c.startsWith('st-key-')) : el.tagName;
      cut.push(`${key}: right edge ${Math.round(box.right)} px, column ends at ${Math.round(column.right)}`);
    }
  }
  return cut;
}"""


# Each "class share" pair ("3 30%") of the image captions that starts on one line and ends on the next.
SPLIT_PAIRS = """() => {
  const captions = [...document.querySelectorAll('[data-testid=stMain] [data-testid=stImageCaption]')]
    .filter(el => el.textContent.includes('#'));
  const split = [];
  const texts = [];
  for (const el of captions) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) texts.push(walker.currentNode);
  }
  for (const node of texts) {
    const text = node.textContent;
    for (const match of text.matchAll(/[^\\s\\u00a0:·]+[\\s\\u00a0]+\\d+%/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
      if (tops.size > 1) split.push(`${match[0]} in ${JSON.stringify(text)}`);
    }
  }
  return {captions: captions.length, split};
}"""




def test_take_it_with_you_after_the_run(page, tmp_path) -> None:
    from tests.test_takeaway_browser import check_run_downloads  # r20-onnx: the run's ONNX and script

    check_run_downloads(page, tmp_path, TINY_SPEC)


def test_time_machine_fits_an_800_px_window(page) -> None:
    main = page.get_by_test_id("stMain")
    page.set_viewport_size(NARROW)  # a projector's width
    wait_until_idle(page)
    page.wait_for_timeout(500)
    main.get_by_text("Where it looks for its answer").wait_for()
    keep_shot(page, "train-review-800")
    assert page.evaluate(OVERFLOWING) == []
    assert page.evaluate(TICKS_OVER_LOSS) == 0, "the accuracy ticks lie over the loss panel"
    # A snapshot answer reads "validation #14: 3 30% · 5 28% · 8 14%": no pair ("3 30%") split over two lines.
    split = page.evaluate(SPLIT_PAIRS)
    assert split["captions"] > 0, "no snapshot answers listed under the time machine's confusion matrix"
    assert split["split"] == [], split["split"]



# Pixels by which the time machine's accuracy tick labels reach into its loss panel (0: they do not).
TICKS_OVER_LOSS = """() => {
  const chart = document.querySelector('.st-key-train_time_curves');
  const right = chart.querySelector('.draglayer .xy .nsewdrag').getBoundingClientRect().right;
  const ticks = [...chart.querySelectorAll('.y2tick text')].map(t => t.getBoundingClientRect().left);
  if (!ticks.length) return -1;
  return Math.max(0, ...ticks.map(left => Math.round(right - left)));
}"""
