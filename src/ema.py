"""An exponential moving average (EMA) of the generator's weights: the G that is sampled, checkpointed and exported.

A GAN's generator oscillates from step to step; the average of its recent weights draws cleaner samples than any
one of them (Yazıcı et al., ICLR 2019; used by ProGAN/StyleGAN). The average never feeds back into training: D
and G train exactly as without it, so `--ema_decay 0` (the paper's G) and any decay give the same training run.

    ema <- d * ema + (1 - d) * G,   d = min(decay, (1 + t) / (10 + t)) at step t

After the first UPDATE_EVERY steps, the update runs every UPDATE_EVERY steps with the product of those steps' d
(as lucidrains' ema-pytorch does with update_every): it launches ~50 small kernels, which cost 5-7% of a narrow
net's 40-130 ms CPU step when run after every step, and the average it gives differs only in leaving out G's
states in between (its horizon, ~1 / (1 - d) = 100 steps at 0.99, spans a dozen updates).

The warm-up term (TensorFlow's ExponentialMovingAverage with num_updates) keeps the average from being dominated
by the random initial weights early in a run, when a fixed d = 0.999 would still weigh them heavily after a few
hundred steps. BatchNorm's running statistics are not averaged: the averaged G takes G's current ones
(`sync_statistics`), as StyleGAN does with its buffers.
"""
import math

import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

WARMUP_OFFSET = 10.0
UPDATE_EVERY = 8


def decay_at(decay, step):
    """The per-step decay after training step `step` (0-based; the warm-up schedule above)."""
    return min(decay, (1.0 + step) / (WARMUP_OFFSET + step))


def update_decay(decay, step, every=UPDATE_EVERY):
    """The decay of the update made after training step `step`, or None when no update is due there: the product
    of the per-step decays since the previous update, so the old average keeps the weight it would have kept. The
    first `every` steps update each time, so that even a run of a few steps samples an average of trained weights."""
    if step < every:
        return decay_at(decay, step)
    if (step + 1) % every:
        return None
    return math.prod(decay_at(decay, s) for s in range(step + 1 - every, step + 1))


class GeneratorEMA(nn.Cell):
    """Keeps `averaged` (a Generator of the same architecture) as the moving average of `netG`'s weights.

    construct(d) applies one update with decay d; call `update(step)` after every training step: it applies the
    updates that are due.
    """

    def __init__(self, netG, averaged, decay):
        super().__init__(auto_prefix=False)
        self.decay = decay
        for name, p in averaged.parameters_and_names():
            p.name = "ema." + name  # G's own parameters carry the plain names; one graph holds both
        self.weights = ms.ParameterTuple(netG.trainable_params())
        self.shadow = ms.ParameterTuple(averaged.trainable_params())
        # BatchNorm running statistics, (G's, the average's): copied, not averaged. A plain tuple, not a Cell
        # attribute, so the two networks stay outside this cell's graph.
        own = dict(netG.parameters_and_names())
        self._statistics = tuple((own[name], p) for name, p in averaged.parameters_and_names() if not p.requires_grad)
        self.copy_weights()
        averaged.set_train(False)

    def copy_weights(self):
        """Set the average to G's current weights (the start of a run)."""
        for shadow, weight in zip(self.shadow, self.weights):
            shadow.set_data(weight.data.copy())

    def sync_statistics(self):
        """Give the averaged G the BatchNorm running statistics of G (before sampling or saving it)."""
        for source, target in self._statistics:
            target.set_data(source.data.copy())

    def construct(self, d):
        for shadow, weight in zip(self.shadow, self.weights):
            ops.assign(shadow, shadow * d + weight * (1.0 - d))
        return d

    def update(self, step):
        """After training step `step` (0-based): the averaging update, when one is due at this step."""
        d = update_decay(self.decay, step)
        if d is not None:
            self(ms.Tensor(d, ms.float32))
