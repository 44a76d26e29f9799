"""The report's figures: loss and quality curves, the progress GIF, real beside fake. Each is written under a
temporary name and renamed, so a browser never shows half an image."""
import math

from PIL import Image, ImageDraw, ImageFont

from src.errors import UserError
from src.files import write_atomically

GIF_MAX_SIDE = 320  # frames are downscaled to this: a 100-grid GIF stays small and fast to write
GIF_TOTAL_MS = 8000  # the whole animation lasts about this long, whatever the number of grids
GIF_LAST_FRAME_MS = 2500  # the final grid is held so the eye can rest on it
PANEL_MAX_HEIGHT = 512  # height of each half of the real-vs-fake image


def smooth(values, weight):
    """Plot smoothing (not the weight average of src/ema.py): an exponential moving average of a curve, debiased
    so the first points are not pulled towards zero (as TensorBoard)."""
    smoothed, mean = [], 0.0
    for i, value in enumerate(values, 1):
        mean = weight * mean + (1 - weight) * value
        smoothed.append(mean / (1 - weight ** i))
    return smoothed


def _smoothing_weight(n):
    """About a twentieth of the run as the averaging window: visible trend, no lag on short runs."""
    window = max(1.0, n / 20)
    return 1 - 2 / (window + 1)


def epoch_boundaries(metrics):
    """(step, new epoch): the last logged step of each epoch that is followed by another."""
    return [(prev["step"], cur.get("epoch")) for prev, cur in zip(metrics, metrics[1:])
            if cur.get("epoch") != prev.get("epoch")]


def write_curves(metrics, path):
    from matplotlib.figure import Figure  # no pyplot: no global state, safe inside the training process
    from matplotlib.ticker import MaxNLocator

    steps = [r["step"] for r in metrics]
    weight = _smoothing_weight(len(metrics))
    fig = Figure(figsize=(10, 6.5), dpi=100, layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    panels = ((axes[0], "loss", (("loss_d", "loss D"), ("loss_g", "loss G"))),
              (axes[1], "D output", (("d_x", "D(x)"), ("d_g_z1", "D(G(z)) before D step"),
                                     ("d_g_z2", "D(G(z)) after D step"))))
    for ax, ylabel, series in panels:
        for i, (key, label) in enumerate(series):
            values = [_as_float(r.get(key)) for r in metrics]
            color = f"C{i}"
            marker = "o" if len(values) < 3 else None  # a line of one point is invisible
            ax.plot(steps, values, color=color, alpha=0.3, linewidth=0.8, marker=marker)
            ax.plot(steps, _smooth_with_gaps(values, weight), color=color, linewidth=1.8, label=label, marker=marker)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.25)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # outside: never hides the data
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_xlabel("step")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    boundaries = epoch_boundaries(metrics)
    label_every = math.ceil(len(boundaries) / 10) or 1  # at most ~10 labels, or they overlap
    for i, (step, epoch) in enumerate(boundaries):
        for ax in axes:
            ax.axvline(step, color="0.55", linewidth=0.7, linestyle="--", alpha=0.6)
        if i % label_every == 0:
            axes[0].annotate(f"epoch {epoch}", (step, 1), xycoords=("data", "axes fraction"), fontsize=7,
                             color="0.4", xytext=(2, -10), textcoords="offset points")
    axes[0].set_title("training curves (thin: raw, thick: smoothed; dashed lines: epoch ends)", fontsize=10)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_quality_curves(records, best, path):
    """One panel per metric: the sampled G's values per step (and G's own, dashed, when the run averages G), the
    best checkpoint marked. A collapse or divergence shows as a jump."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    names = [k for k, v in records[-1].items() if isinstance(v, float) and k != "seconds"]
    fig = Figure(figsize=(10, 0.8 + 1.4 * len(names)), dpi=100, layout="constrained")
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    steps = [r["step"] for r in records]
    sampled = "averaged G (EMA)" if records[-1].get("generator") == "ema" else "G"
    for ax, name in zip(axes, names):
        marker = "o" if len(records) < 30 else None
        ax.plot(steps, [_as_float(r.get(name)) for r in records], color="C0", marker=marker, label=sampled)
        if any(isinstance(r.get("G"), dict) for r in records):
            ax.plot(steps, [_as_float((r.get("G") or {}).get(name)) for r in records], color="C1", linestyle="--",
                    marker=marker, label="G itself")
        if best is not None and isinstance(best.get(name), (int, float)):
            ax.plot([best["step"]], [best[name]], marker="*", markersize=14, color="C3", linestyle="none",
                    label=f"best checkpoint (step {best['step']})")
        ax.set_ylabel(name + (" (primary)" if records[-1].get("primary") == name else ""))
        ax.grid(alpha=0.25)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    axes[-1].set_xlabel("step")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title("sample quality (lower is better), from quality.jsonl", fontsize=10)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _as_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _smooth_with_gaps(values, weight):
    """EMA over the finite values; a missing or non-finite value stays a gap in the line."""
    finite = [v for v in values if math.isfinite(v)]
    smoothed = iter(smooth(finite, weight))
    return [next(smoothed) if math.isfinite(v) else math.nan for v in values]


def _font(size):
    try:
        return ImageFont.load_default(size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _labelled(image, label, bar=18):
    """`image` with `label` on a white bar below it. Every GIF frame gets its step, which also keeps Pillow from
    merging identical consecutive frames: the GIF has exactly one frame per grid."""
    framed = Image.new("RGB", (image.width, image.height + bar), "white")
    framed.paste(image.convert("RGB"), (0, 0))
    ImageDraw.Draw(framed).text((4, image.height + 3), label, fill="black", font=_font(12))
    return framed


def _fit(image, max_side):
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)


def write_gif(frames, path):
    """progress.gif from [(step, grid path)], every frame the size of the first, the last one held."""
    images, size = [], None
    for step, grid in frames:
        with Image.open(grid) as image:
            image = _fit(image.convert("RGB"), GIF_MAX_SIDE)
        size = size or image.size
        frame = _labelled(image.resize(size) if image.size != size else image, f"step {step}")
        # Pillow's default (median cut) palette is orders of magnitude slower than fast octree on noisy early grids.
        images.append(frame.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))
    frame_ms = int(min(500, max(60, GIF_TOTAL_MS / len(images))))
    durations = [frame_ms] * (len(images) - 1) + [GIF_LAST_FRAME_MS]
    return atomic_write(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True,
                                                          append_images=images[1:], duration=durations, loop=0))


def write_real_vs_fake(real_path, latest, path):
    """Real samples and the newest fake grid side by side, at the same height, each with a caption."""
    step, fake_path = latest
    panels = []
    fake_label = f"fake (step {step})" if step is not None else "fake (latest)"
    for image_path, label in ((real_path, "real"), (fake_path, fake_label)):
        with Image.open(image_path) as image:
            image = image.convert("RGB")
        height = min(PANEL_MAX_HEIGHT, max(image.height, 256))
        width = round(image.width * height / image.height)
        panels.append(_labelled(image.resize((width, height), Image.NEAREST), label, bar=22))
    gap = 16
    canvas = Image.new("RGB", (sum(p.width for p in panels) + gap, max(p.height for p in panels)), "white")
    canvas.paste(panels[0], (0, 0))
    canvas.paste(panels[1], (panels[0].width + gap, 0))
    return atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))


def atomic_write(path, write):
    """write_atomically, with a failure as one line (a full disk must not end training with a traceback)."""
    try:
        return write_atomically(path, write)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None
