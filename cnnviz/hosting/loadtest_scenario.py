"""The class scenario: many students predict on their own images while a few train, all at once.

Phases, each on real sessions of one server (see :mod:`cnnviz.hosting.session_client`):

1. Warm-up: one session opens the predict page and predicts once, alone (imports, model loading;
   its time is the unloaded baseline); with lab students, one more opens the lab's pages once. Then
   the server's memory is read: "before".
2. ``sessions`` students open the predict page at once, then sit idle; memory is read again:
   (idle - before) / sessions is the memory per idle session.
3. ``trainings`` other students open the Train page, choose a small run and press Train.
4. Meanwhile every predicting student switches the input to Upload and uploads an image
   ``predictions_per_session`` times, with a short random pause first. Time to a prediction:
   from sending the rerun that carries the uploaded file to receiving the "Prediction" metric.
5. The trainings are followed until "Test accuracy" shows; queue wait = Train click -> first
   progress bar; run time = first progress bar -> "Test accuracy"; then "Take it with you": the
   run's ONNX download shown (exported in that page run) and the ONNX file and script downloaded.
6. With ``hostile`` > 0, that many more students push the limits during phase 4 (widest net, largest
   batch, repeated estimates, a heavy run started and stopped, big decodes; see
   :mod:`cnnviz.hosting.loadtest_hostile`); at the end the server must still answer its health check.
7. With ``explorers`` > 0, that many more students use "Explore the network" during phase 4: a cell,
   its 9 top test images, an optimized image (:mod:`cnnviz.hosting.loadtest_explorer`).
8. With ``lab_students`` > 0, that many more students work in the convolution lab during phase 4: the
   Convolution page's three lessons, their settings and code, then exercises checked and the score
   read back (:mod:`cnnviz.hosting.loadtest_lab`).

Why this module is long: it is the one place that puts every kind of student of a class on one server
at once, phase by phase, with the predicting and training students' own steps; each other kind of
student (hostile, exploring, replaying, in the lab) lives in its own module.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import random
import re
import resource
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from cnnviz import pages
from cnnviz.datasets.files import DATASETS
from cnnviz.hosting.loadtest_explorer import ExplorerRecord, exploring_student
from cnnviz.hosting.loadtest_hostile import HostileRecord, hostile_student
from cnnviz.hosting.loadtest_lab import LabRecord, lab_student, warm_up_lab
from cnnviz.hosting.loadtest_replay import replay_run
from cnnviz.hosting.loadtest_report import LoadTestReport, PredictionRecord, TrainingRecord
from cnnviz.hosting.loadtest_sampling import (
    ServerSampler,
    machine_busy_seconds,
    probe_health,
    process_cpu_seconds,
    rss_mb,
    server_answers,
)
from cnnviz.hosting.session_client import SessionError, ShownElement, StreamlitSession

# The Train page's settings for the chosen architecture, whatever its name: train_<preset>_epochs.
EPOCHS_KEY = re.compile(f"^{re.escape(pages.TRAIN_FORM_PREFIX)}.+{re.escape(pages.EPOCHS_SUFFIX)}$")
SUBSET_KEY = re.compile(f"^{re.escape(pages.TRAIN_FORM_PREFIX)}.+{re.escape(pages.SUBSET_SUFFIX)}$")
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
    hostile: int = 0  # further students who push every limit (see loadtest_hostile)
    hostile_rounds: int = 2  # how many times each hostile student repeats its attempts
    memory_budget_mb: float | None = None  # the server's peak RSS must stay under this (hostile check)
    save_quota: int | None = None  # the server's saves per session, when known (hostile check)
    explorers: int = 0  # further students on the explorer (see loadtest_explorer)
    explorer_rounds: int = 2  # cells, top images and optimized images each of them asks for
    lab_students: int = 0  # further students in the convolution lab and its exercises (see loadtest_lab)
    lab_exercises: int = 3  # exercises each of them does (the last by "Show answer")
    replay_moves: int = 0  # after their run, each training student scrubs this many moments and clicks
    # this many confusion cells (see loadtest_replay)
    predictions_per_session: int = 1
    images: Sequence[UploadImage] = ()  # default: the bundled MNIST test digits
    think_seconds: tuple[float, float] = (0.5, 2.0)  # a student's pause before each upload or lab action
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
        if self.hostile < 0 or self.hostile_rounds < 1:
            raise ValueError("--hostile cannot be negative and --hostile-rounds must be at least 1.")
        if self.replay_moves < 0:
            raise ValueError("--replay-moves cannot be negative.")
        if self.explorers < 0 or self.explorer_rounds < 1:
            raise ValueError("--explorers cannot be negative and --explorer-rounds must be at least 1.")
        if self.lab_students < 0 or self.lab_exercises < 1:
            raise ValueError("--lab-students cannot be negative and --lab-exercises must be at least 1.")
        if self.predictions_per_session < 1:
            raise ValueError("--predictions-per-session must be at least 1.")
        low, high = self.think_seconds
        if not 0 <= low <= high:
            raise ValueError("--think-seconds needs MIN and MAX with 0 <= MIN <= MAX.")



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



# --- one student predicting ---------------------------------------------------------------

def is_prediction(after_run: int) -> Callable[[ShownElement], bool]:
    return lambda e: e.kind == "metric" and e.proto.label == pages.PREDICTION_LABEL and e.run > after_run


async def open_predict_page(session: StreamlitSession) -> float:
    """Connect and open the predict page; seconds until its first run ended."""
    start = time.perf_counter()
    await session.connect()
    await session.open_page(pages.PREDICT_PAGE)
    return time.perf_counter() - start


async def predict_once(
    session: StreamlitSession, image: UploadImage, config: LoadTestConfig,
) -> PredictionRecord:
    """Upload one image and wait for the prediction (the input must already be on Upload)."""
    record = PredictionRecord(session.name, image.name)
    exceptions_before = len(session.exceptions)
    upload_start = time.perf_counter()
    await session.stage_upload(pages.PREDICT_UPLOAD_KEY, image.name, image.data, image.content_type)
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
    await session.choose(pages.PREDICT_SOURCE_KEY, pages.UPLOAD_INPUT)
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
    await session.open_page(pages.TRAIN_PAGE)
    record.open_seconds = time.perf_counter() - start
    await session.choose(pages.TRAIN_DATASET_KEY, config.train_dataset)
    epochs = [k for k in session.widget_keys() if EPOCHS_KEY.match(k)]
    if epochs:  # absent when the host allows one epoch only
        await session.set_slider(epochs[0], config.train_epochs)
    subset = [k for k in session.widget_keys() if SUBSET_KEY.match(k)]
    if not subset:
        raise SessionError(f"{session.name}: the Train page shows no training-images choice")
    await session.choose(subset[0], config.train_images)
    session.first_seen.clear()
    sent, before = await session.click(pages.TRAIN_START_KEY)
    await session.wait_run_end(sent, before, "the page after Train")  # Train reruns the page once more
    if session.find("alert", pages.QUEUE_FULL_TEXT):
        record.outcome = "refused"
        return None
    return sent


async def follow_training(session: StreamlitSession, record: TrainingRecord, clicked: float,
                          config: LoadTestConfig) -> None:
    """Watch the queue, the progress and the result; fill in the record."""
    def admitted() -> bool:
        for alert in session.find("alert", pages.QUEUED_TEXT):
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
        return bool(session.find("metric", pages.TEST_ACCURACY_LABEL)) or bool(failed())

    await session.wait_until(finished, "test accuracy", config.training_timeout)
    if failed():
        record.outcome, record.error = "error", f"{session.name}: " + "; ".join(failed())
        return
    result = session.find("metric", pages.TEST_ACCURACY_LABEL)[0]
    record.run_seconds = session.first_seen[f"metric:{pages.TEST_ACCURACY_LABEL}"] - progress
    record.test_accuracy = result.proto.body
    record.outcome = "done"
    # "Take it with you": the run's ONNX file is exported in the page run that shows the result
    onnx = await session.wait_for_element(lambda e: e.key == pages.TRAIN_ONNX_KEY, "the ONNX download",
                                          config.timeout)
    record.takeaway_seconds = onnx.received - session.first_seen[f"metric:{pages.TEST_ACCURACY_LABEL}"]
    record.onnx_bytes = len(await session.download(pages.TRAIN_ONNX_KEY))
    record.script_bytes = len(await session.download(pages.TRAIN_SCRIPT_KEY))


async def training_student(session: StreamlitSession, record: TrainingRecord, config: LoadTestConfig,
                           clicked_event: asyncio.Event) -> None:
    try:
        try:
            clicked = await start_training(session, record, config)
        finally:
            clicked_event.set()
        if clicked is not None:
            await follow_training(session, record, clicked, config)
            await replay_run(session, record, config.replay_moves)
    except SessionError as err:
        record.outcome, record.error = "error", str(err)


# --- the whole test -----------------------------------------------------------------------

async def warm_up(url: str, image: UploadImage, config: LoadTestConfig) -> PredictionRecord:
    """One student alone: loads what the server loads once; its time is the unloaded baseline."""
    session = StreamlitSession(url, "warm-up", config.timeout)
    try:
        await open_predict_page(session)
        await session.choose(pages.PREDICT_SOURCE_KEY, pages.UPLOAD_INPUT)
        return await predict_once(session, image, config)
    except SessionError as err:
        return PredictionRecord(session.name, image.name, error=str(err))
    finally:
        await session.close()


async def lab_warm_up(url: str, config: LoadTestConfig, report: LoadTestReport) -> None:
    """With lab students, the lab's pages opened once alone first (their one-off cost, reported)."""
    if not config.lab_students:
        return
    report.lab_warmup = LabRecord("lab warm-up")
    await warm_up_lab(StreamlitSession(url, "lab warm-up", config.timeout), report.lab_warmup)
    if report.lab_warmup.error:
        report.errors.append(f"lab warm-up: {report.lab_warmup.error}")


def memory_budget(before: float | None, training_mb: float | None) -> float | None:
    """The server's RSS budget in MB: its RSS after the warm-up plus the training memory it was given."""
    return None if before is None or training_mb is None else round(before + training_mb, 1)


async def run_load_test(url: str, pid: int | None, config: LoadTestConfig) -> LoadTestReport:
    """Drive the class scenario against a running server and measure it."""
    sessions = config.sessions + config.trainings + config.hostile + config.explorers + config.lab_students
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=sessions + 4, thread_name_prefix="loadtest"))
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
    await lab_warm_up(url, config, report)
    sampler = ServerSampler(pid)
    report.memory.before = sampler.sample()
    report.memory.budget = memory_budget(report.memory.before, config.memory_budget_mb)
    sampler.start()

    students = [StreamlitSession(url, f"student {i + 1}", config.timeout) for i in range(config.sessions)]
    trainers = [StreamlitSession(url, f"trainer {i + 1}", config.timeout) for i in range(config.trainings)]
    hostiles = [StreamlitSession(url, f"hostile {i + 1}", config.timeout) for i in range(config.hostile)]
    report.hostile = [HostileRecord(h.name) for h in hostiles]
    explorers = [StreamlitSession(url, f"explorer {i + 1}", config.timeout) for i in range(config.explorers)]
    report.explorers = [ExplorerRecord(e.name) for e in explorers]
    labs = [StreamlitSession(url, f"lab {i + 1}", config.timeout) for i in range(config.lab_students)]
    report.labs = [LabRecord(s.name) for s in labs]
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
        hostile_tasks = [
            asyncio.create_task(hostile_student(h, r, config.hostile_rounds, config.train_dataset,
                                                config.training_timeout, config.save_quota))
            for h, r in zip(hostiles, report.hostile, strict=True)]
        explorer_tasks = [
            asyncio.create_task(exploring_student(e, r, config.explorer_rounds, config.training_timeout))
            for e, r in zip(explorers, report.explorers, strict=True)]
        lab_tasks = [asyncio.create_task(lab_student(s, r, config.seed + i + 1, config.lab_exercises,
                                                     config.think_seconds))
                     for i, (s, r) in enumerate(zip(labs, report.labs, strict=True))]
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

        await asyncio.gather(*training_tasks, *hostile_tasks, *explorer_tasks, *lab_tasks)
        report.errors.extend(t.error for t in report.trainings if t.error)
        report.errors.extend(lab.error for lab in report.labs if lab.error)
    finally:
        for session in students + trainers:
            new = [e for e in session.exceptions if not any(e in seen for seen in report.errors)]
            report.errors.extend(new)
        await asyncio.gather(*(s.close() for s in students + trainers + hostiles + explorers + labs))
        await sampler.stop()
    report.memory.peak = sampler.peak
    report.server_up = await server_answers(url)
    await asyncio.sleep(1.0)
    report.memory.end = rss_mb(pid)
    report.seconds = time.perf_counter() - started
    report.load_after = os.getloadavg()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime - client_cpu.ru_utime - client_cpu.ru_stime
    report.client_cpu_seconds = round(used, 2)
    return report
