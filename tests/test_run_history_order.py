"""The Run history table shows the accuracies before the spec and the settings (they hid behind the
table's horizontal scrolling at 1400 px with a long spec)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cnnviz.training.config import TrainConfig
from cnnviz.training.loop import train
from cnnviz.ui.training.runs import ACCURACY_COLUMNS, RunRecord, history_rows

LONG = TrainConfig(spec="C8 C8 C8 C8 C8 C8 M F16", epochs=1, batch_size=64, train_subset=256, test_subset=200,
                   val_fraction=0.25, seed=1)


@pytest.mark.slow  # two real runs of 4 steps each: about 6 s on the shared 2-core CPU
def test_the_accuracies_come_right_after_the_run_label(real_data_dir) -> None:
    first = train(LONG, data_dir=real_data_dir, cpu_threads=1)
    second = train(replace(LONG, lr=LONG.lr / 2), data_dir=real_data_dir, cpu_threads=1)
    runs = [RunRecord.of(first, 1), RunRecord.of(second, 2)]
    rows = history_rows(runs)
    for row, result in zip(rows, (first, second), strict=True):
        assert list(row)[:4] == ["run", *ACCURACY_COLUMNS]
        assert row["test acc"] == pytest.approx(result.test_accuracy * 100)
        assert row["val acc"] == pytest.approx(result.history[-1].val_accuracy * 100)
        assert row["train acc"] == pytest.approx(result.history[-1].train_accuracy * 100)
        # nothing lost on the way: the spec, the settings and the time are still there
        assert row["spec"] == result.model.spec and {"optimizer", "lr", "batch", "time (s)"} <= set(row)
    assert [row["lr"] for row in rows] == [LONG.lr, LONG.lr / 2]
