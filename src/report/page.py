"""The report's HTML page: sections built from the data run_reader.py read and the figures figures.py drew.
It needs no network and no JavaScript; every image is referenced by a path relative to the page."""
import datetime
import html
import os
import statistics
from urllib.parse import quote

from src.formatting import format_bytes, format_duration
from src.report.run_reader import format_value
from src.run import directory as rundir


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
    body += [f"<p class=\"problem\">Step {_e(f.get('step'))}: {_e(f.get('message'))}</p>"
             for f in _health(run)]
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


def _health(run):
    """The trainer's collapse and divergence warnings (status.json "health"), if readable."""
    findings = run["status"].get("health")
    return [f for f in findings if isinstance(f, dict)] if isinstance(findings, list) else []


def _status(run):
    state = run["status"].get("state")
    if state == "failed":
        return f"failed: {run['status'].get('reason', 'no reason recorded')}"
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
    best = run["best"]
    failed = [r for r in run["quality"] if r.get("error")]
    records = [r for r in run["quality"] if not r.get("error")]
    for record in failed[-5:]:  # a failed measurement is said, never hidden
        stopped = "; measuring stopped for the run" if record.get("stopped") else ""
        section.append(f"<p class=\"problem\">The measurement at step {_e(record.get('step'))} failed: "
                       f"{_e(record['error'])}{stopped}.</p>")
    if not records:
        return section + [_missing("No measurement yet: quality.jsonl is missing or empty "
                                   "(train.py measures at every checkpoint unless --metrics_interval 0).")]
    last = records[-1]
    if best is not None:
        section.append(f"<p><b>Best samples at step {best['step']}</b> ({_e(best['primary'])} "
                       f"{best[best['primary']]:.4g}): "
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
