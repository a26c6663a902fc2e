"""Training in a background thread, with progress a web page can poll (no Streamlit in here).

The thread never touches the UI: it writes each :class:`~cnnviz.training.progress.Progress` into the job
under a lock; the page reads a consistent :class:`JobSnapshot` whenever it redraws. On a shared
server every job enters one :class:`TrainingQueue`: a few run, the others wait their turn in order.
"""

from __future__ import annotations

import enum
import itertools
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from cnnviz.runtime import available_cores, release_free_memory
from cnnviz.training.config import TrainConfig
from cnnviz.training.loop import TrainResult, train
from cnnviz.training.memory import admission_problem
from cnnviz.training.progress import Phase, Progress
from cnnviz.training.snapshot_capture import SnapshotPlan
from cnnviz.training.snapshots import RunSnapshots

# The live loss line keeps at most this many (step, loss) points: when full, every other one goes, so
# a long run's line still spans it from the first step (about 4 reports a second fill it in 4 min).
MAX_LOSS_POINTS = 1_000


# No time left is shown before this many steps: the first ones warm up (allocations, kernel choice),
# and an estimate from step 1 said "about 15 min left" for a run that ended 84 s later.
ETA_FROM_STEP = 3


class TrainingQueue:
    """First come, first served admission of training runs across every session of one server.

    At most ``slots`` runs train at once; up to ``max_waiting`` more wait in line, each knowing its
    place. One client (a browser: see ``enter``) has at most ``max_per_client`` runs in it, training
    or waiting. A run that is stopped while waiting leaves the line without ever starting.
    """

    def __init__(self, slots: int, max_waiting: int = 30, max_per_client: int | None = None) -> None:
        if slots < 1:
            raise ValueError("A training queue needs at least one slot.")
        self.slots = slots
        self.max_waiting = max_waiting
        self.max_per_client = max_per_client
        self._condition = threading.Condition()
        self._running: set[int] = set()
        self._waiting: deque[int] = deque()
        self._clients: dict[int, str] = {}  # ticket -> the client that entered it
        self._tickets = itertools.count(1)

    def enter(self, client: str | None = None) -> int | None:
        """A ticket for a new run, or None when the line is full.

        ``client`` names who asks (None: nobody in particular, never capped). Raises ValueError when
        that client already has ``max_per_client`` runs training or waiting.
        """
        with self._condition:
            if client is not None and self.max_per_client is not None:
                held = sum(1 for owner in self._clients.values() if owner == client)
                if held >= self.max_per_client:
                    raise ValueError(
                        f"This browser already has {held} training run{'s' if held != 1 else ''} on this "
                        f"server, training or waiting, as many as one student may: wait for one to end "
                        "or stop it."
                    )
            if len(self._waiting) >= self.max_waiting:
                return None
            ticket = next(self._tickets)
            self._waiting.append(ticket)
            if client is not None:
                self._clients[ticket] = client
            self._condition.notify_all()
            return ticket

    def position(self, ticket: int) -> int | None:
        """0 while the run trains, k when k - 1 runs wait ahead of it, None once it has left."""
        with self._condition:
            if ticket in self._running:
                return 0
            try:
                return self._waiting.index(ticket) + 1
            except ValueError:
                return None

    def wait_turn(self, ticket: int, stop: threading.Event, poll_seconds: float = 0.2) -> bool:
        """Block until the run may train (True), or until ``stop`` is set (False, and it leaves the line)."""
        with self._condition:
            while not (self._waiting and self._waiting[0] == ticket and len(self._running) < self.slots):
                if stop.is_set() or ticket not in self._waiting:
                    self._discard(ticket)
                    return False
                self._condition.wait(poll_seconds)
            self._waiting.popleft()
            self._running.add(ticket)
            self._condition.notify_all()  # the next in line may also fit
            return True

    def leave(self, ticket: int) -> None:
        """Free the run's slot (or its place in line)."""
        with self._condition:
            self._discard(ticket)

    def counts(self) -> tuple[int, int]:
        """(runs training, runs waiting)."""
        with self._condition:
            return len(self._running), len(self._waiting)

    def _discard(self, ticket: int) -> None:
        self._running.discard(ticket)
        self._clients.pop(ticket, None)
        if ticket in self._waiting:
            self._waiting.remove(ticket)
        self._condition.notify_all()


class JobStatus(enum.StrEnum):
    """Where a training job is (each compares equal to its string)."""

    QUEUED = "queued"  # waiting in line for a training slot
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"  # stopped while training: it keeps what it learned
    CANCELLED = "cancelled"  # stopped while queued: it never trained
    FAILED = "failed"


@dataclass(frozen=True)
class JobSnapshot:
    """What the page needs to draw the job at one moment."""

    status: JobStatus
    latest: Progress | None
    points: list[Progress]  # the validation points so far (the live curves)
    result: TrainResult | None
    error: str | None
    started: float  # time.time() when the job was started (it may have waited in line first)
    queue_position: int | None = None  # while queued: 1 = next to train
    queue_wait: float | None = None  # seconds spent in line, once admitted
    stop_requested: bool = False  # Stop was pressed; the run ends after its step, then scores the test set
    # The run's snapshots so far (all of them once it has ended); None without a snapshot plan. A copy
    # of its own: the training thread never appends to this one's list.
    snapshots: RunSnapshots | None = None
    # (step, mean training loss of the steps since the previous report): the live curves' thin line,
    # drawn from the first steps on, long before the first validation point.
    loss_points: tuple[tuple[int, float], ...] = ()

    @property
    def stopping(self) -> bool:
        """Stop was pressed and the run has not ended yet (it is finishing a step or scoring)."""
        return self.stop_requested and self.status == JobStatus.RUNNING

    @property
    def finished(self) -> bool:
        return self.status not in (JobStatus.QUEUED, JobStatus.RUNNING)

    @property
    def fraction(self) -> float:
        if self.latest is None:
            return 0.0
        return min(1.0, self.latest.step / max(1, self.latest.total_steps))

    @property
    def scoring(self) -> bool:
        """The last step is done and the test set is being scored."""
        return self.latest is not None and self.latest.phase == Phase.SCORE and not self.finished

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left: the steps to go at the pace since the first step (the data loading before it
        left out), and the scoring of the test set at the speed the validation checks measured (at
        a guess from the training speed before the first). None before :data:`ETA_FROM_STEP` steps and
        once the steps are done."""
        p = self.latest
        if p is None or p.step < ETA_FROM_STEP or p.phase in (Phase.SCORE, Phase.DONE):
            return None
        training = p.train_seconds * (1 - self.fraction) / max(self.fraction, 1e-9)
        return training + p.scoring_seconds


class TrainingJob:
    """One training run on its own thread; ``stop()`` ends it early and keeps what was learned.

    Args:
        queue: shared by all sessions of a server; None = start at once.
        cpu_threads: intra-op threads for this run (None: share the cores, see ``_run``).
        nice: Linux: lower this thread's priority so page reruns of other students stay quick.
        memory_budget: bytes the run may use at its predicted peak (None: no check); a run that
            would need more fails before it allocates anything, with a sentence on what to shrink.
        client: who started it, for the queue's per-client cap (see :meth:`TrainingQueue.enter`).
        snapshot_plan: take the snapshots it asks for; :attr:`JobSnapshot.snapshots` has those taken so far.
    """

    def __init__(
        self, config: TrainConfig, data_dir: str | os.PathLike | None = None,
        queue: TrainingQueue | None = None, cpu_threads: int | None = None, nice: int = 0,
        memory_budget: int | None = None,
        client: str | None = None, snapshot_plan: SnapshotPlan | None = None,
    ) -> None:
        self.config = config
        self.memory_budget = memory_budget
        self.client = client
        self.data_dir = data_dir
        self.queue = queue
        self.cpu_threads = cpu_threads
        self.nice = nice
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._latest: Progress | None = None
        self._points: list[Progress] = []
        self._loss_points: list[tuple[int, float]] = []
        self._result: TrainResult | None = None
        self._error: str | None = None
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._ticket: int | None = None
        self._admitted: float | None = None  # time.time() when it left the line
        self._cancelled = False
        self.snapshot_plan = snapshot_plan
        self._snapshots: RunSnapshots | None = None  # the latest copy the training thread handed over

    def start(self) -> bool:
        """Start the thread (it waits its turn in the queue first); False when the line is full.

        Raises ValueError (one sentence) when its client already has as many runs as the queue allows.
        """
        if self.queue is not None:
            self._ticket = self.queue.enter(self.client)
            if self._ticket is None:
                return False
        self._started = time.time()
        self._thread = threading.Thread(target=self._run, name="cnnviz-training", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Ask the run to end after its current step (a queued run leaves the line)."""
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds (None: for good) for the thread to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            position = None
            if self._error is not None:
                status = JobStatus.FAILED
            elif self._cancelled:
                status = JobStatus.CANCELLED
            elif self._result is not None:
                status = JobStatus.STOPPED if self._result.stopped else JobStatus.DONE
            elif self._ticket is not None and self._admitted is None:
                status = JobStatus.QUEUED
                position = self.queue.position(self._ticket) if self.queue else None
            else:
                status = JobStatus.RUNNING
            wait = None if self._admitted is None else self._admitted - self._started
            snapshots = self._snapshots
            if self._result is not None and self._result.snapshots is not None:
                snapshots = self._result.snapshots
            return JobSnapshot(status, self._latest, list(self._points), self._result, self._error,
                               self._started, position, wait, self.stop_event.is_set(), snapshots,
                               tuple(self._loss_points))

    def _on_capture(self, snapshots: RunSnapshots, model: object) -> None:
        """On the training thread after each snapshot: a shallow copy with a list of its own."""
        copy = replace(snapshots, snapshots=list(snapshots.snapshots))
        with self._lock:
            self._snapshots = copy
        plan = self.snapshot_plan
        if plan is not None and plan.on_capture is not None:
            plan.on_capture(snapshots, model)

    def _on_progress(self, progress: Progress) -> None:
        with self._lock:
            self._latest = progress
            if progress.phase == Phase.EVAL:
                self._points.append(progress)
            if progress.window_loss is not None and progress.step > 0:
                if len(self._loss_points) >= MAX_LOSS_POINTS:
                    del self._loss_points[1::2]  # keep every other point, the first step's among them
                self._loss_points.append((progress.step, progress.window_loss))

    def _run(self) -> None:
        try:
            if self.nice > 0 and hasattr(os, "setpriority"):
                # Linux gives each thread its own niceness; torch's worker threads inherit it.
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            if self.memory_budget is not None:
                problem = admission_problem(self.config, self.memory_budget)
                if problem:
                    raise ValueError(problem)  # before it takes a slot: nothing big was allocated
            admitted = self.queue is None or self._ticket is None or self.queue.wait_turn(
                self._ticket, self.stop_event)
            if not admitted:
                with self._lock:
                    self._cancelled = True
                return
            with self._lock:
                self._admitted = time.time()
            threads = self.cpu_threads
            if threads is None and self.queue is not None:
                # A lone run gets every core; one admitted beside others gets its share of them.
                threads = max(1, available_cores() // max(1, self.queue.counts()[0]))
            plan = self.snapshot_plan
            plan = None if plan is None else replace(plan, on_capture=self._on_capture)
            result = train(self.config, progress=self._on_progress, stop=self.stop_event,
                           data_dir=self.data_dir, cpu_threads=threads, snapshots=plan)
            with self._lock:
                self._result = result
        except Exception as err:  # noqa: BLE001 - shown to the student instead of killing the thread
            with self._lock:
                self._error = f"{type(err).__name__}: {err}" if not isinstance(err, ValueError) else str(err)
        finally:
            if self.queue is not None and self._ticket is not None:
                self.queue.leave(self._ticket)
            release_free_memory()  # the run's batches and activations, back to the system
