"""The spec parser: what it accepts, and how it points at what it refuses."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz.networks.build import build_model
from cnnviz.networks.spec import (
    Conv,
    Dense,
    Dropout,
    GlobalPool,
    Pool,
    Residual,
    SpecError,
    describe_error_position,
    parse_spec,
)


def test_parses_the_example_from_the_issue():
    layers = parse_spec("C32 C32 M D0.25 C64 C64 M D0.25 F128 D0.5")
    assert layers == [
        Conv(32, token="C32"), Conv(32, token="C32"), Pool("max", 2, "M"), Dropout(0.25, "D0.25"),
        Conv(64, token="C64"), Conv(64, token="C64"), Pool("max", 2, "M"), Dropout(0.25, "D0.25"),
        Dense(128, "F128"), Dropout(0.5, "D0.5"),
    ]


def test_conv_suffixes_in_any_order():
    assert parse_spec("C32k5n")[0] == Conv(32, kernel=5, batch_norm=True, token="C32k5n")
    conv = parse_spec("C16ns2p0k3")[0]
    assert (conv.filters, conv.kernel, conv.stride, conv.padding, conv.batch_norm) == (16, 3, 2, 0, True)
    assert conv.pad == 0 and parse_spec("C8k5")[0].pad == 2  # "same" padding by default


def test_pool_first_suffix():
    assert parse_spec("C32nm")[0] == Conv(32, batch_norm=True, pool=2, token="C32nm")
    assert parse_spec("C8m3k5")[0] == Conv(8, kernel=5, pool=3, token="C8m3k5")
    model = build_model("C8nm C16 M3", 3, 10, 32)
    kinds = [type(layer).__name__ for layer in model.features]
    assert kinds == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d"]
    assert model.features(torch.zeros(2, 3, 32, 32)).shape == (2, 16, 5, 5)  # 32 -> 16 -> 5


def test_other_tokens():
    assert parse_spec("M3 A A4 G R64") == [
        Pool("max", 3, "M3"), Pool("avg", 2, "A"), Pool("avg", 4, "A4"), GlobalPool("G"), Residual(64, "R64"),
    ]


@pytest.mark.parametrize(("spec", "index", "words"), [
    ("C32 X9 F10", 1, "unknown layer"),
    ("C32 c32", 1, "upper case"),
    ("C", 0, "expected C<n>"),
    ("C32k", 0, "expected C<n>"),
    ("C32nn", 0, "given twice"),
    ("C32k3k5", 0, "given twice"),
    ("C0", 0, "between 1 and"),
    ("C32k0", 0, "kernel size"),
    ("C32k3p4", 0, "padding"),
    ("C32 M D1.5", 2, "below 1"),
    ("C32 Dx", 1, "D<rate>"),
    ("F", 0, "F<n>"),
    ("C8 Gx", 1, "G alone"),
    ("C8 M2x", 1, "M<size>"),
    ("C32mm", 0, "given twice"),
    ("C32m0", 0, "pool size"),
    ("C32mx", 0, "C64nm"),
    ("C8 __import__('os')", 1, "unknown layer"),
])
def test_bad_tokens_are_named_with_their_position(spec, index, words):
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    error = caught.value
    assert error.index == index
    assert error.token == spec.split()[index]
    assert f"Token {index + 1} '{error.token}'" in str(error)
    assert words in str(error)


def test_caret_points_at_the_bad_token():
    spec = "C32  C32 Q7 F10"
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    assert describe_error_position(spec, caught.value) == "C32 C32 Q7 F10\n        ^^"


def test_empty_and_huge_specs_are_refused():
    for spec in ("", "   ", "C8 " * 65, "C8" + " " * 1000):
        with pytest.raises(SpecError):
            parse_spec(spec)


@pytest.mark.parametrize(("spec", "index", "words"), [
    ("C8 M M M M M", 5, "does not fit"),  # 28 -> 14 -> 7 -> 3 -> 1 -> pool of 2 on 1x1
    ("C8k15p0 C8k15p0", 1, "does not fit"),  # 28 -> 14 -> no room for a 15x15 kernel
    ("C8 M M M M C8m", 5, "max pool does not fit"),  # 28 -> 14 -> 7 -> 3 -> 1: no 2x2 pool after the conv
    ("F32 C8", 1, "before the dense"),
    ("C8 F32 M", 2, "before the dense"),
])
def test_layers_that_do_not_fit_the_shape(spec, index, words):
    with pytest.raises(SpecError) as caught:
        build_model(spec, 1, 10, 28)
    assert caught.value.index == index and words in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="CRMAGDFknsp0123456789.x -", max_size=30))
def test_any_text_parses_or_gives_a_spec_error(text):
    try:
        parse_spec(text)
    except SpecError as err:
        assert str(err)
