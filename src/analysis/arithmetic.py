"""Numbered samples and vector arithmetic on their latent vectors (the paper's section 6.3, Fig. 7).

Workflow (eval.py):
  --numbered          numbered.png: a grid of samples, each with its index drawn on it, and numbered_z.npz: the z
                      of every sample (key "z", (N, nz, 1, 1); also "seed"), so exemplars can be picked by eye
  --arithmetic EXPR   arithmetic.png from the z saved by --numbered in the same output directory

EXPR is terms joined by + and -, each term a comma-separated list of sample indices: "3,17,40 - 5,8,22 + 9,11,30".
Each term stands for the mean of its exemplars' z (the paper averages three exemplars per concept, which it found
stable where single samples were not), so the result vector is mean(A) - mean(B) + mean(C), with any number of
terms. The unicode minus (−) is accepted too.

arithmetic.png shows, per term, its exemplars, the image of their mean z and the mean of their images; then the
result: G(result vector) and RESULT_SAMPLES - 1 more with uniform noise of +-NOISE added to the result vector (as in
Fig. 7), and, for contrast, the same arithmetic done on the exemplars' pixels.
"""
import os
import re

import numpy as np
from PIL import ImageDraw

from src.analysis import figures
from src.errors import UserError
from src.files import write_atomically
from src.outputs.visuals import grid_image

NUMBERED_GRID = "numbered.png"
NUMBERED_Z = "numbered_z.npz"
ARITHMETIC_FIGURE = "arithmetic.png"
NOISE = 0.25  # the paper's: uniform noise of +-0.25 added to the result vector
RESULT_SAMPLES = 9  # the result and 8 noisy neighbours (Fig. 7's 3 x 3)
NUMBERED_IMAGES = 64
MINUS = ("-", "\u2212")


def parse_expression(text, num_samples=None):
    """EXPR -> [(sign, [indices]), ...] with sign +1 or -1; indices checked against `num_samples` when given.
    Raises UserError (one line) on a malformed expression."""
    if not isinstance(text, str) or not text.strip():
        raise UserError('empty --arithmetic expression; write terms of sample indices like "3,17,40 - 5,8,22 + 9"')
    pieces = re.split(r"([+-])", text.replace("\u2212", "-"))  # term, operator, term, ..., term
    sign = 1
    if not pieces[0].strip():  # a leading sign: "-3 + 4"
        sign = -1 if pieces[1] == "-" else 1
        pieces = pieces[2:]
    terms = []
    for i in range(0, len(pieces), 2):
        body = pieces[i].strip()
        if not body:
            if i == len(pieces) - 1:
                raise UserError(f'--arithmetic "{text}": ends with an operator; a term of sample indices must '
                                "follow it")
            raise UserError(f'--arithmetic "{text}": two operators in a row; each + or - needs a term of sample '
                            "indices on both sides")
        indices = []
        for part in body.split(","):
            part = part.strip()
            if not re.fullmatch(r"[0-9]+", part):
                what = "an empty index (two commas in a row?)" if not part else f"'{part}' is not a sample index"
                raise UserError(f'--arithmetic "{text}": {what}; terms are comma-separated sample numbers as '
                                "drawn on numbered.png")
            index = int(part)
            if num_samples is not None and index >= num_samples:
                raise UserError(f'--arithmetic "{text}": sample {index} does not exist; numbered.png has samples '
                                f"0 to {num_samples - 1}")
            indices.append(index)
        terms.append((sign, indices))
        if i + 1 < len(pieces):
            sign = -1 if pieces[i + 1] == "-" else 1
    return terms


def format_expression(terms):
    """[(sign, indices)] -> "3,17,40 - 5,8,22 + 9" (the canonical form of an expression)."""
    text = ""
    for i, (sign, indices) in enumerate(terms):
        body = ",".join(map(str, indices))
        text += (("-" if sign < 0 else "") + body) if i == 0 else (" - " if sign < 0 else " + ") + body
    return text


def combine(vectors, terms):
    """sum over terms of sign * mean(vectors[indices]): the latent result vector, or with images the pixel-space
    arithmetic of the same exemplars. `vectors` (N, ...) -> one array of shape (...)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    result = np.zeros(vectors.shape[1:], np.float64)
    for sign, indices in terms:
        result += sign * vectors[list(indices)].mean(axis=0)
    return result.astype(np.float32)


def result_latents(result, seed=0, count=RESULT_SAMPLES, noise=NOISE):
    """(count, *result.shape): the result vector itself first, then count - 1 copies with uniform noise in
    [-noise, noise] added to every component (Fig. 7)."""
    rng = np.random.default_rng([seed, 7])
    jitter = rng.uniform(-noise, noise, (count - 1,) + result.shape).astype(np.float32)
    return np.concatenate([result[None], result[None] + jitter]).astype(np.float32)


def numbered_figure(images, columns=None):
    """A grid of `images` (N, C, H, W) in [-1, 1] with each index drawn in its tile's top-left corner (white on a
    black box, readable on any sample). Returns a Pillow image."""
    images = np.asarray(images)
    n, _, h, w = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    padding = 2
    side = max(columns * (w + padding), -(-n // columns) * (h + padding)) + padding
    scale = max(1, figures.TILE // max(h, w), 512 // side)  # tiles at least figures.TILE px, the grid ~512 px
    picture = grid_image(images, columns, scale, padding).convert("RGB")
    draw = ImageDraw.Draw(picture)
    face = figures.font(max(10, min(16, (h * scale) // 4)))
    for i in range(n):
        top = (padding + (i // columns) * (h + padding)) * scale
        left = (padding + (i % columns) * (w + padding)) * scale
        text = str(i)
        tw, th = figures.text_size(text, face)
        draw.rectangle((left, top, left + tw + 4, top + th + 5), fill=(0, 0, 0))
        draw.text((left + 2, top), text, fill=(255, 255, 255), font=face)
    return picture


def write_numbered(forward, nz, output_path, num=NUMBERED_IMAGES, seed=0, batch_size=128, checkpoint=None):
    """numbered.png and numbered_z.npz for `num` samples of `seed` (the same z as eval.py's generate.png). Returns
    the paths written."""
    from src.outputs.generate import latent, run_batched

    if num < 1:
        raise UserError(f"--num_images must be at least 1 for --numbered, not {num}")
    z = latent(seed, num, nz)
    images = run_batched(forward, z, batch_size)
    grid = figures.save(numbered_figure(images), os.path.join(output_path, NUMBERED_GRID))
    z_path = write_atomically(os.path.join(output_path, NUMBERED_Z), lambda tmp: _save_z(tmp, z, seed, checkpoint))
    return [grid, z_path]


def _save_z(path, z, seed, checkpoint):
    with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to the temporary name
        np.savez(f, z=z, seed=np.int64(seed), checkpoint=np.str_(checkpoint or ""))


def load_numbered(output_path, nz=None):
    """The z saved by --numbered in `output_path`: (N, nz, 1, 1) float32."""
    path = os.path.join(output_path, NUMBERED_Z)
    if not os.path.isfile(path):
        raise UserError(f"no {NUMBERED_Z} in {output_path}: run eval.py --numbered with the same --output_path "
                        "first, then pick exemplars from numbered.png")
    try:
        with np.load(path) as saved:
            z = saved["z"].astype(np.float32)
    except Exception as error:  # noqa: BLE001 - a damaged file (truncated zip, random bytes) raises many kinds
        raise UserError(f"cannot read {path}: {(str(error).strip() or type(error).__name__).splitlines()[0]} (damaged? run "
                        "eval.py --numbered again)") from None
    if z.ndim != 4 or (nz is not None and z.shape[1] != nz):
        raise UserError(f"{path} holds z of shape {z.shape}, but this generator takes nz {nz}: it was written "
                        "for another generator; run eval.py --numbered again")
    return z


def arithmetic(forward, z, terms, seed=0, count=RESULT_SAMPLES, noise=NOISE):
    """Everything arithmetic.png shows, as arrays (all images (.., C, H, W) in [-1, 1]):
    exemplars: per term its exemplar images; mean_z_images: per term G(mean z); mean_pixels: per term the mean of
    its exemplar images; result_z: the result vector; results: G(result_latents(...)); pixel_result: the same
    arithmetic on the exemplars' images, clipped to [-1, 1]."""
    z = np.asarray(z, np.float32)
    used = sorted({i for _, indices in terms for i in indices})
    images = dict(zip(used, np.asarray(forward(z[used]))))
    exemplars = [np.stack([images[i] for i in indices]) for _, indices in terms]
    term_means = np.stack([z[list(indices)].mean(axis=0) for _, indices in terms]).astype(np.float32)
    result_z = combine(z, terms)
    results = np.asarray(forward(result_latents(result_z, seed, count, noise)))
    stack = np.stack([images[i] for i in used])
    pixel_terms = [(sign, [used.index(i) for i in indices]) for sign, indices in terms]
    return {"exemplars": exemplars, "mean_z_images": np.asarray(forward(term_means)),
            "mean_pixels": np.stack([e.mean(axis=0) for e in exemplars]), "result_z": result_z,
            "results": results, "pixel_result": np.clip(combine(stack, pixel_terms), -1.0, 1.0)}


def arithmetic_figure(terms, parts):
    """The Pillow figure of arithmetic()'s `parts`: one row per term (its sign and indices, exemplars, G(mean z),
    pixel mean), then the latent result as a 3 x 3 block (G(result) in the centre) and the pixel-space result."""
    widest = max(len(indices) for _, indices in terms)
    header_width = 96
    rows = [[figures.label("", header_width, 18), figures.label("exemplars", widest * (figures.TILE + figures.GAP),
                                                                 18),
             figures.label("G(mean z)", figures.TILE + 12, 18), figures.label("mean image", figures.TILE + 12, 18)]]
    for k, (sign, indices) in enumerate(terms):
        op = "" if k == 0 and sign > 0 else ("- " if sign < 0 else "+ ")
        cells = [figures.label(op + ",".join(map(str, indices)), header_width, size=14)]
        cells += [figures.tile(image) for image in parts["exemplars"][k]]
        cells += [figures.gap()] * (widest - len(indices))
        cells += [figures.gap(8), figures.tile(parts["mean_z_images"][k]), figures.gap(8),
                  figures.tile(parts["mean_pixels"][k])]
        rows.append(cells)
    results = [figures.tile(image) for image in parts["results"]]
    # Fig. 7's layout: the result in the middle of a 3 x 3 block, its noisy neighbours around it.
    results.insert(len(results) // 2, results.pop(0))
    block = figures.compose([results[i:i + 3] for i in range(0, len(results), 3)], spacing=2)
    rows.append([figures.label("= latent\narithmetic", header_width, size=13), block,
                 figures.label(f"centre: G(result);\naround it: result\n+ uniform noise\nof +-{NOISE:g}", size=10),
                 figures.gap(8), figures.label("= pixel\narithmetic", size=13), figures.tile(parts["pixel_result"])])
    return figures.compose(rows)


def write_arithmetic(forward, output_path, expression, nz=None, seed=0):
    """arithmetic.png for `expression` on the z saved by --numbered in `output_path`. Returns (path, parts)."""
    z = load_numbered(output_path, nz)
    terms = parse_expression(expression, len(z))
    parts = arithmetic(forward, z, terms, seed)
    path = figures.save(arithmetic_figure(terms, parts), os.path.join(output_path, ARITHMETIC_FIGURE))
    return path, parts
