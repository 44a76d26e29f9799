"""The run directory: everything one training run leaves behind, so it can be inspected, resumed or evaluated.

  config.json     the resolved configuration (what --resume reads back)
  train.log       the text log (also printed); train_rank<r>.log for the other ranks of a distributed run
  metrics.jsonl   one JSON object per logged step: step, epoch, loss_d, loss_g, D(x), D(G(z)), images/s
  quality.jsonl   one JSON object per sample-quality measurement (src/evaluation): step, the metrics, whether a
                  checkpoint was saved at that step; the best such checkpoint is kept (best_quality_record)
  real_samples.png     a grid of the first real batch
  samples/             fixed-noise grids: fake_step_N.png every --sample_interval steps,
                       fake_epoch_E_step_N.png at epoch ends, fake_latest.png at the end
  ckpt/           checkpoints (see src/run/checkpoint.py)
  status.json     the run's state, written by the trainer (see write_status): what the report, eval and resume read
  .lock           held (flock) by the training process while it runs: one trainer per run directory
"""
import fcntl
import json
import logging
import os
import pathlib
import re
import sys
import tempfile
import time

from src.errors import UserError
from src.files import write_atomically

CONFIG_FILE = "config.json"
LOG_FILE = "train.log"
METRICS_FILE = "metrics.jsonl"
QUALITY_FILE = "quality.jsonl"
SAMPLES_DIR = "samples"
CKPT_DIR = "ckpt"
REAL_SAMPLES_FILE = "real_samples.png"
LATEST_SAMPLES_FILE = "fake_latest.png"  # in SAMPLES_DIR
LOCK_FILE = ".lock"
STATUS_FILE = "status.json"
STATES = ("running", "finished", "interrupted", "diverged", "failed")


def checkpoint_step(file_name):
    """(kind, step) of a checkpoint file name ("generator_00000600.ckpt" -> ("generator", 600)), or None."""
    match = re.fullmatch(r"([a-z_]+)_(\d+)\.ckpt", os.path.basename(file_name))
    return (match.group(1), int(match.group(2))) if match else None


def prepare(run_dir):
    """Create the run directory (and samples/) or fail with a UserError if it cannot be written. Every rank of a
    distributed run prepares it: each writes its own probe file (a shared name let one rank remove another's)."""
    try:
        os.makedirs(os.path.join(run_dir, SAMPLES_DIR), exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write_test_", dir=run_dir)
        os.write(handle, b"ok")
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise UserError(f"cannot write to output path {run_dir}: {error.strerror}") from None
    return run_dir


def lock(run_dir):
    """Claim the run directory for this training process, or fail with a UserError if another one holds it.

    An flock on RUN_DIR/.lock: the kernel releases it when the process ends, however it ends (SIGKILL included),
    so a dead run never leaves a stale lock behind. Keep the returned file open for as long as the run goes on.
    Readers (report.py, eval.py, calc_metrics.py) take no lock: every file the trainer rewrites is replaced
    atomically, so they see the old or the new version, never half of one."""
    path = os.path.join(run_dir, LOCK_FILE)
    try:
        handle = open(path, "a+", encoding="utf-8", errors="replace")  # its text is only ever shown
    except OSError as error:
        raise UserError(f"cannot open the run's lock file {path}: {error.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = "".join(c if c.isprintable() else "?" for c in " ".join(handle.read(200).split()))
        owner = owner or "another process"
        handle.close()
        raise UserError(f"{run_dir} is in use by a training process that is still running ({owner}); "
                        "wait for it to end or stop it, then resume") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


def write_status(run_dir, state, step, total_steps, started, best_step=None, **details):
    """Record the run's state (one of STATES) atomically: the one place that says how far a run got and how it
    ended. `details` adds what the trainer found (None values left out): `reason`, the one-line cause of a
    failure; `quality_error`, why the newest quality measurement failed; `health`, collapse or divergence warnings.
    `started` and the update time are Unix times; the report shows them."""
    assert state in STATES, state
    status = {"state": state, "step": step, "total_steps": total_steps, "best_step": best_step, "started": started,
              "updated": time.time()}
    status.update({key: value for key, value in details.items() if value is not None})
    _write_json(os.path.join(run_dir, STATUS_FILE), status)


def read_status(run_dir):
    """status.json as a dict, or {} for a run that has none (not started, or older than this file). A damaged file
    reads as {}, and a field of the wrong type is left out: the readers fall back as for an old run."""
    try:
        with open(os.path.join(run_dir, STATUS_FILE), encoding="utf-8") as f:
            status = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(status, dict):
        return {}
    types = {"state": str, "step": int, "total_steps": int, "best_step": int, "started": (int, float),
             "updated": (int, float), "reason": str, "quality_error": str}
    return {key: value for key, value in status.items()
            if key not in types or (isinstance(value, types[key]) and not isinstance(value, bool))}


def write_config(run_dir, cfg):
    _write_json(os.path.join(run_dir, CONFIG_FILE), cfg)


def _write_json(path, value):
    """A JSON file replaced whole (see src/files.py): a reader sees the old or the new one."""
    write_atomically(path, lambda tmp: pathlib.Path(tmp).write_text(json.dumps(value, indent=2, sort_keys=True)))


def read_config(run_dir):
    """config.json as a dict; a missing, unreadable or damaged one is a UserError naming it."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise UserError(f"no run to resume in {run_dir} (no {CONFIG_FILE})")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {str(error).splitlines()[0] if str(error) else error!r} "
                        "(damaged?)") from None
    if not isinstance(cfg, dict):
        raise UserError(f"cannot read {path}: it holds a JSON {type(cfg).__name__}, not the run's settings "
                        "(damaged?)")
    return cfg


def config_or_empty(run_dir):
    """config.json as a dict for readers that can do without it: {} when missing or damaged."""
    try:
        return read_config(run_dir) if run_dir else {}
    except UserError:
        return {}


def log_file(rank=0):
    return LOG_FILE if rank == 0 else f"train_rank{rank}.log"


def open_log(run_dir, file_name=LOG_FILE, name="dcgan"):
    """A logger writing to stdout and to the run's log file (appending, so a resumed run keeps its history)."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    logger.propagate = False
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(os.path.join(run_dir, file_name))):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


class MetricsWriter:
    """Appends one JSON line per record to metrics.jsonl (or `file_name`), flushed at once so a crash loses
    nothing logged. Records written to quality.jsonl carry the id of the data the run trains on ("data", see
    src/data/fingerprint.py, from config.json): after a resume on other data (--allow_data_change) only
    measurements against the same data compete for the best checkpoint."""

    def __init__(self, run_dir, resume_step=None, file_name=METRICS_FILE):
        self.path, self.run_dir = os.path.join(run_dir, file_name), run_dir
        self.stamp = None if file_name == QUALITY_FILE else {}  # read from config.json at the first write
        if resume_step is not None:
            self._truncate_after(resume_step)

    def _truncate_after(self, step):
        """On resume, drop records of steps the checkpoint does not contain (they will be recomputed)."""
        if not os.path.exists(self.path):
            return
        kept = [r for r in read_jsonl(self.path) if not isinstance(r.get("step"), int) or r["step"] <= step]
        write_atomically(self.path, lambda tmp: pathlib.Path(tmp).write_text(
            "".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8"))

    def write(self, record):
        if self.stamp is None:  # the trainer has written this run's config.json by the time it records anything
            data_id = data_id_of(config_or_empty(self.run_dir))
            self.stamp = {"data": data_id} if data_id else {}
        if self.stamp and "data" not in record:
            record = dict(record, **self.stamp)
        append_jsonl(self.path, record)


def append_jsonl(path, record):
    """Append `record` as one JSON line. The line always starts on a fresh line: after a torn last line (a crash
    while writing, a full disk) the new record stays readable instead of being glued onto the broken one."""
    line = json.dumps(record) + "\n"
    with open(path, "a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line
        f.write(line.encode("utf-8"))


_warned = set()


def read_jsonl(path, warn=None):
    """The JSON objects of a .jsonl file, in order. Lines that cannot be read (damaged bytes, not UTF-8, not a JSON
    object) are skipped and reported once per file through `warn` (default: stderr); a torn last line (one being
    written) is skipped silently. A missing or unreadable file reads as no records."""
    records = []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return records
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline; else a line still being written
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
            skipped += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            skipped += 1
    try:
        record = json.loads(torn.decode("utf-8")) if torn.strip() else None
    except ValueError:
        record = None
    if isinstance(record, dict):
        records.append(record)
    if skipped and path not in _warned:
        _warned.add(path)
        message = f"warning: {path}: {skipped} unreadable line(s) skipped"
        (warn or (lambda line: print(line, file=sys.stderr)))(message)
    return records


def data_id_of(cfg):
    """The id of the data a run's config says it trains on (see src/data/fingerprint.py), or None."""
    fingerprint = cfg.get("data_fingerprint") if isinstance(cfg, dict) else None
    digest = fingerprint.get("digest") if isinstance(fingerprint, dict) else None
    return digest if isinstance(digest, str) else None


def read_quality(run_dir):
    """The training's quality measurements (quality.jsonl records written by the trainer), oldest first. Only
    records measured against the data the run now trains on count (see MetricsWriter): a run resumed on other
    data starts its best-checkpoint comparison again. Records without a step are skipped."""
    cfg = config_or_empty(run_dir)
    current = data_id_of(cfg)
    changed = bool(cfg.get("data_changes"))  # older records carry no id: they count unless the data changed
    records = []
    for record in read_jsonl(os.path.join(run_dir, QUALITY_FILE)):
        if record.get("source") != "train" or not _is_int(record.get("step")):
            continue
        data = record.get("data")
        if (data is None and changed) or (data is not None and data != current):
            continue
        records.append(record)
    return records


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def best_quality_record(records, saved_steps=None):
    """The measurement with the lowest primary metric among those taken at a saved checkpoint (of `saved_steps`
    when given: rotated-away checkpoints cannot be the best one any more), or None. Ties: the earlier step."""
    best = None
    for record in records:
        primary = record.get("primary")
        value = record.get(primary) if isinstance(primary, str) else None
        if not record.get("checkpoint") or not isinstance(value, (int, float)) or value != value:
            continue
        if not _is_int(record.get("step")) or (saved_steps is not None and record["step"] not in saved_steps):
            continue
        if best is None or value < best[best["primary"]]:
            best = record
    return best
