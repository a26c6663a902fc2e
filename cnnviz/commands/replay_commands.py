"""`python -m cnnviz bench projection`: how long the map of what a network learned takes."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import torch

from cnnviz.datasets.files import load_dataset
from cnnviz.paths import MODELS_DIR
from cnnviz.replay.projection import METHODS, PROJECTION_THREADS, knn_accuracy, project
from cnnviz.training.checkpoint import list_models, load_checkpoint
from cnnviz.training.features import PROJECTION_IMAGES, penultimate_features, projection_sample

TARGET_SECONDS = {"pca": 1.0, "tsne": 15.0}  # issue 19's budget for 2,000 points on the 2-core CPU


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
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
