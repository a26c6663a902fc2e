"""The trainer: uint8 data held on the device, augmentation on the device, no DataLoader workers.

One code path for CPU and CUDA. On CUDA the model runs channels_last under bf16 autocast, optionally
through ``torch.compile``; on the CPU it runs float32 on every core it may use. Progress goes to a
callback (the page and the command line use the same one), and a ``threading.Event``-like flag stops
training at any step, keeping what the model has learned so far.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from cnnviz.datasets.files import DatasetInfo
from cnnviz.networks.build import SpecNet, set_dropout_generator
from cnnviz.runtime import device_name
from cnnviz.training.augment import shuffled_epoch
from cnnviz.training.config import TrainConfig
from cnnviz.training.estimate import answer_views, scoring_seconds
from cnnviz.training.evaluate import evaluate
from cnnviz.training.prepare import (
    PreparedRun,
    load_test_split,
    prepare_run,
    set_whitening_bias_epoch,
    take_step,
)
from cnnviz.training.progress import (
    HistoryPoint,
    Meter,
    Phase,
    Progress,
    ProgressCallback,
    StopFlag,
    history_records,
)
from cnnviz.training.snapshot_capture import SnapshotPlan, SnapshotRecorder, check_plan
from cnnviz.training.snapshots import RunSnapshots
from cnnviz.training.step import learning_rate, set_learning_rate
from cnnviz.training.tricks import Lookahead, alternating_mirror, lookahead_decay

# A stopped run (often a closed tab) is scored on the first this many test images, not all 10,000:
# scoring them all held its training slot for over a minute on a CPU.
STOPPED_TEST_IMAGES = 1_000


@dataclass
class TrainResult:
    """What a run produced; the model is on the CPU in eval mode."""

    model: SpecNet
    config: TrainConfig
    info: DatasetInfo
    history: list[HistoryPoint]  # one entry per validation point
    test_accuracy: float | None
    test_predictions: torch.Tensor | None  # (N,) int64 predicted classes on the test images used
    test_labels: torch.Tensor | None
    stopped: bool  # True when the stop flag ended training early
    seconds: float  # wall time, data loading included
    steps: int
    device: str  # "cpu" or the GPU's name
    snapshots: RunSnapshots | None = None  # when train() was given a SnapshotPlan

    def metadata(self, name: str | None = None) -> dict[str, Any]:
        """The checkpoint metadata of this run."""
        info = self.info
        return {
            "name": name, "dataset": info.name, "spec": self.model.spec, "classes": list(info.classes),
            "mean": list(info.mean), "std": list(info.std), "input_shape": list(info.image_shape),
            "training": asdict(self.config), "history": history_records(self.history),
            "test_accuracy": self.test_accuracy,
            "test_images": None if self.test_labels is None else len(self.test_labels),
            "stopped_early": self.stopped, "steps": self.steps, "seconds": round(self.seconds, 2),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "device": self.device, "torch_version": str(torch.__version__),
        }


@dataclass(frozen=True)
class TestScore:
    """A model scored on the test set after ``step`` optimizer steps."""

    step: int
    accuracy: float
    predictions: torch.Tensor  # (N,) int64 predicted classes
    labels: torch.Tensor


@dataclass
class _RunState:
    """What changes while a run trains, and the reports it makes of it."""

    run: PreparedRun
    meter: Meter
    started: float  # time.perf_counter() when train() was called
    lr: float
    callback: ProgressCallback | None = None
    report_interval: float = 0.25
    step: int = 0
    stopped: bool = False
    lookahead: Lookahead | None = None
    recorder: SnapshotRecorder | None = None
    history: list[HistoryPoint] = field(default_factory=list)
    last_report: float = field(default_factory=time.perf_counter)
    first_step: float | None = None  # time.perf_counter() when the first step began
    eval_images_per_second: float | None = None  # measured at the validation checks
    test_images: int = 0  # scored after the last step

    def report(
        self, phase: Phase, val_loss: float | None = None, val_accuracy: float | None = None,
    ) -> Progress:
        """A progress report of the run as it is now."""
        schedule = self.run.schedule
        now = time.perf_counter()
        return Progress(
            phase=phase, step=self.step, total_steps=schedule.total_steps,
            epoch=self.step / max(1, schedule.steps_per_epoch), epochs=self.run.config.epochs,
            loss=self.meter.loss, accuracy=self.meter.accuracy, lr=self.lr,
            images_per_second=self.meter.images_per_second, elapsed=now - self.started,
            val_loss=val_loss, val_accuracy=val_accuracy,
            train_seconds=0.0 if self.first_step is None else now - self.first_step,
            window_loss=self.meter.take_window_loss(), test_images=self.test_images,
            scoring_seconds=scoring_seconds(self.test_images, self.eval_images_per_second,
                                            self.meter.images_per_second, answer_views(self.run.config)),
        )


def train(
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    stop: StopFlag | None = None,
    data_dir: str | os.PathLike | None = None,
    report_interval: float = 0.25,
    cpu_threads: int | None = None,
    snapshots: SnapshotPlan | None = None,
) -> TrainResult:
    """Train a model as ``config`` says; returns it (CPU, eval mode) with its history and test accuracy.

    Args:
        progress: called with a :class:`Progress` about every ``report_interval`` seconds, at every
            validation point and once at the end.
        stop: anything with ``is_set()`` (e.g. ``threading.Event``); when set, training ends after the
            current step and the model keeps what it learned.
        data_dir: where the datasets are (see :func:`cnnviz.datasets.files.resolve_data_dir`).
        cpu_threads: intra-op threads on the CPU (None: every core; see :func:`configure_cpu_threads`).
        snapshots: take the snapshots this plan asks for (``TrainResult.snapshots``); they do not change
            the run.
    """
    started = time.perf_counter()
    stop = stop or threading.Event()
    if snapshots is not None:
        check_plan(snapshots, config.dataset)
    run = prepare_run(config, data_dir, cpu_threads)
    state = _RunState(run, Meter(run.device), started, callback=progress, report_interval=report_interval,
                      lr=learning_rate(config, 0, run.schedule.steps_per_epoch, run.schedule.total_steps),
                      test_images=min(config.test_subset or run.info.test_size, run.info.test_size))
    scored: TestScore | None = None
    if snapshots is not None:
        state.recorder = SnapshotRecorder(snapshots, run)
        state.recorder.capture(0)
    run.model.train()
    for epoch in range(config.epochs):
        _train_epoch(state, epoch, stop)
        if state.stopped:
            break
        if config.test_every_epoch:
            scored = _score_epoch(state)
            if config.target_accuracy is not None and scored.accuracy >= config.target_accuracy:
                break
    if state.stopped and state.meter.images:  # keep the partial window so the curves end where it stopped
        state.history.append(_validation_point(state))
    if state.recorder is not None:
        state.recorder.finish(state.step)  # a stopped run's moment too
    run.model.eval()
    set_dropout_generator(run.model, None)  # the trained model holds no state of this run
    final = _final_score(state, scored)
    result = TrainResult(
        model=run.model.to("cpu").eval(), config=config, info=run.info, history=state.history,
        test_accuracy=None if final is None else final.accuracy,
        test_predictions=None if final is None else final.predictions,
        test_labels=None if final is None else final.labels,
        stopped=state.stopped, seconds=time.perf_counter() - started, steps=state.step,
        device=device_name(run.device),
        snapshots=None if state.recorder is None else state.recorder.snapshots,
    )
    if progress is not None:
        progress(_done_report(state, result.seconds))
    return result


def _final_score(state: _RunState, scored: TestScore | None) -> TestScore | None:
    """The test score of the weights the run ends with: the last epoch's when it was taken on them,
    else scored now (a stopped run on its first STOPPED_TEST_IMAGES); None before the first step."""
    if scored is not None and scored.step == state.step:  # the same weights
        return scored
    if state.step == 0:
        return None
    if state.stopped:
        state.test_images = min(state.test_images, STOPPED_TEST_IMAGES)
    if state.callback is not None:  # scoring takes a while (36 s of an 83 s CIFAR-10 run): say so
        state.callback(_with_last_point(state.report(Phase.SCORE), state))
    return score_test_set(state.run, state.step, STOPPED_TEST_IMAGES if state.stopped else None)


def score_test_set(run: PreparedRun, step: int, limit: int | None = None) -> TestScore:
    """The run's model scored on its test images (with its test-time augmentation), the first
    ``limit`` of them when given."""
    images, labels = load_test_split(run.config, run.info, run.data_dir)
    images, labels = images[:limit], labels[:limit]
    _, accuracy, predictions = evaluate(run.model, images, labels, run.info)
    return TestScore(step, accuracy, predictions, labels)


def _train_epoch(state: _RunState, epoch: int, stop: StopFlag) -> None:
    """One epoch of steps, validating where the schedule says; ends early when ``stop`` is set."""
    run, schedule = state.run, state.run.schedule
    set_whitening_bias_epoch(run, epoch)
    mirror = None if run.first_mirror is None else alternating_mirror(run.first_mirror, epoch)
    data = run.data
    epoch_images, epoch_labels = shuffled_epoch(
        data.train_images, data.train_labels, schedule.shift, schedule.flip, run.generator, mirror=mirror)
    for batch_index in range(schedule.steps_per_epoch):
        if stop.is_set():
            state.stopped = True
            break
        window = slice(batch_index * schedule.batch_size, (batch_index + 1) * schedule.batch_size)
        _train_step(state, epoch_images[window], epoch_labels[window])
        if state.recorder is not None and batch_index + 1 < schedule.steps_per_epoch:
            state.recorder.after_step(state.step)
        _after_step(state, checking=(batch_index + 1) in schedule.eval_steps)
    if state.lookahead is not None:
        state.lookahead.update(1.0)  # end each epoch on the averaged weights
    if state.recorder is not None:  # an epoch's last step: its snapshot sees the averaged weights
        state.recorder.after_step(state.step)


def _train_step(state: _RunState, images: torch.Tensor, targets: torch.Tensor) -> None:
    run, schedule, config = state.run, state.run.schedule, state.run.config
    state.lr = learning_rate(config, state.step, schedule.steps_per_epoch, schedule.total_steps)
    if state.first_step is None:
        state.first_step = time.perf_counter()
    set_learning_rate(run.optimizer, state.lr)
    loss, correct = take_step(run, images, targets)
    state.step += 1
    every = config.lookahead_every
    if every and state.step >= schedule.lookahead_from and state.step % every == 0:
        if state.lookahead is None:
            state.lookahead = Lookahead(run.model)
        else:
            state.lookahead.update(lookahead_decay(state.step, schedule.total_steps, every))
    state.meter.add(loss, correct, len(targets))
    if state.recorder is not None:
        state.recorder.add_loss(loss)


def _after_step(state: _RunState, checking: bool) -> None:
    """The speed, and a validation point when ``checking`` (else a progress report when one is due)."""
    now = time.perf_counter()
    state.meter.update_rate(now, force=checking)
    if checking:
        state.history.append(_validation_point(state))
        state.run.model.train()
        state.meter.restart()  # the speed counts training, not checks
    elif state.callback is not None and now - state.last_report >= state.report_interval:
        state.callback(state.report(Phase.TRAIN))
        state.last_report = now


def _validation_point(state: _RunState) -> HistoryPoint:
    """Score the validation images (when any are held out), report, and return the history point."""
    val_loss = val_accuracy = None
    run, data = state.run, state.run.data
    if len(data.val_labels):
        start = time.perf_counter()
        val_loss, val_accuracy, _ = evaluate(run.model, data.val_images, data.val_labels, run.info)
        state.eval_images_per_second = len(data.val_labels) / max(time.perf_counter() - start, 1e-9)
    point = state.report(Phase.EVAL, val_loss, val_accuracy)
    if state.callback is not None:
        state.callback(point)
    return HistoryPoint.from_progress(point)


def _score_epoch(state: _RunState) -> TestScore:
    """After an epoch (``test_every_epoch``): the test score, also kept in the epoch's history point."""
    score = score_test_set(state.run, state.step)
    state.history[-1] = replace(state.history[-1], test_accuracy=score.accuracy)
    state.run.model.train()
    return score


def _done_report(state: _RunState, seconds: float) -> Progress:
    """The last report: the numbers of the last validation point (zeros when there is none)."""
    return _with_last_point(replace(state.report(Phase.DONE), elapsed=seconds, loss=0.0, accuracy=0.0), state)


def _with_last_point(report: Progress, state: _RunState) -> Progress:
    """``report`` with the training and validation numbers of the last validation point: after the last
    step the loss window has just restarted, so the meter's own loss and accuracy read 0."""
    if not state.history:
        return report
    last = state.history[-1]
    return replace(report, loss=last.train_loss, accuracy=last.train_accuracy, val_loss=last.val_loss,
                   val_accuracy=last.val_accuracy)
