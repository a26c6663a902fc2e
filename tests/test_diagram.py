"""The architecture diagram: one block per spec token with the shapes the network really makes, labels
that never overlap, an SVG that parses and a PNG of the stated size."""

from __future__ import annotations

import io
import itertools
import xml.etree.ElementTree as ET

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnviz.networks.build import build_model, run_features
from cnnviz.networks.diagram import Diagram, Rect, shape_text, spec_diagram
from cnnviz.networks.diagram_draw import diagram_png, diagram_svg, png_size, write_diagram
from cnnviz.networks.spec import Dense, parse_spec
from cnnviz.training.presets import NET_PRESETS

SVG = "{http://www.w3.org/2000/svg}"
DEEP = "C32 C32 M C64 C64 M C128 M F256"
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CASES = [(DEEP, (3, 32, 32)), ("C16k5s2p2n C32n M F128", (1, 28, 28)),
         *((p.spec, (1, 28, 28) if p.dataset == "mnist" else (3, 32, 32)) for p in NET_PRESETS.values())]


def _token_shapes(spec: str, input_shape: tuple[int, int, int]) -> list[tuple[int, ...]]:
    """What the network outputs after each token, by running a zero image through the network of the
    spec cut after that token (its own appended output layer left out)."""
    tokens = spec.split()
    layers = parse_spec(spec)
    shapes = []
    for end in range(1, len(tokens) + 1):
        model = build_model(" ".join(tokens[:end]), input_shape[0], 10, input_shape[1]).eval()
        with torch.no_grad():
            x = run_features(model.features, torch.zeros(1, *input_shape))
            if any(isinstance(layer, Dense) for layer in layers[:end]):
                x = model.classifier[:-1](x)
        shapes.append(tuple(x.shape[1:]))
    return shapes


def _assert_readable(diagram: Diagram) -> None:
    labels = diagram.labels
    for a, b in itertools.combinations(labels, 2):
        assert not a.rect.overlaps(b.rect), (a.text, b.text)
    boxes = [block.box for block in diagram.blocks]
    for label in labels:
        assert not any(label.rect.overlaps(box) for box in boxes), label.text
        assert label.rect.x >= 0 and label.rect.right <= diagram.width, label.text
        assert label.rect.y >= 0 and label.rect.bottom <= diagram.height, label.text
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)


@pytest.mark.parametrize("spec,input_shape", CASES, ids=[case[0] for case in CASES])
def test_svg_has_one_block_per_token_with_the_real_shapes(spec: str, input_shape: tuple[int, int, int]):
    diagram = spec_diagram(spec, input_shape, classes=CIFAR)
    root = ET.fromstring(diagram_svg(diagram))
    assert root.tag == f"{SVG}svg"
    assert float(root.get("width")) == diagram.width and float(root.get("height")) == diagram.height
    blocks = [g for g in root.iter(f"{SVG}g") if g.get("class") == "block"]
    tokens = spec.split()
    assert [g.get("data-token") for g in blocks] == ["", *tokens, ""]
    shapes = [g.find(f"{SVG}text[@class='shape']").text for g in blocks]
    expected = [input_shape, *_token_shapes(spec, input_shape), (10,)]
    assert shapes == [shape_text(shape) for shape in expected]
    assert [g.find(f"{SVG}text[@class='token']").text for g in blocks] == ["input", *tokens, "output"]
    assert [t.text for t in blocks[-1].iter(f"{SVG}text") if t.get("class") == "class"] == CIFAR
    _assert_readable(diagram)
    assert diagram.width <= 760
    narrow = spec_diagram(spec, input_shape, classes=CIFAR, max_width=460)  # the Train page's width
    _assert_readable(narrow)
    assert narrow.width <= 460


def test_png_opens_at_the_stated_size_and_draws_the_blocks():
    diagram = spec_diagram(DEEP, (3, 32, 32))
    image = Image.open(io.BytesIO(diagram_png(diagram)))
    assert image.format == "PNG"
    assert image.size == png_size(diagram) == (2 * diagram.width, 2 * diagram.height)
    pixels = image.convert("RGB")
    for block in diagram.blocks:  # each block's front sheet is filled with its colour, not white
        front = block.sheet_rects()[-1]
        centre = (round((front.x + front.width / 2) * 2), round((front.y + front.height / 2) * 2))
        assert pixels.getpixel(centre) != (255, 255, 255), block.token


def test_sheets_follow_the_map_size_and_the_channels():
    diagram = spec_diagram("C8 M C32 M C128", (1, 32, 32))
    maps = [b for b in diagram.blocks if len(b.shape) == 3]
    sides = [b.sheet_rects()[0].width for b in maps]
    sizes = [b.shape[1] for b in maps]
    assert sizes == [32, 32, 16, 16, 8, 8]
    assert sides[0] == 2 * sides[2] == 4 * sides[4]  # side in proportion to the map's size
    assert [b.sheets for b in maps] == [1, 4, 4, 6, 6, 8]  # 1 + log2(channels), at most 8


def test_a_deep_spec_wraps_to_the_width_and_a_wide_canvas_keeps_one_row():
    narrow = spec_diagram(DEEP, (3, 32, 32), max_width=500)
    wide = spec_diagram(DEEP, (3, 32, 32), max_width=3000)
    assert narrow.width <= 500
    assert len({b.box.y + b.box.height / 2 for b in wide.blocks}) == 1
    assert len({b.box.y + b.box.height / 2 for b in narrow.blocks}) >= 3
    _assert_readable(narrow)
    _assert_readable(wide)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["C8", "C16k5", "C4s2", "C32nm", "M", "A", "D0.25", "R8"]), min_size=1,
                max_size=7),
       st.lists(st.sampled_from(["F64", "F10", "D0.5", "F4096"]), max_size=3),
       st.sampled_from([(1, 28, 28), (3, 32, 32), (3, 64, 64)]),
       st.integers(2, 30))
def test_no_label_overlaps_for_any_spec(convs, denses, input_shape, classes):
    spec = " ".join([*convs, *denses])
    try:
        diagram = spec_diagram(spec, input_shape, classes, [f"class {i}" for i in range(classes)])
    except ValueError:  # a pool that does not fit a small map: not a net to draw
        assume(False)  # hypothesis fails the test when it has to reject too many
        return
    _assert_readable(diagram)
    assert len(diagram.blocks) == len(spec.split()) + 2


def test_write_diagram_by_extension_and_friendly_errors(tmp_path):
    diagram = spec_diagram("C8 M F16", (1, 28, 28))
    ET.parse(write_diagram(diagram, tmp_path / "net.svg"))
    assert Image.open(write_diagram(diagram, tmp_path / "net.PNG")).size == png_size(diagram)
    with pytest.raises(ValueError, match="ending in .svg or .png"):
        write_diagram(diagram, tmp_path / "net.pdf")
    with pytest.raises(ValueError, match="Cannot write the diagram"):
        write_diagram(diagram, tmp_path / "no-such-folder" / "net.svg")


def test_rect_overlap_is_strict():
    assert Rect(0, 0, 10, 10).overlaps(Rect(9, 9, 5, 5))
    assert not Rect(0, 0, 10, 10).overlaps(Rect(10, 0, 5, 5))  # touching edges are fine
