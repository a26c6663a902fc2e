"""`python -m cnnviz export`: a trained model as an ONNX file and as the script that trains it."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnviz.commands.explorer_commands import resolve_model
from cnnviz.networks.onnx_export import ONNX_OPSET
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.takeaway import model_onnx_bytes, model_script


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="a trained model as ONNX (--onnx) and/or its training script (--code)",
        description="Write a cnnviz model as an ONNX file (opens in Netron and onnxruntime: input "
        "'images' (batch, C, H, W) normalized as in training, output 'logits'; the class names, mean "
        "and std are in its metadata) and/or the self-contained PyTorch script that trains its spec "
        "with its recipe (torch and torchvision only).",
    )
    export.add_argument("--model", required=True, metavar="M",
                        help="a cnnviz model file (.pt) or a shipped model's name (mnist, cifar10)")
    export.add_argument("--onnx", metavar="FILE", help="write the model as ONNX to FILE (e.g. mnist.onnx)")
    export.add_argument("--code", metavar="FILE", help="write the training script to FILE (e.g. train.py)")
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    if not args.onnx and not args.code:
        raise ValueError("Say what to write: --onnx FILE for the model, --code FILE for its training "
                         "script, or both.")
    loaded = load_checkpoint(resolve_model(args.model))
    if args.code:  # first: it fails on a file without training settings before anything is written
        script, _ = model_script(loaded, Path(args.code).name)
        _write(Path(args.code), script.encode(), "the training script")
        print(f"wrote {args.code}: the training script of '{loaded.spec}' on {loaded.dataset} "
              f"({len(script.splitlines())} lines; run it with: python {Path(args.code).name} --data DIR)")
    if args.onnx:
        data = model_onnx_bytes(loaded)
        _write(Path(args.onnx), data, "the ONNX file")
        print(f"wrote {args.onnx}: ONNX opset {ONNX_OPSET}, {len(data) / 1e6:.1f} MB, input 'images' "
              f"(batch, {', '.join(map(str, loaded.input_shape))}), output 'logits' for "
              f"{len(loaded.classes)} classes ({', '.join(loaded.classes)})")
    return 0


def _write(path: Path, data: bytes, what: str) -> None:
    try:
        path.write_bytes(data)
    except OSError as error:
        raise ValueError(f"Cannot write {what} to {path}: {error.strerror or error}. "
                         "Choose a folder you can write to.") from error
