"""`python -m cnnviz replay`: a run's filter evolution and the map of what it learned, as pictures for
slides; `python -m cnnviz bench projection`: how long that map takes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from cnnviz.commands.explorer_commands import resolve_model
from cnnviz.datasets.files import load_dataset
from cnnviz.paths import MODELS_DIR
from cnnviz.replay.learned_map import learned_map
from cnnviz.replay.projection import METHOD_NAMES, METHODS, PROJECTION_THREADS, knn_accuracy, project
from cnnviz.replay.slides import projection_image, write_filter_gif, write_filter_strip
from cnnviz.training.checkpoint import LoadedModel, list_models, load_checkpoint
from cnnviz.training.features import PROJECTION_IMAGES, penultimate_features, projection_sample

TARGET_SECONDS = {"pca": 1.0, "tsne": 15.0}  # issue 19's budget for 2,000 points on the 2-core CPU


NO_SNAPSHOTS_EXIT = 2  # the model loads but kept no snapshots: only the map after training is written


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
    replay = commands.add_parser(
        "replay", help="a run's filter evolution (GIF, PNG strip) and its learned map (PNG), for slides",
        description="From a model saved with its training snapshots (train --snapshots, or Save on the "
        "Train page): filters.gif, the first learned convolution's filters at every snapshot (one "
        "frame each, its step written over it), filters_strip.png, the same frames in rows, and "
        "map.png, the penultimate features of the run's test images projected to 2-D before and "
        "after training, coloured by class. A model without snapshots gets map.png after training "
        f"only, a sentence, and exit status {NO_SNAPSHOTS_EXIT}.",
    )
    replay.add_argument("--model", required=True, metavar="M",
                        help="a cnnviz model file (.pt) or a shipped model's name (mnist, cifar10)")
    replay.add_argument("--out", required=True, metavar="DIR", help="the folder to write the pictures to")
    replay.add_argument("--method", choices=METHODS, default="pca", help="the map's projection")
    replay.add_argument("--seed", type=int, default=0, help="the projection's seed")
    replay.add_argument("--data-dir", metavar="DIR", help="where the datasets are")
    replay.set_defaults(func=run_replay)
    bench = benches.add_parser(
        "projection", help="time the map of what a net learned: features, PCA and t-SNE of test images",
        description="For each shipped model: the penultimate features of a balanced sample of test "
        "images, their PCA and t-SNE maps (each timed once after a warm-up PCA), and how well each map "
        "sorts the classes (leave-one-out 5-nearest-neighbour accuracy in 2-D), against the budget "
        f"(PCA <= {TARGET_SECONDS['pca']:.0f} s, t-SNE <= {TARGET_SECONDS['tsne']:.0f} s).",
    )
    bench.add_argument("--points", type=int, default=PROJECTION_IMAGES, help="test images on the map")
    bench.add_argument("--threads", type=int, default=PROJECTION_THREADS, help="CPU threads")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(func=run_bench)


def bench_model(name: str, points: int, threads: int) -> dict[str, Any]:
    """One shipped model's timings (seconds) and map scores."""
    loaded = load_checkpoint(MODELS_DIR / f"{name}.pt")
    test = load_dataset(loaded.dataset, "test")
    sample = projection_sample(test.labels, count=points)
    labels = test.labels[sample]
    start = time.perf_counter()
    features = penultimate_features(loaded.model, test.images[sample], loaded.mean, loaded.std)
    report: dict[str, Any] = {"model": name, "points": len(sample), "features": features.shape[1],
                              "features_s": time.perf_counter() - start}
    project(features[:50], "pca", threads=threads)  # scikit-learn's first call loads its BLAS
    for method in METHODS:
        start = time.perf_counter()
        mapped = project(features, method, seed=0, threads=threads)
        report[f"{method}_s"] = time.perf_counter() - start
        report[f"{method}_knn"] = knn_accuracy(mapped, labels)
        report[f"{method}_within_budget"] = report[f"{method}_s"] <= TARGET_SECONDS[method]
    return report


def run_bench(args: argparse.Namespace) -> int:
    if args.points < 3:
        raise ValueError("--points must be at least 3.")
    torch.set_num_threads(max(1, args.threads))
    load = os.getloadavg()[0]
    reports = [bench_model(path.stem, args.points, max(1, args.threads)) for path in list_models(MODELS_DIR)]
    if args.json:
        print(json.dumps({"load_average": load, "models": reports}, indent=2))
        return 0
    print(f"load average before: {load:.1f} on {os.cpu_count()} cores (a shared machine's other work "
          "slows every number)")
    for r in reports:
        print(f"{r['model']}: {r['points']:,} test images, {r['features']} features each in "
              f"{r['features_s']:.2f} s; PCA {r['pca_s']:.2f} s (5-NN accuracy in 2-D {r['pca_knn']:.3f}), "
              f"t-SNE {r['tsne_s']:.2f} s ({r['tsne_knn']:.3f})"
              + ("" if r["pca_within_budget"] and r["tsne_within_budget"] else "  OVER BUDGET"))
    return 0


def _out_dir(name: str) -> Path:
    out = Path(name)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {name} is a file, not a folder.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_map(loaded: LoadedModel, out: Path, method: str, seed: int, data_dir: str | None) -> Path:
    """map.png: the map after training, beside the one before when the run's snapshots kept it."""
    test = load_dataset(loaded.dataset, "test", data_dir=data_dir)
    made = learned_map(loaded.model, test, loaded.mean, loaded.std, loaded.snapshots)
    name = METHOD_NAMES[method]
    panels = [(f"after training ({name})", project(made.after, method, seed))]
    if made.before is not None:
        panels.insert(0, (f"before training ({name})", project(made.before, method, seed)))
    path = out / "map.png"
    projection_image(panels, made.labels, loaded.classes).save(path)
    return path


def run_replay(args: argparse.Namespace) -> int:
    out = _out_dir(args.out)
    torch.set_num_threads(PROJECTION_THREADS)
    loaded = load_checkpoint(resolve_model(args.model))
    written, status = [], 0
    runs = loaded.snapshots
    if runs is not None and runs.snapshots:
        written.append(write_filter_gif(runs, out / "filters.gif"))
        written.append(write_filter_strip(runs, out / "filters_strip.png"))
    written.append(write_map(loaded, out, args.method, args.seed, args.data_dir))
    for path in written:
        print(f"wrote {path}")
    if runs is None or not runs.snapshots:
        reason = loaded.snapshot_problem or (f"{args.model} was saved without its training snapshots (train "
                                             "it with --snapshots, or save the run from the Train page)")
        print(f"{reason.rstrip('.')}, so there is no filter evolution to replay; map.png shows the "
              "network after training only.", file=sys.stderr)
        status = NO_SNAPSHOTS_EXIT
    return status
