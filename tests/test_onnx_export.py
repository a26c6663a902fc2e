"""The shipped models as ONNX: the graph checks, and onnxruntime answers as PyTorch on real test images."""

from __future__ import annotations

import io
from collections import Counter

import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from cnnviz import paths
from cnnviz.datasets import files as data
from cnnviz.networks.build import build_model
from cnnviz.networks.onnx_export import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME, export_onnx, onnx_class_names
from cnnviz.networks.tta import class_logits
from cnnviz.training.checkpoint import LoadedModel, load_checkpoint
from cnnviz.training.step import normalize


def _export(loaded: LoadedModel, **options) -> tuple[bytes, onnx.ModelProto]:
    buffer = io.BytesIO()
    proto = export_onnx(loaded.model, loaded.input_shape, buffer, classes=loaded.classes, mean=loaded.mean,
                        std=loaded.std, dataset=loaded.dataset, **options)
    return buffer.getvalue(), proto


def _test_images(loaded: LoadedModel, data_dir, count: int) -> torch.Tensor:
    test = data.load_dataset(loaded.dataset, "test", data_dir, download=False)
    pixels = test.images[:count].float()  # (N, C, H, W)
    mean = torch.tensor(loaded.mean).view(1, -1, 1, 1)  # (1, C, 1, 1)
    return normalize(pixels, mean, torch.tensor(loaded.std).view(1, -1, 1, 1))


@pytest.fixture(scope="module", params=["mnist", "cifar10"])
def shipped(request) -> LoadedModel:
    loaded = load_checkpoint(paths.MODELS_DIR / f"{request.param}.pt")
    assert not loaded.model.training
    return loaded


def test_the_graph_checks_and_has_the_model_shapes_and_layers(shipped: LoadedModel):
    data_bytes, proto = _export(shipped)
    onnx.checker.check_model(onnx.load_from_string(data_bytes), full_check=True)
    assert proto.opset_import[0].version == ONNX_OPSET
    (graph_input,), (graph_output,) = proto.graph.input, proto.graph.output
    assert graph_input.name == INPUT_NAME and graph_output.name == OUTPUT_NAME
    input_dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    output_dims = [d.dim_param or d.dim_value for d in graph_output.type.tensor_type.shape.dim]
    assert input_dims == ["batch", *shipped.input_shape]
    assert output_dims == ["batch", len(shipped.classes)]
    ops = Counter(node.op_type for node in proto.graph.node)
    modules = list(shipped.model.modules())
    assert ops["Conv"] == sum(isinstance(m, nn.Conv2d) for m in modules)
    assert ops["Gemm"] == sum(isinstance(m, nn.Linear) for m in modules)
    assert ops["MaxPool"] == sum(isinstance(m, nn.MaxPool2d) for m in modules)
    assert onnx_class_names(proto) == shipped.classes
    properties = {p.key: p.value for p in proto.metadata_props}
    assert properties["spec"] == shipped.spec and properties["dataset"] == shipped.dataset


@pytest.mark.parametrize("batch", [1, 7])
def test_onnxruntime_answers_as_pytorch_on_real_test_images(shipped: LoadedModel, real_data_dir, batch: int):
    data_bytes, _ = _export(shipped)
    session = onnxruntime.InferenceSession(data_bytes, providers=["CPUExecutionProvider"])
    images = _test_images(shipped, real_data_dir, batch)
    (logits,) = session.run(None, {INPUT_NAME: images.numpy()})
    with torch.no_grad():
        expected = class_logits(shipped.model, images)  # the model's answer, its mirror views included
    assert logits.shape == (batch, len(shipped.classes))
    torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=1e-4)
    if shipped.model.tta.active:  # the averaged answer differs from one plain forward pass
        with torch.no_grad():
            assert (shipped.model(images) - expected).abs().max() > 1e-3


def test_without_test_time_augmentation_the_graph_is_the_plain_forward(real_data_dir):
    loaded = load_checkpoint(paths.MODELS_DIR / "cifar10.pt")
    assert loaded.model.tta.mirror
    data_bytes, _ = _export(loaded, test_time_augmentation=False)
    images = _test_images(loaded, real_data_dir, 7)
    (logits,) = onnxruntime.InferenceSession(data_bytes).run(None, {INPUT_NAME: images.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), loaded.model(images), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mirror,shift", [(False, True), (True, True)])
def test_every_test_time_augmentation_exports_as_cnnviz_computes_it(mirror: bool, shift: bool):
    from cnnviz.networks.tta import TestTimeAugmentation

    torch.manual_seed(0)
    tta = TestTimeAugmentation(mirror=mirror, shift=shift)
    model = build_model("C8n M C16 F32 D0.5", 3, 5, 12, tta).eval()
    buffer = io.BytesIO()
    export_onnx(model, (3, 12, 12), buffer, classes=list("abcde"))
    images = torch.randn(3, 3, 12, 12)
    (logits,) = onnxruntime.InferenceSession(buffer.getvalue()).run(None, {INPUT_NAME: images.numpy()})
    with torch.no_grad():
        expected = class_logits(model, images)
    torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-5, rtol=1e-5)


def test_the_whitening_layer_of_the_speed_presets_exports(real_data_dir):
    from cnnviz.training.presets import NET_PRESETS
    from cnnviz.training.whitening import init_whitening, whitening_layer

    spec = NET_PRESETS["cifar10_speed"].spec
    model = build_model(spec, 3, 10, 32).eval()
    images = _test_images(load_checkpoint(paths.MODELS_DIR / "cifar10.pt"), real_data_dir, 64)
    conv = whitening_layer(model, True)
    assert conv is not None and init_whitening(conv, images)
    buffer = io.BytesIO()
    export_onnx(model, (3, 32, 32), buffer)
    (logits,) = onnxruntime.InferenceSession(buffer.getvalue()).run(None, {INPUT_NAME: images[:7].numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(images[:7]), atol=1e-4, rtol=1e-4)


def test_bad_class_names_and_unwritable_paths_get_a_sentence(tmp_path):
    model = build_model("C4 F8", 1, 3, 8)
    with pytest.raises(ValueError, match="3 outputs but 2 class names"):
        export_onnx(model, (1, 8, 8), io.BytesIO(), classes=["a", "b"])
    with pytest.raises(ValueError, match="Cannot write the ONNX file"):
        export_onnx(model, (1, 8, 8), tmp_path / "missing-folder" / "model.onnx")
    export_onnx(model, (1, 8, 8), tmp_path / "model.onnx")
    assert onnx_class_names(onnx.load(tmp_path / "model.onnx")) == ["0", "1", "2"]


def test_exporting_leaves_the_model_in_the_mode_it_was_in():
    model = build_model("C4n F8", 1, 3, 8)
    for training in (True, False):
        model.train(training)
        export_onnx(model, (1, 8, 8), io.BytesIO())
        assert all(module.training == training for module in model.modules())
