"""The architecture diagram of a spec, in the LeNet style of NN-SVG: the layout only.

Each spec token is one block: a stack of square sheets whose side follows the feature map's size and
whose number follows the channels (a log scale: 1 channel one sheet, 256 eight), labelled above with the
token and below with the shape "32@28x28". Dense layers are thin bars whose height follows the units (log
scale), dropout a thin dashed bar, and the classes are listed at the end. Arrows join the blocks; a
row that would be wider than ``max_width`` wraps, its arrow turning down to the next row.

Every label has a rectangle computed from its text (a monospace font of ``FONT_PX`` pixels is
``CHAR_EM`` of the size wide per character), so the layout knows the labels do not overlap and the
writers (:mod:`cnnviz.networks.diagram_draw`) draw exactly these rectangles, in SVG and with Pillow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cnnviz.networks.spec import parse_spec
from cnnviz.networks.summary import LayerRow, ModelSummary, summarize_spec

FONT_PX = 13
CHAR_EM = 0.62  # DejaVu Sans Mono's advance is 0.602 em; a little more for other monospace fonts
LINE_PX = 18
MARGIN = 16
ARROW_PX = 30  # the space between two blocks, which the arrow spans
ROW_GAP = 28  # between the labels of one row and the next row's
LABEL_GAP = 4  # between a box and its labels
MAX_SIDE = 100  # the input image's sheet, in pixels; smaller maps in proportion
MIN_SIDE = 10
SHEET_OFFSET = 5
MAX_SHEETS = 8
BAR_WIDTH = 12
DROPOUT_WIDTH = 6
MAX_CLASS_LINES = 10
MAX_CLASS_CHARS = 16
DEFAULT_MAX_WIDTH = 760  # shown 1:1 on a page 800 px wide


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height

    def overlaps(self, other: Rect) -> bool:
        """True when the two share more than an edge."""
        return (self.x < other.right and other.x < self.right
                and self.y < other.bottom and other.y < self.bottom)


@dataclass(frozen=True)
class Label:
    text: str
    rect: Rect
    role: str  # "title", "token", "shape" or "class"
    align: str = "middle"  # "middle" or "start" (the class names)


@dataclass(frozen=True)
class Block:
    """One spec token (or the input, or the output layer) drawn as a stack of sheets or a bar."""

    kind: str  # "input", "conv", "residual", "pool", "dropout", "dense", "output"
    token: str
    shape: tuple[int, ...]  # the group's output shape, as the summary gives it (no batch axis)
    layer_numbers: tuple[int, ...]  # the summary rows drawn by this block (none for the input)
    box: Rect  # the bounding box of all its sheets
    sheets: int  # 1 for a bar
    labels: tuple[Label, ...]

    def sheet_rects(self) -> list[Rect]:
        """The sheets from the back one to the front one (drawing order); the front is bottom-left."""
        side_w = self.box.width - (self.sheets - 1) * SHEET_OFFSET
        side_h = self.box.height - (self.sheets - 1) * SHEET_OFFSET
        return [Rect(self.box.x + k * SHEET_OFFSET, self.box.y + (self.sheets - 1 - k) * SHEET_OFFSET,
                     side_w, side_h) for k in reversed(range(self.sheets))]


@dataclass(frozen=True)
class Diagram:
    width: float
    height: float
    blocks: tuple[Block, ...]
    arrows: tuple[tuple[tuple[float, float], ...], ...]  # polylines, the arrowhead at the last point
    titles: tuple[Label, ...]
    font_px: int = FONT_PX

    @property
    def labels(self) -> list[Label]:
        return [*self.titles, *(label for block in self.blocks for label in block.labels)]


def shape_text(shape: Sequence[int]) -> str:
    """"32@28x28" for (32, 28, 28); "128" for a dense layer's (128,)."""
    if len(shape) == 3:
        return f"{shape[0]}@{shape[1]}x{shape[2]}"
    return "x".join(str(d) for d in shape)


def layer_groups(summary: ModelSummary) -> list[list[LayerRow]]:
    """The summary's rows grouped by the spec token that made them, then the output layer's row.

    The automatic Flatten has no block of its own; the appended Linear is the last group.
    """
    groups: list[list[LayerRow]] = []
    previous = None
    for row in summary.layers:
        if row.kind == "Flatten" and not row.token:
            continue
        if not row.token or row.token != previous or _opens_token(row):
            groups.append([row])
        else:
            groups[-1].append(row)
        previous = row.token
    assert len(groups) == len(parse_spec(summary.spec)) + 1, "one group per token, then the output"
    return groups


def spec_diagram(spec: str, input_shape: tuple[int, int, int], num_classes: int = 10,
                 classes: Sequence[str] | None = None, max_width: float = DEFAULT_MAX_WIDTH) -> Diagram:
    """The diagram of a spec for images of ``input_shape`` (raises SpecError for a bad spec)."""
    return diagram_layout(summarize_spec(spec, input_shape, num_classes), classes, max_width)


def diagram_layout(summary: ModelSummary, classes: Sequence[str] | None = None,
                   max_width: float = DEFAULT_MAX_WIDTH) -> Diagram:
    """Place the blocks, labels and arrows of a summary's network.

    Args:
        summary: from :func:`cnnviz.networks.summary.summarize_spec`.
        classes: the class names listed at the end (default: "<n> classes").
        max_width: the widest a row may be, in pixels, before it wraps.
    """
    slots = [_input_slot(summary)] + [_group_slot(group, summary) for group in layer_groups(summary)]
    slots[-1] = _with_classes(slots[-1], classes)
    titles, y = _title_labels(summary, max_width)
    rows = _wrap(slots, max_width)
    blocks: list[Block] = []
    arrows: list[tuple[tuple[float, float], ...]] = []
    width = max([label.rect.right for label in titles] + [0.0])
    prev_bottom = turn_x = 0.0  # the last row's bottom and where its arrow turns down
    for row_index, row in enumerate(rows):
        half = max(slot.half_height for slot in row)
        mid = y + half
        x = MARGIN + ARROW_PX / 2
        for slot in row:
            block = slot.place(x, mid)
            if blocks:
                previous = blocks[-1]
                if slot is row[0]:
                    arrows.append(_turn(previous, prev_bottom, block, turn_x))
                else:
                    arrows.append(((previous.box.right + 3, mid), (block.box.x - 3, mid)))
            blocks.append(block)
            x += slot.width + ARROW_PX
        turn_x = x - ARROW_PX / 2
        width = max(width, turn_x + MARGIN / 2)
        prev_bottom = mid + half
        y = prev_bottom + (ROW_GAP if row_index < len(rows) - 1 else MARGIN)
    return Diagram(width=math.ceil(width), height=math.ceil(y), blocks=tuple(blocks), arrows=tuple(arrows),
                   titles=tuple(titles))


# --- the pieces --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    """A block before it is placed: its box size and its labels' texts; ``place`` puts it at x, mid."""

    kind: str
    token: str
    shape: tuple[int, ...]
    layer_numbers: tuple[int, ...]
    box_width: float
    height: float
    sheets: int
    top: str
    classes: tuple[str, ...] = ()

    @property
    def classes_width(self) -> float:
        return max((_text_width(name) for name in self.classes), default=0.0)

    @property
    def side_width(self) -> float:
        return self.classes_width + 8 if self.classes else 0.0

    @property
    def side_height(self) -> float:
        return len(self.classes) * LINE_PX

    @property
    def width(self) -> float:
        return max(self.box_width + self.side_width, _text_width(self.top),
                   _text_width(shape_text(self.shape)))

    @property
    def half_height(self) -> float:
        """From the row's midline to the top (or bottom) of its labels."""
        return max(self.height, self.side_height) / 2 + LABEL_GAP + LINE_PX

    def place(self, x: float, mid: float) -> Block:
        box_x = x + (self.width - self.box_width - self.side_width) / 2
        box = Rect(box_x, mid - self.height / 2, self.box_width, self.height)
        centre = box.x + box.width / 2
        top = mid - max(self.height, self.side_height) / 2  # the class names may reach above the bar
        bottom = mid + max(self.height, self.side_height) / 2
        labels = [_centred(self.top, centre, top - LABEL_GAP - LINE_PX, "token", x, self.width),
                  _centred(shape_text(self.shape), centre, bottom + LABEL_GAP, "shape", x, self.width)]
        first = mid - self.side_height / 2
        labels += [Label(name, Rect(box.right + 8, first + i * LINE_PX, _text_width(name), LINE_PX), "class",
                         "start") for i, name in enumerate(self.classes)]
        return Block(self.kind, self.token, self.shape, self.layer_numbers, box, self.sheets, tuple(labels))


def _opens_token(row: LayerRow) -> bool:
    # A conv token makes Conv2d [MaxPool2d] [BatchNorm2d] ReLU and a dense token Linear ReLU: two equal
    # tokens in a row ("C32 C32") are told apart by where the next Conv2d or Linear starts.
    head = row.token[0]
    if head == "C":
        return row.kind == "Conv2d"
    if head == "F":
        return row.kind == "Linear"
    return True  # R, M, A, G, D: one module each


_KINDS = {"C": "conv", "R": "residual", "M": "pool", "A": "pool", "G": "pool", "D": "dropout", "F": "dense"}


def _input_slot(summary: ModelSummary) -> _Slot:
    return _map_slot("input", "", summary.input_shape, (), summary.input_shape[1], "input")


def _group_slot(group: list[LayerRow], summary: ModelSummary) -> _Slot:
    last = group[-1]
    numbers = tuple(row.number for row in group)
    if not last.token:  # the output layer
        return _bar_slot("output", "", last.output_shape, numbers, "output")
    kind = _KINDS[last.token[0]]
    if len(last.output_shape) == 1:
        if kind == "dropout":
            return _Slot(kind, last.token, last.output_shape, numbers, DROPOUT_WIDTH,
                         _bar_height(last.output_shape[0]), 1, last.token)
        return _bar_slot(kind, last.token, last.output_shape, numbers, last.token)
    if kind == "dropout":
        return _Slot(kind, last.token, last.output_shape, numbers, DROPOUT_WIDTH,
                     _side(last.output_shape[1], summary.input_shape[1]), 1, last.token)
    return _map_slot(kind, last.token, last.output_shape, numbers, summary.input_shape[1], last.token)


def _side(size: int, input_size: int) -> float:
    return max(MIN_SIDE, round(MAX_SIDE * size / input_size))


def _map_slot(kind: str, token: str, shape: tuple[int, ...], numbers: tuple[int, ...], input_size: int,
              top: str) -> _Slot:
    channels, size = shape[0], shape[1]
    sheets = min(MAX_SHEETS, 1 + int(math.log2(channels)))
    side = _side(size, input_size) + (sheets - 1) * SHEET_OFFSET
    return _Slot(kind, token, tuple(shape), numbers, side, side, sheets, top)


def _bar_height(units: int) -> float:
    return min(140.0, max(24.0, 14 * math.log2(max(units, 2))))


def _bar_slot(kind: str, token: str, shape: tuple[int, ...], numbers: tuple[int, ...], top: str) -> _Slot:
    return _Slot(kind, token, tuple(shape), numbers, BAR_WIDTH, _bar_height(shape[0]), 1, top)


def _with_classes(slot: _Slot, classes: Sequence[str] | None) -> _Slot:
    count = slot.shape[0]
    if classes is None:
        names = [f"{count} classes"]
    else:
        names = [_short(str(name)) for name in classes]
        if len(names) > MAX_CLASS_LINES:
            names = [*names[: MAX_CLASS_LINES - 1], f"... {len(names) - MAX_CLASS_LINES + 1} more"]
    return _Slot(slot.kind, slot.token, slot.shape, slot.layer_numbers, slot.box_width, slot.height,
                 slot.sheets, slot.top, tuple(names))


def _short(name: str) -> str:
    return name if len(name) <= MAX_CLASS_CHARS else name[: MAX_CLASS_CHARS - 1] + "…"


def _text_width(text: str) -> float:
    return len(text) * FONT_PX * CHAR_EM


def _centred(text: str, centre: float, y: float, role: str, slot_x: float, slot_width: float) -> Label:
    width = _text_width(text)
    x = min(max(centre - width / 2, slot_x), slot_x + slot_width - width)  # inside its slot
    return Label(text, Rect(x, y, width, LINE_PX), role)


def _title_labels(summary: ModelSummary, max_width: float) -> tuple[list[Label], float]:
    """The spec and input shape as the title, wrapped at spaces to ``max_width``."""
    words = [*summary.spec.split(), f"(input {shape_text(summary.input_shape)})"]
    per_line = max(10, int((max_width - 2 * MARGIN) / (FONT_PX * CHAR_EM)))
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= per_line:
            lines[-1] += " " + word
        else:
            lines.append(word)
    labels = [Label(line, Rect(MARGIN, MARGIN + i * LINE_PX, _text_width(line), LINE_PX), "title", "start")
              for i, line in enumerate(lines)]
    return labels, MARGIN + len(lines) * LINE_PX + ROW_GAP / 2


def _wrap(slots: list[_Slot], max_width: float) -> list[list[_Slot]]:
    rows: list[list[_Slot]] = [[]]
    x = MARGIN + ARROW_PX / 2
    for slot in slots:
        if rows[-1] and x + slot.width + ARROW_PX / 2 + MARGIN / 2 > max_width:
            rows.append([])
            x = MARGIN + ARROW_PX / 2
        rows[-1].append(slot)
        x += slot.width + ARROW_PX
    return rows


def _turn(previous: Block, row_bottom: float, block: Block, turn_x: float) -> tuple[tuple[float, float], ...]:
    """The arrow from a row's last block to the next row's first: right, down into the gap, left, down,
    right."""
    start_y = previous.box.y + previous.box.height / 2
    end_y = block.box.y + block.box.height / 2
    gap_y = row_bottom + ROW_GAP / 2
    left_x = MARGIN / 2
    return ((previous.box.right + 3, start_y), (turn_x, start_y), (turn_x, gap_y), (left_x, gap_y),
            (left_x, end_y), (block.box.x - 3, end_y))
