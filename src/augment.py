"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"), `--diffaug`.

Every image D sees, real or fake, in D's step and in G's, goes through the same kind of random augmentation, written
in differentiable operations so that G's gradient flows back through it. D can then neither tell real from fake by
the augmentation nor memorise the real images as they are; augmenting the real images alone would teach G to draw
the augmentations. Policies, applied in this order (the paper's names and strengths):
  color        per image: brightness + U(-0.5, 0.5), saturation x U(0, 2) (3-channel images), contrast x U(0.5, 1.5)
  translation  per image: a shift of up to 1/8 of the image size in x and in y, the uncovered border zero
  cutout       per image: a square of half the image size set to zero, centred anywhere in the image
Zero is mid-grey for images in [-1, 1]. The draws come from MindSpore's random operator seeded with the run's seed
(the same draws on every rank, each for its own images); a resumed run draws them afresh.
"""
import mindspore as ms
import mindspore.nn as nn
import mindspore.ops as ops

from src.config import DIFFAUG_POLICIES, parse_diffaug

TRANSLATION_RATIO, CUTOUT_RATIO = 0.125, 0.5


class DiffAugment(nn.Cell):
    """(B, C, S, S) images -> the same images, each augmented at random by `policy` (see parse_diffaug)."""

    def __init__(self, policy, image_size, seed=0):
        super().__init__()
        names = parse_diffaug(policy).split(",")
        self.color, self.translation, self.cutout = (name in names for name in DIFFAUG_POLICIES)
        self.size = image_size
        self.shift = int(image_size * TRANSLATION_RATIO + 0.5)
        self.hole = int(image_size * CUTOUT_RATIO + 0.5)
        self.seed = seed
        self.positions = ops.arange(image_size, dtype=ms.float32)

    def construct(self, x):
        if x.dtype != ms.float32:  # G's float16 output (mixed precision on GPU/Ascend): augment in float32
            x = ops.cast(x, ms.float32)
        batch = x.shape[0]
        # All of a batch's draws in one operator: separate operators with the same seed would draw the same numbers.
        draws = ops.uniform((batch, 7), ms.Tensor(0.0, ms.float32), ms.Tensor(1.0, ms.float32), seed=self.seed)
        if self.color:
            x = x + (self._per_image(draws, 0) - 0.5)  # brightness
            pixel_mean = x.mean(axis=1, keep_dims=True)  # a gray copy: saturation is the distance from it
            x = (x - pixel_mean) * (self._per_image(draws, 1) * 2.0) + pixel_mean
            image_mean = x.mean(axis=(1, 2, 3), keep_dims=True)
            x = (x - image_mean) * (self._per_image(draws, 2) + 0.5) + image_mean  # contrast
        if self.translation:
            # Shifting is a product with a shifted identity on each side: row_shift @ image @ column_shift^T, exact
            # and differentiable; rows shifted past the border fall out, the ones uncovered are zero.
            rows = self._shift_matrices(self._integers(draws, 3, -self.shift, self.shift))
            columns = self._shift_matrices(self._integers(draws, 4, -self.shift, self.shift))
            x = ops.matmul(ops.matmul(rows, x), ops.transpose(columns, (0, 1, 3, 2)))
        if self.cutout:
            # The hole's centre may lie on any pixel or edge; the part outside the image is cut off.
            top = self._integers(draws, 5, 0, self.size) - self.hole // 2
            left = self._integers(draws, 6, 0, self.size) - self.hole // 2
            hole = ops.expand_dims(self._inside(top), 2) * ops.expand_dims(self._inside(left), 1)  # (B, S, S)
            x = x * ops.expand_dims(1.0 - hole, 1)
        return x

    @staticmethod
    def _per_image(draws, column):
        """Column `column` of the draws as (B, 1, 1, 1), broadcastable over the images."""
        return ops.reshape(draws[:, column], (-1, 1, 1, 1))

    @staticmethod
    def _integers(draws, column, low, high):
        """Column `column` of the draws as integers from low to high (both included), in float32."""
        return ops.floor(draws[:, column] * (high - low + 1)) + low

    def _shift_matrices(self, shift):
        """(B,) shifts -> (B, 1, S, S) matrices M with (M @ v)[i] = v[i - shift] (zero where i - shift is outside)."""
        target = ops.reshape(self.positions, (1, -1, 1))
        source = ops.reshape(self.positions, (1, 1, -1))
        matrices = ops.cast(ops.equal(target - ops.reshape(shift, (-1, 1, 1)), source), ms.float32)
        return ops.expand_dims(matrices, 1)

    def _inside(self, start):
        """(B,) first positions -> (B, S): 1 where start <= position < start + hole, else 0."""
        position = ops.reshape(self.positions, (1, -1))
        start = ops.reshape(start, (-1, 1))
        return ops.cast(ops.logical_and(position >= start, position < start + self.hole), ms.float32)


def build_augment(cfg):
    """The run's DiffAugment cell, or None when --diffaug is empty (the paper's DCGAN)."""
    policy = parse_diffaug(cfg.get("diffaug"))
    return DiffAugment(policy, cfg["image_size"], cfg["seed"]) if policy else None
