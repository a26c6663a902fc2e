"""The architecture diagram (:mod:`cnnviz.networks.diagram`) drawn as SVG text and as a PNG (Pillow),
both from the same layout, and written to a file by its extension."""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from PIL import Image, ImageDraw, ImageFont

from cnnviz.networks.diagram import FONT_PX, LINE_PX, Block, Diagram, Label, Rect

# (outline, fill) per block kind
COLOURS = {
    "input": ("#7f7f7f", "#f2f2f2"),
    "conv": ("#3b6ea5", "#dce8f5"),
    "residual": ("#7a52b3", "#ebe3f6"),
    "pool": ("#d9730d", "#fde6cf"),
    "dropout": ("#8c8c8c", "#ffffff"),
    "dense": ("#3f8f3a", "#ddf0da"),
    "output": ("#c0392b", "#f9dedb"),
}
TEXT_COLOUR = "#222222"
ARROW_COLOUR = "#555555"
ARROW_HEAD = 7
FONT_FAMILY = "'DejaVu Sans Mono', Menlo, Consolas, 'Liberation Mono', monospace"
PNG_SCALE = 2  # pixels per layout pixel: sharp on a laptop screen and in slides
FONT_FILE = "DejaVuSansMono.ttf"


def diagram_svg(diagram: Diagram) -> str:
    """The diagram as a standalone SVG document; each block is a ``<g class="block">`` with its
    sheets and its labels (``<text class="token">``, ``"shape"``, ``"class"``)."""
    w, h = diagram.width, diagram.height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'font-family="{FONT_FAMILY}" font-size="{diagram.font_px}">',
        f'<defs><marker id="head" markerWidth="{ARROW_HEAD}" markerHeight="{ARROW_HEAD}" '
        f'refX="{ARROW_HEAD}" refY="{ARROW_HEAD / 2}" orient="auto" markerUnits="userSpaceOnUse">'
        f'<path d="M0,0 L{ARROW_HEAD},{ARROW_HEAD / 2} L0,{ARROW_HEAD} z" fill="{ARROW_COLOUR}"/>'
        '</marker></defs>',
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>',
        *(_svg_text(label) for label in diagram.titles),
    ]
    for points in diagram.arrows:
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{ARROW_COLOUR}" stroke-width="1.5" '
                     'marker-end="url(#head)"/>')
    for block in diagram.blocks:
        parts.append(f'<g class="block" data-kind="{block.kind}" data-token={quoteattr(block.token)}>')
        outline, fill = COLOURS[block.kind]
        dash = ' stroke-dasharray="4,3"' if block.kind == "dropout" else ""
        for sheet in block.sheet_rects():
            parts.append(f'<rect x="{sheet.x:.1f}" y="{sheet.y:.1f}" width="{sheet.width:.1f}" '
                         f'height="{sheet.height:.1f}" fill="{fill}" stroke="{outline}" '
                         f'stroke-width="1.2"{dash}/>')
        parts.extend(_svg_text(label) for label in block.labels)
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def diagram_png(diagram: Diagram, scale: int = PNG_SCALE) -> bytes:
    """The diagram as PNG bytes, ``scale`` pixels per layout pixel (width x height = the layout's times
    ``scale``)."""
    image = Image.new("RGB", png_size(diagram, scale), "white")
    draw = ImageDraw.Draw(image)
    for points in diagram.arrows:
        scaled = [(x * scale, y * scale) for x, y in points]
        draw.line(scaled, fill=ARROW_COLOUR, width=max(1, round(1.5 * scale)), joint="curve")
        _arrow_head(draw, scaled[-2], scaled[-1], ARROW_HEAD * scale)
    for block in diagram.blocks:
        _draw_block(draw, block, scale)
    for label in diagram.labels:
        _draw_text(draw, label, scale)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def png_size(diagram: Diagram, scale: int = PNG_SCALE) -> tuple[int, int]:
    """The PNG's width and height in pixels."""
    return round(diagram.width * scale), round(diagram.height * scale)


def write_diagram(diagram: Diagram, path: str | os.PathLike) -> Path:
    """Write the diagram as SVG or PNG, chosen by the file name's extension.

    Raises:
        ValueError: for another extension or a path that cannot be written (one sentence).
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise ValueError(f"Give the diagram a file name ending in .svg or .png, not '{target.name}'.")
    data = diagram_svg(diagram).encode() if suffix == ".svg" else diagram_png(diagram)
    try:
        target.write_bytes(data)
    except OSError as error:
        raise ValueError(f"Cannot write the diagram to {target}: {error.strerror or error}. "
                         "Choose a folder you can write to.") from error
    return target


def _svg_text(label: Label) -> str:
    x = label.rect.x if label.align == "start" else label.rect.x + label.rect.width / 2
    baseline = label.rect.y + LINE_PX - 5
    weight = ' font-weight="bold"' if label.role == "token" else ""
    return (f'<text class="{label.role}" x="{x:.1f}" y="{baseline:.1f}" text-anchor="{label.align}" '
            f'fill="{TEXT_COLOUR}"{weight}>{escape(label.text)}</text>')


def _draw_block(draw: ImageDraw.ImageDraw, block: Block, scale: int) -> None:
    outline, fill = COLOURS[block.kind]
    for sheet in block.sheet_rects():
        box = _scaled(sheet, scale)
        if block.kind == "dropout":
            draw.rectangle(box, fill=fill)
            _dashed_rectangle(draw, box, outline, scale)
        else:
            draw.rectangle(box, fill=fill, outline=outline, width=max(1, round(1.2 * scale)))


def _scaled(rect: Rect, scale: int) -> tuple[float, float, float, float]:
    return rect.x * scale, rect.y * scale, rect.right * scale, rect.bottom * scale


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], colour: str,
                      scale: int) -> None:
    left, top, right, bottom = box
    dash, gap = 4 * scale, 3 * scale
    for x0, y0, x1, y1 in ((left, top, right, top), (right, top, right, bottom),
                           (right, bottom, left, bottom), (left, bottom, left, top)):
        length = max(abs(x1 - x0), abs(y1 - y0))
        steps = int(length // (dash + gap)) + 1
        for i in range(steps):
            a = i * (dash + gap) / length if length else 0
            b = min(1.0, (i * (dash + gap) + dash) / length) if length else 1
            draw.line([(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)],
                      fill=colour, width=scale)


def _arrow_head(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float],
                size: float) -> None:
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = (dx * dx + dy * dy) ** 0.5 or 1.0
    ux, uy = dx / length, dy / length
    back = (end[0] - ux * size, end[1] - uy * size)
    draw.polygon([end, (back[0] - uy * size / 2, back[1] + ux * size / 2),
                  (back[0] + uy * size / 2, back[1] - ux * size / 2)], fill=ARROW_COLOUR)


def _draw_text(draw: ImageDraw.ImageDraw, label: Label, scale: int) -> None:
    font = _font(FONT_PX * scale, bold=label.role == "token")
    room = label.rect.width * scale * 1.02
    size = FONT_PX * scale
    while draw.textlength(label.text, font=font) > room and size > 6:  # a wider fallback font: shrink
        size -= 1
        font = _font(size, bold=label.role == "token")
    x = label.rect.x * scale if label.align == "start" else (label.rect.x + label.rect.width / 2) * scale
    baseline = (label.rect.y + LINE_PX - 5) * scale
    draw.text((x, baseline), label.text, fill=TEXT_COLOUR, font=font,
              anchor="ls" if label.align == "start" else "ms")


@lru_cache(maxsize=16)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans Mono (what the layout's widths assume), else Pillow's own font at the same size."""
    for name in (("DejaVuSansMono-Bold.ttf", FONT_FILE) if bold else (FONT_FILE,)):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)
