"""The trainer: uint8 data held on the device, augmentation on the device, no DataLoader workers.

One code path for CPU and CUDA. On CUDA the model runs channels_last under bf16 autocast, optionally
through ``torch.compile``; on the CPU it runs float32 on every core it may use. Progress goes to a
callback (the page and the command line use the same one), and a ``threading.Event``-like flag stops
training at any step, keeping what the model has learned so far.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import torch
from torch import nn

from cnnviz.datasets.files import DatasetInfo, dataset_info, load_dataset
from cnnviz.networks.build import SpecNet, build_model, initialize_parameters, set_dropout_generator
from cnnviz.networks.summary import summarize_spec, training_size_problem
from cnnviz.runtime import configure_cpu_threads, device_name, resolve_device
from cnnviz.training.augment import shuffled_epoch
from cnnviz.training.config import TrainConfig
from cnnviz.training.evaluate import evaluate
from cnnviz.training.step import (
    TrainingObjective,
    learning_rate,
    make_optimizer,
    normalization_tensors,
    normalize,
    optimizer_step,
    set_learning_rate,
)
from cnnviz.training.tricks import (
    Lookahead,
    alternating_mirror,
    dirac_init,
    freeze_batchnorm_scales,
    lookahead_decay,
)
from cnnviz.training.whitening import WHITENING_IMAGES, init_whitening, whitening_layer


@dataclass
class Progress:
    """One report from the trainer to its callback."""

    phase: str  # "train" (during an epoch), "eval" (a validation point) or "done"
    step: int  # optimizer steps done
    total_steps: int
    epoch: float  # epochs done, fractional
    epochs: int
    loss: float  # mean training loss since the last validation point
    accuracy: float  # training accuracy since the last validation point
    lr: float
    images_per_second: float
    elapsed: float  # seconds since training started (data loading included)
    val_loss: float | None = None
    val_accuracy: float | None = None


ProgressCallback = Callable[[Progress], None]


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class TrainResult:
    """What a run produced; the model is on the CPU in eval mode."""

    model: SpecNet
    config: TrainConfig
    info: DatasetInfo
    history: list[dict[str, float]]  # one entry per validation point
    test_accuracy: float | None
    test_predictions: torch.Tensor | None  # (N,) int64 predicted classes on the test images used
    test_labels: torch.Tensor | None
    stopped: bool  # True when the stop flag ended training early
    seconds: float  # wall time, data loading included
    steps: int
    device: str  # "cpu" or the GPU's name

    def metadata(self, name: str | None = None) -> dict[str, Any]:
        """The checkpoint metadata of this run."""
        info = self.info
        return {
            "name": name, "dataset": info.name, "spec": self.model.spec, "classes": list(info.classes),
            "mean": list(info.mean), "std": list(info.std), "input_shape": list(info.image_shape),
            "training": asdict(self.config), "history": self.history,
            "test_accuracy": self.test_accuracy,
            "test_images": None if self.test_labels is None else len(self.test_labels),
            "stopped_early": self.stopped, "steps": self.steps, "seconds": round(self.seconds, 2),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "device": self.device, "torch_version": str(torch.__version__),
        }


def train(
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    stop: StopFlag | None = None,
    data_dir: str | os.PathLike | None = None,
    report_interval: float = 0.25,
    cpu_threads: int | None = None,
) -> TrainResult:
    """Train a model as ``config`` says; returns it (CPU, eval mode) with its history and test accuracy.

    Args:
        progress: called with a :class:`Progress` about every ``report_interval`` seconds, at every
            validation point and once at the end.
        stop: anything with ``is_set()`` (e.g. ``threading.Event``); when set, training ends after the
            current step and the model keeps what it learned.
        data_dir: where the datasets are (see :func:`cnnviz.datasets.files.resolve_data_dir`).
        cpu_threads: intra-op threads on the CPU (None: every core; see :func:`configure_cpu_threads`).
    """
    config.validate()
    started = time.perf_counter()
    stop = stop or threading.Event()
    device = resolve_device(config.device)
    if device.type == "cpu":
        configure_cpu_threads(cpu_threads)
    else:
        torch.backends.cudnn.benchmark = True  # every batch has the same shape: pick the fastest kernels once
    # Every random draw comes from generators of this run, never the global ones that other threads
    # (another student's training, the page) share: a seed gives the same run whatever else is going on.
    generator = torch.Generator(device=device).manual_seed(config.seed)  # data order and augmentation
    weight_generator = torch.Generator().manual_seed(config.seed)  # initial weights, then dropout on the CPU
    info = dataset_info(config.dataset)
    channels, size, _ = info.image_shape
    too_big = training_size_problem(summarize_spec(config.spec, info.image_shape, info.num_classes))
    if too_big:
        raise ValueError(too_big)
    # Test-time augmentation: used by every evaluation, never by a training step.
    model = build_model(config.spec, channels, info.num_classes, size, tta=config.test_time_augmentation())
    initialize_parameters(model, weight_generator)

    train_images, train_labels, val_images, val_labels = _split_train(config, info, data_dir)
    train_images, train_labels = train_images.to(device), train_labels.to(device)
    mean, std = normalization_tensors(info, device)
    # channels_last suits cuDNN's tensor-core kernels and, measured here, oneDNN on the CPU too.
    model = model.to(device, memory_format=torch.channels_last)
    whitening = whitening_layer(model, config.whiten)
    if whitening is not None:
        init_whitening(whitening, normalize(train_images[:WHITENING_IMAGES], mean, std))
    if not config.batchnorm_scale:
        freeze_batchnorm_scales(model)
    if config.dirac:
        dirac_init(model)
    if device.type == "cpu":
        set_dropout_generator(model, weight_generator)
    elif not config.compile:
        # seed + 1: a stream apart from the augmentation's, which is on the same device
        set_dropout_generator(model, torch.Generator(device=device).manual_seed(config.seed + 1))
    else:
        torch.cuda.manual_seed(config.seed)  # a generator argument would split the compiled graph in two
    objective = TrainingObjective(model, mean, std, config.label_smoothing)
    step_objective: nn.Module = objective
    if config.compile and device.type == "cuda":
        # CUDA graphs replay each step's kernels in one launch; measured on an H100 this beat the default
        # mode by 20-40% for these nets (MNIST 1.2 vs 1.9 s, cifar10_gpu 3.5 vs 4.6 s).
        step_objective = torch.compile(objective, mode="reduce-overhead")

    optimizer = make_optimizer(config, model)
    batch_size = min(config.batch_size, len(train_labels))
    steps_per_epoch = len(train_labels) // batch_size  # the last partial batch is dropped (BatchNorm)
    total_steps = steps_per_epoch * config.epochs
    eval_steps = {
        round(steps_per_epoch * (i + 1) / config.evals_per_epoch) for i in range(config.evals_per_epoch)
    }
    shift = config.shift if config.shift is not None else 4 if info.name == "cifar10" else 2
    flip = info.name == "cifar10"
    first_mirror = None  # alternating flips: the images mirrored in even epochs
    if config.alternating_flip:
        first_mirror = torch.rand(len(train_labels), generator=generator, device=device) < 0.5
    lookahead: Lookahead | None = None
    lookahead_from = int(config.lookahead_start * total_steps)

    history: list[dict[str, float]] = []
    step, stopped = 0, False
    scored: tuple[int, float, torch.Tensor] | None = None  # (step, test accuracy, predictions)
    window_loss = torch.zeros((), device=device)
    window_correct = torch.zeros((), device=device)
    window_images = 0
    last_report = time.perf_counter()
    rate_clock, rate_images = time.perf_counter(), 0
    images_per_second = 0.0
    lr = learning_rate(config, 0, steps_per_epoch, total_steps)

    def report(phase: str, val_loss: float | None = None, val_accuracy: float | None = None) -> Progress:
        seen = max(1, window_images)
        return Progress(
            phase=phase, step=step, total_steps=total_steps, epoch=step / max(1, steps_per_epoch),
            epochs=config.epochs, loss=window_loss.item() / seen, accuracy=window_correct.item() / seen,
            lr=lr, images_per_second=images_per_second, elapsed=time.perf_counter() - started,
            val_loss=val_loss, val_accuracy=val_accuracy,
        )

    model.train()
    for epoch in range(config.epochs):
        if whitening is not None and whitening.bias is not None and config.whiten_bias_epochs is not None:
            # Once frozen, nothing before the second layer needs a gradient: measured on a 2-core CPU,
            # cifar10_speed's steps then run 20% faster.
            whitening.bias.requires_grad_(epoch < config.whiten_bias_epochs)
        mirror = None if first_mirror is None else alternating_mirror(first_mirror, epoch)
        epoch_images, epoch_labels = shuffled_epoch(
            train_images, train_labels, shift if config.augment else 0, flip and config.augment, generator,
            mirror=mirror,
        )
        for batch_index in range(steps_per_epoch):
            if stop.is_set():
                stopped = True
                break
            lr = learning_rate(config, step, steps_per_epoch, total_steps)
            set_learning_rate(optimizer, lr)
            window = slice(batch_index * batch_size, (batch_index + 1) * batch_size)
            images, targets = epoch_images[window], epoch_labels[window]
            try:
                loss, correct = optimizer_step(step_objective, optimizer, images, targets,
                                               compiled=step_objective is not objective)
            except RuntimeError as err:
                if step_objective is objective:
                    raise
                # Seen with torch 2.11 on an H100: CUDA-graph recording failed at batch size 256
                # ("CUDA driver error: invalid argument"). The eager model trains on from the same weights.
                warnings.warn(f"torch.compile failed, training on without it: {err}", stacklevel=2)
                step_objective = objective
                loss, correct = optimizer_step(objective, optimizer, images, targets)
            step += 1
            if config.lookahead_every and step >= lookahead_from and step % config.lookahead_every == 0:
                if lookahead is None:
                    lookahead = Lookahead(model)
                else:
                    lookahead.update(lookahead_decay(step, total_steps, config.lookahead_every))
            window_loss += loss.detach() * len(targets)
            window_correct += correct
            window_images += len(targets)
            rate_images += len(targets)

            now = time.perf_counter()
            if now - rate_clock >= 1.0 or (batch_index + 1) in eval_steps:
                images_per_second = rate_images / (now - rate_clock)
                rate_clock, rate_images = now, 0
            if (batch_index + 1) in eval_steps:
                history.append(_validation_point(report, model, val_images, val_labels, info, progress))
                window_loss.zero_()
                window_correct.zero_()
                window_images = 0
                model.train()
                rate_clock, rate_images = time.perf_counter(), 0  # the speed counts training, not checks
            elif progress is not None and now - last_report >= report_interval:
                progress(report("train"))
                last_report = now
        if lookahead is not None:
            lookahead.update(1.0)  # end each epoch on the averaged weights
        if stopped:
            break
        if config.test_every_epoch:
            test_images, test_labels = _test_split(config, info, data_dir)
            _, test_accuracy, predictions = evaluate(model, test_images, test_labels, info)
            scored = (step, test_accuracy, predictions)
            history[-1]["test_accuracy"] = test_accuracy
            model.train()
            if config.target_accuracy is not None and test_accuracy >= config.target_accuracy:
                break
    if stopped and window_images:  # keep the partial window so the curves end where training stopped
        history.append(_validation_point(report, model, val_images, val_labels, info, progress))

    model.eval()
    set_dropout_generator(model, None)  # the trained model holds no state of this run
    test_accuracy = predictions = test_labels = None
    if step > 0:
        test_images, test_labels = _test_split(config, info, data_dir)
        if scored is not None and scored[0] == step:  # scored after the last epoch: the same weights
            _, test_accuracy, predictions = scored
        else:
            _, test_accuracy, predictions = evaluate(model, test_images, test_labels, info)
    result = TrainResult(
        model=model.to("cpu").eval(), config=config, info=info, history=history,
        test_accuracy=test_accuracy, test_predictions=predictions, test_labels=test_labels,
        stopped=stopped, seconds=time.perf_counter() - started, steps=step, device=device_name(device),
    )
    if progress is not None:
        last = history[-1] if history else {}
        progress(replace(
            report("done"), elapsed=result.seconds, loss=last.get("train_loss", 0.0),
            accuracy=last.get("train_accuracy", 0.0), val_loss=last.get("val_loss"),
            val_accuracy=last.get("val_accuracy"),
        ))
    return result


def _validation_point(
    report: Callable[..., Progress], model: nn.Module, val_images: torch.Tensor, val_labels: torch.Tensor,
    info: DatasetInfo, progress: ProgressCallback | None,
) -> dict[str, float]:
    val_loss = val_accuracy = None
    if len(val_labels):
        val_loss, val_accuracy, _ = evaluate(model, val_images, val_labels, info)
    point = report("eval", val_loss, val_accuracy)
    if progress is not None:
        progress(point)
    record = {"step": point.step, "epoch": round(point.epoch, 4), "train_loss": point.loss,
              "train_accuracy": point.accuracy, "lr": point.lr, "elapsed": round(point.elapsed, 3)}
    if val_loss is not None:
        record.update(val_loss=val_loss, val_accuracy=val_accuracy)
    return record


def _split_train(
    config: TrainConfig, info: DatasetInfo, data_dir: str | os.PathLike | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training and validation images: a seeded shuffle, then the last ``val_fraction`` held out."""
    full = load_dataset(info.name, "train", data_dir)  # downloads when missing and online
    images, labels = full.images, full.labels
    if config.train_subset is not None:
        images, labels = images[:config.train_subset], labels[:config.train_subset]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(config.seed))
    images, labels = images[order], labels[order]
    held_out = int(round(config.val_fraction * len(labels)))
    cut = len(labels) - held_out
    return images[:cut], labels[:cut], images[cut:], labels[cut:]


def _test_split(
    config: TrainConfig, info: DatasetInfo, data_dir: str | os.PathLike | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    test = load_dataset(info.name, "test", data_dir)
    if config.test_subset is None:
        return test.images, test.labels
    return test.images[:config.test_subset], test.labels[:config.test_subset]
