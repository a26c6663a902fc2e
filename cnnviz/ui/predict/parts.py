"""Widgets and cached work behind the inspect-and-predict page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from cnnviz import pages
from cnnviz.datasets.samples import list_samples, load_sample
from cnnviz.images.attempt import Attempt
from cnnviz.images.decode import UPLOAD_EXTENSIONS, ImageError, decode_array, decode_image
from cnnviz.images.preprocess import Preprocessed, prepare_dataset_pixels, preprocess
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import (
    SHIPPED_MODELS,
    LoadedModel,
    list_models,
    load_checkpoint,
    saved_models_dir,
)
from cnnviz.ui.host import upload_limit_mb, upload_limits
from cnnviz.ui.widgets import kept, markdown_text

INPUTS = ("Test-set sample", pages.UPLOAD_INPUT, "Draw a digit", "Camera")
CANVAS_SIDE = 280  # px on screen: 10 per MNIST pixel
CANVAS_STROKE = 22  # px: about MNIST's stroke width relative to the digit
FRAME_RGB = (243, 245, 249)  # the page's secondary background: the margin around a step's image
EDGE_RGB = (160, 166, 178)  # a line between the margin and the image, so a white image still shows its size
STEP_PX = 224  # a step's picture is sent at most this big (shown about 100 px wide, 2x for sharp screens)
KEPT_UPLOAD = "predict_kept_upload"  # the latest upload's bytes, kept while the uploader is not shown
CANVAS_BOX = "predict_draw"  # the container of the drawing canvas
# The canvas (a component in a shadow root, out of reach of the page's CSS) puts its toolbar over what is
# above it, with a button that sends the drawing, which it does by itself when the pen is lifted: the
# toolbar goes below the canvas, always shown, without that button.
CANVAS_CSS = (".dc-toolbar {position: static; opacity: 1; padding: 0.35rem 0 0 0; justify-content: flex-end;}"
              " .dc-icon-button[aria-label='Update the app with this drawing'] {display: none;}")
CANVAS_FIX = """<script>
(() => {
  const css = CSS, box = '.st-key-BOX';
  // The component fills its shadow root after the page has added it: look again until it is there.
  const fix = () => {
    for (const host of document.querySelectorAll(box + ' *')) {
      const root = host.shadowRoot;
      if (root && root.querySelector('.dc-root') && !root.querySelector('style[data-cnnviz]')) {
        const style = document.createElement('style');
        style.dataset.cnnviz = 'canvas';
        style.textContent = css;
        root.appendChild(style);
      }
    }
  };
  fix();
  const timer = setInterval(fix, 200);
  setTimeout(() => clearInterval(timer), 60000);
})();
</script>""".replace("CSS", json.dumps(CANVAS_CSS)).replace("BOX", CANVAS_BOX)


@dataclass(frozen=True)
class KeptUpload:
    """An uploaded file's bytes, kept in the session so that it survives a visit to another page
    (Streamlit forgets an uploader's file when the uploader is not drawn)."""

    file_id: str  # Streamlit's id of this upload
    name: str  # the file's name, as the student's computer named it
    data: bytes


@dataclass(frozen=True)
class ModelChoice:
    label: str  # shown in the picker
    path: str | None  # a file, or None for a model trained in this session
    run: str | None = None  # the training page's run id ("#2")


@st.cache_resource(show_spinner="Loading the model ...", max_entries=8)
def load_model_file(path: str, modified: float) -> LoadedModel:
    """A model file, loaded once per process (eval mode); a new ``modified`` time reloads it."""
    return load_checkpoint(path)


def model_choices() -> list[ModelChoice]:
    """Shipped models (MNIST first: it can be drawn), models saved from the training page (by name,
    whatever the case), and runs trained in this session."""
    paths = list_models(MODELS_DIR)
    saved = saved_models_dir()
    if saved.resolve() != MODELS_DIR.resolve():
        paths += list_models(saved)

    def shipped(path: Path) -> bool:
        return path.parent.resolve() == MODELS_DIR.resolve() and path.stem in SHIPPED_MODELS

    paths.sort(key=lambda p: (0, SHIPPED_MODELS.index(p.stem)) if shipped(p) else (1, p.stem.casefold()))
    choices = [ModelChoice(f"{p.stem}  ({'shipped' if shipped(p) else 'saved'})", str(p)) for p in paths]
    for record in st.session_state.get("train_runs", []):
        label = f"run {record.label} of this session ({record.dataset})"
        choices.append(ModelChoice(label, None, record.label))
    return choices


def load_choice(choice: ModelChoice) -> LoadedModel:
    """The chosen model (raises ValueError with one sentence when it cannot be loaded)."""
    if choice.path is not None:
        path = Path(choice.path)
        if not path.is_file():
            raise ValueError(f"The model file {path.name} is gone: choose another model.")
        return load_model_file(str(path), path.stat().st_mtime)
    record = next((r for r in st.session_state.get("train_runs", []) if r.label == choice.run), None)
    if record is None:
        raise ValueError("That training run is no longer in this session: choose another model.")
    name = f"Run {choice.run} of this session"  # not the dataset's name, which the shipped model has
    return LoadedModel(model=record.model.eval(), metadata={**record.metadata, "name": name})


def prepare_bytes(
    data: bytes, dataset: str, mean: tuple, std: tuple, max_bytes: int, max_pixels: int,
) -> Preprocessed:
    """Decode and preprocess an uploaded or camera file (cached per file and model normalization,
    a failure too); ImageError if unreadable."""
    return _prepare_attempt(data, dataset, mean, std, max_bytes, max_pixels).result()


@st.cache_data(show_spinner=False, max_entries=32)
def _prepare_attempt(
    data: bytes, dataset: str, mean: tuple, std: tuple, max_bytes: int, max_pixels: int,
) -> Attempt[Preprocessed]:
    return Attempt.of(lambda: preprocess(decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels),
                                         dataset, mean, std))


def choose_input(loaded: LoadedModel) -> Preprocessed | None:
    """The input widgets; the prepared image, or None (with a sentence on the page) when there is none."""
    source = st.radio("Input", INPUTS, key=kept(pages.PREDICT_SOURCE_KEY), horizontal=True)
    mean, std = tuple(loaded.mean), tuple(loaded.std)
    try:
        if source == "Test-set sample":
            samples = list_samples(loaded.dataset)
            sample = st.selectbox("Sample", samples, format_func=lambda s: s.caption,
                                  key=kept("predict_sample"))
            return prepare_dataset_pixels(load_sample(sample), loaded.dataset, mean, std)
        if source == pages.UPLOAD_INPUT:
            data = uploaded_bytes()
            if data is None:
                st.info("Upload a photo: a handwritten digit for an MNIST model, an object for CIFAR-10.")
                return None
            return prepare_bytes(data, loaded.dataset, mean, std, **upload_limits())
        if source == "Camera":
            shot = st.camera_input("Take a picture", key="predict_camera")
            if shot is None:
                st.info("Allow the camera and take a picture (browsers allow it on localhost or HTTPS).")
                return None
            return prepare_bytes(shot.getvalue(), loaded.dataset, mean, std, **upload_limits())
        return drawn_digit(loaded)
    except ImageError as err:
        st.error(str(err), icon=":material/image_not_supported:")
        return None


def uploaded_bytes() -> bytes | None:
    """The uploader, and the bytes of the file it holds, or of the latest upload it held before a visit
    to another page (up to the host's upload limit); None when there is none."""
    limit = upload_limits()["max_bytes"]
    upload = st.file_uploader("An image (PNG, JPEG, WebP, BMP, GIF, TIFF)", type=list(UPLOAD_EXTENSIONS),
                              key=pages.PREDICT_UPLOAD_KEY, max_upload_size=upload_limit_mb(),
                              on_change=_forget_removed_upload)
    if upload is not None:
        data = upload.getvalue()
        if len(data) <= limit:  # a larger file is refused with a sentence, and not kept
            st.session_state[KEPT_UPLOAD] = KeptUpload(upload.file_id, upload.name, data)
        return data
    kept_upload = st.session_state.get(KEPT_UPLOAD)
    if not isinstance(kept_upload, KeptUpload):
        return None
    text, forget = st.columns([4, 1], vertical_alignment="center")
    text.caption(f"Your upload {markdown_text(kept_upload.name)}, kept from before: upload another file "
                 "to replace it.")
    if forget.button("Forget it", key="predict_forget_upload", on_click=st.session_state.pop,
                     args=(KEPT_UPLOAD, None)):
        return None
    return kept_upload.data


def _forget_removed_upload() -> None:
    """The student removed the file from the uploader (a visit to another page does not call this)."""
    if st.session_state.get(pages.PREDICT_UPLOAD_KEY) is None:
        st.session_state.pop(KEPT_UPLOAD, None)


def smoothing_note(metadata: dict[str, Any], class_count: int) -> str | None:
    """One sentence when the model was trained with label smoothing, which caps its confidence; None
    when it was not, or when its file does not say (older checkpoints store no training config)."""
    training = metadata.get("training")
    smoothing = training.get("label_smoothing") if isinstance(training, dict) else None
    if type(smoothing) not in (int, float) or not 0 < smoothing < 1:
        return None
    target = 1 - smoothing + smoothing / class_count  # the right class's share of the smoothed target
    return (f"This model was trained with label smoothing {smoothing:g}: it was taught to give the right "
            f"class {target:.0%} and every other class {smoothing / class_count:.0%}, not 100% and 0%, so "
            f"even a clear image gets little more than {target:.0%}.")


def drawn_digit(loaded: LoadedModel) -> Preprocessed | None:
    """A drawing canvas: white strokes on black, like MNIST."""
    from streamlit_drawable_canvas import st_canvas  # registers a component: only on this page

    st.html(CANVAS_FIX, unsafe_allow_javascript=True)
    with st.container(key=CANVAS_BOX):
        result = st_canvas(stroke_width=CANVAS_STROKE, stroke_color="#FFFFFF", background_color="#000000",
                           height=CANVAS_SIDE, width=CANVAS_SIDE, drawing_mode="freedraw",
                           return_image_data=True, key="predict_canvas")
    st.caption("Draw one digit with the mouse or a finger; it goes through the network when you lift the "
               "pen.")  # both pages: the explorer does not "predict" it
    if loaded.dataset != "mnist":
        st.caption("This model was trained on photos, not digits: it will still pick one of its classes.")
    rgba = result.image_data if result is not None else None
    if rgba is None or not rgba[:, :, :3].any():
        st.info("The canvas is empty: draw a digit.")
        return None
    # Where the canvas leaves pixels transparent they count as the black background.
    rgb = (rgba[:, :, :3].astype(np.float32) * (rgba[:, :, 3:] / 255.0)).round().astype(np.uint8)  # (H, W, 3)
    return preprocess(decode_array(rgb), loaded.dataset, tuple(loaded.mean), tuple(loaded.std))


def square_frame(image: np.ndarray) -> np.ndarray:
    """A step's (H, W) or (H, W, 3) uint8 image centred on a square of the page's background, so
    that a row of steps lines up and a thin digit keeps its true shape; at most ``STEP_PX`` square.
    A grey line in the margin marks the image's edges (a white crop of a "1" would vanish otherwise)."""
    rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image  # (H, W, 3)
    height, width = rgb.shape[:2]
    side = max(height, width)
    framed = np.empty((side, side, 3), dtype=np.uint8)
    framed[:] = FRAME_RGB
    top, left = (side - height) // 2, (side - width) // 2
    framed[top:top + height, left:left + width] = rgb
    if left > 0:  # margins left and right
        framed[top:top + height, [left - 1, left + width]] = EDGE_RGB
    if top > 0:  # margins above and below
        framed[[top - 1, top + height], left:left + width] = EDGE_RGB
    if side <= STEP_PX:
        return framed
    # A photo's early steps are large: shrink them here (averaging, no aliasing) rather than send them
    # whole to be shrunk by the browser.
    return np.asarray(Image.fromarray(framed).resize((STEP_PX, STEP_PX), Image.Resampling.BOX))
