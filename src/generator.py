"""The DCGAN generator: a stack of fractional-strided (transposed) convolutions.

Paper rules (Radford et al. 2015, section 3): no fully connected hidden layers, BatchNorm after every layer but
the output, ReLU inside and Tanh at the output. Widths follow the model zoo at 32 px (nz -> 8g (4x4) -> 4g (8x8)
-> 2g (16x16) -> nc (32x32), with g = ngf = 64) and the paper / pytorch examples at 64 px (one more stage).
"""
import mindspore.nn as nn
import mindspore.ops as ops

from src.cpu import fast_layers
from src.cpu.fast_layers import DnnlBatchNormAct, DnnlConv2dTranspose, LatentConvTranspose2d

# Channel multipliers of ngf per stage, from the 4x4 stage up; the output layer follows the last entry.
STAGES = {32: (8, 4, 2), 64: (8, 4, 2, 1)}


def up_block(in_channels, out_channels, first=False, fast=False, channels_last=False):
    """Transposed conv (k4; s1 p0 from the 1x1 latent, else s2 p1 which doubles H and W) + BN + ReLU."""
    stride, padding = (1, 0) if first else (2, 1)
    if first and fast:  # the same weight and result, as one matrix product (src/cpu/fast_layers.py)
        conv = LatentConvTranspose2d(in_channels, out_channels, 4, channels_last)
    else:
        conv = transposed_conv(in_channels, out_channels, stride, padding, fast)
    if fast:  # BN and ReLU in one kernel; the Identity keeps the plain net's layer indices (and parameter names)
        return [conv, DnnlBatchNormAct(out_channels, 0.0, momentum=0.9, eps=1e-5), nn.Identity()]
    return [conv, nn.BatchNorm2d(out_channels, momentum=0.9, eps=1e-5), nn.ReLU()]


def transposed_conv(in_channels, out_channels, stride, padding, fast):
    """A k4 transposed conv; fast: on oneDNN's kernels (src/cpu/fast_layers.py), same weight and result."""
    if fast:
        return DnnlConv2dTranspose(in_channels, out_channels, 4, stride, padding)
    return nn.Conv2dTranspose(in_channels, out_channels, 4, stride, pad_mode="pad", padding=padding, has_bias=False)


class Generator(nn.Cell):
    """z of shape (B, nz, 1, 1) -> images of shape (B, nc, S, S) in [-1, 1], S = image_size.

    fast=True swaps in the CPU layers of src/cpu/fast_layers.py: same parameters, same results, faster on CPU. With
    the kernels available they run channels-last from the first layer's output to the Tanh (`channels_last`), and
    the images are transposed back to NCHW at the end.
    """

    def __init__(self, image_size=32, nz=100, ngf=64, nc=3, fast=False):
        super().__init__()
        self.channels_last = fast and fast_layers.kernels_available()
        widths = [ngf * m for m in STAGES[image_size]]
        layers = up_block(nz, widths[0], first=True, fast=fast, channels_last=self.channels_last)
        for cin, cout in zip(widths, widths[1:]):
            layers += up_block(cin, cout, fast=fast)
        layers += [transposed_conv(widths[-1], nc, 2, 1, fast), nn.Tanh()]
        self.main = nn.SequentialCell(layers)
        fast_layers.check_layout(self, self.channels_last)

    def construct(self, z):
        images = self.main(z)
        if self.channels_last:
            return ops.transpose(images, fast_layers.TO_CHANNELS_FIRST)
        return images
