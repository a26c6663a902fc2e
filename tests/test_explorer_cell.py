"""A picked cell's computation: every number equals the model's own forward pass (forward hooks and
torch.nn.functional), for the shipped models on real test images and for random specs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.datasets.files import load_dataset
from cnnviz.explorer.cell import Cell, check_cell, explain_cell
from cnnviz.explorer.cell_terms import (
    AvgPoolStep,
    BatchNormStep,
    ConvStep,
    DropoutStep,
    FlattenStep,
    InputStep,
    LinearStep,
    MaxPoolStep,
    ReluStep,
    ResidualStep,
)
from cnnviz.explorer.cell_text import explanation_text
from cnnviz.explorer.layers import net_layers, trace
from cnnviz.images.preprocess import normalize_image
from cnnviz.networks.build import ResidualBlock, build_model
from cnnviz.networks.spec import SpecError
from cnnviz.training.checkpoint import load_checkpoint
from tests.conftest import REPO

TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(autouse=True)
def one_thread():
    """One thread, as the pages predict with (on a shared 2-core machine torch's pool is 10-40x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOL["rtol"], abs_tol=TOL["atol"])


class Hooked:
    """Every numbered layer's output and every residual block's inner outputs, from forward hooks on
    the model's own ``nn.Sequential`` forward pass (cloned: the ReLUs work in place)."""

    def __init__(self, model: nn.Module, image: torch.Tensor) -> None:
        self.image = image
        self.layers = net_layers(model)
        self.outputs: dict[int, torch.Tensor] = {}
        self.inner: dict[tuple[int, str], torch.Tensor] = {}
        hooks = []
        for layer in self.layers:
            hooks.append(layer.module.register_forward_hook(self._keep(("layer", layer.number))))
            if isinstance(layer.module, ResidualBlock):
                for name, sub in [("conv2", layer.module.body[3]), ("bn2", layer.module.body[4]),
                                  ("relu2", layer.module.body[5]), ("shortcut", layer.module.shortcut)]:
                    hooks.append(sub.register_forward_hook(self._keep((layer.number, name))))
                if not isinstance(layer.module.shortcut, nn.Identity):
                    hooks.append(layer.module.shortcut[0].register_forward_hook(
                        self._keep((layer.number, "shortcut_conv"))))
                hidden = layer.module.body[2]  # h = ReLU(BN(conv1(x))): the second conv's input
                hooks.append(hidden.register_forward_hook(self._keep((layer.number, "hidden"))))
        model.eval()
        with torch.no_grad():
            self.logits = model.classifier(model.features(image))
        for hook in hooks:
            hook.remove()
        self.traced = trace(model, image)

    def _keep(self, key):
        def hook(module, inputs, output):
            if key[0] == "layer":
                self.outputs[key[1]] = output.detach().clone()
            else:
                self.inner[key] = output.detach().clone()
        return hook

    def below(self, number: int) -> torch.Tensor:
        return self.image if number == 0 else self.outputs[number - 1]


def value_at(x: torch.Tensor, cell: Cell) -> float:
    return float(x[0, cell.channel, cell.row, cell.col] if x.dim() == 4 else x[0, cell.channel])


def check_conv(step: ConvStep, conv: nn.Conv2d, x: torch.Tensor, output: float, top: int) -> None:
    """Each channel's window, kernel, products and partial sum, against a per-channel F.conv2d."""
    c_in = x.shape[1]
    weight = conv.weight[step.cell.channel].detach()
    # groups=c_in: output channel c is input channel c convolved with its own kernel slice alone
    partial = F.conv2d(x, weight.unsqueeze(1), None, conv.stride, conv.padding, conv.dilation,
                       groups=c_in)[0, :, step.cell.row, step.cell.col].double()
    assert step.in_channels == c_in
    assert len(step.channels) == min(top, c_in)
    shown = [ch.channel for ch in step.channels]
    assert len(set(shown)) == len(shown)
    smallest_shown = min(abs(ch.partial_sum) for ch in step.channels)
    others = [c for c in range(c_in) if c not in shown]
    assert all(abs(float(partial[c])) <= smallest_shown + 1e-6 for c in others)
    height, width = x.shape[-2:]
    for ch in step.channels:
        assert close(ch.partial_sum, float(partial[ch.channel]))
        window, kernel, products = (np.array(m) for m in (ch.window, ch.kernel, ch.products))
        np.testing.assert_allclose(kernel, weight[ch.channel].double().numpy(), rtol=0, atol=0)
        np.testing.assert_allclose(products, window * kernel, rtol=1e-12, atol=1e-12)
        assert math.isclose(products.sum(), ch.partial_sum, abs_tol=1e-9)
        for i, r in enumerate(step.rows):
            for j, c in enumerate(step.cols):
                outside = not (0 <= r < height and 0 <= c < width)
                assert step.padding[i][j] == outside
                expected = 0.0 if outside else float(x[0, ch.channel, r, c])
                assert ch.window[i][j] == expected
    if others:
        assert step.rest is not None and step.rest.count == len(others)
        assert close(step.rest.total, float(partial[others].sum()))
    else:
        assert step.rest is None
    bias = None if conv.bias is None else float(conv.bias[step.cell.channel].detach())
    assert step.bias == bias
    rest = step.rest.total if step.rest else 0.0
    total = sum(ch.partial_sum for ch in step.channels) + rest + (bias or 0)
    assert math.isclose(total, step.result, abs_tol=1e-9)  # the partial sums + bias add up to the value
    assert close(step.result, output)


def check_norm(step: BatchNormStep, norm: nn.BatchNorm2d, x: torch.Tensor, output: float) -> None:
    c = step.cell.channel
    assert step.x == value_at(x, step.cell)
    assert (step.mean, step.var, step.eps) == (float(norm.running_mean[c]), float(norm.running_var[c]),
                                               norm.eps)
    assert (step.weight, step.bias) == (float(norm.weight[c].detach()), float(norm.bias[c].detach()))
    functional = F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight.detach(),
                              norm.bias.detach(), False, 0.0, norm.eps)
    assert close(step.result, value_at(functional, step.cell))
    assert close(step.result, output)


def check_residual(step: ResidualStep, block: ResidualBlock, hooked: Hooked, top: int) -> None:
    n, cell = step.layer, step.cell
    inner = {name: value_at(hooked.inner[(n, name)], cell)
             for name in ("conv2", "bn2", "relu2", "shortcut")}
    check_conv(step.body_conv, block.body[3], hooked.inner[(n, "hidden")], inner["conv2"], top)
    check_norm(step.body_norm, block.body[4], hooked.inner[(n, "conv2")], inner["bn2"])
    assert step.body_relu.x == inner["bn2"] and step.body_relu.result == inner["relu2"]
    x = hooked.below(n)
    assert close(step.shortcut, inner["shortcut"])
    if isinstance(block.shortcut, nn.Identity):
        assert step.shortcut_conv is None and step.shortcut_norm is None
        assert step.shortcut_x == value_at(x, cell) == step.shortcut
    else:
        conv_out = hooked.inner[(n, "shortcut_conv")]
        check_conv(step.shortcut_conv, block.shortcut[0], x, value_at(conv_out, cell), top)
        check_norm(step.shortcut_norm, block.shortcut[1], conv_out, inner["shortcut"])
    assert close(step.result, step.shortcut + step.body_relu.result)


def check_pool(step, module, x, output: float) -> None:
    window = np.array(step.window)
    if isinstance(step, MaxPoolStep):
        _, indices = F.max_pool2d(x, module.kernel_size, module.stride, module.padding, module.dilation,
                                  return_indices=True)
        flat = int(indices[0, step.cell.channel, step.cell.row, step.cell.col])
        assert divmod(flat, x.shape[-1]) == step.winner  # PyTorch's own winner (ties: its first maximum)
        assert step.result == value_at(x, type(step.cell)(0, step.cell.channel, *step.winner)) == output
        assert step.result == window.max()
    else:
        assert math.isclose(step.total, window.sum(), abs_tol=1e-9)
        assert close(step.total / step.divisor, output) and step.result == step.total / step.divisor


def check_linear(step: LinearStep, linear: nn.Linear, x: torch.Tensor, output: float, top: int,
                 hooked: Hooked) -> None:
    weights = linear.weight[step.cell.channel].detach().double()
    inputs = x[0].double()
    products = weights * inputs
    assert step.in_features == inputs.numel() and len(step.terms) == min(top, inputs.numel())
    shown = [t.index for t in step.terms]
    for term in step.terms:
        assert (term.x, term.weight) == (float(inputs[term.index]), float(weights[term.index]))
        assert math.isclose(term.product, term.x * term.weight, abs_tol=1e-12)
        if term.source is not None:  # the first dense layer: where on the maps this input came from
            flatten = next(layer.number for layer in hooked.layers if isinstance(layer.module, nn.Flatten))
            flattened = hooked.below(flatten)
            assert float(flattened[0][term.source]) == term.x
    others = [i for i in range(inputs.numel()) if i not in shown]
    assert all(abs(float(products[i])) <= min(abs(t.product) for t in step.terms) + 1e-9 for i in others)
    rest = step.rest.total if step.rest else 0.0
    assert (step.rest.count if step.rest else 0) == len(others)
    assert close(rest, float(products[others].sum()) if others else 0.0)
    assert close(sum(t.product for t in step.terms) + rest + (step.bias or 0.0), step.result)
    assert close(step.result, output)


def check_step(step, hooked: Hooked, top_channels: int, top_terms: int) -> None:
    """One step's numbers against the hooked forward pass."""
    if isinstance(step, InputStep):
        assert step.layer == -1 and step.result == value_at(hooked.image, step.cell)
        return
    module = hooked.layers[step.layer].module
    x, output = hooked.below(step.layer), value_at(hooked.outputs[step.layer], step.cell)
    if isinstance(step, ConvStep):
        check_conv(step, module, x, output, top_channels)
    elif isinstance(step, BatchNormStep):
        check_norm(step, module, x, output)
    elif isinstance(step, ReluStep):
        assert step.x == value_at(x, step.cell) and step.result == output == max(step.x, 0.0)
    elif isinstance(step, DropoutStep):
        assert step.x == value_at(x, step.cell) == step.result == output and step.p == module.p
    elif isinstance(step, MaxPoolStep | AvgPoolStep):
        check_pool(step, module, x, output)
    elif isinstance(step, FlattenStep):
        assert step.result == output == float(x[0][step.source[:x.dim() - 1]])
    elif isinstance(step, LinearStep):
        check_linear(step, module, x, output, top_terms, hooked)
    else:
        assert isinstance(step, ResidualStep)
        check_residual(step, module, hooked, top_channels)
        assert close(step.result, output)


def check_explanation(model: nn.Module, hooked: Hooked, cell: Cell, top_channels: int = 4,
                      top_terms: int = 8) -> None:
    """Every step of the cell's explanation against the hooked forward pass."""
    explanation = explain_cell(model, hooked.traced, cell, top_channels, top_terms)
    assert explanation.cell == cell
    assert explanation.value == value_at(hooked.outputs[cell.layer], cell)
    assert close(explanation.steps[-1].result, explanation.value)
    assert explanation.steps[-1].cell == cell
    for step in explanation.steps:
        check_step(step, hooked, top_channels, top_terms)
    # the chain is connected: each step's cell is the one the next step reads
    for before, after in zip(explanation.steps, explanation.steps[1:], strict=False):
        where = (after.cell.channel, after.cell.row, after.cell.col)
        if isinstance(after, MaxPoolStep):
            where = (after.cell.channel, *after.winner)
        elif isinstance(after, FlattenStep):
            where = after.source
        assert before.cell == Cell(after.layer - 1, *where)
    assert isinstance(explanation.steps[0], ConvStep | LinearStep | ResidualStep | AvgPoolStep | InputStep)
    json.dumps(explanation.to_dict())
    assert f"{explanation.value:.6f}" in explanation_text(explanation)


def cells_of(hooked: Hooked, number: int, rng: np.random.Generator, count: int) -> list[Cell]:
    """The first and last cell of a layer and ``count`` random ones."""
    shape = tuple(hooked.outputs[number].shape[1:])
    if len(shape) == 1:
        return [Cell(number, 0), Cell(number, shape[0] - 1)] + [
            Cell(number, int(rng.integers(shape[0]))) for _ in range(count)]
    channels, height, width = shape
    return [Cell(number, 0, 0, 0), Cell(number, channels - 1, height - 1, width - 1)] + [
        Cell(number, int(rng.integers(channels)), int(rng.integers(height)), int(rng.integers(width)))
        for _ in range(count)]


@pytest.fixture(scope="module", params=["mnist", "cifar10"])
def shipped(request, real_data_dir):
    loaded = load_checkpoint(REPO / "models" / f"{request.param}.pt")
    test = load_dataset(request.param, "test", data_dir=real_data_dir)
    return loaded, test


def test_every_layer_of_the_shipped_models_on_real_test_images(shipped):
    loaded, test = shipped
    rng = np.random.default_rng(0)
    for index in (0, 1234, 9999):
        image = normalize_image(test.images[index], loaded.mean, loaded.std)
        hooked = Hooked(loaded.model, image)
        torch.testing.assert_close(hooked.logits, loaded.model(image), rtol=1e-5, atol=1e-5)
        for layer in hooked.layers:
            for cell in cells_of(hooked, layer.number, rng, 4):
                check_explanation(loaded.model, hooked, cell)


def test_the_shipped_models_logits_show_their_softmax(shipped):
    loaded, test = shipped
    image = normalize_image(test.images[7], loaded.mean, loaded.std)
    logits = loaded.model(image)[0].detach()
    last = len(net_layers(loaded.model)) - 1
    for unit in range(loaded.model.num_classes):
        explanation = explain_cell(loaded.model, image, Cell(last, unit), classes=loaded.classes)
        softmax = explanation.softmax
        assert softmax.label == loaded.classes[unit]
        assert close(softmax.probability, float(torch.softmax(logits, 0)[unit]))
        assert close(explanation.value, float(logits[unit]))
    assert explain_cell(loaded.model, image, Cell(last - 1, 0)).softmax is None


def test_many_input_channels_show_the_largest_and_the_rest_adds_up(shipped):
    loaded, test = shipped
    image = normalize_image(test.images[3], loaded.mean, loaded.std)
    hooked = Hooked(loaded.model, image)
    convs = [layer.number for layer in hooked.layers if isinstance(layer.module, nn.Conv2d)]
    for top in (1, 3, 1000):
        check_explanation(loaded.model, hooked, Cell(convs[-1], 2, 1, 1), top_channels=top, top_terms=top)


def random_spec(draw) -> str:
    tokens = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["C", "C", "R", "M", "A", "D"]))
        if kind == "C":
            token = f"C{draw(st.integers(1, 5))}k{draw(st.integers(1, 4))}"
            if draw(st.booleans()):
                token += f"s{draw(st.integers(1, 3))}"
            if draw(st.booleans()):
                token += f"p{draw(st.integers(0, 2))}"
            token += draw(st.sampled_from(["", "n", "m", "nm"]))
        elif kind == "R":
            token = f"R{draw(st.integers(1, 5))}"
        elif kind in "MA":
            token = f"{kind}{draw(st.integers(1, 3))}"
        else:
            token = "D0.3"
        tokens.append(token)
    if draw(st.booleans()):
        tokens.append("G")
    for _ in range(draw(st.integers(0, 2))):
        tokens.append(f"F{draw(st.integers(1, 12))}")
        if draw(st.booleans()):
            tokens.append("D0.5")
    return " ".join(tokens) or "F8"


@st.composite
def random_models(draw):
    spec = random_spec(draw)
    channels, size = draw(st.integers(1, 3)), draw(st.integers(5, 12))
    try:
        model = build_model(spec, channels, draw(st.integers(2, 5)), size)
    except SpecError:
        from hypothesis import reject

        reject()
    return model, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(random_models())
def test_random_specs_with_random_batchnorm_statistics(model_and_seed):
    model, seed = model_and_seed
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.rand(module.num_features, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.randn(module.num_features, generator=generator))
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.3)
    image = torch.randn(1, *model.input_shape, generator=generator)
    hooked = Hooked(model, image)
    rng = np.random.default_rng(seed)
    for layer in hooked.layers:
        for cell in cells_of(hooked, layer.number, rng, 2):
            check_explanation(model, hooked, cell, top_channels=int(rng.integers(1, 4)),
                              top_terms=int(rng.integers(1, 6)))


@pytest.mark.parametrize("spec", ["C3k2 C2k4 M F4", "C2k4s2 R3 A2 F5", "C2k3s2p0nm R2 G"])
def test_even_kernels_strides_and_shortcut_convolutions(spec):
    torch.manual_seed(1)
    model = build_model(spec, 2, 3, 11)
    hooked = Hooked(model, torch.randn(1, 2, 11, 11))
    rng = np.random.default_rng(1)
    for layer in hooked.layers:
        for cell in cells_of(hooked, layer.number, rng, 3):
            check_explanation(model, hooked, cell, top_channels=2, top_terms=3)


def test_an_even_same_kernel_pads_one_more_zero_after():
    model = build_model("C1k4 F2", 1, 2, 6)  # PyTorch "same": 1 zero before, 2 after
    image = torch.arange(36.0).reshape(1, 1, 6, 6)
    first = explain_cell(model, image, Cell(0, 0, 0, 0)).steps[0]
    last = explain_cell(model, image, Cell(0, 0, 5, 5)).steps[0]
    assert first.pad_before == (1, 1) and first.rows == (-1, 0, 1, 2) and first.cols == (-1, 0, 1, 2)
    assert last.rows == (4, 5, 6, 7) and last.padding[3] == (True,) * 4 and last.padding[1][1] is False


def test_max_pool_ties_go_to_the_first_maximum():
    model = build_model("M2 F2", 1, 2, 4)
    image = torch.tensor([[[[1.0, 3.0, 0.0, 0.0], [3.0, 3.0, 0.0, 0.0],
                            [5.0, 5.0, 2.0, 1.0], [5.0, 5.0, 2.0, 2.0]]]])
    hooked = Hooked(model, image)
    winners = [explain_cell(model, image, Cell(0, 0, r, c)).steps[-1].winner for r in (0, 1) for c in (0, 1)]
    assert winners == [(0, 1), (0, 2), (2, 0), (2, 2)]
    for r in (0, 1):
        for c in (0, 1):
            check_explanation(model, hooked, Cell(0, 0, r, c))


def test_a_cell_outside_its_layer_names_the_valid_ranges():
    model = build_model("C4 M F6", 1, 3, 8)
    traced = trace(model, torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="4 channels of 8x8: pick channel 0 to 3, row 0 to 7 and column 0 "):
        check_cell(model, traced, Cell(1, 0, 8, 0))
    with pytest.raises(ValueError, match="channel 0 to 3"):
        explain_cell(model, traced, Cell(2, 4, 0, 0))
    with pytest.raises(ValueError, match="6 units: pick channel \\(unit\\) 0 to 5, with row 0 and column 0"):
        explain_cell(model, traced, Cell(4, 1, 1, 0))
    with pytest.raises(ValueError, match="layers 0 to 6"):
        explain_cell(model, traced, Cell(7, 0))
    with pytest.raises(ValueError, match="row 0 to 7"):
        explain_cell(model, traced, Cell(0, 0, -1, 0))


def test_the_dict_is_plain_json_with_every_step_and_its_kind():
    model = build_model("C2n M R3 F4", 1, 2, 6)
    explanation = explain_cell(model, torch.randn(1, 1, 6, 6), Cell(5, 1))
    data = json.loads(json.dumps(explanation.to_dict()))
    assert data["cell"] == {"layer": 5, "channel": 1, "row": 0, "col": 0}
    assert [step["kind"] for step in data["steps"]] == [step.KIND for step in explanation.steps]
    assert data["value"] == explanation.value


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_dilation_and_padded_pools_that_no_spec_makes_yet(count_include_pad):
    torch.manual_seed(2)
    model = build_model("C2 M C3 A2 F3", 1, 2, 8)  # 8 -> 8 -> 4 -> 4 -> 2: swapped below, same shapes
    model.features[0] = nn.Conv2d(1, 2, 3, padding=2, dilation=2)
    model.features[2] = nn.MaxPool2d(3, stride=2, padding=1)
    model.features[5] = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=count_include_pad)
    hooked = Hooked(model, torch.randn(1, 1, 8, 8))
    rng = np.random.default_rng(3)
    for layer in hooked.layers:
        for cell in cells_of(hooked, layer.number, rng, 3):
            check_explanation(model, hooked, cell)
    corner = explain_cell(model, hooked.traced, Cell(2, 1, 0, 0))
    pool = corner.steps[-1]
    assert pool.padding[0] == (True, True, True) and pool.window[0][0] == -math.inf
    assert corner.to_dict()["steps"][-1]["window"][0] == [None, None, None]
    conv = corner.steps[0]
    assert conv.dilation == (2, 2) and conv.rows == (-2, 0, 2)
