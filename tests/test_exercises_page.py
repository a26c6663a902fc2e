"""The Exercises page under AppTest: a right answer, a wrong one, a shown one and text that is no answer,
the session's score kept across pages, and a teacher's sets with a malformed one reported."""

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.exercises.generate import DEFAULT_SEED, random_exercise
from cnnviz.exercises.model import OUTPUT_SHAPE, POOL_WINNER, WHICH_KERNEL
from cnnviz.exercises.teacher_sets import EXERCISES_DIR_ENV
from cnnviz.ui.navigation import page_spec
from tests.conftest import REPO

PAGE = str(page_spec("exercises").path)
SEED = DEFAULT_SEED  # the page starts on it


@pytest.fixture
def app(monkeypatch):
    monkeypatch.delenv(EXERCISES_DIR_ENV, raising=False)

    def open_app() -> AppTest:
        opened = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
        opened.switch_page(PAGE).run()
        assert not opened.exception, [e.value for e in opened.exception]
        return opened

    return open_app


def answer(app: AppTest, exercise, text: str) -> None:
    if exercise.kind == WHICH_KERNEL:
        app.radio[0].set_value(text)
    else:
        app.text_input[0].set_value(text)
    press(app, "_check")


def press(app: AppTest, suffix: str) -> None:
    (key,) = [b.key for b in app.button if b.key and b.key.endswith(suffix)]
    app.button(key=key).click().run()
    assert not app.exception, [e.value for e in app.exception]


def plain(markdown: str) -> str:
    """Text the page escaped for markdown, as the student reads it."""
    return markdown.replace("\\", "")


def score_line(app: AppTest) -> str:
    return next(m.value for m in app.markdown if "right** in this session" in m.value)


def test_right_wrong_shown_and_the_score(app):
    page = app()
    first = random_exercise(SEED, 0)
    assert first.question in [plain(m.value) for m in page.markdown]
    assert not page.success and not page.error and not page.code  # nothing revealed before checking
    answer(page, first, "twenty")  # no answer at all: a sentence, not a try
    assert page.warning and "Type two whole numbers" in page.warning[0].value and not page.table
    answer(page, first, first.answer_text)
    assert (
        plain(page.success[0].value) == f"Right: {first.answer_text}."
        and first.explanation.splitlines()[0] in page.code[0].value
    )
    assert page.button(key=[b.key for b in page.button if b.key.endswith("_check")][0]).disabled
    assert score_line(page) == "**1 of 1 right** in this session."

    page.button(key="ex_next").click().run()
    second = random_exercise(SEED, 1)
    wrong = next(c for c in second.choices if c != second.answer) if second.kind == WHICH_KERNEL else "0"
    answer(page, second, wrong)
    assert "Not quite" in page.error[0].value and not page.success
    assert score_line(page) == "**1 of 2 right** in this session."

    page.button(key="ex_next").click().run()
    press(page, "_show")
    third = random_exercise(SEED, 2)
    shown = plain(page.info[0].value)
    assert f"The answer is {third.answer_text}." in shown and "counts as not right" in shown
    assert score_line(page) == "**1 of 3 right** in this session."
    table = page.table[0].value
    assert list(table["Right"]) == [1, 0, 0] and list(table["Tried"]) == [1, 1, 1]

    page.switch_page(str(page_spec("home").path)).run()
    page.switch_page(PAGE).run()  # the score and the place in the set survive another page
    assert score_line(page) == "**1 of 3 right** in this session."
    assert page.subheader[0].value.startswith("Exercise 3:")


def test_another_seed_gives_other_exercises(app):
    page = app()
    page.number_input(key="ex_seed").set_value(42).run()
    exercise = random_exercise(42, 0)
    answer(page, exercise, exercise.answer_text)
    assert "Right" in page.success[0].value


def test_the_kinds_in_any_click_order_give_the_class_the_same_exercises(app):
    # "seed 7, shapes and pooling": students who pick the two kinds in either order see the same ones
    asked = []
    for picked in ([OUTPUT_SHAPE, POOL_WINNER], [POOL_WINNER, OUTPUT_SHAPE]):
        page = app()
        page.number_input(key="ex_seed").set_value(7).run()
        page.multiselect(key="ex_kinds").set_value(picked).run()
        page.button(key="ex_next").click().run()
        asked.append([plain(m.value) for m in page.markdown])
    second = random_exercise(7, 1, (OUTPUT_SHAPE, POOL_WINNER))
    assert second.kind == POOL_WINNER
    assert second.question in asked[0] and second.question in asked[1]


def test_teachers_sets_are_offered_and_a_malformed_one_named(app, monkeypatch, tmp_path):
    (tmp_path / "week3.toml").write_text(
        'title = "Week 3"\n[[exercise]]\nkind = "parameters"\nlayer = "linear"\nin_features = 784\n'
        "out_features = 10\n"
    )
    (tmp_path / "week4.toml").write_text('title = "Week 4"\n[[exercise]]\nkind = "cell_value"\ninput = 3\n')
    (tmp_path / "week3b.toml").write_text((tmp_path / "week3.toml").read_text())  # the same title again
    monkeypatch.setenv(EXERCISES_DIR_ENV, str(tmp_path))
    page = app()
    assert page.selectbox(key="ex_set").options == ["Random practice", "Week 3", "Week 3 (week3b.toml)"]
    warning = plain(page.warning[0].value)
    assert "week4.toml, line 4: 'input' must be rows of numbers" in warning
    page.selectbox(key="ex_set").set_value("Week 3").run()
    assert page.subheader[0].value == "Exercise 1 of 1: How many parameters has this layer?"
    page.text_input[0].set_value("7,850").run()
    press(page, "_check")
    assert "Right" in page.success[0].value
    assert "ex_next" not in [b.key for b in page.button]  # the last one: start again instead


def test_malformed_sets_share_one_warning(app, monkeypatch, tmp_path):
    (tmp_path / "week4.toml").write_text('title = "Week 4"\n[[exercise]]\nkind = "cell_value"\ninput = 3\n')
    (tmp_path / "week5.toml").write_text('title = "Week 5"\n[[exercise]]\nkind = "sizes"\n')
    monkeypatch.setenv(EXERCISES_DIR_ENV, str(tmp_path))
    page = app()
    assert len(page.warning) == 1  # four broken files were four boxes above the exercise
    warning = plain(page.warning[0].value)
    assert warning.startswith("2 exercise sets cannot be offered:")
    assert "- week4.toml, line 4: 'input' must be rows of numbers" in warning
    assert "- week5.toml, line 3: Unknown kind 'sizes'" in warning


def test_a_set_edited_during_the_class_starts_afresh(app, monkeypatch, tmp_path):
    def write(in_features: int) -> None:
        (tmp_path / "week3.toml").write_text(
            'title = "Week 3"\n[[exercise]]\nkind = "parameters"\nlayer = "linear"\n'
            f"in_features = {in_features}\nout_features = 10\n"
        )

    write(784)
    monkeypatch.setenv(EXERCISES_DIR_ENV, str(tmp_path))
    page = app()
    page.selectbox(key="ex_set").set_value("Week 3").run()
    page.text_input[0].set_value("7,850").run()
    press(page, "_check")
    assert "Right" in page.success[0].value and page.text_input[0].disabled
    write(1000)  # the teacher fixes a number: another size, so the page reads the file again
    page.run()
    assert "nn.Linear(1000, 10" in plain(" ".join(m.value for m in page.markdown))
    # the old verdict (7,850 was right for 784 inputs) is gone and the new exercise can be answered
    assert not page.success and not page.text_input[0].disabled and page.text_input[0].value == ""
    page.text_input[0].set_value("10,010").run()
    press(page, "_check")
    assert "Right" in page.success[0].value
    assert score_line(page) == "**2 of 2 right** in this session."


def test_a_set_started_again_can_be_answered_again_and_counts_once(app, monkeypatch, tmp_path):
    (tmp_path / "week3.toml").write_text(
        'title = "Week 3"\n[[exercise]]\nkind = "parameters"\nlayer = "linear"\nin_features = 784\n'
        "out_features = 10\n"
    )
    monkeypatch.setenv(EXERCISES_DIR_ENV, str(tmp_path))
    page = app()
    page.selectbox(key="ex_set").set_value("Week 3").run()
    page.text_input[0].set_value("7,840").run()  # the bias forgotten
    press(page, "_check")
    assert page.error and page.text_input[0].disabled
    page.button(key="ex_again").click().run()
    # a fresh try: no verdict, an empty box that takes an answer
    assert not page.error and not page.text_input[0].disabled and page.text_input[0].value == ""
    page.text_input[0].set_value("7,850").run()
    press(page, "_check")
    assert "Right" in page.success[0].value
    assert score_line(page) == "**0 of 1 right** in this session."  # the first try is what counted
