"""The polish list in a real browser: the favicon is the app's own, the home cards fit at 800 px and
say where to start, and the Convolution figure's text stays inside the figure at 800 and 1400 px."""

from __future__ import annotations

import pytest

from cnnviz.ui.navigation import PAGES
from tests.conftest import ARTIFACTS, assert_no_exception, open_page, save_screenshot, wait_until_idle

pytestmark = pytest.mark.browser

NARROW = {"width": 800, "height": 1000}
SHOTS = ARTIFACTS


def _hosts(urls: list[str]) -> set[str]:
    return {url.split("/")[2] for url in urls if url.startswith(("http://", "https://"))}


def test_favicon_is_served_by_the_app_and_nothing_is_fetched_from_the_internet(app_server, browser_page):
    requests: list[str] = []
    browser_page.on("request", lambda request: requests.append(request.url))
    for path in ("", "convolution"):
        open_page(browser_page, f"{app_server}/{path}")
        assert_no_exception(browser_page)
        icons = browser_page.evaluate(
            "Array.from(document.querySelectorAll('link[rel~=icon]')).map(link => link.href)"
        )
        assert icons and all(icon.startswith(f"{app_server}/media/") for icon in icons), icons
        served = browser_page.request.get(icons[0])
        assert served.ok and served.headers["content-type"] == "image/png"
    assert _hosts(requests) == {app_server.split("/")[2]}, sorted(_hosts(requests))


def test_home_cards_fit_at_800_px_and_say_where_to_start(app_server, browser):
    page = browser.new_context(viewport=NARROW).new_page()
    open_page(page, app_server)
    assert_no_exception(page)
    main = page.get_by_test_id("stMain")
    start = main.get_by_text("New to CNNs? Start with", exact=False)
    assert start.count() == 1
    words = start.inner_text()
    order = [words.index(spec.title) for spec in PAGES]  # Convolution, Train, Inspect, Explore
    assert order == sorted(order)
    titles = page.evaluate(
        """Array.from(document.querySelectorAll("[data-testid=stMain] [data-testid=stPageLink-NavLink]"))
            .map(link => {
              const label = link.querySelector('p');
              const card = link.closest('[data-testid=stVerticalBlockBorderWrapper]') || link.parentElement;
              const text = label.getBoundingClientRect(), box = card.getBoundingClientRect();
              return {title: label.innerText, cut: label.scrollWidth > label.clientWidth + 1,
                      inside: text.left >= box.left - 1 && text.right <= box.right + 1};
            })"""
    )
    assert sorted(t["title"] for t in titles) == sorted(spec.title for spec in PAGES)
    assert all(not t["cut"] and t["inside"] for t in titles), titles
    save_screenshot(page, "polish-home-800")
    page.context.close()


OUTSIDE_CHARTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(plot => {
    const box = plot.getBoundingClientRect();
    return Array.from(plot.querySelectorAll('svg text'))
      .filter(t => t.textContent.trim() && getComputedStyle(t).fill !== 'rgba(0, 0, 0, 0)')
      .map(t => [t.textContent, t.getBoundingClientRect()])
      .filter(([, r]) => r.width > 0 && (r.left < box.left - 1 || r.right > box.right + 1))
      .map(([text, r]) => `${text} (${Math.round(r.left)}..${Math.round(r.right)} of `
                          + `${Math.round(box.left)}..${Math.round(box.right)})`);
})"""


def _pick(page, label: str, option: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text=label).first.click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")
    wait_until_idle(page)


def _charts_text_inside(page, name: str) -> None:
    wait_until_idle(page)
    assert_no_exception(page)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=20_000)
    assert page.evaluate(OUTSIDE_CHARTS) == [], name
    page.get_by_test_id("stPlotlyChart").first.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.mark.slow
@pytest.mark.parametrize("width", [800, 1400])
def test_convolution_figures_keep_their_text_inside_at_800_and_1400_px(app_server, browser, width):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_context(viewport={"width": width, "height": 1000}).new_page()
    open_page(page, f"{app_server}/convolution")
    _charts_text_inside(page, f"conv-default-{width}")
    main = page.get_by_test_id("stMain")
    main.get_by_text("MNIST sample", exact=True).click()
    wait_until_idle(page)
    _pick(page, "Kernel 1", "Gaussian")
    _charts_text_inside(page, f"conv-mnist-gaussian-{width}")
    for label in ("Kernel height", "Kernel width"):
        page.get_by_label(label).fill("5")
        page.get_by_label(label).press("Enter")
        wait_until_idle(page)
    _charts_text_inside(page, f"conv-mnist-gaussian5-{width}")
    main.get_by_text("CIFAR-10 sample", exact=True).click()
    wait_until_idle(page)
    main.get_by_text("RGB (3-channel kernels)", exact=True).click()
    _charts_text_inside(page, f"conv-cifar-rgb-{width}")
    main.get_by_text("average", exact=True).click()
    _charts_text_inside(page, f"conv-average-pool-{width}")
    save_screenshot(page, f"polish-convolution-{width}")
    page.context.close()
