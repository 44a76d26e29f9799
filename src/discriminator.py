"""The DCGAN discriminator: a stack of strided convolutions ending in one logit per image.

Paper rules: strided convolutions instead of pooling, BatchNorm everywhere but the input layer, LeakyReLU(0.2).
It returns logits, not probabilities: the losses apply the sigmoid inside a numerically stable
BCE-with-logits (see src/cell.py), which never takes log(0) when D saturates.
"""
import mindspore.nn as nn
import mindspore.ops as ops

from src.contrastive import ProjectionHead
from src.cpu.fast_layers import TO_CHANNELS_FIRST, TO_CHANNELS_LAST
from src.layers import PaperLayers

# Channel multipliers of ndf per stage, from the input side; the 1-logit layer follows the last entry.
STAGES = {32: (2, 4, 8), 64: (1, 2, 4, 8)}
LEAK = 0.2


class Discriminator(nn.Cell):
    """Images (B, nc, S, S) -> logits (B,). `features` exposes every conv stage for the representation test.

    `layers` supplies the building blocks (src/layers.py); with channels-last layers the images are transposed once
    on the way in, and `features` gives its stages back in NCHW. projection_head: D also gets the projection head
    of --d_contrastive (src/contrastive.py), trained and saved with D, unused by its logits.
    """

    def __init__(self, image_size=32, ndf=64, nc=3, layers=None, projection_head=False):
        super().__init__()
        layers = layers or PaperLayers()
        widths = [ndf * m for m in STAGES[image_size]]
        blocks = [nn.SequentialCell([layers.down(nc, widths[0]), layers.act(LEAK)])]  # no BN on the input layer
        for cin, cout in zip(widths, widths[1:]):
            blocks.append(nn.SequentialCell([layers.down(cin, cout), *layers.batch_norm_act(cout, LEAK)]))
        self.blocks = nn.CellList(blocks)
        self.head = layers.to_logit(widths[-1])  # 4x4 -> 1x1, one logit: no BN, no activation
        self.channels_last = layers.channels_last
        layers.check(self)
        if projection_head:
            self.projection = ProjectionHead(widths[-1] * 4 * 4)  # the last stage is 4x4 at every image size

    def construct(self, x):
        if self.channels_last:
            x = ops.transpose(x, TO_CHANNELS_LAST)
        for block in self.blocks:
            x = block(x)
        return ops.reshape(self.head(x), (-1,))

    def features(self, x):
        """The activations of every conv stage, NCHW (used by verify.py's feature extractor)."""
        if self.channels_last:
            x = ops.transpose(x, TO_CHANNELS_LAST)
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(ops.transpose(x, TO_CHANNELS_FIRST) if self.channels_last else x)
        return outputs
