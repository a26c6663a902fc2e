"""The time machine of the Train page: a slider (and Play) over a run's snapshots, live while it
trains and after it, and everything at the chosen moment: the first learned layer's filters, the
probe's maps, answer and Grad-CAM, the confusion matrix and per-class accuracy on the check images,
and the learning curves with that moment marked.

The slider and Play live in one fragment, so a step of the slider redraws only the time machine.
Play is the fragment's ``run_every``: each automatic rerun moves the slider one snapshot on. The
interval is fixed when the fragment is drawn, so pressing Play or Pause reruns the whole page once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import streamlit as st

from cnnviz import pages
from cnnviz.datasets.files import dataset_info
from cnnviz.training.jobs import TrainingJob
from cnnviz.training.progress import HistoryPoint
from cnnviz.training.snapshots import CHECK_IMAGES, SNAPSHOT_WORK_SHARE, RunSnapshots, Snapshot
from cnnviz.ui.training import timeline_figures as tf
from cnnviz.ui.training.confusion_view import snapshot_confusion
from cnnviz.ui.training.figures import filter_grid, learning_curves
from cnnviz.ui.training.parts import window_losses
from cnnviz.ui.training.runs import RunRecord
from cnnviz.ui.widgets import built_once, crisp_images

PLAY_SECONDS = 0.7  # one snapshot per this while playing: the redraw takes well under it
LIVE_SECONDS = 2.0  # while a run trains: new snapshots are picked up this often (as the live view)
PLAYING_KEY = "train_time_playing"
FOLLOW_KEY = "train_time_follow"  # the slider follows the newest snapshot until the student moves it
SOURCE_KEY = "train_time_source"  # which run the slider is over: "live", or a run's label
LAYER_KEY = "train_time_layer"
TICK_KEY = "train_time_tick"  # False: this rerun came from a press or a move, not from Play's clock
DRAWN_KEY = "train_time_drawn"  # (index, snapshots) the slider was last drawn with
STALE_KEY = "train_time_stale"  # the same before the number of snapshots last changed
CACHE_KEY = "train_time_figures"
CACHE_ENTRIES = 96  # figures kept for this session: 4 kinds for every snapshot of a run
LIVE = "live"
FILTERS_PER_ROW = 4  # a narrow column: 8 first-layer filters in two rows are drawn twice as large
MAPS_PX = 480  # the probe's maps are shown at about this width
CAM_PX = 168  # the probe's Grad-CAM at most this wide (less in a narrow column)
CHART = {"config": {"displayModeBar": False}}


@dataclass(frozen=True)
class Replay:
    """A run the time machine shows: its snapshots and what is drawn beside them."""

    source: str  # LIVE for the run now training, else the run's label ("#2")
    snapshots: RunSnapshots
    classes: tuple[str, ...]
    history: tuple[HistoryPoint, ...]
    epochs: int | None  # planned epochs (the curves' x range), None for a finished run
    window_losses: tuple[tuple[float, float], ...] = ()  # (epoch, training loss of a few steps)


def moment_label(snapshot: Snapshot) -> str:
    """'step 120 · epoch 0.42': the slider's label for one snapshot."""
    return f"step {snapshot.step:,} · epoch {snapshot.epoch:.2f}"


def live_replay(job: TrainingJob) -> Replay | None:
    """The run now training as the time machine shows it (its snapshots so far), or None before its
    first snapshot."""
    state = job.snapshot()
    if state.snapshots is None or not state.snapshots.snapshots:
        return None
    history = tuple(HistoryPoint.from_progress(p) for p in state.points)
    classes = tuple(dataset_info(job.config.dataset).classes)
    return Replay(LIVE, state.snapshots, classes, history, job.config.epochs, tuple(window_losses(state)))


def finished_replays(runs: Sequence[RunRecord]) -> list[Replay]:
    """The finished runs of this session that kept snapshots, oldest first."""
    return [Replay(r.label, r.snapshots, tuple(r.metadata["classes"]), r.history,
                   r.metadata.get("training", {}).get("epochs"), r.window_losses)
            for r in runs if r.snapshots is not None]


def show_time_machine(job: TrainingJob | None, runs: Sequence[RunRecord]) -> None:
    """The time machine: over the run now training (its snapshots so far, picked up every
    :data:`LIVE_SECONDS`), else over one of this session's finished ``runs`` (a picker when there are
    several, the latest first chosen). Nothing when there is no run with snapshots yet."""
    training = job is not None and not job.snapshot().finished
    if not training and not finished_replays(runs):
        return
    playing = bool(st.session_state.get(PLAYING_KEY, False))
    every = PLAY_SECONDS if playing else LIVE_SECONDS if training else None

    @st.fragment(run_every=every)
    def time_machine() -> None:
        st.subheader("Watch it learn")
        if training and job.snapshot().finished:
            st.rerun(scope="app")  # the run has just ended: redraw the page with it in the history
        replay = live_replay(job) if training else _choose_run(finished_replays(runs))
        if replay is None:
            st.caption("The first snapshot is taken before the first training step: it appears here in a "
                       "moment.")
            return
        index = _moment(replay, playing)
        if bool(st.session_state.get(PLAYING_KEY, False)) != playing:
            st.rerun(scope="app")  # Play or Pause was pressed, or the end was reached: a new interval
        show_moment(replay, index)

    time_machine()


def _choose_run(finished: Sequence[Replay]) -> Replay:
    if len(finished) == 1:
        return finished[0]
    labels = [r.source for r in finished]
    chosen = st.selectbox("Run to replay", labels, index=len(labels) - 1,
                          key=f"train_time_run_{len(labels)}")  # a new run: the latest is chosen
    return next(r for r in finished if r.source == chosen)


def _moment(replay: Replay, playing: bool) -> int:
    """The slider and Play; returns the index of the chosen snapshot."""
    count = len(replay.snapshots.snapshots)
    previous = st.session_state.get(SOURCE_KEY)
    if previous != replay.source and not (previous == LIVE and replay.source == _latest_label()):
        st.session_state[FOLLOW_KEY] = True  # another run: start at its newest moment
        st.session_state[PLAYING_KEY] = playing = False
    st.session_state[SOURCE_KEY] = replay.source
    index = st.session_state.get(pages.TRAIN_TIME_KEY, count - 1)
    if playing and st.session_state.pop(TICK_KEY, True):
        index += 1
    if st.session_state.get(FOLLOW_KEY, True) and not playing:
        index = count - 1
    index = min(max(int(index), 0), count - 1)
    if playing and index == count - 1:
        st.session_state[PLAYING_KEY] = False  # the end: Play stops there
    st.session_state[pages.TRAIN_TIME_KEY] = index
    drawn = st.session_state.get(DRAWN_KEY)
    if drawn is not None and drawn[1] != count:
        st.session_state[STALE_KEY] = drawn  # what the browser may still report once (see _moved)
    st.session_state[DRAWN_KEY] = (index, count)
    row = st.container(horizontal=True, vertical_alignment="bottom")
    moments = replay.snapshots.snapshots
    with row:
        if count > 1:
            st.select_slider("Moment of the run", range(count), key=pages.TRAIN_TIME_KEY,
                             format_func=lambda i: moment_label(moments[i]), on_change=_moved, args=(count,),
                             width="stretch")
        else:
            st.caption(f"One snapshot so far: {moment_label(moments[0])}.")
        now_playing = bool(st.session_state.get(PLAYING_KEY, False))
        st.button("Pause" if now_playing else "Play", key=pages.TRAIN_PLAY_KEY, on_click=_toggle_play,
                  args=(count,), icon=":material/pause:" if now_playing else ":material/play_arrow:",
                  disabled=count < 2)
    return index


def _latest_label() -> str | None:
    runs = st.session_state.get("train_runs") or []
    return runs[-1].label if runs else None


def _moved(count: int) -> None:
    """The student moved the slider: it stays there unless they moved it to the newest moment."""
    value = st.session_state.get(pages.TRAIN_TIME_KEY)
    stale, drawn = st.session_state.get(STALE_KEY), st.session_state.get(DRAWN_KEY)
    if stale is not None and drawn is not None and value == stale[0] and stale[1] != count:
        # Not the student: when new snapshots lengthen the slider, the browser reports back the value
        # it showed before (seen in Chromium with Streamlit 1.67). Keep the moment drawn last.
        st.session_state[pages.TRAIN_TIME_KEY] = drawn[0]
        return
    st.session_state[FOLLOW_KEY] = value == count - 1
    st.session_state[TICK_KEY] = False  # this rerun shows their moment, not the next one


def _toggle_play(count: int) -> None:
    playing = not st.session_state.get(PLAYING_KEY, False)
    st.session_state[PLAYING_KEY] = playing
    st.session_state[TICK_KEY] = False  # the press itself does not move the slider
    if playing:
        st.session_state[FOLLOW_KEY] = False
        if st.session_state.get(pages.TRAIN_TIME_KEY, 0) >= count - 1:
            st.session_state[pages.TRAIN_TIME_KEY] = 0  # from the end, Play starts again at the beginning


def show_moment(replay: Replay, index: int) -> None:
    """Everything the run kept at snapshot ``index``."""
    run = replay.snapshots
    snapshot = run.snapshots[index]
    key = (replay.source, snapshot)
    loss = "" if snapshot.train_loss is None else \
        f" · training loss {snapshot.train_loss:.3f} over the steps since the previous snapshot"
    st.caption(f"Snapshot {index + 1} of {len(run.snapshots)}: after {snapshot.step:,} training steps "
               f"(epoch {snapshot.epoch:.2f}){loss}.")
    left, right = st.columns([1, 2], gap="medium")
    with left:
        if run.filters_layer is not None:
            # The only convolution here that does not learn is the recipes' patch-whitening first layer.
            before = (" Layer 0 is a fixed patch-whitening filter bank: its filters never change, so they "
                      "are not shown." if run.filters_layer > 0 and "Conv2d" in run.map_layers[0] else "")
            st.markdown(f"**Filters of layer {run.filters_layer}**, the first convolution that learns "
                        f"(each scaled to its own range).{before}")
            filters = _cached(key + ("filters",), lambda: filter_grid(tf.scaled_filters(snapshot.filters),
                                                                   per_row=FILTERS_PER_ROW))
            st.plotly_chart(filters, key="train_time_filters", **CHART)
    with right:
        curves = _cached(key + ("curves", len(replay.history), len(replay.window_losses)),
                         lambda: learning_curves(replay.history, replay.epochs, replay.window_losses,
                                                 mark_epoch=snapshot.epoch))
        st.plotly_chart(curves, key="train_time_curves", **CHART)
    if snapshot.probe is not None and run.probe_pixels is not None:
        _show_probe(run, snapshot, replay.classes, key)
    _show_confusion(run, snapshot, replay.classes, key)


def _show_probe(run: RunSnapshots, snapshot: Snapshot, classes: Sequence[str], key: tuple) -> None:
    probe = snapshot.probe
    answer = int(probe.probabilities.argmax())
    st.markdown(f"**The image it follows**, {run.probe_label}: it answers **{classes[answer]}** "
                f"({float(probe.probabilities[answer]):.1%}) at this moment.")
    # 3:2:2, not 2:1:1: at 800 px a quarter of the page left CIFAR-10's answer bars no room for their
    # class names and percentages.
    maps_column, answer_column, cam_column = st.columns([3, 2, 2], gap="medium")
    with maps_column:
        layers = list(range(len(run.map_layers)))
        if st.session_state.get(LAYER_KEY) not in layers:
            st.session_state[LAYER_KEY] = 0
        layer = st.selectbox("Layer", layers, key=LAYER_KEY, format_func=lambda i: run.map_layers[i])
        values = probe.maps[layer]
        picture, low, high = tf.probe_maps_image(values)
        with crisp_images("train_time_maps"):
            st.image(picture, width=picture.shape[1] * max(1, MAPS_PX // picture.shape[1]))
        kind = "units" if values.dim() == 1 else "maps"
        st.caption(f"Its first {values.shape[0]} {kind} of this layer, from {low:.2f} (dark purple) to "
                   f"{high:.2f} (yellow).")
    with answer_column:
        st.plotly_chart(_cached(key + ("answer",),
                                lambda: tf.figure(tf.probe_answer_bars(probe.probabilities, classes))),
                        key="train_time_answer", **CHART)
    with cam_column:
        if probe.cam is not None:
            picture = tf.cam_picture(run.probe_pixels, probe.cam)
            factor = max(1, CAM_PX // picture.shape[1])
            # Scaled here, not by a fixed width: "content" shrinks to a narrow column (800 px), 168 did not.
            picture = picture.repeat(factor, axis=0).repeat(factor, axis=1)
            with crisp_images("train_time_cam"):
                st.image(picture, width="content", caption="Where it looks for its answer (Grad-CAM).")


def _show_confusion(run: RunSnapshots, snapshot: Snapshot, classes: Sequence[str], key: tuple) -> None:
    split = "validation" if run.check_split == "val" else "test"
    right = int(snapshot.confusion.diagonal().sum())
    total = int(snapshot.confusion.sum())
    st.markdown(f"**On {total:,} {split} images it never trains on**: {right:,} right "
                f"({right / max(total, 1):.1%}) at this moment.",
                help=f"The same {total:,} images at every moment, a fixed sample of the {split} images, so "
                f"the moments can be compared (at most {CHECK_IMAGES}: fewer for a big net on a short run, "
                f"so that taking the snapshots costs no more than about {SNAPSHOT_WORK_SHARE:.0%} of the "
                "training); the validation accuracy beside the curves counts all of "
                "them (and uses the test-time mirror or shifts where the recipe has them), so the two "
                "differ a little.")
    matrix_column, accuracy_column = st.columns([1, 1], gap="medium")
    with matrix_column:
        st.caption("Click a cell to see its images and their answers at this moment.")
        snapshot_confusion(snapshot, run, key="train_time_confusion", classes=classes)
    with accuracy_column:
        st.markdown("Each class's share answered right:")
        st.plotly_chart(_cached(key + ("accuracy",), lambda: tf.figure(tf.class_accuracy_bars(
            snapshot.per_class_accuracy, snapshot.confusion.sum(dim=1), classes))),
            key="train_time_accuracy", **CHART)


def _cached(key: tuple, make: Callable):
    """This session's figure for ``key`` = (source, snapshot, kind, ...), built once (a slider going back
    and forth, or Play over a run again, reuses it): see :func:`built_once`."""
    source, snapshot, *rest = key
    return built_once(CACHE_KEY, snapshot, (source, *rest), make, CACHE_ENTRIES)
