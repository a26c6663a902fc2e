"""How fast this machine trains a net: a few real steps timed, for the Train page's estimate."""

from __future__ import annotations

import statistics
import time

import torch

from cnnviz.datasets.files import dataset_info
from cnnviz.networks.build import build_model
from cnnviz.runtime import configure_cpu_threads, resolve_device
from cnnviz.training.config import TrainConfig
from cnnviz.training.step import TrainingObjective, make_optimizer, normalization_tensors, optimizer_step
from cnnviz.training.whitening import whitening_layer

WARM_UP_STEPS = 2  # untimed steps before an estimate's timed ones


def measure_images_per_second(config: TrainConfig, steps: int = 5, cpu_threads: int | None = None) -> float:
    """Time a few real training steps of this architecture on random data (for an honest ETA).

    On the CPU the steps run on ``cpu_threads`` threads (None: as :func:`~cnnviz.training.loop.train`
    would pick),
    and the calling thread gets its own setting back: a page's script thread may run on one.
    """
    device = resolve_device(config.device)
    if device.type != "cpu":
        return _time_training_steps(config, device, steps)
    previous = torch.get_num_threads()
    configure_cpu_threads(cpu_threads)
    try:
        return _time_training_steps(config, device, steps)
    finally:
        torch.set_num_threads(previous)


def _time_training_steps(config: TrainConfig, device: torch.device, steps: int) -> float:

    info = dataset_info(config.dataset)
    channels, size, _ = info.image_shape
    model = build_model(config.spec, channels, info.num_classes, size).to(
        device, memory_format=torch.channels_last)
    whitening = whitening_layer(model, config.whiten)
    if whitening is not None:
        # As in training: the whitening filters are frozen, and so is their bias for most epochs when
        # the recipe freezes it, which spares the second layer its input gradient.
        whitening.weight.requires_grad_(False)
        if whitening.bias is not None and config.whiten_bias_epochs is not None:
            whitening.bias.requires_grad_(False)
    optimizer = make_optimizer(config, model)
    batch = min(config.batch_size, 128)
    mean, std = normalization_tensors(info, device)
    objective = TrainingObjective(model, mean, std, config.label_smoothing)
    x = torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8, device=device)
    y = torch.randint(0, info.num_classes, (batch,), device=device)
    durations = []
    for i in range(steps + WARM_UP_STEPS):
        start = time.perf_counter()
        optimizer_step(objective, optimizer, x, y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= WARM_UP_STEPS:  # the first steps set up kernels, allocations and the thread pool
            durations.append(time.perf_counter() - start)
    # The median step: one step slowed by another process on a shared machine does not skew it.
    return batch / statistics.median(durations)
