"""Check a freshly built kernel library before training trusts it: python self_check.py LIBRARY.so

Run by kernels/__init__.py in a child process (numpy and ctypes only, no MindSpore), so that a library that does not
fit the oneDNN it loaded can only end this process, never training. It checks what dnnl_api.h restates from oneDNN's
headers against the loaded libdnnl (major version, CPU runtime, the enum values by their names), then runs each
kind of kernel once on small inputs against numpy: a convolution on oneDNN's direct route and one on the
matrix-product route (forward, backward-data, backward-weights), LeakyReLU forward and backward, and BatchNorm fused
with LeakyReLU forward and backward. Prints "ok", or one line saying what failed, and exits 0 or 1.
"""
import ctypes
import sys

import numpy as np

ONEDNN_MAJOR = 3  # the major version dnnl_api.h restates
ONEDNN_THREADPOOL_RUNTIME = 8  # dnnl_version()->cpu_runtime of a THREADPOOL build (the one the threadpool needs)
# dnnl_api.h's enum values, as the loaded oneDNN names them: (function, value, name).
ENUMS = (("DnnlConvTagName", 1, b"any"), ("DnnlConvTagName", 2, b"a"), ("DnnlConvTagName", 5, b"abcd"),
         ("DnnlConvTagName", 22, b"acdb"), ("DnnlConvPropName", 64, b"forward_training"),
         ("DnnlAlgName", 0x100, b"eltwise_relu_use_dst_for_bwd"))


def abi_problem(so):
    """None, or what in dnnl_api.h does not match the loaded oneDNN."""
    info = (ctypes.c_int * 4)()
    so.DnnlConvInfo(info)
    if info[0] != ONEDNN_MAJOR or info[3] != ONEDNN_THREADPOOL_RUNTIME:
        return (f"MindSpore's oneDNN is {info[0]}.{info[1]}.{info[2]} with CPU runtime {info[3]}, not "
                f"{ONEDNN_MAJOR}.x with the THREADPOOL runtime ({ONEDNN_THREADPOOL_RUNTIME})")
    for function, value, name in ENUMS:
        getattr(so, function).restype = ctypes.c_char_p
        found = getattr(so, function)(value)
        if found != name:
            return f"oneDNN {info[0]}.{info[1]}.{info[2]} names value {value:#x} {found!r}, dnnl_api.h assumes {name!r}"
    return None


def call(so, entry, *arrays):
    """Run one ops.Custom "aot" entry point as MindSpore would: inputs, then the output (last array) filled in."""
    arrays = [np.ascontiguousarray(a, np.float32) for a in arrays]
    n = len(arrays)
    params = (ctypes.c_void_p * n)(*[a.ctypes.data for a in arrays])
    ndims = (ctypes.c_int * n)(*[a.ndim for a in arrays])
    shape_arrays = [(ctypes.c_int64 * a.ndim)(*a.shape) for a in arrays]
    shapes = (ctypes.POINTER(ctypes.c_int64) * n)(*[ctypes.cast(s, ctypes.POINTER(ctypes.c_int64))
                                                    for s in shape_arrays])
    dtypes = (ctypes.c_char_p * n)(*[b"float32"] * n)
    status = getattr(so, entry)(n, params, ndims, shapes, dtypes, None, None)
    if status != 0:
        raise RuntimeError(f"{entry} returned {status}")
    return arrays[-1]


def conv_reference(x, w, stride, pad):
    """Cross-correlation as nn.Conv2d computes it (NCHW, OIHW), by patches."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    oh = (x.shape[2] - k) // stride + 1
    ow = (x.shape[3] - k) // stride + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow), np.float64)
    for i in range(k):
        for j in range(k):
            patch = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return y


def nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def check_convolution(so, x_shape, w_shape, stride, pad, rng):
    """The kernels take and give activations channels-last (NHWC); the reference works in NCHW."""
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    y = conv_reference(x, w, stride, pad)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    suffix = f"_s{stride}p{pad}"
    got = nchw(call(so, "ConvFwd" + suffix, nhwc(x), w, np.zeros(nhwc(y).shape)))
    # The input gradient is the transposed convolution of dy; the weight gradient sums x-patches times dy.
    dx = nchw(call(so, "ConvBwdData" + suffix, nhwc(dy), w, np.zeros(nhwc(x).shape)))
    dw = call(so, "ConvBwdWeights" + suffix, nhwc(x), nhwc(dy), np.zeros(w.shape))
    eps = 1e-3
    probe = rng.standard_normal(x.shape).astype(np.float32)
    numeric_dx = (conv_reference(x + eps * probe, w, stride, pad) - conv_reference(x, w, stride, pad)) / eps
    numeric_dw = (conv_reference(x, w + eps * w, stride, pad) - y) / eps
    for name, value, expected in (("forward", got, y), ("backward-data", (dx * probe).sum(), (numeric_dx * dy).sum()),
                                  ("backward-weights", (dw * w).sum(), (numeric_dw * dy).sum())):
        scale = max(1.0, float(np.abs(expected).max()))
        if not np.allclose(value, expected, rtol=1e-3, atol=1e-3 * scale):
            raise RuntimeError(f"{name} convolution {x_shape} x {w_shape} differs from numpy")


def check_batch_norm_act(so, rng):
    """BatchNorm in training mode fused with LeakyReLU(0.2), forward and backward, against numpy, on a channels-last
    (NHWC) tensor. The outputs are filled in place: call() passes float32 arrays through as they are."""
    x = (rng.standard_normal((3, 5, 5, 4)) * 2 + 1).astype(np.float32)
    gamma, beta = rng.normal(1, 0.2, 4).astype(np.float32), rng.normal(0, 0.2, 4).astype(np.float32)
    y, mean, var = np.zeros(x.shape, np.float32), np.zeros(4, np.float32), np.zeros(4, np.float32)
    call(so, "BatchNormActFwd_a20", x, gamma, beta, y, mean, var)
    axes, c = (0, 1, 2), (1, 1, 1, 4)
    rstd = 1 / np.sqrt(x.var(axes) + 1e-5)
    xhat = (x - x.mean(axes).reshape(c)) * rstd.reshape(c)
    z = gamma.reshape(c) * xhat + beta.reshape(c)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dz = np.where(z > 0, dy, 0.2 * dy)
    dx, dgamma, dbeta = np.zeros(x.shape, np.float32), np.zeros(4, np.float32), np.zeros(4, np.float32)
    call(so, "BatchNormActBwd_a20", x, y, dy, gamma, mean, var, dx, dgamma, dbeta)
    expected_dx = (gamma * rstd).reshape(c) * (dz - dz.mean(axes).reshape(c)
                                               - xhat * (dz * xhat).mean(axes).reshape(c))
    for name, value, expected in (("output", y, np.where(z > 0, z, 0.2 * z)), ("mean", mean, x.mean(axes)),
                                  ("variance", var, x.var(axes)), ("input gradient", dx, expected_dx),
                                  ("gamma gradient", dgamma, (dz * xhat).sum(axes)),
                                  ("beta gradient", dbeta, dz.sum(axes))):
        if not np.allclose(value, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max()))):
            raise RuntimeError(f"BatchNorm + LeakyReLU {name} differs from numpy")


def main(path):
    try:
        so = ctypes.CDLL(path)
        problem = abi_problem(so)
        if problem:
            print(problem)
            return 1
        rng = np.random.default_rng(0)
        check_convolution(so, (2, 3, 16, 16), (5, 3, 4, 4), 2, 1, rng)  # 8x8 output: oneDNN's direct route
        check_convolution(so, (2, 6, 4, 4), (1, 6, 4, 4), 1, 0, rng)  # 1x1 output: the matrix product (AVX-512)
        x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
        y = call(so, "LeakyReluFwd_a20", x, np.zeros(x.shape))
        dy = rng.standard_normal(x.shape).astype(np.float32)
        dx = call(so, "LeakyReluBwd_a20", y, dy, np.zeros(x.shape))  # (dst, diff_dst) -> diff_src
        if not (np.allclose(y, np.where(x > 0, x, 0.2 * x), atol=1e-6)
                and np.allclose(dx, np.where(x > 0, dy, 0.2 * dy), atol=1e-6)):
            raise RuntimeError("LeakyReLU differs from numpy")
        check_batch_norm_act(so, rng)
    except (OSError, AttributeError, RuntimeError) as error:
        print(f"{type(error).__name__}: {error}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
