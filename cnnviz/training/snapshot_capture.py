"""Taking a run's snapshots while it trains (what they hold: :mod:`cnnviz.training.snapshots`).

:func:`~cnnviz.training.loop.train` makes a :class:`SnapshotRecorder` when it is given a
:class:`SnapshotPlan`: the loop hands it each step's loss and asks it after each step whether a
snapshot is due. A capture runs the model in eval mode under inference mode (the Grad-CAM's backward
pass goes to the feature map only, never into the weights' ``.grad``), so it draws no random numbers
and changes no weight, gradient or BatchNorm statistic: a run with snapshots ends on the same weights
as the run without them.

The snapshots keep to a work budget (:func:`~cnnviz.training.snapshots.fit_snapshot_work`): the check
set is fitted to the planned run when the recorder starts. The map's features before training come
from a copy of the step-0 weights, computed when the run ends, and only when the steps it actually
took leave room for them: a heavy run stopped after one step waits for none of that map.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cnnviz.datasets.files import dataset_info, load_dataset
from cnnviz.images.inspection import inspect_image, last_conv_layer, network_activations, predict
from cnnviz.networks.build import eval_mode
from cnnviz.training.evaluate import predict_logits
from cnnviz.training.features import (
    PROJECTION_IMAGES,
    last_linear_index,
    penultimate_features,
    projection_sample,
)
from cnnviz.training.prepare import PreparedRun, load_test_split
from cnnviz.training.results import confusion_matrix
from cnnviz.training.snapshots import (
    CHECK_IMAGES,
    PROBE_CHANNELS,
    PROBE_FORWARDS,
    PROBE_UNITS,
    SETUP_FORWARDS,
    SNAPSHOT_COUNT,
    SNAPSHOT_WORK_SHARE,
    ProbeSnapshot,
    RunSnapshots,
    Snapshot,
    SnapshotWork,
    fit_snapshot_work,
    snapshot_budget,
    snapshot_steps,
)
from cnnviz.training.step import normalization_tensors, normalize

CHECK_SEED = 0  # the check images are the same for every run on a split, whatever its seed
TOP_K = 3
# Step-0 weights up to this size are kept to compute the map before training at the end of the run;
# a net with more (the size gate admits up to 80 MB) computes it at step 0, when the budget allows.
KEPT_WEIGHTS_BYTES = 32_000_000


@dataclass(frozen=True, eq=False)
class SnapshotPlan:
    """What a run's snapshots follow: the probe image, how many snapshots, on how many check images.

    ``on_capture`` (optional) is called after every snapshot with the run's snapshots so far and the
    model at that moment (on the run's device, in train mode): the Train page's job keeps a copy for
    the live slider, a test keeps the weights. It must not change the model.
    """

    probe_pixels: torch.Tensor | None  # (C, H, W) uint8 as the dataset's images; None: no probe
    probe_label: str = ""
    count: int = SNAPSHOT_COUNT
    check_images: int = CHECK_IMAGES
    projection_images: int = PROJECTION_IMAGES  # test images whose features step 0 keeps (0: none)
    # the snapshots' forwards at most this share of the training's multiply-adds (None: no budget,
    # every check and map image asked for, whatever it costs)
    work_share: float | None = SNAPSHOT_WORK_SHARE
    on_capture: Callable[[RunSnapshots, nn.Module], None] | None = None

    def problem(self, image_shape: tuple[int, int, int]) -> str | None:
        """Why this plan cannot follow a run on images of ``image_shape`` (one sentence), or None."""
        if self.count < 2:
            return "A run's snapshots need at least two moments (before and after training)."
        if self.check_images < 1:
            return "The snapshots need at least one check image for their confusion matrix."
        if self.projection_images < 0:
            return "The map of what the network learned cannot have fewer than 0 images."
        if self.work_share is not None and not 0 < self.work_share <= 1:
            return "The snapshots' share of the training's work must be above 0 and at most 1."
        pixels = self.probe_pixels
        if pixels is not None and (pixels.dtype != torch.uint8 or tuple(pixels.shape) != tuple(image_shape)):
            shape = "x".join(str(d) for d in image_shape)
            return f"The probe image must be {shape} pixels (0-255) like the dataset's images."
        return None


def check_plan(plan: SnapshotPlan, dataset: str) -> None:
    """Raise ValueError (one sentence) when ``plan`` cannot follow a run on ``dataset``: before the
    run loads its data."""
    problem = plan.problem(dataset_info(dataset).image_shape)
    if problem:
        raise ValueError(problem)


def test_image_plan(dataset: str, index: int, data_dir: str | os.PathLike | None = None) -> SnapshotPlan:
    """A plan whose probe is test image ``index`` of ``dataset``, labelled "test image 7 (a 2)".

    Raises:
        ValueError: an index outside the test set.
    """
    test = load_dataset(dataset, "test", data_dir)
    if not 0 <= index < len(test):
        raise ValueError(f"The probe must be a test image 0 to {len(test) - 1}; {index} is not one.")
    name = test.info.classes[int(test.labels[index])]
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return SnapshotPlan(test.images[index].clone(), f"test image {index} ({article} {name})")


def first_learned_conv(model: nn.Module) -> tuple[int, nn.Conv2d] | None:
    """The child of ``model.features`` holding the first convolution whose weights learn (a frozen
    patch-whitening layer is skipped) and that convolution; None for a net without one."""
    for number, child in enumerate(model.features):
        for module in child.modules():
            if isinstance(module, nn.Conv2d) and module.weight.requires_grad:
                return number, module
    return None


def layer_names(model: nn.Module) -> list[str]:
    """"N · Kind" for every layer, numbered over ``features`` then ``classifier`` as net_layers does."""
    return [f"{number} · {type(child).__name__}" for number, child in enumerate(_children(model))]


class SnapshotRecorder:
    """Takes the snapshots of one run at the steps of :func:`snapshot_steps`.

    Raises:
        ValueError: a plan that does not fit the run (see :meth:`SnapshotPlan.problem`).
    """

    def __init__(self, plan: SnapshotPlan, run: PreparedRun) -> None:
        problem = plan.problem(run.info.image_shape)
        if problem:
            raise ValueError(problem)
        self.plan, self.run = plan, run
        model = run.model
        self.steps = frozenset(snapshot_steps(run.schedule.total_steps, plan.count))
        names = layer_names(model)
        self._weighted = [(names[n], params) for n, child in enumerate(_children(model))
                          if (params := list(child.parameters()))]
        learned = first_learned_conv(model)
        self._filters = None if learned is None else learned[1]
        try:
            self._cam_layer: int | None = last_conv_layer(model)
        except ValueError:
            self._cam_layer = None
        self._mean, self._std = normalization_tensors(run.info, run.device)
        self._probe = None
        if plan.probe_pixels is not None:
            self._probe = normalize(plan.probe_pixels[None].to(run.device), self._mean, self._std)
        self.mult_adds = forward_mult_adds(model, run.info.image_shape)
        map_images = plan.projection_images if _has_dense_layer(model) else 0
        self.work: SnapshotWork = fit_snapshot_work(
            self.mult_adds, run.schedule.batch_size * run.schedule.total_steps, len(self.steps),
            plan.check_images, map_images, self._probe is not None, plan.work_share)
        # image forwards the snapshots took so far (the probe's counted as PROBE_FORWARDS)
        self.forwards = SETUP_FORWARDS
        self._step0_weights: dict[str, torch.Tensor] | None = None
        split, indices, labels, pixels = _check_set(run, self.work.check_images)
        self.snapshots = RunSnapshots(
            filters_layer=None if learned is None else learned[0],
            layers=[name for name, _ in self._weighted],
            map_layers=names, probe_pixels=None if plan.probe_pixels is None else plan.probe_pixels.clone(),
            probe_label=plan.probe_label, check_split=split, check_indices=indices, check_labels=labels,
            check_pixels=pixels,
        )
        self._check_on_device = pixels.to(run.device)
        self._loss_sum: torch.Tensor | None = None
        self._losses = 0

    def add_loss(self, loss: torch.Tensor) -> None:
        """Count one step's training loss (kept on the device: no synchronisation per step)."""
        loss = loss.detach().float()
        self._loss_sum = loss.clone() if self._loss_sum is None else self._loss_sum + loss
        self._losses += 1

    def after_step(self, step: int) -> None:
        """Take the snapshot of ``step`` when the schedule has one there and it is not taken yet."""
        if step in self.steps and not self._taken(step):
            self.capture(step)

    def finish(self, step: int) -> None:
        """At the end of a run: the map before training, when the ``step`` steps taken leave room for
        it in the budget, and the snapshot of the step where it ended (a stopped run's too)."""
        final = not self._taken(step)
        if self._step0_weights is not None:
            pending = len(self.snapshots.check_labels) + self._probe_forwards() if final else 0
            if self._within_budget(step, self.forwards + pending + self.work.map_images):
                started = time.perf_counter()
                self._project_before(self._step0_weights)
                self.snapshots.capture_seconds += time.perf_counter() - started
            self._step0_weights = None
        if final:
            self.capture(step)

    def capture(self, step: int) -> Snapshot:
        """Take the snapshot of the model as it is now, after ``step`` steps."""
        started = time.perf_counter()
        model = self.run.model
        # One view per check image, without the test-time mirror and shifts: they multiplied this, most
        # of a snapshot's cost, by up to 6 (cifar10_speed), which short CPU runs on the page felt.
        logits = predict_logits(model, self._check_on_device, self._mean, self._std, views=False).float()
        probabilities = torch.softmax(logits, dim=1)
        top_p, top = probabilities.topk(min(TOP_K, probabilities.shape[1]), dim=1)
        predictions = logits.argmax(dim=1).cpu()
        train_loss = None
        if self._loss_sum is not None and self._losses:
            train_loss = self._loss_sum.item() / self._losses
        self._loss_sum, self._losses = None, 0
        self.forwards += len(self.snapshots.check_labels) + self._probe_forwards()
        if step == 0 and self.work.map_images and self.snapshots.projection_before is None:
            self._keep_or_project()
        snapshot = Snapshot(
            step=step, epoch=step / max(1, self.run.schedule.steps_per_epoch), filters=self._filter_weights(),
            probe=self._probe_snapshot(model), confusion=confusion_matrix(
                predictions, self.snapshots.check_labels, logits.shape[1]),
            predictions=predictions, top3=top.cpu(), top3_probabilities=top_p.cpu(),
            weight_norms=self._norms(gradients=False),
            grad_norms=self._norms(gradients=True) if step > 0 else torch.zeros(len(self._weighted)),
            train_loss=train_loss,
        )
        self.snapshots.snapshots.append(snapshot)
        self.snapshots.capture_seconds += time.perf_counter() - started
        if self.plan.on_capture is not None:
            self.plan.on_capture(self.snapshots, model)
        return snapshot

    def _within_budget(self, steps: int, forwards: int) -> bool:
        """Whether ``forwards`` image forwards fit the budget of a run of ``steps`` steps."""
        if self.plan.work_share is None:
            return True
        budget = snapshot_budget(self.mult_adds, self.run.schedule.batch_size * steps, self.plan.work_share)
        return forwards <= budget // max(1, self.mult_adds)

    def _probe_forwards(self) -> int:
        return 0 if self._probe is None else PROBE_FORWARDS

    def _keep_or_project(self) -> None:
        """At step 0: keep a copy of the weights for the map before training, or when they are big,
        compute the map now."""
        state = self.run.model.state_dict()
        if sum(_nbytes(t) for t in state.values()) <= KEPT_WEIGHTS_BYTES:
            self._step0_weights = {name: t.detach().to("cpu", copy=True) for name, t in state.items()}
        else:
            self._project_before(None)

    def _project_before(self, weights: dict[str, torch.Tensor] | None) -> None:
        """The penultimate features of the map's test images (a balanced seeded sample, the one
        ``replay`` draws) at step 0: of the model now (``weights`` None) or with ``weights`` put in for
        the time it takes (the model's own tensors are then copied back exactly)."""
        model, count = self.run.model, self.work.map_images
        test = load_dataset(self.run.info.name, "test", self.run.data_dir)
        indices = projection_sample(test.labels, count)
        now = None if weights is None else {n: t.detach().clone() for n, t in model.state_dict().items()}
        try:
            if weights is not None:
                model.load_state_dict(weights)
            info = self.run.info
            features = penultimate_features(model, test.images[indices], info.mean, info.std)
        finally:
            if now is not None:
                model.load_state_dict(now)
        self.forwards += count
        self.snapshots.projection_indices = indices
        self.snapshots.projection_before = features

    def _taken(self, step: int) -> bool:
        return bool(self.snapshots.snapshots) and self.snapshots.snapshots[-1].step == step

    def _filter_weights(self) -> torch.Tensor:
        if self._filters is None:
            return torch.zeros(0, 0, 0, 0)
        return self._filters.weight.detach().float().cpu().contiguous().clone()

    def _probe_snapshot(self, model: nn.Module) -> ProbeSnapshot | None:
        if self._probe is None:
            return None
        if self._cam_layer is None:
            maps = [_kept(activation.values) for activation in network_activations(model, self._probe)]
            prediction = predict(model, self._probe)  # with the model's test-time augmentation
            return ProbeSnapshot(maps, prediction.probabilities.float().cpu(), None)
        # One pass for the features' maps, the answer (with test-time augmentation) and the Grad-CAM of
        # the predicted class; the classifier's layers then run on from the last feature map. Measured on
        # the 2-core CPU against network_activations, predict and grad_cam one after the other (40 times
        # each, alternating): mnist_fast 1.06 against 1.70 ms, cifar10_speed 6.6 against 12.6 ms.
        inspection = inspect_image(model, self._probe, cam_layer=self._cam_layer)
        values = [activation.values for activation in inspection.activations]
        with eval_mode(model), torch.inference_mode():
            hidden = values[-1][None]
            for child in model.classifier:
                hidden = child(hidden.clone() if getattr(child, "inplace", False) else hidden)
                values.append(hidden[0])
        cam = inspection.grad_cam.heatmap.detach().float().cpu().contiguous()
        probabilities = inspection.prediction.probabilities.float().cpu()
        return ProbeSnapshot([_kept(v) for v in values], probabilities, cam)

    def _norms(self, gradients: bool) -> torch.Tensor:
        """(layers,) float32: each weighted layer's L2 norm over all its parameters (weights and
        biases), or over their gradients (a parameter without one counts 0)."""
        norms = []
        for _, parameters in self._weighted:
            tensors = [p.grad if gradients else p for p in parameters]
            tensors = [t.detach().float() for t in tensors if t is not None]
            if not tensors:
                norms.append(torch.zeros((), device=self.run.device))
                continue
            per_tensor = torch.stack([torch.linalg.vector_norm(t) for t in tensors])
            norms.append(torch.linalg.vector_norm(per_tensor))
        return torch.stack(norms).cpu() if norms else torch.zeros(0)


def forward_mult_adds(model: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """The multiply-adds of one image's forward pass through ``model``: those of every convolution
    and dense layer, counted with hooks on one zero image (in eval mode, changing nothing)."""
    total = 0

    def count(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_cell = kh * kw * module.in_channels // module.groups * module.out_channels
            total += per_cell * output.shape[-2] * output.shape[-1]
        else:
            total += module.in_features * module.out_features

    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    handles = [layer.register_forward_hook(count) for layer in layers]
    try:
        with eval_mode(model), torch.inference_mode():
            model(torch.zeros(1, *image_shape, device=next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return total


def _has_dense_layer(model: nn.Module) -> bool:
    try:
        last_linear_index(model.classifier)
    except ValueError:
        return False  # no dense layer: no features to map
    return True


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _children(model: nn.Module) -> list[nn.Module]:
    return [*model.features, *model.classifier]


def _kept(values: torch.Tensor) -> torch.Tensor:
    """The part of one layer's output a snapshot keeps: the first channels (or units), float16."""
    limit = PROBE_CHANNELS if values.dim() == 3 else PROBE_UNITS
    return values[:limit].detach().to("cpu", torch.float16).contiguous()


def _check_set(run: PreparedRun, count: int) -> tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The split ("val", else "test"), the seeded indices of ``count`` of its images (sorted), their
    labels and their pixels (uint8, CPU)."""
    data = run.data
    if len(data.val_labels):
        split, images, labels = "val", data.val_images, data.val_labels
    else:
        split, (images, labels) = "test", load_test_split(run.config, run.info, run.data_dir)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(CHECK_SEED))
    indices = order[:min(count, len(labels))].sort().values
    return split, indices, labels.cpu()[indices].long(), images.cpu()[indices].contiguous()
