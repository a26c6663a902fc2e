"""Train: pick a dataset and an architecture, press Train, watch it learn, compare runs, save one."""

import sys
from dataclasses import asdict

import streamlit as st

from cnnviz import pages
from cnnviz.datasets import files as data
from cnnviz.networks.spec import SpecError, describe_error_position
from cnnviz.networks.summary import readable_count, training_size_problem
from cnnviz.training.checkpoint import saved_models_dir
from cnnviz.training.jobs import TrainingJob
from cnnviz.training.memory import memory_config, memory_problem
from cnnviz.training.presets import CUSTOM_PRESET, TRAIN_PAGE_CHOICES
from cnnviz.training.progress import HistoryPoint
from cnnviz.training.recipes import default_preset, find_preset, recipe
from cnnviz.training.saving import SaveError, SaveQuota, default_model_name, save_named_model
from cnnviz.training.snapshot_capture import SnapshotPlan
from cnnviz.training.tricks import describe_tricks
from cnnviz.ui.host import (
    TRAINING_NICE,
    client_key,
    host_limits,
    run_memory_budget,
    session_jobs,
    training_queue,
)
from cnnviz.ui.training import gradient_view, parts, shown_view, takeaway_view, timeline
from cnnviz.ui.training.figures import COMPARED, compare_runs, learning_curves
from cnnviz.ui.training.probe import choose_probe
from cnnviz.ui.training.projection_view import projection_view
from cnnviz.ui.training.runs import ACCURACY_COLUMNS, RunRecord, history_rows
from cnnviz.ui.widgets import markdown_text

st.title("Train a network")
st.markdown("Choose a dataset and an architecture, press **Train**, and watch the network learn: the "
            "loss falls and the accuracy climbs while it sees the training images again and again.")
st.session_state.setdefault("train_job", None)
st.session_state.setdefault("train_runs", [])
limits = host_limits()

left, right = st.columns([1, 1], gap="large")
with left:
    dataset = st.selectbox("Dataset", list(data.DATASETS), key=pages.TRAIN_DATASET_KEY,
                           persist_state=parts.KEEP, format_func=lambda name: data.DATASETS[name].title)
    preset = st.selectbox("Architecture", TRAIN_PAGE_CHOICES,
                          index=TRAIN_PAGE_CHOICES.index(default_preset(dataset)),
                          key=f"train_preset_{dataset}",  # each dataset keeps its own choice
                          persist_state=parts.KEEP, format_func=lambda name: find_preset(name).title)
    if preset == CUSTOM_PRESET.name:
        spec = st.text_input("Spec", value=CUSTOM_PRESET.spec, key="train_spec", persist_state=parts.KEEP,
                             help=CUSTOM_PRESET.description)
    else:
        spec = find_preset(preset).spec
        st.caption(f"`{spec}` — {find_preset(preset).description}")
    info = data.DATASETS[dataset]
    try:
        summary = parts.spec_summary(spec, info.image_shape, info.num_classes)
    except SpecError as err:
        summary = None
        st.error(str(err), icon=":material/error:")
        st.code(describe_error_position(spec, err), language=None)
    too_big = None if summary is None else training_size_problem(summary)
    if summary is not None:
        with st.expander(f"Layers: {summary.total_params:,} parameters, "
                         f"{readable_count(summary.total_mult_adds)} multiply-adds per image"):
            st.dataframe(parts.summary_rows(summary), hide_index=True, key="train_summary_table")
    if too_big:
        st.error(too_big, icon=":material/memory:")
    probe = choose_probe(dataset)

with right:
    base = recipe(preset)
    config = parts.hyperparameter_form(base, dataset, spec, key=pages.train_form_key(preset), limits=limits)
    budget = run_memory_budget()
    estimate = None if summary is None or too_big else parts.predicted_memory(memory_config(config))
    too_much = None if estimate is None else memory_problem(estimate, budget)
    # No time estimate for a net too big or a run over its memory: neither can run here.
    device_line = parts.device_line(config, None if too_big or too_much else summary)
    if parts.MEASURING_SPEED in device_line:
        @st.fragment(run_every=0.5)
        def wait_for_the_speed() -> None:
            """Show the line, and rerun the page once the background timing knows the speed."""
            line = parts.device_line(config, summary)
            if parts.MEASURING_SPEED not in line:
                st.rerun()
            st.caption(line)

        wait_for_the_speed()
    else:
        st.caption(device_line)
        long_run = parts.long_run_warning(config, None if too_big or too_much else summary)
        if long_run:
            st.warning(long_run, icon=":material/schedule:")
    if estimate is not None:
        st.caption(parts.memory_line(estimate, budget))
        if too_much:
            st.error(too_much, icon=":material/memory:")
    tricks = describe_tricks(**asdict(config))
    if tricks:
        st.caption("Speed-run tricks in this recipe: " + "; ".join(tricks) + ".")
    shown_view.shown_block(config, key="train_new_batch")  # the recipe's augmentation, on real images

job: TrainingJob | None = st.session_state.train_job
running = job is not None and not job.snapshot().finished
buttons = st.container(horizontal=True)  # side by side at their own width, also on a narrow screen
trainable = summary is not None and not too_big and not too_much
if buttons.button("Train", type="primary", key=pages.TRAIN_START_KEY, disabled=running or not trainable,
                    icon=":material/play_arrow:"):
    try:
        limits.check_training(config.epochs, config.train_subset, info.train_size)  # the server's caps
        if not data.is_available(dataset):
            with st.spinner(f"Downloading {info.title} (first time only) ..."):
                data.load_dataset(dataset, "test")
        refusal = None
    except (ValueError, data.DataNotFoundError) as err:
        refusal = str(err)
    if refusal:
        st.error(refusal)
    else:
        plan = SnapshotPlan(None if probe is None else probe.pixels, "" if probe is None else probe.label)
        job = TrainingJob(config, queue=training_queue(), nice=TRAINING_NICE, memory_budget=budget,
                          client=client_key(), snapshot_plan=plan)
        try:
            started, refusal = job.start(), None
        except ValueError as err:  # this browser has as many runs on the server as one student may
            started, refusal = False, str(err)
        if started:
            st.session_state.train_job = job
            session_jobs().watch(job)  # stopped if this tab is closed
            st.rerun()  # redraw with Train disabled and Stop enabled
        st.warning(refusal or f"{limits.max_queue} runs are already waiting for a training slot on this "
                   f"server; {pages.QUEUE_FULL_TEXT}.")


def stop_training() -> None:
    """Ask the run to end after its current step; it then scores the test set (the live view says so).
    A callback, so the page that follows already draws Stop as pressed."""
    job = st.session_state.train_job
    job.stop()
    job.join(timeout=1.0)  # a run waiting in line leaves it at once; a small net ends its step too


buttons.button("Stop", key="train_stop", disabled=not running or job.stop_event.is_set(),
               on_click=stop_training, icon=":material/stop:")


@st.fragment(run_every=2.0 if running else None)
def live_view() -> None:
    busy, waiting = training_queue().counts()
    st.caption(f"Training on this server: {busy} of {training_queue().slots} slots in use, {waiting} run"
               f"{'s' if waiting != 1 else ''} waiting.")
    current: TrainingJob | None = st.session_state.train_job
    if current is None:
        st.info("Press **Train** to start. Curves appear here as the network learns.")
        return
    snapshot = current.snapshot()
    parts.progress_block(snapshot)
    if snapshot.points or snapshot.loss_points:
        if snapshot.snapshots is None:  # with snapshots the time machine draws them, its moment marked
            history = [HistoryPoint.from_progress(p) for p in snapshot.points]
            st.plotly_chart(learning_curves(history, current.config.epochs, parts.window_losses(snapshot)),
                            key="train_live_curves")
        note = parts.smoothing_note(current.config, data.DATASETS[current.config.dataset].num_classes)
        if note:
            st.caption(note)
    if snapshot.finished and st.session_state.get("train_recorded") is not current:
        st.session_state.train_recorded = current
        if snapshot.result is not None and snapshot.result.steps > 0:  # a run that learned something
            runs = st.session_state.train_runs
            runs.append(RunRecord.of(snapshot.result, len(runs) + 1, parts.window_losses(snapshot)))
        st.rerun()


live_view()
job = st.session_state.train_job
runs: list[RunRecord] = st.session_state.train_runs
timeline.show_time_machine(job, runs)
latest = None if job is None or running else job.snapshot().result
if latest is not None and latest.steps == 0:
    parts.results_block(latest, key="train_results")  # it says there was nothing to score
elif scored := [r for r in runs if r.test_predictions is not None]:
    shown = scored[-1]
    if len(scored) > 1:  # an earlier run's results stay on hand after later runs
        label = st.selectbox(parts.RESULTS_RUN_LABEL, [r.label for r in scored], index=len(scored) - 1,
                             key=f"train_results_run_{len(runs)}")  # a new run: the latest is shown
        shown = next(r for r in scored if r.label == label)
    result = shown.as_result()
    parts.results_block(result, key=f"train_results_{shown.label[1:]}")
    projection_view(result.model, result.info, result.snapshots)
    gradient_view.gradient_flow_block(result.snapshots, key=f"train_gradient_flow_{shown.label[1:]}")

if runs:
    st.subheader("Run history")
    percent = st.column_config.NumberColumn(format="%.2f%%")  # 72.00%, not 72%, beside 72.34%
    st.dataframe(history_rows(runs), hide_index=True, key="train_history_table",
                 column_config={"params": st.column_config.NumberColumn(format="localized"),
                                **dict.fromkeys(ACCURACY_COLUMNS, percent)})
    first = next(iter(COMPARED))
    compared = st.segmented_control("Compare", list(COMPARED), default=first, key="train_compare_shown",
                                    persist_state=parts.KEEP) or first  # None once its choice is clicked off
    st.plotly_chart(compare_runs([(r.label, r.history) for r in runs], compared), key="train_compare")
    if st.session_state.pop("train_save_done", False):
        st.session_state.pop("train_save_name", None)  # a fresh default name after each save
    default_name = st.session_state.get("train_save_name") or default_model_name(runs[-1].metadata["dataset"])
    with st.form("train_save_form", border=True):
        st.markdown("**Save a run** as a named model; the predict page can then use it.")
        run_choice = st.selectbox("Run", [r.label for r in runs], index=len(runs) - 1,
                                  key=f"train_save_run_{len(runs)}")  # a new run: the latest is chosen
        name = st.text_input("Model name", value=default_name, key="train_save_name", max_chars=40)
        if st.form_submit_button("Save model", icon=":material/save:", key=pages.TRAIN_SAVE_KEY):
            record = next(r for r in runs if r.label == run_choice)
            saves = st.session_state.get("train_saves", 0)
            quota = SaveQuota(limits.max_saves_per_session, limits.max_saved_models, limits.max_saved_mb)
            try:
                path = save_named_model(saved_models_dir(), name, record.model, record.metadata, saves, quota,
                                        snapshots=record.snapshots)
            except SaveError as err:
                st.error(markdown_text(str(err)))
                if isinstance(err.__cause__, OSError):  # the host's problem, for the host's log
                    print(f"cnnviz: saving a model failed: {err.__cause__!r}", file=sys.stderr)
            else:
                st.session_state.train_saves = saves + 1
                st.session_state.train_save_done = True
                size = path.stat().st_size / 1e6
                st.success(f"{pages.SAVED_TEXT} {markdown_text(path.stem)} ({size:.2f} MB).",
                           icon=":material/check:")

takeaway_view.takeaway_block(None if summary is None else spec, info, runs,  # diagram, ONNX, scripts
                             config if trainable else None)
