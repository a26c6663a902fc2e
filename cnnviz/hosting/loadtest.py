"""The class scenario: many students predict on their own images while a few train, all at once.

Phases, each on real sessions of one server (see :mod:`cnnviz.hosting.session_client`):

1. Warm-up: one session opens the predict page and predicts once, alone (imports, model loading;
   its time is the unloaded baseline). Then the server's memory is read: "before".
2. ``sessions`` students open the predict page at once, then sit idle; memory is read again:
   (idle - before) / sessions is the memory per idle session.
3. ``trainings`` other students open the Train page, choose a small run and press Train.
4. Meanwhile every predicting student switches the input to Upload and uploads an image
   ``predictions_per_session`` times, with a short random pause first. Time to a prediction:
   from sending the rerun that carries the uploaded file to receiving the "Prediction" metric.
5. The trainings are followed until "Test accuracy" shows; queue wait = Train click -> first
   progress bar; run time = first progress bar -> "Test accuracy".
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import mimetypes
import os
import random
import re
import resource
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cnnviz.datasets.files import DATASETS
from cnnviz.hosting.server_process import machine_busy_seconds, rss_mb, thread_cpu
from cnnviz.hosting.session_client import SessionError, ShownElement, StreamlitSession

PREDICT_PAGE = "predict"  # url paths and widget keys of the pages under test
TRAIN_PAGE = "train"
SOURCE_KEY, UPLOAD_OPTION, UPLOAD_KEY = "predict_source", "Upload", "predict_upload"
PREDICTION_LABEL = "Prediction"
DATASET_KEY, TRAIN_KEY = "train_dataset", "train_start"
EPOCHS_KEY = re.compile(r"^train_.+_epochs$")  # train_<preset>_epochs
SUBSET_KEY = re.compile(r"^train_.+_subset$")
QUEUED_TEXT = "In line for a training slot"
REFUSED_TEXT = "try again in a"  # "try again in a minute" / "... in a few minutes": the line is full
TEST_ACCURACY_LABEL = "Test accuracy"
TARGET_P95_SECONDS = 2.0  # the class-hosting targets (issue 6)
TARGET_MB_PER_IDLE_SESSION = 30.0
MEMORY_SAMPLE_SECONDS = 0.25
ALL_CLASSES = frozenset(c for info in DATASETS.values() for c in info.classes)


@dataclass(frozen=True)
class UploadImage:
    """A file a student uploads."""

    name: str
    data: bytes
    content_type: str = "image/png"


@dataclass
class LoadTestConfig:
    """What the load test does; the defaults are the class-hosting target."""

    sessions: int = 30  # students who predict
    trainings: int = 3  # further students who each start one training
    predictions_per_session: int = 1
    images: Sequence[UploadImage] = ()  # default: the bundled MNIST test digits
    think_seconds: tuple[float, float] = (0.5, 2.0)  # a student's pause before each upload
    train_dataset: str = "MNIST"  # as the Train page shows it
    train_epochs: int = 1
    train_images: str = "2,000"  # the Train page's smallest training subset
    idle_seconds: float = 3.0  # how long the opened sessions sit idle before memory is read
    timeout: float = 300.0  # seconds any one answer may take
    training_timeout: float = 1200.0  # seconds from Train to "Test accuracy"
    fetch_media: bool = True  # GET each prediction's images as a browser does (not timed)
    expected_labels: dict[str, str] | None = None  # image name -> label the model must give
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sessions < 1:
            raise ValueError("--sessions must be at least 1.")
        if self.trainings < 0:
            raise ValueError("--trainings cannot be negative.")
        if self.predictions_per_session < 1:
            raise ValueError("--predictions-per-session must be at least 1.")
        low, high = self.think_seconds
        if not 0 <= low <= high:
            raise ValueError("--think-seconds needs MIN and MAX with 0 <= MIN <= MAX.")


@dataclass
class PredictionRecord:
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
    session: str
    outcome: str = "not started"  # "done", "refused" (line full), "error", "not started"
    open_seconds: float | None = None  # the Train page's first run
    queue_wait: float | None = None  # Train clicked -> first progress bar
    run_seconds: float | None = None  # first progress bar -> "Test accuracy" shown
    queue_positions: list[int] = field(default_factory=list)  # positions the page showed while waiting
    test_accuracy: str | None = None
    error: str | None = None


@dataclass
class MemoryReport:
    """Server RSS in MB; None where the server's process could not be read."""

    before: float | None = None  # after the warm-up, before the students
    idle: float | None = None  # all predicting sessions open and idle
    peak: float | None = None  # highest sample from "before" to the end
    end: float | None = None  # after every session closed
    per_idle_session: float | None = None  # (idle - before) / sessions


@dataclass
class LoadTestReport:
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
            "health_latency_s": spread(self.health_latency),
            "server_cpu_share_during_predictions": self.cpu_share(),
            "targets": self.targets(),
        }

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


def default_images() -> list[UploadImage]:
    """The bundled real MNIST test digits, as the PNG files a student could upload."""
    from cnnviz.datasets.samples import list_samples

    return [UploadImage(s.path.name, s.path.read_bytes()) for s in list_samples("mnist")]


def read_images(paths: Sequence[str | os.PathLike]) -> list[UploadImage]:
    """Image files to upload; ValueError with one sentence when one cannot be read."""
    images = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ValueError(f"There is no image file at {path}.")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        images.append(UploadImage(path.name, path.read_bytes(), kind))
    return images


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (from /proc/PID/stat), or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, in ticks


class ServerSampler:
    """Samples the server in the background: RSS (keeping the peak) and CPU time by thread niceness."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.peak: float | None = None
        self.cpu_by_nice: dict[int, float] = {}  # CPU seconds used since start, by thread nice value
        self._threads: dict[int, tuple[int, float]] = {}
        self._task: asyncio.Task | None = None

    def sample(self) -> float | None:
        value = rss_mb(self.pid)
        if value is not None:
            self.peak = value if self.peak is None else max(self.peak, value)
        threads = thread_cpu(self.pid)
        for tid, (nice, seconds) in threads.items():
            # A thread seen for the first time counts from zero (script threads come and go).
            used = seconds - self._threads.get(tid, (nice, 0.0 if self._threads else seconds))[1]
            self.cpu_by_nice[nice] = self.cpu_by_nice.get(nice, 0.0) + max(0.0, used)
        self._threads = threads
        return value

    def start(self) -> None:
        async def loop() -> None:
            while True:
                self.sample()
                await asyncio.sleep(MEMORY_SAMPLE_SECONDS)

        if self.pid is not None:
            self._task = asyncio.create_task(loop(), name="server-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()


async def probe_health(url: str, latencies: list[float], every: float = 0.5) -> None:
    """Time ``/_stcore/health`` again and again: it does no work, so a slow answer means the server's
    event loop itself is waiting (for the CPU or for Python's GIL), not any page script."""
    parts = urlsplit(url)
    request = (f"GET {parts.path.rstrip('/')}/_stcore/health HTTP/1.1\r\nHost: {parts.netloc}\r\n"
               "Connection: close\r\n\r\n").encode()
    while True:
        start = time.perf_counter()
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
            writer.write(request)
            await reader.read()
            writer.close()
            latencies.append(time.perf_counter() - start)
        await asyncio.sleep(every)


# --- one student predicting ---------------------------------------------------------------

def is_prediction(after_run: int) -> Callable[[ShownElement], bool]:
    return lambda e: e.kind == "metric" and e.proto.label == PREDICTION_LABEL and e.run > after_run


async def open_predict_page(session: StreamlitSession) -> float:
    """Connect and open the predict page; seconds until its first run ended."""
    start = time.perf_counter()
    await session.connect()
    await session.open_page(PREDICT_PAGE)
    return time.perf_counter() - start


async def predict_once(
    session: StreamlitSession, image: UploadImage, config: LoadTestConfig,
) -> PredictionRecord:
    """Upload one image and wait for the prediction (the input must already be on Upload)."""
    record = PredictionRecord(session.name, image.name)
    exceptions_before = len(session.exceptions)
    upload_start = time.perf_counter()
    await session.stage_upload(UPLOAD_KEY, image.name, image.data, image.content_type)
    record.upload_seconds = time.perf_counter() - upload_start
    sent, before = await session.send_rerun()
    metric = await session.wait_for_element(is_prediction(before), "prediction")
    timing = await session.wait_run_end(sent, before, "end of the prediction's run")
    record.seconds = metric.received - sent
    record.start_delay = timing.start_delay
    record.run_seconds = timing.seconds
    record.label = metric.proto.body
    problems = [e.text for e in session.find("alert", since_run=before) if e.format_name == "ERROR"]
    problems += session.exceptions[exceptions_before:]
    if record.label not in ALL_CLASSES:
        problems.append(f"the prediction {record.label!r} is not a class of any dataset")
    expected = (config.expected_labels or {}).get(image.name)
    if expected is not None and record.label != expected:
        problems.append(f"predicted {record.label!r} for {image.name}, the model says {expected!r}")
    if problems:
        record.error = f"{session.name}: " + "; ".join(problems)
    if config.fetch_media:
        record.media_bytes = await session.fetch_media(before)
    return record


async def predicting_student(session: StreamlitSession, index: int, config: LoadTestConfig,
                             images: Sequence[UploadImage], rng: random.Random) -> list[PredictionRecord]:
    """Switch to Upload, then upload ``predictions_per_session`` different images, pausing before each."""
    records: list[PredictionRecord] = []
    await session.choose(SOURCE_KEY, UPLOAD_OPTION)
    for j in range(config.predictions_per_session):
        image = images[(index * config.predictions_per_session + j) % len(images)]
        await asyncio.sleep(rng.uniform(*config.think_seconds))
        try:
            records.append(await predict_once(session, image, config))
        except SessionError as err:
            records.append(PredictionRecord(session.name, image.name, error=str(err)))
            if not session.connected:
                break
    return records


# --- one student training -----------------------------------------------------------------

async def start_training(
    session: StreamlitSession, record: TrainingRecord, config: LoadTestConfig,
) -> float | None:
    """Open the Train page, choose a small run, press Train; the click's time, or None when refused."""
    start = time.perf_counter()
    await session.connect()
    await session.open_page(TRAIN_PAGE)
    record.open_seconds = time.perf_counter() - start
    await session.choose(DATASET_KEY, config.train_dataset)
    epochs = [k for k in session.widget_keys() if EPOCHS_KEY.match(k)]
    if epochs:  # absent when the host allows one epoch only
        await session.set_slider(epochs[0], config.train_epochs)
    subset = [k for k in session.widget_keys() if SUBSET_KEY.match(k)]
    if not subset:
        raise SessionError(f"{session.name}: the Train page shows no training-images choice")
    await session.choose(subset[0], config.train_images)
    session.first_seen.clear()
    sent, before = await session.click(TRAIN_KEY)
    await session.wait_run_end(sent, before, "the page after Train")  # Train reruns the page once more
    if session.find("alert", REFUSED_TEXT):
        record.outcome = "refused"
        return None
    return sent


async def follow_training(session: StreamlitSession, record: TrainingRecord, clicked: float,
                          config: LoadTestConfig) -> None:
    """Watch the queue, the progress and the result; fill in the record."""
    def admitted() -> bool:
        for alert in session.find("alert", QUEUED_TEXT):
            found = re.search(r"position (\d+)", alert.text)
            position = int(found.group(1)) if found else None
            if position is not None and record.queue_positions[-1:] != [position]:
                record.queue_positions.append(position)
        return bool(session.find("progress")) or bool(failed())

    def failed() -> list[str]:
        return [e.text for e in session.find("alert") if e.format_name == "ERROR"] + session.exceptions

    await session.wait_until(admitted, "progress bar (training admitted)", config.training_timeout)
    progress = session.first_seen.get("progress", time.perf_counter())
    record.queue_wait = progress - clicked

    def finished() -> bool:
        return bool(session.find("metric", TEST_ACCURACY_LABEL)) or bool(failed())

    await session.wait_until(finished, "test accuracy", config.training_timeout)
    if failed():
        record.outcome, record.error = "error", f"{session.name}: " + "; ".join(failed())
        return
    result = session.find("metric", TEST_ACCURACY_LABEL)[0]
    record.run_seconds = session.first_seen[f"metric:{TEST_ACCURACY_LABEL}"] - progress
    record.test_accuracy = result.proto.body
    record.outcome = "done"


async def training_student(session: StreamlitSession, record: TrainingRecord, config: LoadTestConfig,
                           clicked_event: asyncio.Event) -> None:
    try:
        try:
            clicked = await start_training(session, record, config)
        finally:
            clicked_event.set()
        if clicked is not None:
            await follow_training(session, record, clicked, config)
    except SessionError as err:
        record.outcome, record.error = "error", str(err)


# --- the whole test -----------------------------------------------------------------------

async def warm_up(url: str, image: UploadImage, config: LoadTestConfig) -> PredictionRecord:
    """One student alone: loads what the server loads once; its time is the unloaded baseline."""
    session = StreamlitSession(url, "warm-up", config.timeout)
    try:
        await open_predict_page(session)
        await session.choose(SOURCE_KEY, UPLOAD_OPTION)
        return await predict_once(session, image, config)
    except SessionError as err:
        return PredictionRecord(session.name, image.name, error=str(err))
    finally:
        await session.close()


async def run_load_test(url: str, pid: int | None, config: LoadTestConfig) -> LoadTestReport:
    """Drive the class scenario against a running server and measure it."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=config.sessions + config.trainings + 4, thread_name_prefix="loadtest"))
    rng = random.Random(config.seed)
    images = list(config.images) or default_images()
    images = rng.sample(images, len(images))  # the bundled digits come sorted by class: mix them
    plain_config = {k: v for k, v in asdict(config).items() if k not in ("images", "expected_labels")}
    report = LoadTestReport(url, pid, {**plain_config, "images": len(images)}, os.cpu_count() or 1,
                            os.getloadavg())
    busy = machine_busy_seconds()
    await asyncio.sleep(2.0)  # how busy the machine is before the test (other users, other jobs)
    if busy is not None:
        report.machine_busy_before = round((machine_busy_seconds() - busy) / (2.0 * report.cpus), 3)
    client_cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()

    report.warmup = await warm_up(url, images[0], config)
    if report.warmup.error:
        report.errors.append(f"warm-up: {report.warmup.error}")
    sampler = ServerSampler(pid)
    report.memory.before = sampler.sample()
    sampler.start()

    students = [StreamlitSession(url, f"student {i + 1}", config.timeout) for i in range(config.sessions)]
    trainers = [StreamlitSession(url, f"trainer {i + 1}", config.timeout) for i in range(config.trainings)]
    try:
        opened = await asyncio.gather(*(open_predict_page(s) for s in students), return_exceptions=True)
        for session, result in zip(students, opened, strict=True):
            if isinstance(result, BaseException):
                report.errors.append(f"{session.name}: opening the predict page: {result}")
            else:
                report.page_opens.append(result)
        await asyncio.sleep(config.idle_seconds)
        report.memory.idle = sampler.sample()
        if report.memory.idle is not None and report.memory.before is not None:
            report.memory.per_idle_session = (report.memory.idle - report.memory.before) / config.sessions

        report.trainings = [TrainingRecord(t.name) for t in trainers]
        clicked = [asyncio.Event() for _ in trainers]
        training_tasks = [asyncio.create_task(training_student(t, r, config, e))
                          for t, r, e in zip(trainers, report.trainings, clicked, strict=True)]
        await asyncio.gather(*(e.wait() for e in clicked))

        phase_start, server_cpu = time.perf_counter(), process_cpu_seconds(pid)
        cpu_by_nice, machine_busy = dict(sampler.cpu_by_nice), machine_busy_seconds()
        probe = asyncio.create_task(probe_health(url, report.health_latency))
        ready = [s for s in students if s.connected and s.runs_finished > 0]
        students_work = (predicting_student(s, i, config, images, rng) for i, s in enumerate(ready))
        results = await asyncio.gather(*students_work, return_exceptions=True)
        report.prediction_phase_seconds = time.perf_counter() - phase_start
        probe.cancel()
        server_cpu_end = process_cpu_seconds(pid)
        if server_cpu is not None and server_cpu_end is not None:
            report.server_cpu_seconds = round(server_cpu_end - server_cpu, 2)
            sampler.sample()
            niced = sum(s - cpu_by_nice.get(nice, 0.0) for nice, s in sampler.cpu_by_nice.items() if nice > 0)
            report.training_cpu_seconds = round(niced, 2)
        machine_end = machine_busy_seconds()
        if machine_busy is not None and machine_end is not None:
            report.machine_cpu_seconds = round(machine_end - machine_busy, 2)
        for session, result in zip(ready, results, strict=True):
            if isinstance(result, BaseException):
                report.errors.append(f"{session.name}: {result}")
            else:
                report.predictions.extend(result)
        report.errors.extend(p.error for p in report.predictions if p.error)

        await asyncio.gather(*training_tasks)
        report.errors.extend(t.error for t in report.trainings if t.error)
    finally:
        for session in students + trainers:
            new = [e for e in session.exceptions if not any(e in seen for seen in report.errors)]
            report.errors.extend(new)
        await asyncio.gather(*(s.close() for s in students + trainers))
        await sampler.stop()
    report.memory.peak = sampler.peak
    await asyncio.sleep(1.0)
    report.memory.end = rss_mb(pid)
    report.seconds = time.perf_counter() - started
    report.load_after = os.getloadavg()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime - client_cpu.ru_utime - client_cpu.ru_stime
    report.client_cpu_seconds = round(used, 2)
    return report


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
        f"{config['train_images']} images); pauses before uploads {config['think_seconds'][0]:g}-"
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
    memory = report.memory
    per = "unknown" if memory.per_idle_session is None else f"{memory.per_idle_session:.1f} MB"
    lines += [
        "",
        f"server memory (RSS): {_mb(memory.before)} before the students, {_mb(memory.idle)} with "
        f"{config['sessions']} idle on the predict page => {per} per idle session; peak {_mb(memory.peak)}, "
        f"{_mb(memory.end)} after all closed",
        f"load average after: {', '.join(f'{v:.2f}' for v in report.load_after)}; this load generator used "
        f"{report.client_cpu_seconds:.1f} CPU seconds on the same machine",
    ]
    return "\n".join(lines)
