"""Widgets and per-session work behind the explorer: the model, the image, the trace, the picked cell.

The model list and loading, the upload's decoding and the drawing canvas are the predict page's
(``cnnviz.ui.predict.parts``), so both pages offer the same models and prepare images alike.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import streamlit as st
import torch

from cnnviz import pages
from cnnviz.datasets.files import DataNotFoundError, dataset_info, load_dataset
from cnnviz.explorer.layers import NetLayer, Trace, net_layers, trace
from cnnviz.images.decode import UPLOAD_EXTENSIONS
from cnnviz.images.preprocess import Preprocessed, prepare_dataset_pixels
from cnnviz.training.checkpoint import LoadedModel
from cnnviz.ui.host import upload_limit_mb, upload_limits
from cnnviz.ui.predict.parts import ModelChoice, drawn_digit, load_choice, model_choices, prepare_bytes
from cnnviz.ui.widgets import kept, markdown_text

TEST_IMAGE = "Test-set image"
DRAWING = "Draw a digit"
SOURCES = (TEST_IMAGE, pages.UPLOAD_INPUT, DRAWING)
OVERVIEW_KEY = "explore_overview"  # the overview chart: a click picks a map
MAP_KEY = "explore_map"  # the picked map large: a click picks a cell
CACHE_KEY = "explore_cache"  # this session's traces and overviews, newest last
CACHE_ENTRIES = 4
KEPT_UPLOAD_KEY = "explore_kept_upload"  # (name, bytes) of the latest upload
DENSE_KEY = "explore_dense"  # the picked layer is dense: a click on its units picks a unit
RECENTRE_KEY = "explore_recentre"  # a click moved to another layer: start at its middle cell
CLAMPED_KEY = "explore_clamped"  # this run's sentences on typed coordinates moved into the layer
CELL_KEYS = (pages.EXPLORE_LAYER_KEY, pages.EXPLORE_CHANNEL_KEY, pages.EXPLORE_ROW_KEY, pages.EXPLORE_COL_KEY)


@dataclass(frozen=True)
class Model:
    """The chosen model and the key its traces are kept under."""

    choice: ModelChoice
    loaded: LoadedModel
    key: str  # the file and its time, or this session's run and its object


@dataclass(frozen=True)
class Cell:
    """The picked cell: layer, channel (or unit of a dense layer), row and column."""

    layer: int
    channel: int
    row: int
    col: int


def choose_model() -> Model | None:
    """The model picker; None (with a sentence on the page) when there is none or it cannot load."""
    choices = model_choices()
    if not choices:
        st.warning("There is no model yet: train one on the Train page, or put a .pt file in models/.")
        return None
    choice = st.selectbox("Model", choices, format_func=lambda c: c.label, key=kept(pages.EXPLORE_MODEL_KEY))
    try:
        loaded = load_choice(choice)
    except ValueError as err:
        st.error(markdown_text(str(err)))
        return None
    if choice.path is not None:
        from pathlib import Path

        key = f"{choice.path}:{Path(choice.path).stat().st_mtime}"
    else:
        key = f"run {choice.run}:{id(loaded.model)}"
    return Model(choice, loaded, key)


def choose_image(loaded: LoadedModel) -> tuple[Preprocessed, str] | None:
    """The image widgets; the prepared image and a line saying what it is, or None (with a sentence on
    the page) when there is none yet or it cannot be read."""
    sources = SOURCES if loaded.dataset == "mnist" else SOURCES[:2]
    if st.session_state.get(pages.EXPLORE_SOURCE_KEY) not in sources:
        st.session_state[pages.EXPLORE_SOURCE_KEY] = TEST_IMAGE
    source = st.radio("Image", sources, key=kept(pages.EXPLORE_SOURCE_KEY), horizontal=True)
    mean, std = tuple(loaded.mean), tuple(loaded.std)
    try:
        if source == TEST_IMAGE:
            return _test_image(loaded)
        if source == pages.UPLOAD_INPUT:
            upload = _upload()
            if upload is None:
                st.info("Upload a photo: a handwritten digit for an MNIST model, an object for CIFAR-10.")
                return None
            name, data = upload
            prepared = prepare_bytes(data, loaded.dataset, mean, std, **upload_limits())
            return prepared, f"your upload {markdown_text(name)}"
        drawn = drawn_digit(loaded)
        return None if drawn is None else (drawn, "your drawing")
    except ValueError as err:  # ImageError and the preprocessing's refusals: one sentence each
        st.error(markdown_text(str(err)), icon=":material/image_not_supported:")
        return None


def _upload() -> tuple[str, bytes] | None:
    """The uploaded file's name and bytes; the latest upload is kept for the session, so that a visit
    to the Convolution page and back (or any other page) does not lose it."""
    upload = st.file_uploader("An image (PNG, JPEG, WebP, BMP, GIF, TIFF)", type=list(UPLOAD_EXTENSIONS),
                              key=pages.EXPLORE_UPLOAD_KEY, max_upload_size=upload_limit_mb(),
                              on_change=_forget_removed_upload)
    if upload is not None:
        data = upload.getvalue()
        if len(data) <= upload_limits()["max_bytes"]:  # a larger one is refused with a sentence, not kept
            st.session_state[KEPT_UPLOAD_KEY] = (upload.name, data)
        return upload.name, data
    kept_upload = st.session_state.get(KEPT_UPLOAD_KEY)
    if kept_upload is not None:
        st.caption(f"Your upload {markdown_text(kept_upload[0])}, kept from before: upload another file to "
                   "replace it.")
    return kept_upload


def _forget_removed_upload() -> None:
    """The student removed the file from the uploader (a visit to another page does not call this)."""
    if st.session_state.get(pages.EXPLORE_UPLOAD_KEY) is None:
        st.session_state.pop(KEPT_UPLOAD_KEY, None)


def _random_test_index(count: int) -> None:
    st.session_state[pages.EXPLORE_TEST_INDEX_KEY] = random.randrange(count)


def _test_image(loaded: LoadedModel) -> tuple[Preprocessed, str] | None:
    try:
        test = load_dataset(loaded.dataset, "test", download=False)
    except DataNotFoundError:
        st.warning(f"The {dataset_info(loaded.dataset).title} test set is not on this machine: upload an "
                   "image instead (or put the dataset in the data folder the home page names).")
        return None
    count = len(test)
    index_column, button_column = st.columns([2, 1], vertical_alignment="bottom")
    _clamp(pages.EXPLORE_TEST_INDEX_KEY, count - 1)
    index = index_column.number_input(f"Test image (0 to {count - 1:,})", 0, count - 1,
                                      key=kept(pages.EXPLORE_TEST_INDEX_KEY))
    button_column.button("Random", key="explore_random", on_click=_random_test_index, args=(count,),
                         help="Another test image, picked at random.")
    label = test.info.classes[int(test.labels[index])]
    mean, std = tuple(loaded.mean), tuple(loaded.std)
    prepared = prepare_dataset_pixels(test.images[index], loaded.dataset, mean, std)
    return prepared, f"test image {index:,} (labelled {label})"


def cached_value(key: tuple, make, entries: int = CACHE_ENTRIES):
    """This session's value for ``key``, made once. Each kind (``key[0]``: "trace", "figure", ...) keeps
    its newest ``entries``; the oldest goes first."""
    caches: dict = st.session_state.setdefault(CACHE_KEY, {})
    cache = caches.setdefault(key[0], {})
    if key not in cache:
        cache[key] = make()
        while len(cache) > entries:
            cache.pop(next(iter(cache)))
    return cache[key]


def image_key(prepared: Preprocessed) -> str:
    """A digest of the network's input, to keep work per image."""
    return tensor_key(prepared.tensor)


def tensor_key(tensor: torch.Tensor) -> str:
    """A digest of a tensor's numbers."""
    return hashlib.blake2b(tensor.detach().contiguous().numpy().tobytes(), digest_size=12).hexdigest()


def model_trace(model: Model, prepared: Preprocessed) -> Trace:
    """The trace of this image through this model, kept for the session (a rerun that only picks
    another cell reuses it)."""
    key = ("trace", model.key, image_key(prepared))
    return cached_value(key, lambda: trace(model.loaded.model, prepared.tensor))


def cached_figure(key: tuple, make) -> dict:
    """A figure kept for the session under ``key``."""
    return cached_value(("figure", *key), make)


def _clamp(key: str, high: int) -> int:
    """Keep a number input's value within 0..high (a model or layer change shrinks the range)."""
    value = st.session_state.get(key, 0)
    value = min(max(int(value if value is not None else 0), 0), max(high, 0))
    st.session_state[key] = value
    return value


def cell_limits(output: torch.Tensor) -> tuple[int, int, int]:
    """(channels, rows, cols) of a layer's output; a dense layer has one row and one column."""
    if output.dim() == 4:
        return int(output.shape[1]), int(output.shape[2]), int(output.shape[3])
    return int(output.shape[1]), 1, 1


def _set_cell(layer: int | None, channel: int | None, row: int | None, col: int | None) -> None:
    for key, value in zip(CELL_KEYS, (layer, channel, row, col), strict=True):
        if value is not None:
            st.session_state[key] = int(value)


def _clicked(chart_key: str) -> list | None:
    """The customdata of the point a click on a chart picked, or None."""
    event = st.session_state.get(chart_key)
    points = (event or {}).get("selection", {}).get("points", [])
    return points[0].get("customdata") if points else None


def on_overview_click() -> None:
    """A map of the overview was clicked: pick its layer and channel (row and column are kept when
    the layer stays, else moved to the new layer's centre by :func:`pick_cell`)."""
    data = _clicked(OVERVIEW_KEY)
    if data:
        if int(data[0]) != st.session_state.get(pages.EXPLORE_LAYER_KEY):
            st.session_state[RECENTRE_KEY] = True
        _set_cell(data[0], data[1], None, None)


def on_map_click() -> None:
    """A cell of the large map was clicked: pick its row and column (a dense unit: its channel)."""
    data = _clicked(MAP_KEY)
    if data and st.session_state.get(pages.EXPLORE_ROW_KEY) is not None:
        if st.session_state.get(DENSE_KEY):
            _set_cell(None, data[0], None, None)
        else:
            _set_cell(None, None, data[0], data[1])


def picked_cell(model_trace: Trace, layers: list[NetLayer]) -> Cell:
    """The picked cell from this session's state, each coordinate kept within the picked layer's
    shape (a typed or remembered number beyond it is moved to its edge)."""
    if pages.EXPLORE_LAYER_KEY not in st.session_state:  # first visit: the first layer's middle cell
        channels, rows, cols = cell_limits(model_trace.outputs[0])
        _set_cell(0, 0, rows // 2, cols // 2)
    layer = _clamp(pages.EXPLORE_LAYER_KEY, len(layers) - 1)
    channels, rows, cols = cell_limits(model_trace.outputs[layer])
    if st.session_state.pop(RECENTRE_KEY, False):
        _set_cell(None, None, rows // 2, cols // 2)
    dense = model_trace.outputs[layer].dim() != 4
    st.session_state[DENSE_KEY] = dense
    notes, values = [], []
    names = ("unit" if dense else "channel", "row", "column")
    for key, high, name in zip(CELL_KEYS[1:], (channels - 1, rows - 1, cols - 1), names, strict=True):
        typed = st.session_state.get(key)
        values.append(_clamp(key, high))
        if typed is not None and int(typed) != values[-1] and high > 0:
            notes.append(f"{name} {int(typed)} is not in this layer (0 to {high}): showing {name} "
                         f"{values[-1]}")
    st.session_state[CLAMPED_KEY] = notes
    return Cell(layer, *values)


def _recentre() -> None:
    st.session_state[RECENTRE_KEY] = True


def cell_inputs(model_trace: Trace, layers: list[NetLayer], cell: Cell) -> None:
    """Four number inputs (layer, channel, row, column) on the state :func:`picked_cell` clamped."""
    channels, rows, cols = cell_limits(model_trace.outputs[cell.layer])
    dense = model_trace.outputs[cell.layer].dim() != 4
    labels = ("Layer", "Unit" if dense else "Channel", "Row", "Column")
    highs = (len(layers) - 1, channels - 1, rows - 1, cols - 1)
    for column, key, label, high in zip(st.columns(4), CELL_KEYS, labels, highs, strict=True):
        if key == pages.EXPLORE_LAYER_KEY:  # the model's layers: a fixed range, checked by the browser
            column.number_input(f"{label} (0 to {high})", 0, high, key=kept(key), on_change=_recentre)
        else:  # no bounds: the browser would keep a refused 99 in red after another layer is picked;
            # picked_cell moves it into the layer and says so
            column.number_input(f"{label} (0 to {high})", step=1, key=kept(key), disabled=high == 0)
    notes = st.session_state.get(CLAMPED_KEY) or []
    if notes:
        text = "; ".join(notes)
        st.caption(text[0].upper() + text[1:] + ".")


def layer_choices(model: Model) -> list[NetLayer]:
    """The model's numbered layers (the summary's numbering)."""
    return net_layers(model.loaded.model)


def input_rgb(prepared: Preprocessed):
    """The network's input as the student sees it: (H, W, 3) uint8."""
    pixels = prepared.pixels.permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
    return pixels.repeat(3, axis=2) if pixels.shape[2] == 1 else pixels
