"""The compact architecture spec: a parser from text like ``C32 C32 M D0.25 F128`` to layer records.

Tokens are separated by spaces:

- ``C<n>``: Conv2d with n filters, 3x3, "same" padding, then ReLU. Suffixes ``k<size>`` (kernel),
  ``s<stride>``, ``p<padding>``, ``n`` (BatchNorm before the ReLU), ``m`` or ``m<size>`` (a max pool,
  2x2 by default, straight after the convolution, before the BatchNorm and ReLU), e.g. ``C32k5n``,
  ``C64nm``.
- ``R<n>``: a residual block ``x + ReLU(BN(conv(ReLU(BN(conv(x))))))`` with n filters (3x3, "same");
  when n differs from the input channels the shortcut is a 1x1 convolution.
- ``M<size>`` max pool, ``A<size>`` average pool (default 2, stride = size); ``G`` global average pool.
- ``D<rate>``: dropout with probability ``rate`` (0 <= rate < 1), e.g. ``D0.25``.
- ``F<n>``: Linear with n units then ReLU (a flatten is inserted where needed).

The classifier (Linear to the number of classes) is appended by :func:`cnnviz.networks.build.build_model`.
This is a parser: the text is matched token by token against regular expressions and nothing in it
is ever evaluated as code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_TOKENS = 64  # a spec longer than this is a typo or an attack, not a teaching net
MAX_WIDTH = 4096  # filters or units in one layer
MAX_KERNEL = 15
MAX_SPEC_CHARS = 1000

TOKEN_HELP = (
    "C<n> (conv, suffixes k<size> s<stride> p<padding> n=BatchNorm m=max pool first), R<n> (residual block), "
    "M<size> / A<size> (max / average pool), G (global average pool), D<rate> (dropout), F<n> (dense)"
)


class SpecError(ValueError):
    """A spec that cannot be parsed or built; the message names the token and what was expected."""

    def __init__(self, message: str, token: str = "", index: int | None = None) -> None:
        super().__init__(message)
        self.token = token
        self.index = index  # 0-based position of the token in the spec, None for the whole spec


@dataclass(frozen=True)
class Conv:
    filters: int
    kernel: int = 3
    stride: int = 1
    padding: int | None = None  # None = "same" for stride 1: kernel // 2
    batch_norm: bool = False
    pool: int = 0  # size of the max pool straight after the convolution (0: none)
    token: str = ""

    @property
    def pad(self) -> int:
        return self.kernel // 2 if self.padding is None else self.padding


@dataclass(frozen=True)
class Residual:
    filters: int
    token: str = ""


@dataclass(frozen=True)
class Pool:
    kind: str  # "max" or "avg"
    size: int = 2
    token: str = ""


@dataclass(frozen=True)
class GlobalPool:
    token: str = "G"


@dataclass(frozen=True)
class Dropout:
    rate: float
    token: str = ""


@dataclass(frozen=True)
class Dense:
    units: int
    token: str = ""


LayerSpec = Conv | Residual | Pool | GlobalPool | Dropout | Dense

_CONV = re.compile(r"C(\d+)((?:[ksp]\d+|n|m\d*)*)")
_CONV_SUFFIX = re.compile(r"([ksp])(\d+)|n|m(\d*)")
_RESIDUAL = re.compile(r"R(\d+)")
_POOL = re.compile(r"([MA])(\d+)?")
_DROPOUT = re.compile(r"D(\d*\.?\d+)")
_DENSE = re.compile(r"F(\d+)")


def parse_spec(spec: str) -> list[LayerSpec]:
    """Parse a spec string into layer records.

    Raises:
        SpecError: with the offending token, its position and what was expected there.
    """
    if not isinstance(spec, str):
        raise SpecError("The spec must be text such as 'C32 M F64'.")
    if len(spec) > MAX_SPEC_CHARS:
        raise SpecError(f"The spec is {len(spec)} characters long; keep it under {MAX_SPEC_CHARS}.")
    tokens = spec.split()
    if not tokens:
        raise SpecError(f"The spec is empty: write layers such as 'C32 M C64 M F128'. Tokens: {TOKEN_HELP}.")
    if len(tokens) > MAX_TOKENS:
        raise SpecError(f"The spec has {len(tokens)} layers; at most {MAX_TOKENS} are allowed.")
    return [_parse_token(token, index) for index, token in enumerate(tokens)]


def describe_error_position(spec: str, error: SpecError) -> str:
    """The spec with a caret line under the offending token (for monospace display)."""
    if error.index is None:
        return spec
    tokens = spec.split()
    start = len(" ".join(tokens[: error.index])) + (1 if error.index else 0)
    joined = " ".join(tokens)
    return f"{joined}\n{' ' * start}{'^' * len(tokens[error.index])}"


def _fail(token: str, index: int, expected: str) -> SpecError:
    return SpecError(f"Token {index + 1} '{token}': {expected}", token=token, index=index)


def _positive(value: str, token: str, index: int, what: str, limit: int) -> int:
    number = int(value)
    if not 1 <= number <= limit:
        raise _fail(token, index, f"{what} must be between 1 and {limit}, got {number}.")
    return number


def _parse_token(token: str, index: int) -> LayerSpec:
    parse = _PARSERS.get(token[0])
    if parse is None:
        hint = " (letters are upper case)" if token[0].upper() in _PARSERS else ""
        raise _fail(token, index, f"unknown layer{hint}; expected one of {TOKEN_HELP}.")
    return parse(token, index)


def _parse_residual(token: str, index: int) -> Residual:
    match = _RESIDUAL.fullmatch(token)
    if not match:
        raise _fail(token, index, "expected R<n>, a residual block with n filters, e.g. R64.")
    return Residual(_positive(match[1], token, index, "the number of filters", MAX_WIDTH), token)


def _parse_pool(token: str, index: int) -> Pool:
    head = token[0]
    match = _POOL.fullmatch(token)
    if not match:
        raise _fail(token, index, f"expected {head} or {head}<size>, e.g. {head}2.")
    size = _positive(match[2] or "2", token, index, "the pool size", MAX_KERNEL)
    return Pool("max" if head == "M" else "avg", size, token)


def _parse_global_pool(token: str, index: int) -> GlobalPool:
    if token != "G":
        raise _fail(token, index, "expected G alone (global average pool).")
    return GlobalPool(token)


def _parse_dropout(token: str, index: int) -> Dropout:
    match = _DROPOUT.fullmatch(token)
    if not match:
        raise _fail(token, index, "expected D<rate> with a rate such as 0.25, e.g. D0.25.")
    rate = float(match[1])
    if not 0.0 <= rate < 1.0:
        raise _fail(token, index, f"the dropout rate must be at least 0 and below 1, got {rate}.")
    return Dropout(rate, token)


def _parse_dense(token: str, index: int) -> Dense:
    match = _DENSE.fullmatch(token)
    if not match:
        raise _fail(token, index, "expected F<n>, a dense layer with n units, e.g. F128.")
    return Dense(_positive(match[1], token, index, "the number of units", MAX_WIDTH), token)


def _parse_conv(token: str, index: int) -> Conv:
    match = _CONV.fullmatch(token)
    if not match:
        raise _fail(
            token, index,
            "expected C<n> with optional suffixes k<size>, s<stride>, p<padding>, n, m, e.g. C32, C64k5n "
            "or C64nm.",
        )
    filters = _positive(match[1], token, index, "the number of filters", MAX_WIDTH)
    options: dict[str, int] = {}
    batch_norm = False
    for suffix in _CONV_SUFFIX.finditer(match[2]):
        if suffix[0] == "n":
            if batch_norm:
                raise _fail(token, index, "the suffix n (BatchNorm) is given twice.")
            batch_norm = True
            continue
        if suffix[0].startswith("m"):
            if "m" in options:
                raise _fail(token, index, "the suffix m (max pool) is given twice.")
            options["m"] = _positive(suffix[3] or "2", token, index, "the pool size", MAX_KERNEL)
            continue
        letter, value = suffix[1], int(suffix[2])
        if letter in options:
            raise _fail(token, index, f"the suffix {letter} is given twice.")
        options[letter] = value
    kernel = options.get("k", 3)
    if not 1 <= kernel <= MAX_KERNEL:
        raise _fail(token, index, f"the kernel size must be between 1 and {MAX_KERNEL}, got {kernel}.")
    stride = options.get("s", 1)
    if not 1 <= stride <= MAX_KERNEL:
        raise _fail(token, index, f"the stride must be between 1 and {MAX_KERNEL}, got {stride}.")
    padding = options.get("p")
    if padding is not None and padding > kernel:
        raise _fail(token, index, f"the padding ({padding}) must not exceed the kernel size ({kernel}).")
    return Conv(filters, kernel, stride, padding, batch_norm, options.get("m", 0), token)


_PARSERS: dict[str, Callable[[str, int], LayerSpec]] = {
    "C": _parse_conv, "R": _parse_residual, "M": _parse_pool, "A": _parse_pool, "G": _parse_global_pool,
    "D": _parse_dropout, "F": _parse_dense,
}
