"""The time machine in a real browser: a tiny run trains with the slider live, then the slider is
scrubbed, Play moves it on by itself and Pause holds it; screenshots at 1400 and 800 px."""

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


def test_train_scrub_and_play(app_server, browser_page) -> None:
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
