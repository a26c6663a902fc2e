"""The Train page as a teacher sees it on a projector: a tiny run at 800 px, nothing cut off at the right,
the snapshot answers' captions never split a class from its share."""

from __future__ import annotations

import pytest

from tests.conftest import assert_no_exception, open_page, save_screenshot, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TINY_SPEC = "C8n M C16n M F32"

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


def test_time_machine_fits_an_800_px_window(app_server, browser_page) -> None:
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
    page.set_viewport_size({"width": 800, "height": 1000})  # a projector's width (its menus open at 1400)
    main.get_by_role("button", name="Train", exact=True).click()
    main.get_by_text("Results on the test set").wait_for(timeout=180_000)
    wait_until_idle(page)
    assert_no_exception(page)
    main.get_by_text("Where it looks for its answer").wait_for()
    save_screenshot(page, "train-review-800")
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
