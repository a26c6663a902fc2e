"""A training run written out as one self-contained PyTorch script (torch and torchvision only).

:func:`training_script` turns a :class:`~cnnviz.training.config.TrainConfig` into the text of a
Python file that trains the same network the same way as :func:`cnnviz.training.loop.train`: the
model as plain ``nn.Sequential`` code with the layers of :class:`~cnnviz.networks.build.SpecNet` in
its order (so a cnnviz state dict loads into it), the dataset's normalization, the recipe's
augmentation, optimizer, schedule, label smoothing, training tricks and test-time augmentation, then
the test accuracy. The same seed draws the same initial weights and the same batches as cnnviz.

Left out, with a comment in the script: ``torch.compile`` (a GPU speed-up that does not change what
is learned), the validation points within an epoch (the script checks once per epoch) and the
benchmark's early stop at a target accuracy.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from torch import nn

from cnnviz.datasets.files import DatasetInfo, dataset_info
from cnnviz.networks.build import ResidualBlock, SpecNet, build_model
from cnnviz.training import script_parts as parts
from cnnviz.training.config import TrainConfig
from cnnviz.training.whitening import whitening_layer

HEADER = '''"""Train a CNN on $TITLE in plain PyTorch, as cnnviz's trainer does with these settings.

    $SPEC

is the network in cnnviz's spec language. Written by cnnviz from a run's settings; needs only
torch and torchvision. The same seed gives the same initial weights and batches as cnnviz.

    python $FILE --data DATA_FOLDER             # torchvision's layout: $LAYOUT
    python $FILE --data DATA_FOLDER --download  # fetch the dataset there first (online)
    python $FILE --data DATA_FOLDER --epochs 1  # a quick try: the whole schedule in one epoch

Left out of cnnviz's run: torch.compile (a GPU speed-up that changes nothing learned), the
validation points within an epoch (this script checks once per epoch) and stopping at a target
accuracy.
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import struct
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

DATASET = "$DATASET"
MEAN = $MEAN  # per channel, pixels scaled to 0..1
STD = $STD
SPEC = "$SPEC"  # the cnnviz spec the model below was written from
EPOCHS = $EPOCHS
BATCH_SIZE = $BATCH_SIZE  # the last partial batch of an epoch is dropped (BatchNorm)
LR = $LR  # peak learning rate
MOMENTUM = $MOMENTUM  # $MOMENTUM_NOTE
WEIGHT_DECAY = $WEIGHT_DECAY
LABEL_SMOOTHING = $LABEL_SMOOTHING  # share of the target spread over the other classes
$SCHEDULE_CONSTANTS
VAL_FRACTION = $VAL_FRACTION  # share of the training images held out for validation
TRAIN_SUBSET = $TRAIN_SUBSET  # use only the first N training images (None: all)
TEST_SUBSET = $TEST_SUBSET  # score only the first N test images (None: all)
SHIFT = $SHIFT  # augmentation: largest shift in pixels, zero fill (0: none)
FLIP = $FLIP  # augmentation: mirror left to right
$TRICK_CONSTANTS
'''

SCHEDULE_CONSTANTS = {
    "onecycle": "WARMUP_FRACTION = {warmup}  # one-cycle schedule: share of the steps rising to the peak",
    "step": "GAMMA = {gamma}  # step schedule: the rate times GAMMA every STEP_EPOCHS epochs\n"
            "STEP_EPOCHS = {step_epochs}",
    "exp": "GAMMA = {gamma}  # exponential schedule: the rate times GAMMA every epoch",
    "constant": "# constant learning rate",
}


@dataclass(frozen=True)
class _Tricks:
    """Which optional pieces the script needs, from the config and the model built from it."""

    whiten: bool  # the first layer is a frozen patch-whitening filter bank
    whiten_bias_epochs: int | None
    dirac: bool
    freeze_scales: bool
    shift_lr: float
    lookahead_every: int
    lookahead_start: float
    alternating_flip: bool
    mirror_tta: bool
    shift_tta: bool

    @classmethod
    def of(cls, config: TrainConfig, model: SpecNet, flip: bool) -> _Tricks:
        return cls(
            whiten=whitening_layer(model, config.whiten) is not None,
            whiten_bias_epochs=config.whiten_bias_epochs, dirac=config.dirac,
            freeze_scales=not config.batchnorm_scale, shift_lr=config.batchnorm_shift_lr,
            lookahead_every=config.lookahead_every, lookahead_start=config.lookahead_start,
            alternating_flip=config.alternating_flip and flip,
            mirror_tta=config.mirror_tta, shift_tta=config.shift_tta,
        )


def training_script(config: TrainConfig, file_name: str | None = None) -> str:
    """The text of one Python file that trains ``config``'s network as cnnviz's trainer does and
    prints its test accuracy; it needs only torch and torchvision, and reads the data from a
    ``--data`` folder in torchvision's layout. Its usage lines name ``file_name`` (default
    :func:`script_file_name`), the name it is saved under.

    Raises:
        ValueError: for settings that cannot work (see :meth:`TrainConfig.validate`) or a spec that
            does not build.
    """
    config.validate()
    info = dataset_info(config.dataset)
    channels, size, _ = info.image_shape
    model = build_model(config.spec, channels, info.num_classes, size)
    shift = config.shift if config.shift is not None else 4 if info.name == "cifar10" else 2
    shift = shift if config.augment else 0
    flip = info.name == "cifar10" and config.augment
    tricks = _Tricks.of(config, model, flip)
    pieces = [
        _header(config, info, shift, flip, tricks, file_name or script_file_name(config)),
        parts.RESIDUAL_BLOCK if any(isinstance(m, ResidualBlock) for m in model.modules()) else "",
        model_code(model),
        parts.DATA, parts.AUGMENT, parts.SCHEDULE[config.schedule],
        string.Template(parts.OPTIMIZER).substitute(OPTIMIZER_CALL=parts.OPTIMIZER_CALLS[config.optimizer]),
        parts.WHITENING if tricks.whiten else "",
        parts.DIRAC if tricks.dirac else "",
        parts.FREEZE_SCALES if tricks.freeze_scales else "",
        parts.LOOKAHEAD if tricks.lookahead_every else "",
        parts.SHIFT_IMAGE if tricks.shift_tta else "",
        _evaluate_code(tricks),
        _main_code(tricks, config.seed),
    ]
    return "\n\n\n".join(piece.strip("\n") for piece in pieces if piece) + "\n"


def script_file_name(config: TrainConfig) -> str:
    """A file name for the script of ``config``: ``train_mnist.py``, ``train_cifar10.py``."""
    return f"train_{dataset_info(config.dataset).name}.py"


def _header(config: TrainConfig, info: DatasetInfo, shift: int, flip: bool, tricks: _Tricks,
            file_name: str) -> str:
    layout = "MNIST/raw/*-ubyte[.gz]" if info.name == "mnist" else "cifar-10-batches-py/"
    momentum_note = "SGD with Nesterov momentum" if config.optimizer == "sgd" else "Adam's beta1"
    schedule = SCHEDULE_CONSTANTS[config.schedule].format(
        warmup=config.warmup_fraction, gamma=config.gamma, step_epochs=config.step_epochs)
    return string.Template(HEADER).substitute(
        SPEC=config.spec, TITLE=info.title, FILE=file_name, LAYOUT=layout,
        DATASET=info.name, MEAN=repr(tuple(info.mean)), STD=repr(tuple(info.std)),
        EPOCHS=config.epochs, BATCH_SIZE=config.batch_size, LR=repr(config.lr),
        MOMENTUM=repr(config.momentum), MOMENTUM_NOTE=momentum_note, WEIGHT_DECAY=repr(config.weight_decay),
        LABEL_SMOOTHING=repr(config.label_smoothing), SCHEDULE_CONSTANTS=schedule,
        VAL_FRACTION=repr(config.val_fraction), TRAIN_SUBSET=config.train_subset,
        TEST_SUBSET=config.test_subset,
        SHIFT=shift, FLIP=flip, TRICK_CONSTANTS=_trick_constants(config, tricks),
    )


def _trick_constants(config: TrainConfig, tricks: _Tricks) -> str:
    lines = [f"BATCHNORM_SHIFT_LR = {config.batchnorm_shift_lr!r}  # learning-rate factor, BatchNorm shifts"]
    if tricks.whiten_bias_epochs is not None and tricks.whiten:
        lines.append(f"WHITEN_BIAS_EPOCHS = {tricks.whiten_bias_epochs}  # the whitening layer's bias learns "
                     "this many epochs, then freezes")
    if tricks.lookahead_every:
        lines.append(f"LOOKAHEAD_EVERY = {tricks.lookahead_every}  # steps between pulls towards the "
                     "running average of the weights")
        lines.append(f"LOOKAHEAD_START = {tricks.lookahead_start!r}  # share of the steps before the "
                     "averaging starts")
    return "\n".join(lines)


def model_code(model: SpecNet) -> str:
    """``class Net(nn.Module)``: the layers of ``model`` as plain PyTorch code, named and ordered as in
    the SpecNet (``features`` then ``classifier``), so its state dict loads into ``Net()``."""
    channels, size, _ = model.input_shape
    lines = [
        "class Net(nn.Module):",
        f'    """{model.spec} for {channels}x{size}x{size} images, {model.num_classes} classes:',
        '    the layers of cnnviz\'s SpecNet in its order, so a cnnviz model\'s state dict loads into it."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
    ]
    for name, sequence, tokens in (("features", model.features, model.feature_tokens),
                                   ("classifier", model.classifier, model.classifier_tokens)):
        lines.append(f"        self.{name} = nn.Sequential(")
        for module, token in zip(sequence, tokens, strict=True):
            comment = f"  # {token}" if token else ""
            lines.append(f"            {module_code(module)},{comment}")
        lines.append("        )")
    lines += [
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        "        return self.classifier(self.features(x))  # (N, classes) logits",
    ]
    return "\n".join(lines)


def module_code(module: nn.Module) -> str:
    """The constructor call that builds ``module`` (one of the layers a spec makes)."""
    if isinstance(module, nn.Conv2d):
        padding = module.padding if isinstance(module.padding, str) else module.padding[0]
        return (f"nn.Conv2d({module.in_channels}, {module.out_channels}, "
                f"kernel_size={module.kernel_size[0]}, stride={module.stride[0]}, padding={padding!r}, "
                f"bias={module.bias is not None})")
    if isinstance(module, ResidualBlock):
        first = module.body[0]
        return f"ResidualBlock({first.in_channels}, {first.out_channels})"
    simple = {
        nn.BatchNorm2d: lambda m: f"nn.BatchNorm2d({m.num_features})",
        nn.ReLU: lambda m: "nn.ReLU(inplace=True)",
        nn.MaxPool2d: lambda m: f"nn.MaxPool2d({m.kernel_size})",
        nn.AvgPool2d: lambda m: f"nn.AvgPool2d({m.kernel_size})",
        nn.AdaptiveAvgPool2d: lambda m: "nn.AdaptiveAvgPool2d(1)",
        nn.Dropout: lambda m: f"nn.Dropout({m.p})",
        nn.Flatten: lambda m: "nn.Flatten()",
        nn.Linear: lambda m: f"nn.Linear({m.in_features}, {m.out_features})",
    }
    for kind, code in simple.items():
        if isinstance(module, kind):
            return code(module)
    raise AssertionError(f"no code for {type(module).__name__}")


def _evaluate_code(tricks: _Tricks) -> str:
    doc, body = parts.TTA_BODIES[tricks.mirror_tta, tricks.shift_tta]
    return string.Template(parts.EVALUATE).substitute(TTA_DOC=doc, TTA_BODY=body)


def _main_code(tricks: _Tricks, seed: int) -> str:
    """``main()``: the data, the model with its tricks, the epochs, the test accuracy."""
    setup = []
    if tricks.whiten:
        setup.append("    init_whitening(model.features[0], normalize(train_images[:5000]))  # their patches")
    if tricks.freeze_scales:
        setup.append("    freeze_batchnorm_scales(model)")
    if tricks.dirac:
        setup.append("    dirac_init(model)")
    setup.append("    optimizer = make_optimizer(model)")
    if tricks.alternating_flip:
        setup += [
            "    # Each image is mirrored in every other epoch: these in even epochs, the rest in odd ones.",
            "    first_mirror = torch.rand(len(train_labels), generator=generator, device=device) < 0.5",
        ]
    epoch_start = []
    if tricks.whiten and tricks.whiten_bias_epochs is not None:
        epoch_start.append("        model.features[0].bias.requires_grad_(epoch < WHITEN_BIAS_EPOCHS)")
    mirror = ("first_mirror if epoch % 2 == 0 else ~first_mirror" if tricks.alternating_flip else "None")
    epoch_start.append(f"        mirror = {mirror}")
    after_step = []
    if tricks.lookahead_every:
        after_step = [
            "            if step >= int(LOOKAHEAD_START * total_steps) and step % LOOKAHEAD_EVERY == 0:",
            "                if lookahead is None:",
            "                    lookahead = Lookahead(model)",
            "                else:",
            "                    lookahead.update(lookahead_decay(step, total_steps))",
        ]
    epoch_end = ["        if lookahead is not None:",
                 "            lookahead.update(1.0)  # end each epoch on the averaged weights",
                 ] if tricks.lookahead_every else []
    text = string.Template(MAIN).substitute(
        SEED=seed, SETUP="\n".join(setup), EPOCH_START="\n".join(epoch_start),
        LOOKAHEAD_INIT="    lookahead = None" if tricks.lookahead_every else _EMPTY,
        AFTER_STEP="\n".join(after_step) or _EMPTY, EPOCH_END="\n".join(epoch_end) or _EMPTY,
    )
    return "\n".join(line for line in text.split("\n") if line != _EMPTY)


_EMPTY = "\x00"  # a piece of main() the recipe does not need: its line is dropped


MAIN = '''
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder in torchvision's dataset layout")
    parser.add_argument("--download", action="store_true", help="download the dataset there if missing")
    parser.add_argument("--seed", type=int, default=$SEED)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help=f"epochs to train (default {EPOCHS}, the run's); the schedule fits them")
    args = parser.parse_args()
    if args.epochs < 1:
        raise SystemExit("--epochs must be at least 1.")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    started = time.perf_counter()

    # A seeded shuffle, then the last VAL_FRACTION held out for validation.
    images, labels = load_split(args.data, train=True, download=args.download)
    images, labels = images[:TRAIN_SUBSET], labels[:TRAIN_SUBSET]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(args.seed))
    images, labels = images[order], labels[order]
    cut = len(labels) - int(round(VAL_FRACTION * len(labels)))
    train_images, train_labels = images[:cut].to(device), labels[:cut].to(device)
    val_images, val_labels = images[cut:], labels[cut:]

    # The initial weights come from the seeded global generator, the batches from their own one.
    torch.manual_seed(args.seed)
    model = Net().to(device, memory_format=torch.channels_last)
    generator = torch.Generator(device=device).manual_seed(args.seed)
$SETUP
    batch_size = min(BATCH_SIZE, len(train_labels))
    steps_per_epoch = len(train_labels) // batch_size
    total_steps = steps_per_epoch * args.epochs
    step = 0
$LOOKAHEAD_INIT
    model.train()
    for epoch in range(args.epochs):
$EPOCH_START
        epoch_images, epoch_labels = shuffled_epoch(train_images, train_labels, generator, mirror)
        for batch in range(steps_per_epoch):
            lr = learning_rate(step, steps_per_epoch, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            window = slice(batch * batch_size, (batch + 1) * batch_size)
            x, y = normalize(epoch_images[window]), epoch_labels[window]
            with autocast(device):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=LABEL_SMOOTHING)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
$AFTER_STEP
$EPOCH_END
        # a line every epoch, so a long run on a CPU shows that it is moving
        checked = (f", validation accuracy {accuracy(model, val_images, val_labels, device):.4f}"
                   if len(val_labels) else "")
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.4f}{checked}, "
              f"{time.perf_counter() - started:.1f} s", flush=True)

    test_images, test_labels = load_split(args.data, train=False, download=args.download)
    test_images, test_labels = test_images[:TEST_SUBSET], test_labels[:TEST_SUBSET]
    score = accuracy(model, test_images, test_labels, device)
    print(f"test accuracy {score:.4f} on {len(test_labels)} images, "
          f"{time.perf_counter() - started:.1f} s on {device.type}")


if __name__ == "__main__":
    main()
'''
