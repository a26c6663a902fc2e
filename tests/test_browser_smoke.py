"""Every page of the app opens in a real browser without an exception."""

import pytest

from cnnviz.ui.navigation import HOME, PAGES
from tests.conftest import assert_no_exception, open_page, save_screenshot

pytestmark = pytest.mark.browser


def test_home_page_renders_with_samples(app_server, browser_page):
    open_page(browser_page, app_server)
    assert_no_exception(browser_page)
    main = browser_page.get_by_test_id("stMain")
    assert "see a convolutional network work" in main.inner_text()
    # One real sample per class of each dataset, drawn as images.
    assert main.locator("[data-testid='stImage'] img").count() >= 20
    for spec in PAGES:
        assert main.get_by_text(spec.title, exact=True).count() >= 1, f"home does not link {spec.title}"
    save_screenshot(browser_page, "page-home")


@pytest.mark.parametrize("spec", [HOME, *PAGES], ids=lambda s: s.url_path)
def test_every_page_opens(app_server, browser_page, spec):
    open_page(browser_page, f"{app_server}/{'' if spec is HOME else spec.url_path}")
    assert_no_exception(browser_page)
    save_screenshot(browser_page, f"page-{spec.url_path}")


@pytest.mark.skipif(not PAGES, reason="Streamlit shows no page menu while the app has one page")
def test_sidebar_menu_reaches_every_page(app_server, browser_page):
    open_page(browser_page, app_server)
    for spec in PAGES:
        browser_page.locator("[data-testid='stSidebarNavLink']", has_text=spec.title).click()
        browser_page.wait_for_url(f"**/{spec.url_path}")
        open_page(browser_page, browser_page.url)
        assert_no_exception(browser_page)
