"""`python -m cnnviz top-images`: the test images that excite one channel most, and an optimized image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from cnnviz.commands.explorer_commands import resolve_model
from cnnviz.explorer.layers import find_layer
from cnnviz.explorer.optimize import OBJECTIVES, optimize_image
from cnnviz.explorer.top_images import TOP_K, TopCrop, crop_top_images, load_test_set, top_images
from cnnviz.training.checkpoint import LoadedModel, load_checkpoint

EXPLORER_THREADS = 1  # on a shared 2-core machine one thread was 2-3x faster than two (measured here)
PNG_SIDE = 160  # pixels a side of each saved crop and of the optimized image
MARK = (255, 40, 40)
CAPTION_PX = 18  # the line under each tile of the contact sheet


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
    top = commands.add_parser(
        "top-images", help="the test images whose strongest response in a channel is highest",
        description="Run all test images of the model's dataset through the layers up to --layer and "
        f"list the {TOP_K} whose strongest response in --channel is highest: their test-set index, label, "
        "value and the cell (row, column) where it is, with that cell's receptive field on the input. "
        "Layers are numbered as the summary command numbers them, from 0; a dense layer's unit is its "
        "--channel (no cell). With --out, PNGs of the crops (the cell's centre marked) and a contact "
        "sheet; with --optimized also an image made by gradient ascent on the input.",
    )
    top.add_argument("--model", required=True, metavar="M",
                     help="a cnnviz model file (.pt) or a shipped model's name (mnist, cifar10)")
    top.add_argument("--layer", type=int, required=True, metavar="L", help="layer number, from 0")
    top.add_argument("--channel", type=int, required=True, metavar="C", help="channel (or unit), from 0")
    top.add_argument("--k", type=int, default=TOP_K, help=f"how many images (default {TOP_K})")
    top.add_argument("--out", metavar="DIR", help="write PNGs of the crops, a contact sheet (and the "
                     "optimized image) to this folder")
    top.add_argument("--optimized", action="store_true",
                     help="also make an optimized image (gradient ascent from seeded noise)")
    top.add_argument("--objective", choices=OBJECTIVES, default="mean",
                     help="what the optimized image maximises: the channel's mean or its centre cell")
    top.add_argument("--seed", type=int, default=0, help="the optimized image's starting noise")
    top.add_argument("--json", action="store_true", help="print JSON")
    top.set_defaults(func=run_top_images)
    register_bench(benches)


MAX_K = 100  # images a call may ask for: a contact sheet, not 10,000 PNGs


def run_top_images(args: argparse.Namespace) -> int:
    if args.k > MAX_K:
        raise ValueError(f"--k {args.k} is more than this command shows: ask for at most {MAX_K} images.")
    out = _out_dir(args.out)
    torch.set_num_threads(EXPLORER_THREADS)
    path = resolve_model(args.model)
    loaded = load_checkpoint(path)
    layer = find_layer(loaded.model, args.layer)
    images = load_test_set(loaded)
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    tops = top_images(loaded.model, images, args.layer, args.channel, k=args.k, key=key)
    crops = crop_top_images(loaded.model, images, args.layer, tops)
    report: dict[str, Any] = {
        "model": str(path), "layer": args.layer, "layer_name": layer.name, "channel": args.channel,
        "test_images": len(images), "top": [_entry(loaded, images.labels, crop) for crop in crops],
    }
    optimized = None
    if args.optimized:
        optimized = optimize_image(loaded.model, args.layer, args.channel, loaded.mean, loaded.std,
                                   objective=args.objective, seed=args.seed, images=images, key=key)
        report["optimized"] = optimized.to_json()
    if out is not None:
        captions = [_caption(rank, entry) for rank, entry in enumerate(report["top"], 1)]
        report["files"] = _write_pngs(out, crops, None if optimized is None else optimized.pixels, captions)
    print(json.dumps(report, indent=2) if args.json else _text(report))
    return 0


def _out_dir(name: str | None) -> Path | None:
    if name is None:
        return None
    out = Path(name)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {name} is a file, not a folder.")
    return out


def _entry(loaded: LoadedModel, labels: torch.Tensor | None, crop: TopCrop) -> dict[str, Any]:
    entry: dict[str, Any] = crop.top.to_json()
    if labels is not None:
        entry["label"] = loaded.classes[int(labels[crop.top.index])]
    box = crop.box
    entry["field"] = {"top": box.top, "left": box.left, "bottom": box.bottom, "right": box.right}
    return entry


def _text(report: dict[str, Any]) -> str:
    lines = [f"{report['model']}, layer {report['layer_name']}, channel {report['channel']}: the "
             f"{len(report['top'])} of {report['test_images']:,} test images with the strongest response"]
    for rank, entry in enumerate(report["top"], 1):
        where = "" if entry["row"] is None else f" at row {entry['row']}, col {entry['col']}"
        field = entry["field"]
        article = "an" if str(entry.get("label", ""))[:1].lower() in tuple("aeiou8") else "a"
        label = f" ({article} {entry['label']})" if "label" in entry else ""
        lines.append(f"{rank:2d}. test image {entry['index']:5d}{label}: {entry['value']:.4f}{where}; "
                     f"input rows {field['top']}-{field['bottom']}, cols {field['left']}-{field['right']}")
    if "optimized" in report:
        made = report["optimized"]
        lines.append(f"optimized image ({made['objective']}, seed {made['seed']}, {made['steps']} steps): "
                     f"{made['activation']:.4f}, against a mean of {made['dataset_mean']:.4f} "
                     f"(std {made['dataset_std']:.4f}) over the test images")
    for name in report.get("files", []):
        lines.append(f"wrote {name}")
    return "\n".join(lines)


def _enlarged(pixels: np.ndarray, side: int = PNG_SIDE) -> tuple[Image.Image, float]:
    """The pixels as an RGB image scaled (nearest) so the longer side is about ``side``; the scale."""
    image = Image.fromarray(pixels).convert("RGB")
    scale = max(1, side // max(pixels.shape[:2]))
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST), float(scale)


def marked_crop(crop: TopCrop) -> Image.Image:
    """The crop enlarged, its strongest cell's field centre marked with a red square (one input pixel)."""
    image, scale = _enlarged(crop.pixels)
    if crop.centre is not None:
        row, col = crop.centre
        draw = ImageDraw.Draw(image)
        draw.rectangle([col * scale - 1, row * scale - 1, (col + 1) * scale, (row + 1) * scale],
                       outline=MARK, width=2)
    return image


def _caption(rank: int, entry: dict[str, Any]) -> str:
    """A contact sheet tile's line: "1. test 3120 (3): 5.17"."""
    label = f" ({entry['label']})" if "label" in entry else ""
    return f"{rank}. test {entry['index']}{label}: {entry['value']:.3f}"


def _font_to_fit(draw: ImageDraw.ImageDraw, text: str) -> ImageFont.FreeTypeFont:
    """Pillow's own font, as large as fits under a tile ("(automobile)" needs a smaller one)."""
    size = CAPTION_PX - 4
    font = ImageFont.load_default(size=size)
    while size > 8 and draw.textlength(text, font=font) > PNG_SIDE - 4:
        size -= 1
        font = ImageFont.load_default(size=size)
    return font


def _tile(image: Image.Image) -> Image.Image:
    """The crop on a PNG_SIDE square, scaled by whole pixels with its shape kept (a field cut by the
    image border is narrower than it is tall), centred on white."""
    scale = max(1, PNG_SIDE // max(image.size))
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    if max(image.size) > PNG_SIDE:
        factor = PNG_SIDE / max(image.size)
        image = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                             Image.NEAREST)
    tile = Image.new("RGB", (PNG_SIDE, PNG_SIDE), "white")
    tile.paste(image, ((PNG_SIDE - image.width) // 2, (PNG_SIDE - image.height) // 2))
    return tile


def _write_pngs(out: Path, crops: list[TopCrop], optimized: np.ndarray | None,
                captions: list[str]) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    tiles = []
    for rank, crop in enumerate(crops, 1):
        image = marked_crop(crop)
        name = out / f"top{rank}_test{crop.top.index}.png"
        image.save(name)
        written.append(str(name))
        tiles.append(_tile(image))
    columns = min(3, len(tiles))
    rows = -(-len(tiles) // columns)
    cell_h = PNG_SIDE + CAPTION_PX + 4  # each tile with its line under it (index, label, value): slide-ready
    sheet = Image.new("RGB", (columns * (PNG_SIDE + 4) + 4, rows * cell_h + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, caption) in enumerate(zip(tiles, captions, strict=True)):
        left, top = 4 + (i % columns) * (PNG_SIDE + 4), 4 + (i // columns) * cell_h
        sheet.paste(tile, (left, top))
        draw.text((left + 2, top + PNG_SIDE + 2), caption, fill="black", font=_font_to_fit(draw, caption))
    sheet.save(out / "contact_sheet.png")
    written.append(str(out / "contact_sheet.png"))
    if optimized is not None:
        _enlarged(optimized)[0].save(out / "optimized.png")
        written.append(str(out / "optimized.png"))
    return written


def register_bench(benches: argparse._SubParsersAction) -> None:
    bench = benches.add_parser(
        "explorer", help="time the network explorer: trace, a cell's arithmetic, top-9, optimized image",
        description="For each shipped model: one test image's trace through every layer and the "
        "explanation of a cell (median of 10), the top-9 of all test images for a channel "
        "of the first ReLU and of the deepest layer with maps (the first time for the layer, and a later "
        "channel of it, from the cache), one optimized image of that deep layer, and the process's peak "
        f"memory. Runs on {EXPLORER_THREADS} torch thread unless --threads says otherwise.",
    )
    bench.add_argument("--threads", type=int, default=EXPLORER_THREADS, help="torch CPU threads")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from cnnviz.commands.explorer_bench import bench_models

    return bench_models(args.threads, args.json)
