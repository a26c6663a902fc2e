"""Training in a background thread, with progress a web page can poll (no Streamlit in here).

The thread never touches the UI: it writes each :class:`~cnnviz.training.Progress` into the job
under a lock; the page reads a consistent :class:`JobSnapshot` whenever it redraws.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import torch

from cnnviz.training import Progress, TrainConfig, TrainResult, train


@dataclass(frozen=True)
class JobSnapshot:
    """What the page needs to draw the job at one moment."""

    status: str  # "running", "done", "stopped" or "failed"
    latest: Progress | None
    points: list[Progress]  # the validation points so far (the live curves)
    result: TrainResult | None
    error: str | None
    started: float  # time.time() when the job started

    @property
    def finished(self) -> bool:
        return self.status != "running"

    @property
    def fraction(self) -> float:
        if self.latest is None:
            return 0.0
        return min(1.0, self.latest.step / max(1, self.latest.total_steps))

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the average pace so far (None before the first step)."""
        if self.latest is None or self.latest.step == 0:
            return None
        return self.latest.elapsed * (1 - self.fraction) / max(self.fraction, 1e-9)


@dataclass
class TrainingJob:
    """One training run on its own thread; ``stop()`` ends it early and keeps what was learned."""

    config: TrainConfig
    data_dir: str | os.PathLike | None = None
    slots: threading.Semaphore | None = None  # caps concurrent trainings across sessions
    stop_event: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _latest: Progress | None = None
    _points: list[Progress] = field(default_factory=list)
    _result: TrainResult | None = None
    _error: str | None = None
    _thread: threading.Thread | None = None
    _started: float = 0.0

    def start(self) -> bool:
        """Start the thread; False when all training slots are taken."""
        if self.slots is not None and not self.slots.acquire(blocking=False):
            return False
        self._started = time.time()
        self._thread = threading.Thread(target=self._run, name="cnnviz-training", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            if self._error is not None:
                status = "failed"
            elif self._result is not None:
                status = "stopped" if self._result.stopped else "done"
            else:
                status = "running"
            return JobSnapshot(status, self._latest, list(self._points), self._result, self._error,
                               self._started)

    def _on_progress(self, progress: Progress) -> None:
        with self._lock:
            self._latest = progress
            if progress.phase == "eval":
                self._points.append(progress)

    def _run(self) -> None:
        try:
            # Several sessions may train at once: each thread keeps to its share of the cores.
            result = train(self.config, progress=self._on_progress, stop=self.stop_event,
                           data_dir=self.data_dir)
            with self._lock:
                self._result = result
        except Exception as err:  # noqa: BLE001 - shown to the student instead of killing the thread
            with self._lock:
                self._error = f"{type(err).__name__}: {err}" if not isinstance(err, ValueError) else str(err)
        finally:
            if self.slots is not None:
                self.slots.release()


def measure_images_per_second(config: TrainConfig, steps: int = 3) -> float:
    """Time a few real training steps of this architecture on random data (for an honest ETA)."""
    from cnnviz.data import dataset_info
    from cnnviz.models import build_model
    from cnnviz.training import make_optimizer, resolve_device

    info = dataset_info(config.dataset)
    channels, size, _ = info.image_shape
    device = resolve_device(config.device)
    model = build_model(config.spec, channels, info.num_classes, size).to(
        device, memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model)
    batch = min(config.batch_size, 128)
    x = torch.randn(batch, channels, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, info.num_classes, (batch,), device=device)
    elapsed = 0.0
    for i in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:  # the first step warms up kernels and allocations
            elapsed += time.perf_counter() - start
    return batch * steps / elapsed
