"""The settings of a training run, checked, and changed from the command line."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, replace
from typing import Any

from cnnviz.datasets.files import dataset_info
from cnnviz.networks.tta import TestTimeAugmentation
from cnnviz.runtime import DEVICES
from cnnviz.training.presets import NET_PRESETS

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "step", "exp", "constant")
MAX_LR = 10.0  # the highest peak learning rate a run accepts (any rate above 0 up to it), and the page's
LR_INPUT_MIN = 1e-5  # the smallest rate the Train page's input offers (the command line takes any above 0)
DEFAULT_GAMMA = 0.5  # step / per-epoch decay factor unless one is chosen: step decay halves the rate


@dataclass
class TrainConfig:
    """Everything that decides a training run (stored in the checkpoint)."""

    dataset: str = "mnist"
    spec: str = NET_PRESETS["mnist_fast"].spec
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
    gamma: float = DEFAULT_GAMMA  # step / per-epoch decay factor
    val_fraction: float = 0.1  # share of the training images held out for validation
    evals_per_epoch: int = 1  # validation points per epoch (more = smoother live curves)
    train_subset: int | None = None  # use only the first N training images (quick demos, tests)
    test_subset: int | None = None  # evaluate on only the first N test images
    augment: bool = True  # crop + flip for CIFAR-10, small shifts for MNIST
    shift: int | None = None  # augmentation: largest shift in pixels (None: 4 for CIFAR-10, 2 for MNIST)
    whiten: bool = False  # initialise a first 2x2 conv with 2*C*4 filters as a frozen patch-whitening layer
    mirror_tta: bool = False  # answer with the mean logits of an image and its mirror (flip-trained nets)
    shift_tta: bool = False  # and of the image moved one pixel each way (see cnnviz.networks.tta)
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

    def test_time_augmentation(self) -> TestTimeAugmentation:
        """The views the trained model answers from (its constructor argument)."""
        return TestTimeAugmentation(mirror=self.mirror_tta, shift=self.shift_tta)

    def validate(self) -> None:
        """Raise ValueError with a friendly sentence for settings that cannot work."""
        dataset_info(self.dataset)
        checks = [
            (1 <= self.epochs <= 200, "epochs must be between 1 and 200"),
            (1 <= self.batch_size <= 4096, "the batch size must be between 1 and 4096"),
            (self.optimizer in OPTIMIZERS, f"the optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"the schedule must be one of {', '.join(SCHEDULES)}"),
            (self.device in DEVICES, f"the device must be one of {', '.join(DEVICES)}"),
            (0 < self.lr <= MAX_LR, f"the learning rate must be above 0 and at most {MAX_LR:g}"),
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


def apply_settings(config: TrainConfig, settings: list[str]) -> TrainConfig:
    """``config`` with ``KEY=VALUE`` settings applied (the command line's ``--set``), e.g.
    ``["dirac=true", "lookahead_every=5", "whiten_bias_epochs=none"]``; a friendly ValueError for an
    unknown key or a value of the wrong kind."""
    hints = typing.get_type_hints(TrainConfig)
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    changes: dict[str, Any] = {}
    for setting in settings:
        key, sep, text = setting.partition("=")
        key, text = key.strip().replace("-", "_"), text.strip()
        if not sep or key not in names:
            raise ValueError(f"--set {setting!r}: expected KEY=VALUE with KEY one of {', '.join(names)}.")
        try:
            changes[key] = _parse_setting(text, hints[key])
        except ValueError:
            kind = hints[key].__name__ if isinstance(hints[key], type) else str(hints[key])
            raise ValueError(f"--set {setting!r}: {key} takes a value of type {kind}.") from None
    updated = replace(config, **changes)
    updated.validate()
    return updated


def _parse_setting(text: str, hint: Any) -> Any:
    """``text`` as a value of the field type ``hint`` (``bool``, ``int``, ``float``, ``str``, or one of
    them ``| None``); ValueError when it is not one."""
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if text.lower() == "none" and type(None) in kinds:
        return None
    kind = next(k for k in kinds if k is not type(None))
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(text)
        return text.lower() in ("true", "1", "yes")
    return kind(text)  # int, float or str
