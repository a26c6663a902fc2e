"""`python -m cnnviz data` (where the datasets are) and `bench data` (how fast they load)."""

from __future__ import annotations

import argparse
import json
import resource
import time

from cnnviz.datasets import files as data


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
    status = commands.add_parser(
        "data", help="show where the datasets are looked for, and fetch them when online",
        description="Show the data directory and whether MNIST and CIFAR-10 are there. "
        "With --download, fetch missing ones through torchvision (needs internet).",
    )
    add_data_dir_argument(status)
    status.add_argument("--download", action="store_true", help="download missing datasets")
    status.set_defaults(func=run_status)

    bench = benches.add_parser(
        "data", help="time loading MNIST and CIFAR-10 from local files",
        description="Load every split twice: cold (decoded from the files) and cached.",
    )
    add_data_dir_argument(bench)
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(func=run_bench)


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    """The --data-dir option every command that reads a dataset shares."""
    parser.add_argument(
        "--data-dir", metavar="DIR",
        help=f"folder in torchvision's layout (default: ${data.DATA_DIR_ENV}, else a per-user cache)",
    )


def run_status(args: argparse.Namespace) -> int:
    root = data.resolve_data_dir(args.data_dir)
    print(f"data directory: {root}")
    missing = 0
    for name, info in data.DATASETS.items():
        if not data.is_available(name, root) and args.download:
            print(f"  {info.title}: downloading ...")
            try:
                data.load_dataset(name, "test", root, download=True)
            except data.DataNotFoundError as err:
                print(f"  {err}")
        ok = data.is_available(name, root)
        missing += not ok
        print(f"  {info.title}: {'found' if ok else 'missing'}")
    return 1 if missing else 0


def run_bench(args: argparse.Namespace) -> int:
    results = []
    for name in data.DATASETS:
        data.clear_cache()
        start = time.perf_counter()
        splits = [data.load_dataset(name, split, args.data_dir, download=False) for split in data.SPLITS]
        cold = time.perf_counter() - start
        start = time.perf_counter()
        for split in data.SPLITS:
            data.load_dataset(name, split, args.data_dir, download=False)
        cached = time.perf_counter() - start
        results.append({
            "dataset": name,
            "images": sum(len(s) for s in splits),
            "seconds_cold": round(cold, 3),
            "seconds_cached": round(cached, 6),
            "megabytes": round(sum(s.images.numel() for s in splits) / 2**20, 1),
        })
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps({"datasets": results, "peak_rss_mb": round(peak_mb, 1)}, indent=2))
    else:
        for r in results:
            print(f"{r['dataset']:8s} {r['images']:6d} images ({r['megabytes']} MB uint8): "
                  f"{r['seconds_cold']:.3f} s from files, {r['seconds_cached'] * 1000:.3f} ms cached")
        print(f"peak memory: {peak_mb:.0f} MB")
    return 0
