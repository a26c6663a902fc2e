"""Everything a run sets up before its first step: device, generators, data, model, tricks, optimizer.

:func:`prepare_run` is what :func:`~cnnviz.training.loop.train` starts with; the Train page's time
estimate builds the same run from :func:`build_run` on random images, so it times the steps a run takes.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from cnnviz.datasets.files import DatasetInfo, dataset_info, load_dataset
from cnnviz.networks.build import SpecNet, build_model, initialize_parameters, set_dropout_generator
from cnnviz.networks.summary import summarize_spec, training_size_problem
from cnnviz.runtime import configure_cpu_threads, resolve_device
from cnnviz.training.config import TrainConfig
from cnnviz.training.step import (
    TrainingObjective,
    make_optimizer,
    normalization_tensors,
    normalize,
    optimizer_step,
)
from cnnviz.training.tricks import dirac_init, freeze_batchnorm_scales
from cnnviz.training.whitening import WHITENING_IMAGES, init_whitening, whitening_layer


@dataclass(frozen=True)
class RunData:
    """A run's training and validation images (uint8, the training ones on the run's device)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor


@dataclass(frozen=True)
class Schedule:
    """How a run's steps fall into epochs, and how its batches are augmented."""

    batch_size: int
    steps_per_epoch: int  # the last partial batch is dropped (BatchNorm)
    total_steps: int
    eval_steps: frozenset[int]  # the steps of an epoch (counted from 1) after which the run validates
    lookahead_from: int  # the first step at which the lookahead may start
    shift: int  # largest augmentation shift in pixels (0: none)
    flip: bool  # mirror at random (or alternately, see PreparedRun.first_mirror)

    @classmethod
    def of(cls, config: TrainConfig, info: DatasetInfo, images: int) -> Schedule:
        """The schedule of ``config`` over ``images`` training images."""
        batch_size = min(config.batch_size, images)
        steps_per_epoch = images // batch_size
        total_steps = steps_per_epoch * config.epochs
        checks = config.evals_per_epoch
        shift = config.shift if config.shift is not None else 4 if info.name == "cifar10" else 2
        return cls(
            batch_size=batch_size, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
            eval_steps=frozenset(round(steps_per_epoch * (i + 1) / checks) for i in range(checks)),
            lookahead_from=int(config.lookahead_start * total_steps),
            shift=shift if config.augment else 0, flip=info.name == "cifar10" and config.augment,
        )


@dataclass
class PreparedRun:
    """A run ready for its first step. ``step_objective`` is the compiled objective, or the eager one
    once compiling has failed (see :func:`take_step`)."""

    config: TrainConfig
    info: DatasetInfo
    device: torch.device
    generator: torch.Generator  # data order and augmentation, on the run's device
    model: SpecNet
    whitening: nn.Conv2d | None  # the frozen patch-whitening first layer, when the config asks for one
    objective: TrainingObjective
    step_objective: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    data: RunData
    first_mirror: torch.Tensor | None  # alternating flips: the images mirrored in even epochs
    data_dir: str | os.PathLike | None = None


def prepare_run(
    config: TrainConfig, data_dir: str | os.PathLike | None = None, cpu_threads: int | None = None,
) -> PreparedRun:
    """Check ``config``, load its data and build the run: model initialised, tricks applied, optimizer.

    Raises:
        ValueError: for settings that cannot work, or a net too big to train here.
    """
    config.validate()
    info = dataset_info(config.dataset)
    too_big = training_size_problem(summarize_spec(config.spec, info.image_shape, info.num_classes))
    if too_big:
        raise ValueError(too_big)
    device = run_device(config, cpu_threads)
    data = load_run_data(config, info, device, data_dir)
    return build_run(config, info, device, data, data_dir)


def run_device(config: TrainConfig, cpu_threads: int | None = None) -> torch.device:
    """The device of a run, set up for it: ``cpu_threads`` threads on the CPU (None: every core), the
    fastest cuDNN kernels on a GPU."""
    device = resolve_device(config.device)
    if device.type == "cpu":
        configure_cpu_threads(cpu_threads)
    else:
        torch.backends.cudnn.benchmark = True  # every batch has the same shape: pick the fastest kernels once
    return device


def build_run(
    config: TrainConfig, info: DatasetInfo, device: torch.device, data: RunData,
    data_dir: str | os.PathLike | None = None,
) -> PreparedRun:
    """The model, objective, optimizer and schedule of a run on ``data``; the whitening layer takes its
    statistics from the first training images."""
    # Every random draw comes from generators of this run, never the global ones that other threads
    # (another student's training, the page) share: a seed gives the same run whatever else is going on.
    generator = torch.Generator(device=device).manual_seed(config.seed)  # data order and augmentation
    weight_generator = torch.Generator().manual_seed(config.seed)  # initial weights, then dropout on the CPU
    channels, size, _ = info.image_shape
    # Test-time augmentation: used by every evaluation, never by a training step.
    model = build_model(config.spec, channels, info.num_classes, size, tta=config.test_time_augmentation())
    initialize_parameters(model, weight_generator)
    mean, std = normalization_tensors(info, device)
    # channels_last suits cuDNN's tensor-core kernels and, measured here, oneDNN on the CPU too.
    model = model.to(device, memory_format=torch.channels_last)
    whitening = whitening_layer(model, config.whiten)
    if whitening is not None:
        init_whitening(whitening, normalize(data.train_images[:WHITENING_IMAGES], mean, std))
    if not config.batchnorm_scale:
        freeze_batchnorm_scales(model)
    if config.dirac:
        dirac_init(model)
    _seed_dropout(config, model, device, weight_generator)
    objective = TrainingObjective(model, mean, std, config.label_smoothing)
    step_objective: nn.Module = objective
    if config.compile and device.type == "cuda":
        # CUDA graphs replay each step's kernels in one launch; measured on an H100 this beat the default
        # mode by 20-40% for these nets (MNIST 1.2 vs 1.9 s, cifar10_gpu 3.5 vs 4.6 s).
        step_objective = torch.compile(objective, mode="reduce-overhead")
    optimizer = make_optimizer(config, model)
    schedule = Schedule.of(config, info, len(data.train_labels))
    first_mirror = None
    if config.alternating_flip:
        first_mirror = torch.rand(len(data.train_labels), generator=generator, device=device) < 0.5
    return PreparedRun(config=config, info=info, device=device, generator=generator, model=model,
                       whitening=whitening, objective=objective, step_objective=step_objective,
                       optimizer=optimizer, schedule=schedule, data=data, first_mirror=first_mirror,
                       data_dir=data_dir)


def _seed_dropout(
    config: TrainConfig, model: SpecNet, device: torch.device, weight_generator: torch.Generator,
) -> None:
    if device.type == "cpu":
        set_dropout_generator(model, weight_generator)
    elif not config.compile:
        # seed + 1: a stream apart from the augmentation's, which is on the same device
        set_dropout_generator(model, torch.Generator(device=device).manual_seed(config.seed + 1))
    else:
        torch.cuda.manual_seed(config.seed)  # a generator argument would split the compiled graph in two


def set_whitening_bias_epoch(run: PreparedRun, epoch: int) -> None:
    """Let the whitening layer's bias learn in the epochs the config gives it, frozen after them."""
    bias = None if run.whitening is None else run.whitening.bias
    if bias is not None and run.config.whiten_bias_epochs is not None:
        # Once frozen, nothing before the second layer needs a gradient: measured on a 2-core CPU,
        # cifar10_speed's steps then run 20% faster.
        bias.requires_grad_(epoch < run.config.whiten_bias_epochs)


def take_step(
    run: PreparedRun, images: torch.Tensor, targets: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch; the loss and the number right. When the compiled objective fails,
    the run goes on with the eager one from the same weights (a warning says so)."""
    compiled = run.step_objective is not run.objective
    try:
        return optimizer_step(run.step_objective, run.optimizer, images, targets, compiled=compiled)
    except RuntimeError as err:
        if not compiled:
            raise
        # Seen with torch 2.11 on an H100: CUDA-graph recording failed at batch size 256
        # ("CUDA driver error: invalid argument"). The eager model trains on from the same weights.
        warnings.warn(f"torch.compile failed, training on without it: {err}", stacklevel=2)
        run.step_objective = run.objective
        return optimizer_step(run.objective, run.optimizer, images, targets)


def load_run_data(
    config: TrainConfig, info: DatasetInfo, device: torch.device, data_dir: str | os.PathLike | None,
) -> RunData:
    """Training and validation images: a seeded shuffle, then the last ``val_fraction`` held out."""
    full = load_dataset(info.name, "train", data_dir)  # downloads when missing and online
    images, labels = full.images, full.labels
    if config.train_subset is not None:
        images, labels = images[:config.train_subset], labels[:config.train_subset]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(config.seed))
    images, labels = images[order], labels[order]
    cut = len(labels) - int(round(config.val_fraction * len(labels)))
    return RunData(images[:cut].to(device), labels[:cut].to(device), images[cut:], labels[cut:])


def load_test_split(
    config: TrainConfig, info: DatasetInfo, data_dir: str | os.PathLike | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images a run is scored on (the first ``test_subset`` when set)."""
    test = load_dataset(info.name, "test", data_dir)
    if config.test_subset is None:
        return test.images, test.labels
    return test.images[:config.test_subset], test.labels[:config.test_subset]
