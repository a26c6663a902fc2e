"""What excites the picked channel: the 9 test images whose strongest response in it is highest (each
cut to that cell's receptive field, and marked on the whole image), and an optimized image.

Both are heavy (all 10,000 test images through the layers, or dozens of steps of gradient ascent), so
they run only when asked, at the low priority of training, and are kept for the session per (model,
layer, channel). The top images never hold a page run: the button starts the layer's maxima in a
background thread (``top_images.layer_maxima_if_ready``, on every core while the machine is idle), a
fragment shows how far it is and reruns the page once they are ready. The optimized image runs with a
spinner (``runtime.run_at_low_priority``).
"""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from cnnviz import pages
from cnnviz.datasets.files import DataNotFoundError
from cnnviz.explorer import top_images as top
from cnnviz.explorer.optimize import OptimizedImage, optimize_image
from cnnviz.runtime import run_at_low_priority, spare_cores, training_threads
from cnnviz.ui.explorer import parts
from cnnviz.ui.explorer.figures import PICK_COLOUR
from cnnviz.ui.host import training_queue
from cnnviz.ui.widgets import crisp_images

RESULTS_KEY = "explore_excite"  # this session's results: {(kind, model key, layer, channel): result}
RESULTS_KEPT = 24
WAITING_KEY = "explore_top_waiting"  # the (model key, layer, channel) whose top images are being found
POLL_SECONDS = 0.5  # how often the page looks whether a layer's maxima are ready
OBJECTIVE_KEY = "explore_objective"  # what the optimized image maximizes: the map's mean or its centre
PLAIN_STD = 8.0  # pixel levels: an optimized image this flat is "one plain colour"
SHOWN_PX = 112  # each top image on screen
MARK_RGB = tuple(int(PICK_COLOUR[i:i + 2], 16) for i in (1, 3, 5))


def _results() -> dict:
    return st.session_state.setdefault(RESULTS_KEY, {})


def _keep(key: tuple, value) -> None:
    results = _results()
    results[key] = value
    while len(results) > RESULTS_KEPT:
        results.pop(next(iter(results)))


def _rgb(pixels: np.ndarray) -> np.ndarray:
    return np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else pixels


def marked_image(full: np.ndarray, crop: top.TopCrop) -> Image.Image:
    """The whole test image enlarged, its top cell's receptive field outlined, and beside it the crop
    (the field's pixels) at the same scale: one picture per top image."""
    rgb = _rgb(full)
    height = rgb.shape[0]
    factor = max(1, SHOWN_PX // height)
    whole = Image.fromarray(rgb).resize((rgb.shape[1] * factor, height * factor), Image.Resampling.NEAREST)
    box = crop.box
    draw = ImageDraw.Draw(whole)
    draw.rectangle([box.left * factor, box.top * factor, (box.right + 1) * factor - 1,
                    (box.bottom + 1) * factor - 1], outline=MARK_RGB, width=2)
    cut = _rgb(crop.pixels)
    scale = max(1, whole.height // max(cut.shape[0], 1))
    zoomed = Image.fromarray(cut).resize((cut.shape[1] * scale, cut.shape[0] * scale),
                                         Image.Resampling.NEAREST)
    picture = Image.new("RGB", (whole.width + 6 + zoomed.width, whole.height), (255, 255, 255))
    picture.paste(whole, (0, 0))
    picture.paste(zoomed, (whole.width + 6, (whole.height - zoomed.height) // 2))
    return picture


def _top_threads() -> int:
    """Every core while the machine is otherwise idle (no run trains on this server, nothing else used
    the cores over the last minute), else one thread: it never competes with a run for its cores."""
    running, _ = training_queue().counts()
    return min(training_threads(), spare_cores()) if running == 0 else 1


Found = list[tuple[top.TopCrop, np.ndarray]]  # the top images, each with its whole test image


def _top_if_ready(model: parts.Model, layer: int, channel: int) -> Found | None:
    """The top images with their whole pictures, or None while the layer's maxima are computed in the
    background (started here; instant once the layer's maxima are cached)."""
    loaded = model.loaded
    test = top.load_test_set(loaded)
    if top.layer_maxima_if_ready(loaded.model, test, layer, key=model.key, threads=_top_threads()) is None:
        return None
    tops = top.top_images(loaded.model, test, layer, channel, key=model.key)
    crops = top.crop_top_images(loaded.model, test, layer, tops)
    found = []
    for crop in crops:
        pixels = test.pixels[crop.top.index].permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
        found.append((crop, pixels[:, :, 0] if pixels.shape[2] == 1 else pixels))
    return found


def _optimize(model: parts.Model, layer: int, channel: int, objective: str) -> OptimizedImage:
    loaded = model.loaded
    return optimize_image(loaded.model, layer, channel, loaded.mean, loaded.std, objective=objective,
                          images=top.load_test_set(loaded), key=model.key)


def show_excite(model: parts.Model, cell: parts.Cell) -> None:
    """Two buttons and, once asked, the 9 top test images and the optimized image for the channel."""
    key = (model.key, cell.layer, cell.channel)
    top_column, optimized_column = st.columns([5, 2], gap="medium")  # 3:1 cut the button at 800 px
    with top_column:
        if st.button("Find the 9 test images it responds to most", key=pages.EXPLORE_TOP_IMAGES_KEY,
                     icon=":material/search:", help="All 10,000 test images through the network up to this "
                     "layer (once per layer: later channels of the layer are instant)."):
            st.session_state[WAITING_KEY] = key
        if st.session_state.get(WAITING_KEY) == key:
            _find_or_wait(model, cell)
        found = _results().get(("top", *key))
        if found is not None:
            _show_top(found, cell)
    with optimized_column:
        objective = "mean"
        if cell.layer < len(model.loaded.model.features):  # a map: its mean, or one cell's value
            labels = {"mean": "the whole map", "centre": "the map's centre cell"}
            objective = st.radio("Make it fire over", list(labels), format_func=labels.get, horizontal=True,
                                 key=OBJECTIVE_KEY)
        if st.button("Optimize an image for it", key=pages.EXPLORE_OPTIMIZE_KEY,
                     icon=":material/auto_awesome:",
                     help="Gradient ascent on the input, from noise, to make this channel fire."):
            with st.spinner("Climbing the gradient from noise ..."):
                _run(("optimized", *key, objective), _optimize, model, cell.layer, cell.channel, objective)
        optimized = _results().get(("optimized", *key, objective))
        if optimized is not None:
            _show_optimized(optimized)


def _find_or_wait(model: parts.Model, cell: parts.Cell) -> None:
    """Keep the top images once the layer's maxima are ready; until then a progress line, polled by a
    fragment that reruns the page when they are (a page run never waits for the 10,000 images)."""
    key = (model.key, cell.layer, cell.channel)
    try:
        found = _top_if_ready(model, cell.layer, cell.channel)
    except (DataNotFoundError, ValueError) as err:
        st.session_state.pop(WAITING_KEY, None)
        st.warning(str(err))
        return
    except RuntimeError as err:  # torch's, from the background thread (out of memory, say)
        st.session_state.pop(WAITING_KEY, None)
        st.warning(f"Finding the top images failed ({err}); press the button to try again.")
        return
    if found is not None:
        st.session_state.pop(WAITING_KEY, None)
        _keep(("top", *key), found)
        return

    @st.fragment(run_every=POLL_SECONDS)
    def wait_for_the_maxima() -> None:
        """The progress line; the whole page reruns once the layer's maxima are cached."""
        if st.session_state.get(WAITING_KEY) != key:
            return
        done = top.maxima_progress(model.key, cell.layer)
        if done is None:  # ready, or failed: the page's own run shows which
            st.rerun()
        st.progress(done, text=f"Running the 10,000 test images through the network up to layer "
                    f"{cell.layer}: {done:.0%} (once per layer: later channels of it are instant) ...")

    wait_for_the_maxima()


def _run(key: tuple, work, *args) -> None:
    """``work(*args)`` at training's low priority (it never slows other students' page reruns), kept
    under ``key``; a missing test set or a refused layer is one sentence."""
    try:
        _keep(key, run_at_low_priority(work, *args))
    except (DataNotFoundError, ValueError) as err:
        st.warning(str(err))


def _show_top(found: Found, cell: parts.Cell) -> None:
    unit = "unit" if found and found[0][0].top.row is None else "channel"
    st.caption(f"The {len(found)} of the 10,000 test images with the {pages.TOP_IMAGES_DONE_TEXT} in {unit} "
               f"{cell.channel} of layer {cell.layer}, highest first: each whole image with its strongest "
               "cell's receptive field outlined, and that field cut out beside it.")
    with crisp_images("explore_top"):
        for start in range(0, len(found), 3):
            columns = st.columns(3)
            for column, (crop, full) in zip(columns, found[start:start + 3], strict=False):
                where = "" if crop.top.row is None else f" at row {crop.top.row}, column {crop.top.col}"
                column.image(marked_image(full, crop), output_format="PNG",
                             caption=f"test image {crop.top.index:,}: {crop.top.value:.3f}{where}")


def _show_optimized(optimized: OptimizedImage) -> None:
    with crisp_images("explore_optimized"):
        rgb = _rgb(optimized.pixels)
        factor = max(1, 2 * SHOWN_PX // rgb.shape[0])
        st.image(Image.fromarray(rgb).resize((rgb.shape[1] * factor, rgb.shape[0] * factor),
                                             Image.Resampling.NEAREST), output_format="PNG",
                 caption="Optimized image, not a photo: made by gradient ascent from noise.")
    what = "mean over its map" if optimized.objective == "mean" else "value at the map's centre cell"
    typical = ("" if optimized.dataset_mean is None
               else f"; over the test images it averages {optimized.dataset_mean:.3f}")
    st.caption(f"The channel's {what}: {optimized.start_activation:.3f} {pages.OPTIMIZED_DONE_TEXT}, "
               f"{optimized.activation:.3f} on this image{typical}.")
    if float(optimized.pixels.astype(np.float32).std()) < PLAIN_STD:
        st.caption("Nearly one flat colour: over the whole map this filter likes a plain picture best. "
                   "Try the map's centre cell to see the pattern it looks for in one place.")
