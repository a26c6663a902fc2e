"""The polish list in a real browser: the favicon is the app's own, the home cards fit at 800 px and
say where to start, and the Convolution figure's text stays inside the figure at 800 and 1400 px."""

from __future__ import annotations

import pytest

from cnnviz.ui.navigation import PAGES
from tests.conftest import assert_no_exception, open_page, save_screenshot

pytestmark = pytest.mark.browser

NARROW = {"width": 800, "height": 1000}


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
