"""Where on the input image a cell of a layer looks: receptive-field arithmetic and the gradient footprint.

Layers are numbered as the model summary numbers them: the children of ``model.features``, then those
of ``model.classifier``, from 0 (the ``--layer`` of the command line).

**The arithmetic** (:func:`layer_fields`). After each feature layer, a cell's field is a square of
``size`` input pixels; neighbouring cells' fields are ``jump`` pixels apart, and ``start`` is the centre of
cell (0, 0)'s field in input pixel coordinates (pixel ``i`` has its centre at ``i``). The input image
itself has size 1, jump 1, start 0. A layer with kernel ``k``, stride ``s``, dilation ``d`` and ``p``
zeros of padding before the first pixel (PyTorch's ``padding="same"`` with an even kernel pads one
more *after* than before) gives, with ``e = d * (k - 1) + 1``::

    size' = size + (e - 1) * jump      jump' = jump * s      start' = start + ((e - 1) / 2 - p) * jump

BatchNorm, ReLU and dropout leave the field as it is. A global average pool is a pool whose window is
the whole map (its one cell's field usually covers the image and more). A residual block's field is
the union of its two paths' fields. Classifier layers (flatten, dense, logits) see the whole image:
their entry is None.

A field can reach outside the image: there it covers padding, not pixels. :func:`cell_box` with
``clip=True`` gives the pixels of the image a cell really depends on; when every stride is at most its
kernel that is the arithmetic box cut to the image, and it is exact also when a stride larger than the
kernel leaves holes in the field (it follows the cell's rows and columns back through every layer).

**The footprint** (:func:`gradient_footprint`): where the gradient of one cell of the real model, on the
real image, is non-zero. It lies inside the box and can be smaller: a ReLU that is off passes no gradient,
and a max pool passes it only to its winner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnviz.networks.build import ResidualBlock, SpecNet, eval_mode

# Layers that act on each number by itself (or per channel): a cell sees what the cell below saw.
ELEMENTWISE = (nn.BatchNorm2d, nn.ReLU, nn.Dropout, nn.Dropout2d, nn.Identity, nn.LeakyReLU, nn.GELU,
               nn.Sigmoid, nn.Tanh)


@dataclass(frozen=True)
class Box:
    """Input rows ``top..bottom`` and columns ``left..right``, inclusive. Empty when bottom < top."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return max(0, self.bottom - self.top + 1)

    @property
    def width(self) -> int:
        return max(0, self.right - self.left + 1)

    @property
    def is_empty(self) -> bool:
        return self.height == 0 or self.width == 0

    def clipped(self, height: int, width: int) -> Box:
        """The part of the box inside an image of ``height`` x ``width`` pixels (possibly empty)."""
        return Box(max(self.top, 0), max(self.left, 0),
                   min(self.bottom, height - 1), min(self.right, width - 1))

    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) to index an image with, e.g. ``image[..., rows, cols]`` (use a clipped box)."""
        return slice(self.top, self.bottom + 1), slice(self.left, self.right + 1)


@dataclass(frozen=True)
class FieldGeometry:
    """The receptive field of every cell of one layer (square kernels: the same along rows and columns)."""

    size: int  # side of the square of input pixels one cell depends on
    jump: int  # input pixels between the fields of two neighbouring cells
    start: float  # centre of cell (0, 0)'s field, in input pixel coordinates (may be x.5 or negative)

    @property
    def first(self) -> int:
        """The first input row (or column) of cell 0's field; negative when it starts in the padding."""
        return round(self.start - (self.size - 1) / 2)

    def box(self, row: int, col: int) -> Box:
        """The field of cell (row, col), unclipped: it may reach into the padding outside the image."""
        top, left = self.first + row * self.jump, self.first + col * self.jump
        return Box(top, left, top + self.size - 1, left + self.size - 1)


@dataclass(frozen=True)
class _Axis:
    """A field along one axis, by its first index (an integer, unlike the centre) and its size."""

    first: int
    size: int
    jump: int

    def geometry(self) -> FieldGeometry:
        return FieldGeometry(self.size, self.jump, self.first + (self.size - 1) / 2)


@dataclass(frozen=True)
class _Window:
    """A sliding window along one axis: kernel, stride, dilation, zeros before, output length rule."""

    kernel: int
    stride: int
    dilation: int
    before: int
    after: int
    ceil_mode: bool = False

    @property
    def extent(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    def output_length(self, length: int) -> int:
        span = length + self.before + self.after - self.extent
        if span < 0:
            raise ValueError(f"A window of {self.extent} does not fit a map of {length}.")
        if not self.ceil_mode:
            return span // self.stride + 1
        out = -(-span // self.stride) + 1
        return out - 1 if (out - 1) * self.stride >= length + self.before else out  # PyTorch's rule

    def through(self, axis: _Axis) -> _Axis:
        return _Axis(axis.first - self.before * axis.jump, axis.size + (self.extent - 1) * axis.jump,
                     axis.jump * self.stride)

    def inputs(self, outputs: np.ndarray, length: int) -> np.ndarray:
        """The input indices (inside the map, not padding) the output indices ``outputs`` read."""
        taps = np.arange(self.kernel) * self.dilation - self.before
        indices = (outputs[:, None] * self.stride + taps[None, :]).ravel()
        return np.unique(indices[(indices >= 0) & (indices < length)])


def _first(value: int | tuple[int, ...]) -> int:
    return value if isinstance(value, int) else value[0]


def _square(module: nn.Module, *values: int | tuple[int, ...]) -> None:
    for value in values:
        if not isinstance(value, int) and len(set(value)) != 1:
            raise ValueError(f"{type(module).__name__} has a non-square window {value}; only square ones "
                             "have one receptive field size.")


def _window(module: nn.Module, length: int) -> _Window | None:
    """The sliding window of a conv or pool layer (None for other layers)."""
    if isinstance(module, nn.Conv2d):
        _square(module, module.kernel_size, module.stride, module.dilation)
        if module.padding_mode != "zeros":
            raise ValueError(f"Padding mode {module.padding_mode!r} repeats real pixels; only zero padding "
                             "has a receptive-field box.")
        kernel, stride, dilation = module.kernel_size[0], module.stride[0], module.dilation[0]
        if module.padding == "same":
            total = dilation * (kernel - 1)
            return _Window(kernel, stride, dilation, total // 2, total - total // 2)  # extra zero after
        pad = 0 if module.padding == "valid" else _first(module.padding)
        _square(module, module.padding)
        return _Window(kernel, stride, dilation, pad, pad)
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        stride = module.stride if module.stride is not None else module.kernel_size
        dilation = getattr(module, "dilation", 1)
        _square(module, module.kernel_size, stride, module.padding, dilation)
        pad = _first(module.padding)
        kernel = _first(module.kernel_size)
        return _Window(kernel, _first(stride), _first(dilation), pad, pad, module.ceil_mode)
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        size = module.output_size
        out = length if _first(size) is None else _first(size)
        if not isinstance(size, int):
            _square(module, tuple(length if s is None else s for s in size))
        if length % out:
            raise ValueError(f"An adaptive pool from {length} to {out} has windows of unequal sizes; "
                             "only one that divides the map evenly has one receptive field size.")
        return _Window(length // out, length // out, 1, 0, 0)
    return None


def _through(module: nn.Module, axis: _Axis, length: int) -> tuple[_Axis, int]:
    """The field and the map length after ``module`` (one feature layer, or a part of one)."""
    window = _window(module, length)
    if window is not None:
        return window.through(axis), window.output_length(length)
    if isinstance(module, nn.Sequential):
        for child in module:
            axis, length = _through(child, axis, length)
        return axis, length
    if isinstance(module, ResidualBlock):
        body, body_length = _through(module.body, axis, length)
        short, short_length = _through(module.shortcut, axis, length)
        assert (body.jump, body_length) == (short.jump, short_length), "the two paths are added"
        first = min(body.first, short.first)
        last = max(body.first + body.size, short.first + short.size) - 1
        return _Axis(first, last - first + 1, body.jump), body_length
    if isinstance(module, ELEMENTWISE):
        return axis, length
    raise ValueError(f"No receptive-field rule for a {type(module).__name__} layer.")


def _inputs(module: nn.Module, outputs: np.ndarray, length: int) -> np.ndarray:
    """The input indices (rows or columns, in the map ``module`` receives, ``length`` long) that the
    output indices ``outputs`` depend on, padding excluded."""
    window = _window(module, length)
    if window is not None:
        return window.inputs(outputs, length)
    if isinstance(module, nn.Sequential):
        lengths = [length]
        for child in module:
            lengths.append(_through(child, _Axis(0, 1, 1), lengths[-1])[1])
        for child, child_length in zip(reversed(module), reversed(lengths[:-1]), strict=True):
            outputs = _inputs(child, outputs, child_length)
        return outputs
    if isinstance(module, ResidualBlock):
        return np.union1d(_inputs(module.body, outputs, length), _inputs(module.shortcut, outputs, length))
    if isinstance(module, ELEMENTWISE):
        return outputs
    raise ValueError(f"No receptive-field rule for a {type(module).__name__} layer.")


def numbered_modules(model: SpecNet) -> list[nn.Module]:
    """Layer n of the summary (and of ``cnnviz.explorer.layers.net_layers``): features, then classifier."""
    return [*model.features, *model.classifier]


def layer_fields(model: SpecNet) -> list[FieldGeometry | None]:
    """The receptive field after every numbered layer: a :class:`FieldGeometry` for each feature layer,
    None (the whole image) for each classifier layer.

    Raises:
        ValueError: for a layer with no such rule (non-square windows, reflect padding, unknown modules).
    """
    axis, length = _Axis(0, 1, 1), model.input_shape[1]
    fields: list[FieldGeometry | None] = []
    for module in model.features:
        axis, length = _through(module, axis, length)
        fields.append(axis.geometry())
    return fields + [None] * len(model.classifier)


def _map_length(model: SpecNet, layer_number: int) -> int | None:
    """The side of layer ``layer_number``'s maps (None for a classifier layer); ValueError if none."""
    modules = numbered_modules(model)
    if not 0 <= layer_number < len(modules):
        raise ValueError(f"Layer {layer_number} does not exist: this model has layers 0 to "
                         f"{len(modules) - 1}.")
    if layer_number >= len(model.features):
        return None
    length = model.input_shape[1]
    for module in model.features[: layer_number + 1]:
        length = _through(module, _Axis(0, 1, 1), length)[1]
    return length


def _check_cell(layer_number: int, length: int | None, row: int, col: int) -> None:
    if length is None:
        if (row, col) != (0, 0):
            raise ValueError(f"Layer {layer_number} is a dense layer: its units have no row or column "
                             "(use row 0, column 0).")
    elif not (0 <= row < length and 0 <= col < length):
        raise ValueError(f"Cell ({row}, {col}) is outside layer {layer_number}'s {length}x{length} maps: "
                         f"rows and columns go from 0 to {length - 1}.")


def cell_box(model: SpecNet, layer_number: int, row: int, col: int, clip: bool = True) -> Box:
    """The input rows and columns cell (row, col) of layer ``layer_number`` depends on.

    Args:
        clip: True: only the image's own pixels the cell depends on (padding excluded; an empty box for a
            cell that sees padding only). False: the arithmetic box of :func:`layer_fields`, which can
            reach outside the image. A classifier layer (row = col = 0) gives the whole image, or with
            ``clip`` the pixels the flattened maps depend on.

    Raises:
        ValueError: when the layer or the cell does not exist.
    """
    _check_cell(layer_number, _map_length(model, layer_number), row, col)
    features = len(model.features)
    height = model.input_shape[1]
    if not clip:
        geometry = layer_fields(model)[layer_number]
        return Box(0, 0, height - 1, height - 1) if geometry is None else geometry.box(row, col)
    chain = nn.Sequential(*model.features[: min(layer_number + 1, features)])
    if layer_number >= features:
        out = _through(chain, _Axis(0, 1, 1), height)[1]
        rows = cols = _inputs(chain, np.arange(out), height)
    else:
        rows = _inputs(chain, np.array([row]), height)
        cols = _inputs(chain, np.array([col]), height)
    if len(rows) == 0 or len(cols) == 0:
        return Box(0, 0, -1, -1)
    return Box(int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1]))


def gradient_footprints(
    model: SpecNet, image: torch.Tensor, layer_number: int, cells: Sequence[tuple[int, int, int]],
) -> torch.Tensor:
    """:func:`gradient_footprint` for many cells (channel, row, col) of one layer at once: (len(cells), H, W).

    The image is repeated once per cell and run as one batch in eval mode, where images do not
    interact, so one backward pass gives every cell's gradient.
    """
    length = _map_length(model, layer_number)
    for _channel, row, col in cells:
        _check_cell(layer_number, length, row, col)
    parameter = next(model.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    x = torch.as_tensor(image).detach().to(dtype)
    x = x.unsqueeze(0) if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[0] != 1 or tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ValueError(f"Expected one image of shape {tuple(model.input_shape)}, got {tuple(x.shape)}.")
    if not cells:
        return torch.zeros(0, *x.shape[2:], dtype=torch.bool)
    leaf = x.repeat(len(cells), 1, 1, 1).requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        hidden = leaf
        for module in numbered_modules(model)[: layer_number + 1]:
            hidden = module(hidden.clone())  # in-place ReLUs must not overwrite what backward needs
        channels = torch.tensor([cell[0] for cell in cells])
        if int(channels.min()) < 0 or int(channels.max()) >= hidden.shape[1]:
            raise ValueError(f"Layer {layer_number} has channels (or units) 0 to {hidden.shape[1] - 1}.")
        batch = torch.arange(len(cells))
        if hidden.dim() == 4:
            rows, cols = torch.tensor([cell[1] for cell in cells]), torch.tensor([cell[2] for cell in cells])
            picked = hidden[batch, channels, rows, cols]
        else:
            picked = hidden[batch, channels]
        (gradient,) = torch.autograd.grad(picked.sum(), leaf)
    return gradient.ne(0).any(dim=1)  # (cells, H, W)


def gradient_footprint(
    model: SpecNet, image: torch.Tensor, layer_number: int, channel: int, row: int, col: int,
) -> torch.Tensor:
    """(H, W) bool: the input pixels where the gradient of cell (channel, row, col) of layer
    ``layer_number`` is non-zero, for the real model (eval mode) on ``image`` ((1, C, H, W) or
    (C, H, W), normalized as the model was trained). For a dense layer ``channel`` is the unit and
    row = col = 0.

    Raises:
        ValueError: when the layer, channel or cell does not exist, or the image has the wrong shape.
    """
    return gradient_footprints(model, image, layer_number, [(channel, row, col)])[0]


def bounding_box(footprint: torch.Tensor) -> Box:
    """The smallest box around the True pixels of an (H, W) mask (empty when there are none)."""
    rows = torch.nonzero(footprint.any(dim=1)).flatten()
    cols = torch.nonzero(footprint.any(dim=0)).flatten()
    if len(rows) == 0:
        return Box(0, 0, -1, -1)
    return Box(int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1]))

