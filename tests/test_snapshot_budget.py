"""The snapshots' work budget: their forward passes, counted with a hook on every convolution and dense
layer of real runs, stay within the budget of the run's own training (the widest net the size gate
admits, on a one-step run; a run stopped before its first step keeps no map), and the arithmetic that
fits the check set and the map to the budget."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.networks.summary import summarize_spec, training_size_problem
from cnnviz.training.config import TrainConfig
from cnnviz.training.features import PROJECTION_IMAGES
from cnnviz.training.loop import train
from cnnviz.training.snapshot_capture import SnapshotPlan, forward_mult_adds
from cnnviz.training.snapshots import (
    CHECK_IMAGES,
    FIRST_CHECK_IMAGES,
    FREE_SNAPSHOT_MULT_ADDS,
    PROBE_FORWARDS,
    SETUP_FORWARDS,
    SNAPSHOT_WORK_SHARE,
    TRAINING_PASSES,
    fit_snapshot_work,
    snapshot_budget,
)

# Near the size gate's 2 G multiply-adds per image on MNIST: the widest net it admits, in work.
WIDEST_SPEC = "C256 C256 C256 C256 C256 F16"


@contextmanager
def counted_mult_adds() -> Iterator[list[tuple[nn.Module, bool, int]]]:
    """Every Conv2d and Linear forward in the process while open: the layer, whether it was in training
    mode (the training steps) or not (the snapshots and the test scoring), and its multiply-adds."""
    calls: list[tuple[nn.Module, bool, int]] = []

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_cell = kh * kw * module.in_channels // module.groups * module.out_channels
            cells = output.shape[0] * output.shape[-2] * output.shape[-1]
            calls.append((module, module.training, per_cell * cells))
        elif isinstance(module, nn.Linear):
            per_image = module.in_features * module.out_features
            calls.append((module, module.training, inputs[0].shape[0] * per_image))

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


def model_work(calls: list[tuple[nn.Module, bool, int]], model: nn.Module, training: bool) -> int:
    """The multiply-adds of ``model``'s own layers in ``calls`` (not those of other models, such as the
    size gate's), in training mode or not."""
    own = {id(m) for m in model.modules()}
    return sum(work for module, mode, work in calls if id(module) in own and mode == training)


@pytest.mark.slow
def test_the_widest_admitted_net_on_a_one_step_run_keeps_the_snapshots_within_the_budget(real_data_dir):
    summary = summarize_spec(WIDEST_SPEC, (1, 28, 28))
    assert training_size_problem(summary) is None and summary.total_mult_adds > 1.8e9
    batch, tested = 10, 10
    config = TrainConfig(spec=WIDEST_SPEC, epochs=1, batch_size=batch, train_subset=batch, val_fraction=0.0,
                         test_subset=tested, augment=False, device="cpu")
    with counted_mult_adds() as calls:
        result = train(config, data_dir=real_data_dir, snapshots=SnapshotPlan(None))
    mult_adds = summary.total_mult_adds
    assert forward_mult_adds(result.model, (1, 28, 28)) == mult_adds
    # the one training step's forward
    assert result.steps == 1 and model_work(calls, result.model, True) == batch * mult_adds
    snapshot_work = model_work(calls, result.model, False) - tested * mult_adds  # but the test scoring
    budget = snapshot_budget(mult_adds, batch)
    assert budget == max(FREE_SNAPSHOT_MULT_ADDS, SNAPSHOT_WORK_SHARE * TRAINING_PASSES * batch * mult_adds)
    assert 0 < snapshot_work <= budget, f"{snapshot_work / 1e9:.1f} G of {budget / 1e9:.1f} G"
    runs = result.snapshots
    # one image to count the net's multiply-adds, then two moments
    assert snapshot_work == (SETUP_FORWARDS + 2 * len(runs.check_labels)) * mult_adds
    # the 300 check images and the 2,000 map images of before: 25 times the budget and more
    assert (2 * CHECK_IMAGES + PROJECTION_IMAGES) * mult_adds > 25 * budget
    assert [s.step for s in runs.snapshots] == [0, 1] and runs.projection_before is None
    assert 1 <= len(runs.check_labels) < CHECK_IMAGES and len(runs.check_pixels) == len(runs.check_labels)
    # what is kept is still the model's own answer on those images
    mean, std = result.info.mean[0], result.info.std[0]
    with torch.no_grad():
        logits = result.model.eval()((runs.check_pixels.float() / 255 - mean) / std)
    assert torch.equal(runs.snapshots[-1].predictions, logits.argmax(dim=1))
    assert int(runs.snapshots[-1].confusion.sum()) == len(runs.check_labels)


@pytest.mark.slow
def test_a_run_stopped_before_its_first_step_keeps_no_map_it_has_no_budget_for(real_data_dir):
    spec = "C64 C64 F16"  # 30 M multiply-adds: the map's 2,000 images are 60 G, over what 0 steps allow
    stop = threading.Event()
    # 18,000 training and 2,000 validation images (the check images)
    config = TrainConfig(spec=spec, epochs=2, batch_size=64, train_subset=20_000, test_subset=10,
                         device="cpu")
    plan = SnapshotPlan(None, on_capture=lambda _runs, _model: stop.set())
    with counted_mult_adds() as calls:
        result = train(config, data_dir=real_data_dir, snapshots=plan, stop=stop)
    mult_adds = summarize_spec(spec, (1, 28, 28)).total_mult_adds
    runs = result.snapshots
    assert result.stopped and result.steps == 0 and model_work(calls, result.model, True) == 0
    # planned for two epochs of 18,000 images, the map fitted beside more than 100 check images ...
    trained = 2 * (18_000 // 64 * 64)
    planned = fit_snapshot_work(mult_adds, trained, 24, CHECK_IMAGES, PROJECTION_IMAGES, False)
    assert planned.map_images == PROJECTION_IMAGES
    assert len(runs.check_labels) == planned.check_images > FIRST_CHECK_IMAGES
    # ... but with no step taken, only the step-0 snapshot's check images were scored, no map
    assert runs.projection_before is None and runs.projection_indices is None
    snapshot_work = model_work(calls, result.model, False)  # no test scoring before a first step
    assert snapshot_work == (SETUP_FORWARDS + len(runs.check_labels)) * mult_adds
    assert snapshot_work <= snapshot_budget(mult_adds, 0)


def test_without_a_budget_the_plan_gets_everything_it_asks_for():
    work = fit_snapshot_work(2 * 10**9, 8, 2, CHECK_IMAGES, PROJECTION_IMAGES, True, share=None)
    assert (work.check_images, work.map_images) == (CHECK_IMAGES, PROJECTION_IMAGES)
    assert work.budget_forwards is None
    assert "share" in SnapshotPlan(None, work_share=0).problem((1, 28, 28))
    assert SnapshotPlan(None, work_share=None).problem((1, 28, 28)) is None


@settings(max_examples=60, deadline=None)
@given(mult_adds=st.integers(10**4, 2 * 10**9), trained=st.integers(1, 2 * 10**6), moments=st.integers(2, 25),
       check=st.integers(1, 600), map_images=st.integers(0, 3000), probe=st.booleans())
def test_the_fitted_work_is_within_the_budget_and_leaves_nothing_that_would_fit(
        mult_adds, trained, moments, check, map_images, probe):
    work = fit_snapshot_work(mult_adds, trained, moments, check, map_images, probe)
    allowed = snapshot_budget(mult_adds, trained) // mult_adds
    assert work.budget_forwards == allowed
    assert 1 <= work.check_images <= check and work.map_images in (0, map_images)
    per_moment = PROBE_FORWARDS if probe else 0
    used = SETUP_FORWARDS + moments * (work.check_images + per_moment) + work.map_images
    if work.check_images > 1:
        assert used <= allowed  # within the budget (a single check image is the floor, whatever it costs)
    if work.check_images < check:  # one more check image per moment would not fit
        assert used + moments > allowed
    first = min(check, FIRST_CHECK_IMAGES)
    if map_images and not work.map_images:  # the map did not fit beside the first check images
        left = allowed - SETUP_FORWARDS - moments * per_moment
        first_work = SETUP_FORWARDS + moments * (max(1, min(first, left // moments)) + per_moment)
        assert first_work + map_images > allowed
