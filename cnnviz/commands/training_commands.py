"""`python -m cnnviz train`, `evaluate`, `summary` and `bench train`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cnnviz import data
from cnnviz.checkpoint import load_checkpoint, save_checkpoint
from cnnviz.models import PRESETS
from cnnviz.training import Progress, TrainConfig, evaluate, recipe

FASTEST_PRESET = {"mnist": "mnist_fast", "cifar10": "cifar10_fast"}
BAR_WIDTH = 30


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="train a CNN on MNIST or CIFAR-10 and save it",
        description="Train a preset or a spec on MNIST or CIFAR-10 with a progress bar; prints the "
        "test accuracy and saves the model when --out is given.",
    )
    train.add_argument("--dataset", required=True, choices=list(data.DATASETS))
    which = train.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=list(PRESETS), help="a named architecture with tuned settings")
    which.add_argument("--spec", help='an architecture such as "C32 C32 M D0.25 C64 C64 M D0.25 F128 D0.5"')
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="peak learning rate")
    train.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    train.add_argument("--schedule", choices=["onecycle", "step", "exp", "constant"])
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--label-smoothing", type=float)
    train.add_argument("--val-fraction", type=float, help="share of the training images held out (0 = none)")
    train.add_argument("--train-subset", type=int, help="use only the first N training images")
    train.add_argument("--seed", type=int)
    _add_device(train)
    _add_data_dir(train)
    train.add_argument("--out", metavar="PATH", help="save the trained model here (.pt)")
    train.add_argument("--name", help="the model's display name (default: the file name)")
    train.set_defaults(func=run_train)


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help=f"dataset folder (default: ${data.DATA_DIR_ENV})")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The training settings: the preset's recipe (or the dataset's fastest one), then the options."""
    preset = args.preset or FASTEST_PRESET[args.dataset]
    if args.preset and PRESETS[preset].dataset != args.dataset:
        print(f"note: preset {preset} was tuned for {PRESETS[preset].dataset}", file=sys.stderr)
    config = recipe(preset, dataset=args.dataset, device=args.device)
    if args.spec:
        config.spec, config.whiten = args.spec, False
    for option in ("epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay",
                   "label_smoothing", "val_fraction", "train_subset", "seed"):
        value = getattr(args, option, None)
        if value is not None:
            setattr(config, option, value)
    config.validate()
    return config


class ProgressBar:
    """A one-line text progress bar on stderr, with a validation line at every validation point."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.interactive = stream.isatty()
        self.last_line = 0.0

    def __call__(self, p: Progress) -> None:
        done = p.step / max(1, p.total_steps)
        filled = int(BAR_WIDTH * done)
        eta = (p.elapsed / done - p.elapsed) if done > 0 else 0.0
        line = (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done:4.0%} epoch {p.epoch:5.2f}/{p.epochs} "
                f"loss {p.loss:.3f} acc {p.accuracy:.3f} lr {p.lr:.3g} {p.images_per_second:5.0f} img/s "
                f"ETA {eta:4.0f} s")
        if p.phase == "eval":
            val = "" if p.val_accuracy is None else f" val_loss {p.val_loss:.3f} val_acc {p.val_accuracy:.4f}"
            print(f"\r{line}{val} ({p.elapsed:.0f} s)", file=self.stream, flush=True)
        elif p.phase == "train" and (self.interactive or time.monotonic() - self.last_line > 30):
            end = "" if self.interactive else "\n"
            print(f"\r{line}", end=end, file=self.stream, flush=True)
            self.last_line = time.monotonic()


def run_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from cnnviz.training import train  # the trainer pulls in torch only when a command needs it

    print(f"training {config.spec!r} on {config.dataset} for {config.epochs} epochs", file=sys.stderr)
    result = train(config, progress=ProgressBar(), data_dir=args.data_dir)
    print(f"test accuracy: {result.test_accuracy:.4f} on {len(result.test_labels)} test images "
          f"({result.seconds:.1f} s on {result.device})")
    if args.out:
        name = args.name or Path(args.out).stem
        path = save_checkpoint(args.out, result.model, result.metadata(name))
        print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    loaded = load_checkpoint(args.model)
    test = data.load_dataset(loaded.dataset, "test", args.data_dir, download=False)
    loss, accuracy, _ = evaluate(loaded.model, test.images, test.labels, test.info)
    print(json.dumps({"dataset": loaded.dataset, "accuracy": accuracy, "loss": loss}))
    return 0
