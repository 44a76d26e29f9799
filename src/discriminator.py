"""The DCGAN discriminator: a stack of strided convolutions ending in one logit per image.

Paper rules: strided convolutions instead of pooling, BatchNorm everywhere but the input layer, LeakyReLU(0.2).
It returns logits, not probabilities: the losses apply the sigmoid inside a numerically stable
BCE-with-logits (see src/cell.py), which never takes log(0) when D saturates.
"""
import mindspore.nn as nn
import mindspore.ops as ops

from src.cpu import fast_layers
from src.cpu.fast_layers import DnnlBatchNormAct, DnnlConv2d, DnnlLeakyReLU, FullConv2d

# Channel multipliers of ndf per stage, from the input side; the 1-logit layer follows the last entry.
STAGES = {32: (2, 4, 8), 64: (1, 2, 4, 8)}


def down_block(in_channels, out_channels, batch_norm=True, fast=False):
    """Strided conv (k4 s2 p1: halves H and W) + optional BN + LeakyReLU(0.2).

    fast: the conv, and the BN with the activation (or the activation alone), on the project's CPU kernels
    (src/cpu/fast_layers.py): same parameters, same names, same result."""
    if fast:
        layers = [DnnlConv2d(in_channels, out_channels, 4, 2, 1)]
        if batch_norm:  # one kernel for both; the Identity keeps the plain net's layer indices
            return layers + [DnnlBatchNormAct(out_channels, 0.2, momentum=0.9, eps=1e-5), nn.Identity()]
        return layers + [DnnlLeakyReLU(0.2)]
    layers = [nn.Conv2d(in_channels, out_channels, 4, 2, pad_mode="pad", padding=1, has_bias=False)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels, momentum=0.9, eps=1e-5))
    return layers + [nn.LeakyReLU(0.2)]


class Discriminator(nn.Cell):
    """Images (B, nc, S, S) -> logits (B,). `features` exposes every conv stage for the representation test.

    fast=True swaps in the CPU layers of src/cpu/fast_layers.py: same parameters, same results, faster on CPU. With
    the kernels available they run channels-last (`channels_last`): the images are transposed once on the way in,
    and `features` gives its stages back in NCHW.
    """

    def __init__(self, image_size=32, ndf=64, nc=3, fast=False):
        super().__init__()
        self.channels_last = fast and fast_layers.kernels_available()
        widths = [ndf * m for m in STAGES[image_size]]
        blocks = [nn.SequentialCell(down_block(nc, widths[0], batch_norm=False, fast=fast))]
        for cin, cout in zip(widths, widths[1:]):
            blocks.append(nn.SequentialCell(down_block(cin, cout, fast=fast)))
        self.blocks = nn.CellList(blocks)
        # 4x4 -> 1x1, one logit: no BN, no activation.
        if fast:  # the same weight and result, as one matrix product (src/cpu/fast_layers.py)
            self.head = FullConv2d(widths[-1], 1, 4, self.channels_last)
        else:
            self.head = nn.Conv2d(widths[-1], 1, 4, 1, pad_mode="valid", has_bias=False)
        fast_layers.check_layout(self, self.channels_last)

    def construct(self, x):
        if self.channels_last:
            x = ops.transpose(x, fast_layers.TO_CHANNELS_LAST)
        for block in self.blocks:
            x = block(x)
        return ops.reshape(self.head(x), (-1,))

    def features(self, x):
        """The activations of every conv stage, NCHW (used by verify.py's feature extractor)."""
        if self.channels_last:
            x = ops.transpose(x, fast_layers.TO_CHANNELS_LAST)
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(ops.transpose(x, fast_layers.TO_CHANNELS_FIRST) if self.channels_last else x)
        return outputs
