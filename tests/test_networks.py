"""The networks follow the paper and the model zoo: shapes, parameter counts, initialisation, and the step."""
import numpy as np
import pytest
import mindspore as ms
import mindspore.nn as nn

from src.dcgan import DCGAN
from src.discriminator import Discriminator
from src.generator import Generator
from src.step_cells import step_cells
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


def make_step(fused, seed=3, loss_scaled=False):
    netG, netD = Generator(32, 16, 8, 1), Discriminator(32, 8, 1)
    rng = np.random.default_rng(seed)
    init_weights(netG, rng)
    init_weights(netD, rng)
    optG = nn.Adam(netG.trainable_params(), 2e-4, beta1=0.5)
    optD = nn.Adam(netD.trainable_params(), 2e-4, beta1=0.5)
    step = DCGAN(*step_cells(netG, netD, optG, optD, loss_scaled), fused=fused)
    step.set_train(True)
    return step, netG, netD, optG, optD


def batches(steps, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        yield (ms.Tensor(rng.uniform(-1, 1, (8, 1, 32, 32)).astype(np.float32)),
               ms.Tensor(rng.standard_normal((8, 16, 1, 1)).astype(np.float32)))


def test_single_generator_pass_step_equals_two_pass_step_of_the_step_cells():
    """The fused DCGAN reuses G's forward pass for the G step; the updated weights must equal those of the
    model zoo's two-pass form, where G's TrainOneStepCell runs G again."""
    fast, fast_G, fast_D, _, _ = make_step(fused=True)
    slow, slow_G, slow_D, _, _ = make_step(fused=False)
    assert fast.fused and not slow.fused
    for real, z in batches(3):
        fast_out, slow_out = fast(real, z), slow(real, z)
        assert len(fast_out) == len(slow_out) == 5
        for a, b in zip(fast_out, slow_out):  # losses and D's probabilities
            np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5)
    for a, b in zip(fast_G.trainable_params() + fast_D.trainable_params(),
                    slow_G.trainable_params() + slow_D.trainable_params()):
        assert a.name == b.name
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-4, atol=1e-6, err_msg=a.name)


def test_checkpoint_of_the_fused_step_loads_into_the_step_cell_pair(tmp_path):
    """Both forms hold the same parameters under the same names: a training state saved by one resumes the other."""
    from src.run import checkpoint
    fused, netG, netD, optG, optD = make_step(fused=True)
    for real, z in batches(2):
        fused(real, z)
    cfg = dict(image_size=32, nz=16, ngf=8, ndf=8, nc=1, ema_decay=0.0, seed=3)
    checkpoint.save_training_checkpoint(str(tmp_path), 2, cfg, netG, netD, optG, optD,
                                       ms.Tensor(np.zeros((4, 16, 1, 1), np.float32)))
    path = checkpoint.ckpt_path(str(tmp_path), "train_state", 2)
    pair, pair_G, pair_D, pair_optG, pair_optD = make_step(fused=False, seed=11)
    assert checkpoint.load_training_state(path, pair_G, pair_D, pair_optG, pair_optD)[0] == 2
    for (name, a), (_, b) in zip(checkpoint.state_entries(netG, netD, optG, optD),
                                 checkpoint.state_entries(pair_G, pair_D, pair_optG, pair_optD)):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy(), err_msg=name)  # weights, BN statistics, Adam
    real, z = next(batches(1, seed=5))
    np.testing.assert_allclose(pair(real, z)[1].asnumpy(), fused(real, z)[1].asnumpy(), rtol=1e-5)


def test_each_network_has_its_own_train_one_step_cell_with_its_optimizer():
    step, netG, netD, optG, optD = make_step(fused=False)
    assert isinstance(step.train_d, nn.TrainOneStepCell) and isinstance(step.train_g, nn.TrainOneStepCell)
    assert step.train_d.optimizer is optD and step.train_g.optimizer is optG
    assert {p.name for p in step.train_g.weights} == {p.name for p in netG.trainable_params()}
    assert {p.name for p in step.train_d.weights} == {p.name for p in netD.trainable_params()}
    real, z = next(batches(1))
    g_before = [p.asnumpy().copy() for p in netG.trainable_params()]
    loss_d, d_real, d_fake = step.train_d(real, netG(z))
    assert all(np.array_equal(a, p.asnumpy()) for a, p in zip(g_before, netG.trainable_params()))  # D's step only
    assert 0 < float(d_real.asnumpy()) < 1 and 0 < float(d_fake.asnumpy()) < 1 and float(loss_d.asnumpy()) > 0


def test_losses_are_finite_when_discriminator_saturates():
    """BCE-with-logits stays finite at logits of +-100, where sigmoid + log would give inf."""
    from src.cell import bce_with_logits
    logits = ms.Tensor(np.array([100.0, -100.0], np.float32))
    assert np.isfinite(bce_with_logits(logits, 1.0).asnumpy())
    assert abs(float(bce_with_logits(logits, 1.0).asnumpy()) - 50.0) < 1e-3
