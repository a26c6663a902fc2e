"""A run's snapshots as the plain dicts, lists and tensors a checkpoint holds, and back, checked.

The checkpoint keeps them under ``payload["snapshots"]`` (never in the metadata), so the strict
``weights_only=True`` loader reads them. :func:`snapshots_from_plain` checks every field's type, dtype
and shape: a file whose snapshot part is malformed still gives its model, and the page one sentence.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cnnviz.training.snapshots import ProbeSnapshot, RunSnapshots, Snapshot

SNAPSHOT_FORMAT_VERSION = 1


class SnapshotFormatError(ValueError):
    """A snapshot part of a checkpoint that is not what :func:`snapshots_to_plain` writes."""


def snapshots_to_plain(runs: RunSnapshots) -> dict[str, Any]:
    """``runs`` as plain types and contiguous CPU tensors."""
    return {
        "version": SNAPSHOT_FORMAT_VERSION, "filters_layer": runs.filters_layer, "layers": list(runs.layers),
        "map_layers": list(runs.map_layers), "probe_pixels": _t(runs.probe_pixels),
        "probe_label": runs.probe_label, "check_split": runs.check_split,
        "check_indices": _t(runs.check_indices), "check_labels": _t(runs.check_labels),
        "check_pixels": _t(runs.check_pixels), "projection_indices": _t(runs.projection_indices),
        "projection_before": _t(runs.projection_before),
        "snapshots": [_snapshot_to_plain(s) for s in runs.snapshots],
        "capture_seconds": float(runs.capture_seconds),
    }


def snapshots_from_plain(plain: Any, num_classes: int, image_shape: tuple[int, int, int]) -> RunSnapshots:
    """The :class:`RunSnapshots` that :func:`snapshots_to_plain` wrote, for a model of ``num_classes``
    classes on images of ``image_shape``.

    Raises:
        SnapshotFormatError: anything missing, of the wrong type, dtype or shape (the sentence says what).
    """
    d = _dict(plain, "the snapshots")
    if d.get("version") != SNAPSHOT_FORMAT_VERSION:
        raise SnapshotFormatError(
            f"their format version is {d.get('version')!r}, not {SNAPSHOT_FORMAT_VERSION}")
    layers, map_layers = _names(d, "layers"), _names(d, "map_layers")
    check_indices = _tensor(d, "check_indices", torch.int64, 1)
    n = len(check_indices)
    check_labels = _tensor(d, "check_labels", torch.int64, 1, (n,))
    if n and (int(check_labels.min()) < 0 or int(check_labels.max()) >= num_classes):
        raise SnapshotFormatError("their check labels are not classes of this model")
    projection_indices = _tensor(d, "projection_indices", torch.int64, 1, optional=True)
    projection_before = _tensor(d, "projection_before", torch.float32, 2, optional=True)
    if (projection_indices is None) != (projection_before is None) or (
            projection_before is not None and len(projection_before) != len(projection_indices)):
        raise SnapshotFormatError("their projection's indices and features do not match")
    filters_layer = d.get("filters_layer")
    if filters_layer is not None and type(filters_layer) is not int:
        raise SnapshotFormatError("their filters layer is not a layer number")
    runs = RunSnapshots(
        filters_layer=filters_layer, layers=layers, map_layers=map_layers,
        probe_pixels=_tensor(d, "probe_pixels", torch.uint8, 3, tuple(image_shape), optional=True),
        probe_label=_string(d, "probe_label"), check_split=_string(d, "check_split"),
        check_indices=check_indices, check_labels=check_labels,
        check_pixels=_tensor(d, "check_pixels", torch.uint8, 4, (n, *image_shape)),
        projection_indices=projection_indices, projection_before=projection_before,
    )
    items = d.get("snapshots")
    if not isinstance(items, list):
        raise SnapshotFormatError("their list of snapshots is missing")
    shape = _Shape(num_classes, n, len(layers), len(map_layers), runs.probe_pixels is not None)
    runs.snapshots = [_snapshot_from_plain(item, shape) for item in items]
    seconds = d.get("capture_seconds", 0.0)
    runs.capture_seconds = float(seconds) if _finite(seconds) else 0.0
    return runs


class _Shape:
    """What every snapshot of one run must agree with."""

    def __init__(self, classes: int, checks: int, layers: int, maps: int, probe: bool) -> None:
        self.classes, self.checks, self.layers, self.maps, self.probe = classes, checks, layers, maps, probe


def _snapshot_to_plain(s: Snapshot) -> dict[str, Any]:
    probe = None if s.probe is None else {
        "maps": [_t(m) for m in s.probe.maps], "probabilities": _t(s.probe.probabilities),
        "cam": _t(s.probe.cam)}
    return {
        "step": s.step, "epoch": s.epoch, "filters": _t(s.filters), "probe": probe,
        "confusion": _t(s.confusion),
        "predictions": _t(s.predictions), "top3": _t(s.top3), "top3_probabilities": _t(s.top3_probabilities),
        "weight_norms": _t(s.weight_norms), "grad_norms": _t(s.grad_norms), "train_loss": s.train_loss,
    }


def _snapshot_from_plain(item: Any, shape: _Shape) -> Snapshot:
    d = _dict(item, "a snapshot")
    step, epoch, loss = d.get("step"), d.get("epoch"), d.get("train_loss")
    loss_ok = loss is None or type(loss) in (int, float)  # a diverged run's loss may be nan
    if type(step) is not int or step < 0 or not _finite(epoch) or not loss_ok:
        raise SnapshotFormatError("a snapshot's step, epoch or loss is not a number")
    k, n = shape.classes, shape.checks
    top = min(3, k)
    probe = d.get("probe")
    if (probe is not None) != shape.probe:
        raise SnapshotFormatError("a snapshot's probe does not match the run's probe image")
    return Snapshot(
        step=step, epoch=float(epoch), filters=_tensor(d, "filters", torch.float32, 4),
        probe=None if probe is None else _probe_from_plain(probe, shape),
        confusion=_tensor(d, "confusion", torch.int64, 2, (k, k)),
        predictions=_tensor(d, "predictions", torch.int64, 1, (n,)),
        top3=_tensor(d, "top3", torch.int64, 2, (n, top)),
        top3_probabilities=_tensor(d, "top3_probabilities", torch.float32, 2, (n, top)),
        weight_norms=_tensor(d, "weight_norms", torch.float32, 1, (shape.layers,)),
        grad_norms=_tensor(d, "grad_norms", torch.float32, 1, (shape.layers,)),
        train_loss=None if loss is None else float(loss),
    )


def _probe_from_plain(probe: Any, shape: _Shape) -> ProbeSnapshot:
    d = _dict(probe, "a snapshot's probe")
    maps = d.get("maps")
    if not (isinstance(maps, list) and len(maps) == shape.maps and all(
            isinstance(m, torch.Tensor) and m.dtype == torch.float16 and m.dim() in (1, 3) for m in maps)):
        raise SnapshotFormatError("a snapshot's probe maps are not one float16 map stack per layer")
    return ProbeSnapshot(maps=maps,
                         probabilities=_tensor(d, "probabilities", torch.float32, 1, (shape.classes,)),
                         cam=_tensor(d, "cam", torch.float32, 2, optional=True))


def _t(value: torch.Tensor | None) -> torch.Tensor | None:
    return None if value is None else value.detach().to("cpu").contiguous().clone()


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SnapshotFormatError(f"{what} is not a record")
    return value


def _finite(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _string(d: dict[str, Any], key: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise SnapshotFormatError(f"their {key.replace('_', ' ')} is not text")
    return value


def _names(d: dict[str, Any], key: str) -> list[str]:
    value = d.get(key)
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise SnapshotFormatError(f"their {key.replace('_', ' ')} are not a list of names")
    return list(value)


def _tensor(d: dict[str, Any], key: str, dtype: torch.dtype, dims: int,
            shape: tuple[int, ...] | None = None, optional: bool = False) -> torch.Tensor | None:
    value = d.get(key)
    if value is None and optional:
        return None
    what = key.replace("_", " ")
    if not isinstance(value, torch.Tensor) or value.dtype != dtype or value.dim() != dims:
        kind = str(dtype).removeprefix("torch.")
        raise SnapshotFormatError(f"their {what} is not a {dims}-d {kind} tensor")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise SnapshotFormatError(f"their {what} has the shape {tuple(value.shape)}, not {tuple(shape)}")
    return value
