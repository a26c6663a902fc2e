"""`python -m cnnviz conv-size` (output-size arithmetic) and `bench conv` (frames and figure size)."""

from __future__ import annotations

import argparse

from cnnviz.convolution.arithmetic import describe, output_shape, parse_padding
from cnnviz.convolution.channels import conv_parameters
from cnnviz.convolution.transposed_sizes import describe_transposed, transposed_output_shape


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
    size = commands.add_parser(
        "conv-size",
        help="output size of a convolution or pooling layer, with the formula",
        description="Print the output size, the formula floor((n + 2p - d(k-1) - 1)/s) + 1 with the numbers "
        "filled in, and a note when the kernel does not fit exactly. Exits with status 2 when the "
        "setting is impossible.",
    )
    size.add_argument("--input", type=int, required=True, metavar="N", help="input height (and width)")
    size.add_argument(
        "--input-width", type=int, metavar="W", help="input width when it differs from the height"
    )
    size.add_argument(
        "--kernel", type=int, required=True, metavar="K", help="kernel (or pooling window) size"
    )
    size.add_argument(
        "--stride",
        type=int,
        metavar="S",
        help="step between windows (default: 1; with --pool: the window size)",
    )
    size.add_argument(
        "--padding",
        default="0",
        metavar="P|same|valid",
        help="zeros added on each side, or 'same' / 'valid' (default: 0)",
    )
    size.add_argument(
        "--dilation", type=int, default=1, metavar="D", help="gap between kernel taps (default: 1)"
    )
    size.add_argument(
        "--pool", action="store_true", help="a pooling window (at most half a window of padding)"
    )
    size.add_argument(
        "--transposed", action="store_true",
        help="a transposed convolution: (n - 1)s - 2p + d(k - 1) + output_padding + 1",
    )
    size.add_argument(
        "--output-padding", type=int, default=0, metavar="N",
        help="with --transposed: extra rows/columns at the bottom/right (default: 0)",
    )
    size.add_argument("--in-channels", type=int, metavar="C",
                      help="input channels: also print the layer's parameters")
    size.add_argument("--out-channels", type=int, metavar="K", help="output channels (kernels; default: C)")
    size.add_argument("--groups", type=int, metavar="G",
                      help="grouped convolution: each kernel sees C/G input channels (needs --in-channels)")
    size.set_defaults(func=run_conv_size)

    bench = benches.add_parser(
        "conv",
        help="time the convolution animation: frames, figure size, page compute",
        description="All frames of a 64x64 RGB input with one 3x3 kernel (stride 1, padding 1), the size "
        "of the figure sent to the browser, and the server time of a page rerun.",
    )
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.add_argument("--repeat", type=int, default=5, help="timed repetitions, best kept (default: 5)")
    bench.set_defaults(func=run_bench)


def run_conv_size(args: argparse.Namespace) -> int:
    padding = parse_padding(args.padding)
    width = args.input if args.input_width is None else args.input_width
    stride = args.stride if args.stride is not None else (args.kernel if args.pool else 1)
    if args.transposed:
        return run_transposed_size(args, padding, width, stride)
    if args.output_padding:
        raise ValueError("--output-padding belongs to a transposed convolution; add --transposed.")
    if args.dilation != 1 and args.pool:
        raise ValueError("Pooling windows have no dilation here; leave --dilation out with --pool.")
    sizes = output_shape(args.input, width, args.kernel, stride, padding, args.dilation, pool=args.pool)
    parameters = describe_parameters(args) if _counts_parameters(args) else ""  # a refusal before any output
    print(("pooling " if args.pool else "convolution ") + describe(sizes))
    if parameters:
        print(parameters)
    return 0


def run_transposed_size(args: argparse.Namespace, padding: int | str, width: int, stride: int) -> int:
    if args.pool or isinstance(padding, str):
        raise ValueError("A transposed convolution takes a number of zeros as --padding and no --pool.")
    sizes = transposed_output_shape(args.input, width, args.kernel, stride, padding, args.output_padding,
                                    args.dilation)
    # nn.ConvTranspose2d(C, K, k, groups=G) has as many weights as nn.Conv2d(C, K, k, groups=G)
    parameters = describe_parameters(args) if _counts_parameters(args) else ""
    print("transposed convolution " + describe_transposed(sizes))
    if parameters:
        print(parameters)
    return 0


def _counts_parameters(args: argparse.Namespace) -> bool:
    return args.in_channels is not None or args.groups is not None or args.out_channels is not None


def describe_parameters(args: argparse.Namespace) -> str:
    """The layer's parameters (with --groups) next to the ordinary convolution's; ValueError when the
    channels are missing or the groups do not divide them."""
    if args.pool:
        raise ValueError("A pooling window has no parameters; leave --groups and the channels out "
                         "with --pool.")
    if args.in_channels is None:
        raise ValueError("Give --in-channels C (and --out-channels K) to count the parameters.")
    out_channels = args.in_channels if args.out_channels is None else args.out_channels
    groups = 1 if args.groups is None else args.groups
    layer, ordinary = conv_parameters(args.in_channels, out_channels, args.kernel, groups)
    lines = [f"parameters (groups {groups}): {layer.formula}"]
    if groups > 1:
        lines.append(f"ordinary convolution (groups 1): {ordinary.formula}")
        lines.append(f"groups {groups} keep {layer.total} of {ordinary.total} parameters "
                     f"({layer.total / ordinary.total:.1%})")
    lines.append(f"multiply-adds per output cell: {layer.mult_adds_per_cell}"
                 + (f" (ordinary: {ordinary.mult_adds_per_cell})" if groups > 1 else ""))
    return "\n".join(lines)


def run_bench(args: argparse.Namespace) -> int:
    # Streamlit warns that it runs without a server; a benchmark's output is better without that.
    import streamlit.logger

    streamlit.logger.set_log_level("error")
    from cnnviz.ui.convolution.bench import (
        run_conv_bench,  # imports plotly and streamlit: only when benchmarking
    )

    return run_conv_bench(args.json, args.repeat)
