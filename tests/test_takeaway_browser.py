"""The Train page's "Take it with you" in a real browser at 1400 and 800 px: the diagram drawn 1:1 and
its download; :func:`check_run_downloads` (run by tests/test_train_page_browser.py on its trained run):
the ONNX file and the script downloaded as a student gets them. Screenshots under tests/artifacts/ and
/tmp/r20-onnx/."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import onnx
import pytest

from tests.conftest import assert_no_exception, open_page, save_screenshot, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = Path("/tmp/r20-onnx")
WIDTHS = (1400, 800)


def _shot(page, name: str) -> None:
    path = save_screenshot(page, name, full_page=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / f"{name}.png")


def _diagram_fits(page, width: int) -> None:
    """The diagram image has loaded, is drawn 1:1 (not shrunk) and ends inside the window."""
    image = page.locator(".st-key-train_takeaway_diagram img")
    box = image.bounding_box()
    natural = image.evaluate("img => img.naturalWidth")
    assert natural > 0 and box["width"] == pytest.approx(natural, abs=1), (natural, box)
    assert box["x"] + box["width"] <= width, box


def _download(page, label: str, folder: Path) -> Path:
    main = page.get_by_test_id("stMain")
    with page.expect_download() as info:
        main.get_by_role("button", name=label).click()
    target = folder / info.value.suggested_filename
    info.value.save_as(target)
    return target


def test_the_diagram_is_drawn_whole_and_downloads(app_server, browser, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    open_page(page, f"{app_server}/train")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        wait_until_idle(page)
        page.locator(".st-key-train_takeaway_png").scroll_into_view_if_needed()
        _shot(page, f"takeaway-diagram-{width}")
        _diagram_fits(page, width)
    svg = _download(page, "Diagram (SVG)", tmp_path)
    assert svg.name == "architecture.svg" and ET.parse(svg).getroot().tag.endswith("svg")
    assert_no_exception(page)
    context.close()


def check_run_downloads(page, tmp_path: Path, spec: str) -> None:
    """After a run (tests/test_train_page_browser.py trains one): the ONNX file and the script as the
    browser downloads them, and the block at 1400 and 800 px."""
    main = page.get_by_test_id("stMain")
    main.get_by_role("button", name="Download ONNX").wait_for(timeout=60_000)
    assert_no_exception(page)
    model = onnx.load(_download(page, "Download ONNX", tmp_path))
    onnx.checker.check_model(model)
    assert {p.key: p.value for p in model.metadata_props}["spec"] == spec
    script = _download(page, "Download the training script", tmp_path)
    assert script.name == "train_mnist.py" and spec in script.read_text()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        wait_until_idle(page)
        main.get_by_role("button", name="Download ONNX").scroll_into_view_if_needed()
        _shot(page, f"takeaway-run-{width}")
    assert_no_exception(page)
