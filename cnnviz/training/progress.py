"""What a run reports as it trains: progress reports, history points, and the meter behind them."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import torch

RATE_WINDOW_SECONDS = 1.0  # how long the images-per-second rate is averaged over


class Phase(enum.StrEnum):
    """Where a run is when it reports."""

    TRAIN = "train"  # during an epoch
    EVAL = "eval"  # at a validation point
    SCORE = "score"  # after the last step, while the test set is scored
    DONE = "done"  # once, at the end


@dataclass
class Progress:
    """One report from the trainer to its callback."""

    phase: Phase
    step: int  # optimizer steps done
    total_steps: int
    epoch: float  # epochs done, fractional
    epochs: int
    loss: float  # mean training loss since the last validation point
    accuracy: float  # training accuracy since the last validation point
    lr: float
    images_per_second: float
    elapsed: float  # seconds since training started (data loading included)
    val_loss: float | None = None
    val_accuracy: float | None = None
    train_seconds: float = 0.0  # seconds since the first step began: data loading left out, for the ETA
    window_loss: float | None = None  # mean training loss of the steps since the previous report
    test_images: int = 0  # how many test images the run is scored on after its last step
    scoring_seconds: float = 0.0  # how long that scoring is estimated to take (see estimate.scoring_seconds)


ProgressCallback = Callable[[Progress], None]


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class HistoryPoint:
    """The numbers of one validation point: one point of the learning curves."""

    step: int
    epoch: float
    train_loss: float  # mean training loss since the previous point
    train_accuracy: float
    lr: float
    elapsed: float  # seconds since training started
    val_loss: float | None = None  # None when nothing is held out for validation
    val_accuracy: float | None = None
    test_accuracy: float | None = None  # only when the test set is scored after every epoch

    @classmethod
    def from_progress(cls, report: Progress) -> HistoryPoint:
        """The point of a validation report (epoch and elapsed rounded as checkpoints keep them)."""
        return cls(step=report.step, epoch=round(report.epoch, 4), train_loss=report.loss,
                   train_accuracy=report.accuracy, lr=report.lr, elapsed=round(report.elapsed, 3),
                   val_loss=report.val_loss, val_accuracy=report.val_accuracy)


def history_records(points: Iterable[HistoryPoint]) -> list[dict[str, float]]:
    """The history as a checkpoint stores it: plain dicts, without the keys of numbers not taken."""
    return [{key: value for key, value in asdict(point).items() if value is not None} for point in points]


def history_points(records: Iterable[Mapping[str, Any]]) -> list[HistoryPoint]:
    """A checkpoint's history records back as points (keys it does not know are left out)."""
    names = {f.name for f in fields(HistoryPoint)}
    return [HistoryPoint(**{key: value for key, value in record.items() if key in names})
            for record in records]


class Meter:
    """Training loss and accuracy over a window of steps, and the training speed in images per second.

    The sums stay on the device (no synchronisation per step) until a report reads them. The rate is
    refreshed at least every :data:`RATE_WINDOW_SECONDS` and restarted after each validation check, so
    it counts training steps only.
    """

    def __init__(self, device: torch.device) -> None:
        self._loss = torch.zeros((), device=device)
        self._correct = torch.zeros((), device=device)
        self.images = 0  # in the loss window
        self._window_loss = torch.zeros((), device=device)  # since the last report (the live loss line)
        self._window_images = 0
        self.images_per_second = 0.0
        self._rate_clock, self._rate_images = time.perf_counter(), 0

    def add(self, loss: torch.Tensor, correct: torch.Tensor, count: int) -> None:
        """Count one step: its mean loss, how many it got right, of how many images."""
        self._loss += loss.detach() * count
        self._window_loss += loss.detach() * count
        self._window_images += count
        self._correct += correct
        self.images += count
        self._rate_images += count

    def update_rate(self, now: float, force: bool = False) -> None:
        """Refresh the rate when its window is over (or ``force``) and start a new window."""
        if force or now - self._rate_clock >= RATE_WINDOW_SECONDS:
            self.images_per_second = self._rate_images / (now - self._rate_clock)
            self._rate_clock, self._rate_images = now, 0

    def restart(self) -> None:
        """After a validation check: a new loss window, and a rate that leaves out the check's time."""
        self._loss.zero_()
        self._correct.zero_()
        self.images = 0
        self._rate_clock, self._rate_images = time.perf_counter(), 0

    def take_window_loss(self) -> float | None:
        """The mean training loss of the steps since the previous call (None when there were none);
        starts a new window."""
        if not self._window_images:
            return None
        loss = self._window_loss.item() / self._window_images
        self._window_loss.zero_()
        self._window_images = 0
        return loss

    @property
    def loss(self) -> float:
        return self._loss.item() / max(1, self.images)

    @property
    def accuracy(self) -> float:
        return self._correct.item() / max(1, self.images)
