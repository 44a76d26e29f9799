"""An exponential moving average (EMA) of the generator's weights: the G that is sampled, checkpointed and exported.

A GAN's generator oscillates from step to step; the average of its recent weights draws cleaner samples than any
one of them (Yazıcı et al., ICLR 2019; used by ProGAN/StyleGAN). The average never feeds back into training: D
and G train exactly as without it, so `--ema_decay 0` (the paper's G) and any decay give the same training run.

    ema <- d * ema + (1 - d) * G,   d = min(decay, (1 + t) / (10 + t)) at step t

The warm-up term (TensorFlow's ExponentialMovingAverage with num_updates) keeps the average from being dominated
by the random initial weights early in a run, when a fixed d = 0.999 would still weigh them heavily after a few
hundred steps. BatchNorm's running statistics are not averaged: the averaged G takes G's current ones
(`sync_statistics`), as StyleGAN does with its buffers.
"""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

WARMUP_OFFSET = 10.0


def decay_at(decay, step):
    """The decay used for the update after `step` steps (the warm-up schedule above)."""
    return min(decay, (1.0 + step) / (WARMUP_OFFSET + step))


class GeneratorEMA(nn.Cell):
    """Keeps `averaged` (a Generator of the same architecture) as the moving average of `netG`'s weights.

    construct(d) applies one update with decay d; call it after every training step via `update(step)`.
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
        """One averaging update after training step `step` (0-based)."""
        return self(ms.Tensor(decay_at(self.decay, step), ms.float32))
