"""The fast CPU layers (src/cpu/fast_layers.py) compute what the plain nn layers compute, with the same parameters,
in NCHW or channels-last as they are built."""
import numpy as np
import pytest
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

from src.discriminator import Discriminator
from src.cpu import fast_layers
from src.cpu.fast_layers import FullConv2d, LatentConvTranspose2d
from src.generator import Generator
from src.layers import CpuLayers
from src.weight_init import init_weights

ms.set_context(mode=ms.GRAPH_MODE)


class OutputAndGrads(nn.Cell):
    """(y, dL/dx, dL/d(each weight)...) for L = sum(y * r): every output element gets its own random cotangent."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.grad = ops.GradOperation(get_all=True, get_by_list=True)
        self.weights = ms.ParameterTuple(layer.trainable_params())

    def loss(self, x, r):
        return (self.layer(x) * r).sum()

    def construct(self, x, r):
        (dx, _), weight_grads = self.grad(self.loss, self.weights)(x, r)
        return (self.layer(x), dx) + weight_grads


class FromNCHW(nn.Cell):
    """A channels-last layer seen from NCHW tensors, as G and D see theirs: transposes its input and/or output."""

    def __init__(self, layer, inputs=True, outputs=True):
        super().__init__()
        self.layer, self.inputs, self.outputs = layer, inputs, outputs

    def construct(self, x):
        if self.inputs:
            x = ops.transpose(x, fast_layers.TO_CHANNELS_LAST)
        y = self.layer(x)
        if self.outputs:
            y = ops.transpose(y, fast_layers.TO_CHANNELS_FIRST)
        return y


def assert_close(actual, expected, name):
    """Within 1e-4 relative to the largest magnitude of the reference (elementwise rtol fails on values near 0)."""
    expected, actual = expected.asnumpy(), actual.asnumpy()
    scale = np.abs(expected).max()
    assert scale > 0, name
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * scale, err_msg=name)


def compare(fast, plain, x_shape, seed, view=None):
    """`fast` against `plain` on the same weight and NCHW input; `view`: what to call instead of `fast` (a FromNCHW
    of it for a channels-last layer)."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.02, plain.weight.shape).astype(np.float32)
    plain.weight.set_data(ms.Tensor(weight))
    fast.weight.set_data(ms.Tensor(weight))
    x = ms.Tensor(rng.standard_normal(x_shape).astype(np.float32))
    expected = OutputAndGrads(plain)(x, ms.Tensor(np.ones(1, np.float32)))  # only for the output shape
    r = ms.Tensor(rng.standard_normal(expected[0].shape).astype(np.float32))
    expected, actual = OutputAndGrads(plain)(x, r), OutputAndGrads(view or fast)(x, r)
    assert actual[0].shape == expected[0].shape
    for name, a, e in zip(("output", "input gradient", "weight gradient"), actual, expected):
        assert_close(a, e, name)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("nz, cout, batch", [(100, 512, 8), (16, 64, 3)])
def test_latent_transposed_conv_equals_conv2d_transpose(nz, cout, batch, channels_last):
    plain = nn.Conv2dTranspose(nz, cout, 4, 1, pad_mode="pad", padding=0, has_bias=False)
    fast = LatentConvTranspose2d(nz, cout, 4, channels_last)
    view = FromNCHW(fast, inputs=False) if channels_last else None  # z is (B, nz, 1, 1) either way
    compare(fast, plain, (batch, nz, 1, 1), seed=1, view=view)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("cin, cout, batch", [(512, 1, 8), (64, 1, 5), (32, 3, 2)])
def test_full_conv_equals_valid_conv2d(cin, cout, batch, channels_last):
    plain = nn.Conv2d(cin, cout, 4, 1, pad_mode="valid", has_bias=False)
    fast = FullConv2d(cin, cout, 4, channels_last)
    view = FromNCHW(fast, outputs=False) if channels_last else None  # the logits are (B, Cout, 1, 1) either way
    compare(fast, plain, (batch, cin, 4, 4), seed=2, view=view)


@pytest.mark.parametrize("kernels_built", [True, False], ids=["kernels", "no_kernels"])
@pytest.mark.parametrize("image_size", [32, 64])
def test_fast_networks_have_the_plain_networks_parameters_and_outputs(image_size, kernels_built, monkeypatch,
                                                                     request):
    """Same parameter names and shapes (checkpoints load either way), same initialisation, same images, logits and
    D features; channels-last inside when the kernels are built, plain NCHW layers when they are not. The "kernels"
    case needs them (tests/conftest.py cpu_kernels: skipped without a compiler, failed in CI): without them it
    would run the "no_kernels" case again and prove nothing about the kernels."""
    if kernels_built:
        request.getfixturevalue("cpu_kernels")
    else:
        from src.cpu import kernels
        monkeypatch.setitem(kernels.BUILD, "path", None)
    plain_g, fast_g = Generator(image_size, 100, 16, 3), Generator(image_size, 100, 16, 3, layers=CpuLayers())
    plain_d, fast_d = Discriminator(image_size, 16, 3), Discriminator(image_size, 16, 3, layers=CpuLayers())
    assert fast_g.channels_last == fast_d.channels_last == kernels_built
    for plain, fast in ((plain_g, fast_g), (plain_d, fast_d)):
        assert [(n, p.shape) for n, p in plain.parameters_and_names()] == \
               [(n, p.shape) for n, p in fast.parameters_and_names()]
        init_weights(plain, np.random.default_rng(5))
        init_weights(fast, np.random.default_rng(5))
        plain.set_train(False)
        fast.set_train(False)
    z = ms.Tensor(np.random.default_rng(0).standard_normal((4, 100, 1, 1)).astype(np.float32))
    images = plain_g(z)
    assert_close(fast_g(z), images, "images")
    assert_close(fast_d(images), plain_d(images), "logits")
    for stage, (fast, plain) in enumerate(zip(fast_d.features(images), plain_d.features(images))):
        assert_close(fast, plain, f"D's stage {stage} features (NCHW either way)")


def test_a_channels_last_network_refuses_a_layer_without_its_kernel():
    """One plain (NCHW) layer among channels-last ones would compute garbage silently: building says so instead."""
    net = nn.SequentialCell([fast_layers.DnnlLeakyReLU(0.1)])  # no kernel for slope 0.1: the plain layer
    with pytest.raises(RuntimeError, match="runs channels-last but its layer 0 \\(DnnlLeakyReLU\\) has no CPU kernel"):
        fast_layers.check_layout(net, True)
    fast_layers.check_layout(net, False)

