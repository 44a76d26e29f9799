"""Faster CPU versions of the DCGAN convolutions: same parameters, same results, cheaper kernels.

Each class subclasses the plain layer it replaces (nn.Conv2d / nn.Conv2dTranspose), so it holds the same `weight`
Parameter (shape and name): checkpoints load either way, and src/init.py initialises it like the plain layer. Only
`construct` differs. tests/test_fast_layers.py checks outputs and gradients against the plain layers.

Why (MindSpore 2.10 CPU, oneDNN capped at AVX2 by src/device.py; measured with ONEDNN_VERBOSE=1, see
bench/RESULTS.md): MindSpore hands oneDNN plain NCHW tensors, and oneDNN runs a convolution whose kernel covers the
whole input (D's last 512 -> 1 layer, 4x4 valid on 4x4) and the 1x1 -> 4x4 first layer of G through slow generic
code paths (`ref:any` for D's head, forward and both gradients). Both are plain matrix products and run as MatMul.
"""
import mindspore.nn as nn
import mindspore.ops as ops


class LatentConvTranspose2d(nn.Conv2dTranspose):
    """G's first layer: a transposed convolution of a 1x1 input (stride 1, no padding) is one matrix product.

    y[b, o, i, j] = sum_c z[b, c] * w[c, o, i, j]: (B, Cin) @ (Cin, Cout*kh*kw), reshaped to (B, Cout, kh, kw).
    """

    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__(in_channels, out_channels, kernel_size, 1, pad_mode="pad", padding=0, has_bias=False)
        self.matmul = ops.MatMul()

    def construct(self, x):
        n = x.shape[0]
        kh, kw = self.kernel_size
        w = ops.reshape(self.weight, (self.in_channels, self.out_channels * kh * kw))
        y = self.matmul(ops.reshape(x, (n, self.in_channels)), w)
        return ops.reshape(y, (n, self.out_channels, kh, kw))


class FullConv2d(nn.Conv2d):
    """A valid convolution whose kernel covers the whole input (D's last layer, 4x4 on 4x4): one matrix product.

    y[b, o] = sum_{c,i,j} x[b, c, i, j] * w[o, c, i, j]: (B, Cin*kh*kw) @ (Cout, Cin*kh*kw)^T -> (B, Cout, 1, 1).
    The input must be exactly kernel_size (checked when the graph is built).
    """

    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__(in_channels, out_channels, kernel_size, 1, pad_mode="valid", has_bias=False)
        self.matmul = ops.MatMul(transpose_b=True)

    def construct(self, x):
        n, c, h, w = x.shape
        if (h, w) != tuple(self.kernel_size):
            raise ValueError(f"FullConv2d expects {self.kernel_size} inputs, got {(h, w)}")
        k = self.in_channels * h * w
        y = self.matmul(ops.reshape(x, (n, k)), ops.reshape(self.weight, (self.out_channels, k)))
        return ops.reshape(y, (n, self.out_channels, 1, 1))

