"""Sample quality during training: the judge of src/evaluation/judge.py run every --metrics_interval steps on rank 0,
each measurement appended to quality.jsonl, and the best checkpoint chosen by the judge's primary metric.

A measurement that fails is recorded too (a quality.jsonl record with "error", the trainer's status.json and the
report show it) and training goes on; after MAX_FAILURES failures in a row measuring stops for the run, and that is
recorded the same way. The best checkpoint stays what it was.
"""
import time

from src.run import directory as rundir

QUALITY_SEED = 0  # the latent sample every quality measurement draws: the same in every run, so runs compare
MAX_FAILURES = 3


class QualityTracker:
    """Measures, records and remembers the best measurement of one run. `log` is the run's logger."""

    def __init__(self, cfg, run_dir, log, resume_step=None):
        self.cfg, self.dir, self.log = cfg, run_dir, log
        self.writer = rundir.MetricsWriter(run_dir, resume_step=resume_step, file_name=rundir.QUALITY_FILE)
        self.best = None
        self.judge = None  # built at the first measurement (it may train a classifier once per dataset)
        self.failures = 0
        self.last_error = None  # the newest failure's reason, for status.json; None once a measurement succeeds

    def restore_best(self, saved_steps):
        """On resume: the best measurement among the checkpoints still on disk."""
        self.best = rundir.best_quality_record(rundir.read_quality(self.dir), saved_steps)

    @property
    def interval(self):
        interval = self.cfg.get("metrics_interval")
        return self.cfg["save_checkpoint_steps"] if interval is None else interval

    @property
    def stopped(self):
        return self.failures >= MAX_FAILURES

    def due(self, step):
        return self.interval > 0 and step % self.interval == 0 and not self.stopped

    def measure(self, step, epoch, at_checkpoint, sampled, raw=None):
        """Score `sampled` (z -> images: the G whose samples the run shows) and, when given, `raw` (G itself beside
        its moving average); record it and keep it as the best if it is, among checkpointed measurements."""
        if self.stopped:
            return None
        cfg, started = self.cfg, time.time()
        record = {"step": step, "epoch": epoch + 1, "source": "train", "checkpoint": at_checkpoint,
                  "generator": "G" if raw is None else "ema"}
        try:
            if self.judge is None:
                from src.evaluation import QualityJudge
                self.judge = QualityJudge(cfg["dataset"], cfg["data_path"], cfg["image_size"], cfg["nc"],
                                          num_images=cfg.get("metrics_num_images", 1000), seed=QUALITY_SEED,
                                          cache_dir=self.dir, log=self.log.info)
            scores = self.judge.evaluate(sampled, cfg["nz"])
            record["primary"] = self.judge.primary
            record.update(scores)
            if raw is not None:
                record["G"] = {k: v for k, v in self.judge.evaluate(raw, cfg["nz"]).items() if isinstance(v, float)}
        except Exception as error:  # noqa: BLE001 - a courtesy measurement must not end a multi-day run
            return self._failed(record, error)
        self.failures, self.last_error = 0, None
        record["seconds"] = round(time.time() - started, 2)
        self.writer.write(record)
        if at_checkpoint and rundir.best_quality_record([record] + ([self.best] if self.best else [])) is record:
            self.best = record
        self._log(record, scores)
        return record

    def _failed(self, record, error):
        self.failures += 1
        self.last_error = f"{type(error).__name__}: {error}".splitlines()[0]
        record["error"] = self.last_error
        what = ("measuring stops for this run" if self.stopped
                else "training goes on; the next measurement tries again")
        record["stopped"] = self.stopped
        try:
            self.writer.write(record)
        except OSError as write_error:
            self.log.warning(f"warning: could not record the failed measurement: {write_error}")
        self.log.warning(f"warning: sample-quality measurement at step {record['step']} failed "
                         f"({self.last_error}); {what}")
        return None

    def _log(self, record, scores):
        primary = record["primary"]
        values = " ".join(f"{k} {v:.4g}" for k, v in scores.items() if isinstance(v, float))
        raw = f" (G itself: {primary} {record['G'][primary]:.4g})" if "G" in record else ""
        best = f"; best so far: step {self.best['step']} ({primary} {self.best[primary]:.4g})" if self.best else ""
        self.log.info(f"quality at step {record['step']}: {values}{raw}{best} [{record['seconds']:.1f} s]")
