"""The clickable confusion matrix of a tiny real run: a cell lists exactly its test images."""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnnviz import pages
from cnnviz.training.config import TrainConfig
from cnnviz.training.loop import TrainResult, train
from cnnviz.training.results import cell_members, confusion_matrix
from cnnviz.training.snapshot_capture import SnapshotPlan
from cnnviz.ui.training.confusion_view import SHOWN, clickable_confusion_figure

TINY = TrainConfig(spec="C8n M C16n M F32", epochs=1, batch_size=64, train_subset=1_000, test_subset=600,
                   val_fraction=0.1, seed=3)


@pytest.fixture(scope="module")
def tiny_run(real_data_dir) -> TrainResult:
    plan = SnapshotPlan(None, count=6, check_images=300, projection_images=10)
    return train(TINY, data_dir=real_data_dir, cpu_threads=1, snapshots=plan)


def _results_app(result: TrainResult) -> AppTest:
    def script(result):
        from cnnviz import pages
        from cnnviz.ui.training.confusion_view import results_confusion

        results_confusion(result, key=pages.TRAIN_CONFUSION_KEY)

    return AppTest.from_function(script, args=(result,), default_timeout=60).run()


def _listed(app: AppTest) -> list[int]:
    """The test indices the page lists, read from the image captions ("test #123: 7 91% · ...")."""
    return [int(c.split("#")[1].split(":")[0]) for c in _captions(app)]


def _captions(app: AppTest) -> list[str]:
    return [img.caption for block in app.get("image") for img in block.proto.imgs]



def test_each_cell_lists_exactly_its_test_images(tiny_run, real_data_dir, monkeypatch) -> None:
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(real_data_dir))
    result = tiny_run
    matrix = confusion_matrix(result.test_predictions, result.test_labels, 10)
    app = _results_app(result)
    assert not app.exception, [e.value for e in app.exception]
    # at first the most frequent mistake is picked
    wrong = matrix.clone().fill_diagonal_(-1)
    true, said = divmod(int(wrong.argmax()), 10)
    assert app.selectbox(key=f"{pages.TRAIN_CONFUSION_KEY}_true").value == str(true)
    assert app.selectbox(key=f"{pages.TRAIN_CONFUSION_KEY}_said").value == str(said)
    assert _listed(app) == cell_members(result.test_predictions, result.test_labels, true, said).tolist()
    # a cell on the diagonal has more than a page: the first page, then the second
    big = int(matrix.diagonal().argmax())
    app.selectbox(key=f"{pages.TRAIN_CONFUSION_KEY}_true").set_value(str(big))
    app.selectbox(key=f"{pages.TRAIN_CONFUSION_KEY}_said").set_value(str(big)).run()
    assert not app.exception, [e.value for e in app.exception]
    members = cell_members(result.test_predictions, result.test_labels, big, big).tolist()
    assert len(members) == matrix[big, big] > SHOWN
    assert _listed(app) == members[:SHOWN]
    assert any(f"**{len(members):,} images**" in m.value for m in app.markdown)
    app.number_input(key=f"{pages.TRAIN_CONFUSION_KEY}_page_{big}_{big}").set_value(2).run()
    assert _listed(app) == members[SHOWN:2 * SHOWN]
    # every listed answer is the run's own prediction: the top-3's first class is the predicted one
    assert all(c.split(": ")[1].split("\N{NO-BREAK SPACE}")[0] == str(big) for c in _captions(app))


def test_every_cell_has_a_click_target_with_its_pair(tiny_run) -> None:
    result = tiny_run
    matrix = confusion_matrix(result.test_predictions, result.test_labels, 10)
    figure = clickable_confusion_figure(matrix, [str(i) for i in range(10)])
    heatmap, overlay = figure.data
    assert torch.equal(torch.as_tensor(heatmap.z), matrix)
    pairs = [tuple(int(v) for v in pair) for pair in overlay.customdata]
    assert pairs == [(r, c) for r in range(10) for c in range(10)]
    # each marker sits on its own cell: y names the true class, x the predicted one
    assert [(int(y), int(x)) for x, y in zip(overlay.x, overlay.y, strict=True)] == pairs
    assert overlay.hoverinfo != "skip" and heatmap.hoverinfo == "skip"  # the markers take the clicks
    assert [int(t) for t in overlay.text] == matrix.flatten().tolist()  # and the tooltip's counts
    assert figure.layout.xaxis.dtick == 1 == figure.layout.yaxis.dtick  # every class named, narrow or not


def test_a_snapshot_s_cell_lists_its_check_images_with_the_stored_top3(tiny_run) -> None:
    run = tiny_run.snapshots
    early = run.snapshots[1]  # after the first step: many mistakes still

    def script(snapshot, run):
        from cnnviz.ui.training.confusion_view import snapshot_confusion

        snapshot_confusion(snapshot, run, key="moment_confusion")

    app = AppTest.from_function(script, args=(early, run), default_timeout=60).run()
    assert not app.exception, [e.value for e in app.exception]
    true = int(app.selectbox(key="moment_confusion_true").value)
    said = int(app.selectbox(key="moment_confusion_said").value)
    members = cell_members(early.predictions, run.check_labels, true, said)
    assert len(members) == early.confusion[true, said] > 0 and true != said
    shown = members[:SHOWN].tolist()
    split = "validation" if run.check_split == "val" else "test"
    expected = [f"{split} #{int(run.check_indices[i])}: " + "\N{NO-BREAK SPACE}· ".join(
        f"{int(c)}\N{NO-BREAK SPACE}{float(p):.0%}"  # no line break inside an answer
        for c, p in zip(early.top3[i], early.top3_probabilities[i], strict=True))
        for i in shown]
    assert _captions(app) == expected
    assert any("without Grad-CAM: a snapshot keeps no weights" in c.value for c in app.caption)


def _top_mistake(matrix: torch.Tensor) -> tuple[int, int]:
    wrong = matrix.clone().fill_diagonal_(-1)
    return divmod(int(wrong.argmax()), matrix.shape[1])


def test_a_moment_s_cell_follows_the_slider_until_the_student_picks_one(tiny_run) -> None:
    """Under the time slider the matrix changes under one key: the picked cell is each moment's most
    frequent mistake (not the first snapshot's, often empty at the end) until the student picks one."""
    run = tiny_run.snapshots
    early = 1
    late = next((i for i in range(len(run.snapshots) - 1, early, -1)
                 if _top_mistake(run.snapshots[i].confusion) != _top_mistake(run.snapshots[early].confusion)),
                None)
    assert late is not None, "every moment has the same most frequent mistake"

    def script(run):
        import streamlit as st

        from cnnviz.ui.training.confusion_view import snapshot_confusion

        snapshot_confusion(run.snapshots[st.session_state.get("moment", 1)], run, key="moment_confusion")

    def picked(app: AppTest) -> tuple[int, int]:
        assert not app.exception, [e.value for e in app.exception]
        return (int(app.selectbox(key="moment_confusion_true").value),
                int(app.selectbox(key="moment_confusion_said").value))

    app = AppTest.from_function(script, args=(run,), default_timeout=60).run()
    assert picked(app) == _top_mistake(run.snapshots[early].confusion)
    app.session_state["moment"] = late
    assert picked(app.run()) == _top_mistake(run.snapshots[late].confusion)
    # the student picks another cell: it stays while the slider moves
    cell = next((t, s) for t in range(10) for s in range(10) if t != s and (t, s) not in {
        _top_mistake(run.snapshots[early].confusion), _top_mistake(run.snapshots[late].confusion)}
        and t != _top_mistake(run.snapshots[late].confusion)[0])
    app.selectbox(key="moment_confusion_true").set_value(str(cell[0])).run()
    assert picked(app)[0] == cell[0]
    app.selectbox(key="moment_confusion_said").set_value(str(cell[1])).run()
    assert picked(app) == cell
    app.session_state["moment"] = early
    assert picked(app.run()) == cell
