"""A trained layer on the Convolution page: its steps equal the layer's own output (F.conv2d with the
layer's weight and bias, and the forward pass of the model), for every conv layer of the shipped models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.convolution.learned import LearnedConvolution
from cnnviz.datasets.files import load_dataset
from cnnviz.explorer.handoff import first_layer_kernels, learned_convolution
from cnnviz.explorer.layers import net_layers, trace
from cnnviz.images.preprocess import normalize_image
from cnnviz.networks.build import build_model
from cnnviz.training.checkpoint import load_checkpoint
from tests.conftest import REPO

SHIPPED = ["mnist", "cifar10"]


def shipped_trace(name: str, real_data_dir, index: int = 0):
    loaded = load_checkpoint(REPO / "models" / f"{name}.pt")
    images = load_dataset(name, "test")
    image = normalize_image(images.images[index], loaded.mean, loaded.std)
    return loaded, trace(loaded.model, image)


def hook_outputs(model: nn.Module, image: torch.Tensor) -> dict[int, torch.Tensor]:
    """Every numbered layer's output through forward hooks on nn.Sequential's own run."""
    seen: dict[int, torch.Tensor] = {}

    def keep(number: int):
        def hook(module, args, output) -> None:  # returns None: a returned value would replace the output
            seen.setdefault(number, output.detach().clone())
        return hook

    hooks = [layer.module.register_forward_hook(keep(layer.number)) for layer in net_layers(model)]
    with torch.no_grad():
        model.classifier(model.features(image))
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("name", SHIPPED)
def test_every_conv_layer_of_the_shipped_models_equals_its_forward_pass(name, real_data_dir):
    loaded, traced = shipped_trace(name, real_data_dir)
    model = loaded.model
    hooked = hook_outputs(model, traced.input)
    convs = [layer for layer in net_layers(model) if isinstance(layer.module, nn.Conv2d)]
    assert len(convs) >= 2
    for layer in convs:
        conv = layer.module
        for out_channel in (0, conv.out_channels - 1):
            learned = learned_convolution(model, traced, layer.number, out_channel, model_name=loaded.name)
            assert learned.label.startswith(f"layer {layer.number} (Conv2d")
            steps = learned.steps()
            reference = F.conv2d(traced.layer_input(layer.number), conv.weight[out_channel: out_channel + 1],
                                 None if conv.bias is None else conv.bias[out_channel: out_channel + 1],
                                 conv.stride, conv.padding, conv.dilation)[0, 0].detach().numpy()
            np.testing.assert_allclose(steps.output[0], reference, atol=1e-5)
            np.testing.assert_allclose(steps.output[0], hooked[layer.number][0, out_channel], atol=1e-5)
            partial = learned.channel_sums()
            assert partial.shape[0] == conv.in_channels
            np.testing.assert_allclose(partial.sum(axis=0) + learned.bias, reference, atol=1e-5)
            one = learned.steps(conv.in_channels - 1)  # one channel: its partial sums, no bias
            np.testing.assert_allclose(one.output[0], partial[-1], atol=1e-9)


@pytest.mark.parametrize("spec", ["C4k2 F10", "C4k4s1 C6k2 F10", "C3k3s2p1 C5k4 F10"])
def test_same_padding_with_an_even_kernel_pads_one_more_after_as_pytorch_does(spec):
    torch.manual_seed(1)
    model = build_model(spec, 1, 10, 12)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.bias is not None:
                module.bias.uniform_(-1, 1)
    traced = trace(model, torch.randn(1, 1, 12, 12))
    for layer in net_layers(model):
        if isinstance(layer.module, nn.Conv2d):
            learned = learned_convolution(model, traced, layer.number, 1)
            expected = traced.outputs[layer.number][0, 1].numpy()
            np.testing.assert_allclose(learned.steps().output[0], expected, atol=1e-5)
            np.testing.assert_allclose(learned.output, expected)


def test_a_layer_without_kernels_gets_one_sentence():
    model = build_model("C4 M F10", 1, 10, 12)
    traced = trace(model, torch.zeros(1, 1, 12, 12))
    relu = next(layer for layer in net_layers(model) if layer.kind == "ReLU")
    sentence = f"Layer {relu.number} is a ReLU: only convolution layers have kernels"
    with pytest.raises(ValueError, match=sentence):
        learned_convolution(model, traced, relu.number, 0)
    with pytest.raises(ValueError, match="Channel 4 does not exist"):
        learned_convolution(model, traced, 0, 4)
    with pytest.raises(ValueError, match="does not exist"):
        learned_convolution(model, traced, 99, 0)
    with pytest.raises(ValueError, match="Input channel 1 does not exist"):
        learned_convolution(model, traced, 0, 0, in_channel=1)


def test_first_layer_kernels_are_the_first_conv_s_weights():
    model = build_model("C6k5 C8 F10", 3, 10, 16)
    kernels = first_layer_kernels(model)
    assert len(kernels) == 6 and kernels[0].shape == (3, 5, 5)
    np.testing.assert_array_equal(np.stack(kernels), model.features[0].weight.detach().numpy())
    residual = build_model("R8 G", 1, 10, 16)
    assert first_layer_kernels(residual)[0].shape == (1, 3, 3)
    with pytest.raises(ValueError, match="no convolution layer"):
        first_layer_kernels(build_model("F64", 1, 10, 16))


def test_the_key_names_the_numbers():
    base = dict(label="x", model_name="m", layer_number=0, out_channel=0,
                input=np.ones((2, 4, 4), np.float32), kernels=np.ones((2, 3, 3), np.float32),
                bias=0.5, stride=1, padding=1, dilation=1,
                output=np.zeros((4, 4), np.float32))
    first = LearnedConvolution(**base)
    assert first.key() == LearnedConvolution(**base).key()
    assert first.key() != LearnedConvolution(**{**base, "input": np.full((2, 4, 4), 2, np.float32)}).key()
    with pytest.raises(ValueError, match="same number of channels"):
        LearnedConvolution(**{**base, "kernels": np.ones((3, 3, 3), np.float32)})
