"""The Train page's "map of what it learned": 2,000 test images placed by what the network's last layer
reads, before and after training; a click on a point shows that image, the answer and its neighbours.

The features are computed once per run and kept in the session (about 2 MB for MNIST, 8 MB for
CIFAR-10 with the images); PCA is drawn at once, t-SNE runs in a low-priority background thread while
a progress line counts its seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import streamlit as st
import torch
from torch import nn

from cnnviz import pages
from cnnviz.datasets import files as data
from cnnviz.datasets.files import DatasetInfo
from cnnviz.replay.learned_map import LearnedMap, PointDetails, learned_map, point_details
from cnnviz.replay.projection import METHOD_NAMES, METHODS, project, projection_if_ready, projection_progress
from cnnviz.runtime import run_at_low_priority
from cnnviz.training.snapshots import SNAPSHOT_WORK_SHARE, RunSnapshots
from cnnviz.ui.training.projection_figures import projection_map
from cnnviz.ui.widgets import crisp_images, pixel_image

CACHE_KEY = "train_projection_cache"  # session state: the latest run's map and its process-wide token
BEFORE, AFTER = "before training", "after training"
SIDE_BY_SIDE = "side by side"
KEPT_FIGURES = 2  # per session: 0.11 MB of JSON each for 4,000 points
TILE_PX = 96  # a neighbour's tile, wide enough for its caption on one line


def _cached_map(model: nn.Module, info: DatasetInfo,
                snapshots: RunSnapshots | None) -> tuple[str, LearnedMap]:
    """The run's map (computed once per model, at low priority on one thread) and a token naming it."""
    cached = st.session_state.get(CACHE_KEY)
    if cached is not None and cached["model"] is model and cached["snapshots"] is snapshots:
        return cached["token"], cached["map"]
    test = data.load_dataset(info.name, "test", download=False)
    with st.spinner("Reading what the network's last layer sees in 2,000 test images ..."):
        made = run_at_low_priority(learned_map, model, test, info.mean, info.std, snapshots, threads=1)
    token = uuid.uuid4().hex
    st.session_state[CACHE_KEY] = {"model": model, "snapshots": snapshots, "token": token, "map": made}
    return token, made


def _points(features: torch.Tensor, method: str, token: str, moment: str) -> torch.Tensor | None:
    if method != "pca":
        return projection_if_ready(features, method, key=(token, moment))
    kept = st.session_state[CACHE_KEY].setdefault("pca", {})
    if moment not in kept:
        kept[moment] = project(features, "pca")
    return kept[moment]


def projection_view(model: nn.Module, info: DatasetInfo, snapshots: RunSnapshots | None,
                    key: str = pages.TRAIN_PROJECTION_KEY) -> None:
    """The block for a finished run: the map (PCA or t-SNE; before and after when the run kept
    snapshots), and the clicked point's image, answer and nearest neighbours."""
    st.subheader("The map of what it learned")
    try:
        token, learned = _cached_map(model, info, snapshots)
    except ValueError as err:
        st.warning(str(err))
        return
    st.markdown(
        f"Each dot is one of {len(learned):,} test images, placed by the {learned.after.shape[1]} numbers "
        "the network's last layer reads to give its answer, squeezed into two dimensions. Dots close "
        "together look alike *to the network*; colours are the true classes. **Click a dot** to see "
        "that image.")
    controls = st.container(horizontal=True)
    method = controls.radio("Projection", METHODS, format_func=METHOD_NAMES.get, horizontal=True,
                            key=f"{key}_method",
                            help="PCA: the two directions in which the features vary most (a straight view). "
                            "t-SNE: keeps each image's nearest neighbours near, so groups show clearly; "
                            "distances between groups mean little.")
    moments = [AFTER] if learned.before is None else [SIDE_BY_SIDE, BEFORE, AFTER]
    view = AFTER if learned.before is None else controls.radio("Show", moments, horizontal=True,
                                                               key=f"{key}_view")
    if learned.before is None:
        st.caption("Only after training: the map before the first step was not kept for this run (it kept "
                   "no snapshots, or it stopped early or had so big a net that the map would have cost "
                   f"more than {SNAPSHOT_WORK_SHARE:.0%} of its training).")
    shown = [BEFORE, AFTER] if view == SIDE_BY_SIDE else [view]
    features = {BEFORE: learned.before, AFTER: learned.after}
    try:
        maps = {moment: _points(features[moment], method, token, moment) for moment in shown}
    except ValueError as err:  # the background t-SNE's own error, once; the next rerun tries again
        st.warning(f"The map could not be drawn: {err}")
        return
    if any(points is None for points in maps.values()):
        _wait_for_tsne(token, shown, len(learned))
        return
    figures = st.session_state[CACHE_KEY].setdefault("figures", {})  # this run's, by method and view
    if (method, view) not in figures:  # building 2,000-4,000 points is most of a rerun's cost
        if len(figures) >= KEPT_FIGURES:
            figures.pop(next(iter(figures)))
        figures[(method, view)] = projection_map([(moment, maps[moment]) for moment in shown], learned.labels,
                                                 learned.indices, info.classes, METHOD_NAMES[method])
    figure = figures[(method, view)]
    event = st.plotly_chart(figure, key=key, on_select="rerun", selection_mode="points",
                            config={"displayModeBar": False})
    picked = _picked(event, key)
    if picked is None or picked >= len(learned):
        st.caption("Click a dot to see its image, the network's answer and its nearest neighbours.")
        return
    details = point_details(model, learned, picked, info.classes, info.mean, info.std)
    _show_point(details, learned, info.classes)


def _picked(event, key: str) -> int | None:
    """The map position of the last point clicked (kept while a click selects nothing new)."""
    points = getattr(getattr(event, "selection", None), "points", None) or []
    for point in points:
        custom = point.get("customdata")
        if isinstance(custom, Sequence) and len(custom) == 2:
            st.session_state[f"{key}_picked"] = int(custom[0])
            break
    return st.session_state.get(f"{key}_picked")


def _wait_for_tsne(token: str, moments: list[str], points: int) -> None:
    @st.fragment(run_every=0.5)
    def progress() -> None:
        lines = [projection_progress((token, moment), "tsne") for moment in moments]
        under_way = [line for line in lines if line is not None]
        if len(under_way) < len(lines):
            st.rerun()  # one finished (or failed): the page asks again and draws it
        running = [p for p in under_way if not p.waiting]
        shown = max(running or under_way, key=lambda p: p.elapsed)
        # The maps are made one after the other: say so, else "of about 4 s" reads as the whole wait.
        queued = [p for p in under_way if p is not shown]
        more = f"; then {len(queued)} more map{'s' if len(queued) > 1 else ''}, about " \
            f"{sum(p.expected for p in queued):.0f} s" if queued else ""
        st.progress(min(0.99, shown.elapsed / max(shown.expected, 1e-6)),
                    text=f"t-SNE of {points:,} images: {shown.line}{more}")

    progress()


def _tiles(learned: LearnedMap, positions: list[int], classes: Sequence[str], key: str) -> None:
    with crisp_images(key):
        st.image([pixel_image(learned.pixels[p], TILE_PX) for p in positions],
                 caption=[f"{classes[int(learned.labels[p])]} (test {int(learned.indices[p])})"
                          for p in positions], width=TILE_PX, output_format="PNG")


def _show_point(details: PointDetails, learned: LearnedMap, classes: Sequence[str]) -> None:
    left, right = st.columns([1, 3], gap="large")
    with left:
        st.markdown(f"**Test image {details.test_index}** (true class: {classes[details.label]})")
        with crisp_images("train_projection_point"):
            st.image(pixel_image(learned.pixels[details.position], 112), width=112, output_format="PNG")
        st.markdown("The trained network says:\n\n" + "\n".join(
            f"- {name}: {probability:.1%}" for name, probability in details.top))
    with right:
        st.markdown(f"**Its {len(details.neighbours_after)} nearest neighbours** in what the trained "
                    "network's last layer reads:")
        _tiles(learned, details.neighbours_after, classes, "train_projection_after")
        if details.neighbours_before is not None:
            st.markdown("**Before training** its nearest neighbours were:")
            _tiles(learned, details.neighbours_before, classes, "train_projection_before")
