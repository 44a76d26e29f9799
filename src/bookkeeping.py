"""Everything a training run does between its steps besides training: sample grids, checkpoints, sample-quality
measurements, the report, status.json and the stop vote, each on its own interval. The trainer calls `after_step`
after every step, `at_epoch_end` after every epoch, then `finish` or `stop_for`.

Only rank 0 writes the run directory; every rank takes part in the stop vote.
"""
import math
import os
import signal
import time

import mindspore as ms

from src.errors import Interrupted, TrainingDiverged
from src.evaluation.health import TrainingHealth
from src.networks import sample
from src.outputs.visuals import save_grid
from src.report import render_report
from src.run import checkpoint, directory as rundir

REPORT_INTERVAL_S = 60  # the report is refreshed at epoch ends at most this often...
REPORT_SHARE = 0.005  # ...and less often when rendering would take more than this share of the training time
REPORT_FIRST_GUESS_S = 1.0  # a rendering's cost before the first one is timed (so a 3-minute run renders at its end)
EPOCH_GRID_SHARE = 0.005  # epoch-end sample grids are skipped on epochs too short to pay for them


class Budget:
    """When a recurring courtesy of the loop (the report, an epoch's sample grid) is due: at most once per
    `min_interval` seconds, and no more often than keeps its own last duration within `share` of the wall clock."""

    def __init__(self, share, min_interval=0.0, first_guess=0.0):
        self.share, self.min_interval = share, min_interval
        self.last, self.seconds = time.time(), first_guess

    def due(self):
        return time.time() - self.last >= max(self.min_interval, self.seconds / self.share)

    def spent(self, started):
        """Record a run that began at time `started` and has just ended."""
        self.last = time.time()
        self.seconds = self.last - started


class Bookkeeping:
    """The periodic work of one run. `trainer` gives the networks, the step counter and the run's settings."""

    def __init__(self, trainer, quality, any_rank_stops):
        self.trainer, self.quality, self.any_rank_stops = trainer, quality, any_rank_stops
        self.cfg, self.dir, self.world, self.log = trainer.cfg, trainer.dir, trainer.world, trainer.log
        self.report_budget = Budget(REPORT_SHARE, REPORT_INTERVAL_S, REPORT_FIRST_GUESS_S)
        self.epoch_grid_budget = Budget(EPOCH_GRID_SHARE)
        self.health = TrainingHealth()

    @property
    def is_main(self):
        return self.world.is_main

    def after_step(self, step, epoch, losses, stop):
        """Samples, checkpoint, quality, rotation, then the stop vote; returns whether training stops here."""
        cfg = self.cfg
        if step % cfg["sample_interval"] == 0:
            self.save_samples(f"fake_step_{step:08d}.png")
        saving = step % cfg["save_checkpoint_steps"] == 0
        if saving:
            self.check_finite(losses)
            self.save_checkpoint()  # never a diverged state
        if self.is_main and self.quality.due(step):
            self.measure_quality(epoch, saving)
        if saving:
            self.rotate_checkpoints()  # after the measurement: it may have made this one the best
        return self.all_ranks_stop(stop)

    def watch(self, record):
        """After a logged step (rank 0): D saturation and exploding losses, told at once."""
        if self.is_main:
            self._tell(self.health.check_step(record))

    def _tell(self, findings):
        for message in findings:
            self.log.warning(f"warning: {message}")
        if findings:
            self.write_status("running")  # status.json and the report say it too

    def at_epoch_end(self, epoch):
        if self.epoch_grid_budget.due():
            started = time.time()
            self.save_samples(f"fake_epoch_{epoch + 1:04d}_step_{self.trainer.step:08d}.png")
            self.epoch_grid_budget.spent(started)
        self.render_report()

    def finish(self, losses):
        """Rank 0, at the end of the budget: the final checkpoint (measured, so it can be the best), samples, the
        status and the report. Returns the newest samples' path."""
        step = self.trainer.step
        if step not in checkpoint.saved_steps(self.dir):
            if losses:
                self.check_finite(losses)
            self.save_checkpoint()
            if self.quality.interval > 0 and not self.quality.stopped:
                self.measure_quality((step - 1) // self.trainer.steps_per_epoch, True)  # the epoch step ended
            self.rotate_checkpoints()
        latest = self.save_samples(rundir.LATEST_SAMPLES_FILE)
        self.write_status("finished")
        report = self.render_report(force=True)
        if report:
            self.log.info(f"report: {os.path.abspath(report)}")
        return latest

    def all_ranks_stop(self, stop):
        """Whether training stops here: a vote of every rank on its own SIGINT/SIGTERM (a rank that was not sent one
        stops as if sent SIGTERM). Ranks act on the vote, never on their own flag: a signal landing just after a vote
        would stop one rank a step early, and its barrier would meet the others' next all-reduce."""
        if self.any_rank_stops(stop.signum is not None):
            stop.signum = stop.signum or signal.SIGTERM
            return True
        return False

    def stop_for(self, stop, losses):
        """After SIGINT/SIGTERM: checkpoint the step just finished (unless it was saved already), refresh the report
        and raise Interrupted with the signal's exit code."""
        step = self.trainer.step
        if self.is_main and step not in checkpoint.saved_steps(self.dir):
            if losses:  # None: stopped before the first step
                self.check_finite(losses)  # never save NaN
            self.save_checkpoint()
            self.rotate_checkpoints()
        self.write_status("interrupted")
        self.render_report(force=True)
        message = (f"interrupted at step {step} ({stop.name}); checkpoint saved; continue with: "
                   f"python train.py --output_path {self.dir} --resume")
        self.log.info(message)
        # A barrier: no rank exits before rank 0 has saved (msrun ends the whole job when one worker exits).
        self.any_rank_stops(True)
        raise Interrupted(message, stop.exit_code)

    def check_finite(self, losses):
        values = {k: float(v.asnumpy()) if hasattr(v, "asnumpy") else float(v) for k, v in losses.items()}
        if not all(math.isfinite(values[k]) for k in ("loss_d", "loss_g")):
            self.write_status("diverged")
            raise TrainingDiverged(f"training diverged at step {self.trainer.step}: loss_d {values['loss_d']}, "
                                   f"loss_g {values['loss_g']}; the last good checkpoint is kept in "
                                   f"{os.path.join(self.dir, checkpoint.CKPT_DIR)}")

    def write_status(self, state, reason=None):
        if self.is_main:
            best = self.quality.best
            rundir.write_status(self.dir, state, self.trainer.step, self.trainer.total_steps, self.trainer.started,
                                best["step"] if best else None, reason=reason,
                                quality_error=self.quality.last_error, health=self.health.findings or None)

    def save_samples(self, name):
        if not self.is_main:
            return None
        return save_grid(sample(self.trainer.sampled_generator(), self.trainer.fixed_noise),
                         os.path.join(self.dir, rundir.SAMPLES_DIR, name), columns=8)

    def save_checkpoint(self):
        if not self.is_main:
            return
        t = self.trainer
        averaged = t.sampled_generator() if t.ema is not None else None
        checkpoint.save_training_checkpoint(self.dir, t.step, self.cfg, t.netG, t.netD, t.optimizerG, t.optimizerD,
                                            ms.Tensor(t.fixed_noise), averaged, t.loss_scales)

    def rotate_checkpoints(self):
        if not self.is_main:
            return
        best = (self.quality.best["step"],) if self.quality.best else ()
        checkpoint.remove_old_checkpoints(self.dir, self.cfg["keep_checkpoint_max"], protected=best)
        self.write_status("running")

    def measure_quality(self, epoch, at_checkpoint):
        t = self.trainer
        sampled = t.sampled_generator()  # once: with EMA it brings the average's BN statistics up to date
        raw = (lambda z: sample(t.netG, z)) if t.ema is not None else None
        record = self.quality.measure(t.step, epoch, at_checkpoint, lambda z: sample(sampled, z), raw)
        if record is not None:
            self._tell(self.health.check_quality(record, self.quality.best))
        elif self.quality.last_error:
            self.write_status("running")  # status.json says the measurement failed, at once

    def render_report(self, force=False):
        """Refresh the run's index.html: at epoch ends at most once a minute, and no more often than keeps its
        rendering within REPORT_SHARE of the run (at first every ~3 minutes); always at the end. A rendering
        failure is a warning, never a crash."""
        if not self.is_main or not (force or self.report_budget.due()):
            return None
        started = time.time()
        try:
            return render_report(self.dir)
        except Exception as error:  # noqa: BLE001 - the report is a courtesy; training results are already saved
            self.log.warning(f"warning: could not render the run report: {error}")
            return None
        finally:
            self.report_budget.spent(started)
