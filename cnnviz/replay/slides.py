"""Pictures of a run for slides, drawn with Pillow: the first learned filters at every snapshot (an
animated GIF and a PNG strip) and the map of what it learned (a PNG scatter per moment, with a legend).

Filters: every snapshot's filters share one grey (or colour) scale, the largest absolute weight over
the whole run (:func:`filter_bound`), so a filter that grows looks brighter, not the same: weight ``w``
is pixel ``round((w / bound + 1) * 127.5)`` (0 = -bound, 255 = +bound, mid-grey = 0). A filter over 1
or 3 input channels is shown in grey or RGB; over any other number (the CIFAR-10 net's first learned
convolution reads the 24 maps of the frozen whitening layer) the mean over its input channels is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from cnnviz.training.snapshots import RunSnapshots, Snapshot

CELL_PX = 8  # screen pixels per filter weight
GAP_PX = 2  # between two filters
CAPTION_PX = 20  # the line over each frame: "step 120 · epoch 0.53"
LONGEST_CAPTION = "step 99999 · epoch 99.99"  # frames are at least this wide (every frame one size)
FRAME_MS = 400  # GIF: time per snapshot
LAST_FRAME_MS = 2000  # and the last one stays a while before the loop starts again
STRIP_COLUMNS = 6  # frames per row of the PNG strip
MAP_PX = 420  # each scatter panel's side
MAP_MARGIN = 12
DOT_RADIUS = 2
LEGEND_ROW_PX = 20
LEGEND_ENTRY_PX = 110  # a colour square and a class name ("automobile")
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
GAP_COLOR = (255, 255, 255)
CLASS_COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def filter_bound(snapshots: Sequence[Snapshot]) -> float:
    """The largest absolute filter weight over every snapshot (1.0 when all are zero)."""
    bound = max((float(s.filters.abs().max()) for s in snapshots if s.filters.numel()), default=0.0)
    return bound if bound > 0 else 1.0


def filter_pixels(filters: torch.Tensor, bound: float) -> np.ndarray:
    """(out, k, k, 1 or 3) uint8: each filter's weights on the shared scale (see the module's text)."""
    if filters.dim() != 4:
        raise ValueError("Filters must be shaped (out, in, k, k).")
    shown = filters.float() if filters.shape[1] in (1, 3) else filters.float().mean(dim=1, keepdim=True)
    scaled = ((shown / bound).clamp(-1, 1) + 1) * 127.5
    return scaled.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (out, C, k, k) -> (out, k, k, C)


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of a near-square grid of ``count`` filters."""
    columns = max(1, math.ceil(math.sqrt(count)))
    return math.ceil(count / columns), columns


def caption_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The font of the line over each frame."""
    return ImageFont.load_default(size=CAPTION_PX - 6)


def frame_size(filters: torch.Tensor) -> tuple[int, int]:
    """(width, height) in pixels of one snapshot's frame: the filter grid, at least as wide as the
    longest caption a run gets (16 3x3 filters made a 106 px frame, its caption cut to "step 14 · epoch")."""
    rows, columns = grid_shape(filters.shape[0])
    side = filters.shape[-1] * CELL_PX
    caption = math.ceil(caption_font().getlength(LONGEST_CAPTION)) + 2 * GAP_PX + 2
    return (max(GAP_PX + columns * (side + GAP_PX), caption), CAPTION_PX + GAP_PX + rows * (side + GAP_PX))


def cell_origin(filters: torch.Tensor, index: int) -> tuple[int, int]:
    """(left, top) pixel of filter ``index``'s first weight in its frame."""
    _, columns = grid_shape(filters.shape[0])
    side = filters.shape[-1] * CELL_PX
    row, col = divmod(index, columns)
    return GAP_PX + col * (side + GAP_PX), CAPTION_PX + GAP_PX + row * (side + GAP_PX)


def _caption(snapshot: Snapshot) -> str:
    return f"step {snapshot.step} · epoch {snapshot.epoch:.2f}"


def filter_frame(snapshot: Snapshot, bound: float) -> Image.Image:
    """One snapshot's filters as an RGB image: a grid of filters, each weight a CELL_PX square, under
    a line naming the step."""
    pixels = filter_pixels(snapshot.filters, bound)  # (out, k, k, C)
    if pixels.shape[3] == 1:
        pixels = np.repeat(pixels, 3, axis=3)
    frame = Image.new("RGB", frame_size(snapshot.filters), GAP_COLOR)
    for index, weights in enumerate(pixels):
        tile = Image.fromarray(weights, "RGB").resize(
            (weights.shape[1] * CELL_PX, weights.shape[0] * CELL_PX), Image.NEAREST)
        frame.paste(tile, cell_origin(snapshot.filters, index))
    draw = ImageDraw.Draw(frame)
    draw.text((GAP_PX + 1, 3), _caption(snapshot), fill=INK, font=caption_font())
    return frame


def filter_frames(runs: RunSnapshots) -> list[Image.Image]:
    """One frame per snapshot, in order, all on one scale.

    Raises:
        ValueError: when the run kept no snapshots or its net has no convolution.
    """
    if not runs.snapshots:
        raise ValueError("This run kept no snapshots, so there are no filters to replay.")
    if runs.filters_layer is None or runs.snapshots[0].filters.dim() != 4:
        raise ValueError("This network has no learned convolution, so it has no filters to replay.")
    bound = filter_bound(runs.snapshots)
    return [filter_frame(snapshot, bound) for snapshot in runs.snapshots]


def write_filter_gif(runs: RunSnapshots, path: str | Path) -> Path:
    """The filters' evolution as an animated GIF, one frame per snapshot, looping."""
    frames = filter_frames(runs)
    if runs.snapshots[0].filters.shape[1] != 3:  # grey: kept exact (an RGB frame would be quantized)
        frames = [frame.convert("L") for frame in frames]
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    path = Path(path)
    # optimize=False: Pillow would otherwise merge frames it finds alike and crop each to what changed
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0,
                   optimize=False, disposal=1)
    return path


def strip_image(frames: Sequence[Image.Image], columns: int = STRIP_COLUMNS) -> Image.Image:
    """The frames in rows of ``columns``, left to right, top to bottom, on white."""
    width, height = frames[0].size
    columns = min(columns, len(frames))
    rows = math.ceil(len(frames) / columns)
    strip = Image.new("RGB", (columns * width + (columns - 1) * GAP_PX * 2, rows * height), BACKGROUND)
    for index, frame in enumerate(frames):
        row, col = divmod(index, columns)
        strip.paste(frame, (col * (width + GAP_PX * 2), row * height))
    return strip


def write_filter_strip(runs: RunSnapshots, path: str | Path) -> Path:
    """Every snapshot's frame side by side in rows (a PNG for a slide or a handout)."""
    path = Path(path)
    strip_image(filter_frames(runs)).save(path)
    return path


def _panel(points: torch.Tensor, labels: np.ndarray, title: str, font: ImageFont.FreeTypeFont) -> Image.Image:
    panel = Image.new("RGB", (MAP_PX, MAP_PX + CAPTION_PX), BACKGROUND)
    draw = ImageDraw.Draw(panel)
    draw.text((MAP_MARGIN, 2), title, fill=INK, font=font)
    xy = points.double().numpy()
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    inner = MAP_PX - 2 * MAP_MARGIN
    x = MAP_MARGIN + (xy[:, 0] - low[0]) / span[0] * inner
    y = CAPTION_PX + MAP_MARGIN + (1 - (xy[:, 1] - low[1]) / span[1]) * inner  # up is up
    draw.rectangle([0, CAPTION_PX, MAP_PX - 1, MAP_PX + CAPTION_PX - 1], outline=(200, 200, 200))
    for px, py, label in zip(x, y, labels, strict=True):
        color = CLASS_COLORS[int(label) % len(CLASS_COLORS)]
        draw.ellipse([px - DOT_RADIUS, py - DOT_RADIUS, px + DOT_RADIUS, py + DOT_RADIUS], fill=color)
    return panel


def legend_rows(classes: Sequence[str], width: int) -> list[list[int]]:
    """The class numbers on each line of the legend under a map ``width`` pixels wide."""
    per_row = max(1, width // LEGEND_ENTRY_PX)
    starts = range(0, len(classes), per_row)
    return [list(range(start, min(start + per_row, len(classes)))) for start in starts]


def projection_image(panels: Sequence[tuple[str, torch.Tensor]], labels: torch.Tensor,
                     classes: Sequence[str]) -> Image.Image:
    """The map: one scatter per (title, (P, 2) points) panel side by side, dots coloured by true class,
    and a legend of class names under them. Size: panels x (MAP_PX + GAP) wide, MAP_PX + CAPTION_PX
    + one LEGEND_ROW_PX per legend line high."""
    font = ImageFont.load_default(size=CAPTION_PX - 6)
    width = len(panels) * MAP_PX + (len(panels) - 1) * MAP_MARGIN
    rows = legend_rows(classes, width)
    image = Image.new("RGB", (width, MAP_PX + CAPTION_PX + len(rows) * LEGEND_ROW_PX + GAP_PX), BACKGROUND)
    array = labels.numpy()
    for number, (title, points) in enumerate(panels):
        image.paste(_panel(points, array, title, font), (number * (MAP_PX + MAP_MARGIN), 0))
    draw = ImageDraw.Draw(image)
    for line, members in enumerate(rows):
        top = MAP_PX + CAPTION_PX + GAP_PX + line * LEGEND_ROW_PX
        for slot, cls in enumerate(members):
            left = MAP_MARGIN + slot * LEGEND_ENTRY_PX
            draw.rectangle([left, top + 4, left + 10, top + 14], fill=CLASS_COLORS[cls % len(CLASS_COLORS)])
            draw.text((left + 15, top + 2), str(classes[cls]), fill=INK, font=font)
    return image
