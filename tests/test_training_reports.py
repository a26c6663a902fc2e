"""What a run tells the Train page while it trains: a loss every few steps from the first step on, a
scoring phase after the last step, and an ETA that leaves data loading out and counts the scoring."""

import statistics

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.training.config import TrainConfig
from cnnviz.training.estimate import SCORING_SPEEDUP, answer_views, scoring_seconds
from cnnviz.training.jobs import ETA_FROM_STEP, MAX_LOSS_POINTS, JobSnapshot, JobStatus, TrainingJob
from cnnviz.training.loop import train
from cnnviz.training.progress import Phase, Progress

TINY_SPEC = "C8n M C16n M F32"


def _tiny_config(**overrides) -> TrainConfig:
    base = dict(dataset="mnist", spec=TINY_SPEC, epochs=1, batch_size=64, optimizer="adam", lr=3e-3,
                weight_decay=0.0, train_subset=3000, test_subset=1000, val_fraction=0.1, device="cpu")
    return TrainConfig(**{**base, **overrides})


def _report(phase: Phase = Phase.TRAIN, step: int = 25, **fields) -> Progress:
    numbers = dict(total_steps=100, epoch=step / 50, epochs=2, loss=1.0, accuracy=0.5, lr=0.1,
                   images_per_second=200.0, elapsed=40.0, train_seconds=10.0, test_images=1000,
                   scoring_seconds=6.0)
    return Progress(phase=phase, step=step, **{**numbers, **fields})


@pytest.mark.slow
def test_a_run_reports_its_loss_from_the_first_step_and_then_its_scoring(real_data_dir):
    events: list[Progress] = []
    result = train(_tiny_config(evals_per_epoch=2), progress=events.append, data_dir=real_data_dir,
                   report_interval=0)
    assert [e.phase for e in events][-2:] == [Phase.SCORE, Phase.DONE]
    score = events[-2]
    assert score.step == score.total_steps == result.steps
    assert score.test_images == len(result.test_labels) == 1000
    assert score.scoring_seconds > 0  # at the speed the two validation checks measured
    # While it scores, the page shows the last check's training numbers, not an empty window's zeros.
    last_check = [e for e in events if e.phase == Phase.EVAL][-1]
    assert score.loss == last_check.loss > 0 and score.accuracy == last_check.accuracy > 0
    assert score.val_accuracy == last_check.val_accuracy
    assert events[0].step == 1 and events[0].window_loss is not None  # a point from the first step
    # Each report's window is one step here: between two checks they average to the check's loss.
    windows: list[float] = []
    for event in events:
        if event.phase in (Phase.TRAIN, Phase.EVAL):
            windows.append(event.window_loss)
        if event.phase == Phase.EVAL:
            assert statistics.fmean(windows) == pytest.approx(event.loss, abs=1e-5)
            windows = []
    # The pace counts from the first step: the data loading before it is left out.
    assert all(0 < e.train_seconds < e.elapsed for e in events)


def test_the_eta_counts_from_the_first_step_and_adds_the_scoring():
    snapshot = JobSnapshot(JobStatus.RUNNING, _report(), [], None, None, 0.0)
    # 25 of 100 steps in 10 s since the first step (40 s with the loading): 30 s more, then 6 s scoring
    assert snapshot.eta_seconds == pytest.approx(10.0 * 75 / 25 + 6.0)
    # the first steps warm up: no time left is shown from them
    early = JobSnapshot(JobStatus.RUNNING, _report(step=ETA_FROM_STEP - 1), [], None, None, 0.0)
    assert early.eta_seconds is None
    scoring = JobSnapshot(JobStatus.RUNNING, _report(Phase.SCORE, step=100), [], None, None, 0.0)
    assert scoring.scoring and scoring.eta_seconds is None and scoring.fraction == 1.0


def test_scoring_time_is_measured_when_it_can_be_and_guessed_before():
    assert scoring_seconds(1000, 500.0, 100.0) == 2.0  # measured: 500 images/s
    assert scoring_seconds(1000, None, 100.0, views=2) == pytest.approx(1000 * 2 / (100 * SCORING_SPEEDUP))
    assert scoring_seconds(1000, None, 0.0) == 0.0  # no speed yet: nothing to guess from
    assert answer_views(_tiny_config()) == 1
    assert answer_views(_tiny_config(dataset="cifar10", mirror_tta=True, shift_tta=True)) == 6


def test_the_job_keeps_a_bounded_loss_line_that_starts_at_the_first_step():
    job = TrainingJob(_tiny_config())
    for step in range(1, 2 * MAX_LOSS_POINTS + 501):
        job._on_progress(_report(step=step, total_steps=5000, window_loss=1.0 / step))
    points = job.snapshot().loss_points
    assert len(points) <= MAX_LOSS_POINTS
    assert points[0] == (1, 1.0) and points[-1][0] == 2 * MAX_LOSS_POINTS + 500
    assert all(a[0] < b[0] for a, b in zip(points, points[1:], strict=False))
    assert all(loss == 1.0 / step for step, loss in points)  # each kept point is a real window's loss


def _draw_progress(status: str, phase: str, step: int) -> None:
    from cnnviz.training.jobs import JobSnapshot, JobStatus
    from cnnviz.training.progress import Phase, Progress
    from cnnviz.ui.training.parts import progress_block

    report = Progress(phase=Phase(phase), step=step, total_steps=100, epoch=step / 50, epochs=2, loss=1.0,
                      accuracy=0.5, lr=0.1, images_per_second=200.0, elapsed=40.0, train_seconds=10.0,
                      test_images=10_000, scoring_seconds=36.0)
    progress_block(JobSnapshot(JobStatus(status), report, [], None, None, 0.0))


def test_the_bar_says_it_scores_the_test_set_after_the_last_step():
    app = AppTest.from_function(_draw_progress, args=("running", "score", 100))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    bar = app.get("progress")[0]
    assert bar.proto.text == "scoring the test set: 10,000 images · about 36 s"
    assert "left" not in bar.proto.text
    app = AppTest.from_function(_draw_progress, args=("running", "train", 25))
    app.run()
    assert app.get("progress")[0].proto.text.endswith("about 66 s left")  # 30 s of steps, 36 s scoring


def test_the_live_curves_draw_the_loss_of_every_few_steps_under_the_validation_points():
    from cnnviz.training.progress import HistoryPoint
    from cnnviz.ui.training.figures import learning_curves

    history = [HistoryPoint(step=50, epoch=1.0, train_loss=0.5, train_accuracy=0.8, lr=0.1, elapsed=5.0,
                            val_loss=0.4, val_accuracy=0.85)]
    figure = learning_curves(history, 2, [(0.02, 2.3), (0.04, 2.1), (0.06, 1.9)])
    first = figure.data[0]
    assert list(first.x) == [0.02, 0.04, 0.06] and list(first.y) == [2.3, 2.1, 1.9]
    assert first.mode == "lines" and first.line.width == 1 and first.xaxis == "x"
    assert [t.name for t in figure.data[1:3]] == ["training loss", "validation loss"]
    early = learning_curves([], 2, [(0.02, 2.3)])  # before the first validation point: the line alone
    assert len(early.data) == 1 and list(early.data[0].y) == [2.3]


def test_the_page_estimate_counts_the_scoring_of_the_test_set(real_data_dir):
    import time

    from cnnviz.networks.summary import summarize_spec
    from cnnviz.runtime import training_threads
    from cnnviz.training import estimate
    from cnnviz.ui.training.parts import estimated_run

    config = TrainConfig(dataset="mnist", spec=TINY_SPEC, epochs=2, mirror_tta=True)
    summary = summarize_spec(TINY_SPEC, (1, 28, 28), 10)
    estimate.machine_speed(config.dataset, config.device, training_threads())  # the timing, waited for
    deadline = time.monotonic() + 30
    while (found := estimated_run(config, summary)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    seconds, speed = found
    training = 2 * 60_000 * 0.9 / speed
    assert seconds == pytest.approx(training + 10_000 * 2 / (speed * SCORING_SPEEDUP))  # 2 views an image
