"""What a student takes away from a trained model: the model as ONNX bytes, and the training script of
the settings stored with it. The command line (``export``) and the Train page both use these."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

from cnnviz.networks.onnx_export import export_onnx
from cnnviz.training.checkpoint import LoadedModel
from cnnviz.training.config import TrainConfig
from cnnviz.training.script import script_file_name, training_script


def model_onnx_bytes(loaded: LoadedModel) -> bytes:
    """The model of a checkpoint as an ONNX file (its class names, mean, std and dataset inside)."""
    buffer = io.BytesIO()
    export_onnx(loaded.model, loaded.input_shape, buffer, classes=loaded.classes, mean=loaded.mean,
                std=loaded.std, dataset=loaded.dataset)
    return buffer.getvalue()


def onnx_file_name(loaded: LoadedModel) -> str:
    """``<model name>.onnx``."""
    return f"{loaded.name}.onnx"


def stored_config(metadata: dict[str, Any]) -> TrainConfig:
    """The training settings a checkpoint was made with.

    Settings a newer cnnviz added are left at their defaults; names this cnnviz does not know are
    ignored (a file written by a later version).

    Raises:
        ValueError: when the file stores no training settings, or ones that cannot work.
    """
    training = metadata.get("training")
    if not isinstance(training, dict):
        raise ValueError("This model file stores no training settings, so there is no training script "
                         "to write for it (its ONNX export still works).")
    known = {field.name for field in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{key: value for key, value in training.items() if key in known})
    config.validate()
    return config


def model_script(loaded: LoadedModel, file_name: str | None = None) -> tuple[str, str]:
    """The self-contained training script of the model's spec and recipe, and its file name (``file_name``
    when given: the script's usage lines name it)."""
    config = stored_config(loaded.metadata)
    name = file_name or script_file_name(config)
    return training_script(config, name), name
