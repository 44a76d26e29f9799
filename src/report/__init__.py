"""The run report: one HTML page that explains a run directory (see src/run/directory.py for its layout).

`render_report(run_dir)` writes
  RUN_DIR/index.html            the page: config, data, device, throughput and time, curves, grids, checkpoints,
                                and any evaluation results found in the run directory
  RUN_DIR/report/curves.png     losses and D outputs per step, raw and smoothed, with epoch boundaries
  RUN_DIR/report/quality.png    the sample-quality metrics of quality.jsonl per step, the best checkpoint marked
  RUN_DIR/report/progress.gif   the fixed-noise grids in order of step, one frame per step that saved a grid
  RUN_DIR/report/real_vs_fake.png   real_samples.png beside the newest fake grid
The page references every image by a path relative to itself and needs no network and no JavaScript.

Three concerns, one module each: run_reader.py reads the run directory into plain data, figures.py draws the
curves, the GIF and the real-vs-fake image, page.py writes the HTML. It only reads the run directory and writes the
files above, each under a temporary name then renamed, so a browser or a concurrent render never sees half a file.
Missing pieces (no metrics or grids yet) are said on the page; a piece that fails to render is reported on the page
and as a warning, so the trainer can call this at every epoch end. Only a run directory that cannot be read or
written, or whose config.json is missing or damaged, is a UserError.
"""
import os
import pathlib
import warnings

from src.errors import UserError
from src.report.figures import atomic_write, write_curves, write_gif, write_quality_curves, write_real_vs_fake
from src.report.page import build_html
from src.report.run_reader import REPORT_DIR, read_run

INDEX_FILE = "index.html"
CURVES_FILE = "curves.png"
QUALITY_FILE = "quality.png"
GIF_FILE = "progress.gif"
REAL_VS_FAKE_FILE = "real_vs_fake.png"


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
    measured = [r for r in run["quality"] if not r.get("error")]  # failed measurements are told on the page
    if measured:
        figures["quality"] = _attempt("quality curves", problems, write_quality_curves, measured, run["best"],
                                      os.path.join(out_dir, QUALITY_FILE))
    if run["frames"]:
        figures["gif"] = _attempt("progress GIF", problems, write_gif, run["frames"], os.path.join(out_dir, GIF_FILE))
    if run["real"] and run["latest"]:
        figures["real_vs_fake"] = _attempt("real-vs-fake image", problems, write_real_vs_fake, run["real"],
                                           run["latest"], os.path.join(out_dir, REAL_VS_FAKE_FILE))
    index = os.path.join(run_dir, INDEX_FILE)
    page = build_html(run, figures, problems)
    atomic_write(index, lambda tmp: pathlib.Path(tmp).write_text(page, encoding="utf-8"))
    return index


def _attempt(what, problems, render, *args):
    """Run one renderer; a failure becomes a note on the page and a warning, not a lost report."""
    try:
        return render(*args)
    except Exception as error:  # noqa: BLE001 - any renderer bug must not take the page (or the run) down
        problems.append(f"could not render the {what}: {type(error).__name__}: {error}")
        warnings.warn(problems[-1])
        return None
