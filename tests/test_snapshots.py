"""A run's snapshots: the schedule, every number recomputed from the weights kept at one snapshot (the
model's own forward with hooks, autograd for the Grad-CAM), the same run with and without them, the
live copies of a job, the checkpoint round trip and the size budget."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.datasets.files import load_dataset
from cnnviz.images.inspection import last_conv_layer
from cnnviz.training.checkpoint import load_checkpoint, save_checkpoint
from cnnviz.training.jobs import TrainingJob
from cnnviz.training.loop import TrainResult, train
from cnnviz.training.recipes import recipe
from cnnviz.training.saving import weights_bytes
from cnnviz.training.snapshot_capture import SnapshotPlan
from cnnviz.training.snapshots import (
    CHECK_IMAGES,
    PROBE_CHANNELS,
    PROBE_UNITS,
    SNAPSHOT_BUDGET_BYTES,
    SNAPSHOT_COUNT,
    RunSnapshots,
    snapshot_steps,
)
from tests.test_cli import cli

PROBE_INDEX = 7


@dataclass
class Kept:
    """The model as it was at one snapshot: a deep copy, and its parameters' gradients then."""

    step: int
    model: nn.Module | None = None
    grads: dict[str, torch.Tensor | None] | None = None

    def __call__(self, snapshots: RunSnapshots, model: nn.Module) -> None:
        if snapshots.snapshots[-1].step == self.step:
            self.model = copy.deepcopy(model).cpu().eval()
            self.grads = {name: None if p.grad is None else p.grad.detach().cpu().clone()
                          for name, p in model.named_parameters()}


def _probe(dataset: str, data_dir) -> tuple[torch.Tensor, str]:
    test = load_dataset(dataset, "test", data_dir)
    return test.images[PROBE_INDEX], f"test image {PROBE_INDEX}"


def _run(config, data_dir, keep_step: int) -> tuple[TrainResult, Kept]:
    kept = Kept(keep_step)
    pixels, label = _probe(config.dataset, data_dir)
    result = train(config, data_dir=data_dir, snapshots=SnapshotPlan(pixels, label, on_capture=kept))
    assert kept.model is not None, "no snapshot was taken at the kept step"
    return result, kept


@pytest.fixture(scope="module")
def mnist_run(real_data_dir) -> tuple[TrainResult, Kept]:
    # 16 steps; 120 validation images are the check images
    config = recipe("mnist_fast", train_subset=1200, batch_size=64, test_subset=500, device="cpu")
    return _run(config, real_data_dir, keep_step=5)


def test_the_schedule_is_dense_at_the_start_and_ends_on_the_last_step():
    steps = snapshot_steps(1000)
    assert len(steps) == SNAPSHOT_COUNT and steps[0] == 0 and steps[-1] == 1000
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert all(gap > 0 for gap in gaps) and gaps[0] < gaps[len(gaps) // 2] < gaps[-1]
    assert snapshot_steps(5) == [0, 1, 2, 3, 4, 5]  # a short run: every step
    with pytest.raises(ValueError):
        snapshot_steps(0)


def _normalized(pixels: torch.Tensor, info) -> torch.Tensor:
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    return (pixels.float() / 255 - mean) / std


def _answer(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The logits the model answers with: its own forward, and the mirror image's when it was trained
    with mirror test-time augmentation (the shipped presets here use no shift augmentation)."""
    assert not model.tta.shift
    logits = model(x)
    return (logits + model(x.flip(-1))) / 2 if model.tta.mirror else logits


def _hooked_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's output (features then classifier) from forward hooks on the model's own
    nn.Sequential forward; cloned, since an in-place ReLU overwrites the output before it."""
    outputs: list[torch.Tensor] = []
    layers = [*model.features, *model.classifier]
    handles = [layer.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach().clone()))
               for layer in layers]
    try:
        with torch.no_grad():
            model.classifier(model.features(x))
    finally:
        for handle in handles:
            handle.remove()
    assert len(outputs) == len(layers)
    return outputs


def _grad_cam(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """Grad-CAM from first principles: the last conv block's output, the class logit's gradient by
    autograd, channel weights = its spatial mean, ReLU of the weighted sum, bilinear to the input, /max."""
    layer = last_conv_layer(model)
    with torch.enable_grad():
        hidden = x
        for child in model.features[:layer + 1]:
            hidden = child(hidden.clone())
        feature_map = hidden.detach().requires_grad_(True)
        logits = model.classifier(model.features[layer + 1:](feature_map))
        (gradient,) = torch.autograd.grad(logits[0, target], feature_map)
    weights = gradient[0].mean(dim=(1, 2))
    coarse = F.relu((weights[:, None, None] * feature_map.detach()[0]).sum(dim=0))
    up = F.interpolate(coarse[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return up / up.max() if up.max() > 0 else torch.zeros_like(up)


def _check_recomputed(result: TrainResult, kept: Kept) -> None:
    runs = result.snapshots
    snap = next(s for s in runs.snapshots if s.step == kept.step)
    model, info = kept.model, result.info
    children = [*model.features, *model.classifier]
    # the filters: the first convolution that learns (a frozen whitening layer before it is skipped)
    convs = [(n, m) for n, c in enumerate(model.features) for m in c.modules() if isinstance(m, nn.Conv2d)]
    learned = [(n, m) for n, m in convs if m.weight.requires_grad]
    assert runs.filters_layer == learned[0][0]
    torch.testing.assert_close(snap.filters, learned[0][1].weight.detach(), rtol=0, atol=0)
    # the probe: every layer's maps (first channels, float16), the answer, the Grad-CAM
    x = _normalized(runs.probe_pixels[None], info)
    outputs = _hooked_outputs(model, x)
    assert len(snap.probe.maps) == len(outputs) == len(runs.map_layers)
    for kept_map, output, name in zip(snap.probe.maps, outputs, runs.map_layers, strict=True):
        expected = output[0][:PROBE_CHANNELS if output.dim() == 4 else PROBE_UNITS]
        assert kept_map.dtype == torch.float16 and kept_map.shape == expected.shape, name
        torch.testing.assert_close(kept_map.float(), expected, rtol=2**-10, atol=1e-5, msg=name)
    with torch.no_grad():
        probabilities = torch.softmax(_answer(model, x)[0], dim=0)
    torch.testing.assert_close(snap.probe.probabilities, probabilities, rtol=0, atol=1e-5)
    cam = _grad_cam(model, x, int(probabilities.argmax()))
    torch.testing.assert_close(snap.probe.cam, cam, rtol=0, atol=1e-5)
    # the check images: predictions, top-3, confusion matrix
    with torch.no_grad():
        check = torch.softmax(model(_normalized(runs.check_pixels, info)), dim=1)  # one view each
    top_p, top = check.topk(3, dim=1)
    assert torch.equal(snap.predictions, check.argmax(dim=1))
    assert torch.equal(snap.top3, top)
    torch.testing.assert_close(snap.top3_probabilities, top_p, rtol=0, atol=1e-5)
    k = len(info.classes)
    for true, predicted in [(0, 0), (1, 7), (3, 5), (9, 4)]:
        count = int(((runs.check_labels == true) & (check.argmax(dim=1) == predicted)).sum())
        assert int(snap.confusion[true, predicted]) == count
    assert snap.confusion.shape == (k, k) and int(snap.confusion.sum()) == len(runs.check_labels)
    # the norms of every layer with weights, and of their gradients at that step
    named = dict(model.named_parameters())
    for i, name in enumerate(runs.layers):
        number = int(name.split(" · ")[0])
        assert name == f"{number} · {type(children[number]).__name__}"
        params = list(children[number].parameters())
        expected = torch.sqrt(sum((p.detach() ** 2).sum() for p in params))
        torch.testing.assert_close(snap.weight_norms[i], expected, rtol=1e-5, atol=1e-6)
        part = "features" if number < len(model.features) else "classifier"
        index = number if part == "features" else number - len(model.features)
        grads = [kept.grads[n] for n in named if n.startswith(f"{part}.{index}.")]
        expected_grad = torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None) + torch.zeros(()))
        torch.testing.assert_close(snap.grad_norms[i], expected_grad, rtol=1e-5, atol=1e-6)


def test_a_snapshot_is_what_the_weights_of_its_step_give(mnist_run):
    result, kept = mnist_run
    _check_recomputed(result, kept)
    runs = result.snapshots
    assert [s.step for s in runs.snapshots] == snapshot_steps(result.steps)
    assert runs.check_split == "val" and runs.probe_label == f"test image {PROBE_INDEX}"
    assert runs.snapshots[0].train_loss is None and all(s.train_loss > 0 for s in runs.snapshots[1:])
    assert torch.count_nonzero(runs.snapshots[0].grad_norms) == 0
    assert torch.all(runs.snapshots[-1].grad_norms > 0)


def test_the_check_images_are_a_seeded_set_of_the_split_and_step_0_keeps_the_map(mnist_run, real_data_dir):
    result, _ = mnist_run
    runs = result.snapshots
    again, before = _run(result.config, real_data_dir, keep_step=0)
    assert torch.equal(again.snapshots.check_indices, runs.check_indices)
    # the map's images: 200 test images of each class, their features = what the last Linear receives
    test = load_dataset("mnist", "test", real_data_dir)
    indices = runs.projection_indices
    assert torch.equal(indices, again.snapshots.projection_indices) and len(indices.unique()) == 2000
    assert torch.bincount(test.labels[indices], minlength=10).tolist() == [200] * 10
    received: list[torch.Tensor] = []
    last = before.model.classifier[-1]
    handle = last.register_forward_pre_hook(lambda _m, args: received.append(args[0].detach().clone()))
    with torch.no_grad():
        before.model(_normalized(test.images[indices], result.info))
    handle.remove()
    torch.testing.assert_close(again.snapshots.projection_before, received[0], rtol=1e-5, atol=1e-5)
    assert runs.projection_before.shape == (2000, 128)
    assert len(set(runs.check_indices.tolist())) == len(runs.check_indices) == 120  # 120 val images
    # the validation images: the last tenth of the seeded shuffle of the training subset
    full = load_dataset("mnist", "train", real_data_dir)
    order = torch.randperm(1200, generator=torch.Generator().manual_seed(result.config.seed))
    val = order[1200 - 120:]
    assert torch.equal(runs.check_pixels, full.images[:1200][val][runs.check_indices])
    assert torch.equal(runs.check_labels, full.labels[:1200][val][runs.check_indices])


def test_snapshots_do_not_change_the_run(real_data_dir):
    # dropout and BatchNorm: the generator's draws and the running statistics must stay the run's own
    config = recipe("mnist_fast", train_subset=800, batch_size=64, test_subset=500, device="cpu",
                    spec="C8n M D0.25 F32 D0.5")
    pixels, label = _probe("mnist", real_data_dir)
    with_snapshots = train(config, data_dir=real_data_dir, snapshots=SnapshotPlan(pixels, label))
    without = train(config, data_dir=real_data_dir)
    assert len(with_snapshots.snapshots.snapshots) > 5 and without.snapshots is None
    for (name, a), b in zip(with_snapshots.model.state_dict().items(), without.model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    assert with_snapshots.test_accuracy == without.test_accuracy


class StopAfter:
    """A stop flag that is set once the run has asked it ``steps + 1`` times: the run stops after
    ``steps`` steps (the loop asks before each one)."""

    def __init__(self, steps: int) -> None:
        self.steps, self.asked = steps, 0

    def is_set(self) -> bool:
        self.asked += 1
        return self.asked > self.steps


def test_a_stopped_run_has_a_snapshot_where_it_stopped(real_data_dir):
    config = recipe("mnist_fast", train_subset=2000, batch_size=64, test_subset=500, device="cpu")  # 28 steps
    pixels, label = _probe("mnist", real_data_dir)
    result = train(config, stop=StopAfter(11), data_dir=real_data_dir, snapshots=SnapshotPlan(pixels, label))
    assert result.stopped and result.steps == 11 and 11 not in snapshot_steps(28)
    steps = [s.step for s in result.snapshots.snapshots]
    assert steps == [*[s for s in snapshot_steps(28) if s < 11], 11]


def test_the_job_hands_the_page_copies_of_the_snapshots_taken_so_far(real_data_dir):
    config = recipe("mnist_fast", train_subset=1200, batch_size=128, test_subset=500, device="cpu")
    pixels, label = _probe("mnist", real_data_dir)
    seen: list[tuple[int, bool]] = []
    job: TrainingJob

    def watch(snapshots: RunSnapshots, _model: nn.Module) -> None:
        live = job.snapshot().snapshots  # on the training thread, as the page would read it meanwhile
        seen.append((len(live.snapshots), live.snapshots is snapshots.snapshots))

    plan = SnapshotPlan(pixels, label, on_capture=watch)
    job = TrainingJob(config, data_dir=real_data_dir, snapshot_plan=plan)
    assert job.start()
    job.join(120)
    done = job.snapshot()
    assert done.status == "done" and done.snapshots is done.result.snapshots
    count = len(done.snapshots.snapshots)
    assert count == len(snapshot_steps(done.result.steps))
    assert seen == [(n, False) for n in range(1, count + 1)]


def test_snapshots_round_trip_through_a_checkpoint(mnist_run, tmp_path):
    result, _ = mnist_run
    path = save_checkpoint(tmp_path / "m.pt", result.model, result.metadata("m"), snapshots=result.snapshots)
    payload = torch.load(path, weights_only=True)  # plain types and tensors only
    assert "snapshots" in payload and "snapshots" not in payload["metadata"]
    loaded = load_checkpoint(path)
    assert loaded.snapshot_problem is None
    a, b = result.snapshots, loaded.snapshots
    assert (a.filters_layer, a.layers, a.map_layers, a.probe_label, a.check_split) == \
        (b.filters_layer, b.layers, b.map_layers, b.probe_label, b.check_split)
    for name in ("probe_pixels", "check_indices", "check_labels", "check_pixels"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert len(a.snapshots) == len(b.snapshots) and b.nbytes() == a.nbytes()
    for x, y in zip(a.snapshots, b.snapshots, strict=True):
        assert (x.step, x.epoch, x.train_loss) == (y.step, y.epoch, y.train_loss)
        for name in ("filters", "confusion", "predictions", "top3", "top3_probabilities", "weight_norms",
                     "grad_norms"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
        assert all(torch.equal(m, n) for m, n in zip(x.probe.maps, y.probe.maps, strict=True))
        assert torch.equal(x.probe.cam, y.probe.cam)
        assert torch.equal(x.probe.probabilities, y.probe.probabilities)
    plain = save_checkpoint(tmp_path / "plain.pt", result.model, result.metadata("plain"))
    assert load_checkpoint(plain).snapshots is None and load_checkpoint(plain).snapshot_problem is None
    assert weights_bytes(result.model, result.snapshots) == weights_bytes(result.model) + a.nbytes()


@pytest.mark.parametrize("damage", ["not a record", "confusion as text", "too few predictions", "no version"])
def test_a_malformed_snapshot_part_still_loads_the_model(mnist_run, tmp_path, damage):
    result, _ = mnist_run
    path = save_checkpoint(tmp_path / "m.pt", result.model, result.metadata("m"), snapshots=result.snapshots)
    payload = torch.load(path, weights_only=True)
    part = payload["snapshots"]
    if damage == "not a record":
        payload["snapshots"] = [1, 2, 3]
    elif damage == "confusion as text":
        part["snapshots"][2]["confusion"] = "lots"
    elif damage == "too few predictions":
        part["snapshots"][-1]["predictions"] = part["snapshots"][-1]["predictions"][:-1]
    else:
        del part["version"]
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    assert loaded.snapshots is None
    assert loaded.snapshot_problem.startswith("m.pt's training snapshots cannot be read")
    for a, b in zip(loaded.model.state_dict().values(), result.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _budget(preset: str, data_dir, keep_step: int | None = None) -> tuple[TrainResult, Kept | None]:
    """A short run's snapshots: every snapshot of a run has the same size, so the budget bounds the
    shared part plus :data:`SNAPSHOT_COUNT` of them, whatever the run's length. With ``keep_step``, the
    model as it was at that snapshot too."""
    config = recipe(preset, train_subset=300, batch_size=100, val_fraction=0.0, test_subset=500, device="cpu")
    pixels, label = _probe(config.dataset, data_dir)
    kept = None if keep_step is None else Kept(keep_step)
    # without the work budget, which would score fewer check images on so short a run: the bytes of a
    # run that keeps them all
    plan = SnapshotPlan(pixels, label, work_share=None, on_capture=kept)
    result = train(config, data_dir=data_dir, snapshots=plan)
    runs = result.snapshots
    assert runs.check_split == "test" and len(runs.check_labels) == CHECK_IMAGES
    per_snapshot = {s.nbytes() for s in runs.snapshots}
    assert len(per_snapshot) == 1
    full = runs.nbytes() + (SNAPSHOT_COUNT - len(runs.snapshots)) * per_snapshot.pop()
    assert full <= SNAPSHOT_BUDGET_BYTES, f"{preset}: {full / 1e6:.1f} MB"
    return result, kept


def test_the_mnist_preset_stays_within_the_budget(real_data_dir):
    _budget("mnist_fast", real_data_dir)


@pytest.mark.slow
def test_the_cifar10_preset_stays_within_the_budget_and_recomputes(real_data_dir):
    # one run for both: the bytes of its snapshots, and their numbers against the weights kept at step 2
    result, kept = _budget("cifar10_fast", real_data_dir, keep_step=2)
    assert result.snapshots.filters_layer == 2  # layer 0 is the frozen whitening conv, 1 its ReLU
    assert kept.model is not None, "no snapshot was taken at the kept step"
    assert not kept.model.features[0].weight.requires_grad and kept.model.tta.mirror
    _check_recomputed(result, kept)


def test_train_snapshots_on_the_command_line_are_kept_in_the_checkpoint(real_data_dir, tmp_path, capsys):
    out = tmp_path / "snap.pt"
    quick = ("--dataset", "mnist", "--preset", "mnist_fast", "--train-subset", "700", "--batch-size", "64",
             "--device", "cpu", "--data-dir", str(real_data_dir), "--set", "test_subset=200")
    result = cli(capsys, "train", *quick, "--snapshots", "--probe", "7", "--out", str(out))
    assert result.returncode == 0, result.stderr
    loaded = load_checkpoint(out)
    runs = loaded.snapshots
    label = int(load_dataset("mnist", "test", real_data_dir).labels[7])
    assert runs.probe_label == f"test image 7 (a {label})" and len(runs.snapshots) == len(snapshot_steps(9))
    assert f"snapshots: {len(runs.snapshots)} of test image 7 (a {label}), {runs.nbytes() / 1e6:.2f} MB" \
        in result.stdout
    wrong = cli(capsys, "train", *quick, "--snapshots", "--probe", "10000")
    assert wrong.returncode == 2 and "The probe must be a test image 0 to 9999" in wrong.stderr


@pytest.mark.bench
def test_bench_train_reports_the_snapshot_overhead(real_data_dir, capsys):
    result = cli(capsys, "bench", "train", "--dataset", "mnist", "--target", "0.05", "--epochs", "1",
                 "--train-subset", "700", "--batch-size", "64", "--device", "cpu", "--set", "test_subset=200",
                 "--data-dir", str(real_data_dir), "--snapshots", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["snapshots"] == len(snapshot_steps(10))  # 700 images, no validation: 10 steps
    without, with_snapshots = report["seconds"], report["seconds_with_snapshots"]
    overhead = 100 * (with_snapshots - without) / without
    rounding = 100 * 0.01 / without * (1 + with_snapshots / without) + 0.05
    assert abs(report["snapshot_overhead_percent"] - overhead) <= rounding  # both times are rounded to 0.01 s
    assert report["snapshot_mb"] > 0 and 0 < report["capture_seconds"] < report["seconds_with_snapshots"]


def test_a_plan_that_does_not_fit_the_run_is_one_sentence(real_data_dir):
    colour = torch.zeros(3, 32, 32, dtype=torch.uint8)
    assert SnapshotPlan(colour).problem((3, 32, 32)) is None
    assert SnapshotPlan(colour).problem((1, 28, 28)) == \
        "The probe image must be 1x28x28 pixels (0-255) like the dataset's images."
    assert "at least two moments" in SnapshotPlan(None, count=1).problem((1, 28, 28))
    assert "check image" in SnapshotPlan(None, check_images=0).problem((1, 28, 28))
    config = recipe("mnist_fast", train_subset=100, device="cpu")
    with pytest.raises(ValueError, match="The probe image must be 1x28x28"):
        train(config, data_dir=real_data_dir, snapshots=SnapshotPlan(colour))
