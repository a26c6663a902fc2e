"""Which output cells an animation of a convolution or pooling shows, one frame each.

All of them when there are few; otherwise evenly spread ones (each frame filling in everything
up to its cell) or every cell of a square region; and how many frames fit the figure's budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnviz.convolution.steps import ConvSteps


@dataclass(frozen=True)
class FramePlan:
    """The output cells an animation shows, one frame each, in reading order."""

    positions: tuple[tuple[int, int], ...]  # (row, col) of each frame's output cell
    region: tuple[int, int] | None = None  # top-left cell of the region shown step by step; None: spread

    @property
    def fill_reading_order(self) -> bool:
        """Spread frames fill in every cell up to theirs; a region's frames only their own cells."""
        return self.region is None


def region_side(max_frames: int) -> int:
    """The side of the square output region animated step by step: 8 for 64 frames."""
    return max(1, int(max_frames**0.5))


def plan_frames(
    output_height: int, output_width: int, max_frames: int, region: tuple[int, int] | None = None
) -> FramePlan:
    """``max_frames`` cells spread over the map, or every cell of the square region (side
    :func:`region_side`) whose top-left output cell is ``region``."""
    if region is None:
        return FramePlan(tuple(frame_positions(output_height, output_width, max_frames)))
    positions = region_positions(output_height, output_width, *region, region_side(max_frames))
    return FramePlan(tuple(positions), region)


def frame_positions(output_height: int, output_width: int, max_frames: int) -> list[tuple[int, int]]:
    """Output cells to animate, in reading order: all of them, or ``max_frames`` evenly spread ones.

    The last cell is always included so the final frame shows the finished feature map.
    """
    total = output_height * output_width
    count = min(total, max(1, max_frames))
    indices = np.unique(np.round(np.linspace(0, total - 1, count)).astype(int))
    return [(int(i) // output_width, int(i) % output_width) for i in indices]


def region_positions(
    output_height: int, output_width: int, top: int, left: int, side: int
) -> list[tuple[int, int]]:
    """Every output cell of a side x side block (clipped to the map) from (top, left), reading order."""
    rows = range(max(0, top), min(output_height, top + side))
    cols = range(max(0, left), min(output_width, left + side))
    return [(r, c) for r in rows for c in cols]


def describe_frames(
    positions: list[tuple[int, int]], output_height: int, output_width: int, region: bool = False
) -> str:
    """One sentence on how the animation covers the output (every cell, a region, or spread cells)."""
    total = output_height * output_width
    if region:
        (top, left), (bottom, right) = positions[0], positions[-1]
        return (
            f"The animation shows every step of output rows {top}..{bottom} and columns {left}..{right}: "
            f"{len(positions)} of the {total} output cells; move the region to see others."
        )
    if len(positions) == total:
        return f"The animation shows all {total} steps, one per output cell."
    every = total / len(positions)
    return (
        f"The output has {total} cells, too many to animate one by one, so the animation shows "
        f"{len(positions)} of them, evenly spread in reading order "
        f"(about every {_ordinal(round(every))} cell); "
        "each frame fills in every output cell up to the current one, so the map still fills in completely."
    )


def _ordinal(number: int) -> str:
    """1 -> "1st", 2 -> "2nd", 3 -> "3rd", 11 -> "11th", 22 -> "22nd"."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


FIGURE_BUDGET_BYTES = 4 * 2**20  # what one animated figure may weigh on the wire


def frames_within_budget(steps: ConvSteps, max_frames: int, budget_bytes: int = FIGURE_BUDGET_BYTES) -> int:
    """How many animation frames fit the budget: each frame carries every output map and the
    products grid as float32 numbers in base64 (4 bytes -> 5.33 characters). Cells not computed
    yet are NaN, whose base64 always holds a "/" that Plotly's JSON writes as 6 characters, so
    about 7 characters a number is the honest count."""
    kernels, channels, kernel_h, kernel_w = steps.weight.shape
    out_h, out_w = steps.output_size
    values = out_h * kernels * (out_w + 1) + kernels * (kernel_h + 1) * channels * (kernel_w + 1)
    per_frame = values * 7 + 2_000  # plus window outline, equation text, slider step
    return max(1, min(max_frames, int(budget_bytes // per_frame)))
