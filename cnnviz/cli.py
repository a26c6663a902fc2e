"""The command-line entry point: `python -m cnnviz COMMAND ...`.

Each command lives in a module of :mod:`cnnviz.commands` with a ``register(commands, benches)``
function that adds its sub-parsers; the parsers set ``func`` to the function that runs them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cnnviz import __version__
from cnnviz.commands import COMMAND_MODULES


def build_parser() -> argparse.ArgumentParser:
    """The parser for every command and benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m cnnviz",
        description="cnnviz: see a convolutional neural network work, number by number.",
    )
    parser.add_argument("--version", action="version", version=f"cnnviz {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bench = commands.add_parser(
        "bench", help="measure speed (data loading, frames, training, predictions)",
        description="Benchmarks: each prints what it measured, or JSON with --json.",
    )
    benches = bench.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for module in COMMAND_MODULES:
        module.register(commands, benches)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:  # problems the user can fix
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
