"""The runs of this session on the Train page: one record each, for the Run history table, the
comparison chart, saving, and the predict page's list of models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from cnnviz.datasets.files import dataset_info
from cnnviz.networks.build import SpecNet
from cnnviz.training.config import TrainConfig
from cnnviz.training.loop import TrainResult
from cnnviz.training.progress import HistoryPoint
from cnnviz.training.snapshots import RunSnapshots

ACCURACY_COLUMNS = ("train acc", "val acc", "test acc")  # shown as percentages
# The settings every Run history row shows (column: the TrainConfig field); any other setting gets a
# column of its own once two runs differ in it.
SETTING_COLUMNS = {"optimizer": "optimizer", "lr": "lr", "batch": "batch_size", "images": "train_subset",
                   "smoothing": "label_smoothing", "seed": "seed"}


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
    window_losses: tuple[tuple[float, float], ...] = ()  # (epoch, training loss of a few steps)
    # The test set's answers, so the run's confusion matrix and mistakes can be shown again after
    # other runs (10,000 int64 each: 80 kB).
    test_predictions: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None

    @classmethod
    def of(cls, result: TrainResult, number: int,
           window_losses: Sequence[tuple[float, float]] = ()) -> RunRecord:
        """The record of a finished run, the ``number``-th of this session (``window_losses``: the
        live curves' (epoch, loss) line, which the trainer's history does not keep)."""
        last = result.history[-1] if result.history else None
        return cls(
            label=f"#{number}", dataset=result.info.title, spec=result.model.spec,
            params=sum(p.numel() for p in result.model.parameters()),
            epochs=last.epoch if last else 0.0, train_accuracy=last.train_accuracy if last else None,
            val_accuracy=last.val_accuracy if last else None, test_accuracy=result.test_accuracy,
            seconds=round(result.seconds, 1), device=result.device, stopped=result.stopped,
            history=tuple(result.history), model=result.model, metadata=result.metadata(),
            snapshots=result.snapshots, window_losses=tuple(window_losses),
            test_predictions=result.test_predictions, test_labels=result.test_labels,
        )

    def settings(self) -> dict[str, Any]:
        """The run's training settings, as its checkpoint metadata keeps them (TrainConfig fields)."""
        return dict(self.metadata.get("training", {}))

    def as_result(self) -> TrainResult:
        """The run as the :class:`TrainResult` it came from, for the Train page's results block."""
        config = TrainConfig(**self.settings())
        return TrainResult(
            model=self.model, config=config, info=dataset_info(config.dataset), history=list(self.history),
            test_accuracy=self.test_accuracy, test_predictions=self.test_predictions,
            test_labels=self.test_labels, stopped=self.stopped, seconds=self.seconds,
            steps=int(self.metadata.get("steps", 0)), device=self.device, snapshots=self.snapshots,
        )

    def table_row(self) -> dict[str, Any]:
        """The run's row of the Run history table, accuracies in percent."""
        percent = {key: None if value is None else value * 100 for key, value in zip(
            ACCURACY_COLUMNS, (self.train_accuracy, self.val_accuracy, self.test_accuracy), strict=True)}
        return {"run": self.label, "dataset": self.dataset, "spec": self.spec, "params": self.params,
                # A stopped run's 1.1544 epochs read 1.15.
                "epochs": round(self.epochs, 2), **percent, "time (s)": self.seconds, "device": self.device,
                "stopped": self.stopped}


def history_rows(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """The Run history table: each run's row, its accuracies right after its label, the
    :data:`SETTING_COLUMNS` after its spec, and a column for every other setting in which two runs differ
    ("images": None means all of them)."""
    settings = [run.settings() for run in runs]
    shown = set(SETTING_COLUMNS.values()) | {"dataset", "spec", "epochs"}  # the last three have columns
    differing = [f.name for f in fields(TrainConfig) if f.name not in shown
                 and len({repr(s.get(f.name)) for s in settings}) > 1]
    rows = []
    for run, setting in zip(runs, settings, strict=True):
        row = run.table_row()
        after_spec = {column: setting.get(name) for column, name in SETTING_COLUMNS.items()}
        after_spec["images"] = "all" if after_spec["images"] is None else f"{after_spec['images']:,}"
        # As text: a setting that is None in one run and a number in another stays one column type.
        after_spec.update({name.replace("_", " "): "" if setting.get(name) is None else str(setting.get(name))
                           for name in differing})
        accuracies = {k: row.pop(k) for k in ACCURACY_COLUMNS}
        keys = list(row)
        cut = keys.index("params") + 1
        # The accuracies right after the run's label: after a long spec and the settings they hid behind
        # the table's horizontal scrolling, even at 1400 px.
        rows.append({"run": row["run"], **accuracies, **{k: row[k] for k in keys[1:cut]}, **after_spec,
                     **{k: row[k] for k in keys[cut:]}})
    return rows
