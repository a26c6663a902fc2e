"""The runs of this session on the Train page: one record each, for the Run history table, the
comparison chart, saving, and the predict page's list of models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnviz.networks.build import SpecNet
from cnnviz.training.loop import TrainResult
from cnnviz.training.progress import HistoryPoint
from cnnviz.training.snapshots import RunSnapshots

ACCURACY_COLUMNS = ("train acc", "val acc", "test acc")  # shown as percentages


@dataclass(frozen=True)
class RunRecord:
    """A finished run of this session: its row of the Run history table, its curves, and what saving
    it as a model needs."""

    label: str  # "#1", "#2", ... in the order the runs finished
    dataset: str  # the dataset's title
    spec: str
    params: int
    epochs: float  # epochs trained (fewer than planned when stopped)
    train_accuracy: float | None
    val_accuracy: float | None
    test_accuracy: float | None
    seconds: float
    device: str
    stopped: bool
    history: tuple[HistoryPoint, ...]
    model: SpecNet
    metadata: dict[str, Any]  # the checkpoint metadata of the run
    snapshots: RunSnapshots | None = None  # what the time machine replays; None for a run without them

    @classmethod
    def of(cls, result: TrainResult, number: int) -> RunRecord:
        """The record of a finished run, the ``number``-th of this session."""
        last = result.history[-1] if result.history else None
        return cls(
            label=f"#{number}", dataset=result.info.title, spec=result.model.spec,
            params=sum(p.numel() for p in result.model.parameters()),
            epochs=last.epoch if last else 0.0, train_accuracy=last.train_accuracy if last else None,
            val_accuracy=last.val_accuracy if last else None, test_accuracy=result.test_accuracy,
            seconds=round(result.seconds, 1), device=result.device, stopped=result.stopped,
            history=tuple(result.history), model=result.model, metadata=result.metadata(),
            snapshots=result.snapshots,
        )

    def table_row(self) -> dict[str, Any]:
        """The run's row of the Run history table, accuracies in percent."""
        percent = {key: None if value is None else value * 100 for key, value in zip(
            ACCURACY_COLUMNS, (self.train_accuracy, self.val_accuracy, self.test_accuracy), strict=True)}
        return {"run": self.label, "dataset": self.dataset, "spec": self.spec, "params": self.params,
                # A stopped run's 1.1544 epochs read 1.15.
                "epochs": round(self.epochs, 2), **percent, "time (s)": self.seconds, "device": self.device,
                "stopped": self.stopped}
