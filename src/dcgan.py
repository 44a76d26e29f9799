"""One DCGAN training step (Algorithm 1 of Goodfellow et al. with the DCGAN losses) as one compiled cell.

Per step, as in the pytorch example: G draws a fake batch once; D takes one Adam step on real + detached fake;
then G takes one Adam step on -log D(fake), measured with the updated D. G's forward pass is not repeated for the
G step (the model zoo runs it twice): its vector-Jacobian product is kept from the first pass and fed the gradient
of the G loss with respect to the fake images.
"""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

from src.cell import WithLossCellD, WithLossCellG


class DCGAN(nn.Cell):
    """construct(real, z) -> (loss_d, loss_g, D(x), D(G(z)) before the D step, D(G(z)) after it)."""

    def __init__(self, netG, netD, optimizerG, optimizerD):
        super().__init__(auto_prefix=False)
        self.netG, self.netD = netG, netD
        self.optimizerG, self.optimizerD = optimizerG, optimizerD
        self.loss_d = WithLossCellD(netD)
        self.loss_g = WithLossCellG(netD)
        self.grad_d = ms.value_and_grad(self.loss_d, None, optimizerD.parameters, has_aux=True)
        # Gradient of the G loss with respect to the fake images only; D's weights get none.
        self.grad_g_fake = ms.value_and_grad(self.loss_g, 0, None, has_aux=True)
        self.reduce_d, self.reduce_g = gradient_reducer(optimizerD), gradient_reducer(optimizerG)

    def construct(self, real, z):
        fake, g_backward = ms.vjp(self.netG, z, weights=self.optimizerG.parameters)
        (loss_d, d_real, d_fake), grads_d = self.grad_d(real, ops.stop_gradient(fake))
        loss_d = ops.depend(loss_d, self.optimizerD(self.reduce_d(grads_d)))
        fake = ops.depend(fake, loss_d)  # the G step must see the updated D
        (loss_g, d_fake_after), grad_fake = self.grad_g_fake(fake)
        grads_g = g_backward(grad_fake)[1]  # [0] would be the gradient for z: unused
        loss_g = ops.depend(loss_g, self.optimizerG(self.reduce_g(grads_g)))
        return loss_d, loss_g, d_real, d_fake, d_fake_after


def gradient_reducer(optimizer):
    """In data-parallel mode, MindSpore's all-reduce of the gradients (averaged: gradients_mean); else identity.
    The same test nn.TrainOneStepCell makes, since this step is written with value_and_grad instead."""
    context = ms.get_auto_parallel_context
    if context("parallel_mode") in (ms.ParallelMode.DATA_PARALLEL, ms.ParallelMode.HYBRID_PARALLEL):
        # src/run/distributed.py sets device_num to the world size with the mode.
        return nn.DistributedGradReducer(optimizer.parameters, context("gradients_mean"), context("device_num"))
    return ops.identity
