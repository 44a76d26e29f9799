"""The oneDNN custom ops (src/cpu/kernels, src/cpu/fast_layers.py Dnnl*) compute what the plain layers compute: the
convolutions match nn.Conv2d / nn.Conv2dTranspose (outputs, input and weight gradients within 1e-4 of the largest
value), the activations nn.LeakyReLU / nn.ReLU (outputs and input gradients)."""
import ctypes
import os
import subprocess

import numpy as np
import pytest
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

from src.cpu import kernels
from src.cpu.kernels import self_check
from src.cpu.fast_layers import DnnlConv2d, DnnlConv2dTranspose, DnnlLeakyReLU, DnnlReLU
from tests.cli import run_python, user_env
from tests.test_fast_layers import FromNCHW, compare

ms.set_context(mode=ms.GRAPH_MODE)

needs_kernels = pytest.mark.usefixtures("cpu_kernels")  # tests/conftest.py: skipped without a compiler, not in CI


@needs_kernels
def test_kernels_build_against_mindspores_onednn():
    path = kernels.library()
    assert path is not None and os.path.exists(path + kernels.CHECKED)
    major, _, _, runtime = kernels.dnnl_version()
    assert (major, runtime) == (self_check.ONEDNN_MAJOR, self_check.ONEDNN_THREADPOOL_RUNTIME)
    # What src/cpu/kernels/dnnl_api.h restates, against the loaded oneDNN, and each kernel against numpy.
    assert self_check.abi_problem(ctypes.CDLL(path)) is None
    assert self_check.main(path) == 0


@needs_kernels
def test_the_load_check_names_a_constant_the_loaded_onednn_disagrees_with(monkeypatch):
    monkeypatch.setattr(self_check, "ENUMS", self_check.ENUMS + (("DnnlConvTagName", 5, b"nchw"),))
    problem = self_check.abi_problem(ctypes.CDLL(kernels.library()))
    assert "value 0x5" in problem and "b'abcd'" in problem and "b'nchw'" in problem


@needs_kernels
def test_a_library_that_fails_its_check_is_not_used(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(kernels, "BUILD", {})
    monkeypatch.setattr(kernels, "cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(kernels, "_self_check", lambda target: "LeakyReLU differs from numpy")
    with caplog.at_level("WARNING", logger=kernels.__name__):
        assert kernels.library(announce=lambda line: None) is None
    assert len(caplog.records) == 1 and "failed their check: LeakyReLU differs" in caplog.records[0].getMessage()
    assert not [n for d in os.listdir(tmp_path) for n in os.listdir(tmp_path / d) if n.endswith(kernels.CHECKED)]


def test_the_compiler_is_cxx_first_then_gpp_then_clang(tmp_path, monkeypatch):
    fake = tmp_path / "my-c++"
    fake.write_text("#!/bin/sh\necho 'my c++ 1.0'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    assert kernels.compiler() == (str(fake), "my c++ 1.0\n")
    monkeypatch.setenv("CXX", str(tmp_path / "missing"))
    found = {name: f"/usr/bin/{name}" for name in ("clang++",)}
    monkeypatch.setattr(kernels.shutil, "which", lambda name: found.get(name))
    monkeypatch.setattr(kernels.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, "clang 16"))
    assert kernels.compiler() == ("/usr/bin/clang++", "clang 16")
    found.clear()
    assert kernels.compiler() == (None, f"no C++ compiler on PATH (tried {tmp_path / 'missing'}, g++, clang++)")


@needs_kernels
@pytest.mark.parametrize("setting, expected", [(None, len(os.sched_getaffinity(0))), ("1", 1), ("0", None)])
def test_kernel_threads_follow_dcgan_cpu_threads(setting, expected):
    """The msrun launcher sets DCGAN_CPU_THREADS to share a host's cores among its workers; unset (or not a
    positive count) the kernels use every core the process may run on."""
    script = f"import ctypes; print(ctypes.CDLL({kernels.library()!r}).DnnlKernelThreads())"
    done = run_python(script, env=user_env(DCGAN_CPU_THREADS=setting), timeout=120)
    assert int(done.stdout) == (expected or len(os.sched_getaffinity(0))), done.stderr


# (in, out, stride, padding, input shape): the DCGAN layers at small widths, odd sizes, 3-channel ends. Under
# conftest's AVX2 cap they all take oneDNN's direct route (and the matrix product for backward-data into 1-4
# channels); with AVX-512, outputs of at most 16 pixels (4x4, 3x4, 3x3) take the matrix product of conv_gemm.cc:
# test_equal_at_onednns_full_instruction_set covers that route.
CASES = [
    (3, 16, 2, 1, (4, 3, 32, 32)),
    (1, 8, 2, 1, (3, 1, 16, 16)),  # one channel: the weight gradient is a matrix product under the AVX2 cap
    (16, 32, 2, 1, (3, 16, 16, 16)),
    (32, 64, 2, 1, (3, 32, 8, 8)),
    (32, 48, 2, 1, (2, 32, 7, 9)),
    (8, 5, 1, 0, (2, 8, 6, 6)),
]


@needs_kernels
@pytest.mark.parametrize("cin, cout, stride, padding, shape", CASES)
def test_dnnl_conv2d_equals_conv2d(cin, cout, stride, padding, shape):
    fast = DnnlConv2d(cin, cout, 4, stride, padding)
    assert fast.dnnl
    plain = nn.Conv2d(cin, cout, 4, stride, pad_mode="pad", padding=padding, has_bias=False)
    compare(fast, plain, shape, seed=3, view=FromNCHW(fast))


@needs_kernels
@pytest.mark.parametrize("cin, cout, stride, padding, shape", [
    (16, 3, 2, 1, (4, 16, 16, 16)),
    (32, 16, 2, 1, (3, 32, 8, 8)),
    (64, 32, 2, 1, (3, 64, 4, 4)),
    (48, 32, 2, 1, (2, 48, 5, 7)),
    (8, 5, 1, 0, (2, 8, 3, 3)),
])
def test_dnnl_conv2d_transpose_equals_conv2d_transpose(cin, cout, stride, padding, shape):
    fast = DnnlConv2dTranspose(cin, cout, 4, stride, padding)
    assert fast.dnnl
    plain = nn.Conv2dTranspose(cin, cout, 4, stride, pad_mode="pad", padding=padding, has_bias=False)
    compare(fast, plain, shape, seed=4, view=FromNCHW(fast))


class ActivationAndGrad(nn.Cell):
    """(y, dL/dx) for L = sum(y * r)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.grad = ops.GradOperation()

    def loss(self, x, r):
        return (self.layer(x) * r).sum()

    def construct(self, x, r):
        return self.layer(x), self.grad(self.loss)(x, r)


@needs_kernels
@pytest.mark.parametrize("fast, plain", [(DnnlLeakyReLU(0.2), nn.LeakyReLU(0.2)), (DnnlReLU(), nn.ReLU())],
                         ids=["leaky_relu", "relu"])
@pytest.mark.parametrize("shape", [(4, 16, 8, 8), (3, 5, 7), (1,)])
def test_dnnl_activations_equal_the_plain_ones(fast, plain, shape):
    assert fast.dnnl
    rng = np.random.default_rng(9)
    x, r = (ms.Tensor(rng.standard_normal(shape).astype(np.float32)) for _ in range(2))
    for name, a, e in zip(("output", "input gradient"), ActivationAndGrad(fast)(x, r), ActivationAndGrad(plain)(x, r)):
        np.testing.assert_allclose(a.asnumpy(), e.asnumpy(), rtol=1e-6, atol=0, err_msg=name)


def test_other_slopes_keep_the_plain_leaky_relu():
    layer = DnnlLeakyReLU(0.1)
    assert not layer.dnnl
    x = ms.Tensor(np.array([-2.0, 3.0], np.float32))
    np.testing.assert_allclose(layer(x).asnumpy(), [-0.2, 3.0], rtol=1e-6)


def test_without_the_library_the_layers_are_the_plain_ones(monkeypatch):
    monkeypatch.setitem(kernels.BUILD, "path", None)
    conv, transposed = DnnlConv2d(16, 32, 4, 2, 1), DnnlConv2dTranspose(32, 16, 4, 2, 1)
    assert not conv.dnnl and not transposed.dnnl and not DnnlLeakyReLU(0.2).dnnl and not DnnlReLU().dnnl
    compare(conv, nn.Conv2d(16, 32, 4, 2, pad_mode="pad", padding=1, has_bias=False), (2, 16, 8, 8), seed=5)
    compare(transposed, nn.Conv2dTranspose(32, 16, 4, 2, pad_mode="pad", padding=1, has_bias=False),
            (2, 32, 4, 4), seed=6)


def test_a_failed_build_falls_back_with_one_log_line(monkeypatch, caplog):
    monkeypatch.setattr(kernels, "BUILD", {})
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(kernels.shutil, "which", lambda name: None)
    with caplog.at_level("WARNING", logger=kernels.__name__):
        assert kernels.library() is None
        assert kernels.library() is None
    assert [r.getMessage() for r in caplog.records] == ["fast CPU convolutions unavailable (no C++ compiler on PATH "
                                                        "(tried g++, clang++)): using MindSpore's convolutions"]


@needs_kernels
def test_equal_at_onednns_full_instruction_set():
    """The tests above run under conftest's AVX2 cap; training with the custom ops runs without it (AVX-512 kernels
    on this kind of CPU, and there the matrix-product route for small outputs), which can only be chosen before
    MindSpore starts: check that in a fresh process."""
    script = (
        "import mindspore as ms, mindspore.nn as nn\n"
        "ms.set_context(mode=ms.GRAPH_MODE)\n"
        "from tests.test_fast_layers import FromNCHW, compare\n"
        "from src.cpu.fast_layers import DnnlConv2d, DnnlConv2dTranspose\n"
        "from tests.test_cpu_kernels import CASES\n"
        "a, b = DnnlConv2d(32, 64, 4, 2, 1), DnnlConv2dTranspose(64, 32, 4, 2, 1)\n"
        "assert a.dnnl and b.dnnl\n"
        "for shape, seed in (((8, 32, 16, 16), 7), ((8, 32, 8, 8), 9)):  # direct, then the matrix product\n"
        "    compare(a, nn.Conv2d(32, 64, 4, 2, pad_mode='pad', padding=1, has_bias=False), shape, seed, FromNCHW(a))\n"
        "for shape, seed in (((8, 64, 8, 8), 8), ((8, 64, 4, 4), 10)):\n"
        "    compare(b, nn.Conv2dTranspose(64, 32, 4, 2, pad_mode='pad', padding=1, has_bias=False), shape, seed,\n"
        "            FromNCHW(b))\n"
        "for cin, cout, stride, pad, shape in CASES[4:]:  # 3x4 and 3x3 outputs: the matrix product with AVX-512\n"
        "    c = DnnlConv2d(cin, cout, 4, stride, pad)\n"
        "    compare(c, nn.Conv2d(cin, cout, 4, stride, pad_mode='pad', padding=pad, has_bias=False), shape, 11,\n"
        "            FromNCHW(c))\n"
        "print('equal')\n")
    done = run_python(script, env=user_env(ONEDNN_MAX_CPU_ISA="ALL"))
    assert done.returncode == 0 and done.stdout.strip().endswith("equal"), done.stderr[-2000:]
