"""The training loop: data -> D step -> G step -> log, samples, checkpoints (Algorithm 1, one device).

Everything random is derived from --seed, so a run is reproducible and --resume continues it exactly:
weights from one NumPy generator seeded once (so every rank of a distributed run starts identical), the fixed
noise from (seed, 1), the noise of step s on rank r from (seed, 2, r, s), and the data order of epoch e from the
reader's shuffle seeded with seed + e (a resumed epoch skips the batches it already trained on).
In a distributed run every rank trains on its own shard; only rank 0 writes the run directory's shared files.
"""
import gc
import math
import os
import signal
import time

import numpy as np
import mindspore as ms
import mindspore.dataset as ds
import mindspore.nn as nn

from src.dataset import create_dataset
from src.dcgan import DCGAN
from src.discriminator import Discriminator
from src.ema import GeneratorEMA
from src.errors import Interrupted, TrainingDiverged, UserError
from src.generator import Generator
from src.outputs.visuals import save_grid
from src.run import checkpoint, directory as rundir
from src.run.distributed import World, stop_vote
from src.run.html_report import format_duration, render_report
from src.run.interrupt import StopRequest
from src.weight_init import init_weights

NUM_FIXED_NOISE = 64
REPORT_INTERVAL_S = 60  # the report is refreshed at epoch ends at most this often...
REPORT_SHARE = 0.005  # ...and less often when rendering would take more than this share of the training time
REPORT_FIRST_GUESS_S = 1.0  # a rendering's cost before the first one is timed (so a 3-minute run renders at its end)
EPOCH_GRID_SHARE = 0.005  # epoch-end sample grids (~50 ms each) are skipped on epochs too short to pay for them
QUALITY_SEED = 0  # the latent sample every quality measurement draws: the same in every run, so runs compare


def uses_fast_layers(cfg):
    """Whether G and D take src/cpu/fast_layers.py's layers (CPU only; GPU and Ascend keep the plain ones)."""
    return cfg["device_target"] == "CPU" and cfg.get("fast_cpu", "on") == "on"


def build_generator(cfg):
    return Generator(cfg["image_size"], cfg["nz"], cfg["ngf"], cfg["nc"], fast=uses_fast_layers(cfg))


def build_networks(cfg):
    """G and D of the configured architecture, initialised from the seed."""
    rng = np.random.default_rng(cfg["seed"])
    netG = build_generator(cfg)
    netD = Discriminator(cfg["image_size"], cfg["ndf"], cfg["nc"], fast=uses_fast_layers(cfg))
    init_weights(netG, rng)
    init_weights(netD, rng)
    return netG, netD


def build_training_step(cfg):
    """The networks, their Adam optimizers and the compiled D-then-G step, as training uses them (and bench/)."""
    netG, netD = build_networks(cfg)
    optimizerG = nn.Adam(netG.trainable_params(), learning_rate=cfg["lr"], beta1=cfg["beta1"])
    lr_d = cfg.get("lr_d") or cfg["lr"]  # two time-scale update rule (Heusel et al. 2017) when it differs
    optimizerD = nn.Adam(netD.trainable_params(), learning_rate=lr_d, beta1=cfg["beta1"])
    train_step = DCGAN(netG, netD, optimizerG, optimizerD)
    train_step.set_train(True)
    return train_step, netG, netD, optimizerG, optimizerD


def noise_array(cfg, step, rank=0):
    """The latent batch of a training step: a pure function of (seed, rank, step), so resume redraws it exactly."""
    rng = np.random.default_rng([cfg["seed"], 2, rank, step])
    return rng.standard_normal((cfg["batch_size"], cfg["nz"], 1, 1)).astype(np.float32)


def step_noise(cfg, step, rank=0):
    """noise_array as a Tensor, for callers outside the loop (bench/); the loop draws it in the data pipeline."""
    return ms.Tensor(noise_array(cfg, step, rank))


class EpochNoise:
    """The latent batches of one epoch's steps, as a random-access source for MindSpore's GeneratorDataset: zipped
    with the images, they are drawn in the pipeline's thread while the step runs. Drawn in the loop, between steps,
    each took ~0.5 ms (the step leaves the host's caches cold), 1% of a narrow 45 ms step."""

    def __init__(self, cfg, first_step, steps, rank):
        self.cfg, self.first_step, self.steps, self.rank = cfg, first_step, steps, rank

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return (noise_array(self.cfg, self.first_step + index, self.rank),)


def with_noise(images, cfg, first_step, steps, rank):
    """`images` (one epoch's batches, the first of them for step `first_step`) zipped with each step's latent batch."""
    noise = ds.GeneratorDataset(EpochNoise(cfg, first_step, steps, rank), column_names=["noise"], shuffle=False,
                                num_parallel_workers=1, python_multiprocessing=False)
    return ds.zip((images, noise))


def fixed_noise(cfg):
    rng = np.random.default_rng([cfg["seed"], 1])
    return rng.standard_normal((NUM_FIXED_NOISE, cfg["nz"], 1, 1)).astype(np.float32)


def epoch_dataset(cfg, epoch, world, bad_files=None):
    """This rank's shard of the data for `epoch`; the shards of all ranks cover the dataset once. Bad image files
    are skipped and counted in info.bad_files (or in `bad_files`, from an earlier epoch); --strict stops at one."""
    shards = dict(num_shards=world.size, shard_id=world.rank) if world.size > 1 else {}
    return create_dataset(cfg["dataset"], cfg["data_path"], image_size=cfg["image_size"],
                          split=cfg.get("split", "train"), batch_size=cfg["batch_size"], nc=cfg["nc"], shuffle=True,
                          num_parallel_workers=cfg["num_parallel_workers"], seed=cfg["seed"] + epoch,
                          strict=cfg.get("strict", False), bad_files=bad_files, **shards)


def parameter_checksum(*nets):
    """Sum of every trainable weight in float64: equal on all ranks while they stay in sync. (BN running
    statistics are left out: each rank keeps its own, from its own batches; checkpoints hold rank 0's.)"""
    return sum(float(p.asnumpy().astype(np.float64).sum()) for net in nets for p in net.trainable_params())


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


def sample(netG, noise):
    """G's images for `noise` with BN in inference mode (running statistics), as eval.py draws them. G is left in
    the mode it was in (the averaged G is always in inference mode)."""
    training = netG.training
    netG.set_train(False)
    images = netG(ms.Tensor(noise)).asnumpy()
    netG.set_train(training)
    return images


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
        cfg["data"] = {"split": info.split, "images": info.num_images}  # what was read, for the report
        self.steps_per_epoch = info.batches_per_epoch
        self.total_steps = cfg["epoch_size"] * self.steps_per_epoch
        if cfg["max_steps"]:
            self.total_steps = min(self.total_steps, cfg["max_steps"])
        self.train_step, self.netG, self.netD, self.optimizerG, self.optimizerD = build_training_step(cfg)
        self.averagedG = self.ema = None
        if cfg.get("ema_decay"):
            self.averagedG = build_generator(cfg)
            self.ema = GeneratorEMA(self.netG, self.averagedG, cfg["ema_decay"])
        self.step, self.fixed_noise = 0, fixed_noise(cfg)
        self.last_losses = None  # the newest step's losses, checked before an interrupt saves
        self.report_budget = Budget(REPORT_SHARE, REPORT_INTERVAL_S, REPORT_FIRST_GUESS_S)
        self.epoch_grid_budget = Budget(EPOCH_GRID_SHARE)
        if cfg["resume"]:
            self._resume()
        else:
            self._warm_start()
        self.judge, self.best = None, None  # the sample-quality judge (built at its first use) and best measurement
        if world.is_main:
            rundir.write_config(self.dir, cfg)
            resume_step = self.step if cfg["resume"] else None
            self.metrics = rundir.MetricsWriter(self.dir, resume_step=resume_step)
            self.quality = rundir.MetricsWriter(self.dir, resume_step=resume_step, file_name=rundir.QUALITY_FILE)
            self.best = rundir.best_quality_record(rundir.read_quality(self.dir), checkpoint.saved_steps(self.dir))
        self._log_header(info, notes)
        self._write_status("running")

    def _resume(self):
        if self.world.is_main:
            checkpoint.remove_partial_files(self.dir)
        path = checkpoint.latest_training_state(self.dir, self.log.warning)
        if path is None:  # stopped before its first checkpoint: the seed makes a restart the same run
            self.log.info("no checkpoint yet: resuming from step 0")
            return
        self.step, self.fixed_noise = checkpoint.load_training_state(
            path, self.netG, self.netD, self.optimizerG, self.optimizerD, self.averagedG)
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
                      f"lr G {cfg['lr']}, D {cfg.get('lr_d') or cfg['lr']} (not rescaled)")
        self.log.info(f"G {count(self.netG):,} parameters, D {count(self.netD):,}; {self.steps_per_epoch} steps/epoch, "
                      f"{self.total_steps} steps in all; run directory {os.path.abspath(self.dir)}")
        sampled = f"the moving average of G (--ema_decay {cfg['ema_decay']})" if self.ema else "G itself (no EMA)"
        self.log.info(f"samples, checkpoints and quality measurements use {sampled}")
        for note in notes:
            if note:
                self.log.info(note)

    def run(self):
        with StopRequest() as stop:
            self.any_rank_stops = stop_vote(self.world)
            frozen_by_caller = gc.get_freeze_count() > 0  # gc.freeze() is the process's: a caller's is kept
            try:
                return self._run(stop)
            finally:
                if not frozen_by_caller:
                    gc.unfreeze()  # what _run froze can be collected again once the run is over

    def _run(self, stop):
        cfg, start_step = self.cfg, self.step
        started = last_time = time.time()
        last_step = self.step
        stopping = self._all_ranks_stop(stop)
        while self.step < self.total_steps and not stopping:
            epoch = self.step // self.steps_per_epoch
            dataset = self.dataset if epoch == 0 else epoch_dataset(cfg, epoch, self.world, self.bad_files)[0]
            done_in_epoch = self.step - epoch * self.steps_per_epoch
            if done_in_epoch:
                dataset = dataset.skip(done_in_epoch)
            remaining = self.steps_per_epoch - done_in_epoch
            dataset = with_noise(dataset, cfg, self.step, remaining, self.world.rank)
            batches = self.bad_files.iterate(dataset, remaining, self.log.info)
            if self.data_in_memory:
                # Taken before the epoch's steps (a few MB): the pipeline's threads, running beside the steps on
                # the cores the steps use, made them ~5% slower (bench/loop_vs_step.py).
                batches = list(batches)
            for real, noise in batches:
                if self.step == start_step:
                    self._first_batch(real.asnumpy())
                loss_d, loss_g, d_x, d_gz1, d_gz2 = self.train_step(real, noise)
                if self.step == start_step:
                    # Everything alive now (MindSpore's modules, the nets, the compiled step) lives as long as the
                    # run: out of the collector's sight, its full collections take ~1 ms instead of ~90 ms each.
                    gc.freeze()
                if self.ema is not None:
                    self.ema.update(self.step)
                self.step += 1
                self.last_losses = {"loss_d": loss_d, "loss_g": loss_g}
                if self.step % cfg["log_interval"] == 0 or self.step == self.total_steps:
                    now = time.time()
                    record = {"step": self.step, "epoch": epoch + 1, "loss_d": float(loss_d.asnumpy()),
                              "loss_g": float(loss_g.asnumpy()), "d_x": float(d_x.asnumpy()),
                              "d_g_z1": float(d_gz1.asnumpy()), "d_g_z2": float(d_gz2.asnumpy()),
                              "images_per_s": round((self.step - last_step) * cfg["batch_size"] / (now - last_time), 1)}
                    self._check_finite(record)
                    if self.world.is_main:
                        self.metrics.write(record)
                    eta = (now - started) / (self.step - start_step) * (self.total_steps - self.step)
                    self.log.info(
                        f"[{self.step}/{self.total_steps}] epoch {epoch + 1}/{cfg['epoch_size']} "
                        f"{record['images_per_s']:.0f} img/s | loss_d {record['loss_d']:.4f} "
                        f"loss_g {record['loss_g']:.4f} | D(x) {record['d_x']:.3f} "
                        f"D(G(z)) {record['d_g_z1']:.3f}/{record['d_g_z2']:.3f} | ETA {format_duration(eta)}")
                    last_time, last_step = time.time(), self.step
                if self.step % cfg["sample_interval"] == 0:
                    self._save_samples(f"fake_step_{self.step:08d}.png")
                saving = self.step % cfg["save_checkpoint_steps"] == 0
                if saving:
                    self._check_finite({"loss_d": float(loss_d.asnumpy()), "loss_g": float(loss_g.asnumpy())})
                    self._save_checkpoint()  # never a diverged state
                if self._quality_due():
                    self._measure_quality(epoch, saving)
                if saving:
                    self._rotate_checkpoints()  # after the measurement: it may have made this one the best
                stopping = self._all_ranks_stop(stop)
                if self.step >= self.total_steps or stopping:
                    break
            if self.step % self.steps_per_epoch == 0:
                if self.epoch_grid_budget.due():
                    grid_started = time.time()
                    self._save_samples(f"fake_epoch_{epoch + 1:04d}_step_{self.step:08d}.png")
                    self.epoch_grid_budget.spent(grid_started)
                self._render_report()
        if stopping:
            self._stop_for(stop)
        self.log.info(f"parameter checksum {parameter_checksum(self.netG, self.netD):.10e} at step {self.step}")
        if not self.world.is_main:
            elapsed = format_duration(time.time() - started)
            self.log.info(f"done: {self.step} steps in {elapsed} (rank {self.world.rank})")
            return self.step
        if self.step not in checkpoint.saved_steps(self.dir):
            self._save_checkpoint()
            if self._metrics_interval():  # the final checkpoint is measured too, so it can be the best one
                self._measure_quality(self.step // self.steps_per_epoch, True)
            self._rotate_checkpoints()
        latest = self._save_samples(rundir.LATEST_SAMPLES_FILE)
        self.log.info(f"done: {self.step} steps in {format_duration(time.time() - started)}; samples {latest}; "
                      f"generator {checkpoint.ckpt_path(self.dir, 'generator', self.step)}")
        if self.best is not None:
            self.log.info(f"best samples at step {self.best['step']} ({self.best['primary']} "
                          f"{self.best[self.best['primary']]:.4g}): "
                          f"{checkpoint.ckpt_path(self.dir, 'generator', self.best['step'])}")
        self._write_status("finished")
        report = self._render_report(force=True)
        if report:
            self.log.info(f"report: {os.path.abspath(report)}")
        return self.step

    def _write_status(self, state):
        if self.world.is_main:
            rundir.write_status(self.dir, state, self.step, self.total_steps, self.started,
                                self.best["step"] if self.best else None)

    def _all_ranks_stop(self, stop):
        """Whether training stops here: a vote of every rank on its own SIGINT/SIGTERM (a rank that was not sent one
        stops as if sent SIGTERM). Ranks act on the vote, never on their own flag: a signal landing just after a vote
        would stop one rank a step early, and its barrier would meet the others' next all-reduce."""
        if self.any_rank_stops(stop.signum is not None):
            stop.signum = stop.signum or signal.SIGTERM
            return True
        return False

    def _stop_for(self, stop):
        """After SIGINT/SIGTERM: checkpoint the step just finished (unless it was saved already), refresh the report
        and raise Interrupted with the signal's exit code."""
        if self.world.is_main and self.step not in checkpoint.saved_steps(self.dir):
            if self.last_losses:  # None: stopped before the first step
                self._check_finite({k: float(v.asnumpy()) for k, v in self.last_losses.items()})  # never save NaN
            self._save_checkpoint()
            self._rotate_checkpoints()
        self._write_status("interrupted")
        self._render_report(force=True)
        message = (f"interrupted at step {self.step} ({stop.name}); checkpoint saved; continue with: "
                   f"python train.py --output_path {self.dir} --resume")
        self.log.info(message)
        # A barrier: no rank exits before rank 0 has saved (msrun ends the whole job when one worker exits).
        self.any_rank_stops(True)
        raise Interrupted(message, stop.exit_code)

    def _first_batch(self, images):
        """Log a fingerprint of this rank's first batch (ranks must differ) and, on rank 0 of a new run, save a
        grid of real images."""
        self.log.info(f"first batch checksum {float(images.astype(np.float64).sum()):.10e} (rank {self.world.rank})")
        if self.world.is_main and self.step == 0:
            save_grid(images[:NUM_FIXED_NOISE], os.path.join(self.dir, rundir.REAL_SAMPLES_FILE))

    def _render_report(self, force=False):
        """Refresh the run's index.html: at epoch ends at most once a minute, and no more often than keeps its
        rendering (~1 s, more as grids accumulate) within REPORT_SHARE of the run (at first every ~3 minutes);
        always at the end. A rendering failure is a warning, never a crash."""
        if not self.world.is_main or not (force or self.report_budget.due()):
            return None
        started = time.time()
        try:
            return render_report(self.dir)
        except Exception as error:  # noqa: BLE001 - the report is a courtesy; training results are already saved
            self.log.warning(f"warning: could not render the run report: {error}")
            return None
        finally:
            self.report_budget.spent(started)

    def _check_finite(self, record):
        if not all(math.isfinite(record[k]) for k in ("loss_d", "loss_g")):
            self._write_status("diverged")
            raise TrainingDiverged(f"training diverged at step {self.step}: loss_d {record['loss_d']}, "
                                   f"loss_g {record['loss_g']}; the last good checkpoint is kept in "
                                   f"{os.path.join(self.dir, checkpoint.CKPT_DIR)}")

    def _sampled_generator(self):
        """The G whose samples the run shows and saves: the averaged G (its BN statistics brought up to date) when
        --ema_decay is on, else G."""
        if self.ema is None:
            return self.netG
        self.ema.sync_statistics()
        return self.averagedG

    def _save_samples(self, name):
        if not self.world.is_main:
            return None
        return save_grid(sample(self._sampled_generator(), self.fixed_noise),
                         os.path.join(self.dir, rundir.SAMPLES_DIR, name), columns=8)

    def _save_checkpoint(self):
        if not self.world.is_main:
            return
        averaged = self._sampled_generator() if self.ema is not None else None
        checkpoint.save_training_checkpoint(self.dir, self.step, self.cfg, self.netG, self.netD, self.optimizerG,
                                            self.optimizerD, ms.Tensor(self.fixed_noise), averaged)

    def _rotate_checkpoints(self):
        if not self.world.is_main:
            return
        best = (self.best["step"],) if self.best else ()
        checkpoint.remove_old_checkpoints(self.dir, self.cfg["keep_checkpoint_max"], protected=best)
        self._write_status("running")

    # -- sample quality (src/evaluation): measured on rank 0 every --metrics_interval steps -------------------------

    def _metrics_interval(self):
        interval = self.cfg.get("metrics_interval")
        return self.cfg["save_checkpoint_steps"] if interval is None else interval

    def _quality_due(self):
        interval = self._metrics_interval()
        return self.world.is_main and interval > 0 and self.step % interval == 0

    def _measure_quality(self, epoch, at_checkpoint):
        """Score the sampled G (and, with EMA, G itself) on a fixed latent sample, log and record it, and keep
        the best checkpoint. A failing measurement is a warning and turns measuring off: training goes on."""
        if not self.world.is_main or self.judge is False:
            return
        cfg, started = self.cfg, time.time()
        try:
            if self.judge is None:
                from src.evaluation import QualityJudge
                self.judge = QualityJudge(cfg["dataset"], cfg["data_path"], cfg["image_size"], cfg["nc"],
                                          num_images=cfg.get("metrics_num_images", 1000), seed=QUALITY_SEED,
                                          cache_dir=self.dir, log=self.log.info)
            score = lambda net: self.judge.evaluate(lambda z: sample(net, z), cfg["nz"])
            record = {"step": self.step, "epoch": epoch + 1, "source": "train", "primary": self.judge.primary,
                      "generator": "ema" if self.ema else "G", "checkpoint": at_checkpoint}
            scores = score(self._sampled_generator())
            record.update(scores)
            if self.ema is not None:
                record["G"] = {k: v for k, v in score(self.netG).items() if isinstance(v, float)}
        except Exception as error:  # noqa: BLE001 - a courtesy measurement must not end a multi-day run
            self.log.warning(f"warning: sample-quality measurement failed, no more measurements in this run: {error}")
            self.judge = False
            return
        record["seconds"] = round(time.time() - started, 2)
        self.quality.write(record)
        if at_checkpoint and rundir.best_quality_record([record] + ([self.best] if self.best else [])) is record:
            self.best = record
        primary = record["primary"]
        values = " ".join(f"{k} {v:.4g}" for k, v in scores.items() if isinstance(v, float))
        raw = f" (G itself: {primary} {record['G'][primary]:.4g})" if "G" in record else ""
        best = f"; best so far: step {self.best['step']} ({primary} {self.best[primary]:.4g})" if self.best else ""
        self.log.info(f"quality at step {self.step}: {values}{raw}{best} [{record['seconds']:.1f} s]")
