"""`python -m cnnviz bench gpu` (the whole GPU check, one JSON report) and `data-pack` / `data-unpack`
(the datasets in parts small enough for a machine that takes files in batches of limited size)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from cnnviz import __version__, gpu_check
from cnnviz.commands import conv_commands, predict_commands, training_commands
from cnnviz.commands.data_commands import add_data_dir_argument
from cnnviz.datasets import files as data
from cnnviz.datasets import parts
from cnnviz.paths import MODELS_DIR
from cnnviz.runtime import device_name, resolve_device
from cnnviz.training.checkpoint import list_models, load_checkpoint

TRAIN_TARGETS = {"mnist": 0.99, "cifar10": 0.89}  # the README's `bench train` targets on a GPU
# --quick: a few thousand images for one epoch, so only a low target is in reach.
QUICK_TRAIN = {
    "mnist": ("--target", "0.5", "--train-subset", "2000", "--epochs", "1", "--set", "test_subset=2000"),
    "cifar10": ("--target", "0.15", "--train-subset", "1000", "--epochs", "1", "--set", "test_subset=500"),
}
DEFAULT_SEEDS = 3
PEER_TIMEOUT_S = 180.0  # airbench94 trains in about 4 s a run after a first slower one
TESTS_TIMEOUT_S = 300.0
BUDGET_S = 480  # the whole check on one GPU
QUICK_PHOTOS = 20  # staged photos per MNIST model with --quick (else bench predict's default)
REFUSAL = ("No CUDA GPU is available here, so `bench gpu` cannot run; `bench gpu --quick --device cpu` "
           "runs its tiny version on the CPU.")


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
    gpu = benches.add_parser(
        "gpu", help="the GPU check: CUDA tests, training speed, page compute, a peer; one JSON report",
        description=f"On one GPU, in under {BUDGET_S // 60} minutes: the CUDA tests (pytest "
        "tests/test_training_gpu.py in a fresh process), `bench train` for MNIST (target "
        f"{TRAIN_TARGETS['mnist']:.0%}) and CIFAR-10 ({TRAIN_TARGETS['cifar10']:.0%}) over several "
        "seeds with the warm-up apart, what `bench predict` and `bench conv` measure, and with "
        "--peer a peer's training script (airbench94.py) on the same CIFAR-10 copy. Writes one "
        "JSON report. Without CUDA it refuses, except --quick --device cpu (1 seed, tiny subsets, "
        "no CUDA tests, no peer), which checks the command end to end.",
    )
    gpu.add_argument("--out", metavar="PATH", help="write the JSON report here (default: print it)")
    gpu.add_argument("--peer", metavar="DIR",
                     help=f"a folder holding {gpu_check.PEER_SCRIPT} to run beside ours")
    gpu.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                     help=f"timed training runs per dataset, seeds 0..N-1 (default {DEFAULT_SEEDS})")
    gpu.add_argument("--quick", action="store_true",
                     help="a tiny configuration: 1 seed, tiny subsets, 1 epoch, no CUDA tests, no peer")
    gpu.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                     help="cpu only together with --quick")
    gpu.add_argument("--peer-timeout", type=float, default=PEER_TIMEOUT_S, metavar="S",
                     help=f"stop the peer after S seconds (default {PEER_TIMEOUT_S:.0f})")
    add_data_dir_argument(gpu)
    gpu.set_defaults(func=run_bench_gpu)

    pack = commands.add_parser(
        "data-pack", help="pack MNIST and CIFAR-10 into parts of bounded size",
        description="Write the datasets as one compressed stream cut into numbered parts of at most "
        "--part-mib MiB, with a manifest of their SHA-256 sums, for a machine that takes files in "
        "batches of limited size (one part per batch); `data-unpack` joins them again.",
    )
    pack.add_argument("folder", metavar="DIR", help="where the parts and the manifest go")
    pack.add_argument("--part-mib", type=float, default=parts.DEFAULT_PART_MIB,
                      help=f"largest part in MiB (default {parts.DEFAULT_PART_MIB})")
    add_data_dir_argument(pack)
    pack.set_defaults(func=run_data_pack)

    unpack = commands.add_parser(
        "data-unpack", help="check the parts of `data-pack` and unpack the datasets",
        description="Check every part against the manifest, then unpack MNIST and CIFAR-10 into the "
        "data directory (--data-dir, else $CNNVIZ_DATA_DIR, else the per-user cache).",
    )
    unpack.add_argument("folder", metavar="DIR", help="the folder holding the parts and the manifest")
    add_data_dir_argument(unpack)
    unpack.set_defaults(func=run_data_unpack)


def run_data_pack(args: argparse.Namespace) -> int:
    packed = parts.pack_datasets(args.data_dir, args.folder, args.part_mib)
    size = sum(p.stat().st_size for p in packed.parts)
    print(f"packed {len(packed.files)} files ({packed.data_bytes / 2**20:.1f} MiB) into {len(packed.parts)} "
          f"parts ({size / 2**20:.1f} MiB) and {packed.manifest}")
    return 0


def run_data_unpack(args: argparse.Namespace) -> int:
    written = parts.unpack_datasets(args.folder, args.data_dir)
    print(f"unpacked {len(written)} files into {data.resolve_data_dir(args.data_dir)}")
    return 0


def run_bench_gpu(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise ValueError("--seeds must be at least 1.")
    if not (args.quick and args.device == "cpu"):
        if not torch.cuda.is_available():
            raise ValueError(REFUSAL)
        if args.device == "cpu":
            raise ValueError("`bench gpu` runs on the GPU; --device cpu goes only with --quick.")
    device = "cpu" if args.quick and args.device == "cpu" else "cuda"
    peer_script = gpu_check.find_peer_script(args.peer) if args.peer and not args.quick else None
    for name in data.DATASETS:  # a missing dataset is better said now than after the CUDA tests
        if not data.is_available(name, args.data_dir):
            data.load_dataset(name, "test", args.data_dir, download=False)  # raises the friendly error

    started = time.perf_counter()
    seeds = 1 if args.quick else args.seeds
    report = {
        "check": "python -m cnnviz bench gpu", "cnnviz": __version__, "quick": args.quick,
        "device": device_name(resolve_device(device)), "torch": torch.__version__,
        "cuda": torch.version.cuda, "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "seeds": seeds, "budget_seconds": BUDGET_S,
    }
    report["cuda_tests"] = _skipped("--quick skips the CUDA tests") if args.quick else _cuda_tests(args)
    report["train"] = {name: _train(name, device, seeds, args) for name in data.DATASETS}
    report["predict"] = _predict(args.quick)
    report["conv"] = _conv(args.quick)
    if peer_script is None:
        reason = "--quick skips the peer" if args.quick else "no --peer DIR was given"
        report["peer"] = _skipped(reason)
    else:
        report["peer"] = _peer(peer_script, seeds, args)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["ok"] = _all_ok(report)

    text = json.dumps(report, indent=2)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        _say(f"report written to {out}: {'ok' if report['ok'] else 'NOT ok'} in {report['seconds']:.0f} s")
    else:
        print(text)
    return 0 if report["ok"] else 1


def _say(message: str) -> None:
    print(f"[bench gpu] {message}", file=sys.stderr, flush=True)


def _skipped(reason: str) -> dict:
    return {"ran": False, "reason": reason}


def _cuda_tests(args: argparse.Namespace) -> dict:
    _say("CUDA tests (pytest tests/test_training_gpu.py) ...")
    env = dict(os.environ, **{data.DATA_DIR_ENV: str(data.resolve_data_dir(args.data_dir))})
    try:
        counts = gpu_check.run_pytest(timeout=TESTS_TIMEOUT_S, env=env)
    except FileNotFoundError as err:
        return _skipped(str(err))
    _say(f"  {counts.passed} passed, {counts.failed} failed, {counts.errors} errors, "
         f"{counts.skipped} skipped in {counts.seconds:.0f} s")
    return counts.to_json()


def _bench_train_args(argv: list[str]) -> argparse.Namespace:
    """`bench train`'s own parser reads the options, so its defaults hold here too."""
    parser = argparse.ArgumentParser(add_help=False)
    commands = parser.add_subparsers(dest="command")
    benches = commands.add_parser("bench").add_subparsers(dest="bench")
    training_commands.register(commands, benches)
    return parser.parse_args(["bench", "train", *argv])


def _train(dataset: str, device: str, seeds: int, args: argparse.Namespace) -> dict:
    options = QUICK_TRAIN[dataset] if args.quick else ("--target", str(TRAIN_TARGETS[dataset]))
    argv = ["--dataset", dataset, "--runs", str(seeds), "--device", device, "--json", *options]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    _say(f"bench train {' '.join(argv)} ...")
    runs = training_commands.bench_train_reports(_bench_train_args(argv))
    seconds = [run["seconds"] for run in runs]
    accuracies = [run["accuracy"] for run in runs]
    section = {
        "preset": runs[0]["preset"], "target": runs[0]["target"], "warmup_seconds": runs[0]["warmup_seconds"],
        "reached": all(run["reached"] for run in runs),
        "mean_seconds": round(sum(seconds) / len(seconds), 2), "min_seconds": min(seconds),
        "max_seconds": max(seconds), "mean_accuracy": round(sum(accuracies) / len(accuracies), 4),
        "min_accuracy": min(accuracies), "runs": runs,
    }
    _say(f"  {dataset}: {section['mean_accuracy']:.4f} mean accuracy, {section['mean_seconds']:.2f} s a run "
         f"(warm-up {section['warmup_seconds']} s)")
    return section


def _predict(quick: bool) -> dict:
    """What `bench predict` measures, for every model in models/."""
    _say("bench predict (every model in models/) ...")
    threads = torch.get_num_threads()
    torch.set_num_threads(predict_commands.INFERENCE_THREADS)  # as the page and `bench predict` run
    try:
        photos = QUICK_PHOTOS if quick else predict_commands.BENCH_PHOTOS
        paths = list_models(MODELS_DIR)
        models = [predict_commands.bench_model(load_checkpoint(path), photos) for path in paths]
        page_skipped = None
        try:
            page_rerun_ms = _quiet_streamlit().page_rerun_ms
            for path, model in zip(paths, models, strict=True):
                model["page_rerun_ms"] = round(page_rerun_ms(path, repeat=1 if quick else 10), 1)
        except ModuleNotFoundError as err:  # a GPU machine without Streamlit still gets the rest
            page_skipped = f"the page reruns need {err.name}, which is not installed here"
    finally:
        torch.set_num_threads(threads)
    targets = {"inspect_ms": predict_commands.TARGET_MS, "page_rerun_ms": predict_commands.TARGET_PAGE_MS,
               "staged_accuracy": predict_commands.TARGET_STAGED_ACCURACY}
    for model in models:
        model["verdict"] = "ok" if model["inspect_ms"] <= targets["inspect_ms"] else "slow"
        if "page_rerun_ms" in model:
            model["page_verdict"] = "ok" if model["page_rerun_ms"] <= targets["page_rerun_ms"] else "slow"
    return {"ran": True, "threads": predict_commands.INFERENCE_THREADS, "models": models,
            "page_skipped": page_skipped, "targets": targets}


def _quiet_streamlit():
    """The predict page's bench module, with Streamlit's no-server warnings silenced."""
    import streamlit.logger

    streamlit.logger.set_log_level("error")
    from cnnviz.ui.predict import bench  # imports streamlit and plotly: only here

    return bench


def _conv(quick: bool) -> dict:
    """What `bench conv` measures, read from its JSON output."""
    _say("bench conv ...")
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            conv_commands.run_bench(argparse.Namespace(json=True, repeat=1 if quick else 5))
    except ModuleNotFoundError as err:
        return _skipped(f"bench conv needs {err.name}, which is not installed here")
    result = json.loads(printed.getvalue())
    result["verdicts"] = {key: "ok" if result[key] <= target else "slow"
                          for key, target in result["targets_ms"].items()}
    return {"ran": True, **result}


def _peer(script: Path, seeds: int, args: argparse.Namespace) -> dict:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the memory our trainings kept cached is the peer's to use
    with tempfile.TemporaryDirectory(prefix="cnnviz-peer-") as work:
        _say(f"peer {script}: writing CIFAR-10 as {gpu_check.PEER_DATA_FOLDER}/train.pt and test.pt ...")
        gpu_check.prepare_peer_data(Path(work), args.data_dir)
        _say(f"  running it for {seeds} runs after its first (at most {args.peer_timeout:.0f} s) ...")
        result = gpu_check.run_peer(script, Path(work), seeds, args.peer_timeout)
    _say(f"  {len(result['runs'])} runs: {result['mean_accuracy']} mean accuracy, "
         f"{result['mean_seconds']} s a run by its own clock")
    return result


def _all_ok(report: dict) -> bool:
    """The CUDA tests passed (where they ran), every training reached its target, the peer finished
    its runs (where it ran); speeds are reported with a verdict, not judged here."""
    tests = report["cuda_tests"]
    tests_ok = not tests["ran"] or (tests["failed"] == tests["errors"] == 0 and tests["passed"] > 0)
    train_ok = all(section["reached"] for section in report["train"].values())
    peer = report["peer"]
    peer_ok = not peer["ran"] or len(peer["runs"]) == report["seeds"]
    return tests_ok and train_ok and peer_ok
