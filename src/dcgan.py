"""One DCGAN training step (Algorithm 1 of Goodfellow et al. with the DCGAN losses), composed of the two networks'
step cells (src/step_cells.py), as one compiled cell.

Per step, as in the pytorch example: G draws a fake batch; D takes one Adam step on real + detached fake; then G
takes one Adam step on -log D(fake), measured with the updated D. Two ways to run G's step, same results:
- fused (the default where it applies): G's forward pass is not repeated for its step: the vector-Jacobian product
  of the first pass is kept and fed the gradient of the G loss with respect to the fake images, then G's step
  cell's all-reduce and optimizer apply it (bench/train_step.py --fused on|off: a few per cent faster, B 128);
- two passes (the model zoo's form): G's step cell runs G again. Its BatchNorm running statistics then take the
  same batch twice per step. Loss-scaled (float16) training always runs this way: the scale lives in the step cells.
"""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops


class DCGAN(nn.Cell):
    """construct(real, z) -> (loss_d, loss_g, D(x), D(G(z)) before the D step, D(G(z)) after it), followed by
    (D's overflow, G's overflow) when the step cells are loss-scaled (an overflowing network's step was skipped)."""

    def __init__(self, train_d, train_g, fused=True):
        super().__init__(auto_prefix=False)
        self.train_d, self.train_g = train_d, train_g
        self.netG = train_g.netG
        self.loss_scaled = isinstance(train_d, nn.TrainOneStepWithLossScaleCell)
        self.fused = fused and not self.loss_scaled
        if self.fused:
            # Gradient of the G loss with respect to the fake images only; D's weights get none.
            self.grad_g_fake = ms.value_and_grad(train_g.network.loss, 0, None, has_aux=True)

    def construct(self, real, z):
        if self.fused:
            return self._one_generator_pass(real, z)
        fake = ops.stop_gradient(self.netG(z))
        out_d = self.train_d(real, fake)
        out_g = self.train_g(ops.depend(z, out_d[0]))  # the G step must see the updated D
        if self.loss_scaled:
            return out_d[0], out_g[0], out_d[1], out_d[2], out_g[1], out_d[3], out_g[2]
        return out_d[0], out_g[0], out_d[1], out_d[2], out_g[1]

    def _one_generator_pass(self, real, z):
        fake, g_backward = ms.vjp(self.netG, z, weights=self.train_g.weights)
        loss_d, d_real, d_fake = self.train_d(real, ops.stop_gradient(fake))
        fake = ops.depend(fake, loss_d)  # the G step must see the updated D
        (loss_g, d_fake_after), grad_fake = self.grad_g_fake(fake)
        grads_g = self.train_g.grad_reducer(g_backward(grad_fake)[1])  # [0] would be the gradient for z: unused
        loss_g = ops.depend(loss_g, self.train_g.optimizer(grads_g))
        return loss_d, loss_g, d_real, d_fake, d_fake_after
