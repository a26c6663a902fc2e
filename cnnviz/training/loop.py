"""The trainer: uint8 data held on the device, augmentation on the device, no DataLoader workers.

One code path for CPU and CUDA. On CUDA the model runs channels_last under bf16 autocast, optionally
through ``torch.compile``; on the CPU it runs float32 on every core it may use. Progress goes to a
callback (the page and the command line use the same one), and a ``threading.Event``-like flag stops
training at any step, keeping what the model has learned so far.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.datasets.files import DatasetInfo, dataset_info, load_dataset
from cnnviz.networks.build import (
    PRESETS,
    SpecNet,
    build_model,
    class_logits,
    initialize_parameters,
    set_dropout_generator,
)
from cnnviz.networks.summary import summarize_spec, training_size_problem
from cnnviz.training.tricks import (
    Lookahead,
    alternating_mirror,
    batchnorm_shift_parameters,
    dirac_init,
    freeze_batchnorm_scales,
    lookahead_decay,
)

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "step", "exp", "constant")
DEVICES = ("auto", "cpu", "cuda")
# Images per evaluation batch. On a CPU small batches stay in the caches: measured on a 2-core CPU,
# cifar10_speed scored ~2,600 images/s in batches of 100 against ~1,700 in batches of 1,000.
EVAL_BATCH_SIZE = {"cpu": 100, "cuda": 1000}
WHITENING_IMAGES = 5000  # enough patches for a stable 12x12 covariance
WHITENING_EPS = 5e-4


@dataclass
class TrainConfig:
    """Everything that decides a training run (stored in the checkpoint)."""

    dataset: str = "mnist"
    spec: str = PRESETS["mnist_fast"].spec
    epochs: int = 2
    batch_size: int = 256
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum), "adam" or "adamw"
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # SGD momentum; beta1 for Adam/AdamW
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0  # share of the target spread over the other classes
    schedule: str = "onecycle"  # "onecycle", "step" (x gamma every step_epochs), "exp" (x gamma per epoch)
    warmup_fraction: float = 0.2  # one-cycle: share of the steps spent rising to the peak
    step_epochs: int = 1  # step decay: epochs between drops
    gamma: float = 0.5  # step / per-epoch decay factor
    val_fraction: float = 0.1  # share of the training images held out for validation
    evals_per_epoch: int = 1  # validation points per epoch (more = smoother live curves)
    train_subset: int | None = None  # use only the first N training images (quick demos, tests)
    test_subset: int | None = None  # evaluate on only the first N test images
    augment: bool = True  # crop + flip for CIFAR-10, small shifts for MNIST
    shift: int | None = None  # augmentation: largest shift in pixels (None: 4 for CIFAR-10, 2 for MNIST)
    whiten: bool = False  # initialise a first 2x2 conv with 2*C*4 filters as a frozen patch-whitening layer
    mirror_tta: bool = False  # answer with the mean logits of an image and its mirror (flip-trained nets)
    shift_tta: bool = False  # and of the image moved one pixel each way (see models.class_logits)
    # Speed-run tricks (see cnnviz.training.tricks):
    whiten_bias_epochs: int | None = None  # train the whitening layer's bias this many epochs, then freeze it
    dirac: bool = False  # convolutions start as identity kernels in their first in_channels filters
    batchnorm_scale: bool = True  # False: BatchNorm scales stay at 1, only the shifts learn
    batchnorm_shift_lr: float = 1.0  # learning-rate factor for BatchNorm shifts (weight decay divided by it)
    lookahead_every: int = 0  # pull the weights back to their running average every N steps (0: off)
    lookahead_start: float = 0.3  # share of the steps before the averaging starts
    alternating_flip: bool = False  # mirror a random half of the images in even epochs, the rest in odd ones
    seed: int = 0
    device: str = "auto"  # "auto", "cpu" or "cuda"
    compile: bool = False  # torch.compile the model (CUDA only; slow to start)
    test_every_epoch: bool = False  # evaluate the test set after every epoch (benchmarks)
    target_accuracy: float | None = None  # stop once the test accuracy reaches this (needs test_every_epoch)

    def validate(self) -> None:
        """Raise ValueError with a friendly sentence for settings that cannot work."""
        dataset_info(self.dataset)
        checks = [
            (1 <= self.epochs <= 200, "epochs must be between 1 and 200"),
            (1 <= self.batch_size <= 4096, "the batch size must be between 1 and 4096"),
            (self.optimizer in OPTIMIZERS, f"the optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"the schedule must be one of {', '.join(SCHEDULES)}"),
            (self.device in DEVICES, f"the device must be one of {', '.join(DEVICES)}"),
            (0 < self.lr <= 10, "the learning rate must be above 0 and at most 10"),
            (0 <= self.weight_decay < 1, "the weight decay must be at least 0 and below 1"),
            (0 <= self.label_smoothing < 1, "label smoothing must be at least 0 and below 1"),
            (0 <= self.val_fraction < 0.9, "the validation share must be at least 0 and below 0.9"),
            (0 < self.gamma <= 1, "the decay factor gamma must be above 0 and at most 1"),
            (self.step_epochs >= 1, "step_epochs must be at least 1"),
            (1 <= self.evals_per_epoch <= 100, "evals_per_epoch must be between 1 and 100"),
            (self.train_subset is None or self.train_subset >= 10, "use at least 10 training images"),
            (self.test_subset is None or self.test_subset >= 1, "use at least 1 test image"),
            (self.shift is None or 0 <= self.shift <= 8, "the augmentation shift must be 0 to 8 pixels"),
            (self.whiten_bias_epochs is None or self.whiten_bias_epochs >= 0,
             "whiten_bias_epochs must be at least 0"),
            (0 < self.batchnorm_shift_lr <= 1000, "batchnorm_shift_lr must be above 0 and at most 1000"),
            (0 <= self.lookahead_every <= 1000, "lookahead_every must be 0 (off) to 1000 steps"),
            (0 <= self.lookahead_start < 1, "lookahead_start must be at least 0 and below 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Invalid training setting: {message}.")


def recipe(preset: str, **overrides: Any) -> TrainConfig:
    """The tuned training settings for a preset, with any field overridden."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}: choose one of {', '.join(PRESETS)}.")
    spec = PRESETS[preset]
    base = {
        "mnist_fast": dict(epochs=1, batch_size=128, optimizer="sgd", lr=0.1, weight_decay=5e-4,
                           label_smoothing=0.1),
        "cifar10_fast": dict(epochs=12, batch_size=256, optimizer="sgd", lr=0.2, weight_decay=5e-4,
                             label_smoothing=0.2, whiten=spec.spec.startswith("C24k2p0"), mirror_tta=True),
        "cifar10_speed": dict(epochs=9, batch_size=128, optimizer="sgd", lr=0.2, weight_decay=5e-4,
                              label_smoothing=0.2, shift=0, whiten=True, mirror_tta=True, shift_tta=True,
                              whiten_bias_epochs=1, dirac=True, batchnorm_scale=False, batchnorm_shift_lr=64,
                              lookahead_every=5, alternating_flip=True),
        "cifar10_gpu": dict(epochs=16, batch_size=1024, optimizer="sgd", lr=0.8, weight_decay=5e-4,
                            label_smoothing=0.2, shift=2, whiten=True, mirror_tta=True, shift_tta=True),
        "cifar10_wide": dict(epochs=16, batch_size=256, optimizer="sgd", lr=0.2, weight_decay=5e-4,
                             label_smoothing=0.2, whiten=True, mirror_tta=True),
        "vgg_classic": dict(epochs=15, batch_size=128, optimizer="adam", lr=2e-3, weight_decay=0.0,
                            label_smoothing=0.0),
    }[preset]
    config = TrainConfig(dataset=spec.dataset, spec=spec.spec, **base)
    return replace(config, **overrides)


def apply_settings(config: TrainConfig, settings: list[str]) -> TrainConfig:
    """``config`` with ``KEY=VALUE`` settings applied (the command line's ``--set``), e.g.
    ``["dirac=true", "lookahead_every=5", "whiten_bias_epochs=none"]``; a friendly ValueError for an
    unknown key or a value of the wrong kind."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    changes: dict[str, Any] = {}
    for setting in settings:
        key, sep, text = setting.partition("=")
        key, text = key.strip().replace("-", "_"), text.strip()
        if not sep or key not in fields:
            raise ValueError(f"--set {setting!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}.")
        kind = str(fields[key].type)
        try:
            if text.lower() == "none" and "None" in kind:
                value: Any = None
            elif kind.startswith("bool"):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = text.lower() in ("true", "1", "yes")
            elif kind.startswith("int"):
                value = int(text)
            elif kind.startswith("float"):
                value = float(text)
            else:
                value = text
        except ValueError:
            raise ValueError(f"--set {setting!r}: {key} takes a value of type {kind}.") from None
        changes[key] = value
    updated = replace(config, **changes)
    updated.validate()
    return updated


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


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" picks CUDA when available; asking for CUDA without one is a friendly error."""
    if name not in DEVICES:
        raise ValueError(f"Unknown device {name!r}: choose auto, cpu or cuda.")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("No CUDA GPU is available here; use --device cpu (or auto).")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """"cpu (N threads)" or the GPU's marketing name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name(torch.get_num_threads())


def cpu_name(threads: int) -> str:
    """"cpu (1 thread)", "cpu (2 threads)"."""
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def training_threads(threads: int | None = None) -> int:
    """The intra-op threads a CPU run uses: ``threads``, else $OMP_NUM_THREADS when set (on a shared
    machine one thread per job avoids threads waiting for each other), else every core this process
    may run on."""
    if threads is not None:
        return max(1, threads)
    setting = os.environ.get("OMP_NUM_THREADS", "")
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    return available_cores()


def configure_cpu_threads(threads: int | None = None) -> int:
    """Make the calling thread use :func:`training_threads` threads; returns how many.

    Set every time, never assumed: with OpenMP a thread starts with the count last set by any
    thread (the predict page sets 1 for its own work), not the process's default.
    """
    count = training_threads(threads)
    torch.set_num_threads(count)
    return count


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float ``(x / 255 - mean) / std``; mean/std shaped (1, C, 1, 1)."""
    return (images.float() / 255.0 - mean) / std


def random_crop_flip(
    images: torch.Tensor, pad: int, flip: bool, generator: torch.Generator,
    mirror: torch.Tensor | None = None,
) -> torch.Tensor:
    """Shift every image by up to ``pad`` pixels each way (zero fill), and mirror half when ``flip``
    (the images ``mirror``, a bool mask, says when given; a random half otherwise).

    Works on uint8 batches on any device with one gather, so the CPU and GPU run the same code.
    """
    n, c, h, w = images.shape
    device = images.device
    if pad > 0:
        padded = F.pad(images, (pad, pad, pad, pad))  # (N, C, H + 2p, W + 2p)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        rows = dy[:, None] + torch.arange(h, device=device)  # (N, H)
        cols = dx[:, None] + torch.arange(w, device=device)  # (N, W)
        images = padded[
            torch.arange(n, device=device)[:, None, None, None],
            torch.arange(c, device=device)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]  # (N, C, H, W)
    if flip:
        if mirror is None:
            mirror = torch.rand(n, generator=generator, device=device) < 0.5
        images = torch.where(mirror[:, None, None, None], images.flip(3), images)
    return images


def whitening_layer(model: SpecNet, whiten: bool) -> nn.Conv2d | None:
    """The model's first layer when ``whiten`` asks for a whitening layer and its shape allows one
    (see :func:`init_whitening`); else None."""
    first = model.features[0] if len(model.features) else None
    return first if whiten and isinstance(first, nn.Conv2d) and _fits_whitening(first) else None


def _fits_whitening(conv: nn.Conv2d) -> bool:
    k = conv.kernel_size[0]
    dims = conv.in_channels * k * k
    return conv.kernel_size == (k, k) and conv.out_channels == 2 * dims and conv.stride == (1, 1)


def init_whitening(conv: nn.Conv2d, images: torch.Tensor) -> bool:
    """Make ``conv`` a frozen patch-whitening layer; returns False when its shape does not allow it.

    The idea (from the airbench speed runs): the first layer's filters are the eigenvectors of the
    covariance of image patches, scaled by 1/sqrt(eigenvalue), plus their negatives so a ReLU after
    it loses nothing. The network then starts from decorrelated inputs and learns much faster.

    Args:
        conv: a Conv2d with ``out_channels == 2 * in_channels * k * k``.
        images: normalized float images (N, C, H, W).
    """
    if not _fits_whitening(conv):
        return False
    k = conv.kernel_size[0]
    dims = conv.in_channels * k * k
    with torch.no_grad():
        patches = images.unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, dims).double()  # (P, C*k*k)
        patches = patches - patches.mean(dim=0)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + WHITENING_EPS)[:, None]).float()  # (dims, dims)
        filters = filters.reshape(dims, conv.in_channels, k, k)
        conv.weight.copy_(torch.cat([filters, -filters]))
        if conv.bias is not None:
            conv.bias.zero_()
    conv.weight.requires_grad_(False)
    return True


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """The learning rate for one optimizer step under the configured schedule."""
    if config.schedule == "onecycle":
        warmup = max(1, int(config.warmup_fraction * total_steps))
        if step < warmup:
            return config.lr * (0.1 + 0.9 * step / warmup)
        return config.lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup))
    epoch = step // max(1, steps_per_epoch)
    if config.schedule == "step":
        return config.lr * config.gamma ** (epoch // config.step_epochs)
    if config.schedule == "exp":
        return config.lr * config.gamma**epoch
    return config.lr


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer over the trainable parameters. Each parameter group carries an
    ``lr_scale`` that :func:`set_learning_rate` applies (BatchNorm shifts may step faster)."""
    params = [p for p in model.parameters() if p.requires_grad]
    shifts = batchnorm_shift_parameters(model) if config.batchnorm_shift_lr != 1 else []
    shift_ids = {id(p) for p in shifts}
    groups = [{"params": [p for p in params if id(p) not in shift_ids], "lr_scale": 1.0,
               "weight_decay": config.weight_decay}]
    if shifts:
        # The same decay per step as the other weights: lr * weight_decay stays the same.
        groups.append({"params": shifts, "lr_scale": config.batchnorm_shift_lr,
                       "weight_decay": config.weight_decay / config.batchnorm_shift_lr})
    # On a GPU one fused kernel updates every parameter: small nets there are bound by kernel launches.
    fused = all(p.is_cuda for p in params) or None
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True, fused=fused)
    betas = (config.momentum, 0.999)
    adam = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return adam(groups, lr=config.lr, betas=betas, fused=fused)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr`` times its ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


@torch.inference_mode()
def predict_logits(
    model: nn.Module, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Logits (N, classes) for uint8 images, computed on the model's device in eval mode, in batches of
    ``batch_size`` (default: :data:`EVAL_BATCH_SIZE` for the device)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batch_size = batch_size or EVAL_BATCH_SIZE.get(device.type, 1000)
    mean, std = mean.to(device), std.to(device)
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = normalize(images[start:start + batch_size].to(device, non_blocking=True), mean, std)
        with _autocast(device):
            outputs.append(class_logits(model, _to_memory_format(batch, device)).float())
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0, 0)


def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo,
) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy loss, accuracy (0..1) and predicted classes on a labelled set."""
    mean, std = normalization_tensors(info, next(model.parameters()).device)
    logits = predict_logits(model, images, mean, std)
    labels = labels.to(logits.device)
    loss = F.cross_entropy(logits, labels).item()
    predictions = logits.argmax(dim=1)
    return loss, (predictions == labels).float().mean().item(), predictions.cpu()


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
    model = build_model(config.spec, channels, info.num_classes, size)
    initialize_parameters(model, weight_generator)
    # Test-time augmentation: used by every evaluation, never by a training step.
    model.mirror_average, model.shift_average = config.mirror_tta, config.shift_tta

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
        epoch_images, epoch_labels = _shuffled_epoch(
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


class TrainingObjective(nn.Module):
    """From a batch of uint8 images and their labels to the training loss and the number the model
    got right: the part of a step that ``torch.compile`` turns into one graph on a GPU, where small
    nets are bound by how many kernels a step launches."""

    def __init__(
        self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor, label_smoothing: float,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.label_smoothing = label_smoothing

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = _to_memory_format(normalize(images, self.mean, self.std), self.mean.device)
        with _autocast(self.mean.device):
            logits = self.model(inputs)
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)
        return loss, (logits.argmax(dim=1) == targets).sum()


def optimizer_step(
    objective: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, targets: torch.Tensor,
    compiled: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, loss, backward and update on one batch of uint8 images; returns the loss and the
    number of right answers (``objective`` is a :class:`TrainingObjective`, compiled or not)."""
    if compiled:
        torch.compiler.cudagraph_mark_step_begin()  # compiled: CUDA graphs may reuse the last step's memory
    loss, correct = objective(images, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, correct


def _shuffled_epoch(
    images: torch.Tensor, labels: torch.Tensor, shift: int, flip: bool, generator: torch.Generator,
    chunk: int = 10_000, mirror: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's images in a fresh random order, each shifted and mirrored at random (or mirrored
    where ``mirror``, a bool mask over ``images``, says).

    Augmenting the whole epoch at once (in chunks, to bound the gather's index memory) leaves each
    step a plain slice: a GPU training a small net is bound by how many kernels a step launches.
    """
    order = torch.randperm(len(labels), generator=generator, device=labels.device)
    if shift == 0 and not flip:
        return images[order], labels[order]
    shuffled = torch.cat([
        random_crop_flip(images[order[start:start + chunk]], shift, flip, generator,
                         None if mirror is None else mirror[order[start:start + chunk]])
        for start in range(0, len(order), chunk)
    ])
    return shuffled, labels[order]


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


def normalization_tensors(info: DatasetInfo, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset's channel means and standard deviations on ``device``, shaped (1, C, 1, 1)."""
    mean = torch.tensor(info.mean, device=device).view(1, -1, 1, 1)  # (1, C, 1, 1)
    std = torch.tensor(info.std, device=device).view(1, -1, 1, 1)
    return mean, std


def _to_memory_format(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _autocast(device: torch.device) -> torch.autocast:
    # bf16 keeps float32's range, so no loss scaling is needed; the CPU stays in float32.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
