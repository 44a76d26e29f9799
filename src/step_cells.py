"""One training step per network, as MindSpore's model zoo writes its GANs: a TrainOneStepCell for D and one for G.

Built on MindSpore's own step cells, which hold the data-parallel all-reduce of the gradients (nn.TrainOneStepCell
creates a DistributedGradReducer, averaging when gradients_mean is set, whenever the parallel mode is data or
hybrid parallel):
- TrainOneStepCellD / TrainOneStepCellG: nn.TrainOneStepCell, for fp32 (and bf16 convolutions on CPU, whose
  gradients come back in fp32);
- LossScaledTrainOneStepCellD / ...G: nn.TrainOneStepWithLossScaleCell with a dynamic loss scale per network, for
  float16 (mindspore.amp) on GPU and Ascend: a step whose gradients overflow is skipped (no optimizer update) and
  the scale lowered; they return that step's overflow flag too.
Each loss cell also returns the mean D probabilities the log reports; they are outputs only, so their
sensitivities are zero and the gradients are those of the loss alone.
"""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

from src.cell import WithLossCellD, WithLossCellG

# Dynamic loss scaling (the model zoo's defaults): start at 2^16, halve on an overflow, double after 1000 clean steps.
LOSS_SCALE_START, LOSS_SCALE_FACTOR, LOSS_SCALE_WINDOW = 2.0 ** 16, 2, 1000


class WithLossCellGFromNoise(nn.Cell):
    """G's loss from the noise: G draws the fake batch, then WithLossCellG. Returns (loss, mean D(G(z)))."""

    def __init__(self, netG, netD, augment=None):
        super().__init__(auto_prefix=False)
        self.netG = netG
        self.loss = WithLossCellG(netD, augment)

    def construct(self, z):
        return self.loss(self.netG(z))


def _seeds(outputs, scale):
    """The sensitivities of a loss cell's outputs: `scale` for the loss, zeros for the reported probabilities."""
    loss = outputs[0]
    return (ops.fill(loss.dtype, loss.shape, scale),) + ops.HyperMap()(ops.ZerosLike(), outputs[1:])


class _TrainOneStep(nn.TrainOneStepCell):
    """nn.TrainOneStepCell for a loss cell returning (loss, reported values...): returns them all, after the update."""

    def __init__(self, network, optimizer):
        super().__init__(network, optimizer, sens=1.0)

    def construct(self, *inputs):
        outputs = self.network(*inputs)
        grads = self.grad(self.network, self.weights)(*inputs, _seeds(outputs, self.sens))
        grads = self.grad_reducer(grads)
        loss = ops.depend(outputs[0], self.optimizer(grads))
        return (loss,) + outputs[1:]


class TrainOneStepCellD(_TrainOneStep):
    """One Adam step of D on a real and a (detached) fake batch: (real, fake) -> (loss_d, D(x), D(G(z)))."""

    def __init__(self, netD, optimizerD, real_label=1.0, augment=None, contrastive=None):
        super().__init__(WithLossCellD(netD, real_label, augment, contrastive), optimizerD)
        self.netD = netD


class TrainOneStepCellG(_TrainOneStep):
    """One Adam step of G through D (whose weights it leaves alone): z -> (loss_g, D(G(z)))."""

    def __init__(self, netG, netD, optimizerG, augment=None):
        super().__init__(WithLossCellGFromNoise(netG, netD, augment), optimizerG)
        self.netG = netG


_unscale = ops.MultitypeFuncGraph("unscale")


@_unscale.register("Tensor", "Tensor")
def _unscale_tensor(scale, grad):
    return grad * ops.cast(ops.reciprocal(scale), grad.dtype)


_not_finite = ops.MultitypeFuncGraph("not_finite")


@_not_finite.register("Tensor")
def _not_finite_tensor(grad):
    """1.0 if `grad` holds an inf or a NaN, else 0.0."""
    return ops.cast(ops.logical_not(ops.isfinite(grad).all()), ms.float32)


class _LossScaledTrainOneStep(nn.TrainOneStepWithLossScaleCell):
    """nn.TrainOneStepWithLossScaleCell for a loss cell returning (loss, reported values...), with a dynamic scale
    of its own. Returns (loss, reported values..., overflow): the optimizer ran only if overflow is False."""

    def __init__(self, network, optimizer, name, scale_window=LOSS_SCALE_WINDOW):
        scaler = nn.DynamicLossScaleUpdateCell(LOSS_SCALE_START, LOSS_SCALE_FACTOR, scale_window)
        super().__init__(network, optimizer, scale_sense=scaler)
        self.scale_sense.name = f"loss_scale_{name}"  # two scales in one DCGAN: their names must differ
        # MindSpore's overflow tests use GPU or Ascend operators (FloatStatus, the Ascend status register); the CPU
        # has none of them, so there (where the tests run this cell) every gradient is tested with isfinite.
        self.cpu_target = ms.get_context("device_target") == "CPU"

    def get_overflow_status(self, status, compute_output):
        if not self.cpu_target:
            return nn.TrainOneStepWithLossScaleCell.get_overflow_status(self, status, compute_output)
        count = ops.addn(self.hyper_map(_not_finite, compute_output))
        if self.is_distributed:
            count = self.allreduce(count)
        return count > 0

    def construct(self, *inputs):
        outputs = self.network(*inputs)
        scale = self.scale_sense
        status = ops.zeros((8,), ms.int32)
        grads = self.grad(self.network, self.weights)(*inputs, _seeds(outputs, scale))
        grads = self.hyper_map(ops.partial(_unscale, scale), grads)
        grads = self.grad_reducer(grads)
        overflow = self.process_loss_scale(self.get_overflow_status(status, grads))
        loss = outputs[0]
        if not overflow:
            loss = ops.depend(loss, self.optimizer(grads))
        return (loss,) + outputs[1:] + (overflow,)


class LossScaledTrainOneStepCellD(_LossScaledTrainOneStep):
    """TrainOneStepCellD with dynamic loss scaling: (real, fake) -> (loss_d, D(x), D(G(z)), overflow)."""

    def __init__(self, netD, optimizerD, real_label=1.0, scale_window=LOSS_SCALE_WINDOW, augment=None,
                 contrastive=None):
        super().__init__(WithLossCellD(netD, real_label, augment, contrastive), optimizerD, "d", scale_window)
        self.netD = netD


class LossScaledTrainOneStepCellG(_LossScaledTrainOneStep):
    """TrainOneStepCellG with dynamic loss scaling: z -> (loss_g, D(G(z)), overflow)."""

    def __init__(self, netG, netD, optimizerG, scale_window=LOSS_SCALE_WINDOW, augment=None):
        super().__init__(WithLossCellGFromNoise(netG, netD, augment), optimizerG, "g", scale_window)
        self.netG = netG


def loss_scale_entries(train_step):
    """(name, Parameter) of each loss-scaled network's dynamic scale and the counters that decide when it grows
    again, for the training checkpoint; [] for a step without loss scaling. Checkpointed, a resumed float16 run
    goes on at the scale it had found instead of overflowing its way down from 2^16 again."""
    entries = []
    for net, cell in (("D", train_step.train_d), ("G", train_step.train_g)):
        if isinstance(cell, nn.TrainOneStepWithLossScaleCell):
            manager = cell.loss_scaling_manager
            entries += [(f"{net}.scale", cell.scale_sense), (f"{net}.current_step", manager.cur_iter),
                        (f"{net}.last_overflow_step", manager.last_overflow_iter)]
    return entries


def step_cells(netG, netD, optimizerG, optimizerD, loss_scaled=False, real_label=1.0, augment=None,
               contrastive=None):
    """(D's step cell, G's step cell): with a dynamic loss scale each when `loss_scaled` (float16 training);
    real_label: D's target for real images (< 1: one-sided label smoothing, see src/cell.py); augment: the
    DiffAugment cell both steps pass D's inputs through (src/augment.py), or None; contrastive: D's contrastive
    loss (src/contrastive.py), or None."""
    if loss_scaled:
        return (LossScaledTrainOneStepCellD(netD, optimizerD, real_label, augment=augment, contrastive=contrastive),
                LossScaledTrainOneStepCellG(netG, netD, optimizerG, augment=augment))
    return (TrainOneStepCellD(netD, optimizerD, real_label, augment, contrastive),
            TrainOneStepCellG(netG, netD, optimizerG, augment))
