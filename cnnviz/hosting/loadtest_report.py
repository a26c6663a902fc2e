"""The load test's report: what each prediction and training took, the server's memory and CPU, the
class-hosting targets, and the report as JSON or plain text."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cnnviz.hosting.loadtest_explorer import ExplorerRecord
from cnnviz.hosting.loadtest_hostile import HostileRecord
from cnnviz.hosting.loadtest_lab import LabRecord

TARGET_P95_SECONDS = 2.0  # the class-hosting targets (issue 6)
TARGET_MB_PER_IDLE_SESSION = 30.0


@dataclass
class PredictionRecord:
    """One upload and the prediction it got (or the error)."""

    session: str
    image: str
    label: str | None = None
    seconds: float | None = None  # the upload's rerun sent -> "Prediction" metric received
    start_delay: float | None = None  # rerun sent -> the server started the script run
    run_seconds: float | None = None  # rerun sent -> the run's end (whole page drawn)
    upload_seconds: float | None = None  # upload URL asked -> file PUT done
    media_bytes: int = 0
    error: str | None = None


@dataclass
class TrainingRecord:
    """One training student: the Train click, the wait for a slot, the run and its result."""

    session: str
    outcome: str = "not started"  # "done", "refused" (line full), "error", "not started"
    open_seconds: float | None = None  # the Train page's first run
    queue_wait: float | None = None  # Train clicked -> first progress bar
    run_seconds: float | None = None  # first progress bar -> "Test accuracy" shown
    queue_positions: list[int] = field(default_factory=list)  # positions the page showed while waiting
    test_accuracy: str | None = None
    error: str | None = None
    takeaway_seconds: float | None = None  # "Test accuracy" shown -> the ONNX download shown (its export)
    onnx_bytes: int = 0  # the ONNX file and the training script the student downloaded
    script_bytes: int = 0
    replay_seconds: list[float] = field(default_factory=list)  # after the run: a time-slider move -> redrawn
    pick_seconds: list[float] = field(default_factory=list)  # a confusion cell clicked -> its images listed
    map_seconds: list[float] = field(default_factory=list)  # t-SNE chosen -> the t-SNE map drawn
    point_seconds: list[float] = field(default_factory=list)  # a dot of the map clicked -> its image shown


@dataclass
class MemoryReport:
    """Server RSS in MB; None where the server's process could not be read."""

    before: float | None = None  # after the warm-up, before the students
    idle: float | None = None  # all predicting sessions open and idle
    peak: float | None = None  # highest sample from "before" to the end
    end: float | None = None  # after every session closed
    per_idle_session: float | None = None  # (idle - before) / sessions
    budget: float | None = None  # before + the training memory budget: the peak must stay under it


@dataclass
class LoadTestReport:
    """Everything one load test measured; :meth:`summary` and :meth:`to_text` condense it."""

    url: str
    pid: int | None
    config: dict[str, Any]
    cpus: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    warmup: PredictionRecord | None = None
    page_opens: list[float] = field(default_factory=list)  # predict page's first run, all at once
    predictions: list[PredictionRecord] = field(default_factory=list)
    trainings: list[TrainingRecord] = field(default_factory=list)
    hostile: list[HostileRecord] = field(default_factory=list)
    explorers: list[ExplorerRecord] = field(default_factory=list)
    labs: list[LabRecord] = field(default_factory=list)  # students in the convolution lab and exercises
    lab_warmup: LabRecord | None = None  # the lab's pages opened once, alone, before the class
    server_up: bool | None = None  # the health check answered after the hostile students (None: none ran)
    errors: list[str] = field(default_factory=list)
    memory: MemoryReport = field(default_factory=MemoryReport)
    server_cpu_seconds: float | None = None  # server process CPU time during the prediction phase
    prediction_phase_seconds: float = 0.0
    training_cpu_seconds: float | None = None  # of which threads with a lowered priority (the trainings)
    health_latency: list[float] = field(default_factory=list)  # /_stcore/health answers during predictions
    machine_cpu_seconds: float | None = None  # every process on the machine, during the predictions
    machine_busy_before: float | None = None  # share of all CPUs busy in the seconds before the test
    client_cpu_seconds: float = 0.0  # this load generator's own CPU time (it shares the machine)
    seconds: float = 0.0

    @property
    def done(self) -> list[PredictionRecord]:
        return [p for p in self.predictions if p.seconds is not None and p.error is None]

    def targets(self) -> dict[str, bool | None]:
        """Each class-hosting target: met (True), missed (False), or not measurable (None)."""
        times = [p.seconds for p in self.done]
        per_session = self.memory.per_idle_session
        return {
            "no errors": not self.errors,
            f"p95 time to a prediction <= {TARGET_P95_SECONDS:g} s":
                percentile(times, 95) <= TARGET_P95_SECONDS if times else None,
            f"memory per idle session <= {TARGET_MB_PER_IDLE_SESSION:g} MB":
                None if per_session is None else per_session <= TARGET_MB_PER_IDLE_SESSION,
            **(self.hostile_targets() if self.hostile else {}),
            **({"explorer students answered": all(e.as_expected for e in self.explorers)}
               if self.explorers else {}),
            **({"lab students done, exercises scored as answered": all(lab.as_expected for lab in self.labs)}
               if self.labs else {}),
        }

    def hostile_targets(self) -> dict[str, bool | None]:
        """The hostile-class checks: the server is up, under its memory budget, every refusal came."""
        budget, peak = self.memory.budget, self.memory.peak
        return {
            "server up after the hostile students": self.server_up,
            f"peak server memory <= budget ({_mb(budget)})":
                None if budget is None or peak is None else peak <= budget,
            "hostile students refused as expected": all(h.as_expected for h in self.hostile),
        }

    def summary(self) -> dict[str, Any]:
        times = [p.seconds for p in self.done]
        return {
            "predictions_done": len(self.done),
            "predictions_planned": self.config["sessions"] * self.config["predictions_per_session"],
            "errors": len(self.errors),
            "time_to_prediction_s": spread(times),
            "server_start_delay_s": spread([p.start_delay for p in self.done]),
            "script_to_metric_s": spread([p.seconds - p.start_delay for p in self.done]),
            "whole_run_s": spread([p.run_seconds for p in self.done if p.run_seconds is not None]),
            "upload_s": spread([p.upload_seconds for p in self.done if p.upload_seconds is not None]),
            "page_open_s": spread(self.page_opens),
            "queue_wait_s": spread([t.queue_wait for t in self.trainings if t.queue_wait is not None]),
            "training_run_s": spread([t.run_seconds for t in self.trainings if t.run_seconds is not None]),
            "takeaway_onnx_s": spread([t.takeaway_seconds for t in self.trainings
                                       if t.takeaway_seconds is not None]),
            "replay_slider_s": spread([s for t in self.trainings for s in t.replay_seconds]),
            "replay_confusion_click_s": spread([s for t in self.trainings for s in t.pick_seconds]),
            "replay_tsne_map_s": spread([s for t in self.trainings for s in t.map_seconds]),
            "replay_map_click_s": spread([s for t in self.trainings for s in t.point_seconds]),
            "explorer_cell_s": spread([s for e in self.explorers for s in e.cell_seconds]),
            "explorer_top_images_s": spread([s for e in self.explorers for s in e.top_images_seconds]),
            "explorer_optimize_s": spread([s for e in self.explorers for s in e.optimize_seconds]),
            "lab_action_s": spread([s for lab in self.labs for times in lab.actions.values() for s in times]),
            "lab_actions_s": self.lab_actions(),
            "health_latency_s": spread(self.health_latency),
            "server_cpu_share_during_predictions": self.cpu_share(),
            "targets": self.targets(),
        }

    def lab_actions(self) -> dict[str, dict[str, float] | None]:
        """Each lab action's seconds over all lab students, in the order the students do them."""
        names = dict.fromkeys(name for lab in self.labs for name in lab.actions)
        return {name: spread([s for lab in self.labs for s in lab.actions.get(name, [])]) for name in names}

    def cpu_share(self) -> float | None:
        """Server CPU time / (wall time x cores) during the prediction phase."""
        if self.server_cpu_seconds is None or self.prediction_phase_seconds <= 0:
            return None
        return round(self.server_cpu_seconds / (self.prediction_phase_seconds * self.cpus), 3)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}

    def to_text(self) -> str:
        return format_report(self)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def spread(values: Sequence[float]) -> dict[str, float] | None:
    """count, p50, p95 and max of some seconds (None when there are none)."""
    if not values:
        return None
    return {"count": len(values), "p50": round(percentile(values, 50), 3),
            "p95": round(percentile(values, 95), 3), "max": round(max(values), 3)}


# --- the report as text -------------------------------------------------------------------

def _seconds(values: dict[str, float] | None) -> str:
    if values is None:
        return "none"
    return (f"p50 {values['p50']:.2f} s, p95 {values['p95']:.2f} s, max {values['max']:.2f} s "
            f"(n={values['count']})")


def _mb(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,.0f} MB"


def format_report(report: LoadTestReport) -> str:
    """A plain-text report: the targets first, then where the time and memory went."""
    summary = report.summary()
    config = report.config
    load = ", ".join(f"{v:.2f}" for v in report.load_before)
    lines = [
        f"cnnviz load test of {report.url} (server pid {report.pid or 'unknown'}), "
        f"{report.cpus} CPUs, load average before {load}"
        + ("" if report.machine_busy_before is None else
           f"; {report.machine_busy_before:.0%} of the CPUs busy just before"),
        f"{config['sessions']} students predicting ({config['predictions_per_session']} upload"
        f"{'s' if config['predictions_per_session'] != 1 else ''} each, {config['images']} different images) "
        f"+ {config['trainings']} students training ({config['train_dataset']}, "
        f"{config['train_epochs']} epoch, "
        f"{config['train_images']} images)"
        + (f" + {config['lab_students']} in the convolution lab" if config.get("lab_students") else "")
        + f"; pauses before uploads {config['think_seconds'][0]:g}-"
        f"{config['think_seconds'][1]:g} s; {report.seconds:.0f} s in all",
        "",
        "targets:",
    ]
    for name, met in summary["targets"].items():
        lines.append(f"  {'met   ' if met else 'MISSED' if met is False else 'n/a   '}  {name}")
    lines += [
        "",
        f"errors: {len(report.errors)}",
        *(f"  {e}" for e in report.errors[:5]),
        *([f"  ... and {len(report.errors) - 5} more"] if len(report.errors) > 5 else []),
        f"predictions: {summary['predictions_done']} of {summary['predictions_planned']} done",
        f"  time to a prediction:       {_seconds(summary['time_to_prediction_s'])}",
        f"    waiting for the server:   {_seconds(summary['server_start_delay_s'])}",
        f"    page script to the metric: {_seconds(summary['script_to_metric_s'])}",
        f"  whole page run:             {_seconds(summary['whole_run_s'])}",
        f"  upload (URL + PUT):         {_seconds(summary['upload_s'])}",
    ]
    if report.warmup is not None and report.warmup.seconds is not None:
        lines.append(f"  alone (warm-up session):    {report.warmup.seconds:.2f} s to the prediction, "
                     f"{report.warmup.run_seconds:.2f} s whole run")
    lines.append(f"predict page opened by all at once: {_seconds(summary['page_open_s'])}")
    share = summary["server_cpu_share_during_predictions"]
    if share is not None:
        training = "" if report.training_cpu_seconds is None else (
            f" ({report.training_cpu_seconds:.1f} s of it in the niced training threads)")
        lines.append(f"server CPU during the predictions: {report.server_cpu_seconds:.1f} s in "
                     f"{report.prediction_phase_seconds:.1f} s = {share:.0%} of {report.cpus} CPUs{training}")
    if report.machine_cpu_seconds is not None and report.server_cpu_seconds is not None:
        others = report.machine_cpu_seconds - report.server_cpu_seconds
        lines.append(f"the rest of the machine (this load generator and other processes) used {others:.1f} "
                     "CPU seconds meanwhile")
    lines.append(f"server health check answered in: {_seconds(summary['health_latency_s'])}")
    if report.trainings:
        lines += ["", "trainings:", f"  {'session':<11} {'outcome':<8} {'queue wait':>10} {'run time':>9} "
                  f"{'positions':<10} test accuracy"]
        for t in report.trainings:
            wait = "-" if t.queue_wait is None else f"{t.queue_wait:.1f} s"
            run = "-" if t.run_seconds is None else f"{t.run_seconds:.1f} s"
            positions = ",".join(map(str, t.queue_positions)) or "-"
            lines.append(f"  {t.session:<11} {t.outcome:<8} {wait:>10} {run:>9} {positions:<10} "
                         f"{t.test_accuracy or '-'}")
        files = ", ".join(f"{t.onnx_bytes / 1000:.0f} kB ONNX + {t.script_bytes / 1000:.0f} kB script"
                          for t in report.trainings if t.onnx_bytes)
        lines.append(f"  Take it with you: the ONNX download shown {_seconds(summary['takeaway_onnx_s'])} "
                     f"after the result; downloaded {files or 'nothing'}")
        if summary["replay_slider_s"] or summary["replay_confusion_click_s"]:
            lines.append(f"  after their runs: time slider {_seconds(summary['replay_slider_s'])}; "
                         f"confusion click {_seconds(summary['replay_confusion_click_s'])}; "
                         f"t-SNE map {_seconds(summary['replay_tsne_map_s'])}; "
                         f"map click {_seconds(summary['replay_map_click_s'])}")
    if report.hostile:
        lines += ["", "hostile students (widest net at the largest batch, estimates, a heavy run started and "
                  "stopped, big decodes, repeated saves):"]
        for h in report.hostile:
            enabled = (f" ({h.refusals_with_train_enabled} with Train enabled!)"
                       if h.refusals_with_train_enabled else "")
            lines.append(
                f"  {h.session}: {h.rounds} rounds, {h.estimates} estimates, {h.memory_refusals} refused "
                f"over the memory budget{enabled}, "
                f"{h.trainings_started} heavy runs started, {h.trainings_stopped} stopped, "
                f"{h.decodes_refused} big decodes refused, {h.decodes_predicted} predicted, "
                f"{h.saves} saves, {h.save_refusals} refused over the quota"
                + "".join(f"; {s}" for s in h.decode_surprises + h.save_surprises)
                + (f"; ERROR {h.error}" if h.error else "")
                + ("" if h.as_expected else " -- NOT as expected"))
    if report.explorers:
        lines += ["", "explorer students (a cell, its 9 top images, an optimized image; seconds to each):"]
        for e in report.explorers:
            lines.append(f"  {e.session}: {e.rounds} rounds; cell {_each_second(e.cell_seconds)}; top images "
                         f"{_each_second(e.top_images_seconds)}; optimized {_each_second(e.optimize_seconds)}"
                         + (f"; ERROR {e.error}" if e.error else ""))
    lines += _lab_lines(report, summary)
    memory = report.memory
    per = "unknown" if memory.per_idle_session is None else f"{memory.per_idle_session:.1f} MB"
    lines += [
        "",
        f"server memory (RSS): {_mb(memory.before)} before the students, {_mb(memory.idle)} with "
        f"{config['sessions']} idle on the predict page => {per} per idle session; peak {_mb(memory.peak)}, "
        f"{_mb(memory.end)} after all closed"
        + ("" if memory.budget is None else f"; budget {_mb(memory.budget)} (before + training memory)"),
        f"load average after: {', '.join(f'{v:.2f}' for v in report.load_after)}; this load generator used "
        f"{report.client_cpu_seconds:.1f} CPU seconds on the same machine",
    ]
    return "\n".join(lines)


def _lab_lines(report: LoadTestReport, summary: dict[str, Any]) -> list[str]:
    if not report.labs:
        return []
    lines = ["", "lab students (the Convolution page's three lessons, their code, exercises; rerun sent -> "
             "run ended):", f"  every action: {_seconds(summary['lab_action_s'])}"]
    if report.lab_warmup is not None:
        alone = "; ".join(f"{name} {times[0]:.2f} s" for name, times in report.lab_warmup.actions.items())
        lines.append(f"  alone, first in this server (warm-up): {alone or 'nothing'}")
    lines += [f"  {name + ':':<27} {_seconds(times)}" for name, times in summary["lab_actions_s"].items()]
    for lab in report.labs:
        score = "none" if lab.score_shown is None else f"{lab.score_shown[0]} of {lab.score_shown[1]} right"
        lines.append(f"  {lab.session}: {lab.exercises_answered} answered right, "
                     f"{lab.exercises_shown} shown; score on the page: {score}; {lab.seconds:.1f} s in all"
                     + (f"; ERROR {lab.error}" if lab.error else "")
                     + ("" if lab.as_expected else " -- NOT as expected"))
    return lines


def _each_second(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values) or "-"
