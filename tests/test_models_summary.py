"""SpecNet structure and the summary's counts, shapes and multiply-adds, checked against torch."""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.networks.build import (
    Dropout,
    ResidualBlock,
    build_model,
    initialize_parameters,
    set_dropout_generator,
)
from cnnviz.networks.summary import readable_count, summarize_model, summarize_spec, training_size_problem
from cnnviz.training.presets import NET_PRESETS
from cnnviz.training.recipes import find_preset

SPECS = [
    ("C32 C32 M D0.25 C64 C64 M D0.25 F128 D0.5", (1, 28, 28)),
    ("C8k5s2p1n A3 C16 G", (3, 32, 32)),
    ("C24k2p0 C32n M R32 C64n M R64 C128n M R128 G", (3, 32, 32)),
    ("C4 R8 M F16 D0.1 F12", (1, 28, 28)),
    ("C24k2p0 C32nm C32n C64nm C64n C128nm C128n G", (3, 32, 32)),
]


def _evaluate_formula(formula: str) -> int:
    """'3*3*1*32 + 32' -> 320, by arithmetic on the integers (no eval)."""
    total = 0
    for term in formula.split(" + "):
        product = 1
        for factor in term.split("*"):
            product *= int(factor)
        total += product
    return total


@pytest.mark.parametrize(("spec", "shape"), SPECS)
def test_summary_counts_equal_torch(spec, shape):
    summary = summarize_spec(spec, shape, num_classes=10)
    model = build_model(spec, shape[0], 10, shape[1])
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    for row in summary.layers:
        assert _evaluate_formula(row.formula) == row.params, row


@pytest.mark.parametrize(("spec", "shape"), SPECS)
def test_summary_shapes_follow_the_real_forward_pass(spec, shape):
    model = build_model(spec, shape[0], 10, shape[1]).eval()
    summary = summarize_model(model)
    x = torch.randn(2, *shape)
    shapes = []
    with torch.no_grad():
        for layer in [*model.features, *model.classifier]:
            x = layer(x)
            shapes.append(tuple(x.shape[1:]))
    assert [row.output_shape for row in summary.layers] == shapes
    assert shapes[-1] == (10,)


def test_conv_and_dense_multiply_adds():
    summary = summarize_spec("C32 M F64", (1, 28, 28))
    conv, _, _, _, dense, _, logits = summary.layers
    assert conv.mult_adds == 3 * 3 * 1 * 32 * 28 * 28
    assert dense.mult_adds == 32 * 14 * 14 * 64
    assert logits.mult_adds == 64 * 10
    assert summary.total_mult_adds == conv.mult_adds + dense.mult_adds + logits.mult_adds


def test_residual_block_counts_its_convolutions_and_shortcut():
    summary = summarize_spec("C8 R16", (1, 10, 10))
    block = summary.layers[2]
    assert block.kind == "ResidualBlock"
    # two 3x3 convs, a 1x1 projection (8 -> 16 channels), three BatchNorms
    assert block.params == 3 * 3 * 8 * 16 + 3 * 3 * 16 * 16 + 8 * 16 + 3 * 2 * 16
    assert block.mult_adds == (3 * 3 * 8 * 16 + 3 * 3 * 16 * 16 + 8 * 16) * 100


def test_residual_block_adds_the_shortcut():
    block = ResidualBlock(4, 4).eval()
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        assert torch.allclose(block(x), x + block.body(x))


def test_conv_with_batch_norm_has_no_bias():
    model = build_model("C8n C8", 1, 10, 8)
    conv_bn, conv_plain = model.features[0], model.features[3]
    assert conv_bn.bias is None and isinstance(model.features[1], nn.BatchNorm2d)
    assert conv_plain.bias is not None


@pytest.mark.parametrize("name", list(NET_PRESETS))
def test_presets_build_and_produce_logits(name):
    preset = NET_PRESETS[name]
    channels, size = (1, 28) if preset.dataset == "mnist" else (3, 32)
    model = build_model(find_preset(name).spec, channels, 10, size)
    assert model(torch.randn(2, channels, size, size)).shape == (2, 10)
    assert re.fullmatch(r"[A-Za-z0-9. ]+", model.spec)
    assert model.features(torch.randn(1, channels, size, size)).ndim == 4


def test_unknown_preset_is_a_friendly_error():
    with pytest.raises(ValueError, match="Unknown preset"):
        find_preset("resnet9000")


@pytest.mark.parametrize("name", sorted(NET_PRESETS))
def test_initialization_from_a_generator_equals_the_global_seed(name):
    torch.manual_seed(7)
    expected = build_model(find_preset(name).spec, 3, 10, 32)
    torch.manual_seed(123)  # another thread's seed: must not matter
    model = build_model(find_preset(name).spec, 3, 10, 32)
    initialize_parameters(model, torch.Generator().manual_seed(7))
    wanted = expected.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, wanted[key]), key
    # the seed matters
    initialize_parameters(model, torch.Generator().manual_seed(8))
    assert not torch.equal(model.classifier[-1].weight, expected.classifier[-1].weight)


def test_dropout_with_a_generator_draws_pytorchs_masks():
    model = build_model("C4 D0.25 F8 D0.5", 1, 10, 8)
    assert [type(m) for m in model.modules() if isinstance(m, nn.Dropout)] == [Dropout, Dropout]
    assert model.features[-1].__class__.__name__ == "Dropout"  # what the layer pages show
    x = torch.randn(16, 8, 8, 8)
    layer = Dropout(0.25)
    set_dropout_generator(nn.Sequential(layer), torch.Generator().manual_seed(3))
    torch.manual_seed(3)
    assert torch.equal(layer(x), F.dropout(x, 0.25, training=True))
    assert torch.equal(layer(x), F.dropout(x, 0.25, training=True))  # and the streams stay in step
    assert not torch.equal(layer(x), layer(x))
    layer.eval()
    assert torch.equal(layer(x), x)


@pytest.mark.parametrize(("spec", "shape"), SPECS)
def test_shape_only_summary_equals_the_summary_of_the_real_model(spec, shape):
    real = summarize_model(build_model(spec, shape[0], 10, shape[1]))
    with torch.device("meta"):  # as summarize_spec builds a net too big to train
        skeleton = build_model(spec, shape[0], 10, shape[1])
    assert summarize_model(skeleton) == real == summarize_spec(spec, shape, num_classes=10)
    assert real.total_activations == sum(math.prod(row.output_shape) for row in real.layers)


def test_a_net_too_big_to_train_is_summarized_without_its_weights_and_refused():
    from tests.conftest import NOTHING_BIG_MB, peak_rss_mb

    peak_before = peak_rss_mb()
    huge = summarize_spec("C4096 F4096", (1, 28, 28))  # 13 G parameters: 52 GB if they were allocated
    assert peak_rss_mb() - peak_before < NOTHING_BIG_MB  # nothing allocated
    assert huge.total_params == (9 * 4096 + 4096) + (4096 * 28 * 28 * 4096 + 4096) + (4096 * 10 + 10)
    problem = training_size_problem(huge)
    assert problem.startswith("This network is too big to train here: 13.2 G parameters")
    wide = summarize_spec("C512 C512 C512 G", (1, 28, 28))  # 4.7 M parameters, 3.7 G multiply-adds an image
    assert "multiply-adds per image" in training_size_problem(wide)
    for preset in NET_PRESETS.values():
        shape = (1, 28, 28) if preset.dataset == "mnist" else (3, 32, 32)
        assert training_size_problem(summarize_spec(preset.spec, shape)) is None, preset.name


def test_readable_counts():
    assert [readable_count(n) for n in (640, 1_234_567, 118_441_100_000)] == ["640", "1.2 M", "118.4 G"]


def test_same_padding_with_an_even_kernel_keeps_the_size_as_pytorch_does():
    model = build_model("C8k4 C4k2s2", 1, 10, 28)
    conv = model.features[0]
    assert summarize_spec("C8k4 C4k2s2", (1, 28, 28)).layers[0].output_shape == (8, 28, 28)
    x = torch.randn(2, 1, 28, 28)
    expected = F.conv2d(F.pad(x, (1, 2, 1, 2)), conv.weight, conv.bias)  # the extra zero goes after
    torch.testing.assert_close(conv(x), expected)
    # stride 2: "same" is not defined, k // 2 zeros on both sides: (28 + 2 - 2) // 2 + 1
    assert model.features[2](model.features[1](conv(x))).shape[-1] == 15


@pytest.mark.parametrize(("spec", "shape"), [
    ("C4p0 M C4 A3 C4k2 F8", (1, 28, 28)), ("C4 R8 M C4k5s2p1n D0.2 G F16", (3, 32, 32)), SPECS[3],
])
def test_rows_are_numbered_and_carry_the_receptive_field(spec, shape):
    from cnnviz.networks.receptive_field import bounding_box, gradient_footprint
    from tests.test_receptive_field import structural_copy

    model = build_model(spec, shape[0], 10, shape[1]).eval()
    rows = summarize_model(model).layers
    assert [row.number for row in rows] == list(range(len(model.features) + len(model.classifier)))
    assert all(row.rf_size is None and row.rf_jump is None and row.rf_start is None
               for row in rows[len(model.features):])
    structure, ones = structural_copy(model), torch.ones(1, *shape)
    checked = 0
    for row in rows[: len(model.features)]:
        # The field of the centre cell, from the gradient: its side, and where it is centred.
        centre = model.features[: row.number + 1](torch.zeros(1, *shape)).shape[-1] // 2
        seen = bounding_box(gradient_footprint(structure, ones, row.number, 0, centre, centre))
        if seen.top > 0 and seen.bottom < shape[1] - 1:  # not cut by the image's edge
            assert (seen.height, (seen.top + seen.bottom) / 2) == \
                (row.rf_size, row.rf_start + centre * row.rf_jump), (spec, row)
            checked += 1
    assert checked >= 2


def test_textbook_fields_in_the_summary():
    rows = summarize_spec("C8p0 M C8p0 F16", (1, 28, 28)).layers
    assert [(r.rf_size, r.rf_jump, r.rf_start) for r in rows[:5]] == \
        [(3, 1, 1.0), (3, 1, 1.0), (4, 2, 1.5), (8, 2, 3.5), (8, 2, 3.5)]
    assert rows[5].kind == "Flatten" and rows[5].rf_size is None
