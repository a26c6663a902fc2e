"""A trained network as an ONNX file, for Netron, onnxruntime and a student's own code.

The graph takes the normalized images ``(uint8 / 255 - mean) / std`` as ``images`` (N, C, H, W), any
batch size N, and gives ``logits`` (N, classes): the answer cnnviz itself gives, its test-time
augmentation included (the mirrored and moved views go through the network as one larger batch, so
the graph holds each layer once). The class names, the mean and std and the spec travel in the
model's ``metadata_props``, which Netron lists under the model's properties.

Why the TorchScript exporter (``dynamo=False``): torch 2.14's default, the ``torch.export``-based
exporter, needs the ``onnxscript`` package (and its own dependencies) at run time. The TorchScript
exporter is part of torch, works offline, and for these small nets writes the same operators (Conv,
Relu, MaxPool, Gemm...) in about 0.1 s; torch is pinned below 2.15, where it is still shipped.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import onnx
import torch
from torch import nn

from cnnviz.networks.build import SpecNet, eval_mode
from cnnviz.networks.tta import NO_TTA, TestTimeAugmentation, augmentation_of, shift_image

# Opset 17 (ONNX 1.12, 2022): every operator these nets use, read by Netron and by onnxruntime
# releases from 1.12 on, so a student's older runtime opens the file too.
ONNX_OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
BATCH_AXIS = "batch"


class _AnswerWithViews(nn.Module):
    """``tta.class_logits(model, images)`` as one forward pass: the views stacked along the batch.

    The weights are those of :func:`cnnviz.networks.tta.class_logits`: with ``mirror`` the image and its
    mirror image count half each; with ``shift`` the unmoved views count half, the two moves a quarter.
    """

    def __init__(self, model: SpecNet, tta: TestTimeAugmentation) -> None:
        super().__init__()
        self.model = model
        self.tta = tta

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        views, weights = [images], [1.0]
        if self.tta.shift:
            views += [shift_image(images, -1), shift_image(images, 1)]
            weights = [0.5, 0.25, 0.25]
        if self.tta.mirror:
            views += [view.flip(-1) for view in views]
            weights = [weight / 2 for weight in weights] * 2
        if len(views) == 1:
            return self.model(images)
        logits = self.model(torch.cat(views))  # (V*N, classes)
        logits = logits.reshape(len(views), -1, self.model.num_classes)  # (V, N, classes)
        return sum(weight * part for weight, part in zip(weights, logits.unbind(0), strict=True))


def export_onnx(
    model: SpecNet,
    input_shape: tuple[int, int, int],
    destination: str | os.PathLike | BinaryIO,
    *,
    classes: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dataset: str | None = None,
    test_time_augmentation: bool = True,
    opset: int = ONNX_OPSET,
) -> onnx.ModelProto:
    """Write ``model`` as an ONNX model with a dynamic batch and its class names in the metadata.

    Args:
        model: a SpecNet (its whitening layer, when it has one, is an ordinary Conv2d and exports as one).
        input_shape: (C, H, W) of one image.
        destination: a file path, or a binary buffer the bytes are written to.
        classes: the class names, one per logit (default "0", "1", ...).
        mean, std: the per-channel normalization the input must have had (stored as metadata).
        dataset: the dataset the model was trained on (metadata).
        test_time_augmentation: include the model's test-time augmentation (the answer cnnviz gives);
            False exports the plain ``model(images)``.
        opset: the ONNX opset.

    Returns:
        The model written, checked with ``onnx.checker``.

    Raises:
        ValueError: for class names that do not match the model, or a path that cannot be written.
    """
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(model.num_classes)]
    if len(names) != model.num_classes:
        raise ValueError(f"The model has {model.num_classes} outputs but {len(names)} class names "
                         "were given.")
    tta = augmentation_of(model) if test_time_augmentation else NO_TTA
    with eval_mode(model):
        proto = _traced_proto(_AnswerWithViews(model, tta).eval(), input_shape, opset)
    _name_output_dims(proto, model.num_classes)
    properties = {
        "classes": json.dumps(names),
        "spec": model.spec,
        "input": f"{INPUT_NAME}: float32 (N, {', '.join(map(str, input_shape))}), (pixel / 255 - mean) / std "
                 "per channel",
        "test_time_augmentation": json.dumps({"mirror": tta.mirror, "shift": tta.shift}),
    }
    if mean is not None and std is not None:
        properties["mean"], properties["std"] = json.dumps(list(mean)), json.dumps(list(std))
    if dataset:
        properties["dataset"] = dataset
    onnx.helper.set_model_props(proto, properties)
    proto.doc_string = f"cnnviz network '{model.spec}': {OUTPUT_NAME} for the classes {', '.join(names)}"
    onnx.checker.check_model(proto)
    _write(proto.SerializeToString(), destination)
    return proto


def onnx_class_names(proto: onnx.ModelProto) -> list[str]:
    """The class names an exported model carries in its metadata."""
    properties = {prop.key: prop.value for prop in proto.metadata_props}
    return list(json.loads(properties["classes"]))


def _traced_proto(module: nn.Module, input_shape: tuple[int, int, int], opset: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    example = torch.zeros(1, *input_shape)  # (1, C, H, W)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation on every call (see the module's docstring).
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        # and notes that it cannot fold the reversed slices of a mirrored view (they run as Slice).
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(
            module, (example,), buffer, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}},
        )
    return onnx.load_from_string(buffer.getvalue())


def _name_output_dims(proto: onnx.ModelProto, classes: int) -> None:
    # The exporter's shape inference loses the class axis behind the views' weighted sum and names it
    # "Addlogits_dim_1"; Netron and a runtime read (batch, classes) once it is written out.
    batch, logits = proto.graph.output[0].type.tensor_type.shape.dim
    batch.dim_param = BATCH_AXIS
    logits.dim_value = classes


def _write(data: bytes, destination: str | os.PathLike | BinaryIO) -> None:
    if hasattr(destination, "write"):
        destination.write(data)
        return
    path = Path(destination)
    try:
        path.write_bytes(data)
    except OSError as error:
        raise ValueError(f"Cannot write the ONNX file {path}: {error.strerror or error}. "
                         "Choose a folder you can write to.") from error
