"""Pillow helpers for the analysis figures: images in [-1, 1] as enlarged tiles, text labels, rows of panels.

A figure is built as a list of rows; each row is a list of cells (a tile, a label or a gap) laid out left to right
on a white canvas. Tiles are enlarged with nearest-neighbour sampling to TILE pixels, so a 32 px image stays
readable and a 64 px one is not blurred.
"""
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from src.files import write_atomically
from src.outputs.visuals import to_uint8

TILE = 64  # displayed size of one image, in pixels
GAP = 4  # between tiles
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)


def font(size=13):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def tile(image, size=TILE):
    """One (C, H, W) image in [-1, 1] -> an RGB Pillow image of size x size."""
    pixels = to_uint8(np.asarray(image)[None])[0]
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return Image.fromarray(pixels).resize((size, size), Image.NEAREST)


def text_size(text, face):
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=face)
    return right - left, bottom - top


def label(text, width=None, height=TILE, size=13, align="center"):
    """A white cell with `text` (one or more lines) centred vertically."""
    face = font(size)
    lines = text.split("\n")
    sizes = [text_size(line, face) for line in lines]
    line_height = max(h for _, h in sizes) + 3
    width = width or max(w for w, _ in sizes) + 6
    cell = Image.new("RGB", (width, max(height, line_height * len(lines))), BACKGROUND)
    draw = ImageDraw.Draw(cell)
    top = (cell.height - line_height * len(lines)) // 2
    for i, (line, (w, _)) in enumerate(zip(lines, sizes)):
        left = (width - w) // 2 if align == "center" else 3
        draw.text((left, top + i * line_height), line, fill=TEXT, font=face)
    return cell


def gap(width=GAP * 3, height=TILE):
    return Image.new("RGB", (width, height), BACKGROUND)


def compose(rows, spacing=GAP):
    """Rows of cells (Pillow images) -> one image; each row's cells top-aligned, rows separated by `spacing`."""
    widths = [sum(cell.width for cell in row) + spacing * (len(row) - 1) for row in rows]
    heights = [max(cell.height for cell in row) for row in rows]
    canvas = Image.new("RGB", (max(widths) + 2 * spacing, sum(heights) + spacing * (len(rows) + 1)), BACKGROUND)
    top = spacing
    for row, height in zip(rows, heights):
        left = spacing
        for cell in row:
            canvas.paste(cell, (left, top + (height - cell.height) // 2))
            left += cell.width + spacing
        top += height + spacing
    return canvas


def side_by_side(images, spacing=GAP * 6):
    """Composed panels next to each other, top-aligned."""
    canvas = Image.new("RGB", (sum(i.width for i in images) + spacing * (len(images) - 1),
                               max(i.height for i in images)), BACKGROUND)
    left = 0
    for image in images:
        canvas.paste(image, (left, 0))
        left += image.width + spacing
    return canvas


def save(image, path):
    """Write the figure as a PNG replaced whole (src/files.py): a reader never sees half of it; a figure without
    colour (grey images, black text) as a greyscale PNG, about half the size. Returns path."""
    pixels = np.asarray(image.convert("RGB"))
    if (pixels == pixels[:, :, :1]).all():
        image = image.convert("L")
    return write_atomically(path, lambda tmp: image.save(tmp, format="PNG", optimize=True))
