"""Which layers G and D are built from: the one place where the CPU's faster layers are chosen.

The nets (src/generator.py, src/discriminator.py) describe the paper's architecture in terms of five building
blocks; a layer set supplies them. `PaperLayers` gives MindSpore's own NCHW layers (GPU, Ascend, and the CPU with
--fast_cpu off); `CpuLayers` gives src/cpu/fast_layers.py's versions: the same parameters under the same names, the
same results, and channels-last activations between the CPU kernels when they are built. Either way a checkpoint
loads into either net.
"""
import mindspore.nn as nn

from src.cpu import fast_layers
from src.mixed_precision import amp_level

KERNEL = 4  # every convolution of DCGAN is 4x4
BN_MOMENTUM, BN_EPS = 0.9, 1e-5


class PaperLayers:
    """MindSpore's own layers, NCHW throughout."""
    channels_last = False

    def latent_up(self, in_channels, out_channels):
        """1x1 latent -> 4x4: transposed conv, stride 1, no padding."""
        return nn.Conv2dTranspose(in_channels, out_channels, KERNEL, 1, pad_mode="pad", padding=0, has_bias=False)

    def up(self, in_channels, out_channels):
        """Fractional-strided conv: doubles H and W (stride 2, padding 1)."""
        return nn.Conv2dTranspose(in_channels, out_channels, KERNEL, 2, pad_mode="pad", padding=1, has_bias=False)

    def down(self, in_channels, out_channels):
        """Strided conv: halves H and W (stride 2, padding 1)."""
        return nn.Conv2d(in_channels, out_channels, KERNEL, 2, pad_mode="pad", padding=1, has_bias=False)

    def to_logit(self, in_channels):
        """D's last layer: a 4x4 valid conv of the 4x4 map to one logit."""
        return nn.Conv2d(in_channels, 1, KERNEL, 1, pad_mode="valid", has_bias=False)

    def batch_norm_act(self, channels, alpha):
        """BatchNorm then ReLU (alpha 0) or LeakyReLU(alpha): two layers."""
        return [nn.BatchNorm2d(channels, momentum=BN_MOMENTUM, eps=BN_EPS), activation(alpha)]

    def act(self, alpha):
        return activation(alpha)

    def check(self, net):
        """Raise if `net` cannot run as built (nothing to check for the plain layers)."""


class CpuLayers(PaperLayers):
    """src/cpu/fast_layers.py's layers: one kernel for BatchNorm + activation (the activation's place kept by an
    Identity, so layer indices and parameter names match the plain net), matrix products for the 1x1 -> 4x4 and
    4x4 -> 1 layers, and oneDNN's channels-last convolutions when the kernels are built. bf16: those convolutions
    compute in bf16 with fp32 accumulation (--amp_level O1/O2 on a CPU with native bf16)."""

    def __init__(self, bf16=False):
        self.channels_last = fast_layers.kernels_available()
        self.bf16 = bf16

    def latent_up(self, in_channels, out_channels):
        return fast_layers.LatentConvTranspose2d(in_channels, out_channels, KERNEL, self.channels_last)

    def up(self, in_channels, out_channels):
        return fast_layers.DnnlConv2dTranspose(in_channels, out_channels, KERNEL, 2, 1, self.bf16)

    def down(self, in_channels, out_channels):
        return fast_layers.DnnlConv2d(in_channels, out_channels, KERNEL, 2, 1, self.bf16)

    def to_logit(self, in_channels):
        return fast_layers.FullConv2d(in_channels, 1, KERNEL, self.channels_last)

    def batch_norm_act(self, channels, alpha):
        return [fast_layers.DnnlBatchNormAct(channels, alpha, momentum=BN_MOMENTUM, eps=BN_EPS), nn.Identity()]

    def act(self, alpha):
        return fast_layers.DnnlLeakyReLU(alpha) if alpha else fast_layers.DnnlReLU()

    def check(self, net):
        fast_layers.check_layout(net, self.channels_last)


def activation(alpha):
    return nn.ReLU() if alpha == 0 else nn.LeakyReLU(alpha)


def layers_for(cfg):
    """The layer set of a run: the CPU's own layers on CPU (unless --fast_cpu off; in bf16 with --amp_level O1/O2),
    MindSpore's elsewhere (float16 there comes from mindspore.amp, src/networks.py)."""
    if cfg["device_target"] == "CPU" and cfg.get("fast_cpu", "on") == "on":
        return CpuLayers(bf16=amp_level(cfg) != "O0")
    return PaperLayers()
