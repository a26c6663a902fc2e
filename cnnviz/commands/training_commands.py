"""`python -m cnnviz train`, `evaluate`, `summary` and `bench train`."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

from cnnviz.commands.data_commands import add_data_dir_argument
from cnnviz.datasets import files as data
from cnnviz.networks.diagram import diagram_layout
from cnnviz.networks.diagram_draw import png_size, write_diagram
from cnnviz.networks.summary import field_label, summarize_spec
from cnnviz.runtime import resolve_device
from cnnviz.training.checkpoint import load_checkpoint, save_checkpoint
from cnnviz.training.config import TrainConfig, apply_settings
from cnnviz.training.evaluate import evaluate
from cnnviz.training.loop import train
from cnnviz.training.presets import NET_PRESETS
from cnnviz.training.progress import Progress
from cnnviz.training.recipes import fastest_preset, recipe
from cnnviz.training.snapshot_capture import test_image_plan

BAR_WIDTH = 30


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="train a CNN on MNIST or CIFAR-10 and save it",
        description="Train a preset or a spec on MNIST or CIFAR-10 with a progress bar; prints the "
        "test accuracy and saves the model when --out is given.",
    )
    train.add_argument("--dataset", required=True, choices=list(data.DATASETS))
    which = train.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=list(NET_PRESETS), help="a named architecture with tuned settings")
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
    _add_settings(train)
    train.add_argument("--compile", action="store_true", help="torch.compile the model (GPU only; the "
                       "first steps wait for the compiler)")
    add_data_dir_argument(train)
    train.add_argument("--out", metavar="PATH", help="save the trained model here (.pt)")
    train.add_argument("--name", help="the model's display name (default: the file name)")
    train.add_argument("--snapshots", action="store_true",
                       help="take the time machine's snapshots while it trains (stored with --out)")
    train.add_argument("--probe", type=int, default=0, metavar="N",
                       help="with --snapshots: the test image the snapshots follow (default 0)")
    train.set_defaults(func=run_train)

    evaluate_parser = commands.add_parser(
        "evaluate", help="measure a saved model's accuracy on its dataset's test set",
        description="Load a cnnviz checkpoint and evaluate it on all 10,000 test images.",
    )
    evaluate_parser.add_argument("--model", required=True, metavar="PATH", help="a .pt file")
    _add_device(evaluate_parser)
    add_data_dir_argument(evaluate_parser)
    evaluate_parser.add_argument("--json", action="store_true", help="print JSON")
    evaluate_parser.set_defaults(func=run_evaluate)

    summary = commands.add_parser(
        "summary", help="per-layer table of a spec: output shapes, parameters, multiply-adds",
        description='Summarize an architecture spec such as "C32 C32 M F128" for an input shape, or a '
                    "preset of the Train page by its name (its dataset's input shape unless --input).",
    )
    summary.add_argument("spec", help='the architecture, e.g. "C32 C32 M D0.25 F128", or a preset: '
                                      + ", ".join(NET_PRESETS))
    summary.add_argument("--input", metavar="CxHxW",
                         help="input shape, e.g. 1x28x28 (default for a preset: its dataset's)")
    summary.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    summary.add_argument("--json", action="store_true", help="print JSON")
    summary.add_argument("--diagram", metavar="FILE",
                         help="also draw the architecture as FILE (.svg or .png by the extension)")
    summary.set_defaults(func=run_summary)

    bench = benches.add_parser(
        "train", help="time the fastest preset to a test accuracy",
        description="Train the dataset's fastest preset for its schedule and score the test set at the "
        "end, as speed records do (or after every epoch with --every-epoch, stopping once the target is "
        "reached); reports whether it reached --target and the wall time including data loading.",
    )
    bench.add_argument("--dataset", required=True, choices=list(data.DATASETS))
    bench.add_argument("--target", required=True, type=float, help="test accuracy to reach, 0..1 or percent")
    bench.add_argument("--preset", choices=list(NET_PRESETS),
                       help="the preset to train (default: the dataset's fastest)")
    bench.add_argument("--epochs", type=int, help="length of the learning-rate schedule (default: recipe's)")
    bench.add_argument("--batch-size", type=int, help="images per step (default: recipe's)")
    bench.add_argument("--lr", type=float, help="peak learning rate (default: recipe's)")
    bench.add_argument("--train-subset", type=int, help="train on the first N images only (quick checks)")
    bench.add_argument("--runs", type=int, default=1, help="timed runs, seeds seed..seed+N-1 (default 1)")
    bench.add_argument("--no-compile", dest="compile", action="store_false",
                       help="on a GPU, run the model eagerly instead of through torch.compile (compiling "
                       "happens in the warm-up)")
    bench.add_argument("--no-warmup", dest="warmup", action="store_false",
                       help="on a GPU, skip the untimed warm-up run (CUDA start-up, kernel choice, data "
                       "read into memory) that otherwise comes first")
    bench.add_argument("--every-epoch", action="store_true",
                       help="score the test set after every epoch and stop at the target (costs a test "
                       "pass per epoch)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--snapshots", action="store_true",
                       help="train each run twice, without and with snapshots (probe: test image 0), and "
                       "report both wall times and the snapshots' overhead")
    _add_settings(bench)
    _add_device(bench)
    add_data_dir_argument(bench)
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(func=run_bench_train)


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")


def _add_settings(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="any other training setting, e.g. --set dirac=true --set lookahead_every=5 "
                        "(the names are TrainConfig's fields; repeatable)")



def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The training settings: the preset's recipe (or the dataset's fastest one), then the options."""
    preset = args.preset or fastest_preset(args.dataset, args.device)
    if args.preset and NET_PRESETS[preset].dataset != args.dataset:
        print(f"note: preset {preset} was tuned for {NET_PRESETS[preset].dataset}", file=sys.stderr)
    config = recipe(preset, dataset=args.dataset, device=args.device)
    if args.spec:
        config = replace(config, spec=args.spec, whiten=False)
    options = ("epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "label_smoothing",
               "val_fraction", "train_subset", "seed", "compile")
    given = {option: getattr(args, option) for option in options if getattr(args, option, None) is not None}
    return apply_settings(replace(config, **given), args.settings)


class ProgressBar:
    """A one-line text progress bar on stderr, with a validation line at every validation point."""

    def __init__(self, stream=None) -> None:
        self.stream = sys.stderr if stream is None else stream  # looked up now: tests swap sys.stderr
        self.interactive = self.stream.isatty()
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
    plan = test_image_plan(config.dataset, args.probe, args.data_dir) if args.snapshots else None
    print(f"training {config.spec!r} on {config.dataset} for {config.epochs} epochs", file=sys.stderr)
    result = train(config, progress=ProgressBar(), data_dir=args.data_dir, snapshots=plan)
    print(f"test accuracy: {result.test_accuracy:.4f} on {len(result.test_labels)} test images "
          f"({result.seconds:.1f} s on {result.device})")
    if result.snapshots is not None:
        runs = result.snapshots
        share = 100 * runs.capture_seconds / max(result.seconds, 1e-9)
        print(f"snapshots: {len(runs.snapshots)} of {runs.probe_label}, {runs.nbytes() / 1e6:.2f} MB, taken "
              f"in {runs.capture_seconds:.1f} s ({share:.1f}% of the run)"
              + ("" if args.out else " (not kept: no --out)"))
    if args.out:
        name = args.name or Path(args.out).stem
        path = save_checkpoint(args.out, result.model, result.metadata(name), snapshots=result.snapshots)
        print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    loaded = load_checkpoint(args.model)
    test = data.load_dataset(loaded.dataset, "test", args.data_dir, download=False)
    device = resolve_device(args.device)
    started = time.perf_counter()
    loss, accuracy, _ = evaluate(loaded.model.to(device), test.images, test.labels, test.info)
    result = {
        "model": str(args.model), "name": loaded.name, "dataset": loaded.dataset, "spec": loaded.spec,
        "accuracy": accuracy, "loss": loss, "images": len(test), "correct": round(accuracy * len(test)),
        "recorded_test_accuracy": loaded.test_accuracy, "seconds": round(time.perf_counter() - started, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{loaded.name} ({loaded.dataset}, {loaded.spec}): test accuracy {accuracy:.4f} "
              f"({result['correct']}/{len(test)}), loss {loss:.4f}")
    return 0


def parse_shape(text: str) -> tuple[int, int, int]:
    """"1x28x28" -> (1, 28, 28), with a friendly error."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--input must look like CxHxW, e.g. 1x28x28 or 3x32x32; got {text!r}.")
    channels, height, width = (int(p) for p in parts)
    return channels, height, width


FIELD_LEGEND = ("field: the input pixels one cell sees (size x size; 'all': the whole image; it may be "
                "larger than the image, whose padding it then covers); jump: input pixels between "
                "neighbouring cells' fields; start: the input row (and column) of the centre of cell "
                "(0, 0)'s field.")


def summary_spec_and_shape(spec: str, shape: str | None) -> tuple[str, tuple[int, int, int]]:
    """A spec or a preset's name, and the input shape: --input, else a preset's dataset's."""
    preset = NET_PRESETS.get(spec.strip())
    if preset is not None:
        spec = preset.spec
        if shape is None and preset.dataset is not None:
            return spec, data.DATASETS[preset.dataset].image_shape
    if shape is None:
        raise ValueError("--input is needed for a spec (e.g. --input 1x28x28); a preset's name "
                         f"({', '.join(NET_PRESETS)}) takes its dataset's shape.")
    return spec, parse_shape(shape)


def run_summary(args: argparse.Namespace) -> int:
    summary = summarize_spec(*summary_spec_and_shape(args.spec, args.input), args.classes)
    if args.diagram:
        preset = NET_PRESETS.get(args.spec.strip())
        names = data.DATASETS[preset.dataset].classes if preset and preset.dataset else None
        diagram = diagram_layout(summary, names if names and len(names) == args.classes else None)
        written = write_diagram(diagram, args.diagram)
        # a PNG is drawn at PNG_SCALE pixels per layout pixel: say the size the file has
        width, height = (png_size(diagram) if written.suffix.lower() == ".png"
                         else (round(diagram.width), round(diagram.height)))
        print(f"diagram: {args.diagram} ({width} x {height} px)", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
        return 0
    print(f"{'layer':>5}  {'part':<10} {'type':<24} {'output':<14} {'params':>10}  {'multiply-adds':>13}  "
          f"{'field':>7} {'jump':>4} {'start':>5}  formula")
    for row in summary.layers:
        kind = row.kind + (f" ({row.token})" if row.token else "")
        shape = "x".join(str(d) for d in row.output_shape)
        formula = row.formula if row.params else ""
        jump = "" if row.rf_jump is None else str(row.rf_jump)
        start = "" if row.rf_start is None else f"{row.rf_start:g}"
        print(f"{row.number:>5}  {row.part:<10} {kind:<24} {shape:<14} {row.params:>10,}  "
              f"{row.mult_adds:>13,}  {field_label(row):>7} {jump:>4} {start:>5}  {formula}")
    print(f"total parameters: {summary.total_params:,} (trainable {summary.trainable_params:,}); "
          f"multiply-adds per image: {summary.total_mult_adds:,}")
    print(textwrap.fill(FIELD_LEGEND, 100))
    return 0


def run_bench_train(args: argparse.Namespace) -> int:
    reports = bench_train_reports(args)
    if args.json:
        print(json.dumps(reports[0] if args.runs == 1 else {"runs": reports}, indent=2))
    reached = all(report["reached"] for report in reports)
    return 0 if reached else 1


def bench_train_reports(args: argparse.Namespace) -> list[dict]:
    """The runs of ``bench train`` with these options, one report each (the warm-up's seconds in
    each); prints a line per run unless ``args.json``."""
    target = args.target / 100 if args.target > 1 else args.target
    if not 0 < target < 1:
        raise ValueError("--target must be a test accuracy between 0 and 1 (or a percentage).")
    overrides = {key: value for key, value in (
        ("epochs", args.epochs), ("train_subset", args.train_subset), ("batch_size", args.batch_size),
        ("lr", args.lr)) if value}
    preset = args.preset or fastest_preset(args.dataset, args.device)
    made_for = NET_PRESETS[preset].dataset
    if made_for != args.dataset:
        raise ValueError(f"The preset {preset} is made for {made_for}, not {args.dataset}.")
    if args.runs < 1:
        raise ValueError("--runs must be at least 1.")
    on_gpu = resolve_device(args.device).type == "cuda"
    config = recipe(
        preset, device=args.device, seed=args.seed, val_fraction=0.0, compile=args.compile and on_gpu,
        test_every_epoch=args.every_epoch, target_accuracy=target if args.every_epoch else None, **overrides,
    )
    config = apply_settings(config, args.settings)
    warmup_seconds = None
    if args.warmup and on_gpu:
        warmup_seconds = _warm_up(config, args.data_dir)
    reports = []
    for run in range(args.runs):
        run_config = replace(config, seed=args.seed + run)
        started = time.perf_counter()
        result = train(run_config, progress=None if args.json else ProgressBar(), data_dir=args.data_dir)
        seconds = time.perf_counter() - started
        reached = result.test_accuracy is not None and result.test_accuracy >= target
        snapshot_report = _snapshot_overhead(run_config, args, seconds) if args.snapshots else {}
        reports.append({
            "dataset": args.dataset, "preset": preset, "spec": config.spec,
            "target": target, "reached": reached, "accuracy": result.test_accuracy,
            "seconds_to_target": round(seconds, 2) if reached else None, "seconds": round(seconds, 2),
            "epochs": result.history[-1].epoch if result.history else 0,
            "schedule_epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
            "settings": args.settings,
            "compiled": config.compile,
            "seed": run_config.seed, "device": result.device, "warmup_seconds": warmup_seconds,
            "per_epoch_test_accuracy": ([point.test_accuracy for point in result.history]
                                        if args.every_epoch else None),
            **snapshot_report,
        })
        if not args.json:
            verdict = f"reached {target:.2%} in {seconds:.1f} s" if reached else \
                f"did not reach {target:.2%} ({seconds:.1f} s)"
            print(f"{args.dataset}: {verdict}; test accuracy {result.test_accuracy:.4f} after "
                  f"{reports[-1]['epochs']} epochs on {result.device}")
            if snapshot_report:
                s = snapshot_report
                print(f"with snapshots: {s['seconds_with_snapshots']:.1f} s "
                      f"({s['snapshot_overhead_percent']:+.1f}%; taking them: {s['capture_seconds']:.1f} s, "
                      f"{s['capture_percent']:.1f}% of that run), {s['snapshots']} snapshots, "
                      f"{s['snapshot_mb']:.2f} MB")
    return reports


def _snapshot_overhead(config: TrainConfig, args: argparse.Namespace, seconds: float) -> dict:
    """The same run again with snapshots (probe: test image 0): its wall time, the overhead in
    percent of ``seconds`` (the run without), how many snapshots and their size."""
    plan = test_image_plan(config.dataset, 0, args.data_dir)
    started = time.perf_counter()
    result = train(config, progress=None if args.json else ProgressBar(), data_dir=args.data_dir,
                   snapshots=plan)
    with_snapshots = time.perf_counter() - started
    return {
        "seconds_with_snapshots": round(with_snapshots, 2),
        "snapshot_overhead_percent": round(100 * (with_snapshots - seconds) / seconds, 1),
        "snapshots": len(result.snapshots.snapshots),
        # measured inside the run with snapshots: steadier than the difference of two wall times
        "capture_seconds": round(result.snapshots.capture_seconds, 2),
        "capture_percent": round(100 * result.snapshots.capture_seconds / with_snapshots, 1),
        "snapshot_mb": round(result.snapshots.nbytes() / 1e6, 2),
    }


def _warm_up(config: TrainConfig, data_dir: str | None) -> float:
    """An untimed short run of the same model and batch shapes: starts CUDA, lets cuDNN pick its
    kernels and reads the data into memory, as speed records do before their clock starts."""
    started = time.perf_counter()
    steps = 20
    train(replace(config, epochs=1, train_subset=steps * config.batch_size, test_every_epoch=False,
                  target_accuracy=None), data_dir=data_dir)
    return round(time.perf_counter() - started, 2)
