"""How fast this machine trains a net: a few of a run's own steps timed (for commands and tests), and the
Train page's estimate, arithmetic from a net's multiply-adds and this machine's speed measured once.

A page run must never train: a net near the size gate (2 G multiply-adds per image) takes about a minute
for a few real steps. So each process times two small reference nets once, in a low-priority thread,
and fits ``seconds per image = overhead + multiply-adds x cost``: small nets are overhead-bound, big
ones arithmetic-bound, and any spec's estimate is then a multiplication.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import threading
import time
from dataclasses import dataclass, replace

import torch

from cnnviz.datasets.files import dataset_info
from cnnviz.networks.summary import summarize_spec
from cnnviz.runtime import LOW_PRIORITY_NICE, run_at_low_priority
from cnnviz.training.config import TrainConfig
from cnnviz.training.prepare import RunData, build_run, run_device, set_whitening_bias_epoch, take_step

WARM_UP_STEPS = 2  # untimed steps before an estimate's timed ones
MAX_TIMED_BATCH = 128  # images per timed step at most: the estimate stays quick for big batches
# Two reference nets, a small overhead-bound one and a wider arithmetic-bound one, both quick to time.
REFERENCE_SPECS = ("C8 M F10", "C32 C32 M C64")
REFERENCE_BATCH = 64
REFERENCE_STEPS = 3  # timed steps of each reference net, after WARM_UP_STEPS untimed ones
REFERENCE_NICE = LOW_PRIORITY_NICE  # the reference timing's thread gives way to other students' pages


def measure_images_per_second(config: TrainConfig, steps: int = 5, cpu_threads: int | None = None) -> float:
    """Time a few training steps of the run ``config`` describes, on random images (for an honest ETA).

    The run is built as :func:`~cnnviz.training.loop.train` builds it (speed-run tricks, channels-last,
    the optimizer's parameter groups, the whitening layer frozen as in most epochs), without loading the
    dataset. On the CPU the steps run on ``cpu_threads`` threads (None: as ``train`` would pick), and the
    calling thread gets its own setting back: a page's script thread may run on one.
    """
    previous = torch.get_num_threads()
    try:
        return _time_training_steps(config, run_device(config, cpu_threads), steps)
    finally:
        torch.set_num_threads(previous)


def _time_training_steps(config: TrainConfig, device: torch.device, steps: int) -> float:
    info = dataset_info(config.dataset)
    batch = min(config.batch_size, MAX_TIMED_BATCH)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    images = torch.randint(0, 256, (batch, *info.image_shape), dtype=torch.uint8, device=device,
                           generator=generator)
    labels = torch.randint(0, info.num_classes, (batch,), device=device, generator=generator)
    # The whitening statistics come from the random images: only the time of a step matters here.
    run = build_run(replace(config, batch_size=batch), info, device,
                    RunData(images, labels, images[:0], labels[:0]))
    if config.whiten_bias_epochs is not None:
        set_whitening_bias_epoch(run, config.whiten_bias_epochs)  # frozen, as after its first epochs
    durations = []
    for i in range(steps + WARM_UP_STEPS):
        start = time.perf_counter()
        take_step(run, images, labels)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= WARM_UP_STEPS:  # the first steps set up kernels, allocations and the thread pool
            durations.append(time.perf_counter() - start)
    # The median step: one step slowed by another process on a shared machine does not skew it.
    return batch / statistics.median(durations)


@dataclass(frozen=True)
class MachineSpeed:
    """This machine's training speed: ``seconds per image = overhead + multiply-adds x cost``."""

    overhead: float  # seconds per image that do not grow with the net (data, optimizer, framework)
    cost: float  # seconds per multiply-add per image (forward, backward and update together)

    def images_per_second(self, mult_adds: int) -> float:
        """The predicted training speed of a net of ``mult_adds`` multiply-adds per image."""
        return 1.0 / (self.overhead + mult_adds * self.cost)


def fit_speed(points: list[tuple[int, float]]) -> MachineSpeed:
    """The line through two (multiply-adds, seconds per image) points, kept physical: a cost above
    zero (a timing blip could make the bigger net look faster) and an overhead at or above zero."""
    (small_adds, small_time), (big_adds, big_time) = sorted(points)
    assert big_adds > small_adds, "the reference nets must differ in size"
    cost = max((big_time - small_time) / (big_adds - small_adds), big_time / big_adds / 4)
    return MachineSpeed(overhead=max(0.0, small_time - small_adds * cost), cost=cost)


_REFERENCE_LOCK = threading.Lock()  # pages opened at once wait for one timing, not time side by side


def machine_speed(dataset: str, device: str, cpu_threads: int) -> MachineSpeed:
    """This machine's :class:`MachineSpeed` for ``dataset``'s images, timed once per process (a few
    steps of the :data:`REFERENCE_SPECS`, in a thread of low priority that ends with the timing)."""
    with _REFERENCE_LOCK:
        return _timed_machine_speed(dataset, device, cpu_threads)


@functools.lru_cache(maxsize=16)
def _timed_machine_speed(dataset: str, device: str, cpu_threads: int) -> MachineSpeed:
    info = dataset_info(dataset)

    def time_references() -> list[tuple[int, float]]:
        results = []
        for spec in REFERENCE_SPECS:
            adds = summarize_spec(spec, info.image_shape, info.num_classes).total_mult_adds
            config = TrainConfig(dataset=dataset, spec=spec, batch_size=REFERENCE_BATCH, device=device)
            speed = measure_images_per_second(config, steps=REFERENCE_STEPS, cpu_threads=cpu_threads)
            results.append((adds, 1.0 / speed))
        return results

    return fit_speed(run_at_low_priority(time_references, nice=REFERENCE_NICE))


_BACKGROUND: dict[tuple[str, str, int], threading.Thread] = {}
_BACKGROUND_LOCK = threading.Lock()


def speed_if_measured(dataset: str, device: str, cpu_threads: int) -> MachineSpeed | None:
    """This machine's :class:`MachineSpeed` if already timed, else None at once, with the timing started
    in the background (a page never waits for it: the first one of a process takes a second or two)."""
    key = (dataset, device, cpu_threads)
    with _BACKGROUND_LOCK:
        worker = _BACKGROUND.get(key)
        if worker is None:
            worker = threading.Thread(target=_measure_quietly, args=key, name="cnnviz-speed-background",
                                      daemon=True)
            _BACKGROUND[key] = worker
            worker.start()
    if worker.is_alive():
        return None
    try:
        return machine_speed(*key)  # cached by now; a failed timing is retried here, in the open
    except Exception:
        with _BACKGROUND_LOCK:
            _BACKGROUND.pop(key, None)  # the next page run starts it again
        raise


def _measure_quietly(dataset: str, device: str, cpu_threads: int) -> None:
    # A failure is raised again by speed_if_measured, in the page's thread, where it can be shown.
    with contextlib.suppress(Exception):
        machine_speed(dataset, device, cpu_threads)


def estimated_images_per_second(config: TrainConfig, mult_adds: int, cpu_threads: int) -> float:
    """The Train page's estimate of a run's speed: no training step of its own net, only arithmetic
    from ``mult_adds`` (per image) and :func:`machine_speed` (timed once per process)."""
    return machine_speed(config.dataset, config.device, cpu_threads).images_per_second(mult_adds)



# Scoring an image (a forward pass in eval mode) is quicker than training on it (forward, backward
# and update). Measured on a 2-core CPU (shared), images scored per second over images trained per
# second, one view each: mnist_fast 1,619 / 714 = 2.3, cifar10_fast 349 / 46 = 7.6, cifar10_speed
# 123 / 81 = 1.5. The smallest of them: a guess that errs long. A run replaces it with its own measured
# speed at its first validation check.
SCORING_SPEEDUP = 1.5


def answer_views(config: TrainConfig) -> int:
    """How many views of each image the run's answers average over (its test-time augmentation)."""
    return (2 if config.mirror_tta else 1) * (3 if config.shift_tta else 1)


def scoring_seconds(
    images: int, eval_images_per_second: float | None, train_images_per_second: float, views: int = 1,
) -> float:
    """Seconds to score ``images`` test images: at ``eval_images_per_second`` when a run measured it (its
    validation checks score the same way), else guessed from its training speed (one view scored
    :data:`SCORING_SPEEDUP` times faster than trained, ``views`` views an image); 0 before either."""
    if eval_images_per_second:
        return images / eval_images_per_second
    if train_images_per_second <= 0:
        return 0.0
    return images * views / (train_images_per_second * SCORING_SPEEDUP)
