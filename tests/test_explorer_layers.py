"""The explorer's layer numbering and trace: the summary's order, and the model's own forward pass."""

import pytest
import torch

from cnnviz.explorer.layers import find_layer, net_layers, trace
from cnnviz.networks.build import build_model
from cnnviz.networks.summary import summarize_model

SPECS = ["C8 M F10", "C8nm C16n M D0.2 F32", "R8 R16 G", "C8k5s2p0 A2 F16 D0.5"]


@pytest.mark.parametrize("spec", SPECS)
def test_layers_are_numbered_as_the_summary_rows(spec):
    model = build_model(spec, 1, 10, 28)
    rows = summarize_model(model).layers
    layers = net_layers(model)
    assert [(r.part, r.index, r.kind) for r in rows] == [(n.part, n.index, n.kind) for n in layers]
    assert [n.number for n in layers] == list(range(len(rows)))


@pytest.mark.parametrize("spec", SPECS)
def test_the_trace_ends_in_the_model_s_own_logits_and_equals_forward_hooks(spec):
    torch.manual_seed(0)
    model = build_model(spec, 1, 10, 28)
    for module in model.modules():  # running statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    model.eval()
    image = torch.randn(1, 1, 28, 28)
    seen = []
    hooks = [layer.module.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
             for layer in net_layers(model)]
    with torch.no_grad():
        logits = model.classifier(model.features(image))  # nn.Sequential's own order
    for hook in hooks:
        hook.remove()
    traced = trace(model, image)
    assert len(traced.outputs) == len(seen)
    for mine, hooked in zip(traced.outputs, seen, strict=True):
        torch.testing.assert_close(mine, hooked, rtol=0, atol=0)
    torch.testing.assert_close(traced.outputs[-1], model(image), rtol=1e-6, atol=1e-6)
    assert traced.outputs[-1].shape == logits.shape


def test_a_layer_that_does_not_exist_is_named_with_the_range():
    model = build_model("C8 F10", 1, 10, 28)
    with pytest.raises(ValueError, match="layers 0 to 5"):
        find_layer(model, 6)
