"""The DCGAN generator: a stack of fractional-strided (transposed) convolutions.

Paper rules (Radford et al. 2015, section 3): no fully connected hidden layers, BatchNorm after every layer but
the output, ReLU inside and Tanh at the output. Widths follow the model zoo at 32 px (nz -> 8g (4x4) -> 4g (8x8)
-> 2g (16x16) -> nc (32x32), with g = ngf = 64) and the paper / pytorch examples at 64 px (one more stage).
"""
import mindspore.nn as nn
import mindspore.ops as ops

from src.cpu.fast_layers import TO_CHANNELS_FIRST
from src.layers import PaperLayers

# Channel multipliers of ngf per stage, from the 4x4 stage up; the output layer follows the last entry.
STAGES = {32: (8, 4, 2), 64: (8, 4, 2, 1)}
RELU = 0.0


class Generator(nn.Cell):
    """z of shape (B, nz, 1, 1) -> images of shape (B, nc, S, S) in [-1, 1], S = image_size.

    `layers` supplies the building blocks (src/layers.py); with channels-last layers the images are transposed
    back to NCHW at the end.
    """

    def __init__(self, image_size=32, nz=100, ngf=64, nc=3, layers=None):
        super().__init__()
        layers = layers or PaperLayers()
        widths = [ngf * m for m in STAGES[image_size]]
        stack = [layers.latent_up(nz, widths[0]), *layers.batch_norm_act(widths[0], RELU)]
        for cin, cout in zip(widths, widths[1:]):
            stack += [layers.up(cin, cout), *layers.batch_norm_act(cout, RELU)]
        stack += [layers.up(widths[-1], nc), nn.Tanh()]
        self.main = nn.SequentialCell(stack)
        self.channels_last = layers.channels_last
        layers.check(self)

    def construct(self, z):
        images = self.main(z)
        if self.channels_last:
            return ops.transpose(images, TO_CHANNELS_FIRST)
        return images
