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


# The page: AppTest opens the Convolution page as the explorer leaves it, and as a student picks a filter.

def _open_page(handoff: LearnedConvolution | None = None):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from cnnviz import pages
    from cnnviz.ui.navigation import page_spec

    st.cache_resource.clear()
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    app.run()
    if handoff is not None:
        app.session_state[pages.CONVOLUTION_HANDOFF_KEY] = handoff
    app.switch_page(str(page_spec(pages.CONVOLUTION_PAGE).path))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _charts(app) -> list[dict]:
    import json

    return [json.loads(c.proto.spec) for c in app.get("plotly_chart")]


def _last_output(figure: dict) -> np.ndarray:
    from cnnviz.ui.plotly_wire import decode_typed_array

    return decode_typed_array(figure["frames"][-1]["data"][1]["z"])


def test_the_page_runs_a_handed_over_layer_on_its_real_input_and_kernel(real_data_dir):
    from cnnviz.ui.plotly_wire import decode_typed_array

    loaded, traced = shipped_trace("mnist", real_data_dir)
    learned = learned_convolution(loaded.model, traced, 3, 5, in_channel=2, model_name=loaded.name)
    app = _open_page(learned)
    assert any("Running on **layer 3 of MNIST (shipped)**" in i.value for i in app.info)
    model_output = traced.outputs[3][0, 5].numpy()  # the model's own layer 3, channel 5
    charts = _charts(app)
    animation, summed = charts[0], charts[1]
    # the animation: input channel 2 alone with its kernel slice: its partial sums
    partial = F.conv2d(traced.layer_input(3)[:, 2:3], loaded.model.features[3].weight[5:6, 2:3],
                       padding=1)[0, 0].detach().numpy()
    np.testing.assert_allclose(_last_output(animation), partial, atol=1e-5)
    # the sum over the 16 channels plus the bias: the model's own output
    np.testing.assert_allclose(decode_typed_array(summed["data"][1]["z"]), model_output, atol=1e-5)
    table = app.dataframe[0].value
    row, col = (int(app.number_input(key=f"conv_sum_{axis}_{learned.key()}").value)
                for axis in ("row", "col"))
    assert table["term"].iloc[-1] == "= output" and len(table) == 8 + 3  # 8 channels, the other 8, bias
    assert abs(table["value"].iloc[-1] - model_output[row, col]) < 1e-5
    assert abs(table["value"].iloc[:-1].sum() - model_output[row, col]) < 1e-5
    # another channel: the animation follows it
    app.number_input(key=f"conv_learned_channel_{learned.key()}").set_value(7).run()
    assert not app.exception
    partial = F.conv2d(traced.layer_input(3)[:, 7:8], loaded.model.features[3].weight[5:6, 7:8],
                       padding=1)[0, 0].detach().numpy()
    np.testing.assert_allclose(_last_output(_charts(app)[0]), partial, atol=1e-5)
    # back to the presets: the hand-off is forgotten
    app.button(key="conv_back_to_presets").click().run()
    assert not app.exception and not any("Running on" in i.value for i in app.info)
    assert app.radio(key="conv_source").value == "tiny binary picture"


def test_the_rgb_first_layer_animates_all_three_channels_with_the_bias(real_data_dir):
    loaded, traced = shipped_trace("cifar10", real_data_dir, index=3)
    learned = learned_convolution(loaded.model, traced, 0, 11, model_name=loaded.name)
    app = _open_page(learned)
    model_output = traced.outputs[0][0, 11].numpy()  # 31x31: the frames are spread, the last fills the map
    np.testing.assert_allclose(_last_output(_charts(app)[0]), model_output, atol=1e-5)
    table = app.dataframe[0].value  # one cell's sum over the image's colours
    row, col = (int(app.number_input(key=f"conv_sum_{axis}_{learned.key()}").value)
                for axis in ("row", "col"))
    assert sorted(table["term"].iloc[:3]) == [f"input channel {c} ({n})" for c, n in enumerate("RGB")]
    assert abs(table["value"].iloc[-1] - model_output[row, col]) < 1e-5


def test_the_kernel_can_come_from_a_trained_model_s_first_layer():
    from cnnviz.ui.plotly_wire import decode_typed_array

    app = _open_page()
    app.radio(key="conv_kernel_source").set_value("a trained model's first layer").run()
    assert not app.exception, [e.value for e in app.exception]
    model = load_checkpoint(REPO / "models" / "mnist.pt").model
    weight = model.features[0].weight.detach().numpy()  # (16, 1, 5, 5), stride 2, padding 2
    kernel = decode_typed_array(_charts(app)[0]["data"][1]["z"])
    np.testing.assert_allclose(kernel, weight[0, 0], atol=1e-6)
    assert len(app.get("image")[0].proto.imgs) == 16  # every filter pictured small
    filters = next(s for s in app.selectbox if s.label.startswith("Filter of its first layer"))
    filters.set_value(9).run()
    kernel = decode_typed_array(_charts(app)[0]["data"][1]["z"])
    np.testing.assert_allclose(kernel, weight[9, 0], atol=1e-6)
    stride = next(n for n in app.number_input if n.label == "Stride")
    padding = next(s for s in app.selectbox if s.label.startswith("Padding"))
    assert (stride.value, padding.value) == (2, "2")  # the layer's own as the defaults
    # the CIFAR-10 model's RGB kernels on the gray picture: the sum of the colour slices
    model = next(s for s in app.selectbox if s.label == "Model")
    model.select_index(next(i for i, o in enumerate(model.options) if o.startswith("cifar10"))).run()
    assert not app.exception, [e.value for e in app.exception]
    weight = load_checkpoint(REPO / "models" / "cifar10.pt").model.features[0].weight.detach().numpy()
    kernel = decode_typed_array(_charts(app)[0]["data"][1]["z"])
    np.testing.assert_allclose(kernel, weight[0].sum(axis=0), atol=1e-6)
    assert any("on the gray picture the page uses their sum" in c.value for c in app.caption)


def test_back_to_the_explorer_switches_there_or_is_not_offered(real_data_dir):
    from cnnviz import pages
    from cnnviz.ui.navigation import PAGES

    loaded, traced = shipped_trace("mnist", real_data_dir)
    app = _open_page(learned_convolution(loaded.model, traced, 0, 3, model_name=loaded.name))
    keys = [b.key for b in app.button]
    if not any(spec.url_path == pages.EXPLORE_PAGE for spec in PAGES):  # the explorer page is not built yet
        assert keys == ["conv_back_to_presets"]
        return
    app.button(key="conv_back_to_explorer").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert not any("The convolution lab" in t.value for t in app.title)


def test_the_cell_picked_on_the_explorer_is_where_the_page_starts(real_data_dir):
    loaded, traced = shipped_trace("mnist", real_data_dir)
    learned = learned_convolution(loaded.model, traced, 3, 5, model_name=loaded.name, cell=(7, 7))
    # the input channel that adds most to that cell, from the layer's own weights (F.conv2d per channel)
    per_channel = F.conv2d(traced.layer_input(3), loaded.model.features[3].weight[5][:, None],
                           padding=1, groups=16)[0, :, 7, 7].detach().abs()
    strongest = int(per_channel.argmax())
    assert learned.strongest_channel(7, 7) == strongest
    app = _open_page(learned)
    assert not app.exception, [e.value for e in app.exception]
    value = float(traced.outputs[3][0, 5, 7, 7])
    assert any("row 7, column 7" in i.value and f"{value:.4f}" in i.value for i in app.info)
    assert app.number_input(key=f"conv_learned_channel_{learned.key()}").value == strongest
    assert [int(app.number_input(key=f"conv_sum_{axis}_{learned.key()}").value)
            for axis in ("row", "col")] == [7, 7]
    assert abs(app.dataframe[0].value["value"].iloc[-1] - value) < 1e-5
    assert any("the cell you picked on the explorer" in c.value for c in app.caption)
    with pytest.raises(ValueError, match="not on the 14x14 output"):
        learned_convolution(loaded.model, traced, 3, 5, cell=(14, 0))


def test_a_large_map_animates_the_region_around_the_picked_cell(real_data_dir):
    loaded, traced = shipped_trace("mnist", real_data_dir)
    learned = learned_convolution(loaded.model, traced, 3, 5, model_name=loaded.name, cell=(6, 9))
    app = _open_page(learned)  # 14 x 14 = 196 cells: more than one animation shows step by step
    assert not app.exception and not app.warning, [w.value for w in app.warning]
    assert app.radio(key="conv_large_view").value.startswith("every step of a 8x8 region")
    top, left = (int(app.number_input(key=k).value) for k in ("conv_region_top", "conv_region_left"))
    assert top <= 6 < top + 8 and left <= 9 < left + 8
    animation = _charts(app)[0]
    labels = [step["label"] for step in animation["layout"]["sliders"][0]["steps"]]
    assert any(label.replace(" ", "").endswith("(6,9)") for label in labels)
    app.button(key="conv_back_to_presets").click().run()  # the presets start on their own defaults again
    assert not app.exception, [e.value for e in app.exception]
    assert "conv_region_top" not in app.session_state


def test_a_one_channel_first_layer_says_one_input_channel(real_data_dir):
    loaded, traced = shipped_trace("mnist", real_data_dir)
    app = _open_page(learned_convolution(loaded.model, traced, 0, 4, model_name=loaded.name))
    captions = " ".join(c.value for c in app.caption)
    assert "runs on its one input channel with the real bias" in captions and "channel(s)" not in captions
    np.testing.assert_allclose(_last_output(_charts(app)[0]), traced.outputs[0][0, 4].numpy(), atol=1e-5)
