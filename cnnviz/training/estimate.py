"""How fast this machine trains a net: a few of a run's own steps timed, for the Train page's estimate."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch

from cnnviz.datasets.files import dataset_info
from cnnviz.training.config import TrainConfig
from cnnviz.training.prepare import RunData, build_run, run_device, set_whitening_bias_epoch, take_step

WARM_UP_STEPS = 2  # untimed steps before an estimate's timed ones
MAX_TIMED_BATCH = 128  # images per timed step at most: the estimate stays quick for big batches


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


def timing_config(config: TrainConfig) -> TrainConfig:
    """``config`` with only the settings that change what a step computes, the others at their defaults:
    two runs that differ in the rest (the seed, the learning rate, ...) take the same time per step."""
    return TrainConfig(
        dataset=config.dataset, spec=config.spec, batch_size=config.batch_size, optimizer=config.optimizer,
        whiten=config.whiten, whiten_bias_epochs=config.whiten_bias_epochs, dirac=config.dirac,
        batchnorm_scale=config.batchnorm_scale, batchnorm_shift_lr=config.batchnorm_shift_lr,
        device=config.device, compile=config.compile,
    )


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
