"""Small Streamlit building blocks shared by several pages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import streamlit as st
import torch
from PIL import Image
from streamlit.delta_generator import DeltaGenerator

from cnnviz.datasets.samples import Sample, load_sample

CRISP_KEY_PREFIX = "crisp_"
# Images inside a container keyed crisp_* are scaled up by the browser with square pixels: the page
# sends a small picture (one pixel per value) and the student still sees every value as a cell.
CRISP_CSS = f"<style>[class*='st-key-{CRISP_KEY_PREFIX}'] img {{image-rendering: pixelated;}}</style>"


KEPT_KEYS = "kept_widget_keys"
MARKDOWN_SPECIALS = "\\`*_[]()<>#+-.!|{}~$:"


def markdown_text(text: str) -> str:
    """``text`` escaped so that st.markdown, st.caption, st.error ... show it as typed: a name from a
    file (``[click](http://evil)``) becomes no link, no emphasis, no heading."""
    return "".join("\\" + c if c in MARKDOWN_SPECIALS else c for c in text)


def kept(key: str) -> str:
    """Mark a widget's key so that its value survives a visit to another page; returns the key.

    Streamlit forgets the state of every widget a run does not draw, so without this a student who
    looks at another page comes back to the defaults. Only for widgets whose value may be set
    through ``st.session_state`` (not buttons, uploaders or the camera).
    """
    st.session_state.setdefault(KEPT_KEYS, set()).add(key)
    return key


def keep_widget_values() -> None:
    """Give every kept widget its own value again, which Streamlit then keeps while its page is not
    shown (the documented way to carry widget state across pages). app.py calls this every run."""
    for key in st.session_state.get(KEPT_KEYS, ()):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def crisp_images(name: str) -> DeltaGenerator:
    """A container whose images the browser scales up without blurring (nearest neighbour)."""
    st.html(CRISP_CSS)  # style-only HTML takes no room on the page
    return st.container(key=CRISP_KEY_PREFIX + name)


def pixel_image(pixels: torch.Tensor, size: int = 112) -> Image.Image:
    """A (C, H, W) uint8 tensor as a PIL image scaled up with crisp pixels (nearest neighbour)."""
    array = pixels.permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    factor = max(1, size // max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


@st.cache_data(show_spinner=False)
def _sample_png(path: str, size: int) -> np.ndarray:
    sample = next(s for s in _all_samples() if str(s.path) == path)
    return np.asarray(pixel_image(load_sample(sample), size))


@st.cache_resource(show_spinner=False)
def _all_samples() -> list[Sample]:
    from cnnviz.datasets.files import DATASETS
    from cnnviz.datasets.samples import list_samples

    return [s for name in DATASETS for s in list_samples(name)]


def sample_grid(samples: Sequence[Sample], per_row: int = 10, per_class: int | None = None,
                size: int = 84) -> None:
    """Show bundled samples in rows, captioned with their class."""
    chosen, counts = [], {}
    for sample in samples:
        if per_class is None or counts.get(sample.label, 0) < per_class:
            chosen.append(sample)
            counts[sample.label] = counts.get(sample.label, 0) + 1
    for start in range(0, len(chosen), per_row):
        row = chosen[start:start + per_row]
        st.image([_sample_png(str(s.path), size) for s in row],
                 caption=[s.class_name for s in row], width=size)


def built_once(store: str, anchor: object, key: tuple, make: Callable[[], Any], limit: int) -> Any:
    """This session's value for ``anchor`` and ``key`` (a figure of a snapshot, say), made once and kept in
    ``st.session_state[store]``, the oldest first to go beyond ``limit`` entries. It is filed under the
    anchor's id and holds the anchor itself, so the id cannot be reused by another object while kept."""
    kept: dict = st.session_state.setdefault(store, {})
    slot = (id(anchor), *key)
    if slot not in kept:
        kept[slot] = (anchor, make())
        while len(kept) > limit:
            kept.pop(next(iter(kept)))
    return kept[slot][1]
