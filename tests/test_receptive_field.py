"""Receptive-field arithmetic against the gradient of the real (or structural) network, cell by cell."""

import copy

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.datasets.files import DATASETS, load_dataset
from cnnviz.images.preprocess import normalize_image
from cnnviz.networks.build import ResidualBlock, build_model
from cnnviz.networks.receptive_field import (
    Box,
    FieldGeometry,
    bounding_box,
    cell_box,
    gradient_footprint,
    gradient_footprints,
    layer_fields,
)
from cnnviz.networks.spec import SpecError
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.presets import NET_PRESETS

WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, ResidualBlock)


def structural_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose gradient is non-zero on exactly the pixels a cell is connected to.

    The real network's footprint can be smaller than its receptive field: a ReLU that is off passes no
    gradient, a max pool passes it to its winner only, and weights can cancel. Here every weight is
    positive (1 / kernel area, every bias 0.1), BatchNorm is the identity (mean 0, variance 1, scale 1,
    shift 0), max pools become average pools with the same window, stride and padding, and the image fed
    to it is all ones: every number in the network is then positive, so every ReLU passes its gradient,
    and the gradient of a cell with respect to a pixel is a sum of positive products, one per path from
    the pixel to the cell. It is non-zero exactly where such a path exists: the receptive field, without
    the padding and without the rows a floor in a stride leaves out.
    """
    copied = copy.deepcopy(model).eval()
    with torch.no_grad():
        for module in copied.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                area = module.weight[0, 0].numel()
                module.weight.fill_(1.0 / area)
                if module.bias is not None:
                    module.bias.fill_(0.1)
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
                module.weight.fill_(1.0)
                module.bias.zero_()
    for parent in list(copied.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                assert child.dilation in (1, (1, 1))
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   child.ceil_mode))
    return copied


def _border_cells(length: int) -> list[tuple[int, int]]:
    """Corners, edges and the centre of a length x length map (every cell when it is small)."""
    if length <= 6:
        return [(r, c) for r in range(length) for c in range(length)]
    lines = sorted({0, 1, length // 2, length - 2, length - 1})
    return [(r, c) for r in lines for c in lines]


def _no_holes(model: nn.Module) -> bool:
    """True when no stride is larger than its kernel (so every field is a solid square)."""
    return all(m.stride[0] <= m.kernel_size[0] for m in model.modules() if isinstance(m, nn.Conv2d))


def check_boxes_against_footprints(model: nn.Module) -> int:
    """For every conv/pool layer of ``model`` and cells at its borders: the box equals the bounding box of
    the structural gradient footprint. Returns how many unclipped boxes lay inside the image (and were
    checked equal to the footprint's box too)."""
    model.eval()  # BatchNorm on a batch of one
    structure = structural_copy(model)
    channels, height, _ = model.input_shape
    ones = torch.ones(1, channels, height, height)
    fields = layer_fields(model)
    inside = 0
    for number, module in enumerate(model.features):
        if not isinstance(module, WINDOWED):
            continue
        with torch.no_grad():
            length = nn.Sequential(*model.features[: number + 1])(torch.zeros(1, channels, height, height))
        cells = _border_cells(length.shape[-1])
        footprints = gradient_footprints(structure, ones, number, [(0, r, c) for r, c in cells])
        for (row, col), footprint in zip(cells, footprints, strict=True):
            seen = bounding_box(footprint)
            assert cell_box(model, number, row, col) == seen, (model.spec, number, row, col)
            unclipped = cell_box(model, number, row, col, clip=False)
            assert unclipped == fields[number].box(row, col)
            if not seen.is_empty:
                assert unclipped.clipped(height, height).top <= seen.top
                assert unclipped.clipped(height, height).bottom >= seen.bottom
            if _no_holes(model) and unclipped == unclipped.clipped(height, height):
                assert unclipped == seen, (model.spec, number, row, col)  # size, jump, start exactly
                inside += 1
    return inside


def test_textbook_fields():
    def sizes(spec: str) -> list[tuple[int, int, float]]:
        model = build_model(spec, 1, 10, 16)
        return [(f.size, f.jump, f.start) for f, m in zip(layer_fields(model), model.features, strict=False)
                if isinstance(m, nn.Conv2d | nn.MaxPool2d)]

    assert [s for s, _, _ in sizes("C4 C4")] == [3, 5]
    assert [s for s, _, _ in sizes("C4 C4 C4")] == [3, 5, 7]
    assert sizes("C4p0 M C4p0") == [(3, 1, 1.0), (4, 2, 1.5), (8, 2, 3.5)]
    assert sizes("C4 M C4 M") == [(3, 1, 0.0), (4, 2, 0.5), (8, 2, 0.5), (10, 4, 1.5)]
    assert sizes("C4k5s2p2") == [(5, 2, 0.0)]
    # PyTorch's "same" with an even kernel pads k/2 - 1 zeros before and k/2 after.
    assert sizes("C4k2") == [(2, 1, 0.5)]
    assert sizes("C4k4") == [(4, 1, 0.5)]
    model = build_model("C4k4", 1, 10, 16)
    assert cell_box(model, 0, 0, 0, clip=False) == Box(-1, -1, 2, 2)
    assert cell_box(model, 0, 0, 0) == Box(0, 0, 2, 2)
    assert cell_box(model, 0, 15, 15) == Box(14, 14, 15, 15)


def test_classifier_layers_see_the_whole_image_and_residual_blocks_take_the_union():
    model = build_model("C4 R8 G F16", 1, 10, 12)
    fields = layer_fields(model)
    assert fields[2] == FieldGeometry(3 + 2 + 2, 1, 0.0)  # the body's two 3x3s around the shortcut's 1x1
    assert fields[3] == FieldGeometry(7 + 11, 12, 5.5)  # the global pool: a 12x12 window
    assert fields[4:] == [None] * len(model.classifier)
    assert cell_box(model, 5, 0, 0) == Box(0, 0, 11, 11)
    assert cell_box(model, 5, 0, 0, clip=False) == Box(0, 0, 11, 11)


def test_the_right_border_leaves_out_the_rows_a_pool_drops():
    # 7 rows pooled by 2 keep rows 0..5; row 6 reaches no cell after the pool.
    model = build_model("M C4", 1, 10, 7)
    assert cell_box(model, 1, 2, 2, clip=False).clipped(7, 7) == Box(2, 2, 6, 6)
    assert cell_box(model, 1, 2, 2) == Box(2, 2, 5, 5)
    assert bounding_box(gradient_footprint(structural_copy(model), torch.ones(1, 1, 7, 7), 1, 0, 2, 2)) == \
        Box(2, 2, 5, 5)


def test_a_stride_larger_than_the_kernel_leaves_holes_the_clipped_box_skips():
    # A 1x1 kernel with stride 2 and padding 1 reads pixels -1, 1, 3, ...: the next 3x3 (no padding)
    # cell 0 reads pixels -1 (padding), 1 and 3.
    model = build_model("C2k1s2p1 C2p0", 1, 10, 9)
    assert cell_box(model, 2, 0, 0, clip=False) == Box(-1, -1, 3, 3)
    assert cell_box(model, 2, 0, 0) == Box(1, 1, 3, 3)
    footprint = gradient_footprint(structural_copy(model), torch.ones(1, 1, 9, 9), 2, 0, 0, 0)
    assert footprint.nonzero().tolist() == [[1, 1], [1, 3], [3, 1], [3, 3]]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NET_PRESETS))
def test_every_preset_s_boxes_equal_its_gradient_footprints(name):
    preset = NET_PRESETS[name]
    channels, height, _ = DATASETS[preset.dataset].image_shape
    torch.manual_seed(0)
    model = build_model(preset.spec, channels, 10, height)
    assert check_boxes_against_footprints(model) > 0


def _conv_token(draw: st.DrawFn) -> str:
    kernel = draw(st.sampled_from([1, 2, 2, 3, 4, 4, 5]))  # even kernels often: PyTorch's uneven "same"
    stride = draw(st.sampled_from([1, 1, 2, 3]))
    token = f"C{draw(st.integers(1, 3))}" + (f"k{kernel}" if kernel != 3 else "")
    token += f"s{stride}" if stride > 1 else ""
    if draw(st.booleans()):  # explicit padding, else "same" (PyTorch's own for even kernels)
        token += f"p{draw(st.integers(0, kernel))}"
    token += "n" if draw(st.booleans()) else ""
    token += draw(st.sampled_from(["", "", "m", "m3"]))
    return token


@st.composite
def specs(draw: st.DrawFn) -> str:
    tokens = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from("CCCRMAD"))
        if kind == "C":
            tokens.append(_conv_token(draw))
        elif kind == "R":
            tokens.append(f"R{draw(st.integers(1, 3))}")
        elif kind in "MA":
            tokens.append(kind + str(draw(st.integers(2, 3))))
        else:
            tokens.append("D0.25")
    tokens += draw(st.sampled_from([[], ["G"], ["F4"], ["G", "F4"]]))
    return " ".join(tokens)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), size=st.integers(5, 17), channels=st.integers(1, 2))
def test_random_specs_boxes_equal_their_gradient_footprints(spec, size, channels):
    try:
        model = build_model(spec, channels, 3, size)
    except SpecError:
        assume(False)
    check_boxes_against_footprints(model)


def _real(name: str, real_data_dir) -> tuple[nn.Module, torch.Tensor]:
    loaded = load_checkpoint(MODELS_DIR / f"{name}.pt")
    images = load_dataset(loaded.dataset, "test", real_data_dir).images
    return loaded.model, normalize_image(torch.as_tensor(images[7]), loaded.mean, loaded.std)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_the_real_footprint_lies_in_the_box_and_follows_the_model_s_own_gradient(name, real_data_dir):
    model, image = _real(name, real_data_dir)
    height = model.input_shape[1]
    nonempty = 0
    for number, module in enumerate(model.features):
        if not isinstance(module, (*WINDOWED, nn.ReLU)):
            continue
        with torch.no_grad():
            side = nn.Sequential(*model.features[: number + 1]).eval()(image.clone()).shape[-1]
        cells = _border_cells(side)
        footprints = gradient_footprints(model, image, number, [(1, r, c) for r, c in cells])
        for (row, col), footprint in zip(cells, footprints, strict=True):
            box = cell_box(model, number, row, col)
            outside = footprint.clone()
            outside[box.slices()] = False
            assert not outside.any(), (name, number, row, col)
            nonempty += int(footprint.any())
    assert nonempty > 10
    # The logits: the footprint is where the model's own forward pass has a non-zero input gradient.
    x = image.clone().requires_grad_(True)
    model.eval()
    (gradient,) = torch.autograd.grad(model(x)[0, 3], x)
    footprint = gradient_footprint(model, image, len(model.features) + len(model.classifier) - 1, 3, 0, 0)
    assert torch.equal(footprint, gradient[0].ne(0).any(dim=0))
    assert footprint.sum() > height * height // 2


def test_one_cell_equals_the_batch_and_bad_cells_say_why():
    torch.manual_seed(1)
    model = build_model("C4 M C4n F8", 1, 10, 12)
    image = torch.randn(1, 1, 12, 12)
    cells = [(0, 0, 0), (3, 5, 5), (2, 2, 4)]
    batch = gradient_footprints(model, image, 3, cells)
    for cell, footprint in zip(cells, batch, strict=True):
        assert torch.equal(gradient_footprint(model, image, 3, *cell), footprint)
    with pytest.raises(ValueError, match="outside layer 3's 6x6"):
        cell_box(model, 3, 6, 0)
    with pytest.raises(ValueError, match="layers 0 to"):
        cell_box(model, 99, 0, 0)
    with pytest.raises(ValueError, match="no row or column"):
        gradient_footprint(model, image, 8, 0, 1, 0)
    with pytest.raises(ValueError, match="channels"):
        gradient_footprint(model, image, 3, 4, 0, 0)
    with pytest.raises(ValueError, match="shape"):
        gradient_footprint(model, torch.zeros(1, 3, 12, 12), 3, 0, 0, 0)
