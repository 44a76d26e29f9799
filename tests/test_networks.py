"""The networks follow the paper and the model zoo: shapes, parameter counts, initialisation, and the step."""
import numpy as np
import pytest
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

from src.cell import WithLossCellD, WithLossCellG
from src.dcgan import DCGAN
from src.discriminator import Discriminator
from src.generator import Generator
from src.weight_init import init_weights

ms.set_context(mode=ms.GRAPH_MODE)


def expected_counts(image_size, nz, ngf, ndf, nc):
    """Trainable parameters counted from the architecture table (k=4, no biases; BN has gamma and beta)."""
    g_widths = [ngf * m for m in ((8, 4, 2) if image_size == 32 else (8, 4, 2, 1))]
    d_widths = [ndf * m for m in ((2, 4, 8) if image_size == 32 else (1, 2, 4, 8))]
    g_chain = [nz] + g_widths + [nc]
    g = sum(a * b * 16 for a, b in zip(g_chain, g_chain[1:])) + 2 * sum(g_widths)
    d_chain = [nc] + d_widths + [1]
    d = sum(a * b * 16 for a, b in zip(d_chain, d_chain[1:])) + 2 * sum(d_widths[1:])  # no BN on the input layer
    return g, d


def count(net):
    return sum(int(np.prod(p.shape)) for p in net.trainable_params())


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("nc", [1, 3])
def test_generator_and_discriminator_shapes_and_parameter_counts(image_size, nc):
    netG, netD = Generator(image_size, 100, 64, nc), Discriminator(image_size, 64, nc)
    z = ms.Tensor(np.random.default_rng(0).standard_normal((2, 100, 1, 1)).astype(np.float32))
    netG.set_train(False)
    netD.set_train(False)
    images = netG(z)
    assert images.shape == (2, nc, image_size, image_size)
    assert netD(images).shape == (2,)
    assert (count(netG), count(netD)) == expected_counts(image_size, 100, 64, 64, nc)


def test_model_zoo_32px_widths():
    """32 px: G 100->512->256->128->3, D 3->128->256->512->1, as in research/cv/dcgan."""
    g_shapes = [p.shape for p in Generator(32, 100, 64, 3).trainable_params() if len(p.shape) == 4]
    d_shapes = [p.shape for p in Discriminator(32, 64, 3).trainable_params() if len(p.shape) == 4]
    assert [s[:2] for s in g_shapes] == [(100, 512), (512, 256), (256, 128), (128, 3)]  # (in, out) for transposed
    assert [s[:2] for s in d_shapes] == [(128, 3), (256, 128), (512, 256), (1, 512)]  # (out, in)


def test_initialisation_statistics_and_distinct_layers():
    netG, netD = Generator(64, 100, 64, 3), Discriminator(64, 64, 3)
    rng = np.random.default_rng(7)
    init_weights(netG, rng)
    init_weights(netD, rng)
    conv = np.concatenate([p.asnumpy().ravel() for p in netG.trainable_params() + netD.trainable_params()
                           if len(p.shape) == 4])
    assert abs(conv.mean()) < 1e-3 and abs(conv.std() - 0.02) < 1e-3
    gammas = np.concatenate([p.asnumpy() for p in netG.trainable_params() + netD.trainable_params()
                             if p.name.endswith("gamma")])
    betas = np.concatenate([p.asnumpy() for p in netG.trainable_params() + netD.trainable_params()
                            if p.name.endswith("beta")])
    assert abs(gammas.mean() - 1) < 0.005 and abs(gammas.std() - 0.02) < 0.005
    assert np.all(betas == 0)
    # Same-shape layers must not share weights (the model zoo re-seeds its initializer for every layer, so its
    # same-shape layers start equal). The DCGAN nets have no two same-shape layers, so build a net that has.
    twins = nn.SequentialCell([nn.Conv2d(8, 8, 4), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 4), nn.BatchNorm2d(8)])
    init_weights(twins, np.random.default_rng(7))
    convs = [p.asnumpy() for p in twins.trainable_params() if len(p.shape) == 4]
    gammas_of_twins = [p.asnumpy() for p in twins.trainable_params() if p.name.endswith("gamma")]
    assert len(convs) == len(gammas_of_twins) == 2
    assert not np.array_equal(*convs) and not np.array_equal(*gammas_of_twins)
    first = [p.asnumpy() for p in netG.trainable_params()]
    netG2 = Generator(64, 100, 64, 3)
    init_weights(netG2, np.random.default_rng(7))
    assert all(np.array_equal(a, p.asnumpy()) for a, p in zip(first, netG2.trainable_params()))


class TwoPassStep(nn.Cell):
    """The textbook step, as the model zoo writes it: G runs again inside the G step. The reference for DCGAN."""

    def __init__(self, netG, netD, optimizerG, optimizerD):
        super().__init__(auto_prefix=False)
        self.netG, self.optimizerG, self.optimizerD = netG, optimizerG, optimizerD
        self.loss_g = WithLossCellG(netD)
        self.grad_d = ms.value_and_grad(WithLossCellD(netD), None, optimizerD.parameters, has_aux=True)
        self.grad_g = ms.value_and_grad(GeneratorLoss(netG, netD), None, optimizerG.parameters, has_aux=True)

    def construct(self, real, z):
        (loss_d, _, _), grads_d = self.grad_d(real, ops.stop_gradient(self.netG(z)))
        loss_d = ops.depend(loss_d, self.optimizerD(grads_d))
        z = ops.depend(z, loss_d)
        (loss_g, _), grads_g = self.grad_g(z)
        return loss_d, ops.depend(loss_g, self.optimizerG(grads_g))


class GeneratorLoss(nn.Cell):
    def __init__(self, netG, netD):
        super().__init__(auto_prefix=False)
        self.netG, self.loss = netG, WithLossCellG(netD)

    def construct(self, z):
        return self.loss(self.netG(z))


def make_step(cls, seed=3):
    netG, netD = Generator(32, 16, 8, 1), Discriminator(32, 8, 1)
    rng = np.random.default_rng(seed)
    init_weights(netG, rng)
    init_weights(netD, rng)
    optG = nn.Adam(netG.trainable_params(), 2e-4, beta1=0.5)
    optD = nn.Adam(netD.trainable_params(), 2e-4, beta1=0.5)
    step = cls(netG, netD, optG, optD)
    step.set_train(True)
    return step, netG, netD


def test_single_generator_pass_step_equals_textbook_two_pass_step():
    """DCGAN reuses G's forward pass for the G step; the updated weights must equal the two-pass step's."""
    fast, fast_G, fast_D = make_step(DCGAN)
    slow, slow_G, slow_D = make_step(TwoPassStep)
    rng = np.random.default_rng(0)
    for _ in range(3):
        real = ms.Tensor(rng.uniform(-1, 1, (8, 1, 32, 32)).astype(np.float32))
        z = ms.Tensor(rng.standard_normal((8, 16, 1, 1)).astype(np.float32))
        fast_out, slow_out = fast(real, z), slow(real, z)
        np.testing.assert_allclose(fast_out[0].asnumpy(), slow_out[0].asnumpy(), rtol=1e-5)
        np.testing.assert_allclose(fast_out[1].asnumpy(), slow_out[1].asnumpy(), rtol=1e-5)
    for a, b in zip(fast_G.trainable_params() + fast_D.trainable_params(),
                    slow_G.trainable_params() + slow_D.trainable_params()):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-4, atol=1e-6, err_msg=a.name)


def test_losses_are_finite_when_discriminator_saturates():
    """BCE-with-logits stays finite at logits of +-100, where sigmoid + log would give inf."""
    from src.cell import bce_with_logits
    logits = ms.Tensor(np.array([100.0, -100.0], np.float32))
    assert np.isfinite(bce_with_logits(logits, 1.0).asnumpy())
    assert abs(float(bce_with_logits(logits, 1.0).asnumpy()) - 50.0) < 1e-3
