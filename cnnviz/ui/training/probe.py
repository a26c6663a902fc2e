"""The probe picker of the Train page: the one image the run's snapshots follow while it learns.

A test image (by number, or Random), an upload or a drawing, prepared exactly as the Predict page
prepares it (``cnnviz.ui.predict.parts``), so the probe is what the network really sees.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import streamlit as st
import torch

from cnnviz import pages
from cnnviz.datasets.files import DataNotFoundError, dataset_info, load_dataset
from cnnviz.images.decode import UPLOAD_EXTENSIONS
from cnnviz.ui.host import upload_limit_mb, upload_limits
from cnnviz.ui.predict.parts import drawn_digit, prepare_bytes
from cnnviz.ui.widgets import crisp_images, kept, markdown_text, pixel_image

TEST_IMAGE = "Test image"
DRAWING = "Draw a digit"
SOURCES = (TEST_IMAGE, pages.UPLOAD_INPUT, DRAWING)
INDEX_KEY = "train_probe_index"
UPLOAD_KEY = "train_probe_upload"
KEPT_UPLOAD_KEY = "train_probe_kept_upload"  # (name, bytes) of the latest upload, kept for the session
SHOWN_PX = 84


@dataclass(frozen=True)
class Probe:
    """The image a run follows, as the network sees it before normalization."""

    pixels: torch.Tensor  # (C, H, W) uint8 with the dataset's shape
    label: str  # "test image 7 (labelled 2)", "your upload cat.png", "your drawing"


@dataclass(frozen=True)
class _Normalization:
    """What the Predict page's drawing canvas needs of a model: its dataset and normalization."""

    dataset: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


def choose_probe(dataset: str) -> Probe | None:
    """The picker ("Follow one image while it learns"); the chosen probe, or None (with a sentence on
    the page) while there is none yet: the run then keeps no probe."""
    st.markdown("**Follow one image while it learns**: the time machine shows its maps and its answer "
                "at every snapshot of the run.")
    sources = SOURCES if dataset == "mnist" else SOURCES[:2]
    if st.session_state.get(pages.TRAIN_PROBE_SOURCE_KEY) not in sources:
        st.session_state[pages.TRAIN_PROBE_SOURCE_KEY] = TEST_IMAGE
    source = st.radio("Image to follow", sources, key=kept(pages.TRAIN_PROBE_SOURCE_KEY), horizontal=True,
                      label_visibility="collapsed")
    try:
        probe = _picked(source, dataset)
    except ValueError as err:  # the decoder's and the preprocessing's refusals: one sentence each
        st.error(markdown_text(str(err)), icon=":material/image_not_supported:")
        return None
    if probe is not None:
        with crisp_images("train_probe"):
            st.image(pixel_image(probe.pixels, SHOWN_PX), caption=f"Followed: {markdown_text(probe.label)}",
                     width=SHOWN_PX, output_format="PNG")
    return probe


def _picked(source: str, dataset: str) -> Probe | None:
    info = dataset_info(dataset)
    if source == TEST_IMAGE:
        return _test_image(dataset)
    if source == pages.UPLOAD_INPUT:
        upload = _upload()
        if upload is None:
            st.info("Upload a photo: a handwritten digit for MNIST, an object for CIFAR-10.")
            return None
        name, data = upload
        prepared = prepare_bytes(data, dataset, tuple(info.mean), tuple(info.std), **upload_limits())
        return Probe(prepared.pixels, f"your upload {name}")
    drawn = drawn_digit(_Normalization(dataset, tuple(info.mean), tuple(info.std)))
    return None if drawn is None else Probe(drawn.pixels, "your drawing")


def _random_index(count: int) -> None:
    st.session_state[INDEX_KEY] = random.randrange(count)


def _test_image(dataset: str) -> Probe | None:
    try:
        test = load_dataset(dataset, "test", download=False)
    except DataNotFoundError:
        st.caption("The test set is not on this machine yet: upload an image to follow one.")
        return None
    count = len(test)
    value = st.session_state.get(INDEX_KEY, 0)
    st.session_state[INDEX_KEY] = min(max(int(value or 0), 0), count - 1)
    index_column, button_column = st.columns([1, 1], vertical_alignment="bottom")  # "Random" whole at 800 px
    index = index_column.number_input(f"Test image (0 to {count - 1:,})", 0, count - 1, key=kept(INDEX_KEY))
    button_column.button("Random", key="train_probe_random", on_click=_random_index, args=(count,),
                         help="Another test image, picked at random.")
    label = int(test.labels[index])
    return Probe(test.images[index].clone(), f"test image {index} (labelled {test.info.classes[label]})")


def _upload() -> tuple[str, bytes] | None:
    """The uploaded file's name and bytes; the latest is kept for the session (a visit to another page
    does not lose it)."""
    upload = st.file_uploader("An image (PNG, JPEG, WebP, BMP, GIF, TIFF)", type=list(UPLOAD_EXTENSIONS),
                              key=UPLOAD_KEY, max_upload_size=upload_limit_mb(), on_change=_forget_removed)
    if upload is not None:
        data = upload.getvalue()
        if len(data) <= upload_limits()["max_bytes"]:  # a larger one is refused with a sentence, not kept
            st.session_state[KEPT_UPLOAD_KEY] = (upload.name, data)
        return upload.name, data
    return st.session_state.get(KEPT_UPLOAD_KEY)


def _forget_removed() -> None:
    if st.session_state.get(UPLOAD_KEY) is None:
        st.session_state.pop(KEPT_UPLOAD_KEY, None)
