"""Faster CPU versions of the DCGAN convolutions and activations: same parameters, same results, cheaper kernels.

Each class subclasses the plain layer it replaces (nn.Conv2d / nn.Conv2dTranspose / nn.LeakyReLU / nn.ReLU), so a
convolution holds the same `weight` Parameter (shape and name): checkpoints load either way, and src/weight_init.py
initialises it like the plain layer. Only `construct` differs. tests/test_fast_layers.py and tests/test_cpu_kernels.py
check outputs and gradients against the plain layers.

Why (MindSpore 2.10 CPU, measured with ONEDNN_VERBOSE=1 on 2-core AMD EPYC and Intel Xeon VMs with AVX-512, see
bench/RESULTS.md): MindSpore hands oneDNN plain NCHW tensors, and oneDNN runs a convolution whose kernel covers the
whole input (D's last 512 -> 1 layer, 4x4 valid on 4x4) and the 1x1 -> 4x4 first layer of G through slow generic
code paths (`ref:any` for D's head, forward and both gradients). Both are plain matrix products and run as MatMul.
All other convolutions of G and D run as oneDNN custom ops (DnnlConv2d, DnnlConv2dTranspose below,
src/cpu/kernels): those are what let oneDNN run at its full instruction set (AVX-512). LeakyReLU and ReLU
run on oneDNN's eltwise kernel (DnnlLeakyReLU, DnnlReLU): MindSpore's LeakyReLU gradient is a chain of slow kernels.
Every BatchNorm of G and D and the activation after it run as one kernel per pass in training (DnnlBatchNormAct, a
BatchNorm2d with the same four Parameters): on the narrow nets MindSpore's BatchNorm pair cost ~20% of a step.

Channels last: when the kernels are available, the kernel-backed layers (DnnlConv2d, DnnlConv2dTranspose,
DnnlBatchNormAct) take and give channels-last (N, H, W, C) tensors, and so do LatentConvTranspose2d and FullConv2d
when built with channels_last=True. G and D built from these layers (src/layers.py's CpuLayers) keep their
activations in that layout from the first layer to the last, and NCHW only at their edges. oneDNN's kernels
take channels-last tensors as they are, where NCHW needed a reorder into a blocked layout and back around every
convolution (~8% of a narrow step). Weights keep their plain layouts and names. Without the kernels every layer is
the plain NCHW one.
"""
import mindspore.nn as nn
from mindspore.common import dtype as mstype
import mindspore.ops as ops

TO_CHANNELS_LAST, TO_CHANNELS_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)  # transpose permutations NCHW <-> NHWC


def kernels_available():
    """Whether the project's CPU kernels built and passed their check: then G and D built from these layers run
    channels-last (see the module docstring)."""
    from src.cpu import kernels
    return kernels.library() is not None


def check_layout(net, channels_last):
    """A channels-last net must have every kernel-backed layer on its kernels: one plain (NCHW) layer among them
    would read the channels-last tensors wrongly. Raises RuntimeError naming it."""
    if channels_last:
        for name, cell in net.cells_and_names():
            if getattr(cell, "dnnl", True) is False:
                raise RuntimeError(f"{type(net).__name__} runs channels-last but its layer {name} "
                                   f"({type(cell).__name__}) has no CPU kernel for its settings")


class LatentConvTranspose2d(nn.Conv2dTranspose):
    """G's first layer: a transposed convolution of a 1x1 input (stride 1, no padding) is one matrix product.

    y[b, o, i, j] = sum_c z[b, c] * w[c, o, i, j]: (B, Cin) @ (Cin, Cout*kh*kw), reshaped to (B, Cout, kh, kw);
    channels_last: transposed to (B, kh, kw, Cout).
    """

    def __init__(self, in_channels, out_channels, kernel_size, channels_last=False):
        super().__init__(in_channels, out_channels, kernel_size, 1, pad_mode="pad", padding=0, has_bias=False)
        self.matmul = ops.MatMul()
        self.channels_last = channels_last

    def construct(self, x):
        n = x.shape[0]
        kh, kw = self.kernel_size
        w = ops.reshape(self.weight, (self.in_channels, self.out_channels * kh * kw))
        y = ops.reshape(self.matmul(ops.reshape(x, (n, self.in_channels)), w), (n, self.out_channels, kh, kw))
        if self.channels_last:
            return ops.transpose(y, TO_CHANNELS_LAST)
        return y


class FullConv2d(nn.Conv2d):
    """A valid convolution whose kernel covers the whole input (D's last layer, 4x4 on 4x4): one matrix product.

    y[b, o] = sum_{c,i,j} x[b, c, i, j] * w[o, c, i, j]: (B, Cin*kh*kw) @ (Cout, Cin*kh*kw)^T -> (B, Cout, 1, 1).
    The input must be exactly kernel_size (checked when the graph is built). channels_last: x is (B, kh, kw, Cin),
    and the (small) weight is transposed to match it.
    """

    def __init__(self, in_channels, out_channels, kernel_size, channels_last=False):
        super().__init__(in_channels, out_channels, kernel_size, 1, pad_mode="valid", has_bias=False)
        self.matmul = ops.MatMul(transpose_b=True)
        self.channels_last = channels_last

    def construct(self, x):
        n = x.shape[0]
        h, w = (x.shape[1], x.shape[2]) if self.channels_last else (x.shape[2], x.shape[3])
        if (h, w) != tuple(self.kernel_size):
            raise ValueError(f"FullConv2d expects {self.kernel_size} inputs, got {(h, w)}")
        k = self.in_channels * h * w
        weight = ops.transpose(self.weight, TO_CHANNELS_LAST) if self.channels_last else self.weight
        y = self.matmul(ops.reshape(x, (n, k)), ops.reshape(weight, (self.out_channels, k)))
        return ops.reshape(y, (n, self.out_channels, 1, 1))



# ----------------------------------------------------------------------------------------------------------------
# Convolutions on oneDNN's own kernels (src/cpu/kernels/dnnl_conv.cc, an ops.Custom "aot" kernel), channels last.
#
# MindSpore's CPU convolutions give oneDNN plain NCHW tensors, which at oneDNN's default instruction set run a
# reference kernel unless oneDNN is capped at AVX2, which halves an AVX-512 CPU's peak. The kernels below run
# oneDNN's NHWC kernels (jit:avx512_core / brgconv) at the full instruction set; with every convolution of G and D
# on them, src/cpu/device.py sets no cap. Three kernels cover Conv2d and Conv2dTranspose forward and backward:
# ConvFwd(x, w) -> y, ConvBwdData(dy, w) -> dx, ConvBwdWeights(x, dy) -> dw, with x, y, dx, dy NHWC and w in
# Conv2d's OIHW layout (a Conv2dTranspose weight (in, out, k, k) is the OIHW weight of the convolution it transposes).

def _dnnl_kernels(stride, padding, kernel_size, bf16=False):
    """(forward, backward-data, backward-weights) Custom ops for one stride/padding, or None without the library.
    bf16: every pass computes in bf16 (fp32 tensors in and out, fp32 accumulation), on oneDNN's bf16 kernels or as a
    bf16 matrix product, whichever is faster for the pass and layer (bf16_route in kernels/conv_gemm.cc)."""
    from src.cpu import kernels
    library = kernels.library()
    if library is None or (stride, padding) not in DNNL_STRIDE_PADDING:
        return None
    suffix = f"_s{stride}p{padding}" + ("_bf16" if bf16 else "")

    def conv_out(x, w):  # x, y: (N, H, W, C); w: (O, C, k, k)
        return (x[0], (x[1] + 2 * padding - w[2]) // stride + 1, (x[2] + 2 * padding - w[3]) // stride + 1, w[0])

    def conv_in(dy, w):  # the input size a transposed convolution (or backward-data) produces
        return (dy[0], (dy[1] - 1) * stride - 2 * padding + w[2], (dy[2] - 1) * stride - 2 * padding + w[3], w[1])

    def conv_weight(x, dy):
        return (dy[3], x[3], kernel_size, kernel_size)

    def custom(name, shape):
        kernel = f"{library}:{name}{suffix}"
        return ops.Custom(kernel, out_shape=shape, out_dtype=mstype.float32, func_type="aot")

    return custom("ConvFwd", conv_out), custom("ConvBwdData", conv_in), custom("ConvBwdWeights", conv_weight)


DNNL_STRIDE_PADDING = ((2, 1), (1, 0))  # the entry points dnnl_conv.cc exports


def _dnnl_applicable(layer):
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    padding = layer.padding if isinstance(layer.padding, int) else None
    if isinstance(layer.padding, tuple) and len(set(layer.padding)) == 1:
        padding = layer.padding[0]
    return (kh == kw and sh == sw and (sh, padding) in DNNL_STRIDE_PADDING and layer.pad_mode == "pad"
            and tuple(layer.dilation) == (1, 1) and layer.group == 1 and not layer.has_bias)


def _kernels_for(layer, stride, padding, kernel_size, bf16):
    """The oneDNN kernels for a plain conv layer just built, or None; sets layer.dnnl to say which it runs."""
    kernels = _dnnl_kernels(stride, padding, kernel_size, bf16) if _dnnl_applicable(layer) else None
    layer.dnnl = kernels is not None
    return kernels


class DnnlConv2d(nn.Conv2d):
    """nn.Conv2d (no bias) computed by oneDNN on channels-last (N, H, W, C) tensors; the plain layer (NCHW) if the
    kernels are unavailable (`dnnl` says which). bf16: computed in bf16 with fp32 accumulation (fp32 in and out)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, bf16=False):
        super().__init__(in_channels, out_channels, kernel_size, stride, pad_mode="pad", padding=padding,
                         has_bias=False)
        kernels = _kernels_for(self, stride, padding, kernel_size, bf16)
        if kernels:
            fwd, bwd_data, bwd_weights = kernels

            # The input gradient's size from x itself: (H + 2p - k) // s + 1 forgets H's remainder.
            bwd_data = ops.Custom(bwd_data.func, out_shape=lambda dy, w, x: x, out_dtype=mstype.float32,
                                  func_type="aot")

            def bprop(x, w, out, dout):
                return bwd_data(dout, w, x), bwd_weights(x, dout)

            self.conv = ops.Custom(fwd.func, out_shape=fwd.out_shape, out_dtype=mstype.float32, func_type="aot",
                                   bprop=bprop)

    def construct(self, x):
        if self.dnnl:
            return self.conv(x, self.weight)
        return super().construct(x)


class DnnlConv2dTranspose(nn.Conv2dTranspose):
    """nn.Conv2dTranspose (no bias) computed by oneDNN on channels-last tensors: its forward is the backward-data of
    the convolution it transposes, its input gradient that convolution's forward. The plain layer (NCHW) if the
    kernels are unavailable. bf16 as for DnnlConv2d."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, bf16=False):
        super().__init__(in_channels, out_channels, kernel_size, stride, pad_mode="pad", padding=padding,
                         has_bias=False)
        kernels = _kernels_for(self, stride, padding, kernel_size, bf16)
        if kernels:
            fwd, bwd_data, bwd_weights = kernels

            def bprop(x, w, out, dout):
                return fwd(dout, w), bwd_weights(dout, x)

            self.conv = ops.Custom(bwd_data.func, out_shape=bwd_data.out_shape, out_dtype=mstype.float32,
                                   func_type="aot", bprop=bprop)

    def construct(self, x):
        if self.dnnl:
            return self.conv(x, self.weight)
        return super().construct(x)


# ----------------------------------------------------------------------------------------------------------------
# Activations on oneDNN's eltwise kernel (src/cpu/kernels/dnnl_eltwise.cc). MindSpore's LeakyReLU is
# maximum(alpha * x, x), whose CPU gradient is a chain of compare/select/divide kernels (~4x the time of the fused
# kernel pair below). ReLU too, so that G and D use the same kernels.

DNNL_ACTIVATION_SLOPES = {0.0: "a0", 0.2: "a20"}  # the negative slopes dnnl_eltwise.cc exports


def _dnnl_activation(alpha):
    """A Custom op computing LeakyReLU(alpha) (ReLU for 0) with its gradient, or None."""
    from src.cpu import kernels
    library = kernels.library()
    suffix = DNNL_ACTIVATION_SLOPES.get(float(alpha))
    if library is None or suffix is None:
        return None
    backward = ops.Custom(f"{library}:LeakyReluBwd_{suffix}", out_shape=lambda y, dy: y, out_dtype=mstype.float32,
                          func_type="aot")

    def bprop(x, out, dout):
        return (backward(out, dout),)  # from the output: y > 0 exactly where x > 0

    return ops.Custom(f"{library}:LeakyReluFwd_{suffix}", out_shape=lambda x: x, out_dtype=mstype.float32,
                      func_type="aot", bprop=bprop)


class DnnlLeakyReLU(nn.LeakyReLU):
    """nn.LeakyReLU computed by oneDNN's eltwise kernel; the plain layer's computation if unavailable."""

    def __init__(self, alpha=0.2):
        super().__init__(alpha)
        self.act = _dnnl_activation(alpha)
        self.dnnl = self.act is not None

    def construct(self, x):
        if self.dnnl:
            return self.act(x)
        return super().construct(x)


class DnnlReLU(nn.ReLU):
    """nn.ReLU computed by oneDNN's eltwise kernel; the plain layer's computation if unavailable."""

    def __init__(self):
        super().__init__()
        self.act = _dnnl_activation(0.0)
        self.dnnl = self.act is not None

    def construct(self, x):
        if self.dnnl:
            return self.act(x)
        return super().construct(x)


# ----------------------------------------------------------------------------------------------------------------
# BatchNorm fused with the ReLU / LeakyReLU after it (src/cpu/kernels/batch_norm_act.cc). On the narrow nets
# (ngf = ndf = 32) MindSpore's BatchNorm and BatchNormGrad (oneDNN's generic NCHW kernel) plus the activation pair
# took ~20% of a training step; the fused kernels read the data once and write it once per pass.

def _dnnl_batch_norm_act(alpha):
    """A Custom op (x, gamma, beta) -> (act(BatchNorm(x)), batch mean, biased batch variance) with its gradient."""
    from src.cpu import kernels
    library = kernels.library()
    suffix = DNNL_ACTIVATION_SLOPES.get(float(alpha))
    if library is None or suffix is None:
        return None
    f32 = mstype.float32
    backward = ops.Custom(f"{library}:BatchNormActBwd_{suffix}", out_shape=lambda x, y, dy, g, m, v: (x, g, g),
                          out_dtype=(f32, f32, f32), func_type="aot")

    def bprop(x, gamma, beta, out, dout):
        y, mean, var = out
        return backward(x, y, dout[0], gamma, mean, var)  # (dx, dgamma, dbeta); mean and var feed no gradient

    return ops.Custom(f"{library}:BatchNormActFwd_{suffix}", out_shape=lambda x, g, b: (x, g, g),
                      out_dtype=(f32, f32, f32), func_type="aot", bprop=bprop)


class DnnlBatchNormAct(nn.BatchNorm2d):
    """nn.BatchNorm2d followed by LeakyReLU(alpha) (ReLU for alpha 0), in one kernel per pass when training, on
    channels-last (N, H, W, C) tensors; without the kernels (`dnnl` False), the plain NCHW BatchNorm and activation.

    The same Parameters as nn.BatchNorm2d (gamma, beta, moving_mean, moving_variance; checkpoints load either way),
    updated the same way: with batch statistics in training, the moving averages taking the batch mean and the
    unbiased batch variance with weight 1 - momentum. In inference mode (set_train(False)) it normalises with the
    moving statistics, as BatchNorm2d does. The activation layer that follows it in G and D becomes nn.Identity, so
    the layers keep their indices (and their parameter names).
    """

    def __init__(self, num_features, alpha, momentum=0.9, eps=1e-5):
        super().__init__(num_features, momentum=momentum, eps=eps)
        self.activation = nn.ReLU() if alpha == 0 else nn.LeakyReLU(alpha)
        self.fused = _dnnl_batch_norm_act(alpha) if eps == 1e-5 else None  # the kernels' eps
        self.dnnl = self.fused is not None

    def construct(self, x):
        if not self.dnnl:
            return self.activation(super().construct(x))
        if not self.training:  # the moving statistics, broadcast along the last (channel) axis
            scale = self.gamma / ops.sqrt(self.moving_variance + self.eps)
            return self.activation(x * scale + (self.beta - self.moving_mean * scale))
        y, mean, var = self.fused(x, self.gamma, self.beta)
        count = x.shape[0] * x.shape[1] * x.shape[2]
        mean, var = ops.stop_gradient(mean), ops.stop_gradient(var)
        weight = self.momentum  # nn.BatchNorm2d keeps 1 - momentum here: the weight of the batch's statistics
        y = ops.depend(y, ops.assign(self.moving_mean, self.moving_mean * (1.0 - weight) + mean * weight))
        unbiased = var * (count / (count - 1))
        return ops.depend(y, ops.assign(self.moving_variance,
                                        self.moving_variance * (1.0 - weight) + unbiased * weight))
