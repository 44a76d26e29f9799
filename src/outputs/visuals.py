"""Image grids: batches in [-1, 1] (NCHW) saved as one PNG, as the references' fixed-noise samples are."""
import math

import numpy as np
from PIL import Image

from src.files import write_atomically


def to_uint8(images):
    """(N, C, H, W) floats in [-1, 1] -> (N, H, W, C) uint8."""
    images = np.clip((np.asarray(images, dtype=np.float32) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return images.transpose(0, 2, 3, 1)


def make_grid(images, padding=2, columns=None):
    """Tile (N, C, H, W) images in [-1, 1] into one (rows*H', cols*W', C) uint8 array with a black border."""
    tiles = to_uint8(images)
    n, h, w, c = tiles.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, c), np.uint8)
    for i, tile in enumerate(tiles):
        top, left = padding + (i // columns) * (h + padding), padding + (i % columns) * (w + padding)
        grid[top:top + h, left:left + w] = tile
    return grid


def grid_image(images, columns=None, scale=None, padding=2):
    """make_grid as a Pillow image, enlarged `scale` times (nearest neighbour; default: to about 512 px wide) so a
    32 px grid is readable on screen."""
    grid = make_grid(images, padding=padding, columns=columns)
    image = Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid)
    scale = scale or max(1, 512 // max(image.size))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


def save_grid(images, path, columns=None, scale=None):
    """Save a grid PNG; small images are enlarged (see grid_image)."""
    image = grid_image(images, columns, scale)
    # A reader (the run report, a user's viewer) never sees half a PNG.
    return write_atomically(path, lambda tmp: image.save(tmp, format="PNG"))
