"""Gradient flow: a deep plain net's first layers get vanishing gradients, BatchNorm's do not, and the
figure draws exactly the snapshots' numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnviz.training.config import TrainConfig
from cnnviz.training.loop import train
from cnnviz.training.snapshot_capture import SnapshotPlan
from cnnviz.training.snapshots import RunSnapshots
from cnnviz.ui.training.gradient_view import gradient_flow_figure

PLAIN = "C8 C8 C8 C8 C8 C8 C8 C8 F32"
NORMED = "C8n C8n C8n C8n C8n C8n C8n C8n F32"


def _run(spec: str, data_dir) -> tuple[RunSnapshots, list[tuple[float, float]]]:
    """A few real SGD steps on 1,000 MNIST images with snapshots; and, for each snapshot, the L2 norms
    of the first and last layers' gradients read from the model's own ``.grad`` at that moment."""
    seen: list[tuple[float, float]] = []

    def grads(_: RunSnapshots, model: nn.Module) -> None:
        layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        norms = []
        for layer in (layers[0], layers[-1]):
            parts = [p.grad for p in layer.parameters() if p.grad is not None]
            norms.append(float(torch.cat([g.flatten() for g in parts]).norm()) if parts else 0.0)
        seen.append((norms[0], norms[1]))

    config = TrainConfig(spec=spec, epochs=1, batch_size=64, train_subset=1_000, test_subset=100, lr=0.05,
                         schedule="constant", augment=False, seed=0)
    plan = SnapshotPlan(None, count=8, check_images=50, projection_images=10, on_capture=grads)
    result = train(config, data_dir=data_dir, cpu_threads=1, snapshots=plan)
    assert result.snapshots is not None
    return result.snapshots, seen


def _first_over_last(run: RunSnapshots) -> list[float]:
    """The first layer's gradient norm over the last layer's, at every snapshot after step 0."""
    return [float(s.grad_norms[0] / s.grad_norms[-1]) for s in run.snapshots[1:]]


@pytest.mark.slow
def test_a_deep_plain_net_s_first_layer_gets_a_vanishing_gradient_and_batchnorm_s_does_not(real_data_dir):
    plain, plain_grads = _run(PLAIN, real_data_dir)
    normed, normed_grads = _run(NORMED, real_data_dir)
    for run, grads in ((plain, plain_grads), (normed, normed_grads)):
        assert run.layers[0].endswith("Conv2d") and run.layers[-1].endswith("Linear")
        for snapshot, (first, last) in zip(run.snapshots[1:], grads[1:], strict=True):
            assert float(snapshot.grad_norms[0]) == pytest.approx(first, rel=1e-5)  # the snapshot's own
            assert float(snapshot.grad_norms[-1]) == pytest.approx(last, rel=1e-5)  # = autograd's
    # measured: plain 1e-4 to 5e-4 at every snapshot, BatchNorm 0.2 to 2
    assert max(_first_over_last(plain)) < 3e-3
    assert min(_first_over_last(normed)) > 3e-2
    assert sorted(_first_over_last(normed))[3] > 100 * sorted(_first_over_last(plain))[3]  # medians


def test_the_figure_draws_the_snapshots_own_numbers(real_data_dir):
    run, _ = _run("C8n M C8 F16", real_data_dir)
    figure = gradient_flow_figure(run)
    grads = [t for t in figure.data if t.yaxis == "y"]
    weights = [t for t in figure.data if t.yaxis == "y2"]
    assert [t.name for t in weights] == run.layers and [t.name for t in grads] == run.layers
    steps = [s.step for s in run.snapshots]
    for i, (grad, weight) in enumerate(zip(grads, weights, strict=True)):
        assert list(weight.x) == steps
        assert list(weight.y) == pytest.approx([float(s.weight_norms[i]) for s in run.snapshots], rel=1e-6)
        assert list(grad.x) == steps[1:]  # step 0 took no gradient, and a log scale has no 0
        assert list(grad.y) == pytest.approx([float(s.grad_norms[i]) for s in run.snapshots[1:]], rel=1e-6)
    assert figure.layout.yaxis.type == "log" and figure.layout.yaxis2.type == "log"
    colours = [t.line.color for t in weights]
    assert len(set(colours)) == len(colours)  # one shade per layer, input to output
