"""The training loop: data -> D step -> G step -> EMA -> log (Algorithm 1), with the periodic work behind one hook.

Everything random is derived from --seed (src/batches.py), so a run is reproducible and --resume continues it
exactly: weights from one NumPy generator seeded once (every rank of a distributed run starts identical), then each
step's data and noise. In a distributed run every rank trains on its own shard; only rank 0 writes the run
directory's shared files.
"""
import gc
import os
import time

import numpy as np

from src.batches import NUM_FIXED_NOISE, epoch_dataset, fixed_noise, with_noise
from src.bookkeeping import Bookkeeping
from src.ema import GeneratorEMA
from src.errors import UserError
from src.evaluation.tracker import QualityTracker
from src.formatting import format_duration
from src.contrastive import describe as describe_contrastive
from src.mixed_precision import describe as describe_precision
from src.networks import build_generator, build_training_step, parameter_checksum
from src.outputs.visuals import save_grid
from src.run import checkpoint, directory as rundir
from src.run.distributed import World, stop_vote
from src.run.interrupt import StopRequest
from src.step_cells import loss_scale_entries

LOSS_NAMES = ("loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2")


class Trainer:
    """Owns the networks, the compiled step and the run directory of one training run."""

    def __init__(self, cfg, world=World(), notes=()):
        cfg = dict(cfg, world_size=world.size)  # the trainer's own copy: the caller's dict stays as it was
        self.cfg, self.world = cfg, world
        self.started = (cfg["resume"] and rundir.read_status(cfg["output_path"]).get("started")) or time.time()
        self.dir = rundir.prepare(cfg["output_path"])
        self.lock = rundir.lock(self.dir) if world.is_main else None  # one trainer per run directory
        if not cfg["resume"] and checkpoint.saved_steps(self.dir):
            raise UserError(f"{self.dir} already holds a run with checkpoints; continue it with --resume "
                            f"or choose another --output_path")
        self.log = rundir.open_log(self.dir, rundir.log_file(world.rank))
        # Read the data first: a bad path or a too-small dataset fails here, before any compilation.
        self.dataset, info = epoch_dataset(cfg, 0, world)
        self.bad_files = info.bad_files  # skipped image files, counted over the whole run
        self.data_in_memory = info.in_memory
        cfg["dataset"], cfg["nc"] = info.name, info.nc
        cfg["data"] = {**cfg.get("data", {}), "split": info.split, "images": info.num_images}  # for the report
        self.steps_per_epoch = info.batches_per_epoch
        self.total_steps = cfg["epoch_size"] * self.steps_per_epoch
        if cfg["max_steps"]:
            self.total_steps = min(self.total_steps, cfg["max_steps"])
        self.train_step, self.netG, self.netD, self.optimizerG, self.optimizerD = build_training_step(cfg)
        self.loss_scales = loss_scale_entries(self.train_step)  # float16 (GPU/Ascend) only; checkpointed
        self.overflows = None  # float16: per network, the steps skipped since the last log line (device tensors)
        self.averagedG = self.ema = None
        if cfg.get("ema_decay"):
            self.averagedG = build_generator(cfg)
            self.ema = GeneratorEMA(self.netG, self.averagedG, cfg["ema_decay"])
        self.step, self.fixed_noise = 0, fixed_noise(cfg)
        self.last_losses = None  # the newest step's losses, checked before an interrupt saves
        if cfg["resume"]:
            self._resume()
        else:
            self._warm_start()
        resume_step = self.step if cfg["resume"] else None
        self.quality = QualityTracker(cfg, self.dir, self.log, resume_step) if world.is_main else None
        if world.is_main:
            rundir.write_config(self.dir, cfg)
            self.metrics = rundir.MetricsWriter(self.dir, resume_step=resume_step)
            self.quality.restore_best(checkpoint.saved_steps(self.dir))
        self._log_header(info, notes)

    def _resume(self):
        if self.world.is_main:
            checkpoint.remove_partial_files(self.dir)
        path = checkpoint.latest_training_state(self.dir, self.log.warning)
        if path is None:  # stopped before its first checkpoint: the seed makes a restart the same run
            self.log.info("no checkpoint yet: resuming from step 0")
            return
        self.step, self.fixed_noise = checkpoint.load_training_state(
            path, self.netG, self.netD, self.optimizerG, self.optimizerD, self.averagedG, self.loss_scales)
        self.log.info(f"resumed from {path} at step {self.step}")

    def _warm_start(self):
        for path, net in ((self.cfg["netG"], self.netG), (self.cfg["netD"], self.netD)):
            if path:
                checkpoint.load_network(path, net)
                self.log.info(f"warm start: loaded {path}")
        if self.ema is not None:
            self.ema.copy_weights()  # the average starts from G's (initial or warm-started) weights

    def _log_header(self, info, notes):
        cfg = self.cfg
        count = lambda net: sum(int(np.prod(p.shape)) for p in net.trainable_params())
        self.log.info(f"DCGAN on {info.name}: {info.num_images} images, split {info.split}; "
                      f"{cfg['image_size']} px, nc={cfg['nc']}; device {cfg['device_target']}:{cfg['device_id']}")
        self.log.info(f"world size {self.world.size} (this is rank {self.world.rank}), batch {cfg['batch_size']} "
                      f"per device, global batch {cfg['batch_size'] * self.world.size}; "
                      f"lr G {cfg['lr']}, D {cfg.get('lr_d') or cfg['lr']} (not rescaled); recipe "
                      f"{cfg.get('recipe') or 'default'}, D's real label {cfg.get('real_label') or 1.0}, "
                      f"DiffAugment {cfg.get('diffaug') or 'off'}, "
                      f"{describe_contrastive(cfg)}")
        self.log.info(f"G {count(self.netG):,} parameters, D {count(self.netD):,}; {self.steps_per_epoch} steps/epoch, "
                      f"{self.total_steps} steps in all; run directory {os.path.abspath(self.dir)}")
        self.log.info(describe_precision(cfg))
        sampled = f"the moving average of G (--ema_decay {cfg['ema_decay']})" if self.ema else "G itself (no EMA)"
        self.log.info(f"samples, checkpoints and quality measurements use {sampled}")
        for note in notes:
            if note:
                self.log.info(note)

    def sampled_generator(self):
        """The G whose samples the run shows and saves: the averaged G (its BN statistics brought up to date) when
        --ema_decay is on, else G."""
        if self.ema is None:
            return self.netG
        self.ema.sync_statistics()
        return self.averagedG

    def run(self):
        """Train to the end of the budget (or a stop signal); returns the step reached. A failure the user can fix
        (a full disk, unreadable data) is written to status.json as `failed` with its reason before it ends the run."""
        with StopRequest() as stop:
            keeping = Bookkeeping(self, self.quality, stop_vote(self.world))
            keeping.write_status("running")
            frozen_by_caller = gc.get_freeze_count() > 0  # gc.freeze() is the process's: a caller's is kept
            try:
                return self._run(stop, keeping)
            except UserError as error:
                try:
                    keeping.write_status("failed", reason=str(error))
                except OSError:  # the disk that failed the run may refuse this too
                    pass
                raise
            finally:
                if not frozen_by_caller:
                    gc.unfreeze()  # what _run froze can be collected again once the run is over

    def _run(self, stop, keeping):
        start_step, started = self.step, time.time()
        self.timer = (started, self.step)  # (time, step) of the last log line, for images/s
        stopping = keeping.all_ranks_stop(stop)
        while self.step < self.total_steps and not stopping:
            epoch = self.step // self.steps_per_epoch
            for real, noise in self._epoch_batches(epoch):
                if self.step == start_step:
                    self._first_batch(real.asnumpy())
                outputs = self.train_step(real, noise)  # D step, then G step (src/dcgan.py)
                losses = dict(zip(LOSS_NAMES, outputs))
                if len(outputs) > len(LOSS_NAMES):  # float16: each network's overflow flag (its step was skipped)
                    self._count_overflows(outputs[len(LOSS_NAMES):])
                if self.step == start_step:
                    # Everything alive now (MindSpore's modules, the nets, the compiled step) lives as long as the
                    # run: out of the collector's sight, its full collections stay short.
                    gc.freeze()
                if self.ema is not None:
                    self.ema.update(self.step)
                self.step += 1
                self.last_losses = {k: losses[k] for k in ("loss_d", "loss_g")}
                self._log_step(epoch, losses, started, start_step, keeping)
                stopping = keeping.after_step(self.step, epoch, self.last_losses, stop)
                if self.step >= self.total_steps or stopping:
                    break
            if self.step % self.steps_per_epoch == 0:
                keeping.at_epoch_end(epoch)
        if stopping:
            keeping.stop_for(stop, self.last_losses)
        self.log.info(f"parameter checksum {parameter_checksum(self.netG, self.netD):.10e} at step {self.step}")
        elapsed = lambda: format_duration(time.time() - started)
        if not self.world.is_main:
            self.log.info(f"done: {self.step} steps in {elapsed()} (rank {self.world.rank})")
            return self.step
        latest = keeping.finish(self.last_losses)
        self.log.info(f"done: {self.step} steps in {elapsed()}; samples {latest}; "
                      f"generator {checkpoint.ckpt_path(self.dir, 'generator', self.step)}")
        best = self.quality.best
        if best is not None:
            self.log.info(f"best samples at step {best['step']} ({best['primary']} {best[best['primary']]:.4g}): "
                          f"{checkpoint.ckpt_path(self.dir, 'generator', best['step'])}")
        return self.step

    def _epoch_batches(self, epoch):
        """The (images, noise) batches of `epoch` still to train on: a resumed epoch skips those already done."""
        dataset = self.dataset if epoch == 0 else epoch_dataset(self.cfg, epoch, self.world, self.bad_files)[0]
        done_in_epoch = self.step - epoch * self.steps_per_epoch
        if done_in_epoch:
            dataset = dataset.skip(done_in_epoch)
        remaining = self.steps_per_epoch - done_in_epoch
        dataset = with_noise(dataset, self.cfg, self.step, remaining, self.world.rank)
        batches = self.bad_files.iterate(dataset, remaining, self.log.info)
        if self.data_in_memory:
            # Taken before the epoch's steps (a few MB): the pipeline's threads, running beside the steps on the
            # cores the steps use, made them slower (bench/loop_vs_step.py).
            batches = list(batches)
        return batches

    def _log_step(self, epoch, losses, started, start_step, keeping):
        """Every --log_interval steps (and at the last): metrics.jsonl and one log line, losses checked finite."""
        cfg = self.cfg
        if self.step % cfg["log_interval"] and self.step != self.total_steps:
            return
        now = time.time()
        last_time, last_step = self.timer
        record = {"step": self.step, "epoch": epoch + 1, **{k: float(v.asnumpy()) for k, v in losses.items()},
                  "images_per_s": round((self.step - last_step) * cfg["batch_size"] / (now - last_time), 1)}
        record.update(self._overflow_record())
        keeping.check_finite(record)
        if self.world.is_main:
            self.metrics.write(record)
        keeping.watch(record)
        eta = (now - started) / (self.step - start_step) * (self.total_steps - self.step)
        self.log.info(f"[{self.step}/{self.total_steps}] epoch {epoch + 1}/{cfg['epoch_size']} "
                      f"{record['images_per_s']:.0f} img/s | loss_d {record['loss_d']:.4f} "
                      f"loss_g {record['loss_g']:.4f} | D(x) {record['d_x']:.3f} "
                      f"D(G(z)) {record['d_g_z1']:.3f}/{record['d_g_z2']:.3f} | ETA {format_duration(eta)}"
                      + self._overflow_text(record))
        self.timer = (time.time(), self.step)

    def _count_overflows(self, flags):
        """Add a step's overflow flags (D's, G's) to the counts of the next log line. The sums stay on the device:
        reading a flag every step would make the host wait for each step to finish before queueing the next."""
        flags = tuple(flag.astype("int32") for flag in flags)
        self.overflows = flags if self.overflows is None else tuple(a + b for a, b in zip(self.overflows, flags))

    def _overflow_record(self):
        """float16 training: the steps each network skipped since the last log line, and its loss scale now."""
        if self.overflows is None:
            return {}
        record = {f"skipped_{net}": int(count.asnumpy()) for net, count in zip("dg", self.overflows)}
        self.overflows = None
        scales = dict(self.loss_scales)
        record.update({f"loss_scale_{net.lower()}": float(scales[f"{net}.scale"].asnumpy()) for net in "DG"})
        return record

    @staticmethod
    def _overflow_text(record):
        if "skipped_d" not in record:
            return ""
        skipped = [f"{net} {record[f'skipped_{net.lower()}']}" for net in "DG" if record[f"skipped_{net.lower()}"]]
        return (f" | float16 steps skipped (gradients overflowed): {', '.join(skipped) or 'none'}; loss scale "
                f"D {record['loss_scale_d']:g}, G {record['loss_scale_g']:g}")

    def _first_batch(self, images):
        """Log a fingerprint of this rank's first batch (ranks must differ) and, on rank 0 of a new run, save a
        grid of real images."""
        self.log.info(f"first batch checksum {float(images.astype(np.float64).sum()):.10e} (rank {self.world.rank})")
        if self.world.is_main and self.step == 0:
            save_grid(images[:NUM_FIXED_NOISE], os.path.join(self.dir, rundir.REAL_SAMPLES_FILE))
