"""A learning check that can fail: a short real run on the built-in digits moves G's images toward the data.

Measure: the 1-D Wasserstein distance between the pixel values of 64 fixed-noise samples and of 256 real digits
(both in [-1, 1]). The untrained generator (the same seed's initial weights) sits at ~0.70; after 250 steps at
batch 32 we measured ~0.25. The test asks for less than 0.6x the initial distance, and for the mean image to move
closer too.
"""
import json

import numpy as np
import mindspore as ms
from scipy.stats import wasserstein_distance

from src.dataset import create_dataset
from src.run.checkpoint import load_network
from src.batches import fixed_noise
from src.networks import build_networks
from tests.cli import train

STEPS = 250


def test_short_digits_run_moves_generator_pixel_statistics_toward_the_data(tmp_path):
    run = tmp_path / "digits"
    train("--dataset", "digits", "--output_path", run, "--max_steps", STEPS, "--batch_size", 32, "--ngf", 16,
          "--ndf", 16)
    cfg = json.loads((run / "config.json").read_text())
    netG, _ = build_networks(cfg)  # the run's own initial weights (same seed)
    netG.set_train(False)
    z = ms.Tensor(fixed_noise(cfg))
    before = netG(z).asnumpy()
    load_network(str(run / "ckpt" / f"generator_{STEPS:08d}.ckpt"), netG)
    after = netG(z).asnumpy()
    dataset, _ = create_dataset("digits", batch_size=256, shuffle=False)
    real = next(dataset.create_tuple_iterator(output_numpy=True))[0]

    distance_before = wasserstein_distance(before.ravel(), real.ravel())
    distance_after = wasserstein_distance(after.ravel(), real.ravel())
    assert distance_after < 0.6 * distance_before, (distance_before, distance_after)
    mean_error = lambda images: np.abs(images.mean(0) - real.mean(0)).mean()
    assert mean_error(after) < mean_error(before)
