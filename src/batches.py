"""What each training step takes in: this rank's shard of an epoch's images, zipped with the step's latent noise.

Everything is derived from --seed, so --resume redraws it exactly: the noise of step s on rank r from
(seed, 2, r, s), the fixed noise of the sample grids from (seed, 1), and the data order of epoch e from the
reader's shuffle seeded with seed + e (a resumed epoch skips the batches it already trained on).
"""
import numpy as np
import mindspore as ms
import mindspore.dataset as ds

from src.dataset import create_dataset

NUM_FIXED_NOISE = 64


def noise_array(cfg, step, rank=0):
    """The latent batch of a training step: a pure function of (seed, rank, step), so resume redraws it exactly."""
    rng = np.random.default_rng([cfg["seed"], 2, rank, step])
    return rng.standard_normal((cfg["batch_size"], cfg["nz"], 1, 1)).astype(np.float32)


def step_noise(cfg, step, rank=0):
    """noise_array as a Tensor, for callers outside the loop (bench/); the loop draws it in the data pipeline."""
    return ms.Tensor(noise_array(cfg, step, rank))


def fixed_noise(cfg):
    """The latent vectors of every sample grid of the run."""
    rng = np.random.default_rng([cfg["seed"], 1])
    return rng.standard_normal((NUM_FIXED_NOISE, cfg["nz"], 1, 1)).astype(np.float32)


class EpochNoise:
    """The latent batches of one epoch's steps, as a random-access source for MindSpore's GeneratorDataset: zipped
    with the images, they are drawn in the pipeline's thread while the step runs, not between steps."""

    def __init__(self, cfg, first_step, steps, rank):
        self.cfg, self.first_step, self.steps, self.rank = cfg, first_step, steps, rank

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return (noise_array(self.cfg, self.first_step + index, self.rank),)


def epoch_dataset(cfg, epoch, world, bad_files=None):
    """(dataset, info): this rank's shard of the data for `epoch`; the shards of all ranks cover the dataset once.
    Bad image files are skipped and counted in info.bad_files (or in `bad_files`, from an earlier epoch); --strict
    stops at one."""
    shards = dict(num_shards=world.size, shard_id=world.rank) if world.size > 1 else {}
    return create_dataset(cfg["dataset"], cfg["data_path"], image_size=cfg["image_size"],
                          split=cfg.get("split", "train"), batch_size=cfg["batch_size"], nc=cfg["nc"], shuffle=True,
                          num_parallel_workers=cfg["num_parallel_workers"], seed=cfg["seed"] + epoch,
                          strict=cfg.get("strict", False), bad_files=bad_files, **shards)


def with_noise(images, cfg, first_step, steps, rank):
    """`images` (one epoch's batches, the first of them for step `first_step`) zipped with each step's latent batch."""
    noise = ds.GeneratorDataset(EpochNoise(cfg, first_step, steps, rank), column_names=["noise"], shuffle=False,
                                num_parallel_workers=1, python_multiprocessing=False)
    return ds.zip((images, noise))
