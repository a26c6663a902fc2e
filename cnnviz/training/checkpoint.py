"""Checkpoints: the weights plus the metadata that rebuilds the model, saved atomically.

File layout (``torch.save`` of plain types and tensors only, so ``weights_only=True`` loads it)::

    {"format": "cnnviz-checkpoint", "version": 1, "state_dict": {...}, "metadata": {...}}
"""

from __future__ import annotations

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
from torch import nn
from torch.torch_version import TorchVersion

from cnnviz.networks.build import SpecNet, build_model
from cnnviz.networks.spec import SpecError

CHECKPOINT_FORMAT = "cnnviz-checkpoint"
CHECKPOINT_VERSION = 1
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
SAVED_MODELS_ENV = "CNNVIZ_MODELS_DIR"  # where the training page saves models (default MODELS_DIR)
REQUIRED_METADATA = ("dataset", "spec", "classes", "mean", "std", "input_shape")
MAX_NAME_CHARS = 40
SHIPPED_MODELS = ("mnist", "cifar10")  # the models/ files that come with cnnviz (see models/README.md)


class CheckpointError(ValueError):
    """A file that is not a readable cnnviz checkpoint."""


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, in eval mode, on the CPU."""

    model: SpecNet
    metadata: dict[str, Any]
    path: Path | None = None

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
    composed = unicodedata.normalize("NFC", name.strip())  # "è" typed as e + accent is one letter
    cleaned = re.sub(r"[^\w-]+", "_", composed).strip("_-.")[:MAX_NAME_CHARS]
    if not cleaned:
        raise ValueError("Give the model a name with at least one letter or digit.")
    return cleaned


def save_checkpoint(path: str | os.PathLike, model: nn.Module, metadata: dict[str, Any]) -> Path:
    """Write the weights and metadata to ``path`` atomically (a temporary file, then a rename).

    Returns:
        The path written.
    """
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    assert not missing, f"metadata lacks {missing}"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Weights are stored contiguous on the CPU so the file loads anywhere.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "state_dict": state, "metadata": to_plain(metadata),
    }
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp makes it private; a model file is for everyone to read
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
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
            AttributeError, TypeError, KeyError, IndexError) as err:
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
    metadata = to_plain(metadata)
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise CheckpointError(f"{path.name} lacks the metadata {', '.join(missing)}.")
    try:
        channels, size, _ = (int(v) for v in metadata["input_shape"])
        model = build_model(metadata["spec"], channels, len(metadata["classes"]), size)
        model.load_state_dict(state)
    except (SpecError, RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path.name} has weights that do not match its architecture ({err}).") from err
    training = metadata.get("training")
    model.mirror_average = bool(isinstance(training, dict) and training.get("mirror_tta", False))
    model.shift_average = bool(isinstance(training, dict) and training.get("shift_tta", False))
    model.eval()
    return LoadedModel(model=model, metadata=metadata, path=path)


def saved_models_dir() -> Path:
    """Where the training page saves models: $CNNVIZ_MODELS_DIR, else the repository's models/."""
    return Path(os.environ.get(SAVED_MODELS_ENV) or MODELS_DIR)


def list_models(models_dir: str | os.PathLike = MODELS_DIR) -> list[Path]:
    """The ``*.pt`` files in a models folder, sorted by name (none when the folder is missing)."""
    folder = Path(models_dir)
    return sorted(p for p in folder.glob("*.pt") if p.is_file()) if folder.is_dir() else []
