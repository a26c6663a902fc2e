"""Figures of the training page draw the run's own numbers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from cnnviz.training.progress import HistoryPoint
from cnnviz.ui.training.figures import filter_grid, learning_curves

HISTORY = [
    HistoryPoint(step=10, epoch=0.5, train_loss=1.2, train_accuracy=0.61, lr=0.1, elapsed=1.0, val_loss=0.9,
                 val_accuracy=0.70),
    HistoryPoint(step=20, epoch=1.0, train_loss=0.6, train_accuracy=0.83, lr=0.05, elapsed=2.0, val_loss=0.5,
                 val_accuracy=0.86),
]


def test_learning_curves_put_loss_left_and_accuracy_right() -> None:
    figure = learning_curves(HISTORY, epochs=2)
    traces = {trace.name: trace for trace in figure.data}
    assert set(traces) == {"training loss", "validation loss", "training accuracy", "validation accuracy"}
    assert list(traces["validation accuracy"].y) == [0.70, 0.86]
    assert list(traces["training loss"].x) == [0.5, 1.0]
    assert traces["training loss"].xaxis == "x" and traces["training accuracy"].xaxis == "x2"
    assert traces["training accuracy"].yaxis == "y2" and figure.layout.yaxis2.tickformat == ".0%"
    assert tuple(figure.layout.xaxis.range) == (0, 2) == tuple(figure.layout.xaxis2.range)
    assert figure.layout.xaxis.domain[1] < figure.layout.xaxis2.domain[0]  # side by side, not overlapping
    # the accuracy labels sit right of their plot, not in the narrow gap over the loss plot (800 px)
    assert figure.layout.yaxis2.side == "right" and figure.layout.margin.r >= 40
    assert [a.text for a in figure.layout.annotations] == ["Loss", "Accuracy"]


def test_learning_curves_without_validation_show_training_only() -> None:
    history = [replace(h, val_loss=None, val_accuracy=None) for h in HISTORY]
    assert {t.name for t in learning_curves(history).data} == {"training loss", "training accuracy"}


def test_filter_grid_draws_each_filter_in_its_cell() -> None:
    filters = torch.rand(10, 1, 3, 3)  # (out, C, k, k) scaled 0..1
    z = np.asarray(filter_grid(filters, per_row=4).data[0].z)
    assert z.shape == (3 * 4, 4 * 4, 3)  # 3 rows of 4 cells, each 3 px + a 1 px gap
    np.testing.assert_array_equal(z[4:7, 4:7, 0], (filters[5, 0] * 255).numpy().astype(np.uint8))
    assert (z[3, :, :] == 255).all()  # the white gap under the first row
