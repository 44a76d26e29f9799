"""BatchNorm fused with its activation (src/cpu/fast_layers.py DnnlBatchNormAct, src/cpu/kernels/batch_norm_act.cc)
computes what nn.BatchNorm2d followed by nn.ReLU / nn.LeakyReLU(0.2) computes, in training (batch statistics:
output, gradients of the input, gamma and beta, the moving statistics) and in inference (moving statistics), and
G and D built with it train exactly like the plain networks."""
import numpy as np
import pytest
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

from src.cpu import kernels
from src.cpu.fast_layers import DnnlBatchNormAct
from src.discriminator import Discriminator
from src.generator import Generator
from src.layers import CpuLayers
from src.weight_init import init_weights
from tests.test_fast_layers import FromNCHW, OutputAndGrads, assert_close  # (y, dL/dx, dL/dgamma, dL/dbeta) here

ms.set_context(mode=ms.GRAPH_MODE)

needs_kernels = pytest.mark.usefixtures("cpu_kernels")  # tests/conftest.py: skipped without a compiler, not in CI


def plain_pair(channels, alpha):
    return nn.SequentialCell([nn.BatchNorm2d(channels, momentum=0.9, eps=1e-5),
                              nn.ReLU() if alpha == 0 else nn.LeakyReLU(alpha)])


@needs_kernels
@pytest.mark.parametrize("alpha", [0.0, 0.2], ids=["relu", "leaky_relu"])
@pytest.mark.parametrize("shape", [(8, 16, 4, 4), (3, 5, 7, 9), (16, 32, 8, 8)])
def test_training_mode_equals_batch_norm_then_activation(alpha, shape):
    rng = np.random.default_rng(11)
    channels = shape[1]
    fast, plain = DnnlBatchNormAct(channels, alpha), plain_pair(channels, alpha)
    assert fast.dnnl
    gamma, beta = rng.normal(1, 0.2, channels), rng.normal(0, 0.2, channels)
    for bn in (fast, plain[0]):
        bn.gamma.set_data(ms.Tensor(gamma.astype(np.float32)))
        bn.beta.set_data(ms.Tensor(beta.astype(np.float32)))
    x = ms.Tensor((rng.standard_normal(shape) * 1.5 + 0.3).astype(np.float32))
    r = ms.Tensor(rng.standard_normal(shape).astype(np.float32))
    fast.set_train(True)
    plain.set_train(True)
    actual, expected = OutputAndGrads(FromNCHW(fast))(x, r), OutputAndGrads(plain)(x, r)  # fast: channels-last
    for name, a, e in zip(("output", "input gradient", "gamma gradient", "beta gradient"), actual, expected):
        assert_close(a, e, name)
    # Each network ran twice (loss and output): the moving statistics took the same two updates.
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(getattr(fast, name).asnumpy(), getattr(plain[0], name).asnumpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    fast.set_train(False)
    plain.set_train(False)
    assert_close(FromNCHW(fast)(x), plain(x), "inference output")


def test_without_the_library_it_is_the_plain_pair(monkeypatch):
    monkeypatch.setitem(kernels.BUILD, "path", None)
    fast, plain = DnnlBatchNormAct(4, 0.2), plain_pair(4, 0.2)
    assert not fast.dnnl
    x = ms.Tensor(np.random.default_rng(2).standard_normal((6, 4, 3, 3)).astype(np.float32))
    fast.set_train(True)
    plain.set_train(True)
    assert_close(fast(x), plain(x), "output")


class TrainG(nn.Cell):
    """One Adam step of G on L = sum(G(z) * r); returns L."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.optimizer = nn.Adam(net.trainable_params(), learning_rate=1e-2)
        self.grad = ms.value_and_grad(self.loss, None, self.optimizer.parameters)

    def loss(self, z, r):
        return (self.net(z) * r).sum()

    def construct(self, z, r):
        loss, grads = self.grad(z, r)
        return ops.depend(loss, self.optimizer(grads))


@needs_kernels
@pytest.mark.parametrize("net", ["G", "D"])
def test_fast_networks_train_like_the_plain_ones(net):
    """Three optimizer steps in training mode: same outputs, weights and moving statistics."""
    rng = np.random.default_rng(3)
    if net == "G":
        plain, fast = Generator(32, 16, 8, 1), Generator(32, 16, 8, 1, layers=CpuLayers())
        x = ms.Tensor(rng.standard_normal((6, 16, 1, 1)).astype(np.float32))
        out_shape = (6, 1, 32, 32)
    else:
        plain, fast = Discriminator(32, 8, 3), Discriminator(32, 8, 3, layers=CpuLayers())
        x = ms.Tensor(rng.uniform(-1, 1, (6, 3, 32, 32)).astype(np.float32))
        out_shape = (6,)
    init_weights(plain, np.random.default_rng(5))
    init_weights(fast, np.random.default_rng(5))
    r = ms.Tensor(rng.standard_normal(out_shape).astype(np.float32))
    steps = [TrainG(plain), TrainG(fast)]
    for s in steps:
        s.set_train(True)
    for _ in range(3):
        losses = [float(s(x, r).asnumpy()) for s in steps]
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    for (name, p), (_, q) in zip(plain.parameters_and_names(), fast.parameters_and_names()):
        assert_close(ms.Tensor(q.asnumpy()), ms.Tensor(p.asnumpy()), name)
