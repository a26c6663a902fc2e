"""Streamlit pieces of the training page: the settings form, live progress, results, run records."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace

import streamlit as st

from cnnviz import pages
from cnnviz.datasets import files as data
from cnnviz.hosting.limits import HostLimits
from cnnviz.networks.summary import ModelSummary, field_label, summarize_spec
from cnnviz.runtime import cpu_name, device_name, resolve_device, training_threads
from cnnviz.training.config import DEFAULT_GAMMA, LR_INPUT_MIN, MAX_LR, OPTIMIZERS, SCHEDULES, TrainConfig
from cnnviz.training.estimate import answer_views, scoring_seconds, speed_if_measured
from cnnviz.training.jobs import JobSnapshot, JobStatus
from cnnviz.training.loop import TrainResult
from cnnviz.training.memory import RunMemory, predict_config_memory, readable_bytes
from cnnviz.training.results import (
    first_layer_filters,
    first_learned_filters,
    misclassified,
    smoothed_loss_floor,
)
from cnnviz.ui.training.confusion_view import results_confusion
from cnnviz.ui.training.figures import filter_grid
from cnnviz.ui.widgets import pixel_image

# Every setting keeps its value while the student looks at another page, as Streamlit itself offers it
# (``persist_state``). The form used ``widgets.kept``, which writes each value back through
# st.session_state on every full run: a page switch while the live view reran reset the form to its
# defaults (epochs 3 -> 1, rate 0.05 -> 0.1), so the next Train trained those.
KEEP = "session"
SUBSETS = {"all": None, "20,000": 20_000, "10,000": 10_000, "5,000": 5_000, "2,000": 2_000}
# The decay factor each schedule gets on this page: step decay TrainConfig's own, per-epoch decay a
# gentler one (multiplying by 0.5 every epoch would leave almost nothing after a few).
SCHEDULE_GAMMA = {"step": DEFAULT_GAMMA, "exp": 0.8}
SCHEDULE_HELP = {
    "onecycle": "one-cycle: warm up to the peak rate, then fall to zero",
    "step": f"step decay: multiply the rate by {SCHEDULE_GAMMA['step']:g} every epoch",
    "exp": f"per-epoch decay: multiply the rate by {SCHEDULE_GAMMA['exp']:g} every epoch",
    "constant": "constant: the same rate throughout",
}


def summary_rows(summary: ModelSummary) -> list[dict]:
    """The summary as table rows: "layer" is the number the explorer and ``--layer`` use; the receptive
    field is the square of input pixels one cell sees ("all" for the dense part), with the pixels between
    neighbouring cells' fields (jump) and where cell (0, 0)'s field is centred (start)."""
    # The formula right after the type: further right it hid behind the table's horizontal scrolling.
    return [{
        "layer": row.number, "type": row.kind, "parameters": row.params,
        "formula": row.formula if row.params else "", "part": row.part, "from": row.token,
        "output shape": " x ".join(str(d) for d in row.output_shape),
        "multiply-adds": row.mult_adds,
        # Text, so that the dense part's blanks do not turn the numbers above them into floats ("1.0").
        "receptive field": field_label(row), "jump": "" if row.rf_jump is None else str(row.rf_jump),
        "start": "" if row.rf_start is None else f"{row.rf_start:g}",
    } for row in summary.layers]


def subset_choices(dataset: str, limits: HostLimits) -> list[str]:
    """The training-set sizes on offer, within the host's cap."""
    train_size = data.DATASETS[dataset].train_size
    cap = limits.max_train_images
    return [name for name, size in SUBSETS.items()
            if cap is None or min(size or train_size, train_size) <= cap]


def hyperparameter_form(
    base: TrainConfig, dataset: str, spec: str, key: str, limits: HostLimits,
) -> TrainConfig:
    """Widgets for the settings, each with a one-line explanation; returns the chosen config."""
    on_gpu = resolve_device("auto").type == "cuda"
    quick_epochs = min(base.epochs if on_gpu else min(base.epochs, 2), limits.max_epochs)
    c1, c2 = st.columns(2)
    if limits.max_epochs > 1:
        epochs = c1.slider("Epochs", 1, limits.max_epochs, quick_epochs, key=key + pages.EPOCHS_SUFFIX,
                           persist_state=KEEP, help="How many times the network sees every training image.")
    else:
        epochs = 1
        c1.caption("Epochs: 1 (this server's limit per run).")
    subsets = subset_choices(dataset, limits) or [list(SUBSETS)[-1]]
    subset_default = "all" if on_gpu or dataset == "mnist" else "10,000"
    subset_default = subset_default if subset_default in subsets else subsets[0]
    subset = c2.selectbox("Training images", subsets, index=subsets.index(subset_default),
                          key=key + pages.SUBSET_SUFFIX, persist_state=KEEP,
                          help="Fewer images train faster but generalize worse.")
    optimizer = c1.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(base.optimizer),
                             key=f"{key}_optimizer", persist_state=KEEP,
                             help="SGD with Nesterov momentum, or Adam / AdamW, which adapt the step "
                             "per weight.")
    lr = c2.number_input("Learning rate", LR_INPUT_MIN, MAX_LR, base.lr, format="%.4f", key=f"{key}_lr",
                         persist_state=KEEP, help="How big a step the weights take against the gradient.")
    sizes = sorted({32, 64, 128, 256, 512, 1024, base.batch_size})  # every recipe's own size is offered
    batch_size = c1.select_slider("Batch size", sizes, base.batch_size,
                                  key=f"{key}_batch", persist_state=KEEP,
                                  help="Images per step: more is smoother and faster per image, fewer gives "
                                  "more steps.")
    schedule = c2.selectbox("Schedule", SCHEDULES, index=SCHEDULES.index(base.schedule),
                            key=f"{key}_schedule", persist_state=KEEP,
                            format_func=lambda s: SCHEDULE_HELP[s].split(":")[0],
                            help="How the learning rate changes: " + "; ".join(SCHEDULE_HELP.values()) + ".")
    weight_decay = c1.number_input("Weight decay", 0.0, 0.1, base.weight_decay, format="%.5f",
                                   key=f"{key}_wd", persist_state=KEEP,
                                   help="Pulls every weight a little towards zero each step.")
    smoothing = c2.slider("Label smoothing", 0.0, 0.3, base.label_smoothing, 0.05, key=f"{key}_smooth",
                          persist_state=KEEP, help="Asks for 90% sure instead of 100%: a little modesty "
                          "helps generalization.")
    val_fraction = c1.slider("Validation share", 0.0, 0.3, 0.1, 0.05, key=f"{key}_val", persist_state=KEEP,
                             help="Training images held back to check the network on images it never "
                             "trains on.")
    seed = c2.number_input("Seed", 0, 10_000, 0, key=f"{key}_seed", persist_state=KEEP,
                           help="Same seed, same settings: the same run again.")
    mirror_tta, shift_tta = base.mirror_tta, base.shift_tta
    if dataset == "cifar10":
        mirror_tta = c1.checkbox("Mirror at test time", value=True,
                                 key=f"{key}_mirror", persist_state=KEEP,
                                 help="Answer with the average of the network's outputs for the image and "
                                 "its mirror image: a cat facing left is still a cat. Free accuracy for a "
                                 "net trained with random flips.")
        shift_tta = c2.checkbox("Shift at test time", value=base.shift_tta, key=f"{key}_shift_tta",
                                persist_state=KEEP,
                                help="Also average over the image moved one pixel up-left and one pixel "
                                "down-right, small moves like those of training: a little more accuracy "
                                "for three times the work per answer.")
    gamma = SCHEDULE_GAMMA.get(schedule, base.gamma)
    return replace(
        base, dataset=dataset, spec=spec, epochs=epochs, train_subset=SUBSETS[subset], optimizer=optimizer,
        lr=lr, batch_size=batch_size, schedule=schedule, weight_decay=weight_decay, label_smoothing=smoothing,
        val_fraction=val_fraction, seed=int(seed), gamma=gamma, evals_per_epoch=4 if epochs <= 3 else 1,
        whiten=base.whiten and spec == base.spec and dataset == base.dataset,
        mirror_tta=mirror_tta and dataset == "cifar10", shift_tta=shift_tta and dataset == "cifar10",
    )


RESULTS_RUN_LABEL = "Show the results of run"  # picks the run whose results are shown (2+ runs)
SCORING_TEXT = "scoring the test set"  # the bar's text after the last step
MEASURING_SPEED = "measuring this machine's speed for a time estimate (once per server, a second or two)"


LONG_RUN_SECONDS = 20 * 60  # longer than this, a run gets a warning: a class waits for it


def device_line(config: TrainConfig, summary: ModelSummary | None) -> str:
    """The device in use and an estimate of this run's time: arithmetic from the net's multiply-adds and
    this machine's speed (timed once per process on two small reference nets, never on this net, and in
    the background: until it is known the line says so, see :data:`MEASURING_SPEED`)."""
    device = resolve_device(config.device)
    threads = training_threads()  # a run that has the machine to itself; the page's own thread may use 1
    if device.type == "cpu":
        where = f"Training on the **{cpu_name(threads)}** (no GPU here)"
    else:
        where = f"Training on **{device_name(device)}**"
    if summary is None:
        return where + "."
    estimate = estimated_run(config, summary)
    if estimate is None:
        return f"{where}: {MEASURING_SPEED} ..."
    seconds, speed = estimate
    return (f"{where}: about {duration_text(seconds)} for this run (estimated from this machine's speed: "
            f"~{speed:,.0f} images/s for this net).")


def estimated_run(config: TrainConfig, summary: ModelSummary) -> tuple[float, float] | None:
    """(seconds, images per second) this run is estimated to take, or None while the machine's speed is
    still being measured."""
    machine = speed_if_measured(config.dataset, config.device, training_threads())
    if machine is None:
        return None
    speed = machine.images_per_second(summary.total_mult_adds)
    info = data.DATASETS[config.dataset]
    images = config.train_subset or info.train_size
    test_images = min(config.test_subset or info.test_size, info.test_size)
    scoring = scoring_seconds(test_images, None, speed, answer_views(config))  # after the last step
    return config.epochs * images * (1 - config.val_fraction) / speed + scoring, speed


def long_run_warning(config: TrainConfig, summary: ModelSummary | None) -> str | None:
    """A sentence when the run is estimated to take longer than :data:`LONG_RUN_SECONDS`, else None."""
    estimate = None if summary is None else estimated_run(config, summary)
    if estimate is None or estimate[0] <= LONG_RUN_SECONDS:
        return None
    return (f"This run would take about {duration_text(estimate[0])} here. Fewer epochs, fewer training "
            "images, or a net with fewer filters or an earlier pool make it shorter.")


@st.cache_data(show_spinner=False, max_entries=64)
def spec_summary(spec: str, input_shape: tuple[int, int, int], num_classes: int) -> ModelSummary:
    """The layer table of a spec, once per spec and dataset (a wide net's took 0.5 s a page run);
    raises SpecError for a bad spec (not cached: parsing fails fast)."""
    return summarize_spec(spec, input_shape, num_classes)


@st.cache_data(show_spinner=False, max_entries=64)
def predicted_memory(config: TrainConfig) -> RunMemory:
    """The peak memory a run of ``config`` (from :func:`memory_config`) will need, predicted."""
    return predict_config_memory(config)


def memory_line(estimate: RunMemory, budget: int) -> str:
    """'Memory: about 310 MB at its peak: ... (this server allows 5.9 GB per run).'"""
    return f"Memory: {estimate.describe()} (this server allows {readable_bytes(budget)} per run)."


def duration_text(seconds: float) -> str:
    """'7 s', '12 min' or '2.5 h', rounded as a student plans; never '0 s'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{seconds / 60:.0f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


def progress_block(snapshot: JobSnapshot) -> None:
    """Progress bar with ETA, and the latest numbers."""
    p = snapshot.latest
    if snapshot.status == JobStatus.FAILED:
        st.error(f"Training failed: {snapshot.error}")
        return
    if snapshot.status == JobStatus.QUEUED:
        ahead = (snapshot.queue_position or 1) - 1
        st.info(f"{pages.QUEUED_TEXT}: position {snapshot.queue_position} "
                f"({ahead} run{'s' if ahead != 1 else ''} waiting ahead of yours, waiting "
                f"{time.time() - snapshot.started:.0f} s). Training starts by itself when a slot frees up; "
                "Stop leaves the line.", icon=":material/hourglass_top:")
        return
    if snapshot.status == JobStatus.CANCELLED:
        st.warning("You left the line before training started.")
        return
    if p is None:
        st.progress(0.0, text="Loading the images...")
        return
    eta = snapshot.eta_seconds
    ending = snapshot.finished or snapshot.stopping or eta is None
    eta_text = "" if ending else f" · about {duration_text(eta)} left"
    if snapshot.scoring:  # the steps are done; scoring the test set can take a third of a run
        st.progress(1.0, text=f"{SCORING_TEXT}: {p.test_images:,} images · about "
                    f"{duration_text(p.scoring_seconds)}")
    else:
        st.progress(snapshot.fraction, text=f"epoch {p.epoch:.2f} of {p.epochs} · step {p.step} of "
                    f"{p.total_steps} · {p.images_per_second:,.0f} images/s{eta_text}")
    if snapshot.stopping:
        st.info("Stopping: the current step ends, then the network is scored on the test set with what it "
                "has learned so far.", icon=":material/hourglass_top:")
    if snapshot.status == JobStatus.STOPPED and p.step == 0:
        st.warning("Stopped before the first training step: the network is as it started, so there is "
                   f"{pages.NOTHING_TO_SAVE_TEXT}.")
        return
    if snapshot.status == JobStatus.STOPPED:
        st.warning(f"Stopped after {p.step} steps; the network keeps what it learned so far.")
    elif snapshot.status == JobStatus.DONE:
        st.success(f"Done in {p.elapsed:.0f} s.")
    cols = st.columns(4)
    during = "Measured on the training batches since the last check, while the weights were still moving"
    cols[0].metric("Training loss", f"{p.loss:.3f}", help=during + ".")
    cols[1].metric("Training accuracy", f"{p.accuracy:.1%}",
                   help=during + " (with augmentation and dropout on), so it can trail the "
                   "validation accuracy.")
    last_val = next((q for q in reversed(snapshot.points) if q.val_accuracy is not None), None)
    cols[2].metric("Validation accuracy", "–" if last_val is None else f"{last_val.val_accuracy:.1%}")
    cols[3].metric("Learning rate", f"{p.lr:.3g}")


def window_losses(snapshot: JobSnapshot) -> list[tuple[float, float]]:
    """The job's (step, loss) points as (epoch, loss) pairs for :func:`figures.learning_curves`."""
    p = snapshot.latest
    if p is None:
        return []
    steps_per_epoch = max(1, p.total_steps) / max(1, p.epochs)
    return [(step / steps_per_epoch, loss) for step, loss in snapshot.loss_points]


def results_block(result: TrainResult, key: str) -> None:
    """Test accuracy, confusion matrix, misclassified test images and the first-layer filters."""
    st.subheader("Results on the test set")
    if result.test_accuracy is None:
        st.info("It stopped before the first step, so there is nothing to score.")
        return
    images = len(result.test_labels)
    st.metric(pages.TEST_ACCURACY_LABEL, f"{result.test_accuracy:.2%}",
              help=f"On {images:,} test images the network never saw during training.")
    asked = min(result.config.test_subset or result.info.test_size, result.info.test_size)
    if images < asked:  # a stopped run is scored on a few (STOPPED_TEST_IMAGES), so its slot frees soon
        st.caption(f"Scored on {images:,} of the {asked:,} test images because it was stopped.")
    classes = result.info.classes
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Confusion matrix**: rows are the true classes, columns what the network said. "
                    "Click a cell to see its images.")
        results_confusion(result, key=pages.TRAIN_CONFUSION_KEY)
    with right:
        learned_filters_block(result, key)
        wrong = misclassified(result.test_predictions, result.test_labels, limit=24)
        st.markdown(f"**Mistakes** ({int((result.test_predictions != result.test_labels).sum()):,} of "
                    f"{images:,}), labelled predicted / true:")
        test = data.load_dataset(result.info.name, "test", download=False)
        width = mistake_width(classes, result.info.image_shape[-1])
        st.image([pixel_image(test.images[i], width) for i in wrong],
                 caption=[f"{classes[result.test_predictions[i]]} / {classes[result.test_labels[i]]}"
                          for i in wrong], width=width, output_format="PNG")


def learned_filters_block(result: TrainResult, key: str) -> None:
    """The first learned convolution's filters; behind a whitening layer, seen through it, with a
    sentence on what that layer is and its own filters on request."""
    found = first_learned_filters(result.model, result.config.whiten)
    if found is None:
        return
    filters, whitened = found
    if not whitened:
        st.markdown(f"**The {len(filters)} first-layer filters it learned** (bright = large weight).")
        st.plotly_chart(filter_grid(filters), key=f"{key}_filters")
        return
    whitening = first_layer_filters(result.model)
    size = filters.shape[-1]
    st.markdown(f"**The {len(filters)} filters of the first layer it learned**, seen on the image through "
                f"the whitening layer before it ({size}x{size} pixels: the two layers as one filter, the "
                "ReLU between them left out; bright = large weight).")
    st.plotly_chart(filter_grid(filters), key=f"{key}_filters")
    st.caption(f"{WHITENING_TEXT}: its {len(whitening)} filters are computed from the training images "
               "before training (the directions in which small patches of pixels vary, each scaled to vary "
               "as much, and their negatives) and stay fixed, so the layers after it start from "
               "decorrelated pixels and learn faster.")
    if st.toggle("Show the whitening layer's filters", key=f"{key}_whitening_filters"):
        st.markdown(f"**The {len(whitening)} whitening filters, computed from the data, not learned** "
                    "(the second half are the negatives of the first).")
        st.plotly_chart(filter_grid(whitening), key=f"{key}_whitening_grid")


WHITENING_TEXT = "The first layer of this net is a whitening layer"
CAPTION_CHAR_PX = 8  # the width of a character of an image caption, a little over Streamlit's average


def mistake_width(classes: Sequence[str], image_size: int) -> int:
    """Pixels wide for the mistakes: a whole multiple of the image (crisp pixels), at least 64, and
    wide enough for the longest class name on one line ("automobile" broke inside at 64 px)."""
    needed = max(64, CAPTION_CHAR_PX * max(len(name) for name in classes))
    return image_size * math.ceil(needed / image_size)


def smoothing_note(config: TrainConfig, num_classes: int) -> str | None:
    """Why the training loss sits above the validation loss, for a run with label smoothing; else None."""
    if config.label_smoothing <= 0:
        return None
    floor = smoothed_loss_floor(config.label_smoothing, num_classes)
    return (f"The training loss sits above the validation loss on purpose: with label smoothing "
            f"{config.label_smoothing:g} the training targets are not one-hot (the true class asks for "
            f"{1 - config.label_smoothing + config.label_smoothing / num_classes:.0%}, so the training loss "
            f"cannot fall below {floor:.2f}), and dropout and augmentation are on while it trains. The "
            "validation loss scores the plain images against their one true class.")
