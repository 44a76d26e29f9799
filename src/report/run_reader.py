"""Reading a run directory for its report: everything the page shows, as plain data.

Every file may be half-written, damaged, or removed by the trainer between listing and reading (checkpoints
rotate): what cannot be read is left out, never raised. Only a missing run directory, or a missing or damaged
config.json, is an error (one line).
"""
import glob
import json
import os
import re

from src.errors import UserError
from src.run import directory as rundir

REPORT_DIR = "report"  # the report's own folder in the run directory
MAX_EVAL_FILES = 40  # a run directory is not a dataset: show at most this many evaluation figures / results
MAX_JSON_BYTES = 1 << 20

STEP_GRID = re.compile(r"fake_step_(\d+)\.png")
EPOCH_GRID = re.compile(r"fake_epoch_(\d+)_step_(\d+)\.png")
# Directories the trainer or the report own; everything else may hold eval.py / verify.py results.
OWN_DIRS = {rundir.SAMPLES_DIR, rundir.CKPT_DIR, REPORT_DIR, "kernel_meta"}
OWN_FILES = {rundir.CONFIG_FILE, rundir.METRICS_FILE, rundir.REAL_SAMPLES_FILE, rundir.QUALITY_FILE,
             rundir.STATUS_FILE}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif")


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
    if not os.path.isfile(os.path.join(run_dir, rundir.CONFIG_FILE)):
        raise UserError(f"not a run directory: {run_dir} has no config.json")
    return rundir.read_config(run_dir)  # a damaged one is one line naming it


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
    listed = []
    for path in sorted(glob.glob(os.path.join(run_dir, rundir.CKPT_DIR, "*.ckpt"))):
        if path.endswith(".tmp.ckpt"):
            continue
        try:
            listed.append((os.path.basename(path), os.path.getsize(path)))
        except OSError:  # rotated away by the trainer since the listing
            continue
    return listed


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
