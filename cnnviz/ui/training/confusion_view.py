"""The clickable confusion matrix: click a cell (true i, predicted j) and see exactly those images.

At the end of a run (:func:`results_confusion`) the list shows the test images with the final
network's top-3 probabilities and Grad-CAM; at a snapshot (:func:`snapshot_confusion`, for the time
slider) the check images with the top-3 the snapshot stored. Streamlit 1.67 reports no click on a
Plotly heatmap, so an invisible small marker lies on every cell's centre and takes the clicks; two
select boxes under the matrix pick the same cell by keyboard and follow each click.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image

from cnnviz.datasets import files as data
from cnnviz.images.inspection import heatmap_overlay
from cnnviz.training.cells import explain_images
from cnnviz.training.loop import TrainResult
from cnnviz.training.results import cell_members, confusion_matrix
from cnnviz.training.snapshots import RunSnapshots, Snapshot
from cnnviz.training.step import normalize
from cnnviz.ui.training.figures import confusion_heatmap
from cnnviz.ui.widgets import built_once

SHOWN = 24  # images listed per page of a cell
TILE = 72  # pixels of each image (and of its Grad-CAM beside it) on the page
CAPTION_CHAR_PX = 8  # a caption character's width, as parts.CAPTION_CHAR_PX (parts imports this module)
CACHE_KEY = "confusion_view_explained"  # session state: the explained pages of the last run's cells


def clickable_confusion_figure(matrix: torch.Tensor, classes: Sequence[str]) -> go.Figure:
    """:func:`~cnnviz.ui.training.figures.confusion_heatmap` with an invisible square marker over each
    cell whose ``customdata`` is its [true, predicted] pair, so that a click reports the cell."""
    figure = confusion_heatmap(matrix, classes)
    n = len(classes)
    rows, cols = np.divmod(np.arange(n * n), n)  # row-major: cell k is (k // n, k % n)
    figure.add_trace(go.Scatter(
        x=[classes[c] for c in cols], y=[classes[r] for r in rows], mode="markers",
        # Small markers: Plotly counts every marker under the pointer as at distance 0, so markers larger
        # than a cell (a narrow screen) would tie and the wrong one could win; small ones let the
        # nearest centre win, within Plotly's hover distance (20 px) of it, about a wide cell's half.
        marker={"symbol": "square", "size": 6, "opacity": 0.01, "color": "#000"},
        # plain lists: a numpy array travels as a typed array and comes back as {"0": i, "1": j}
        customdata=np.stack([rows, cols], axis=1).tolist(), showlegend=False,
        text=matrix.flatten().tolist(),
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
    ))
    # The heatmap takes no hover, else off a marker's centre the heatmap's cell wins the click, and
    # Streamlit reports no point for a heatmap. Its tooltip moves onto the markers.
    figure.update_traces(hoverinfo="skip", hovertemplate=None, selector={"type": "heatmap"})
    figure.update_layout(clickmode="event+select", dragmode=False)
    return figure


FIGURES_KEY = "train_confusion_figures"  # session state: the clickable figures of the matrices drawn
KEPT_FIGURES = 32  # a run's snapshots and its results: a slider going back and forth builds none twice


def _figure_of(matrix: torch.Tensor, classes: Sequence[str]):
    """This session's clickable figure of ``matrix``, built once (a fifth of a time-slider step's server
    time was building it again): see :func:`built_once`."""
    return built_once(FIGURES_KEY, matrix, tuple(classes),
                      lambda: clickable_confusion_figure(matrix, classes), KEPT_FIGURES)


def pick_cell(matrix: torch.Tensor, classes: Sequence[str], key: str) -> tuple[int, int]:
    """Draw the clickable matrix (chart ``key``) and return the picked (true, predicted) cell: the one
    last clicked, or chosen in the two select boxes; until then the most frequent mistake of this
    ``matrix`` (a time slider's matrix changes under the same key: the cell follows it)."""
    event = st.plotly_chart(_figure_of(matrix, classes), key=key, on_select="rerun",
                            selection_mode="points", config={"displayModeBar": False})
    true_key, said_key, click_key = f"{key}_true", f"{key}_said", f"{key}_clicked"
    auto_key = f"{key}_auto"  # True while the cell is ours (the most frequent mistake), not the student's
    points = event.selection.points if event is not None else []
    if not points:  # nothing selected (a second click on a cell deselects it): the next click is new
        st.session_state.pop(click_key, None)
    elif "customdata" in points[0]:
        clicked = _pair(points[0]["customdata"])
        if clicked != st.session_state.get(click_key):  # a new click, not the selection left from before
            st.session_state[click_key] = clicked
            st.session_state[true_key], st.session_state[said_key] = (classes[i] for i in clicked)
            st.session_state[auto_key] = False
    if st.session_state.get(auto_key, True) or true_key not in st.session_state \
            or said_key not in st.session_state:
        st.session_state[true_key], st.session_state[said_key] = (
            classes[i] for i in _most_frequent_mistake(matrix))
        st.session_state[auto_key] = True
    left, right = st.columns(2)
    true_name = left.selectbox("True class", list(classes), key=true_key, on_change=_picked, args=(auto_key,))
    said_name = right.selectbox("Predicted", list(classes), key=said_key, on_change=_picked, args=(auto_key,))
    return list(classes).index(true_name), list(classes).index(said_name)


def _picked(auto_key: str) -> None:
    st.session_state[auto_key] = False  # the student chose a cell: it stays when the matrix changes


def results_confusion(result: TrainResult, key: str) -> None:
    """The end of a run: its matrix on the test images, clickable, and the picked cell's test images
    with the final network's top-3 and Grad-CAM of the class it answered."""
    classes = list(result.info.classes)
    matrix = confusion_matrix(result.test_predictions, result.test_labels, len(classes))
    true, said = pick_cell(matrix, classes, key)
    members = cell_members(result.test_predictions, result.test_labels, true, said)
    shown = _page_of(members, true, said, classes, key)
    if not len(shown):
        return
    test = data.load_dataset(result.info.name, "test", download=False)
    cache = st.session_state.setdefault(CACHE_KEY, {})
    if cache.get("run") is not result:  # one run's pages at a time
        cache.clear()
        cache["run"] = result
    page_key = (true, said, tuple(shown.tolist()))
    if page_key not in cache:
        mean = torch.tensor(result.info.mean).view(1, -1, 1, 1)  # (1, C, 1, 1)
        std = torch.tensor(result.info.std).view(1, -1, 1, 1)
        cache[page_key] = explain_images(result.model, normalize(test.images[shown], mean, std))
    explained = cache[page_key]
    tiles, captions = [], []
    for row, index in enumerate(shown.tolist()):
        heat = None if explained.heatmaps is None else explained.heatmaps[row]
        tiles.append(_tile(test.images[index], heat))
        captions.append(f"test #{index}: " + _top3_text(explained.top_classes[row],
                                                         explained.top_probabilities[row], classes))
    st.image(tiles, caption=captions, width=tiles[0].width, output_format="PNG")
    if explained.heatmaps is not None:
        st.caption(f"Each image, then its Grad-CAM for “{classes[said]}”: where the final network found "
                   "the evidence for the answer it gave (red and yellow = strong).")


def snapshot_confusion(
    snapshot: Snapshot, run_snapshots: RunSnapshots, key: str, classes: Sequence[str] | None = None,
) -> None:
    """One snapshot's matrix on the run's check images, clickable as :func:`results_confusion`, and
    the picked cell's check images with the top-3 that snapshot stored (``classes``: their names,
    default "0", "1", ...)."""
    names = list(classes) if classes is not None else [str(i) for i in range(len(snapshot.confusion))]
    true, said = pick_cell(snapshot.confusion, names, key)
    members = cell_members(snapshot.predictions, run_snapshots.check_labels, true, said)
    shown = _page_of(members, true, said, names, key)
    if not len(shown):
        return
    split = "validation" if run_snapshots.check_split == "val" else "test"
    captions = [f"{split} #{int(run_snapshots.check_indices[i])}: "
                + _top3_text(snapshot.top3[i], snapshot.top3_probabilities[i], names) for i in shown.tolist()]
    st.image([_tile(run_snapshots.check_pixels[i], None) for i in shown.tolist()], caption=captions,
             width=max(TILE, CAPTION_CHAR_PX * (max(len(name) for name in names) + len(" 100%"))),
             output_format="PNG")
    st.caption(f"The answers after step {snapshot.step:,}, without Grad-CAM: a snapshot keeps no weights "
               "to take gradients through. The results of the finished run show it for the final network.")


def _page_of(members: torch.Tensor, true: int, said: int, classes: Sequence[str], key: str) -> torch.Tensor:
    """Write the cell's count and return the members on the chosen page of :data:`SHOWN`."""
    verdict = "right" if true == said else "wrong"
    count = len(members)
    if count == 0:
        st.info(f"No image of a {classes[true]} was answered {classes[said]}.")
        return members
    pages = -(-count // SHOWN)
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"{key}_page_{true}_{said}"))
    start = (page - 1) * SHOWN
    shown = members[start:start + SHOWN]
    st.markdown(f"**{count:,} image{'s' if count != 1 else ''}** of a {classes[true]} answered "
                f"{classes[said]} ({verdict}); showing {start + 1}-{start + len(shown)} of {count:,}.")
    return shown


def _pair(customdata: list | dict) -> list[int]:
    """[true, predicted] from a clicked marker's customdata, a list or (typed arrays) {"0": i, "1": j}."""
    if isinstance(customdata, dict):
        customdata = [customdata[k] for k in sorted(customdata, key=int)]
    values = customdata
    return [int(v) for v in values]


def _most_frequent_mistake(matrix: torch.Tensor) -> tuple[int, int]:
    """The off-diagonal cell with the largest count (the diagonal's largest when there is none)."""
    wrong = matrix.clone()
    wrong.fill_diagonal_(-1)
    if int(wrong.max()) <= 0:
        best = int(matrix.diagonal().argmax())
        return best, best
    flat = int(wrong.argmax())
    return divmod(flat, matrix.shape[1])


def _top3_text(top: torch.Tensor, probabilities: torch.Tensor, classes: Sequence[str]) -> str:
    """'7 91% · 1 6% · 2 1%', each class and its share joined by a no-break space, and each '·' kept on
    the line of the answer before it, so a narrow caption wraps between the answers, never inside one
    ('8' at a line's end, '22%' on the next) nor before a '·'."""
    return "\N{NO-BREAK SPACE}· ".join(f"{classes[int(c)]}\N{NO-BREAK SPACE}{float(p):.0%}"
                      for c, p in zip(top, probabilities, strict=True))


def _tile(pixels: torch.Tensor, heatmap: torch.Tensor | None) -> Image.Image:
    """(C, H, W) uint8 as an image :data:`TILE` pixels wide, with its Grad-CAM overlay beside it."""
    array = pixels.permute(1, 2, 0).numpy()  # (H, W, C)
    rgb = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array[:, :, :3]
    if heatmap is not None:
        gap = np.full((rgb.shape[0], 1, 3), 255, dtype=np.uint8)
        rgb = np.concatenate([rgb, gap, heatmap_overlay(rgb, heatmap)], axis=1)  # (H, 2W + 1, 3)
    factor = max(1, TILE // pixels.shape[-1])
    image = Image.fromarray(np.ascontiguousarray(rgb))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
