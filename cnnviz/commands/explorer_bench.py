"""`python -m cnnviz bench explorer`: the network explorer's core timings on the shipped models."""

from __future__ import annotations

import json
import resource
import time
from typing import Any

import torch

from cnnviz.explorer.cell import Cell, explain_cell
from cnnviz.explorer.layers import net_layers, trace
from cnnviz.explorer.optimize import optimize_image
from cnnviz.explorer.top_images import TOP_K, clear_cache, layer_maxima, load_test_set, top_images
from cnnviz.paths import MODELS_DIR
from cnnviz.timing import median_ms
from cnnviz.training.checkpoint import LoadedModel, list_models, load_checkpoint

BENCH_REPEATS = 10
TARGET_TOP_S = 5.0
TARGET_OPTIMIZED_S = 3.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bench_layers(loaded: LoadedModel) -> tuple[int, int, int]:
    """The first ReLU, the deepest layer with maps bigger than 1x1, and the first convolution after the
    input's (the explained cell's layer)."""
    traced = trace(loaded.model, torch.zeros(1, *loaded.input_shape))
    layers = net_layers(loaded.model)
    first_relu = next(layer.number for layer in layers if layer.kind == "ReLU")
    deep = max(n for n, out in enumerate(traced.outputs) if out.dim() == 4 and out.shape[-1] > 1)
    convs = [layer.number for layer in layers if layer.kind == "Conv2d"]
    return first_relu, deep, convs[1] if len(convs) > 1 else convs[0]


def _seconds(work: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def bench_model(loaded: LoadedModel) -> dict[str, Any]:
    """One model's explorer timings (the cache is cleared first: "first time" is the first time)."""
    clear_cache()
    load_s, images = _seconds(lambda: load_test_set(loaded))
    model = loaded.model
    image = images.normalized(0, 1)
    traced = trace(model, image)
    first_relu, deep, conv = _bench_layers(loaded)
    side = traced.outputs[conv].shape[-1]
    cell = Cell(conv, 0, side // 2, side // 2)
    explain_ms = median_ms(lambda: explain_cell(model, traced, cell, classes=loaded.classes), BENCH_REPEATS)
    result: dict[str, Any] = {
        "model": loaded.name, "test_images": len(images), "load_test_set_s": round(load_s, 3),
        "trace_ms": round(median_ms(lambda: trace(model, image), BENCH_REPEATS), 2),
        "explain_cell": {"layer": conv, "cell": [cell.channel, cell.row, cell.col],
                         "ms": round(explain_ms, 2)},
        "top": [],
    }
    key = ("bench", loaded.name)
    for layer in (first_relu, deep):
        first_s, _ = _seconds(lambda layer=layer: top_images(model, images, layer, 0, TOP_K, key=key))
        later_s, _ = _seconds(lambda layer=layer: top_images(model, images, layer, 1, TOP_K, key=key))
        result["top"].append({
            "layer": layer, "first_s": round(first_s, 3), "later_channel_ms": round(later_s * 1000, 2),
            "cache_mb": round(layer_maxima(model, images, layer, key=key).nbytes / 2**20, 2),
            "within_target": first_s <= TARGET_TOP_S})
    optimized_s, made = _seconds(lambda: optimize_image(model, deep, 0, loaded.mean, loaded.std))
    stats = layer_maxima(model, images, deep, key=key).stats["mean"]
    result["optimized"] = {"layer": deep, "channel": 0, "steps": made.steps, "s": round(optimized_s, 3),
                           "activation": round(made.activation, 4),
                           "dataset_mean": round(float(stats[0][0]), 4),
                           "dataset_std": round(float(stats[1][0]), 4),
                           "within_target": optimized_s <= TARGET_OPTIMIZED_S}
    result["peak_rss_mb"] = round(_peak_mb(), 1)
    clear_cache()
    return result


def _text(result: dict[str, Any]) -> str:
    cell = result["explain_cell"]
    lines = [f"{result['model']}: test set loaded in {result['load_test_set_s']:.2f} s; trace "
             f"{result['trace_ms']:.1f} ms; explain cell {cell['cell']} of layer {cell['layer']} "
             f"{cell['ms']:.1f} ms"]
    for top in result["top"]:
        mark = "ok" if top["within_target"] else f"over the {TARGET_TOP_S:.0f} s target"
        lines.append(f"  top-9 of layer {top['layer']}: first time {top['first_s']:.2f} s ({mark}), a later "
                     f"channel {top['later_channel_ms']:.1f} ms, cache {top['cache_mb']:.1f} MB")
    made = result["optimized"]
    mark = "ok" if made["within_target"] else f"over the {TARGET_OPTIMIZED_S:.0f} s target"
    lines.append(f"  optimized image, layer {made['layer']} channel 0 ({made['steps']} steps): "
                 f"{made['s']:.2f} s "
                 f"({mark}); activation {made['activation']:.3f} vs test mean {made['dataset_mean']:.3f} "
                 f"(std {made['dataset_std']:.3f})")
    lines.append(f"  peak memory so far: {result['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)


def bench_models(threads: int, as_json: bool) -> int:
    """Bench every shipped model; prints text or JSON."""
    if threads < 1:
        raise ValueError("--threads must be at least 1.")
    torch.set_num_threads(threads)
    results = []
    for path in list_models(MODELS_DIR):
        result = bench_model(load_checkpoint(path))
        results.append(result)
        if not as_json:
            print(_text(result), flush=True)
    if as_json:
        print(json.dumps({"threads": threads, "models": results}, indent=2))
    return 0
