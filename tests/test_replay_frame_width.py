"""A slide's filter frame is wide enough for its caption, however small the first layer's filters."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from cnnviz.replay.slides import CAPTION_PX, GAP_PX, frame_size


@pytest.mark.parametrize(("count", "kernel"), [(16, 3), (8, 3), (4, 5), (32, 5)])
def test_the_frame_holds_the_longest_caption_of_a_long_run(count: int, kernel: int) -> None:
    filters = torch.zeros(count, 1, kernel, kernel)
    width, _ = frame_size(filters)
    font = ImageFont.load_default(size=CAPTION_PX - 6)
    # the caption of a long run, drawn where filter_frame draws it
    _, _, right, _ = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox(
        (GAP_PX + 1, 3), "step 12000 · epoch 30.00", font=font)
    assert right <= width, f"{count} {kernel}x{kernel} filters: caption ends at {right} px, frame is {width}"
