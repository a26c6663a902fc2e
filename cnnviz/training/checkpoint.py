"""Checkpoints: the weights plus the metadata that rebuilds the model, saved atomically.

File layout (``torch.save`` of plain types and tensors only, so ``weights_only=True`` loads it)::

    {"format": "cnnviz-checkpoint", "version": 1, "state_dict": {...}, "metadata": {...}}

and, for a run saved with its snapshots, ``"snapshots": {...}`` (see :mod:`cnnviz.training.snapshot_store`;
a malformed snapshot part leaves the model loadable, see :attr:`LoadedModel.snapshot_problem`).

The metadata holds the model's test-time augmentation as ``"tta": {"mirror": bool, "shift": bool}``;
files written before it was stored there take it from their training config's ``mirror_tta`` and
``shift_tta`` (the shipped ``models/*.pt`` among them).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import re
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.torch_version import TorchVersion

from cnnviz import paths
from cnnviz.datasets.files import DATASETS
from cnnviz.networks.build import SpecNet, build_model
from cnnviz.networks.spec import SpecError
from cnnviz.networks.summary import MAX_TRAIN_PARAMS, summarize_model, training_size_problem
from cnnviz.networks.tta import TestTimeAugmentation
from cnnviz.training.progress import HistoryPoint, history_points
from cnnviz.training.snapshot_store import SnapshotFormatError, snapshots_from_plain, snapshots_to_plain
from cnnviz.training.snapshots import RunSnapshots

CHECKPOINT_FORMAT = "cnnviz-checkpoint"
CHECKPOINT_VERSION = 1
SAVED_MODELS_ENV = "CNNVIZ_MODELS_DIR"  # where the training page saves models (default paths.MODELS_DIR)
REQUIRED_METADATA = ("dataset", "spec", "classes", "mean", "std", "input_shape")
MAX_NAME_CHARS = 40
MAX_CLASSES = 1000
TEMP_SUFFIX = ".tmp"  # a save's temporary is ".<name>.pt.<random>.tmp" beside the final file
SHIPPED_MODELS = ("mnist", "cifar10")  # the models/ files that come with cnnviz (see models/README.md)


class CheckpointError(ValueError):
    """A file that is not a readable cnnviz checkpoint."""


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, in eval mode, on the CPU."""

    model: SpecNet
    metadata: dict[str, Any]
    path: Path | None = None
    snapshots: RunSnapshots | None = None  # the run's snapshots, when it was saved with them
    snapshot_problem: str | None = None  # why the file's snapshots could not be read (the model still loads)

    @property
    def dataset(self) -> str:
        return self.metadata["dataset"]

    @property
    def classes(self) -> list[str]:
        return list(self.metadata["classes"])

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.metadata["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.metadata["std"])

    @property
    def spec(self) -> str:
        return self.metadata["spec"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.metadata["input_shape"]
        return int(c), int(h), int(w)

    @property
    def test_accuracy(self) -> float | None:
        value = self.metadata.get("test_accuracy")
        return None if value is None else float(value)

    @property
    def history(self) -> list[HistoryPoint]:
        """The training history stored with the model, one point per validation point (none when
        the file has none)."""
        return history_points(self.metadata.get("history") or [])

    @property
    def name(self) -> str:
        if self.metadata.get("name"):
            return str(self.metadata["name"])
        return self.path.stem if self.path is not None else self.dataset


def sanitize_model_name(name: str) -> str:
    """A safe file stem from a user's name: letters (of any alphabet), digits, '-' and '_' only, at
    most 40 characters; no path separator or dot survives.

    Raises:
        ValueError: when nothing usable is left.
    """
    # NFKC: "è" typed as e + accent is one letter, and full-width or ligature forms become plain ones
    composed = unicodedata.normalize("NFKC", name.strip())
    cleaned = re.sub(r"[^\w-]+", "_", composed).strip("_-.")[:MAX_NAME_CHARS]
    if not cleaned:
        raise ValueError("Give the model a name with at least one letter or digit.")
    return cleaned


def save_checkpoint(path: str | os.PathLike, model: SpecNet, metadata: dict[str, Any],
                    exclusive: bool = False, snapshots: RunSnapshots | None = None) -> Path:
    """Write the weights and metadata to ``path`` atomically (a temporary file, then a rename); the
    metadata gains the model's test-time augmentation.

    ``snapshots`` (a run's, optional) go under ``payload["snapshots"]`` as plain dicts, lists and tensors.

    With ``exclusive`` the temporary is hard-linked to ``path`` instead of renamed over it, which the
    file system refuses when ``path`` exists: of two saves of one name at once, exactly one wins.

    Returns:
        The path written.

    Raises:
        FileExistsError: ``exclusive`` and ``path`` already exists (the file there is untouched).
        OSError: the folder or the disk refused the file (no temporary is left).
    """
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    assert not missing, f"metadata lacks {missing}"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Weights are stored contiguous on the CPU so the file loads anywhere.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "state_dict": state, "metadata": to_plain({**metadata, "tta": dataclasses.asdict(model.tta)}),
    }
    if snapshots is not None:
        payload["snapshots"] = snapshots_to_plain(snapshots)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            try:
                torch.save(payload, f)
            except RuntimeError as err:  # torch's zip writer turns a failed write (a full disk) into this
                raise (err.__context__ if isinstance(err.__context__, OSError)
                       else OSError(f"PyTorch could not write the file: {err}")) from err
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp makes it private; a model file is for everyone to read
        if exclusive:
            os.link(temp_name, path)
        else:
            os.replace(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)  # after the link (or a failure); gone after a rename
    return path


def to_plain(value: Any) -> Any:
    """Metadata as the built-in types the strict loader accepts (a ``TorchVersion`` becomes a str).

    Raises:
        TypeError: for a value with no plain equivalent.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):  # str subclasses such as torch.__version__
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return to_plain(value.item())
    raise TypeError(f"checkpoint metadata cannot hold {type(value).__name__}")


def load_checkpoint(path: str | os.PathLike) -> LoadedModel:
    """Load a checkpoint and rebuild its model (eval mode, CPU).

    Raises:
        CheckpointError: the file is missing, broken, or not a cnnviz checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No model file at {path}.")
    try:
        # TorchVersion (a str subclass) is allowed so files whose metadata kept torch.__version__
        # as-is still load; everything else stays under the strict weights-only unpickler.
        with torch.serialization.safe_globals([TorchVersion]):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError,
            AttributeError, TypeError, KeyError, IndexError, RecursionError) as err:
        raise CheckpointError(
            f"{path.name} is not a readable cnnviz model (it is damaged, or not a checkpoint file)."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path.name} is a PyTorch file but not a cnnviz model checkpoint.")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path.name} has checkpoint version {payload.get('version')!r}; this cnnviz reads version "
            f"{CHECKPOINT_VERSION}."
        )
    metadata, state = payload.get("metadata"), payload.get("state_dict")
    if not isinstance(metadata, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path.name} lacks its weights or metadata.")
    try:
        metadata = to_plain(metadata)
    except (RecursionError, TypeError) as err:  # metadata nested thousands deep, or odd types
        raise CheckpointError(f"{path.name} is not a readable cnnviz model (its metadata is broken).") \
            from err
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise CheckpointError(f"{path.name} lacks the metadata {', '.join(missing)}.")
    problem = metadata_problem(metadata)
    if problem:
        raise CheckpointError(f"{path.name} cannot be used: {problem}.")
    model = _build_within_limits(path.name, metadata)
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path.name} has weights that do not match its architecture ({err}).") from err
    model.eval()
    snapshots, snapshot_problem = None, None
    if payload.get("snapshots") is not None:
        try:
            snapshots = snapshots_from_plain(payload["snapshots"], len(metadata["classes"]),
                                             tuple(metadata["input_shape"]))
        except (SnapshotFormatError, RecursionError) as err:
            snapshot_problem = (f"{path.name}'s training snapshots cannot be read ({err}); the model "
                                "itself loaded.")
    return LoadedModel(model=model, metadata=metadata, path=path, snapshots=snapshots,
                       snapshot_problem=snapshot_problem)


def _build_within_limits(file_name: str, metadata: dict[str, Any]) -> SpecNet:
    """The checkpoint's net with fresh weights, unless it is too big for this server.

    Its parameters are counted on the meta device first (shapes, no numbers), so a small file that
    describes a huge net allocates nothing; a net within that limit is built once, for real, and its
    multiply-adds and activations are measured on it (one zero image of the dataset's size).

    Raises:
        CheckpointError: the spec cannot be built, or the net is over a training size limit.
    """
    channels, size, _ = metadata["input_shape"]
    try:
        with torch.device("meta"):
            skeleton = build_model(metadata["spec"], channels, len(metadata["classes"]), size)
        too_big = sum(p.numel() for p in skeleton.parameters()) > MAX_TRAIN_PARAMS
        if not too_big:
            model = build_model(metadata["spec"], channels, len(metadata["classes"]), size,
                                tta=stored_augmentation(metadata))
            too_big = training_size_problem(summarize_model(model)) is not None
    except (SpecError, RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"{file_name} has an architecture cnnviz cannot build ({err}).") from err
    if too_big:
        raise CheckpointError(f"{file_name} describes a network too big for this server: it is not loaded.")
    return model


def metadata_problem(metadata: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's dataset, shape, classes and normalization (a phrase), or None."""
    if not isinstance(metadata["dataset"], str) or metadata["dataset"] not in DATASETS:
        return f"its dataset is not one of {', '.join(DATASETS)}"
    shape = metadata["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(type(v) is int for v in shape)):
        return "its input shape is not three whole numbers"
    channels, height, width = shape
    if tuple(shape) != DATASETS[metadata["dataset"]].image_shape:  # what the net is built for and fed
        return f"its input shape {channels}x{height}x{width} is not that of {metadata['dataset']}'s images"
    classes = metadata["classes"]
    if not (isinstance(classes, list) and 1 <= len(classes) <= MAX_CLASSES):
        return f"it does not list between 1 and {MAX_CLASSES} classes"
    if not isinstance(metadata["spec"], str):
        return "its architecture is not a spec string"
    for key in ("mean", "std"):
        values = metadata[key]
        if not (isinstance(values, list) and len(values) == channels
                and all(type(v) in (int, float) and math.isfinite(v) for v in values)):
            return f"its {key} is not {channels} finite number{'s' if channels > 1 else ''} (one per channel)"
    if any(v <= 0 for v in metadata["std"]):
        return "its std has a value that is not above 0 (the pixels would be divided by it)"
    return None


def stored_augmentation(metadata: dict[str, Any]) -> TestTimeAugmentation:
    """The test-time augmentation a checkpoint's metadata names: its ``tta`` record, or for a file
    written before that record was stored, its training config's ``mirror_tta`` and ``shift_tta``."""
    stored = metadata.get("tta")
    if isinstance(stored, dict):
        return TestTimeAugmentation(mirror=bool(stored.get("mirror", False)),
                                    shift=bool(stored.get("shift", False)))
    training = metadata.get("training")
    if not isinstance(training, dict):
        return TestTimeAugmentation()
    return TestTimeAugmentation(mirror=bool(training.get("mirror_tta", False)),
                                shift=bool(training.get("shift_tta", False)))


def saved_models_dir() -> Path:
    """Where the training page saves models: $CNNVIZ_MODELS_DIR, else the repository's models/."""
    return Path(os.environ.get(SAVED_MODELS_ENV) or paths.MODELS_DIR)


def list_models(models_dir: str | os.PathLike = paths.MODELS_DIR) -> list[Path]:
    """The ``*.pt`` files in a models folder, sorted by name (none when the folder is missing)."""
    folder = Path(models_dir)
    return sorted(p for p in folder.glob("*.pt") if p.is_file()) if folder.is_dir() else []
