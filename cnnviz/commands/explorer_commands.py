"""`python -m cnnviz explain-cell`: the real computation behind one number of a trained network."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from cnnviz.datasets.files import load_dataset
from cnnviz.explorer.cell import Cell, explain_cell
from cnnviz.explorer.cell_text import explanation_text
from cnnviz.explorer.layers import trace
from cnnviz.images.decode import read_image_file
from cnnviz.images.predict import INFERENCE_THREADS
from cnnviz.images.preprocess import normalize_image, preprocess
from cnnviz.networks.receptive_field import cell_box, layer_fields
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import LoadedModel, list_models, load_checkpoint


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
    explain = commands.add_parser(
        "explain-cell", help="the real arithmetic behind one number of a trained network",
        description="Run one image through a trained model and show how one cell (layer, channel, row, "
        "column) was computed: the convolution's windows, kernels, products and partial sums (the input "
        "channels that contribute most, the rest as one total), the bias, then BatchNorm, ReLU, max pool "
        "winner, residual addition or the dense layer's largest terms, each with its numbers; for the "
        "logits also the softmax. Layers are numbered as the summary command numbers them, from 0; a "
        "dense layer's unit is its --channel.",
    )
    explain.add_argument("--model", required=True, metavar="M",
                         help="a cnnviz model file (.pt) or a shipped model's name (mnist, cifar10)")
    source = explain.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="FILE",
                        help="an image file, prepared as the predict command prepares it")
    source.add_argument("--test-index", type=int, metavar="N", help="image N of the model's test set")
    explain.add_argument("--layer", type=int, required=True, metavar="L", help="layer number, from 0")
    explain.add_argument("--channel", type=int, required=True, metavar="C", help="channel (dense: unit)")
    explain.add_argument("--row", type=int, default=0, metavar="R", help="row (default 0)")
    explain.add_argument("--col", type=int, default=0, metavar="X", help="column (default 0)")
    explain.add_argument("--top-channels", type=int, default=4, metavar="K",
                         help="input channels of a convolution shown one by one (default 4)")
    explain.add_argument("--top-terms", type=int, default=8, metavar="K",
                         help="terms of a dense layer shown one by one (default 8)")
    explain.add_argument("--data-dir", metavar="DIR", help="where the datasets are (for --test-index)")
    explain.add_argument("--json", action="store_true", help="print JSON")
    explain.set_defaults(func=run_explain_cell)


def resolve_model(name: str) -> Path:
    """A model file's path from a path or a shipped model's name ("mnist" -> models/mnist.pt)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = {p.stem: p for p in list_models(MODELS_DIR)}
    if name in shipped:
        return shipped[name]
    names = ", ".join(sorted(shipped)) or "none here"
    raise ValueError(f"There is no model file {name}: pass a .pt file or a shipped model's name ({names}).")


def _input_image(args: argparse.Namespace, loaded: LoadedModel) -> tuple[torch.Tensor, dict[str, Any]]:
    """The normalized image and a description of where it came from."""
    if args.image is not None:
        decoded = read_image_file(args.image)
        return preprocess(decoded, loaded.dataset, loaded.mean, loaded.std).tensor, {"image": args.image}
    test = load_dataset(loaded.dataset, "test", args.data_dir, download=False)
    if not 0 <= args.test_index < len(test):
        raise ValueError(f"The {loaded.dataset} test set has {len(test)} images: pick --test-index 0 to "
                         f"{len(test) - 1}.")
    label = int(test.labels[args.test_index])
    tensor = normalize_image(test.images[args.test_index], loaded.mean, loaded.std)
    return tensor, {"test_index": args.test_index, "label": loaded.classes[label]}


def receptive_field(loaded: LoadedModel, cell: Cell) -> dict[str, Any]:
    """The input rows and columns the cell depends on (padding left out), and for a feature layer its
    receptive-field arithmetic (size, jump, start) with the box before it is cut to the image."""
    box = cell_box(loaded.model, cell.layer, cell.row, cell.col)
    field: dict[str, Any] = {"rows": [box.top, box.bottom], "cols": [box.left, box.right],
                             "height": box.height, "width": box.width}
    geometry = layer_fields(loaded.model)[cell.layer]
    if geometry is not None:
        full = geometry.box(cell.row, cell.col)
        field.update(size=geometry.size, jump=geometry.jump, start=geometry.start,
                     unclipped_rows=[full.top, full.bottom], unclipped_cols=[full.left, full.right])
    return field


def _field_text(field: dict[str, Any]) -> str:
    if field["height"] == 0 or field["width"] == 0:
        return "receptive field: padding only, no pixel of the image"
    text = (f"receptive field: input rows {field['rows'][0]}..{field['rows'][1]}, columns "
            f"{field['cols'][0]}..{field['cols'][1]} ({field['height']}x{field['width']} pixels)")
    if "size" in field:
        text += f"; size {field['size']}, jump {field['jump']}, start {field['start']:g}"
        rows, cols = field["unclipped_rows"], field["unclipped_cols"]
        if (rows, cols) != (field["rows"], field["cols"]):  # "3x3 pixels; size 4" needs its reason
            text += (f" (the full {field['size']}x{field['size']} field, rows {rows[0]}..{rows[1]} and "
                     f"columns {cols[0]}..{cols[1]}, reaches into the zero padding outside the image)")
    return text


def run_explain_cell(args: argparse.Namespace) -> int:
    if args.top_channels < 1 or args.top_terms < 1:
        raise ValueError("--top-channels and --top-terms must be at least 1.")
    torch.set_num_threads(INFERENCE_THREADS)
    path = resolve_model(args.model)
    loaded = load_checkpoint(path)
    image, source = _input_image(args, loaded)
    cell = Cell(args.layer, args.channel, args.row, args.col)
    explanation = explain_cell(loaded.model, trace(loaded.model, image), cell, args.top_channels,
                               args.top_terms, loaded.classes)
    field = receptive_field(loaded, cell)
    if args.json:
        print(json.dumps({"model": str(path), "input": source, **explanation.to_dict(),
                          "receptive_field": field}, indent=2))
        return 0
    where = source.get("image") or f"test image {source['test_index']} ({source['label']})"
    print(f"{path.name} on {where}")
    print(explanation_text(explanation))
    print(_field_text(field))
    return 0
