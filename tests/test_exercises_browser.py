"""The Exercises page in a real browser at 1400 and 800 px: answers checked, maps drawn with their numbers,
nothing wider than the page, a teacher's malformed set named; screenshots in /tmp/r20-exercises/."""

import shutil
from pathlib import Path

import pytest

from cnnviz.exercises.generate import DEFAULT_SEED, random_exercise
from cnnviz.exercises.teacher_sets import EXERCISES_DIR_ENV
from tests.conftest import assert_no_exception, open_page, running_app, save_screenshot, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = Path("/tmp/r20-exercises")
SEED = DEFAULT_SEED  # the page starts on it
SET = 'title = "Week 3"\n[[random]]\nkind = "cell_value"\ncount = 2\nseed = 5\n'
BROKEN = 'title = "Week 4"\n[[exercise]]\nkind = "output_shape"\nheight = 28\nkernel = "five"\n'
# each chart or image of the main column whose right edge lies past the column's (cut off on screen)
PAST_EDGE = """() => {
  const column = document.querySelector('[data-testid=stMainBlockContainer]').getBoundingClientRect();
  const drawn = '[data-testid=stPlotlyChart], [data-testid=stPlotlyChart] .main-svg, img';
  return [...document.querySelector('[data-testid=stMain]').querySelectorAll(drawn)]
    .map(el => el.getBoundingClientRect()).filter(b => b.width > 0 && b.right > column.right + 1)
    .map(b => Math.round(b.right));
}"""
# each figure drawn wider than the slot the page gives it (its right part hidden)
CLIPPED = """() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stPlotlyChart]')]
  .filter(chart => chart.querySelector('.main-svg').getBoundingClientRect().right
                   > chart.getBoundingClientRect().right + 1)
  .map(chart => chart.querySelector('.gtitle') ? chart.querySelector('.gtitle').textContent : '?')"""
# the numbers plotly wrote into the heatmap cells, per chart
CELL_TEXTS = """() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stPlotlyChart]')]
  .map(chart => [...chart.querySelectorAll('g.text text, .heatmaplayer text')].map(t => t.textContent))"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sets")
    (folder / "week3.toml").write_text(SET)
    (folder / "week4.toml").write_text(BROKEN)
    with running_app(tmp_path_factory.mktemp("app"), {EXERCISES_DIR_ENV: str(folder)}) as (url, _):
        yield url


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(save_screenshot(page, name), SHOTS / f"{name}.png")


def type_and_check(page, text: str) -> None:
    main = page.get_by_test_id("stMain")
    box = main.get_by_label("Your answer")
    box.fill(text)
    box.press("Enter")
    wait_until_idle(page)
    main.get_by_role("button", name="Check", exact=True).click()
    wait_until_idle(page)
    assert_no_exception(page)


def next_exercise(page) -> None:
    page.get_by_test_id("stMain").get_by_role("button", name="Next exercise").click()
    wait_until_idle(page)
    assert_no_exception(page)


@pytest.mark.parametrize("width", [1400, 800])
def test_exercises_are_checked_and_readable(server, browser, width):
    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    try:
        open_page(page, f"{server}/exercises")
        assert_no_exception(page)
        main = page.get_by_test_id("stMain")
        assert "week4.toml, line 5: 'kernel' must be a whole number" in main.inner_text()
        shape = random_exercise(SEED, 0)
        type_and_check(page, shape.answer_text.replace(" x ", "x"))
        assert f"Right: {shape.answer_text}." in main.inner_text()
        shot(page, f"exercises-shape-{width}")

        next_exercise(page)  # which kernel made this map: the input, the map and the kernels
        kernel = random_exercise(SEED, 1)
        wrong = next(c for c in kernel.choices if c != kernel.answer)
        main.get_by_test_id("stRadio").get_by_text(wrong, exact=True).click()
        wait_until_idle(page)
        main.get_by_role("button", name="Check", exact=True).click()
        wait_until_idle(page)
        assert f"the map was made by {kernel.answer}" in main.inner_text()
        assert len(page.evaluate(CELL_TEXTS)) == len(kernel.pictures)
        assert page.evaluate(PAST_EDGE) == [], f"wider than the page at {width} px"
        clipped = page.evaluate(CLIPPED)
        assert clipped == [], f"figures wider than their slot at {width} px: {clipped}"
        shot(page, f"exercises-kernel-{width}")

        for index in (2, 3, 4):  # pooling winner, parameters, cell value
            next_exercise(page)
            exercise = random_exercise(SEED, index)
            assert page.evaluate(PAST_EDGE) == [], f"wider than the page at {width} px"
            for picture, texts in zip(exercise.pictures, page.evaluate(CELL_TEXTS), strict=False):
                assert len(texts) == picture.values.size  # every cell has its number written in
            typed = (
                "{} {}".format(*exercise.answer) if exercise.kind == "pool_winner" else exercise.answer_text
            )
            type_and_check(page, typed)
            assert f"Right: {exercise.answer_text}." in main.inner_text()
            assert page.evaluate(PAST_EDGE) == [], f"wider than the page at {width} px"
            shot(page, f"exercises-{exercise.kind}-{width}")
        assert "4 of 5 right" in main.inner_text()
    finally:
        context.close()
