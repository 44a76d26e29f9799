"""Images from a generator: seeded noise, batched forward passes, and the files eval.py and infer.py write.

The generator is any function z (B, nz, 1, 1) -> images (B, nc, H, W) in [-1, 1]: the network rebuilt from a
checkpoint (eval.py) or a MINDIR loaded on its own (infer.py). Both draw the same noise for the same seed, so they
give the same images.

Output files in the output directory:
  generate.png      a grid of the first GRID_IMAGES images (always)
  images/NNNNNN.png every image on its own (--format png)
  images.npz        key "images": uint8 (N, H, W, C), the form external metric tools read (--format npz)
  interpolate.png   K rows, each a linear walk between two random z (--interpolate K; the paper's section 6)
"""
import os

import numpy as np
from PIL import Image

from src.errors import UserError
from src.outputs.visuals import save_grid, to_uint8

FORMATS = ("grid", "png", "npz")
GRID_IMAGES = 64
INTERPOLATION_STEPS = 10  # images per latent walk, end points included


def latent(seed, num, nz):
    """`num` latent vectors (num, nz, 1, 1) from N(0, 1). The same seed gives the same vectors whatever the batch
    size, and the first k of a call with num > k are those of a call with k."""
    return np.random.default_rng(seed).standard_normal((num, nz, 1, 1)).astype(np.float32)


def walk_latents(seed, rows, steps, nz):
    """rows x steps latent vectors, row-major: each row goes in a straight line from one random z to another."""
    ends = np.random.default_rng([seed, 1]).standard_normal((rows, 2, nz)).astype(np.float32)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    walks = ends[:, :1] * (1.0 - t) + ends[:, 1:] * t  # (rows, steps, nz)
    return walks.reshape(rows * steps, nz, 1, 1)


def run_batched(forward, inputs, batch_size):
    """forward(batch) over `inputs` in batches of exactly batch_size, the last one padded and the padding dropped:
    a compiled graph or an exported model then sees one input shape. In inference mode BatchNorm uses its running
    statistics, so each output depends on its own input only and the padding changes nothing."""
    outputs = []
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start:start + batch_size]
        count = len(chunk)
        if count < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - count,) + chunk.shape[1:], chunk.dtype)])
        outputs.append(np.asarray(forward(chunk))[:count])
    return np.concatenate(outputs)


def generation_bytes(arch, num_images, batch_size):
    """Roughly the peak memory of generating `num_images` in batches of `batch_size` with the generator `arch`:
    the latents and the images kept (float32 and uint8), plus one batch's activations through G (every layer's
    output, counted three times for BatchNorm's and ReLU's intermediates)."""
    size, nc, nz, ngf = arch["image_size"], arch["nc"], arch["nz"], arch["ngf"]
    pixels = nc * size * size
    layers, side, width = 0, 4, ngf * (8 if size == 64 else 4)
    while side < size:
        layers += width * side * side
        side, width = side * 2, width // 2
    per_image = 4 * (nz + pixels) + pixels
    return num_images * per_image + min(batch_size, num_images) * 4 * 3 * (layers + pixels)


def check_options(num_images, batch_size, fmt, interpolate):
    if num_images < 1:
        raise UserError(f"--num_images must be at least 1, not {num_images}")
    if batch_size < 1:
        raise UserError(f"--batch_size must be at least 1, not {batch_size}")
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    if interpolate < 0:
        raise UserError(f"--interpolate must be 0 (no latent walk) or a number of rows, not {interpolate}")


def check_output_path(output_path, fmt, interpolate=0, extra=()):
    """Refuse, before anything is loaded or drawn, an output path that cannot take the results: an existing file
    where the folder should be, an output name that exists as the wrong kind (a folder named generate.png, a file
    named images with --format png), or no writable folder to create it in. `extra`: further file names."""
    files = ["generate.png", *extra] + (["images.npz"] if fmt == "npz" else []) + \
        (["interpolate.png"] if interpolate else [])
    check_output_folder(output_path, files)
    images = os.path.join(output_path, "images")
    if fmt == "png" and os.path.exists(images) and not os.path.isdir(images):
        raise UserError(f"cannot write the images into {images}: it is an existing file")


def check_output_folder(output_path, file_names):
    """Refuse an --output_path that is an existing file, holds one of `file_names` as a directory, or has no
    writable folder to be created in (eval.py, verify.py: before any work)."""
    if os.path.exists(output_path) and not os.path.isdir(output_path):
        raise UserError(f"--output_path {output_path} is an existing file, not a directory")
    for name in file_names:
        if os.path.isdir(os.path.join(output_path, name)):
            raise UserError(f"cannot write {os.path.join(output_path, name)}: it is an existing directory")
    existing = os.path.abspath(output_path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to --output_path {output_path}: {existing} is not a writable directory")


def prepare_output(output_path):
    try:
        os.makedirs(output_path, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output path {output_path}: {error.strerror}") from None
    return output_path


def save_images(images, output_path, fmt):
    """Write generate.png and, by format, the single PNGs or images.npz. Returns the paths written."""
    written = [save_grid(images[:GRID_IMAGES], os.path.join(output_path, "generate.png"))]
    if fmt == "png":
        folder = os.path.join(output_path, "images")
        os.makedirs(folder, exist_ok=True)
        for i, image in enumerate(to_uint8(images)):
            Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(
                os.path.join(folder, f"{i:06d}.png"))
        written.append(folder + os.sep)
    elif fmt == "npz":
        path = os.path.join(output_path, "images.npz")
        np.savez(path, images=to_uint8(images))
        written.append(path)
    return written


def generate(forward, nz, output_path, num_images=64, seed=0, fmt="grid", batch_size=128, interpolate=0,
             steps=INTERPOLATION_STEPS):
    """Draw `num_images` images for `seed` and save them; with interpolate=K also the K-row latent walk grid.
    Returns the paths written."""
    check_options(num_images, batch_size, fmt, interpolate)
    prepare_output(output_path)
    images = run_batched(forward, latent(seed, num_images, nz), batch_size)
    written = save_images(images, output_path, fmt)
    if interpolate:
        walks = run_batched(forward, walk_latents(seed, interpolate, steps, nz), batch_size)
        written.append(save_grid(walks, os.path.join(output_path, "interpolate.png"), columns=steps))
    return written
