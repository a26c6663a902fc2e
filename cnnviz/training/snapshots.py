"""Snapshots of a run while it trains: what the time slider, the replay and the gradient flow show.

A run takes about :data:`SNAPSHOT_COUNT` snapshots, dense at the start (where the filters and the
answers change fastest) and sparse later, whatever its length (:func:`snapshot_steps`). Each one keeps
only small things, so a run's snapshots stay within :data:`SNAPSHOT_BUDGET_BYTES`: the first learned
convolution's filters, one probe image's maps (a few channels per layer), answer and Grad-CAM, the
confusion matrix on a fixed set of check images, and every layer's weight and gradient norms.

Their forward passes keep to a work budget relative to the run's own training
(:func:`fit_snapshot_work`): a big net on a short run scores fewer check images and may keep no map
before training, so taking them never costs much more than :data:`SNAPSHOT_WORK_SHARE` of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

SNAPSHOT_COUNT = 24  # snapshots per run, the one before the first step and the one after the last among them
SNAPSHOT_BUDGET_BYTES = 20_000_000  # all snapshots of one run, in memory and in the checkpoint
PROBE_CHANNELS = 8  # feature maps kept per layer of the probe image (the overview shows 8 too)
PROBE_UNITS = 64  # numbers kept per dense layer of the probe image
# The validation images (else test images) each snapshot's confusion matrix counts: about 30 a class,
# each answered from one view (the plain forward pass, no test-time mirror or shifts). Scoring them is
# most of a snapshot's cost: measured on the shared 2-core CPU with the model's test-time views (up to
# six for cifar10_speed), 500 of them made the 24 snapshots take 5.5% of an mnist_fast run; with 300,
# 0.3 s of 5.6-5.8 s on a quiet machine, and 10.8 s of a 3-epoch cifar10_speed run of 124.5 s (8.7%),
# 16 s of a page-sized cifar10_fast run (2 epochs of 9,000 images), which one view cuts by 2-6x.
CHECK_IMAGES = 300

# The work budget, counted in multiply-adds of the net's own forward pass. A training step costs about
# TRAINING_PASSES forwards of each image of its batch (the forward and the backward's two halves, for
# the inputs and for the weights). Any run may spend FREE_SNAPSHOT_MULT_ADDS: 20 G is 1.5 s at the 13 G
# a second the hostile load test's heavy net ran its forwards at on the loaded 2-core CPU, and keeps
# every tiny or preset run's full check set (mnist_fast's 24 snapshots are 11 G).
SNAPSHOT_WORK_SHARE = 0.05
TRAINING_PASSES = 3
FREE_SNAPSHOT_MULT_ADDS = 20_000_000_000
PROBE_FORWARDS = 8  # a probe's forwards per snapshot at most: 6 test-time views, Grad-CAM's pass and backward
SETUP_FORWARDS = 1  # the one image that counts the net's multiply-adds (snapshot_capture.forward_mult_adds)
FIRST_CHECK_IMAGES = 100  # check images served before the map's (about 10 a class); the rest after it


@dataclass(frozen=True)
class SnapshotWork:
    """What a run's snapshots score: their check images and the map's images before training."""

    check_images: int  # per snapshot
    map_images: int  # once, the map's "before" (0: none)
    budget_forwards: int | None  # image forwards the snapshots may take in all (None: no budget)


def snapshot_budget(mult_adds: int, trained_images: int, share: float = SNAPSHOT_WORK_SHARE) -> int:
    """The multiply-adds the snapshots of a run may spend: ``share`` of its training work (``trained_images``
    = batch size x steps, on a net of ``mult_adds`` per image), at least :data:`FREE_SNAPSHOT_MULT_ADDS`."""
    return max(FREE_SNAPSHOT_MULT_ADDS, int(share * TRAINING_PASSES * mult_adds * trained_images))


def fit_snapshot_work(
    mult_adds: int, trained_images: int, moments: int, check_images: int, map_images: int, probe: bool,
    share: float | None = SNAPSHOT_WORK_SHARE,
) -> SnapshotWork:
    """The check images (per snapshot) and map images (once) that ``moments`` snapshots can score within
    :func:`snapshot_budget`, asked for at most ``check_images`` and ``map_images``: first up to
    :data:`FIRST_CHECK_IMAGES` check images, then the whole map or none of it, then more check images.
    At least one check image, whatever the budget. ``share`` None: no budget, all that was asked.
    """
    if share is None:
        return SnapshotWork(check_images, map_images, None)
    allowed = snapshot_budget(mult_adds, trained_images, share) // max(1, mult_adds)
    left = allowed - SETUP_FORWARDS - moments * (PROBE_FORWARDS if probe else 0)
    check = max(1, min(check_images, FIRST_CHECK_IMAGES, left // moments))
    left -= check * moments
    kept_map = map_images if 0 < map_images <= left else 0
    left -= kept_map
    check = max(check, min(check_images, check + left // moments))
    return SnapshotWork(check, kept_map, allowed)


def snapshot_steps(total_steps: int, count: int = SNAPSHOT_COUNT) -> list[int]:
    """The steps after which a run of ``total_steps`` steps takes its snapshots, in order: 0 (before the
    first step), ``total_steps`` and between them ``count - 2`` steps spaced on a square-root scale (dense
    at the start); fewer when the run has fewer steps than that.

    Raises:
        ValueError: ``total_steps`` below 1 or ``count`` below 2.
    """
    if total_steps < 1 or count < 2:
        raise ValueError("A run needs at least one step and two snapshots.")
    steps = {round(total_steps * (i / (count - 1)) ** 2) for i in range(count)}
    return sorted(steps | {0, total_steps})


@dataclass(frozen=True)
class ProbeSnapshot:
    """The probe image at one moment."""

    # per layer (net_layers order): float16 (<=PROBE_CHANNELS, H, W), or (<=PROBE_UNITS,) in a dense layer
    maps: list[torch.Tensor]
    # (classes,) float32 softmax of the model's answer (with its test-time augmentation, as Predict gives it)
    probabilities: torch.Tensor
    # (H, W) float32 Grad-CAM heatmap (0..1) of the predicted class at last_conv_layer; None without a conv
    cam: torch.Tensor | None

    def nbytes(self) -> int:
        """The bytes its tensors hold."""
        return sum(_nbytes(m) for m in self.maps) + _nbytes(self.probabilities) + _nbytes(self.cam)


@dataclass(frozen=True)
class Snapshot:
    """The network after ``step`` optimizer steps."""

    step: int
    epoch: float  # step / steps per epoch
    filters: torch.Tensor  # (out, C, k, k) float32 weights of the first learned convolution
    probe: ProbeSnapshot | None
    confusion: torch.Tensor  # (classes, classes) int64 on the check images; row = true, column = predicted
    predictions: torch.Tensor  # (check images,) int64 predicted class of each check image
    top3: torch.Tensor  # (check images, 3) int64 the three most probable classes, most probable first
    top3_probabilities: torch.Tensor  # (check images, 3) float32 their probabilities
    # (layers,) float32 L2 norm of each layer's parameters, weights and biases together (RunSnapshots.layers)
    weight_norms: torch.Tensor
    # (layers,) float32 L2 norm of their gradients of this step, the one just taken (0 at step 0; a
    # frozen parameter counts 0)
    grad_norms: torch.Tensor
    train_loss: float | None  # mean training loss of the steps since the previous snapshot (None at 0)

    @property
    def per_class_accuracy(self) -> torch.Tensor:
        """(classes,) float32: the share of each class's check images answered right (0 for a class
        with none)."""
        counts = self.confusion.sum(dim=1).clamp_min(1)
        return self.confusion.diagonal().float() / counts

    def nbytes(self) -> int:
        """The bytes its tensors hold."""
        own = sum(_nbytes(getattr(self, f.name)) for f in fields(self) if f.name != "probe")
        return own + (0 if self.probe is None else self.probe.nbytes())


@dataclass
class RunSnapshots:
    """Every snapshot of one run and what they share."""

    filters_layer: int | None  # net_layers number of the first learned convolution (None: no conv)
    layers: list[str]  # the names of the layers that have weights, for the norms ("0 · Conv2d")
    map_layers: list[str]  # the names of the probe's layers, one per entry of ProbeSnapshot.maps
    probe_pixels: torch.Tensor | None  # (C, H, W) uint8, the probe image as the network sees it
    probe_label: str  # where the probe came from: "test image 7 (a 2)", "your upload", "your drawing"
    check_split: str  # "val" or "test": which images the confusion matrices count
    check_indices: torch.Tensor  # (check images,) int64 indices into that split
    check_labels: torch.Tensor  # (check images,) int64 their true classes
    check_pixels: torch.Tensor  # (check images, C, H, W) uint8 the check images themselves
    projection_indices: torch.Tensor | None = None  # (P,) int64 test-set indices of the map's images
    projection_before: torch.Tensor | None = None  # (P, D) float32 their penultimate features at step 0
    snapshots: list[Snapshot] = field(default_factory=list)
    capture_seconds: float = 0.0  # wall time the run spent taking them (`bench train --snapshots` reports it)

    def nbytes(self) -> int:
        """The bytes all its tensors hold (what :data:`SNAPSHOT_BUDGET_BYTES` bounds)."""
        shared = sum(_nbytes(getattr(self, f.name)) for f in fields(self) if f.name != "snapshots")
        return shared + sum(snapshot.nbytes() for snapshot in self.snapshots)


def _nbytes(value: object) -> int:
    return value.numel() * value.element_size() if isinstance(value, torch.Tensor) else 0
