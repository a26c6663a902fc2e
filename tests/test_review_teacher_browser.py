"""What a teacher's review found on screen, in a real browser at 800 px: labels cut off."""

import pytest

from tests.conftest import assert_no_exception, open_page, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]
NARROW = {"width": 800, "height": 1000}
# the button's label: wider than the space it has means an ellipsis ("Ra...") where the word should be
LABEL_CUT = """key => {
  const button = document.querySelector(`[data-testid=stMain] .st-key-${key}`);
  const label = button.querySelector("[data-testid=stMarkdownContainer]");
  return {text: label.innerText, cut: label.scrollWidth > label.clientWidth + 1};
}"""


def test_the_train_pages_random_test_image_button_is_whole_at_800_px(app_server, browser):
    page = browser.new_context(viewport=NARROW).new_page()
    open_page(page, f"{app_server}/train")
    assert_no_exception(page)
    page.wait_for_selector("[data-testid=stMain] .st-key-train_probe_random button")
    label = page.evaluate(LABEL_CUT, "train_probe_random")
    assert label == {"text": "Random", "cut": False}, label
    save_screenshot(page, "review-teacher-train-800")
    page.context.close()
