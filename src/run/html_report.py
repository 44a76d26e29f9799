"""The run report: one HTML page that explains a run directory (see src/run/directory.py for its layout).

`render_report(run_dir)` writes
  RUN_DIR/index.html            the page: config, data, device, throughput and time, curves, grids, checkpoints,
                                and any evaluation results found in the run directory
  RUN_DIR/report/curves.png     losses and D outputs per step, raw and smoothed, with epoch boundaries
  RUN_DIR/report/quality.png    the sample-quality metrics of quality.jsonl per step, the best checkpoint marked
  RUN_DIR/report/progress.gif   the fixed-noise grids in order of step, one frame per step that saved a grid
  RUN_DIR/report/real_vs_fake.png   real_samples.png beside the newest fake grid
The page references every image by a path relative to itself and needs no network and no JavaScript.

It only reads the run directory and writes the files above, each under a temporary name then renamed, so a browser
or a concurrent render never sees half a file. Missing pieces (no metrics or grids yet) are said on the page; a
piece that fails to render is reported on the page and as a warning, so the trainer can call this at every epoch
end. Only a run directory that cannot be read or written is a UserError.
"""
import datetime
import glob
import html
import json
import math
import os
import pathlib
import re
import statistics
import warnings
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont

from src.errors import UserError
from src.files import write_atomically
from src.run import directory as rundir

REPORT_DIR = "report"
INDEX_FILE = "index.html"
CURVES_FILE = "curves.png"
QUALITY_FILE = "quality.png"
GIF_FILE = "progress.gif"
REAL_VS_FAKE_FILE = "real_vs_fake.png"

GIF_MAX_SIDE = 320  # frames are downscaled to this: a 100-grid GIF stays small and fast to write
GIF_TOTAL_MS = 8000  # the whole animation lasts about this long, whatever the number of grids
GIF_LAST_FRAME_MS = 2500  # the final grid is held so the eye can rest on it
PANEL_MAX_HEIGHT = 512  # height of each half of the real-vs-fake image
MAX_EVAL_FILES = 40  # a run directory is not a dataset: show at most this many evaluation figures / results
MAX_JSON_BYTES = 1 << 20

STEP_GRID = re.compile(r"fake_step_(\d+)\.png")
EPOCH_GRID = re.compile(r"fake_epoch_(\d+)_step_(\d+)\.png")
# Directories the trainer or this module own; everything else may hold eval.py / verify.py results.
OWN_DIRS = {rundir.SAMPLES_DIR, rundir.CKPT_DIR, REPORT_DIR, "kernel_meta"}
OWN_FILES = {rundir.CONFIG_FILE, rundir.METRICS_FILE, rundir.REAL_SAMPLES_FILE, rundir.QUALITY_FILE,
             rundir.STATUS_FILE}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif")


def render_report(run_dir):
    """Write the report of `run_dir`; returns the path of its index.html."""
    run = read_run(run_dir)
    out_dir = os.path.join(run_dir, REPORT_DIR)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write the report to {out_dir}: {error.strerror}") from None
    figures, problems = {}, []
    if run["metrics"]:
        figures["curves"] = _attempt("loss curves", problems, write_curves, run["metrics"],
                                     os.path.join(out_dir, CURVES_FILE))
    if run["quality"]:
        figures["quality"] = _attempt("quality curves", problems, write_quality_curves, run["quality"], run["best"],
                                      os.path.join(out_dir, QUALITY_FILE))
    if run["frames"]:
        figures["gif"] = _attempt("progress GIF", problems, write_gif, run["frames"], os.path.join(out_dir, GIF_FILE))
    if run["real"] and run["latest"]:
        figures["real_vs_fake"] = _attempt("real-vs-fake image", problems, write_real_vs_fake, run["real"],
                                           run["latest"], os.path.join(out_dir, REAL_VS_FAKE_FILE))
    index = os.path.join(run_dir, INDEX_FILE)
    page = build_html(run, figures, problems)
    _atomic_write(index, lambda tmp: pathlib.Path(tmp).write_text(page, encoding="utf-8"))
    return index


def _attempt(what, problems, render, *args):
    """Run one renderer; a failure becomes a note on the page and a warning, not a lost report."""
    try:
        return render(*args)
    except Exception as error:  # noqa: BLE001 - any renderer bug must not take the page (or the run) down
        problems.append(f"could not render the {what}: {type(error).__name__}: {error}")
        warnings.warn(problems[-1])
        return None


def _atomic_write(path, write):
    """write_atomically, with a failure as one line (a full disk must not end training with a traceback)."""
    try:
        return write_atomically(path, write)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None


# ---------------------------------------------------------------------------------------------------------------
# Reading the run directory

def read_run(run_dir):
    """Everything the page shows, as plain data. Only a missing or unreadable run directory is an error."""
    if not os.path.isdir(run_dir):
        raise UserError(f"not a run directory: {run_dir} does not exist or is not a directory")
    cfg = _read_config(run_dir)
    step_grids, epoch_grids = _find_grids(run_dir)
    status = rundir.read_status(run_dir)  # the trainer's own record of how far the run got and how it ended
    done_step = status.get("step") if status.get("state") == "finished" else None
    latest_path = os.path.join(run_dir, rundir.SAMPLES_DIR, rundir.LATEST_SAMPLES_FILE)
    real_path = os.path.join(run_dir, rundir.REAL_SAMPLES_FILE)
    checkpoints = _list_checkpoints(run_dir)
    quality = rundir.read_quality(run_dir)
    kept = {named[1] for name, _ in checkpoints if (named := rundir.checkpoint_step(name)) and named[0] == "generator"}
    return {
        "quality": quality,
        "best": rundir.best_quality_record(quality, kept),
        "dir": run_dir,
        "cfg": cfg,
        "metrics": read_metrics(os.path.join(run_dir, "metrics.jsonl")),
        "status": status,
        "frames": _gif_frames(step_grids, epoch_grids),
        "epoch_grids": epoch_grids,
        "latest": _newest_grid(step_grids, epoch_grids, latest_path, done_step),
        "real": real_path if os.path.isfile(real_path) else None,
        "checkpoints": checkpoints,
        "eval": find_eval_results(run_dir),
    }


def _read_config(run_dir):
    path = os.path.join(run_dir, rundir.CONFIG_FILE)
    if not os.path.isfile(path):
        raise UserError(f"not a run directory: {run_dir} has no config.json")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    if not isinstance(cfg, dict):
        raise UserError(f"cannot read {path}: not a JSON object")
    return cfg


def read_metrics(path):
    """metrics.jsonl as a list of records sorted by step; unreadable lines (e.g. one being written) are skipped."""
    by_step = {}
    for record in rundir.read_jsonl(path):
        try:
            by_step[int(record["step"])] = record  # a resumed run may log a step again: the later one counts
        except (KeyError, TypeError, ValueError):
            continue
    return [by_step[step] for step in sorted(by_step)]


def _find_grids(run_dir):
    """{step: path} of the periodic grids and [(epoch, step, path)] of the epoch-end grids."""
    samples = os.path.join(run_dir, rundir.SAMPLES_DIR)
    step_grids, epoch_grids = {}, []
    for name in sorted(os.listdir(samples)) if os.path.isdir(samples) else []:
        path = os.path.join(samples, name)
        if match := STEP_GRID.fullmatch(name):
            step_grids[int(match.group(1))] = path
        elif match := EPOCH_GRID.fullmatch(name):
            epoch_grids.append((int(match.group(1)), int(match.group(2)), path))
    return step_grids, sorted(epoch_grids)


def _gif_frames(step_grids, epoch_grids):
    """[(step, path)]: one frame per step that saved a grid. An epoch end that is also a sample step saves the same
    grid twice; it is one frame. fake_latest.png duplicates the newest grid and is left out."""
    frames = {step: path for _, step, path in epoch_grids}
    frames.update(step_grids)
    return sorted(frames.items())


def _newest_grid(step_grids, epoch_grids, latest_path, done_step=None):
    """(step or None, path) of the newest fake grid. fake_latest.png is written at the end of a run (at the step
    of the log's "done:" line), possibly at a step with no other grid; a resumed run writes newer step grids after
    it, hence the comparison of times."""
    frames = _gif_frames(step_grids, epoch_grids)
    newest = frames[-1] if frames else None
    if os.path.isfile(latest_path):
        if newest is None or os.path.getmtime(latest_path) >= os.path.getmtime(newest[1]):
            return done_step, latest_path
    return newest


def _list_checkpoints(run_dir):
    """[(name, bytes)] of ckpt/*.ckpt, leaving out files still being written (.tmp.ckpt)."""
    paths = sorted(glob.glob(os.path.join(run_dir, rundir.CKPT_DIR, "*.ckpt")))
    return [(os.path.basename(p), os.path.getsize(p)) for p in paths if not p.endswith(".tmp.ckpt")]


def find_eval_results(run_dir):
    """Figures and JSON results that eval.py, verify.py or a user left in the run directory (its top level and
    one level of sub-folders, except the folders the trainer and this report own)."""
    figures, results = [], []
    for folder in [run_dir] + _sub_folders(run_dir):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if folder == run_dir and name in OWN_FILES or name.startswith(".") or not os.path.isfile(path):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                figures.append(path)
            elif name.endswith((".json", ".jsonl")):
                results.append((path, _read_result(path)))
    return {"figures": figures[:MAX_EVAL_FILES], "results": results[:MAX_EVAL_FILES],
            "omitted": max(0, len(figures) - MAX_EVAL_FILES) + max(0, len(results) - MAX_EVAL_FILES)}


def _sub_folders(run_dir):
    names = sorted(os.listdir(run_dir))
    return [os.path.join(run_dir, n) for n in names
            if n not in OWN_DIRS and not n.startswith(".") and os.path.isdir(os.path.join(run_dir, n))]


def _read_result(path):
    """A JSON result as a flat [(key, text)] list; of a .jsonl file, its newest (last readable) line."""
    try:
        if os.path.getsize(path) > MAX_JSON_BYTES:
            return [("(file)", "too large to show")]
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as error:
        return [("(file)", f"unreadable: {error.strerror}")]
    docs = [text] if path.endswith(".json") else reversed(text.splitlines())
    for doc in docs:
        try:
            return _flatten(json.loads(doc))
        except ValueError:
            continue
    return [("(file)", "not valid JSON")]


def _flatten(value, prefix=""):
    """Nested dicts become dotted keys, so any result file fits in one two-column table."""
    if isinstance(value, dict) and value:
        rows = []
        for key, item in value.items():
            rows += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    return [(prefix or "(value)", format_value(value))]


def format_value(value):
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"
    text = json.dumps(value)
    return text if len(text) <= 300 else text[:297] + "..."


# ---------------------------------------------------------------------------------------------------------------
# Figures

def ema(values, weight):
    """Exponential moving average, debiased so the first points are not pulled towards zero (as TensorBoard)."""
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
            ax.plot(steps, _ema_with_gaps(values, weight), color=color, linewidth=1.8, label=label, marker=marker)
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
    return _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


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
    return _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _as_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _ema_with_gaps(values, weight):
    """EMA over the finite values; a missing or non-finite value stays a gap in the line."""
    finite = [v for v in values if math.isfinite(v)]
    smoothed = iter(ema(finite, weight))
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
        # Pillow's default (median cut) palette takes ~0.2 s a frame on noisy early grids; fast octree ~1 ms.
        images.append(frame.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))
    frame_ms = int(min(500, max(60, GIF_TOTAL_MS / len(images))))
    durations = [frame_ms] * (len(images) - 1) + [GIF_LAST_FRAME_MS]
    return _atomic_write(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True,
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
    return _atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))


# ---------------------------------------------------------------------------------------------------------------
# The page

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; } img.grid { image-rendering: pixelated; }
figure { display: inline-block; margin: 0.4em; vertical-align: top; } figcaption { font-size: 0.85em; color: #555; }
.gallery img { width: 200px; } .missing { color: #a55; font-style: italic; } .note { color: #555; }
.problem { color: #b00; }
"""


def build_html(run, figures, problems):
    cfg = run["cfg"]
    name = os.path.basename(os.path.abspath(run["dir"]))
    body = [f"<h1>DCGAN run: {_e(name)}</h1>",
            f"<p class=\"note\">{_e(os.path.abspath(run['dir']))} &middot; {_e(_status(run))} &middot; "
            f"report rendered {datetime.datetime.now():%Y-%m-%d %H:%M:%S}</p>"]
    body += [f"<p class=\"problem\">{_e(p)}</p>" for p in problems]
    body += _summary_section(run)
    body += _curves_section(run, figures.get("curves"))
    body += _quality_section(run, figures.get("quality"))
    body += _samples_section(run, figures)
    body += _epoch_section(run)
    body += _checkpoint_section(run)
    body += _analysis_section(run)
    body += _eval_section(run)
    body += ["<h2>Configuration</h2>", "<p class=\"note\">config.json, as the run resolved it.</p>",
             _table([(k, format_value(cfg[k])) for k in sorted(cfg)], ("key", "value"))]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>DCGAN run {_e(name)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _e(text):
    return html.escape(str(text))


def _src(run, path):
    """A path relative to index.html (which sits in the run directory), URL-quoted."""
    return quote(os.path.relpath(path, run["dir"]).replace(os.sep, "/"))


def _img(run, path, alt, css_class=""):
    cls = f" class=\"{css_class}\"" if css_class else ""
    return f"<img src=\"{_src(run, path)}\" alt=\"{_e(alt)}\"{cls}>"


def _missing(text):
    return f"<p class=\"missing\">{_e(text)}</p>"


def _table(rows, header=None):
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if header else ""
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{head}{cells}</table>"


def _status(run):
    state = run["status"].get("state")
    if state == "running":
        return "running (or stopped by SIGKILL / a crash: resume it with train.py --resume)"
    return state or ("started" if run["metrics"] else "not started")


def world_size(cfg):
    """Data-parallel workers of the run (the trainer records world_size in config.json)."""
    size = cfg.get("world_size")
    return size if isinstance(size, int) and size > 0 else 1


def throughput(metrics):
    """Median images/s of the logged intervals; the first one includes graph compilation and is left out."""
    rates = [r["images_per_s"] for r in metrics[1:] or metrics
             if isinstance(r.get("images_per_s"), (int, float)) and r["images_per_s"] > 0]
    return statistics.median(rates) if rates else None


def training_seconds(metrics, batch_size):
    """Time spent in training steps, from each logged interval's steps and images/s."""
    total, previous = 0.0, 0
    for record in metrics:
        rate = record.get("images_per_s")
        if isinstance(rate, (int, float)) and rate > 0 and isinstance(batch_size, int):
            total += (record["step"] - previous) * batch_size / rate
        previous = record["step"]
    return total


def format_duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


def format_bytes(size):
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def _summary_section(run):
    cfg, metrics, status = run["cfg"], run["metrics"], run["status"]
    world, batch = world_size(cfg), cfg.get("batch_size")
    rows = [("dataset", cfg.get("dataset", "?")),
            ("data path", cfg.get("data_path") or "(built in)"),
            ("training data", f"split {(cfg.get('data') or {}).get('split', cfg.get('split', '?'))}; "
                              f"{(cfg.get('data') or {}).get('images', '?')} images"),
            ("images", f"{cfg.get('image_size', '?')} px, {cfg.get('nc', '?')} channel(s)"),
            ("device", f"{cfg.get('device_target', '?')}:{cfg.get('device_id', 0)}"),
            ("world size", world),
            ("batch size", f"{batch} per device" + (f", {batch * world} global" if world > 1 and isinstance(batch, int)
                                                     else ""))]
    last = metrics[-1] if metrics else None
    total = status.get("total_steps")
    rows.append(("steps", f"{last['step']}" + (f" of {total}" if total else "") if last else "none logged yet"))
    if last:
        rows.append(("epoch", f"{last.get('epoch', '?')} of {cfg.get('epoch_size', '?')}"))
        rate = throughput(metrics)
        rows.append(("throughput", f"{rate:.1f} images/s (median of logged intervals, per device)"
                     if rate else "not measured yet"))
        rows.append(("training time", f"{format_duration(training_seconds(metrics, batch))} "
                                      "(sum of logged intervals)"))
    if isinstance(status.get("started"), (int, float)) and isinstance(status.get("updated"), (int, float)):
        started, updated = (datetime.datetime.fromtimestamp(status[k]) for k in ("started", "updated"))
        rows.append(("started", f"{started:%Y-%m-%d %H:%M:%S}"))
        rows.append(("elapsed", f"{format_duration((updated - started).total_seconds())} "
                                f"(until the last update of status.json, {updated:%Y-%m-%d %H:%M:%S})"))
    return ["<h2>Run</h2>", _table(rows)]


def _curves_section(run, curves):
    section = ["<h2>Training curves</h2>"]
    if not run["metrics"]:
        return section + [_missing("No metrics yet: metrics.jsonl is missing or empty.")]
    if not curves:
        return section + [_missing("The curves could not be rendered (see above).")]
    return section + [_img(run, curves, "loss and D output curves")]


def _quality_section(run, figure):
    section = ["<h2>Sample quality</h2>"]
    records, best = run["quality"], run["best"]
    if not records:
        return section + [_missing("No measurement yet: quality.jsonl is missing or empty "
                                   "(train.py measures at every checkpoint unless --metrics_interval 0).")]
    last = records[-1]
    primary = last.get("primary", "?")
    if best is not None:
        section.append(f"<p><b>Best samples at step {best['step']}</b> ({_e(primary)} {best[primary]:.4g}): "
                       f"ckpt/generator_{best['step']:08d}.ckpt, kept from rotation; eval.py and export.py use it "
                       "unless given --which latest.</p>")
    section.append(f"<p class=\"note\">{_e(last.get('num_images', '?'))} generated images from a fixed latent "
                   f"sample against {_e(last.get('reference', '?'))}; lower is better.</p>")
    latest = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if isinstance(v, float) and k != "seconds")
    section.append(f"<p>Latest measurement, step {_e(last.get('step'))}: {_e(latest)} (all of them: "
                   f"{_e(rundir.QUALITY_FILE)}).</p>")
    if figure:
        section.append(_img(run, figure, "sample-quality metrics per step"))
    return section


def _samples_section(run, figures):
    section = ["<h2>Samples</h2>"]
    if not run["latest"]:
        return section + [_missing("No grids yet: samples/ holds no fake grid.")]
    step, latest = run["latest"]
    caption = f"newest fixed-noise grid (step {step})" if step is not None else "newest fixed-noise grid (end of run)"
    section.append(f"<figure>{_img(run, latest, caption, 'grid')}<figcaption>{_e(caption)}</figcaption></figure>")
    if figures.get("gif"):
        frames = run["frames"]
        caption = f"progress: {len(frames)} grid(s), steps {frames[0][0]} to {frames[-1][0]}"
        section.append(f"<figure>{_img(run, figures['gif'], caption, 'grid')}"
                       f"<figcaption>{_e(caption)}</figcaption></figure>")
    elif not run["frames"]:
        section.append(_missing("No periodic grids yet, so no progress animation."))
    if figures.get("real_vs_fake"):
        section.append(f"<figure>{_img(run, figures['real_vs_fake'], 'real vs fake', 'grid')}"
                       "<figcaption>real samples (left) and the newest fake grid (right)</figcaption></figure>")
    elif not run["real"]:
        section.append(_missing("No real_samples.png, so no real-vs-fake comparison."))
    return section


def _epoch_section(run):
    section = ["<h2>Grids at epoch ends</h2>"]
    if not run["epoch_grids"]:
        return section + [_missing("No epoch has ended yet.")]
    figures = [f"<figure>{_img(run, path, f'epoch {epoch}', 'grid')}"
               f"<figcaption>epoch {epoch}, step {step}</figcaption></figure>"
               for epoch, step, path in run["epoch_grids"]]
    return section + ["<div class=\"gallery\">" + "".join(figures) + "</div>"]


def _checkpoint_section(run):
    section = ["<h2>Checkpoints</h2>"]
    if not run["checkpoints"]:
        return section + [_missing("No checkpoints yet.")]
    rows = "".join(f"<tr><td>{_e(name)}</td><td class=\"num\">{_e(format_bytes(size))}</td></tr>"
                   for name, size in run["checkpoints"])
    return section + [f"<p class=\"note\">in ckpt/</p><table><tr><th>file</th><th>size</th></tr>{rows}</table>"]


# The paper's analyses (src/analysis/): shown in their own section, in this order, with what they show.
ANALYSES = {
    "arithmetic.png": "Vector arithmetic (eval.py --arithmetic): each term's exemplars, the image of their mean z "
                      "and their mean image; the result G(mean A - mean B + mean C) with noisy neighbours, and the "
                      "same arithmetic on pixels.",
    "nearest.png": "Memorisation check (eval.py --nearest): each generated sample, then its nearest training "
                   "images by pixel L2 and by D features. Copies are marked COPY.",
    "guided_backprop.png": "What D responds to (verify.py --visualize): for D's last-stage channels, the test "
                           "images that excite each most and their guided-backpropagation maps; trained D left, "
                           "untrained D right.",
    "numbered.png": "Numbered samples (eval.py --numbered): pick exemplars for --arithmetic by their index.",
}
NEAREST_JSON = "nearest.json"


def _is_analysis(path):
    return os.path.basename(path) in ANALYSES or os.path.basename(path) == NEAREST_JSON


def _analysis_section(run):
    found = run["eval"]
    figures = sorted((p for p in found["figures"] if os.path.basename(p) in ANALYSES),
                     key=lambda p: (list(ANALYSES).index(os.path.basename(p)), p))
    nearest = [(p, rows) for p, rows in found["results"] if os.path.basename(p) == NEAREST_JSON]
    if not figures and not nearest:
        return []
    section = ["<h2>Analyses</h2>"]
    for path in figures:
        name = os.path.relpath(path, run["dir"])
        section.append(f"<figure>{_img(run, path, name, 'grid')}<figcaption>{_e(name)}: "
                       f"{_e(ANALYSES[os.path.basename(path)])}</figcaption></figure>")
    for path, rows in nearest:
        wanted = [(k, v) for k, v in rows if not k.startswith("distances.pixel.nearest")
                  and not k.startswith("distances.feature.nearest")]
        section += [f"<h3>{_e(os.path.relpath(path, run['dir']))}</h3>",
                    "<p class=\"note\">Nearest-training-image distances of generated samples against the "
                    "reference (real images not trained on): samples much closer to the training set than the "
                    "reference is point to memorised images.</p>", _table(wanted, ("key", "value"))]
    return section


def _eval_section(run):
    found = run["eval"]
    found = dict(found, figures=[p for p in found["figures"] if not _is_analysis(p)],
                 results=[(p, rows) for p, rows in found["results"] if not _is_analysis(p)])
    if not found["figures"] and not found["results"]:
        return []  # nothing evaluated yet: no section at all
    section = ["<h2>Evaluation</h2>"]
    for path, rows in found["results"]:
        section += [f"<h3>{_e(os.path.relpath(path, run['dir']))}</h3>", _table(rows, ("key", "value"))]
    for path in found["figures"]:
        name = os.path.relpath(path, run["dir"])
        section.append(f"<figure>{_img(run, path, name, 'grid')}<figcaption>{_e(name)}</figcaption></figure>")
    if found["omitted"]:
        section.append(_missing(f"{found['omitted']} more file(s) not shown."))
    return section
